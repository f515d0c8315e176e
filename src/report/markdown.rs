//! `--report-markdown`: a summary for a CI job's page (`cat FILE >> "$GITHUB_STEP_SUMMARY"`;
//! the same file renders in GitLab). A table of the scenarios (status, duration), then for each
//! one that did not pass a Mermaid `sequenceDiagram` of its conversation up to the failure
//! (drawn from [`super::sequence`]) and its diagnostic as the terminal shows it, without colour.
//!
//! Everything a peer or a script controls (scenario names, task names, addresses, payloads,
//! messages) is escaped for where it lands: Markdown text gets backslash escapes, Mermaid text
//! gets entity codes (`#59;`) for every character that is not plainly safe, so no name or
//! payload can end the diagram, start a Mermaid statement or comment, or inject HTML. Lanes
//! are `participant L0 as …`: a safe id with the label as its alias. A diagram shows at most
//! [`MAX_STEPS`] steps, the last ones before the failure, and says how many it left out; the
//! first [`MAX_SECTIONS`] scenarios that did not pass are shown in full, so a summary stays
//! within what GitHub takes (1 MiB a step).

use std::fmt::Write as _;
use std::time::Duration;

use super::sequence::{Lane, LaneId, LaneKind, Sequence, Step, StepKind};
use crate::escape;
use crate::outcome::{Outcome, Status};

/// `--report-markdown`.
pub const FORMAT: super::Format = super::Format {
    name: "markdown",
    flag: "--report-markdown",
    render: super::Render::Run(render),
    suite: false,
    whole_payloads: false,
};

/// The most steps one diagram shows: a larger one is slow to lay out and hard to read on a CI
/// page. The last ones before the failure are shown.
pub const MAX_STEPS: usize = 40;
/// The most scenarios shown in full (diagram, diagnostic, output): GitHub takes at most 1 MiB
/// of a step's summary, and a page of a hundred diagrams helps nobody. The table lists all.
pub const MAX_SECTIONS: usize = 20;
/// The most lines of a scenario's captured output shown: its last ones.
const OUTPUT_LINES: usize = 40;
/// How many characters of a payload an arrow shows.
const PAYLOAD_CHARS: usize = 40;

pub fn render(outcomes: &[Outcome], elapsed: Duration) -> String {
    let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
    let passed = count(Status::Passed);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## sockscript: {passed} passed, {} not passed ({} scenarios in {:.2} s)\n",
        outcomes.len() - passed,
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    out.push_str("| Scenario | Status | Duration |\n|---|---|---:|\n");
    for o in outcomes {
        let retried = match o.attempts {
            0 | 1 => String::new(),
            n => format!(" ({n} attempts)"),
        };
        let _ = writeln!(
            out,
            "| {} | {}{retried} | {} ms |",
            text(&o.name),
            status(o.status),
            o.duration.as_millis()
        );
    }
    let not_passed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status != Status::Passed)
        .collect();
    for o in not_passed.iter().take(MAX_SECTIONS) {
        let _ = write!(out, "\n### {}: {}\n\n", text(&o.name), status(o.status));
        let seq = Sequence::of(o);
        if !o.transcript.is_empty() {
            out.push_str(&diagram(o, &seq));
            out.push('\n');
        }
        if let Some(diag) = &o.diagnostic {
            out.push_str(&fenced(&diag.render(false)));
        }
        if !o.stdout.is_empty() {
            let lines: Vec<&str> = o.stdout.lines().collect();
            let skip = lines.len().saturating_sub(OUTPUT_LINES);
            if skip > 0 {
                let _ = write!(
                    out,
                    "\nOutput (its last {OUTPUT_LINES} lines of {}):\n\n",
                    lines.len()
                );
            } else {
                out.push_str("\nOutput:\n\n");
            }
            let tail: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
            out.push_str(&fenced(&escape::text(&tail)));
        }
        if !o.dropped.is_empty() {
            let _ = writeln!(out, "\n{}", text(&o.dropped.describe()));
        }
    }
    if not_passed.len() > MAX_SECTIONS {
        let _ = writeln!(
            out,
            "\n{} more scenarios did not pass: their diagnostics are in the run's output.",
            not_passed.len() - MAX_SECTIONS
        );
    }
    out
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Passed => "✅ passed",
        Status::Failed => "❌ failed",
        Status::Errored => "💥 errored",
        Status::CompileError => "🚫 does not compile",
    }
}

