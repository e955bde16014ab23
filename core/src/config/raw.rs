//! Untyped configuration: flattened keys and their values as text, from TOML and `-D` overrides.
//!
//! A [`RawConfig`] is what every source boils down to before [`super::Config::from_raw`] types
//! it. Keys are kept in order ([`BTreeMap`]), so listing and warnings never depend on the order
//! of the sources. Layering is explicit: [`RawConfig::merge`] and [`RawConfig::set`] overwrite.

use super::ConfigError;
use std::collections::BTreeMap;

/// Separator used when a TOML list of scalars is stored as one text value (Flink's list syntax).
pub const LIST_SEPARATOR: char = ';';

/// Flattened configuration keys (`jobmanager.rpc.port`) and their values as text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawConfig {
    values: BTreeMap<String, String>,
}

impl RawConfig {
    /// An empty configuration: every key takes its default.
    pub fn new() -> RawConfig {
        RawConfig::default()
    }

    /// Reads a `weir.toml` text. Quoted (`"a.b" = 1`), dotted (`a.b = 1`) and nested (`[a]` then
    /// `b = 1`) keys all flatten to `a.b`; strings, integers, floats and booleans are kept as
    /// text, and a list of those is joined with [`LIST_SEPARATOR`]. `origin` names the text in
    /// errors (usually the file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
            let (line, column) = line_and_column(text, error.span().map_or(0, |span| span.start));
            ConfigError::Syntax {
                origin: origin.to_string(),
                line,
                column,
                message: error.message().trim().to_string(),
            }
        })?;
        let mut raw = RawConfig::new();
        raw.flatten_table("", &table, origin)?;
        Ok(raw)
    }

    /// Splits a `-D` override `key=value` at its first `=`; blanks around both halves are dropped.
    pub fn parse_override(text: &str) -> Result<(String, String), ConfigError> {
        let bad = || ConfigError::BadOverride { text: text.to_string() };
        let (key, value) = text.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok((key.to_string(), value.trim().to_string()))
    }

    /// Sets `key` to `value`, replacing what was there (a `-D key=value` override).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    /// Copies every key of `other` into `self`; `other` wins where both have a key.
    pub fn merge(&mut self, other: &RawConfig) {
        for (key, value) in &other.values {
            self.values.insert(key.clone(), value.clone());
        }
    }

    /// The value text of `key`, if the key is set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Every set key and its value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// How many keys are set.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn flatten_table(&mut self, prefix: &str, table: &toml::Table, origin: &str) -> Result<(), ConfigError> {
        for (name, value) in table {
            let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            if let toml::Value::Table(inner) = value {
                self.flatten_table(&key, inner, origin)?;
                continue;
            }
            let text = value_text(value, &key, origin)?;
            if self.values.insert(key.clone(), text).is_some() {
                return Err(ConfigError::DuplicateKey { origin: origin.to_string(), key });
            }
        }
        Ok(())
    }
}

/// The text of a TOML value that is not a table.
fn value_text(value: &toml::Value, key: &str, origin: &str) -> Result<String, ConfigError> {
    let unsupported = |found| ConfigError::UnsupportedValue { origin: origin.to_string(), key: key.to_string(), found };
    match value {
        toml::Value::Array(items) => {
            let texts = items
                .iter()
                .map(|item| scalar_text(item).ok_or_else(|| unsupported(describe(item))))
                .collect::<Result<Vec<String>, ConfigError>>()?;
            Ok(texts.join(&LIST_SEPARATOR.to_string()))
        }
        other => scalar_text(other).ok_or_else(|| unsupported(describe(other))),
    }
}

/// The text of a string, number or boolean; `None` for anything else.
fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

