//! Tidy: the project's mechanical rules, checked on every test run (TigerBeetle's `tidy.zig`).
//!
//! - `core/src` is sans-IO and deterministic: no IO, clocks, threads, environment, std hash
//!   containers, unseeded randomness, printing or `dbg!` (comments may mention them).
//! - Lines are at most 120 characters; functions in `core/src` (outside tests) at most 70 lines.
//!
//! Each rule is a function over a file's text, and a unit test plants a violation to prove
//! the rule fires.

use std::path::{Path, PathBuf};

const BANNED_IN_CORE: &[&str] = &[
    "std::fs",
    "std::net",
    "std::thread",
    "std::env",
    "std::process",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::random",
    "HashMap",
    "HashSet",
    "tokio",
    "dbg!",
    "static mut",
    "println!",
    "eprintln!",
];
const LINE_LENGTH_MAX: usize = 120;
const FUNCTION_LINES_MAX: usize = 70;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn is_comment(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with("//") || trimmed.starts_with("/*") || trimmed.starts_with('*')
}

/// Banned tokens outside comments: `(line number, token)`.
fn banned_tokens(text: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if is_comment(line) {
            continue;
        }
        let code = line.split(" //").next().unwrap_or(line);
        for token in BANNED_IN_CORE {
            if code.contains(token) {
                found.push((number + 1, *token));
            }
        }
    }
    found
}

fn long_lines(text: &str) -> Vec<usize> {
    text.lines().enumerate().filter(|(_, line)| line.chars().count() > LINE_LENGTH_MAX).map(|(n, _)| n + 1).collect()
}

/// Functions longer than the limit: `(line of the fn, length)`; stops at `#[cfg(test)]`.
fn long_functions(text: &str) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let trimmed = line.trim_start();
        let is_fn =
            ["fn ", "pub fn ", "pub(crate) fn ", "const fn ", "pub const fn "].iter().any(|p| trimmed.starts_with(p));
        // A declaration without a body (a trait's required method) ends its signature with `;`,
        // which may come lines later when the signature wraps.
        let signature_end = lines[start..].iter().map(|l| l.trim_end()).find(|l| l.ends_with(';') || l.ends_with('{'));
        if !is_fn || signature_end.is_none_or(|l| l.ends_with(';')) {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let closing = " ".repeat(indent) + "}";
        if let Some(end) = lines[start..].iter().position(|l| l.trim_end() == closing)
            && end + 1 > FUNCTION_LINES_MAX
        {
            found.push((start + 1, end + 1));
        }
    }
    found
}

fn is_test_file(file: &Path) -> bool {
    file.file_name().is_some_and(|name| name == "tests.rs" || name == "proptests.rs")
}

#[test]
fn core_is_sans_io_and_deterministic() {
    // Everything under core/, tests included: a test there that reads a clock or a file is
    // not deterministic either. Benchmarks that time the core live in this crate.
    let mut files = Vec::new();
    rust_files(&workspace().join("core"), &mut files);
    assert!(files.len() > 5, "core/ should hold the core's sources");
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (line, token) in banned_tokens(&text) {
            problems.push(format!("{}:{line}: `{token}` is not allowed in core/", file.display()));
        }
        // Test files may hold long tables of cases; the length rule is for the core's code.
        if !is_test_file(file) {
            for (line, length) in long_functions(&text) {
                problems
                    .push(format!("{}:{line}: function of {length} lines (max {FUNCTION_LINES_MAX})", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "tidy found:\n{}", problems.join("\n"));
}

#[test]
fn no_line_is_too_long() {
    let mut files = Vec::new();
    for dir in ["core/src", "net/src", "sim/src", "nodes/src", "tests"] {
        rust_files(&workspace().join(dir), &mut files);
    }
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for line in long_lines(&text) {
            problems.push(format!("{}:{line}: longer than {LINE_LENGTH_MAX} characters", file.display()));
        }
    }
    assert!(problems.is_empty(), "tidy found:\n{}", problems.join("\n"));
}

#[test]
fn planted_violations_are_caught() {
    let planted = "use std::collections::HashMap;\n// HashMap in a comment is fine\nfn f() { dbg!(1); }\n";
    assert_eq!(banned_tokens(planted), vec![(1, "HashMap"), (3, "dbg!")]);
    let long_fn = format!("fn long() {{\n{}}}\n", "    let x = 1;\n".repeat(FUNCTION_LINES_MAX));
    assert_eq!(long_functions(&long_fn), vec![(1, FUNCTION_LINES_MAX + 2)]);
    assert_eq!(long_lines(&"x".repeat(LINE_LENGTH_MAX + 1)), vec![1]);
    assert!(long_lines(&"x".repeat(LINE_LENGTH_MAX)).is_empty());
}
