//! Typed, located access to a TOML table: each read records the field as used and turns a
//! type mismatch into an error at the value's line; [`Reader::finish`] reports unused fields.

use super::JobFileError;
use crate::time::Duration;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The file's text and name, for turning byte offsets into lines and columns.
pub(crate) struct Located<'t> {
    origin: &'t str,
    text: &'t str,
    errors: RefCell<Vec<JobFileError>>,
}

impl<'t> Located<'t> {
    pub fn new(origin: &'t str, text: &'t str) -> Located<'t> {
        Located { origin, text, errors: RefCell::new(Vec::new()) }
    }

    /// An error at byte `offset`.
    pub fn error(&self, offset: usize, field: &str, message: String) -> JobFileError {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        JobFileError { origin: self.origin.to_string(), line, column, field: field.to_string(), message }
    }

    fn push(&self, error: JobFileError) {
        self.errors.borrow_mut().push(error);
    }
}

/// A table being read; `path` prefixes field names in errors (`window.size`).
pub(crate) struct Reader<'a, 'i> {
    located: &'a Located<'a>,
    table: &'a DeTable<'i>,
    span: Range<usize>,
    path: String,
    used: BTreeSet<String>,
}

impl<'a, 'i> Reader<'a, 'i> {
    pub fn new(located: &'a Located<'a>, table: &'a DeTable<'i>, span: Range<usize>, path: String) -> Self {
        Reader { located, table, span, path, used: BTreeSet::new() }
    }

