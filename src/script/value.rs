//! Script values that need interpreting: durations (`250`, `"250ms"`, `"2s"`, and `"none"`
//! where a deadline may be lifted) and `--var` values.

use std::time::Duration;

use rhai::{Dynamic, INT};

use super::error::{script_error, ScriptResult};
use crate::net::{ErrorKind, NO_DEADLINE};

/// How scripts and the command line spell "no deadline".
pub const NONE: &str = "none";

/// A duration as scripts write it: integer milliseconds, or a string with a unit.
pub fn duration(op: &str, value: &Dynamic) -> ScriptResult<Duration> {
    if let Ok(ms) = value.as_int() {
        return duration_ms(op, ms);
    }
    if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        if text.trim() == NONE {
            return Err(script_error(
                ErrorKind::InvalidArgument,
                op,
                format!(
                    "{op}: `\"none\"` (no deadline) is only for `--timeout`, `--max-time` and a \
                     handle's `timeout`; give {op} a duration"
                ),
            ));
        }
        return parse_duration(&text)
            .map_err(|why| script_error(ErrorKind::InvalidArgument, op, why));
    }
    Err(script_error(
        ErrorKind::InvalidArgument,
        op,
        format!(
            "{op}: a duration is milliseconds (`250`) or a string with a unit (`\"2s\"`), not {}",
            value.type_name()
        ),
    ))
}

/// A handle's deadline: a duration, or `"none"` for no deadline.
pub fn deadline(op: &str, value: &Dynamic) -> ScriptResult<Duration> {
    match value.read_lock::<rhai::ImmutableString>() {
        Some(text) if text.trim() == NONE => Ok(NO_DEADLINE),
        _ => duration(op, value),
    }
}

/// A handle's deadline as its `timeout` property shows it: milliseconds, `"none"`, or `()`
/// when the handle has none of its own.
pub fn deadline_value(d: Option<Duration>) -> Dynamic {
    match d {
        None => Dynamic::UNIT,
        Some(NO_DEADLINE) => NONE.into(),
        Some(d) => INT::try_from(d.as_millis()).unwrap_or(INT::MAX).into(),
    }
}

/// `--timeout` and `--max-time`: a duration, or `none`.
pub fn parse_deadline(text: &str) -> Result<Duration, String> {
    if text.trim() == NONE {
        return Ok(NO_DEADLINE);
    }
    parse_duration(text)
}

pub fn duration_ms(op: &str, ms: INT) -> ScriptResult<Duration> {
    u64::try_from(ms).map(Duration::from_millis).map_err(|_| {
        script_error(
            ErrorKind::InvalidArgument,
            op,
            format!("{op}: a duration cannot be negative ({ms})"),
        )
    })
}

/// `250ms`, `2s`, `1m`, `1m 30s`; a bare number is milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime::parse_duration(text)
        .map_err(|_| format!("`{text}` is not a duration: write `250ms`, `2s` or `1m`"))
}

/// A `--var` value: an integer or bool where it parses as one, else a string. Only an
/// integer written the way it prints counts, so `007` or `+1` stay the strings they spell (a
/// PIN, a zip code, an id would lose their digits otherwise).
pub fn parse_var(value: &str) -> Dynamic {
    if let Ok(n) = value.parse::<INT>() {
        if n.to_string() == value {
            return n.into();
        }
    }
    match value {
        "true" => true.into(),
        "false" => false.into(),
        _ => value.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("100"), Ok(Duration::from_millis(100)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("none").is_err());
        assert_eq!(parse_deadline("none"), Ok(NO_DEADLINE));
        assert_eq!(parse_deadline("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn none_is_a_deadline_and_no_duration() {
        let none = Dynamic::from("none");
        assert_eq!(deadline("timeout", &none).ok(), Some(NO_DEADLINE));
        assert!(duration("within", &none).is_err());
        assert_eq!(deadline_value(Some(NO_DEADLINE)).to_string(), "none");
        assert_eq!(
            deadline_value(Some(Duration::from_millis(250))).as_int(),
            Ok(250)
        );
        assert!(deadline_value(None).is_unit());
    }

    #[test]
    fn vars_take_the_type_they_spell() {
        assert_eq!(parse_var("6379").as_int(), Ok(6379));
        assert_eq!(parse_var("-12").as_int(), Ok(-12));
        assert_eq!(parse_var("0").as_int(), Ok(0));
        assert_eq!(parse_var("true").as_bool(), Ok(true));
        for spelled in ["08080", "007", "+1", "-0", " 5"] {
            assert_eq!(
                parse_var(spelled).into_string().ok().as_deref(),
                Some(spelled)
            );
        }
        assert_eq!(
            parse_var("127.0.0.1").into_string().ok().as_deref(),
            Some("127.0.0.1")
        );
    }
}
