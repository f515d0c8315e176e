//! `--report-json`: every outcome in full, for tools. The summary counts, then one object per
//! scenario with its status, output, diagnostic (the same words as the terminal, without
//! colour) and its transcript, event by event. Field names are a contract: add, don't rename.
//!
//! Payload bytes are given twice: `data` as text when the preview is valid UTF-8 (else
//! `null`), and `data_hex` always, so binary traffic survives JSON's text-only strings. Each is
//! the payload's first KiB (an outcome keeps previews, so a suite's report stays small); each
//! scenario's `dropped` says how many bytes and events its transcript did not keep (past
//! `--limit capture`).
//! The README's "JSON report" section documents every field.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::diagnostic::Diag;
use crate::outcome::{Outcome, Status};
use crate::transcript::{Event, PREVIEW_BYTES};

/// The whole run as one pretty-printed JSON document, ending in a newline.
/// `--report-json`.
pub const FORMAT: super::Format = super::Format {
    name: "json",
    flag: "--report-json",
    render: super::Render::Run(render),
    suite: true,
    whole_payloads: false,
};

pub fn render(outcomes: &[Outcome], elapsed: Duration) -> String {
    let report = Report {
        summary: Summary::of(outcomes, elapsed),
        scenarios: outcomes.iter().map(scenario).collect(),
    };
    // Serializing plain structs of strings and numbers into a String cannot fail.
    let mut out = serde_json::to_string_pretty(&report).unwrap_or_default();
    out.push('\n');
    out
}

#[derive(Serialize)]
struct Report<'a> {
    summary: Summary,
    scenarios: Vec<Scenario<'a>>,
}

/// The counts of a run, as the JSON report and the HTML page's data give them.
#[derive(Serialize)]
pub(super) struct Summary {
    total: usize,
    passed: usize,
    failed: usize,
    errored: usize,
    compile_errors: usize,
    duration_ms: u64,
}

impl Summary {
    pub(super) fn of(outcomes: &[Outcome], elapsed: Duration) -> Summary {
        let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
        Summary {
            total: outcomes.len(),
            passed: count(Status::Passed),
            failed: count(Status::Failed),
            errored: count(Status::Errored),
            compile_errors: count(Status::CompileError),
            duration_ms: millis(elapsed),
        }
    }
}

#[derive(Serialize)]
struct Scenario<'a> {
    name: &'a str,
    status: &'static str,
    duration_ms: u64,
    connections: usize,
    /// More than 1 when `--retry` ran it again; the rest describes the last attempt.
    attempts: u32,
    stdout: &'a str,
    diagnostic: Option<Diagnostic<'a>>,
    transcript: Vec<Record<'a>>,
    dropped: Dropped,
}

/// What the transcript did not keep.
#[derive(Serialize)]
pub(super) struct Dropped {
    /// Payload bytes past `--limit capture` (their events keep a preview) and the payloads of
    /// events not kept.
    bytes: u64,
    /// Events past the most a transcript keeps.
    events: u64,
}

impl From<crate::transcript::Dropped> for Dropped {
    fn from(d: crate::transcript::Dropped) -> Dropped {
        Dropped {
            bytes: d.bytes,
            events: d.events,
        }
    }
}

/// A failure's diagnostic: its code, message and line, and `rendered` as the terminal shows
/// it, without colour (the HTML page's data gives the same).
#[derive(Serialize)]
pub(super) struct Diagnostic<'a> {
    code: &'a str,
    message: &'a str,
    line: Option<usize>,
    rendered: String,
}

impl<'a> From<&'a Diag> for Diagnostic<'a> {
    fn from(d: &'a Diag) -> Diagnostic<'a> {
        Diagnostic {
            code: d.code.as_str(),
            message: &d.message,
            line: d.line,
            rendered: d.render(false),
        }
    }
}

