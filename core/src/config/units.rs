//! Value syntax shared by every weir text format: durations, memory sizes and booleans.
//!
//! The syntax is Flink's (`TimeUtils.parseDuration`, `MemorySize.parse`): a whole number, optional
//! blanks, then an optional unit that is matched case-insensitively. A bare number is milliseconds
//! for a duration and bytes for a size. Size units are binary (`kb` = 1024 bytes), as in Flink.
//! Parsers return `Err(reason)` with a short reason; callers add the key or the place.
//! Printing ([`format_size`], [`Duration`]'s `Display`) gives text these parsers read back to the
//! same value.

use crate::time::Duration;

/// Microseconds per duration unit label; the plural of a long label is accepted too.
const DURATION_UNITS: [(&str, u64); 20] = [
    ("d", 86_400_000_000),
    ("day", 86_400_000_000),
    ("h", 3_600_000_000),
    ("hour", 3_600_000_000),
    ("min", 60_000_000),
    ("m", 60_000_000),
    ("minute", 60_000_000),
    ("s", 1_000_000),
    ("sec", 1_000_000),
    ("second", 1_000_000),
    ("ms", 1_000),
    ("milli", 1_000),
    ("millisecond", 1_000),
    ("us", 1),
    ("µs", 1),
    ("micro", 1),
    ("microsecond", 1),
    // Nanoseconds are accepted when they come to whole microseconds (see `parse_duration`).
    ("ns", 0),
    ("nano", 0),
    ("nanosecond", 0),
];

/// Bytes per size unit label.
const SIZE_UNITS: [(&str, u64); 23] = [
    ("b", 1),
    ("byte", 1),
    ("bytes", 1),
    ("k", 1 << 10),
    ("kb", 1 << 10),
    ("kib", 1 << 10),
    ("kibibyte", 1 << 10),
    ("kibibytes", 1 << 10),
    ("m", 1 << 20),
    ("mb", 1 << 20),
    ("mib", 1 << 20),
    ("mebibyte", 1 << 20),
    ("mebibytes", 1 << 20),
    ("g", 1 << 30),
    ("gb", 1 << 30),
    ("gib", 1 << 30),
    ("gibibyte", 1 << 30),
    ("gibibytes", 1 << 30),
    ("t", 1 << 40),
    ("tb", 1 << 40),
    ("tib", 1 << 40),
    ("tebibyte", 1 << 40),
    ("tebibytes", 1 << 40),
];

/// The units [`format_size`] prints, largest first; each is also in [`SIZE_UNITS`].
const SIZE_PRINT_UNITS: [(&str, u64); 4] = [("tb", 1 << 40), ("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)];

/// Parses a duration such as `10 s`, `100ms`, `5 min`, `1h`, `2 d` or `500 us`; a bare number is
/// milliseconds. Fractions and negative numbers are refused, as Flink refuses them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text)?;
    if unit.is_empty() {
        return checked_product(number, 1_000).map(Duration::from_micros);
    }
    let micros_per_unit = lookup_unit(&DURATION_UNITS, &unit, true)
        .ok_or_else(|| format!("unknown time unit `{unit}` (use d, h, min, s, ms or us)"))?;
    if micros_per_unit == 0 {
        if number % 1_000 != 0 {
            return Err(format!("{number} ns is not a whole number of microseconds"));
        }
        return Ok(Duration::from_micros(number / 1_000));
    }
    checked_product(number, micros_per_unit).map(Duration::from_micros)
}

/// Parses a memory size such as `32kb`, `32 kib`, `1 mb`, `128m` or `1 gb`; a bare number is bytes.
/// Units are binary multiples (`kb` = 1024 bytes), as Flink's `MemorySize`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text)?;
    if unit.is_empty() {
        return Ok(number);
    }
    let bytes_per_unit = lookup_unit(&SIZE_UNITS, &unit, false)
        .ok_or_else(|| format!("unknown size unit `{unit}` (use bytes, kb, mb, gb or tb)"))?;
    checked_product(number, bytes_per_unit)
}

/// Prints a size in the largest unit that divides it (`32 kb`, `128 mb`, `100 bytes`), as Flink
/// prints a `MemorySize`; [`parse_size`] reads it back.
pub fn format_size(bytes: u64) -> String {
    for (name, size) in SIZE_PRINT_UNITS {
        if bytes != 0 && bytes.is_multiple_of(size) {
            return format!("{} {name}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// Parses `true` or `false`, in any case.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("neither `true` nor `false`".to_string()),
    }
}

/// Splits `text` into its leading whole number and the lowercased unit label after it.
fn split_number(text: &str) -> Result<(u64, String), String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the text is empty".to_string());
    }
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, rest) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err("the text does not start with a whole number".to_string());
    }
    let number = digits.parse::<u64>().map_err(|_| format!("{digits} does not fit in 64 bits"))?;
    Ok((number, rest.trim().to_lowercase()))
}

/// The multiplier of `unit`; with `plurals`, also the unit plus a trailing `s` for long labels.
fn lookup_unit(units: &[(&str, u64)], unit: &str, plurals: bool) -> Option<u64> {
    let singular = match unit.strip_suffix('s') {
        Some(stem) if plurals && stem.chars().count() > 2 => stem,
        _ => unit,
    };
    units.iter().find(|(label, _)| *label == unit || *label == singular).map(|(_, multiplier)| *multiplier)
}

