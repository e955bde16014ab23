//! Docs: the configuration-key table in `docs/operations.md` is generated from
//! `weir_core::config::known_keys()`, and this test keeps it true.
//!
//! It renders the table (key, type, default, description, with weir-only keys marked and old
//! Flink names listed) and asserts that the file holds exactly that text between the markers
//! `<!-- config-keys:start -->` and `<!-- config-keys:end -->`. With `WEIR_UPDATE_DOCS=1` in
//! the environment it rewrites that section of the file instead:
//!
//! ```text
//! WEIR_UPDATE_DOCS=1 cargo test -p weir-tests --test docs
//! ```

use std::path::{Path, PathBuf};
use weir_core::config::{KeyDoc, UNSET, known_keys};

const START: &str = "<!-- config-keys:start -->";
const END: &str = "<!-- config-keys:end -->";

fn operations_md() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace");
    workspace.join("docs/operations.md")
}

/// Text made safe for one cell of a Markdown table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn code(text: &str) -> String {
    format!("`{}`", cell(text))
}

/// One row of the table: key, type, default, description (plus old names and the weir mark).
fn row(doc: &KeyDoc) -> String {
    let default = if doc.default == UNSET { UNSET.to_string() } else { code(doc.default) };
    let mut description = cell(doc.description);
    if !doc.fallback_keys.is_empty() {
        let names: Vec<String> = doc.fallback_keys.iter().map(|name| code(name)).collect();
        let label = if names.len() == 1 { "Old name" } else { "Old names" };
        description.push_str(&format!(" {label}, still read: {}.", names.join(", ")));
    }
    if doc.weir_only {
        description.push_str(" *weir only.*");
    }
    format!("| {} | {} | {} | {} |\n", code(doc.key), code(doc.kind.as_str()), default, description)
}

/// The whole table, header included, each line ending in a newline.
fn render_table() -> String {
    let mut table = String::from("| key | type | default | description |\n|---|---|---|---|\n");
    for doc in known_keys() {
        table.push_str(&row(doc));
    }
    table
}

/// The marked section as it should read: markers, a blank line, the table, a blank line.
fn expected_section() -> String {
    format!("{START}\n\n{}\n{END}", render_table())
}

#[test]
fn operations_md_lists_every_configuration_key() {
    let path = operations_md();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let section = expected_section();
    if std::env::var("WEIR_UPDATE_DOCS").as_deref() == Ok("1") {
        let (before, rest) = text.split_once(START).unwrap_or_else(|| panic!("{}: no `{START}`", path.display()));
        let (_, after) =
            rest.split_once(END).unwrap_or_else(|| panic!("{}: no `{END}` after the start", path.display()));
        let updated = format!("{before}{section}{after}");
        std::fs::write(&path, updated).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        return;
    }
    assert!(
        text.contains(&section),
        "{} does not hold the configuration-key table of known_keys(); \
         regenerate it with: WEIR_UPDATE_DOCS=1 cargo test -p weir-tests --test docs",
        path.display()
    );
}

#[test]
fn the_table_has_one_row_per_key_with_old_names_and_weir_marks() {
    let table = render_table();
    assert_eq!(table.lines().count(), known_keys().len() + 2);
    for doc in known_keys() {
        let row = row(doc);
        assert!(row.starts_with(&format!("| `{}` |", doc.key)), "{row}");
        assert_eq!(row.contains("*weir only.*"), doc.weir_only, "{row}");
        for old in doc.fallback_keys {
            assert!(row.contains(&format!("`{old}`")), "{row}");
        }
    }
    assert_eq!(cell("a|b"), "a\\|b");
}