#[derive(Serialize)]
struct Record<'a> {
    /// Milliseconds since the scenario started, to the microsecond: events are often closer
    /// together than a millisecond and their order must stay readable.
    at_ms: f64,
    task: &'a str,
    kind: &'static str,
    /// The script line and column of the call that caused it (the scenario's file); `null`
    /// for an event no call caused.
    line: Option<u32>,
    column: Option<u32>,
    /// The connection id, shared by both ends when the scenario holds both; a UDP socket's
    /// own id; `null` for a listener's events and a failed connect.
    conn: Option<u32>,
    /// `out` (connect, send, shutdown) or `in` (accept, recv, eof), seen from `local`; `null`
    /// for the rest.
    dir: Option<&'static str>,
    /// `tcp`, `tls`, `unix`, `udp`, `process` or `ws` (a WebSocket message; its type in
    /// `note`).
    transport: Option<&'static str>,
    local: Option<&'a str>,
    peer: Option<&'a str>,
    /// The payload's full length; `data` and `data_hex` hold its first KiB.
    len: usize,
    data: Option<&'a str>,
    data_hex: String,
    note: Option<&'a str>,
}

fn scenario(o: &Outcome) -> Scenario<'_> {
    Scenario {
        name: &o.name,
        status: status_name(o.status),
        duration_ms: millis(o.duration),
        connections: o.connections,
        attempts: o.attempts,
        stdout: &o.stdout,
        diagnostic: o.diagnostic.as_ref().map(Diagnostic::from),
        transcript: o.transcript.iter().map(record).collect(),
        dropped: o.dropped.into(),
    }
}

fn record(e: &Event) -> Record<'_> {
    // A suite's outcomes keep previews, but a run that also writes a view of whole payloads
    // keeps them whole: this report says the same either way.
    let data = &e.data[..e.data.len().min(PREVIEW_BYTES)];
    Record {
        at_ms: e.at.as_micros() as f64 / 1000.0,
        task: &e.task,
        kind: e.kind.as_str(),
        line: e.position.map(|p| p.line),
        column: e.position.map(|p| p.column),
        conn: e.on.conn,
        dir: e.dir().map(|d| d.as_str()),
        transport: e.on.transport.map(|t| t.as_str()),
        local: e.local.as_deref(),
        peer: e.peer.as_deref(),
        len: e.len,
        data: std::str::from_utf8(data).ok(),
        data_hex: hex(data),
        note: e.note.as_deref(),
    }
}

