//! `--report-html`: one self-contained page (inline CSS and JavaScript, no request of any
//! kind) that shows each scenario's conversation as a sequence diagram, its payloads as text
//! and hexdump, its script with the lines that caused events, and its failure where it
//! happened.
//!
//! The Rust side only gathers data: the outcomes, each scenario's [`super::sequence`] model,
//! payloads as base64, serialized as one JSON document inside `<script type=
//! "application/json">` with every `<` written `\u003c`, so nothing a peer or a script wrote
//! can close the element. The page's script (`html/app.js`) draws from it with `textContent`
//! only, and a Content-Security-Policy forbids any fetch, font, image or frame.
//!
//! The format reads payloads whole (as the transcript kept them within `--limit capture`, not
//! a suite's previews) and embeds them up to [`PAYLOAD_BYTES`] each and
//! [`REPORT_PAYLOAD_BYTES`] a report; what is cut is counted in the data and said on the page,
//! beside what the transcript itself did not keep. Outputs and scripts are cut the same way.

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;

use super::json::{Diagnostic, Dropped, Summary};
use super::sequence::Sequence;
use crate::outcome::Outcome;
use crate::transcript::Event;

/// The page. `--report-html`.
pub const FORMAT: super::Format = super::Format {
    name: "html",
    flag: "--report-html",
    render: super::Render::Run(render),
    // The page of one run as well as of a suite (`--report-html` in run and test mode).
    suite: false,
    // Payloads are shown whole, within the page's budgets below.
    whole_payloads: true,
};

/// The most bytes of one payload the page embeds.
pub const PAYLOAD_BYTES: usize = 64 * 1024;
/// The most payload bytes one page embeds, all scenarios together (base64 makes them a third
/// more): a 500-scenario suite's page stays well under 20 MB.
pub const REPORT_PAYLOAD_BYTES: usize = 8 * 1024 * 1024;
/// The most bytes of one scenario's output, and of its script, the page embeds.
pub const TEXT_BYTES: usize = 256 * 1024;

const STYLE: &str = include_str!("html/style.css");
const SCRIPT: &str = include_str!("html/app.js");

pub fn render(outcomes: &[Outcome], elapsed: Duration) -> String {
    let mut budget = Budget {
        left: REPORT_PAYLOAD_BYTES,
        ..Budget::default()
    };
    let scenarios: Vec<Scenario> = outcomes.iter().map(|o| scenario(o, &mut budget)).collect();
    let page = Page {
        summary: Summary::of(outcomes, elapsed),
        limits: Limits {
            payload_bytes: PAYLOAD_BYTES,
            report_payload_bytes: REPORT_PAYLOAD_BYTES,
            text_bytes: TEXT_BYTES,
            cut_payloads: budget.cut_payloads,
            cut_bytes: budget.cut_bytes,
            partial_payloads: budget.partial_payloads,
            partial_bytes: budget.partial_bytes,
            run_payload_bytes: super::WHOLE_PAYLOAD_BYTES,
        },
        scenarios,
    };
    // Plain structs of strings and numbers serialize without error.
    let json = serde_json::to_string(&page).unwrap_or_default();
    let mut out = String::with_capacity(json.len() + STYLE.len() + SCRIPT.len() + 1024);
    out.push_str(HEAD);
    out.push_str(STYLE);
    out.push_str(BODY);
    push_json(&mut out, &json);
    out.push_str(SCRIPT_OPEN);
    out.push_str(SCRIPT);
    out.push_str(TAIL);
    out
}

