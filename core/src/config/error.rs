//! Errors of reading a configuration: each names the place, what came and what was expected.

use thiserror::Error;

/// Why a configuration text or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The TOML text does not parse.
    #[error("{origin}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        /// Where the text came from (a file name or `-D`).
        origin: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// The parser's description of the error.
        message: String,
    },
    /// A TOML value that is not a string, number, boolean or a list of those.
    #[error(
        "{origin}: key `{key}` holds {found}; \
         expected a string, a number, a boolean or a list of those"
    )]
    UnsupportedValue {
        /// Where the text came from.
        origin: String,
        /// The flattened key.
        key: String,
        /// What the key holds instead (`a date-time`, `a table inside a list`, ...).
        found: &'static str,
    },
    /// Two spellings in one TOML text (nested, dotted or quoted) flatten to the same key.
    #[error(
        "{origin}: key `{key}` is given twice \
         (nested, dotted and quoted keys flatten to the same name)"
    )]
    DuplicateKey {
        /// Where the text came from.
        origin: String,
        /// The flattened key.
        key: String,
    },
    /// A `-D` override that is not `key=value`.
    #[error("invalid override {text:?}: expected `key=value` with a non-empty key")]
    BadOverride {
        /// The override as given.
        text: String,
    },
    /// A value that does not parse or breaks a rule (a range, or a relation to another key).
    #[error("invalid value {value:?} for key `{key}`: expected {expected}")]
    InvalidValue {
        /// The key whose value is wrong.
        key: String,
        /// The value as given (or as in effect, for a relation between keys).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A key that has no default is needed by the value of another key.
    #[error("missing key `{key}`: {reason}")]
    MissingKey {
        /// The key that must be set.
        key: String,
        /// Which setting needs it.
        reason: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::InvalidValue`] for `key` holding `value`.
    pub(crate) fn invalid(key: &str, value: impl Into<String>, expected: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue { key: key.to_string(), value: value.into(), expected: expected.into() }
    }
}