/// The status as the JSON and TAP reports spell it.
pub(super) fn status_name(s: Status) -> &'static str {
    match s {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Errored => "errored",
        Status::CompileError => "compile_error",
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use serde_json::{json, Value};

    use super::*;
    use crate::diagnostic::{Code, Diag};
    use crate::net::ErrorKind;
    use crate::transcript::{EventKind, On, Transport};

    fn outcome(name: &str, status: Status, diagnostic: Option<Diag>) -> Outcome {
        Outcome {
            connections: 0,
            ..Outcome::for_test(name, status, diagnostic, Duration::from_millis(12))
        }
    }

    fn event(kind: EventKind, data: &'static [u8], note: Option<&str>) -> Event {
        Event {
            position: None,
            at: Duration::from_micros(1500),
            task: Arc::from("task 1"),
            kind,
            on: On {
                conn: Some(1),
                transport: Some(Transport::Tcp),
            },
            local: Some(Arc::from("127.0.0.1:4000")),
            peer: Some(Arc::from("127.0.0.1:5000")),
            data: Bytes::from_static(data),
            len: data.len() + 10,
            note: note.map(str::to_owned),
        }
    }

    fn sample() -> Vec<Outcome> {
        let mut passed = outcome("greeting.rhai", Status::Passed, None);
        passed.connections = 2;
        passed.stdout = "Thank you for connecting\n".into();
        passed.dropped = crate::transcript::Dropped {
            bytes: 977,
            events: 2,
        };
        passed.transcript = vec![
            Event {
                position: Some(crate::transcript::At { line: 3, column: 6 }),
                ..event(EventKind::Send, b"hi \"you\"\n", None)
            },
            event(EventKind::Recv, b"\xff\x00A", None),
            event(EventKind::Error, b"", Some("connection reset")),
        ];
        let diag = Diag {
            code: Code::Assertion,
            message: "assert_eq failed".into(),
            file: "bad.rhai".into(),
            source: "let x = 1;\nassert_eq(x, 2);\n".into(),
            labels: vec![(11, 9, "this assertion failed".into())],
            help: Some(" left: 1\nright: 2".into()),
            line: Some(2),
            on: Default::default(),
            more: Vec::new(),
            failed_in_module: false,
        };
        let failed = outcome("bad.rhai", Status::Failed, Some(diag));
        let errored = outcome(
            "refused.rhai",
            Status::Errored,
            Some(Diag::plain(
                ErrorKind::ConnectionRefused,
                "connect failed",
                "refused.rhai",
            )),
        );
        let broken = outcome("broken.rhai", Status::CompileError, None);
        vec![passed, failed, errored, broken]
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
    }

    #[test]
    fn summary_counts_every_status() {
        let v = parse(&render(&sample(), Duration::from_millis(1234)));
        assert_eq!(
            v["summary"],
            json!({"total": 4, "passed": 1, "failed": 1, "errored": 1, "compile_errors": 1,
                   "duration_ms": 1234})
        );
        let statuses: Vec<&str> = v["scenarios"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["status"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(statuses, ["passed", "failed", "errored", "compile_error"]);
    }

    #[test]
    fn a_passed_scenario_has_its_output_and_transcript() {
        let v = parse(&render(&sample(), Duration::ZERO));
        let s = &v["scenarios"][0];
        assert_eq!(s["name"], "greeting.rhai");
        assert_eq!(s["duration_ms"], 12);
        assert_eq!(s["connections"], 2);
        assert_eq!(s["attempts"], 1);
        assert_eq!(s["stdout"], "Thank you for connecting\n");
        assert_eq!(s["diagnostic"], Value::Null);
        assert_eq!(
            s["transcript"],
            json!([
                {"at_ms": 1.5, "task": "task 1", "kind": "send", "line": 3, "column": 6,
                 "conn": 1, "dir": "out",
                 "transport": "tcp", "local": "127.0.0.1:4000",
                 "peer": "127.0.0.1:5000", "len": 19, "data": "hi \"you\"\n",
                 "data_hex": "68692022796f75220a", "note": null},
                {"at_ms": 1.5, "task": "task 1", "kind": "recv", "line": null, "column": null,
                 "conn": 1, "dir": "in",
                 "transport": "tcp", "local": "127.0.0.1:4000",
                 "peer": "127.0.0.1:5000", "len": 13, "data": null, "data_hex": "ff0041",
                 "note": null},
                {"at_ms": 1.5, "task": "task 1", "kind": "error", "line": null,
                 "column": null, "conn": 1, "dir": null,
                 "transport": "tcp", "local": "127.0.0.1:4000",
                 "peer": "127.0.0.1:5000", "len": 10, "data": "", "data_hex": "",
                 "note": "connection reset"},
            ])
        );
        assert_eq!(s["dropped"], json!({"bytes": 977, "events": 2}));
        assert_eq!(
            v["scenarios"][1]["dropped"],
            json!({"bytes": 0, "events": 0})
        );
    }

    #[test]
    fn a_failure_carries_its_diagnostic_as_the_terminal_renders_it() {
        let outcomes = sample();
        let v = parse(&render(&outcomes, Duration::ZERO));
        let d = &v["scenarios"][1]["diagnostic"];
        assert_eq!(d["code"], "assertion");
        assert_eq!(d["message"], "assert_eq failed");
        assert_eq!(d["line"], 2);
        let rendered = outcomes[1].diagnostic.as_ref().map(|d| d.render(false));
        assert_eq!(d["rendered"].as_str(), rendered.as_deref());
        assert!(d["rendered"]
            .as_str()
            .is_some_and(|r| r.contains("assert_eq failed")));
        assert_eq!(v["scenarios"][2]["diagnostic"]["line"], Value::Null);
        assert_eq!(v["scenarios"][3]["diagnostic"], Value::Null);
    }

    #[test]
    fn an_empty_run_is_a_document_too() {
        assert_eq!(
            render(&[], Duration::from_millis(3)),
            "{\n  \"summary\": {\n    \"total\": 0,\n    \"passed\": 0,\n    \"failed\": 0,\n    \
             \"errored\": 0,\n    \"compile_errors\": 0,\n    \"duration_ms\": 3\n  },\n  \
             \"scenarios\": []\n}\n"
        );
    }
}
