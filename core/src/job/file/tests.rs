use super::*;
use crate::job::{OperatorKind, Partitioner};

const WINDOWED_SUM: &str = include_str!("../../../../examples/windowed-sum.toml");
const WORDCOUNT: &str = include_str!("../../../../examples/wordcount.toml");
const EVENT_TIME: &str = include_str!("../../../../examples/event-time.toml");

fn errors_of(text: &str) -> Vec<JobFileError> {
    match parse_job_file("job.toml", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(JobFileErrors(errors)) => errors,
    }
}

/// Asserts one error at `line` whose field and message contain the given fragments.
fn assert_error(text: &str, line: usize, field: &str, message: &str) {
    let errors = errors_of(text);
    let found = errors.iter().any(|e| e.line == line && e.field.contains(field) && e.message.contains(message));
    assert!(found, "no error at line {line} on {field:?} saying {message:?}; got:\n{}", JobFileErrors(errors));
    for error in &errors {
        assert!(error.to_string().starts_with(&format!("job.toml:{}:", error.line)), "{error}");
        assert!(!error.to_string().contains('\n'), "one line per error: {error}");
    }
}

const HEAD: &str = "name = \"t\"\n";

#[test]
fn the_examples_parse() {
    for (name, text) in [("windowed-sum", WINDOWED_SUM), ("wordcount", WORDCOUNT), ("event-time", EVENT_TIME)] {
        if let Err(errors) = parse_job_file(name, text) {
            panic!("{name}: {errors}");
        }
    }
}

#[test]
fn key_by_becomes_a_hash_edge_not_an_operator() {
    let job = parse_job_file("w", WINDOWED_SUM).unwrap();
    let kinds: Vec<&str> = job.graph.operators.iter().map(|o| o.kind.type_name()).collect();
    assert_eq!(kinds, ["sequence", "map", "window", "discard"]);
    let hash: Vec<_> =
        job.graph.edges.iter().filter(|e| matches!(e.partitioner, Some(Partitioner::Hash { .. }))).collect();
    assert_eq!(hash.len(), 1);
    assert_eq!(job.graph.operator(hash[0].source).uid, "pairs");
    assert_eq!(job.graph.operator(hash[0].target).uid, "sums");
    assert!(matches!(job.graph.operators[0].kind, OperatorKind::Sequence { from: 0, to: 99_999_999, .. }));
}

#[test]
fn map_fields_keep_the_file_order() {
    let job = parse_job_file("w", WINDOWED_SUM).unwrap();
    let schema = job.schemas[1].as_ref().unwrap();
    assert_eq!(schema.names(), "k, v");
}

#[test]
fn toml_syntax_error_names_the_line() {
    assert_error(&format!("{HEAD}[[operator]]\nid = \"a\"\ntype = \n"), 4, "toml", "");
}

#[test]
fn unknown_operator_type_names_line_and_field() {
    let text = format!("{HEAD}[[operator]]\nid = \"a\"\ntype = \"sequense\"\n");
    assert_error(&text, 4, "operator `a`.type", "unknown operator type \"sequense\"");
}

#[test]
fn unknown_field_names_line_and_field() {
    let text = format!("{HEAD}[[operator]]\nid = \"a\"\ntype = \"sequence\"\nto = 5\nparalelism = 2\n");
    assert_error(&text, 6, "operator `a`.paralelism", "unknown field");
}

#[test]
fn wrong_value_type_names_line_and_field() {
    let text = format!("{HEAD}[[operator]]\nid = \"a\"\ntype = \"sequence\"\nto = \"ten\"\n");
    assert_error(&text, 5, "operator `a`.to", "expected an integer, found string");
}

#[test]
fn unknown_input_names_line_and_field() {
    let text = format!(
        "{HEAD}[[operator]]\nid = \"a\"\ntype = \"sequence\"\nto = 5\n\
         [[operator]]\nid = \"b\"\ntype = \"discard\"\ninput = \"c\"\n"
    );
    assert_error(&text, 9, "operator `b`.input", "unknown input `c`");
}

