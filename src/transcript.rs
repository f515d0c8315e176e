//! The one record of what happened on the wire in a scenario: who listened, connected, sent and
//! received what, and when. The `net` layer writes it; `--trace`, failure diagnostics and reports
//! read it. Payloads are kept up to a preview size so a bulk transfer cannot fill memory.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How much of each payload the transcript keeps.
pub const PREVIEW_BYTES: usize = 1024;
/// How many events a transcript keeps before it counts the rest as dropped.
pub const MAX_EVENTS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Listen,
    Accept,
    Connect,
    Send,
    Recv,
    Eof,
    Shutdown,
    Close,
    Error,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Listen => "listen",
            EventKind::Accept => "accept",
            EventKind::Connect => "connect",
            EventKind::Send => "send",
            EventKind::Recv => "recv",
            EventKind::Eof => "eof",
            EventKind::Shutdown => "shutdown",
            EventKind::Close => "close",
            EventKind::Error => "error",
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct Event {
    /// Time since the scenario started.
    pub at: Duration,
    /// The script task that did it: `main`, `task 1`, …
    pub task: Arc<str>,
    pub kind: EventKind,
    /// This side's address.
    pub local: Option<Arc<str>>,
    /// The other side's address.
    pub peer: Option<Arc<str>>,
    /// The payload's first [`PREVIEW_BYTES`] bytes.
    pub data: Bytes,
    /// The payload's full length.
    pub len: usize,
    /// A free-form note (an error message).
    pub note: Option<String>,
}

type Sink = Box<dyn Fn(&Event) + Send + Sync>;

/// The shared, append-only record; cheap to clone.
#[derive(Clone)]
pub struct Transcript {
    inner: Arc<Inner>,
}

struct Inner {
    started: Instant,
    events: Mutex<Events>,
    live: Option<Sink>,
}

#[derive(Default)]
struct Events {
    list: Vec<Event>,
    dropped: usize,
}

impl Transcript {
    pub fn new(started: Instant) -> Self {
        Self::build(started, None)
    }

    /// A transcript that also hands each event to `sink` as it happens (`--trace` in run mode).
    pub fn with_live(started: Instant, sink: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Self::build(started, Some(Box::new(sink)))
    }

    fn build(started: Instant, live: Option<Sink>) -> Self {
        Transcript {
            inner: Arc::new(Inner {
                started,
                events: Mutex::new(Events::default()),
                live,
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        task: Arc<str>,
        kind: EventKind,
        local: Option<Arc<str>>,
        peer: Option<Arc<str>>,
        payload: &[u8],
        note: Option<String>,
    ) {
        let keep = payload.len().min(PREVIEW_BYTES);
        let event = Event {
            at: self.inner.started.elapsed(),
            task,
            kind,
            local,
            peer,
            data: Bytes::copy_from_slice(&payload[..keep]),
            len: payload.len(),
            note,
        };
        if let Some(live) = &self.inner.live {
            live(&event);
        }
        let mut events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.list.len() < MAX_EVENTS {
            events.list.push(event);
        } else {
            events.dropped += 1;
        }
    }

    /// A copy of every event so far, and how many were dropped past [`MAX_EVENTS`].
    pub fn snapshot(&self) -> (Vec<Event>, usize) {
        let events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        (events.list.clone(), events.dropped)
    }
}

/// One line per event (and a hexdump under it for binary payloads), as `--trace` prints.
pub fn render_event(event: &Event) -> String {
    let mut out = format!(
        "[{:>9.3}ms] {:<8} {:<8}",
        event.at.as_secs_f64() * 1000.0,
        event.task,
        event.kind.as_str()
    );
    match (&event.local, &event.peer) {
        (Some(l), Some(p)) => {
            let arrow = match event.kind {
                EventKind::Recv | EventKind::Eof | EventKind::Accept => "<-",
                _ => "->",
            };
            let _ = write!(out, " {l} {arrow} {p}");
        }
        (Some(l), None) => {
            let _ = write!(out, " {l}");
        }
        (None, Some(p)) => {
            let _ = write!(out, " {p}");
        }
        (None, None) => {}
    }
    if matches!(event.kind, EventKind::Send | EventKind::Recv) {
        let _ = write!(out, " ({} bytes)", event.len);
    }
    if let Some(note) = &event.note {
        let _ = write!(out, ": {note}");
    }
    if !event.data.is_empty() {
        out.push('\n');
        out.push_str(&render_payload(&event.data, "    "));
        if event.len > event.data.len() {
            let _ = write!(out, "\n    … {} more bytes", event.len - event.data.len());
        }
    }
    out
}

/// Text as an escaped quoted string when it is printable UTF-8, else a hexdump.
pub fn render_payload(data: &[u8], indent: &str) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if is_printable(text) => format!("{indent}{text:?}"),
        _ => hexdump(data)
            .lines()
            .map(|l| format!("{indent}{l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn is_printable(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
}

/// The classic `offset  hex bytes  |ascii|` dump, 16 bytes a line.
pub fn hexdump(data: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "{:08x}  ", i * 16);
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
            if j == 7 {
                out.push(' ');
            }
        }
        out.push_str(" |");
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('|');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hexdump_has_offsets_hex_and_ascii() {
        let dump = hexdump(b"\x00\x01hello, world!\xff\xfe\x7f");
        assert_eq!(
            dump,
            "00000000  00 01 68 65 6c 6c 6f 2c  20 77 6f 72 6c 64 21 ff  |..hello, world!.|\n\
             00000010  fe 7f                                             |..|"
        );
    }

    #[test]
    fn payload_prefers_text() {
        assert_eq!(render_payload(b"hi\n", ""), "\"hi\\n\"");
        assert!(render_payload(b"\x00\x01", "").starts_with("00000000"));
    }

    #[test]
    fn long_payloads_keep_a_preview() {
        let t = Transcript::new(Instant::now());
        t.record(
            "main".into(),
            EventKind::Send,
            None,
            None,
            &[b'a'; 5000],
            None,
        );
        let (events, dropped) = t.snapshot();
        assert_eq!(dropped, 0);
        assert_eq!(events[0].len, 5000);
        assert_eq!(events[0].data.len(), PREVIEW_BYTES);
    }
}
