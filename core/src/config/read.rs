//! Typed lookups of single keys: the value in effect (new name, old name, default) parsed by one
//! of the value parsers below, or an error that names the key, the value and what was expected.

use super::keys::{UNSET, key_doc};
use super::raw::LIST_SEPARATOR;
use super::units::{parse_bool, parse_duration, parse_size};
use super::{ConfigError, RawConfig};
use crate::time::Duration;
use std::fmt::Display;

/// Reads keys of one [`RawConfig`], falling back to the defaults of the key table.
pub(super) struct Reader<'a> {
    raw: &'a RawConfig,
}

impl<'a> Reader<'a> {
    /// A reader of `raw`.
    pub(super) fn new(raw: &'a RawConfig) -> Reader<'a> {
        Reader { raw }
    }

    /// The name the value was found under and the value text in effect for `key`: the current
    /// name, else the first old name that is set, else the default; `None` when unset.
    fn lookup(&self, key: &'static str) -> Option<(&'a str, &'a str)> {
        let Some(doc) = key_doc(key) else {
            panic!("key `{key}` is read but missing from the key table");
        };
        let configured = std::iter::once(&doc.key)
            .chain(doc.fallback_keys)
            .find_map(|name| self.raw.get(name).map(|text| (*name, text)));
        Some(configured.unwrap_or((doc.key, doc.default))).filter(|(_, text)| *text != UNSET)
    }

    /// The parsed value of `key`, `None` when the key is unset and has no default.
    pub(super) fn optional<T>(
        &self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((name, text)) = self.lookup(key) else {
            return Ok(None);
        };
        parse(text).map(Some).map_err(|expected| ConfigError::invalid(name, text, expected))
    }

    /// The parsed value of `key`, which has a default.
    pub(super) fn value<T>(
        &self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.optional(key, parse)?.ok_or_else(|| ConfigError::MissingKey {
            key: key.to_string(),
            reason: "the key has no default and must be set".to_string(),
        })
    }
}

/// Parses a duration, explaining the syntax when it does not parse.
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|why| format!("a duration such as `10 s` or `500 ms` ({why})"))
}

/// Parses a memory size, explaining the syntax when it does not parse.
pub(super) fn size(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|why| format!("a size such as `32 kb` or `128 mb` ({why})"))
}

/// Parses `true` or `false`.
pub(super) fn boolean(text: &str) -> Result<bool, String> {
    parse_bool(text).map_err(|_| "`true` or `false`".to_string())
}

/// Parses non-empty text, without surrounding blanks.
pub(super) fn text(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("a non-empty text".to_string());
    }
    Ok(trimmed.to_string())
}

/// Parses a list of non-empty items separated by `;` or `,`.
pub(super) fn list(text: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> =
        text.split([LIST_SEPARATOR, ',']).map(str::trim).filter(|item| !item.is_empty()).map(str::to_string).collect();
    if items.is_empty() {
        return Err("a list of one or more items separated by `;` or `,`".to_string());
    }
    Ok(items)
}

/// A parser of whole numbers from `min` to `max`.
pub(super) fn whole<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String>
where
    T: Copy + Display + Into<i64> + TryFrom<i64>,
{
    move |text| {
        let expected = || format!("a whole number from {min} to {max}");
        let number: i64 = text.trim().parse().map_err(|_| expected())?;
        if number < min.into() || number > max.into() {
            return Err(expected());
        }
        T::try_from(number).map_err(|_| expected())
    }
}

/// A parser of finite decimal numbers from `min` to `max`.
pub(super) fn number(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> {
    move |text| {
        let expected = || {
            if max == f64::MAX {
                format!("a number of at least {min}")
            } else {
                format!("a number from {min} to {max}")
            }
        };
        let value: f64 = text.trim().parse().map_err(|_| expected())?;
        if !value.is_finite() || value < min || value > max {
            return Err(expected());
        }
        Ok(value)
    }
}

/// A parser of one of `names` (matched ignoring case, `-` and `_`), each giving a value.
pub(super) fn choice<T: Copy>(names: &'static [(&'static str, T)]) -> impl Fn(&str) -> Result<T, String> {
    move |text| {
        let wanted = normalize_name(text);
        names.iter().find(|(name, _)| normalize_name(name) == wanted).map(|(_, value)| *value).ok_or_else(|| {
            let listed: Vec<String> = names.iter().map(|(name, _)| format!("`{name}`")).collect();
            format!("one of {}", listed.join(", "))
        })
    }
}

/// `name` in lower case with `-` and `_` made the same, so `fixed-delay`, `FIXED_DELAY` match.
fn normalize_name(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_outside_the_range_are_refused() {
        let port = whole(0u16, u16::MAX);
        assert_eq!(port("8081"), Ok(8081));
        assert_eq!(port(" 0 "), Ok(0));
        assert_eq!(port("65536"), Err("a whole number from 0 to 65535".to_string()));
        assert!(port("-1").is_err());
        assert!(port("80.5").is_err());
        assert!(port("eighty").is_err());
    }

    #[test]
    fn numbers_must_be_finite_and_in_range() {
        let jitter = number(0.0, 1.0);
        assert_eq!(jitter("0.25"), Ok(0.25));
        assert_eq!(jitter("1"), Ok(1.0));
        assert_eq!(jitter("1.5"), Err("a number from 0 to 1".to_string()));
        for bad in ["NaN", "inf", "-0.1", "x"] {
            assert!(jitter(bad).is_err(), "{bad}");
        }
        assert_eq!(number(1.0, f64::MAX)("0.5"), Err("a number of at least 1".to_string()));
    }

    #[test]
    fn choices_match_ignoring_case_dashes_and_underscores() {
        static NAMES: [(&str, u8); 2] = [("fixed-delay", 1), ("EXACTLY_ONCE", 2)];
        let parse = choice(&NAMES);
        assert_eq!(parse("FIXED_DELAY"), Ok(1));
        assert_eq!(parse("exactly-once"), Ok(2));
        assert_eq!(parse("other"), Err("one of `fixed-delay`, `EXACTLY_ONCE`".to_string()));
    }

    #[test]
    fn lists_split_on_semicolons_and_commas() {
        assert_eq!(list("a; b,c"), Ok(vec!["a".to_string(), "b".to_string(), "c".to_string()]));
        assert!(list(" ; ").is_err());
    }
}
