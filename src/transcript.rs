//! The one record of what happened on the wire in a scenario: who listened, connected, sent and
//! received what, and when. The `net` layer writes it; `--trace`, failure diagnostics and reports
//! read it. Payloads are kept up to a preview size so a bulk transfer cannot fill memory.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::escape;

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

/// The events as kept: a compact record each, with every payload preview and note in one
/// shared byte arena rather than an allocation of its own. A scenario holding ten thousand
/// connections records twenty thousand events, so this is most of what a connection costs.
#[derive(Default)]
struct Events {
    list: Vec<Stored>,
    arena: Vec<u8>,
    dropped: usize,
}

struct Stored {
    at_nanos: u64,
    task: Arc<str>,
    local: Option<Arc<str>>,
    peer: Option<Arc<str>>,
    len: usize,
    /// Where the preview starts in the arena; the note follows it.
    offset: usize,
    data_len: u16,
    /// The note's length in bytes, when there is one.
    note_len: Option<u32>,
    kind: EventKind,
}

impl Events {
    fn view(&self, e: &Stored) -> Event {
        let data_end = e.offset + usize::from(e.data_len);
        Event {
            at: Duration::from_nanos(e.at_nanos),
            task: e.task.clone(),
            kind: e.kind,
            local: e.local.clone(),
            peer: e.peer.clone(),
            data: Bytes::copy_from_slice(&self.arena[e.offset..data_end]),
            len: e.len,
            note: e.note_len.map(|n| {
                let note = &self.arena[data_end..data_end + n as usize];
                String::from_utf8_lossy(note).into_owned()
            }),
        }
    }
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
        let at = self.inner.started.elapsed();
        let preview = &payload[..payload.len().min(PREVIEW_BYTES)];
        if let Some(live) = &self.inner.live {
            live(&Event {
                at,
                task: task.clone(),
                kind,
                local: local.clone(),
                peer: peer.clone(),
                data: Bytes::copy_from_slice(preview),
                len: payload.len(),
                note: note.clone(),
            });
        }
        let note = note.as_deref().map(|n| truncate_utf8(n, MAX_NOTE));
        let mut events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.list.len() >= MAX_EVENTS {
            events.dropped += 1;
            return;
        }
        let offset = events.arena.len();
        events.arena.extend_from_slice(preview);
        if let Some(note) = note {
            events.arena.extend_from_slice(note.as_bytes());
        }
        events.list.push(Stored {
            at_nanos: u64::try_from(at.as_nanos()).unwrap_or(u64::MAX),
            task,
            local,
            peer,
            len: payload.len(),
            offset,
            // PREVIEW_BYTES and MAX_NOTE fit their fields.
            data_len: preview.len() as u16,
            note_len: note.map(|n| n.len() as u32),
            kind,
        });
    }

    /// A copy of every event so far, and how many were dropped past [`MAX_EVENTS`].
    pub fn snapshot(&self) -> (Vec<Event>, usize) {
        let events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        let list = events.list.iter().map(|e| events.view(e)).collect();
        (list, events.dropped)
    }
}