    /// The full name of field `key` for messages.
    pub fn field_name(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    /// Renames the table in later messages (an operator table is named by its id once known).
    pub fn rename(&mut self, path: String) {
        self.path = path;
    }

    /// Start of this table in the file.
    pub fn offset(&self) -> usize {
        self.span.start
    }

    /// Records an error at field `key` (or at the table when the key is absent).
    pub fn fail(&self, key: &str, message: String) {
        let offset = self.offset_of(key);
        self.located.push(self.located.error(offset, &self.field_name(key), message));
    }

    /// Byte offset of field `key`'s value, or of the table when absent.
    pub fn offset_of(&self, key: &str) -> usize {
        self.table.get(key).map(|value| value.span().start).unwrap_or(self.span.start)
    }

    /// Spans of every field present, by name, for placing later errors.
    pub fn field_offsets(&self) -> Vec<(String, usize)> {
        self.table.iter().map(|(key, value)| (key.get_ref().to_string(), value.span().start)).collect()
    }

    /// The raw value of `key`, marking it used.
    pub fn value(&mut self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.used.insert(key.to_string());
        self.table.get(key)
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &DeValue<'_>) {
        self.fail(key, format!("expected {expected}, found {}", found.type_str()));
    }

    /// An optional string.
    pub fn string(&mut self, key: &str) -> Option<String> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::String(text) => Some(text.to_string()),
            other => {
                self.wrong_type(key, "a string", other);
                None
            }
        }
    }

    /// A required string; records an error when missing.
    pub fn required_string(&mut self, key: &str) -> Option<String> {
        if self.table.get(key).is_none() {
            self.fail(key, format!("missing required field `{key}`"));
            return None;
        }
        self.string(key)
    }

    /// An optional integer.
    pub fn integer(&mut self, key: &str) -> Option<i64> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::Integer(integer) => {
                let parsed = i64::from_str_radix(integer.as_str(), integer.radix());
                parsed.map_err(|_| self.fail(key, format!("{} does not fit in 64 bits", integer.as_str()))).ok()
            }
            other => {
                self.wrong_type(key, "an integer", other);
                None
            }
        }
    }

    /// An optional integer that must lie in `range`.
    pub fn integer_in(&mut self, key: &str, range: Range<i64>) -> Option<i64> {
        let value = self.integer(key)?;
        if !range.contains(&value) {
            self.fail(key, format!("{value} is outside {}..{}", range.start, range.end));
            return None;
        }
        Some(value)
    }

    /// A required integer in `range`; `what` explains the field in the missing-field message.
    pub fn required_integer_in(&mut self, key: &str, range: Range<i64>, what: &str) -> Option<i64> {
        if self.table.get(key).is_none() {
            self.used.insert(key.to_string());
            self.fail(key, format!("missing required field `{key}` ({what})"));
            return None;
        }
        self.integer_in(key, range)
    }

    /// An optional duration: a string with a unit (`10 s`, `250 ms`) or an integer of milliseconds.
    pub fn duration(&mut self, key: &str) -> Option<Duration> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::Integer(_) => {
                let millis = self.integer(key)?;
                match u64::try_from(millis) {
                    Ok(millis) => Some(Duration::from_millis(millis)),
                    Err(_) => {
                        self.fail(key, format!("a duration cannot be negative, got {millis}"));
                        None
                    }
                }
            }
            DeValue::String(text) => match crate::config::units::parse_duration(text) {
                Ok(duration) => Some(duration),
                Err(reason) => {
                    self.fail(key, format!("bad duration {:?}: {reason}", text.as_ref()));
                    None
                }
            },
            other => {
                self.wrong_type(key, "a duration such as \"10 s\"", other);
                None
            }
        }
    }

    /// A list of strings; a single string is a list of one.
    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::String(text) => Some(vec![text.to_string()]),
            DeValue::Array(items) => {
                let mut result = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(text) => result.push(text.to_string()),
                        other => {
                            self.wrong_type(key, "a list of strings", other);
                            return None;
                        }
                    }
                }
                Some(result)
            }
            other => {
                self.wrong_type(key, "a string or a list of strings", other);
                None
            }
        }
    }

    /// A sub-table, read with its own reader.
    pub fn table(&mut self, key: &str) -> Option<Reader<'a, 'i>> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::Table(table) => Some(Reader::new(self.located, table, value.span(), self.field_name(key))),
            other => {
                self.wrong_type(key, "a table", other);
                None
            }
        }
    }

    /// The string-valued entries of a sub-table in file order (`fields = { k = "x % 10" }`).
    pub fn string_entries(&mut self, key: &str) -> Option<Vec<(String, String)>> {
        let mut table = self.table(key)?;
        let keys: Vec<String> = table.table.keys().map(|key| key.get_ref().to_string()).collect();
        let mut entries = Vec::with_capacity(keys.len());
        for name in keys {
            let text = table.string(&name)?;
            entries.push((name, text));
        }
        table.finish_nested();
        Some(entries)
    }

    /// The array of tables at `key` (`[[operator]]`), each with its own reader.
    pub fn tables(&mut self, key: &str) -> Vec<Reader<'a, 'i>> {
        let Some(value) = self.value(key) else { return Vec::new() };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(key, "an array of tables", value.get_ref());
            return Vec::new();
        };
        let mut readers = Vec::with_capacity(items.len());
        for (position, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(table) => {
                    let path = format!("{key}[{position}]");
                    readers.push(Reader::new(self.located, table, item.span(), path));
                }
                other => self.wrong_type(key, "an array of tables", other),
            }
        }
        readers
    }

    /// Every key of the table with its value rendered as text (for the `[config]` table);
    /// nested tables flatten into dotted keys, so `a.b = 1` and `"a.b" = 1` mean the same.
    pub fn raw_entries(&mut self) -> Vec<(String, String)> {
        let keys: Vec<String> = self.table.keys().map(|key| key.get_ref().to_string()).collect();
        let mut entries = Vec::new();
        for key in keys {
            if let Some(value) = self.value(&key) {
                self.flatten_into(&key, value.get_ref(), &mut entries);
            }
        }
        entries
    }

    fn flatten_into(&self, key: &str, value: &DeValue<'_>, entries: &mut Vec<(String, String)>) {
        let text = match value {
            DeValue::String(text) => text.to_string(),
            DeValue::Integer(integer) => integer.as_str().to_string(),
            DeValue::Float(float) => float.as_str().to_string(),
            DeValue::Boolean(flag) => flag.to_string(),
            DeValue::Table(table) => {
                for (inner, value) in table.iter() {
                    self.flatten_into(&format!("{key}.{}", inner.get_ref()), value.get_ref(), entries);
                }
                return;
            }
            other => return self.wrong_type(key, "a string, number or boolean", other),
        };
        entries.push((key.to_string(), text));
    }

    /// Reports every field that no read asked for.
    pub fn finish_nested(self) {
        for (key, value) in self.table.iter() {
            let name = key.get_ref();
            if !self.used.contains(name.as_ref()) {
                let message = format!("unknown field `{name}`");
                self.located.push(self.located.error(value.span().start, &self.field_name(name), message));
            }
        }
    }

    /// Finishes the top-level reader and returns every error recorded by any reader.
    pub fn finish(self) -> Vec<JobFileError> {
        let located = self.located;
        self.finish_nested();
        located.errors.borrow_mut().drain(..).collect()
    }
}

impl Reader<'_, '_> {
    /// Records an error at an explicit offset with an explicit field name.
    pub fn fail_at(&self, offset: usize, field: &str, message: String) {
        self.located.push(self.located.error(offset, field, message));
    }
}