/// `json` inside a `<script>` element: JSON has `<` only inside strings, where `\u003c` means
/// the same, so no `</script>` or `<!--` can appear in the element.
fn push_json(out: &mut String, json: &str) {
    let mut rest = json;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        out.push_str("\\u003c");
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
form-action 'none'\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"generator\" content=\"sockscript\">\n<title>sockscript report</title>\n<style>\n";
const BODY: &str = "</style>\n</head>\n<body>\n<noscript>This report draws itself with \
JavaScript; the same data is in the element <code>#data</code> as JSON.</noscript>\n\
<script type=\"application/json\" id=\"data\">";
const SCRIPT_OPEN: &str = "</script>\n<script>\n";
const TAIL: &str = "</script>\n</body>\n</html>\n";

/// How much payload the page may still embed, what it cut, and what it shows in part for any
/// reason (its own budgets, or what the run did not keep).
#[derive(Default)]
struct Budget {
    left: usize,
    cut_payloads: u64,
    cut_bytes: u64,
    partial_payloads: u64,
    partial_bytes: u64,
}

impl Budget {
    /// The part of `data` (the kept part of a `len`-byte payload) to embed, as base64.
    fn take(&mut self, data: &[u8], len: usize) -> (usize, String) {
        let shown = data.len().min(PAYLOAD_BYTES).min(self.left);
        self.left -= shown;
        if shown < data.len() {
            self.cut_payloads += 1;
            self.cut_bytes += (data.len() - shown) as u64;
        }
        if shown < len {
            self.partial_payloads += 1;
            self.partial_bytes += (len - shown) as u64;
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(&data[..shown]);
        (shown, encoded)
    }
}

#[derive(Serialize)]
struct Page<'a> {
    summary: Summary,
    limits: Limits,
    scenarios: Vec<Scenario<'a>>,
}

#[derive(Serialize)]
struct Limits {
    payload_bytes: usize,
    report_payload_bytes: usize,
    text_bytes: usize,
    /// Payloads the page embeds only in part of what the run kept, and the bytes it left out.
    cut_payloads: u64,
    cut_bytes: u64,
    /// Payloads the page shows in part, for any reason, and the bytes not shown.
    partial_payloads: u64,
    partial_bytes: u64,
    /// The payload bytes past their previews a run keeps for the page (all scenarios).
    run_payload_bytes: usize,
}

#[derive(Serialize)]
struct Scenario<'a> {
    name: &'a str,
    /// As the JSON report spells it: `passed`, `failed`, `errored`, `compile_error`.
    status: &'static str,
    duration_ms: f64,
    connections: usize,
    attempts: u32,
    stdout: Text<'a>,
    source: Text<'a>,
    diagnostic: Option<Failure<'a>>,
    /// What the transcript itself did not keep (`--limit capture`, too many events).
    dropped: Dropped,
    events: Vec<Record<'a>>,
    sequence: Diagram,
}

/// [`Sequence`] as the page's script reads it: indexes into `lanes`, `steps` and `events`.
#[derive(Serialize)]
struct Diagram {
    lanes: Vec<DiagramLane>,
    steps: Vec<DiagramStep>,
    failure: Option<usize>,
}

#[derive(Serialize)]
struct DiagramLane {
    kind: &'static str,
    task: Option<String>,
    addr: Option<String>,
    conn: Option<u32>,
    transport: Option<&'static str>,
}

#[derive(Serialize)]
struct DiagramStep {
    kind: &'static str,
    lane: usize,
    to: Option<usize>,
    at_us: u64,
    event: Option<usize>,
    recv: Vec<usize>,
    received_at_us: Option<u64>,
    len: usize,
}

fn diagram(seq: Sequence) -> Diagram {
    Diagram {
        lanes: seq
            .lanes
            .into_iter()
            .map(|l| DiagramLane {
                kind: l.kind.as_str(),
                task: l.task.as_deref().map(str::to_owned),
                addr: l.addr.as_deref().map(str::to_owned),
                conn: l.conn,
                transport: l.transport.map(|t| t.as_str()),
            })
            .collect(),
        steps: seq
            .steps
            .into_iter()
            .map(|s| DiagramStep {
                kind: s.kind.as_str(),
                lane: s.lane,
                to: s.to,
                at_us: micros(s.at),
                event: s.event,
                recv: s.recv,
                received_at_us: s.received_at.map(micros),
                len: s.len,
            })
            .collect(),
        failure: seq.failure,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A text, cut to [`TEXT_BYTES`] at a character boundary; `len` is its whole length.
#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
    len: usize,
}

fn text(s: &str) -> Text<'_> {
    let mut end = s.len().min(TEXT_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Text {
        text: &s[..end],
        len: s.len(),
    }
}

/// The JSON report's diagnostic, and the connection it happened on when the error named one.
#[derive(Serialize)]
struct Failure<'a> {
    #[serde(flatten)]
    diagnostic: Diagnostic<'a>,
    conn: Option<u32>,
}