#[test]
fn duplicate_id_names_line_and_field() {
    let text = format!(
        "{HEAD}[[operator]]\nid = \"a\"\ntype = \"sequence\"\nto = 5\n\
         [[operator]]\nid = \"a\"\ntype = \"discard\"\ninput = \"a\"\n"
    );
    assert_error(&text, 7, "id", "duplicate id `a`");
}

#[test]
fn cycle_names_line_and_the_operators_in_it() {
    let text = format!(
        "{HEAD}[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\n\
         [[operator]]\nid = \"a\"\ntype = \"filter\"\ninput = [\"s\", \"b\"]\nwhere = \"x > 1\"\n\
         [[operator]]\nid = \"b\"\ntype = \"filter\"\ninput = \"a\"\nwhere = \"x > 2\"\n"
    );
    assert_error(&text, 9, "input", "cycle through a -> b");
}

#[test]
fn hash_partition_without_key_is_rejected() {
    let text = format!(
        "{HEAD}[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\n\
         [[operator]]\nid = \"a\"\ntype = \"discard\"\ninput = \"s\"\npartition = \"hash\"\n"
    );
    assert_error(&text, 6, "key", "needs a key");
}

#[test]
fn parallelism_out_of_range_names_line_and_field() {
    let text = format!("{HEAD}[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\nparallelism = 0\n");
    assert_error(&text, 6, "parallelism", "0 is outside 1..32769");
    let text =
        format!("{HEAD}max_parallelism = 4\n[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\nparallelism = 8\n");
    assert_error(&text, 7, "parallelism", "parallelism 8 is outside 1..=4");
}

#[test]
fn forward_edge_between_different_parallelisms_is_rejected() {
    let text = format!(
        "{HEAD}[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\nparallelism = 2\n\
         [[operator]]\nid = \"a\"\ntype = \"discard\"\ninput = \"s\"\npartition = \"forward\"\nparallelism = 3\n"
    );
    assert_error(&text, 11, "partition", "forward partitioning does not allow a change of parallelism");
}

#[test]
fn window_without_key_by_is_rejected() {
    let text = format!(
        "{HEAD}[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\n\
         [[operator]]\nid = \"w\"\ntype = \"window\"\ninput = \"s\"\n\
         window = {{ type = \"count\", size = 3 }}\naggregates = {{ n = \"count()\" }}\n"
    );
    assert_error(&text, 9, "input", "needs a keyed input");
}

#[test]
fn source_with_an_input_is_rejected() {
    let text = format!(
        "{HEAD}[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\n\
         [[operator]]\nid = \"t\"\ntype = \"sequence\"\nto = 5\ninput = \"s\"\n"
    );
    assert_error(&text, 10, "input", "is a source and takes no input");
}

#[test]
fn bad_expression_names_line_and_field() {
    let text = format!(
        "{HEAD}[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\n\
         [[operator]]\nid = \"m\"\ntype = \"map\"\ninput = \"s\"\nfields = {{ k = \"y % 10\" }}\n"
    );
    assert_error(&text, 10, "fields.k", "unknown field `y`");
}

#[test]
fn bad_duration_names_line_and_field() {
    let text = format!(
        "{HEAD}[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\n\
         [[operator]]\nid = \"w\"\ntype = \"watermarks\"\ninput = \"s\"\ntimestamp = \"x\"\n\
         max_out_of_orderness = \"soon\"\n"
    );
    assert_error(&text, 11, "max_out_of_orderness", "bad duration");
}

#[test]
fn garbage_input_gives_errors_not_panics() {
    for text in ["", "[[operator]]", "operator = 5", "[[operator]]\nid = 1\ntype = []", "\u{0}\u{1}"] {
        let _ = parse_job_file("g", text);
    }
}

#[test]
fn config_keys_may_be_dotted_or_quoted() {
    let text = format!(
        "{HEAD}[config]\n\"execution.checkpointing.interval\" = \"1 s\"\npipeline.operator-chaining.enabled = false\n\
         [[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\n"
    );
    let job = parse_job_file("job.toml", &text).unwrap();
    assert_eq!(job.graph.config["execution.checkpointing.interval"], "1 s");
    assert_eq!(job.graph.config["pipeline.operator-chaining.enabled"], "false");
}