/// The scenario's conversation as a Mermaid diagram in a ```` ```mermaid ```` block: the last
/// [`MAX_STEPS`] steps up to and with the failure.
pub fn diagram(o: &Outcome, seq: &Sequence) -> String {
    let end = seq.failure.map_or(seq.steps.len(), |f| f + 1);
    let start = end.saturating_sub(MAX_STEPS);
    let shown = &seq.steps[start..end];
    let mut used: Vec<LaneId> = shown
        .iter()
        .flat_map(|s| std::iter::once(s.lane).chain(s.to))
        .collect();
    used.sort_unstable();
    used.dedup();
    let mut out = String::from("```mermaid\nsequenceDiagram\n");
    for &id in &used {
        let lane: &Lane = &seq.lanes[id];
        let _ = writeln!(out, "    participant L{id} as {}", mermaid(&lane.title()));
    }
    let (first, last) = (used.first(), used.last());
    let over_all = match (first, last) {
        (Some(a), Some(b)) if a != b => format!("L{a},L{b}"),
        (Some(a), _) => format!("L{a}"),
        _ => String::new(),
    };
    if start > 0 && !over_all.is_empty() {
        let _ = writeln!(
            out,
            "    Note over {over_all}: {} earlier steps not shown",
            start
        );
    }
    for step in shown {
        // The failure on a red ground.
        let failure = step.kind == StepKind::Failure;
        if failure {
            out.push_str("    rect rgb(255, 220, 220)\n    ");
        }
        out.push_str("    ");
        out.push_str(&step_line(o, seq, step));
        out.push('\n');
        if failure {
            out.push_str("    end\n");
        }
    }
    if end < seq.steps.len() && !over_all.is_empty() {
        let _ = writeln!(
            out,
            "    Note over {over_all}: {} later steps not shown",
            seq.steps.len() - end
        );
    }
    out.push_str("```\n");
    out
}