fn checked_product(number: u64, multiplier: u64) -> Result<u64, String> {
    number.checked_mul(multiplier).ok_or_else(|| format!("{number} times {multiplier} does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(millis: u64) -> Result<Duration, String> {
        Ok(Duration::from_millis(millis))
    }

    #[test]
    fn every_duration_unit_form_parses() {
        assert_eq!(parse_duration("10 s"), ms(10_000));
        assert_eq!(parse_duration("10s"), ms(10_000));
        assert_eq!(parse_duration("100ms"), ms(100));
        assert_eq!(parse_duration("100 ms"), ms(100));
        assert_eq!(parse_duration("1 min"), ms(60_000));
        assert_eq!(parse_duration("5 min"), ms(300_000));
        assert_eq!(parse_duration("5m"), ms(300_000));
        assert_eq!(parse_duration("1h"), ms(3_600_000));
        assert_eq!(parse_duration("2 d"), ms(172_800_000));
        assert_eq!(parse_duration("500 us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("500 µs"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("3000 ns"), Ok(Duration::from_micros(3)));
    }

    #[test]
    fn a_bare_number_is_milliseconds() {
        assert_eq!(parse_duration("1500"), ms(1_500));
        assert_eq!(parse_duration("  0 "), ms(0));
    }

    #[test]
    fn duration_units_are_case_insensitive_and_have_long_forms() {
        assert_eq!(parse_duration("10 S"), ms(10_000));
        assert_eq!(parse_duration("100 MS"), ms(100));
        assert_eq!(parse_duration("10 seconds"), ms(10_000));
        assert_eq!(parse_duration("1 second"), ms(1_000));
        assert_eq!(parse_duration("10 secs"), ms(10_000));
        assert_eq!(parse_duration("100 milliseconds"), ms(100));
        assert_eq!(parse_duration("100 millis"), ms(100));
        assert_eq!(parse_duration("3 Minutes"), ms(180_000));
        assert_eq!(parse_duration("2 hours"), ms(7_200_000));
        assert_eq!(parse_duration("1 day"), ms(86_400_000));
        assert_eq!(parse_duration("7 micros"), Ok(Duration::from_micros(7)));
    }

    #[test]
    fn malformed_durations_are_refused_with_a_reason() {
        for text in ["", "ten", "s", "-1 s", "1.5 s", "10 sx", "10 ss", "1500 ns"] {
            assert!(parse_duration(text).is_err(), "{text:?} parsed");
        }
        assert!(parse_duration("99999999999999999999 s").is_err());
        assert!(parse_duration("18446744073709551615 d").is_err());
        let reason = parse_duration("10 fortnights").unwrap_err();
        assert!(reason.contains("fortnights"), "{reason}");
    }

    #[test]
    fn every_size_unit_form_parses_as_binary_multiples() {
        assert_eq!(parse_size("32kb"), Ok(32 * 1024));
        assert_eq!(parse_size("32 kb"), Ok(32 * 1024));
        assert_eq!(parse_size("32 kib"), Ok(32 * 1024));
        assert_eq!(parse_size("32 KB"), Ok(32 * 1024));
        assert_eq!(parse_size("32k"), Ok(32 * 1024));
        assert_eq!(parse_size("1 mb"), Ok(1 << 20));
        assert_eq!(parse_size("128m"), Ok(128 << 20));
        assert_eq!(parse_size("2 mebibytes"), Ok(2 << 20));
        assert_eq!(parse_size("1 gb"), Ok(1 << 30));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1 tb"), Ok(1 << 40));
        assert_eq!(parse_size("100 bytes"), Ok(100));
        assert_eq!(parse_size("100b"), Ok(100));
        assert_eq!(parse_size("4096"), Ok(4096));
    }

    #[test]
    fn malformed_sizes_are_refused() {
        for text in ["", "big", "mb", "-1 kb", "1.5 mb", "1 kilo", "1 pb", "16777216 tb"] {
            assert!(parse_size(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn sizes_print_in_the_largest_whole_unit() {
        assert_eq!(format_size(32 * 1024), "32 kb");
        assert_eq!(format_size(128 << 20), "128 mb");
        assert_eq!(format_size(3 << 30), "3 gb");
        assert_eq!(format_size(1 << 40), "1 tb");
        assert_eq!(format_size(1536), "1536 bytes");
        assert_eq!(format_size(0), "0 bytes");
    }

    #[test]
    fn booleans_parse_in_any_case() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool(" False "), Ok(false));
        assert!(parse_bool("yes").is_err());
        assert!(parse_bool("1").is_err());
    }

    proptest! {
        #[test]
        fn a_printed_duration_parses_back_to_itself(micros in any::<u64>(), unit in 0usize..6) {
            // Bias half the cases towards whole units so every printed unit is exercised.
            let scale = [1, 1_000, 1_000_000, 60_000_000, 3_600_000_000, 86_400_000_000][unit];
            let whole_units = Duration::from_micros(micros / scale * scale);
            for span in [Duration::from_micros(micros), whole_units] {
                prop_assert_eq!(parse_duration(&span.to_string()), Ok(span));
            }
        }

        #[test]
        fn a_printed_size_parses_back_to_itself(bytes in any::<u64>(), shift in 0u32..41) {
            for size in [bytes, (bytes >> shift) << shift] {
                prop_assert_eq!(parse_size(&format_size(size)), Ok(size));
            }
        }
    }
}