/// One transcript event, named as in the JSON report.
#[derive(Serialize)]
struct Record<'a> {
    /// Microseconds since the scenario started.
    at_us: u64,
    task: &'a str,
    kind: &'static str,
    line: Option<u32>,
    column: Option<u32>,
    conn: Option<u32>,
    transport: Option<&'static str>,
    local: Option<&'a str>,
    peer: Option<&'a str>,
    /// The payload's whole length.
    len: usize,
    /// Bytes the transcript kept, and of those, the bytes embedded here (base64 in `data`).
    kept: usize,
    shown: usize,
    data: String,
    note: Option<&'a str>,
}

fn scenario<'a>(o: &'a Outcome, budget: &mut Budget) -> Scenario<'a> {
    Scenario {
        name: &o.name,
        status: super::json::status_name(o.status),
        duration_ms: o.duration.as_secs_f64() * 1000.0,
        connections: o.connections,
        attempts: o.attempts,
        stdout: text(&o.stdout),
        source: text(&o.source),
        diagnostic: o.diagnostic.as_ref().map(|d| Failure {
            diagnostic: d.into(),
            conn: d.on.conn,
        }),
        dropped: o.dropped.into(),
        events: o.transcript.iter().map(|e| record(e, budget)).collect(),
        sequence: diagram(Sequence::of(o)),
    }
}