/// One step as a Mermaid statement.
fn step_line(o: &Outcome, seq: &Sequence, step: &Step) -> String {
    let event = step.event.map(|i| &o.transcript[i]);
    let note = event.and_then(|e| e.note.as_deref());
    let lane = step.lane;
    match (step.kind, step.to) {
        (StepKind::Message, Some(to)) => {
            // The payload as sent, else as received.
            let data = event
                .or_else(|| step.recv.first().map(|&i| &o.transcript[i]))
                .map(|e| &e.data[..])
                .unwrap_or_default();
            // The scenario holds the receiving end, and nothing of it was read there.
            let held = seq.lanes[to].kind != LaneKind::Peer;
            let lost = if step.recv.is_empty() && step.event.is_some() && held {
                " (not received)"
            } else {
                ""
            };
            format!(
                "L{lane}->>L{to}: {}{}",
                mermaid(&payload(data, step.len)),
                mermaid(lost)
            )
        }
        (StepKind::Connect, Some(to)) => format!("L{lane}-->>L{to}: connect"),
        (StepKind::Failure, to) => {
            let message = o
                .diagnostic
                .as_ref()
                .map_or("failed".to_owned(), |d| d.message.clone());
            let text = mermaid(&format!("FAILED: {}", first_line(&message)));
            match to {
                Some(to) => format!("L{lane}-xL{to}: {text}"),
                None => format!("Note over L{lane}: {text}"),
            }
        }
        (StepKind::Error, Some(to)) => {
            let text = mermaid(&format!("error: {}", first_line(note.unwrap_or(""))));
            format!("L{lane}-xL{to}: {text}")
        }
        (kind, _) => {
            let mut text = kind.as_str().to_owned();
            if let Some(note) = note {
                text.push_str(": ");
                text.push_str(first_line(note));
            }
            format!("Note over L{lane}: {}", mermaid(&text))
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// A payload's first characters, as text in quotes when it is UTF-8, else as hex; and its
/// length.
fn payload(data: &[u8], len: usize) -> String {
    let shown = match std::str::from_utf8(data) {
        Ok(text) => {
            let mut cut: String = text.chars().take(PAYLOAD_CHARS).collect();
            let more = cut.len() < text.len() || data.len() < len;
            cut = escape::line(&cut).into_owned();
            format!("\"{cut}\"{}", if more { "…" } else { "" })
        }
        Err(_) => {
            let n = data.len().min(PAYLOAD_CHARS / 3);
            let hex: Vec<String> = data[..n].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}{}", hex.join(" "), if n < len { " …" } else { "" })
        }
    };
    let bytes = if len == 1 { "byte" } else { "bytes" };
    format!("{shown} ({len} {bytes})")
}

/// Text for Mermaid: each character that is not plainly safe as an entity code (`#59;`), so no
/// text ends a statement (`;`, newline), starts a comment (`%%`) or an entity of its own
/// (`#`), ends the fenced block (a backtick), makes HTML (`<`, `&`) or is read as a keyword's
/// punctuation. Control characters were escaped visibly first ([`escape::line`]).
pub fn mermaid(s: &str) -> String {
    let s = escape::line(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | ',' | '_' | '/' | '(' | ')' | '?') {
            out.push(c);
        } else {
            let _ = write!(out, "#{};", u32::from(c));
        }
    }
    out
}

/// Text for Markdown (a table cell, a heading): control characters escaped visibly, ASCII
/// punctuation behind a backslash (CommonMark lets any of it be escaped so), and `<`, `>`,
/// `&` as entities besides, so no text makes HTML, a link, a code span or a table column.
pub fn text(s: &str) -> String {
    let s = escape::line(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c if c.is_ascii_punctuation() => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text in a fenced code block, its fence longer than any run of backticks in it.
fn fenced(body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest.max(2) + 1);
    let mut out = format!("{fence}text\n{body}");
    if !body.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Diag;
    use crate::net::ErrorKind;
    use crate::transcript::{Event, EventKind};

    #[test]
    fn mermaid_text_holds_nothing_it_would_obey() {
        assert_eq!(mermaid("127.0.0.1:80"), "127.0.0.1#58;80");
        assert_eq!(
            mermaid("a;b#c%%d`e<f\ng"),
            "a#59;b#35;c#37;#37;d#96;e#60;f#92;ng"
        );
        assert_eq!(mermaid("end"), "end");
        assert_eq!(mermaid("é·"), "#233;#183;");
    }

    #[test]
    fn markdown_text_makes_no_markup() {
        assert_eq!(text("a|b"), "a\\|b");
        assert_eq!(text("`x` <b>"), "\\`x\\` &lt;b&gt;");
        assert_eq!(text("[l](u)"), "\\[l\\]\\(u\\)");
        assert_eq!(text("a\nb"), "a\\\\nb");
    }

    #[test]
    fn fences_outgrow_the_backticks_inside() {
        assert_eq!(fenced("a\n"), "```text\na\n```\n");
        assert_eq!(fenced("a ```` b"), "`````text\na ```` b\n`````\n");
    }

    #[test]
    fn renders_a_table_and_the_diagram_of_a_failure() {
        let (me, svc) = ("127.0.0.1:5000", "192.0.2.1:25");
        let mut diag = Diag::plain(ErrorKind::Timeout, "recv timed out", "b|d.rhai");
        diag.on.conn = Some(1);
        let mut timeout = Event::for_test(9, EventKind::Error, me, svc, b"");
        timeout.note = Some("recv timed out".into());
        let failed = Outcome {
            transcript: vec![
                Event::for_test(1, EventKind::Connect, me, svc, b""),
                Event::for_test(2, EventKind::Recv, me, svc, b"220 ready; go\r\n"),
                Event::for_test(3, EventKind::Send, me, svc, b"\xff\x00"),
                timeout,
            ],
            ..Outcome::for_test(
                "b|d.rhai",
                Status::Errored,
                Some(diag),
                Duration::from_millis(12),
            )
        };
        let passed = Outcome::for_test("ok.rhai", Status::Passed, None, Duration::from_millis(3));
        let shown = render(&[passed, failed], Duration::from_millis(1500));
        let expected = "\
## sockscript: 1 passed, 1 not passed (2 scenarios in 1.50 s)

| Scenario | Status | Duration |
|---|---|---:|
| ok\\.rhai | ✅ passed | 3 ms |
| b\\|d\\.rhai | 💥 errored | 12 ms |

### b\\|d\\.rhai: 💥 errored

```mermaid
sequenceDiagram
    participant L0 as main #183; 127.0.0.1#58;5000 (tcp#35;1)
    participant L1 as peer 192.0.2.1#58;25
    L0-->>L1: connect
    L1->>L0: #34;220 ready#59; go#92;r#92;n#34; (15 bytes)
    L0->>L1: ff 00 (2 bytes)
    rect rgb(255, 220, 220)
        Note over L0: FAILED#58; recv timed out
    end
```
";
        assert!(shown.starts_with(expected), "{shown}");
        assert!(
            shown.ends_with("```text\n  × recv timed out\n```\n"),
            "{shown}"
        );
    }

    #[test]
    fn a_big_failing_suite_shows_the_first_failures_in_full_and_counts_the_rest() {
        let outcomes: Vec<Outcome> = (0..MAX_SECTIONS + 5)
            .map(|n| Outcome {
                stdout: (0..50).map(|l| format!("line {l}\n")).collect(),
                ..Outcome::for_test(&format!("s{n}.rhai"), Status::Failed, None, Duration::ZERO)
            })
            .collect();
        let shown = render(&outcomes, Duration::ZERO);
        assert_eq!(shown.matches("\n### ").count(), MAX_SECTIONS);
        assert_eq!(shown.matches(" | ❌ failed | ").count(), MAX_SECTIONS + 5);
        assert!(shown.ends_with(
            "\n5 more scenarios did not pass: their diagnostics are in the run's output.\n"
        ));
        assert!(shown.contains("Output (its last 40 lines of 50):\n\n```text\nline 10\n"));
        assert!(!shown.contains("line 9\n"));
    }

    #[test]
    fn payloads_show_as_text_or_hex_with_their_length() {
        assert_eq!(payload(b"hi\n", 3), "\"hi\\n\" (3 bytes)");
        assert_eq!(payload(b"\xff\x00", 2), "ff 00 (2 bytes)");
        assert_eq!(payload(b"x", 5000), "\"x\"… (5000 bytes)");
    }
}