/// The longest note an event keeps (error messages are far shorter).
const MAX_NOTE: usize = 64 * 1024;
const _: () = assert!(PREVIEW_BYTES <= u16::MAX as usize && MAX_NOTE <= u32::MAX as usize);

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One line per event (and a hexdump under it for binary payloads), as `--trace` prints. Task
/// names, addresses (a Unix socket's path is anyone's text) and notes are escaped, and so are
/// payloads (see [`render_payload`]): the terminal shows what a peer sent, it does not obey it.
pub fn render_event(event: &Event) -> String {
    let mut out = format!(
        "[{:>9.3}ms] {:<8} {:<8}",
        event.at.as_secs_f64() * 1000.0,
        escape::line(&event.task),
        event.kind.as_str()
    );
    let local = event.local.as_deref().map(escape::line);
    let peer = event.peer.as_deref().map(escape::line);
    match (local, peer) {
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
        let _ = write!(out, ": {}", escape::text(note));
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

/// Text as an escaped quoted string when it is printable UTF-8, else a hexdump. Either way
/// nothing unsafe for a terminal is left: Rust's `{:?}` escapes controls, bidi overrides and
/// noncharacters, and the hexdump shows only printable ASCII.
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
    fn payloads_and_events_show_nothing_a_terminal_would_obey() {
        let hostile = "\x1b[2J\x1b]52;c;aGVsbG8=\x07 \u{9b} \u{202e}\u{2066} \u{fffe}\u{ffff}\u{fdd0}\u{1fffe} \x7f";
        let printable = "bidi \u{202e}\u{2066}\u{2069} nonchar \u{fffe}\u{ffff}\u{fdd0}\u{10fffe}";
        for data in [hostile, printable] {
            let shown = render_payload(data.as_bytes(), "  ");
            assert!(
                !shown.chars().any(|c| escape::is_unsafe(c) && c != '\n'),
                "{shown:?}"
            );
        }
        assert_eq!(
            render_payload(printable.as_bytes(), ""),
            "\"bidi \\u{202e}\\u{2066}\\u{2069} nonchar \\u{fffe}\\u{ffff}\\u{fdd0}\\u{10fffe}\""
        );
        let event = Event {
            at: Duration::ZERO,
            task: "task\x1b[2J".into(),
            kind: EventKind::Error,
            local: Some("unix:/tmp/s\x1b]52;c;aGk=\x07".into()),
            peer: Some("unix:\u{202e}".into()),
            data: Bytes::from_static(b"\x1b[2J"),
            len: 4,
            note: Some("connect to `\x1b[2J` failed\nsecond line".into()),
        };
        assert_eq!(
            render_event(&event),
            "[    0.000ms] task\\x1b[2J error    unix:/tmp/s\\x1b]52;c;aGk=\\x07 -> unix:\\u{202e}: \
             connect to `\\x1b[2J` failed\nsecond line\n    \
             00000000  1b 5b 32 4a                                       |.[2J|"
        );
    }

    #[test]
    fn events_come_back_as_recorded() {
        let t = Transcript::new(Instant::now());
        let (local, peer): (Arc<str>, Arc<str>) = ("127.0.0.1:1".into(), "127.0.0.1:2".into());
        t.record(
            "main".into(),
            EventKind::Connect,
            Some(local.clone()),
            Some(peer.clone()),
            b"",
            None,
        );
        t.record(
            "task 1".into(),
            EventKind::Recv,
            Some(local),
            Some(peer),
            b"hello",
            None,
        );
        t.record(
            "main".into(),
            EventKind::Error,
            None,
            None,
            b"",
            Some("recv: timed out \u{e9}".into()),
        );
        t.record(
            "main".into(),
            EventKind::Send,
            None,
            None,
            b"\x00\xff",
            Some(String::new()),
        );
        let (events, dropped) = t.snapshot();
        assert_eq!(dropped, 0);
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    &*e.task,
                    e.kind,
                    e.local.as_deref(),
                    e.peer.as_deref(),
                    &e.data[..],
                    e.len,
                    e.note.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "main",
                    EventKind::Connect,
                    Some("127.0.0.1:1"),
                    Some("127.0.0.1:2"),
                    &b""[..],
                    0,
                    None
                ),
                (
                    "task 1",
                    EventKind::Recv,
                    Some("127.0.0.1:1"),
                    Some("127.0.0.1:2"),
                    b"hello",
                    5,
                    None
                ),
                (
                    "main",
                    EventKind::Error,
                    None,
                    None,
                    b"",
                    0,
                    Some("recv: timed out \u{e9}")
                ),
                (
                    "main",
                    EventKind::Send,
                    None,
                    None,
                    b"\x00\xff",
                    2,
                    Some("")
                ),
            ]
        );
        assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
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