fn describe(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "a list inside a list",
        toml::Value::Table(_) => "a table inside a list",
        _ => "a value of an unsupported kind",
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> RawConfig {
        match RawConfig::from_toml_str(text, "weir.toml") {
            Ok(raw) => raw,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn nested_dotted_and_quoted_keys_flatten_to_the_same_key() {
        let quoted = toml("\"jobmanager.rpc.port\" = 6123\n");
        let dotted = toml("jobmanager.rpc.port = 6123\n");
        let nested = toml("[jobmanager.rpc]\nport = 6123\n");
        let mixed = toml("[jobmanager]\n\"rpc.port\" = 6123\n");
        for raw in [&quoted, &dotted, &nested, &mixed] {
            assert_eq!(raw.get("jobmanager.rpc.port"), Some("6123"));
            assert_eq!(raw.len(), 1);
        }
    }

    #[test]
    fn scalars_are_kept_as_their_text_and_lists_are_joined() {
        let raw =
            toml(concat!("a = \"10 s\"\nb = 7\nc = 1.5\nd = true\n", "e = [\"http://a:2379\", \"http://b:2379\"]\n",));
        assert_eq!(raw.get("a"), Some("10 s"));
        assert_eq!(raw.get("b"), Some("7"));
        assert_eq!(raw.get("c"), Some("1.5"));
        assert_eq!(raw.get("d"), Some("true"));
        assert_eq!(raw.get("e"), Some("http://a:2379;http://b:2379"));
    }

    #[test]
    fn a_toml_syntax_error_names_origin_line_and_column() {
        let text = "rest.port = 8081\n\nheartbeat.interval = = 3\n";
        let error = RawConfig::from_toml_str(text, "conf/weir.toml").unwrap_err();
        let ConfigError::Syntax { origin, line, column, .. } = &error else {
            panic!("not a syntax error: {error}");
        };
        assert_eq!((origin.as_str(), *line), ("conf/weir.toml", 3));
        assert_eq!(*column, 22);
        assert!(error.to_string().starts_with("conf/weir.toml:3:22: TOML syntax error"), "{error}");
    }

    #[test]
    fn the_same_key_spelled_twice_is_refused() {
        let error = RawConfig::from_toml_str("\"a.b\" = 1\n[a]\nb = 2\n", "x.toml").unwrap_err();
        assert_eq!(error, ConfigError::DuplicateKey { origin: "x.toml".into(), key: "a.b".into() });
    }

    #[test]
    fn dates_and_tables_in_lists_are_refused_with_the_key() {
        let date = RawConfig::from_toml_str("when = 1979-05-27\n", "x.toml").unwrap_err();
        assert!(date.to_string().contains("`when` holds a date-time"), "{date}");
        let tables = RawConfig::from_toml_str("list = [{ a = 1 }]\n", "x.toml").unwrap_err();
        assert!(tables.to_string().contains("`list` holds a table inside a list"), "{tables}");
    }

    #[test]
    fn override_splits_at_the_first_equals_sign() {
        assert_eq!(RawConfig::parse_override("a.b=c=d"), Ok(("a.b".into(), "c=d".into())));
        assert_eq!(RawConfig::parse_override(" rest.port = 9000 "), Ok(("rest.port".into(), "9000".into())));
        assert_eq!(RawConfig::parse_override("security.token="), Ok(("security.token".into(), String::new())));
        for bad in ["rest.port", "=5", " =5", "rest port=5"] {
            assert_eq!(RawConfig::parse_override(bad), Err(ConfigError::BadOverride { text: bad.into() }));
        }
    }

    #[test]
    fn set_and_merge_let_the_later_source_win() {
        let mut file = toml("rest.port = 8081\nrest.address = \"h1\"\n");
        let mut overrides = RawConfig::new();
        overrides.set("rest.port", "9000");
        file.merge(&overrides);
        assert_eq!(file.get("rest.port"), Some("9000"));
        assert_eq!(file.get("rest.address"), Some("h1"));
        file.set("rest.address", "h2");
        assert_eq!(file.get("rest.address"), Some("h2"));
    }

    #[test]
    fn line_and_column_count_characters_not_bytes() {
        assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_and_column("µµ\nx", 4), (1, 3));
        assert_eq!(line_and_column("µ", 1), (1, 1));
        assert_eq!(line_and_column("abc", 99), (1, 4));
    }
}
