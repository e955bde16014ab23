//! Job files: a job written in TOML, read into a validated [`JobGraph`].
//!
//! The format is documented for users in `docs/job-file.md`. In short: top-level `name`,
//! `parallelism`, `max_parallelism` and a `[config]` table, then one `[[operator]]` table per
//! operator with an `id`, a `type`, an `input` naming the operator(s) it reads, and the type's
//! own fields. `type = "key_by"` is not an operator: it makes the edges to its consumers hash
//! edges on its `key`, as Flink's `keyBy` does.
//!
//! Every error names the file, the line and column, and the field; unknown fields are errors
//! (a misspelt optional field would otherwise be silently ignored).

mod operators;
mod reader;

use super::validate::{GraphError, ValidatedJob, validate};
use reader::{Located, Reader};
use std::fmt;
use toml::de::DeTable;

/// One problem in a job file, with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobFileError {
    /// The file as the user named it.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field at fault (`operator[2].fields.k`, `parallelism`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for JobFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: `{}`: {}", self.origin, self.line, self.column, self.field, self.message)
    }
}

impl std::error::Error for JobFileError {}

/// All problems found in a job file; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobFileErrors(pub Vec<JobFileError>);

impl fmt::Display for JobFileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for JobFileErrors {}

/// Reads and validates the job file `text`; `origin` (usually the path) names it in errors.
pub fn parse_job_file(origin: &str, text: &str) -> Result<ValidatedJob, JobFileErrors> {
    let located = Located::new(origin, text);
    let document = DeTable::parse(text).map_err(|error| {
        let offset = error.span().map(|span| span.start).unwrap_or(0);
        let message = error.message().trim().to_string();
        JobFileErrors(vec![located.error(offset, "toml", message)])
    })?;
    let mut reader = Reader::new(&located, document.get_ref(), document.span(), String::new());
    let parsed = operators::read_job(&mut reader);
    let mut errors = reader.finish();
    let Some(parsed) = parsed else {
        return Err(JobFileErrors(errors));
    };
    if !errors.is_empty() {
        return Err(JobFileErrors(errors));
    }
    match validate(parsed.graph) {
        Ok(job) => Ok(job),
        Err(graph_errors) => {
            errors.extend(graph_errors.iter().map(|error| place_graph_error(&located, &parsed.places, error)));
            Err(JobFileErrors(errors))
        }
    }
}

/// Where each operator's fields sit in the file, to place errors found after parsing.
#[derive(Default)]
pub(crate) struct Places {
    /// For each operator: its table's span and the spans of its fields by name.
    pub operators: Vec<operators::OperatorPlace>,
    /// Spans of the top-level fields.
    pub job: Vec<(String, usize)>,
}

fn place_graph_error(located: &Located, places: &Places, error: &GraphError) -> JobFileError {
    let Some(index) = error.operator else {
        let offset = places.job.iter().find(|(name, _)| *name == error.field).map(|(_, offset)| *offset).unwrap_or(0);
        return located.error(offset, &error.field, error.message.clone());
    };
    let place = &places.operators[index.index()];
    let offset = place.offset_of(&error.field);
    let field = format!("operator `{}`.{}", error.uid, error.field);
    located.error(offset, &field, error.message.clone())
}

#[cfg(test)]
mod tests;