fn record<'a>(e: &'a Event, budget: &mut Budget) -> Record<'a> {
    let (shown, data) = budget.take(&e.data, e.len);
    Record {
        at_us: micros(e.at),
        task: &e.task,
        kind: e.kind.as_str(),
        line: e.position.map(|p| p.line),
        column: e.position.map(|p| p.column),
        conn: e.on.conn,
        transport: e.on.transport.map(|t| t.as_str()),
        local: e.local.as_deref(),
        peer: e.peer.as_deref(),
        len: e.len,
        kept: e.data.len(),
        shown,
        data,
        note: e.note.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::outcome::Status;

    use bytes::Bytes;
    use serde_json::Value;

    use super::*;
    use crate::transcript::{EventKind, On, Transport};

    const HOSTILE: &str = "</script><script>alert(1)</script><!--";

    fn event(kind: EventKind, data: Vec<u8>) -> Event {
        Event {
            position: Some(crate::transcript::At { line: 2, column: 5 }),
            at: Duration::from_micros(1500),
            task: Arc::from(HOSTILE),
            kind,
            on: On {
                conn: Some(1),
                transport: Some(Transport::Tcp),
            },
            local: Some(Arc::from("127.0.0.1:4000")),
            peer: Some(Arc::from(HOSTILE)),
            len: data.len(),
            data: Bytes::from(data),
            note: None,
        }
    }

    fn outcome(name: &str, events: Vec<Event>) -> Outcome {
        Outcome {
            transcript: events,
            source: format!("let x = `{HOSTILE}`;\nprint(x);\n").into(),
            stdout: HOSTILE.into(),
            ..Outcome::for_test(name, Status::Passed, None, Duration::from_millis(3))
        }
    }

    /// The page's data element, parsed.
    fn data(page: &str) -> Value {
        let open = "<script type=\"application/json\" id=\"data\">";
        let start = page.find(open).map(|i| i + open.len());
        let json = start.and_then(|s| Some(&page[s..s + page[s..].find("</script>")?]));
        let json = json.unwrap_or_else(|| panic!("no data element in\n{page}"));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"))
    }

    #[test]
    fn nothing_a_peer_or_script_wrote_closes_the_data_element() {
        let page = render(
            &[outcome(
                HOSTILE,
                vec![event(EventKind::Send, HOSTILE.into())],
            )],
            Duration::ZERO,
        );
        // The data element, the page's script: two `</script>`s, and no comment opened.
        assert_eq!(page.matches("</script>").count(), 2, "{page}");
        assert!(!page.contains("<!--"), "{page}");
        let v = data(&page);
        let s = &v["scenarios"][0];
        assert_eq!(s["name"], HOSTILE);
        assert_eq!(s["stdout"]["text"], HOSTILE);
        assert_eq!(s["events"][0]["task"], HOSTILE);
        assert_eq!(s["events"][0]["peer"], HOSTILE);
        let embedded = s["events"][0]["data"].as_str().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD.decode(embedded);
        assert_eq!(decoded.ok().as_deref(), Some(HOSTILE.as_bytes()));
        assert!(s["source"]["text"]
            .as_str()
            .is_some_and(|t| t.contains(HOSTILE)));
    }

    #[test]
    fn the_assets_cannot_close_their_own_elements_and_ask_for_nothing() {
        for asset in [STYLE, SCRIPT] {
            // The SVG namespace is a name, not an address anything is fetched from; `url(#`
            // names an element of the page itself (an arrowhead).
            let asset = asset
                .to_lowercase()
                .replace("\"http://www.w3.org/2000/svg\"", "")
                .replace("url(#", "");
            for bad in [
                "</script", "</style", "<!--", "http:", "https:", "url(", "@import",
            ] {
                assert!(!asset.contains(bad), "an asset holds `{bad}`");
            }
        }
        for forbidden in [
            "fetch(",
            "XMLHttpRequest",
            "WebSocket",
            "EventSource",
            "sendBeacon",
            "import(",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "Function(",
        ] {
            assert!(!SCRIPT.contains(forbidden), "app.js uses `{forbidden}`");
        }
    }

    #[test]
    fn payloads_past_the_budgets_are_cut_and_counted() {
        let big = vec![b'x'; PAYLOAD_BYTES + 10];
        let page = render(
            &[outcome("a", vec![event(EventKind::Send, big)])],
            Duration::ZERO,
        );
        let v = data(&page);
        let e = &v["scenarios"][0]["events"][0];
        assert_eq!(e["len"], PAYLOAD_BYTES + 10);
        assert_eq!(e["kept"], PAYLOAD_BYTES + 10);
        assert_eq!(e["shown"], PAYLOAD_BYTES);
        assert_eq!(v["limits"]["cut_payloads"], 1);
        assert_eq!(v["limits"]["cut_bytes"], 10);
        assert_eq!(v["limits"]["partial_payloads"], 1);

        // Past the report's budget, each payload keeps what is left, then nothing.
        let many: Vec<Event> = (0..REPORT_PAYLOAD_BYTES / PAYLOAD_BYTES + 2)
            .map(|_| event(EventKind::Recv, vec![b'y'; PAYLOAD_BYTES]))
            .collect();
        let n = many.len();
        let v = data(&render(&[outcome("b", many)], Duration::ZERO));
        let shown: usize = (0..n)
            .filter_map(|i| v["scenarios"][0]["events"][i]["shown"].as_u64())
            .map(|s| s as usize)
            .sum();
        assert_eq!(shown, REPORT_PAYLOAD_BYTES);
        assert_eq!(v["limits"]["cut_payloads"], 2);
        assert_eq!(v["limits"]["cut_bytes"], 2 * PAYLOAD_BYTES);
    }

    #[test]
    fn a_failure_carries_its_diagnostic_as_the_terminal_renders_it() {
        let diag = crate::diagnostic::Diag::plain(
            crate::net::ErrorKind::ConnectionRefused,
            "connect failed",
            "refused.rhai",
        );
        let rendered = diag.render(false);
        let o = Outcome::for_test(
            "refused.rhai",
            Status::Errored,
            Some(diag),
            Duration::from_millis(1),
        );
        let v = data(&render(&[o], Duration::ZERO));
        let d = &v["scenarios"][0]["diagnostic"];
        assert_eq!(v["scenarios"][0]["status"], "errored");
        assert_eq!(d["code"], "connection_refused");
        assert_eq!(d["rendered"].as_str(), Some(rendered.as_str()));
        assert_eq!(v["summary"]["errored"], 1);
    }
}
