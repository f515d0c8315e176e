//! `--report-tap`: TAP version 13, one test point per scenario, readable by `prove` and other TAP
//! consumers. A scenario that did not pass gets a YAML block under its `not ok` line: the
//! status, the diagnostic's first line, how long it ran, and the diagnostic and output in full.
//!
//! The YAML is the subset Perl's TAP::Parser reads (`YAMLish`): `|` block scalars with every
//! line indented (even blank ones, or the block ends there), and double-quoted strings using
//! the escapes it knows (`\" \\ \n \t \r \xHH`) for every control character. A strict YAML
//! parser rejects the noncharacters (U+FFFE, U+FFFF, …) as they are, so they and the bidi
//! overrides are written as YAML's `\uHHHH` and `\UHHHHHHHH`, which YAMLish leaves as text.
//! Nothing unsafe for a terminal is left in the stream as it is (see [`crate::escape`]).

use std::fmt::Write as _;
use std::time::Duration;

use crate::escape;
use crate::outcome::{Outcome, Status};

/// The run as a TAP 13 stream.
/// `--report-tap`.
pub const FORMAT: super::Format = super::Format {
    name: "tap",
    flag: "--report-tap",
    render: super::Render::Run(render),
    suite: true,
    whole_payloads: false,
};

pub fn render(outcomes: &[Outcome], elapsed: Duration) -> String {
    let mut out = format!("TAP version 13\n1..{}\n", outcomes.len());
    for (i, o) in outcomes.iter().enumerate() {
        let verdict = if o.status == Status::Passed {
            "ok"
        } else {
            "not ok"
        };
        let _ = writeln!(out, "{verdict} {} - {}", i + 1, description(&o.name));
        if o.status != Status::Passed {
            yaml_block(&mut out, o);
        }
    }
    let _ = writeln!(
        out,
        "# {} scenarios in {:.2}s",
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    out
}

fn yaml_block(out: &mut String, o: &Outcome) {
    out.push_str("  ---\n");
    let _ = writeln!(out, "  status: {}", super::json::status_name(o.status));
    match &o.diagnostic {
        Some(d) => {
            let first = d.message.lines().next().unwrap_or_default();
            let _ = writeln!(out, "  code: {}", quoted(d.code.as_str()));
            let _ = writeln!(out, "  message: {}", quoted(first));
            if let Some(line) = d.line {
                let _ = writeln!(out, "  line: {line}");
            }
        }
        None => {
            let _ = writeln!(out, "  message: {}", super::json::status_name(o.status));
        }
    }
    let _ = writeln!(out, "  duration_ms: {}", o.duration.as_millis());
    if o.attempts > 1 {
        let _ = writeln!(out, "  attempts: {}", o.attempts);
    }
    if let Some(d) = &o.diagnostic {
        // The first line's margin would set the block's indentation deeper than the lines
        // after it (the gutter is narrower): start the block at the `×`.
        text_field(out, "diagnostic", d.render(false).trim_start());
    }
    if !o.stdout.is_empty() {
        text_field(out, "stdout", &o.stdout);
    }
    out.push_str("  ...\n");
}

/// Multi-line text as a `|` block scalar, which keeps it readable in the file. A block cannot
/// hold escapes, and its first line sets its indentation, so text that starts with a space or
/// holds a control character, a noncharacter or a bidi override is written as one quoted line
/// instead.
fn text_field(out: &mut String, key: &str, text: &str) {
    let text = text.trim_end_matches('\n');
    let blockable = !text.starts_with([' ', '\t'])
        && !text.is_empty()
        && !text.chars().any(|c| escape::is_unsafe(c) && c != '\n');
    if !blockable {
        let _ = writeln!(out, "  {key}: {}", quoted(text));
        return;
    }
    let _ = writeln!(out, "  {key}: |");
    for line in text.split('\n') {
        let _ = writeln!(out, "    {line}");
    }
}

/// A YAML double-quoted scalar.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Every other control character is below U+00A0, so two hex digits hold it.
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if escape::is_unsafe(c) && u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c if escape::is_unsafe(c) => {
                let _ = write!(out, "\\U{:08X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A test point's description: `#` would start a directive (`# SKIP`), so it is escaped, and so
/// is TAP's escape character; a newline, which would end the line, and every other control
/// character are shown as escapes first.
fn description(name: &str) -> String {
    escape::line(name).replace('\\', "\\\\").replace('#', "\\#")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::{Code, Diag};
    use crate::net::ErrorKind;

    fn outcome(name: &str, status: Status, diagnostic: Option<Diag>) -> Outcome {
        Outcome::for_test(name, status, diagnostic, Duration::from_millis(12))
    }

    fn sample() -> Vec<Outcome> {
        let mut passed = outcome("greeting.rhai", Status::Passed, None);
        passed.stdout = "not shown for a pass\n".into();
        let diag = Diag {
            code: Code::Assertion,
            message: "assert_eq failed: \"a\" != \"b\"".into(),
            file: "bad.rhai".into(),
            source: "let x = 1;\nassert_eq(x, 2);\n".into(),
            labels: vec![(11, 9, "this assertion failed".into())],
            help: Some(" left: 1\nright: 2".into()),
            line: Some(2),
            on: Default::default(),
            more: Vec::new(),
            failed_in_module: false,
        };
        let mut failed = outcome("bad #1.rhai", Status::Failed, Some(diag));
        failed.stdout = "before\n\x01after\n".into();
        let errored = outcome(
            "refused.rhai",
            Status::Errored,
            Some(Diag::plain(
                ErrorKind::ConnectionRefused,
                "connect failed",
                "refused.rhai",
            )),
        );
        let mut broken = outcome("broken.rhai", Status::CompileError, None);
        broken.attempts = 2;
        vec![passed, failed, errored, broken]
    }

    #[test]
    fn renders_tap_13_with_yaml_for_what_did_not_pass() {
        let tap = render(&sample(), Duration::from_millis(1500));
        // The blank lines inside the blocks carry four spaces: TAP::Parser ends a block at a
        // line without them.
        let expected = r#"TAP version 13
1..4
ok 1 - greeting.rhai
not ok 2 - bad \#1.rhai
  ---
  status: failed
  code: "assertion"
  message: "assert_eq failed: \"a\" != \"b\""
  line: 2
  duration_ms: 12
  diagnostic: |
    × assert_eq failed: "a" != "b"
       ╭─[bad.rhai:2:1]
     1 │ let x = 1;
     2 │ assert_eq(x, 2);
       · ────┬────
       ·     ╰── this assertion failed
       ╰────
      help:  left: 1
            right: 2
  stdout: "before\n\x01after"
  ...
not ok 3 - refused.rhai
  ---
  status: errored
  code: "connection_refused"
  message: "connect failed"
  duration_ms: 12
  diagnostic: |
    × connect failed
  ...
not ok 4 - broken.rhai
  ---
  status: compile_error
  message: compile_error
  duration_ms: 12
  attempts: 2
  ...
# 4 scenarios in 1.50s
"#;
        assert_eq!(tap, expected);
    }

    #[test]
    fn an_empty_run_plans_nothing() {
        assert_eq!(
            render(&[], Duration::ZERO),
            "TAP version 13\n1..0\n# 0 scenarios in 0.00s\n"
        );
    }

    #[test]
    fn text_that_a_block_cannot_hold_is_quoted() {
        let mut out = String::new();
        text_field(&mut out, "stdout", "  indented\nnext\n");
        text_field(&mut out, "stdout", "bell\x07 \u{85}\\");
        text_field(&mut out, "stdout", "two\nlines\n\n");
        text_field(&mut out, "stdout", "odd\u{fffe}\u{202e}\u{1ffff}\nend");
        assert_eq!(
            out,
            "  stdout: \"  indented\\nnext\"\n  stdout: \"bell\\x07 \\x85\\\\\"\n  \
             stdout: |\n    two\n    lines\n  \
             stdout: \"odd\\uFFFE\\u202E\\U0001FFFF\\nend\"\n"
        );
    }

    #[test]
    fn descriptions_show_control_characters_escaped() {
        assert_eq!(
            description("a\x1b[2J #1\n\u{202e}.rhai"),
            "a\\\\x1b[2J \\#1\\\\n\\\\u{202e}.rhai"
        );
    }
}
