//! What test mode prints on stderr: a line per scenario as it ends, then the failures with
//! their diagnostics and captured output, then the summary. Names and captured output are
//! escaped here (diagnostics and transcript events escape their own parts): nothing a script
//! printed or a file is called reaches the terminal as control characters.

use std::fmt::Write as _;
use std::time::Duration;

use crate::escape;
use crate::outcome::{Outcome, Status};
use crate::transcript::render_event;

/// `echo.rhai: ok (3 connections, 12 ms)`.
pub fn status_line(o: &Outcome) -> String {
    let conns = match o.connections {
        1 => "1 connection".to_owned(),
        n => format!("{n} connections"),
    };
    let retried = match o.attempts {
        0 | 1 => String::new(),
        n => format!(", {n} attempts"),
    };
    format!(
        "{}: {} ({conns}, {} ms{retried})\n",
        escape::line(&o.name),
        o.status.as_str(),
        o.duration.as_millis()
    )
}

/// The transcript of one scenario, for `--trace` in test mode.
pub fn transcript(o: &Outcome) -> String {
    let mut out = String::new();
    for event in &o.transcript {
        let _ = writeln!(out, "  {}", render_event(event).replace('\n', "\n  "));
    }
    if !o.dropped.is_empty() {
        let _ = writeln!(out, "  {}", o.dropped.describe());
    }
    out
}

/// The failures in full, then the counts; the last line is `N passed, N failed`.
pub fn summary(outcomes: &[Outcome], elapsed: Duration, color: bool) -> String {
    let mut out = String::new();
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status != Status::Passed)
        .collect();
    if !failed.is_empty() {
        out.push_str("\nfailures:\n");
    }
    for o in &failed {
        let _ = writeln!(out, "\n---- {} ----", escape::line(&o.name));
        if let Some(d) = &o.diagnostic {
            out.push_str(&d.render(color));
        }
        if !o.stdout.is_empty() {
            let _ = writeln!(out, "output:");
            for line in o.stdout.lines() {
                let _ = writeln!(out, "  | {}", escape::text(line));
            }
        }
    }
    let passed = outcomes.len() - failed.len();
    let _ = writeln!(
        out,
        "\n{} scenarios in {:.2}s",
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(out, "{passed} passed, {} failed", failed.len());
    out
}
