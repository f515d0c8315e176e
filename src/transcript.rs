//! The one record of what happened on the wire in a scenario: who listened, connected, sent and
//! received what, when, on which connection, which way and over what transport. The `net` layer
//! writes it; `--trace`, failure diagnostics and reports read it.
//!
//! Payloads are kept whole until the scenario's payloads add up to `--limit capture` (16 MiB by
//! default); after that each keeps a [`PREVIEW_BYTES`] preview, and the bytes and events not
//! kept are counted in [`Dropped`], so a bulk transfer cannot fill memory and a reader knows
//! what is missing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::escape;

/// How much of each payload the transcript keeps once the capture limit is reached, and how
/// much of one `--trace` shows.
pub const PREVIEW_BYTES: usize = 1024;
/// How many payload bytes a scenario's transcript keeps whole by default (`--limit capture`).
pub const DEFAULT_CAPTURE: usize = 16 * 1024 * 1024;
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

impl EventKind {
    /// Which way the event went, seen from this end: `out` to the peer (connect, send,
    /// shutdown), `in` from it (accept, recv, eof); `None` for the rest.
    pub fn dir(self) -> Option<Dir> {
        match self {
            EventKind::Connect | EventKind::Send | EventKind::Shutdown => Some(Dir::Out),
            EventKind::Accept | EventKind::Recv | EventKind::Eof => Some(Dir::In),
            EventKind::Listen | EventKind::Close | EventKind::Error => None,
        }
    }
}

/// Which way an event went, seen from the end that recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From this end to its peer.
    Out,
    /// From the peer to this end.
    In,
}

impl Dir {
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::Out => "out",
            Dir::In => "in",
        }
    }
}

/// What an event's socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    /// TLS, over TCP or a Unix socket.
    Tls,
    Unix,
    Udp,
    /// A child process's pipes (`exec`): its stdin and stdout, or its stderr.
    Process,
    /// WebSocket messages (over TCP or TLS): each event is one whole message.
    Ws,
}

impl Transport {
    /// Whether each event is one whole message (a datagram, a WebSocket message) rather than
    /// a piece of a byte stream.
    pub fn keeps_boundaries(self) -> bool {
        matches!(self, Transport::Udp | Transport::Ws)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Unix => "unix",
            Transport::Udp => "udp",
            Transport::Process => "process",
            Transport::Ws => "ws",
        }
    }
}

/// Which connection an event belongs to, and over what.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct On {
    /// The connection id: both ends of a connection the scenario holds share it; a UDP socket
    /// has one of its own; `None` for a listener, or a connect that failed.
    pub conn: Option<u32>,
    pub transport: Option<Transport>,
}

/// Where in the scenario's script a call was made: 1-based line and column, as rhai counts
/// them. The file is the scenario's, which its outcome names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub line: u32,
    pub column: u32,
}

impl At {
    /// Packed into one `u32` for [`Stored`]: rhai counts lines and columns in `u16`, so
    /// nothing is lost; 0 (line 0) is no position.
    fn pack(at: Option<At>) -> u32 {
        at.map_or(0, |at| {
            let half = |n: u32| n.min(u32::from(u16::MAX));
            half(at.line) << 16 | half(at.column)
        })
    }

    fn unpack(packed: u32) -> Option<At> {
        (packed >> 16 != 0).then_some(At {
            line: packed >> 16,
            column: packed & 0xffff,
        })
    }
}

/// What a transcript did not keep: bytes of payloads past `--limit capture` (their previews
/// are kept), and events past [`MAX_EVENTS`] (not kept at all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub bytes: u64,
    pub events: u64,
}

impl Dropped {
    pub fn is_empty(&self) -> bool {
        self.bytes == 0 && self.events == 0
    }

    /// A line for readers of a trace: what is missing and the flag that keeps more.
    pub fn describe(&self) -> String {
        format!(
            "the transcript did not keep {} payload bytes (past `--limit capture`, previews kept) \
             and {} events (past {MAX_EVENTS})",
            self.bytes, self.events
        )
    }
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct Event {
    /// Time since the scenario started.
    pub at: Duration,
    /// The script task that did it: `main`, `task 1`, …
    pub task: Arc<str>,
    /// Where in the script the call that caused it was made; `None` for events of no call.
    pub position: Option<At>,
    pub kind: EventKind,
    /// The connection id (shared by both ends in the scenario) and the transport.
    pub on: On,
    /// This side's address.
    pub local: Option<Arc<str>>,
    /// The other side's address.
    pub peer: Option<Arc<str>>,
    /// The payload: whole while the scenario was within `--limit capture`, else its first
    /// [`PREVIEW_BYTES`] bytes.
    pub data: Bytes,
    /// The payload's full length.
    pub len: usize,
    /// A free-form note (an error message).
    pub note: Option<String>,
}

impl Event {
    pub fn dir(&self) -> Option<Dir> {
        self.kind.dir()
    }
}

#[cfg(test)]
impl Event {
    /// For the views' tests: `main`'s event on TCP connection 1 at `ms` milliseconds, with no
    /// script position or note.
    pub fn for_test(
        ms: u64,
        kind: EventKind,
        local: &str,
        peer: &str,
        data: &'static [u8],
    ) -> Event {
        Event {
            at: Duration::from_millis(ms),
            task: "main".into(),
            position: None,
            kind,
            on: On {
                conn: Some(1),
                transport: Some(Transport::Tcp),
            },
            local: Some(local.into()),
            peer: Some(peer.into()),
            data: Bytes::from_static(data),
            len: data.len(),
            note: None,
        }
    }
}

type Sink = Box<dyn Fn(&Event) + Send + Sync>;

/// The shared, append-only record; cheap to clone.
#[derive(Clone)]
pub struct Transcript {
    inner: Arc<Inner>,
}

struct Inner {
    started: Instant,
    /// How many payload bytes are kept whole (`--limit capture`).
    capture: usize,
    events: Mutex<Events>,
    live: Option<Sink>,
}

/// The events as kept: a compact record each, with every payload preview and note in a shared
/// byte arena rather than an allocation of its own, and the tasks and addresses they name kept
/// once in [`Names`]. A scenario holding ten thousand connections records twenty thousand
/// events, so this is most of what a connection costs.
#[derive(Default)]
struct Events {
    list: Vec<Stored>,
    /// Payloads kept whole that are longer than a preview, each with its note: what an outcome
    /// cuts to previews once its views are written, so nothing else shares their chunks.
    whole: Arena,
    /// Everything else: previews, short payloads and notes.
    short: Arena,
    names: Names,
    /// Payload bytes kept whole so far, against the capture limit.
    captured: usize,
    /// Set by the first payload that did not fit: every payload after it keeps a preview.
    full: bool,
    dropped: Dropped,
}

/// Bytes appended in chunks that never move or grow in place, so a snapshot hands out slices
/// of them ([`Bytes`] sharing the chunk) instead of copying every payload, and a growing arena
/// never copies what it holds. A position is counted from the arena's first byte.
#[derive(Default)]
struct Arena {
    /// Chunks no longer written, each with the position of its first byte.
    done: Vec<(usize, Bytes)>,
    /// The chunk being written; its first byte is at `start`.
    open: BytesMut,
    start: usize,
}

/// The first chunk's room; each next chunk is as large as the arena so far, up to
/// [`MAX_CHUNK`] (or one payload and note, if larger): few chunks for a bulk transfer, and a
/// page for a scenario that says little.
const MIN_CHUNK: usize = 4 * 1024;
const MAX_CHUNK: usize = 4 * 1024 * 1024;

impl Arena {
    fn len(&self) -> usize {
        self.start + self.open.len()
    }

    /// Append `data` then `note`, contiguous, and return the position of `data`.
    fn push(&mut self, data: &[u8], note: &[u8]) -> usize {
        let need = data.len() + note.len();
        if self.open.capacity() - self.open.len() < need {
            self.close_open();
            let room = self.len().clamp(MIN_CHUNK, MAX_CHUNK).max(need);
            self.open = BytesMut::with_capacity(room);
        }
        let at = self.len();
        self.open.extend_from_slice(data);
        self.open.extend_from_slice(note);
        at
    }

    /// Move what the open chunk holds to the done ones; it keeps writing into the rest of its
    /// room (the same allocation).
    fn close_open(&mut self) {
        if !self.open.is_empty() {
            let start = self.start;
            self.start += self.open.len();
            self.done.push((start, self.open.split().freeze()));
        }
    }

    /// The `len` bytes at position `at`, written by one [`Arena::push`].
    fn get(&self, at: usize, len: usize) -> &[u8] {
        if at >= self.start {
            return &self.open[at - self.start..at - self.start + len];
        }
        let (start, chunk) = &self.done[self.done.partition_point(|(s, _)| *s <= at) - 1];
        &chunk[at - start..at - start + len]
    }

    /// The same bytes as a [`Bytes`] sharing the arena's chunk: no copy. Call
    /// [`Arena::close_open`] first.
    fn share(&self, at: usize, len: usize) -> Bytes {
        if len == 0 {
            return Bytes::new();
        }
        let (start, chunk) = &self.done[self.done.partition_point(|(s, _)| *s <= at) - 1];
        chunk.slice(at - start..at - start + len)
    }
}

/// 48 bytes: the task and the two addresses are numbers in [`Names`] rather than shared
/// strings, and the kept payload's length is not stored but follows from `len` and `whole`.
struct Stored {
    at_nanos: u64,
    len: usize,
    /// Where the payload starts in its arena (`whole` for a payload kept whole that is longer
    /// than a preview, else `short`); the note follows it. Two events with the same payload
    /// and no note may share it (`Events::same_as_before`).
    offset: usize,
    /// The note's length in bytes; [`NO_NOTE`] when there is none.
    note_len: u32,
    /// The connection id; [`NO_CONN`] for none.
    conn: u32,
    /// The script position, packed by [`At::pack`].
    position: u32,
    /// The task, in [`Names::tasks`].
    task: u32,
    /// This side's and the other side's address, in [`Names::ends`].
    ends: Ends,
    kind: EventKind,
    transport: Option<Transport>,
    /// Whether the payload was kept whole (`len` bytes) rather than as a preview.
    whole: bool,
}

impl Stored {
    /// How many payload bytes the arena holds for this event.
    fn data_len(&self) -> usize {
        if self.whole {
            self.len
        } else {
            self.len.min(PREVIEW_BYTES)
        }
    }
}

const NO_NOTE: u32 = u32::MAX;
const NO_CONN: u32 = u32::MAX;

/// The two addresses an event names (this side's, the other side's), kept once in the
/// transcript: a connection gets its pair when it opens ([`Transcript::ends`]) and gives it
/// with each event, so its events carry a number rather than two strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ends(u32);

/// Where a text is in [`Names::text`]: start and length; [`Span::NONE`] for no text.
#[derive(Clone, Copy)]
struct Span(u32, u32);

impl Span {
    const NONE: Span = Span(u32::MAX, 0);
}

/// A pair as [`Names`] keeps it, in 16 bytes: two spans of text, `[local start, local length,
/// peer start, peer length]`; or two IPv4 ends as addresses, `[V4_PAIR, local ip, peer ip,
/// local port << 16 | peer port]`, whose texts are made when read. No span starts at
/// `V4_PAIR` (see [`Names::span`]).
type Pair = [u32; 4];

const V4_PAIR: u32 = u32::MAX - 1;

/// The tasks and addresses events name, each kept once: addresses back to back in one string,
/// or an IPv4 connection's two ends as numbers (not an allocation each, which would outlive
/// the connection that made it, scattered among freed memory), tasks as the shared names their
/// calls carry. Names recorded with an event are found again by a hash of their text, so a
/// listener or a UDP socket that records many events adds each address pair once.
#[derive(Default)]
struct Names {
    text: String,
    ends: Vec<Pair>,
    /// Pairs recorded by text, by a hash of both: the first pair with each hash (another pair
    /// with the same hash gets a number of its own and is not found again).
    ends_by_hash: HashMap<u64, u32>,
    tasks: Vec<Arc<str>>,
    /// Tasks by a hash of their name, as `ends_by_hash`.
    tasks_by_hash: HashMap<u64, u32>,
    /// The task of the latest event: most events come from the same task as the one before.
    last_task: u32,
    /// Pairs recently recorded by shared texts, found again by the texts' addresses (the
    /// entries hold them, so an address cannot be reused meanwhile): a relay's legs record in
    /// turn, and comparing pointers is cheaper than hashing two strings.
    recent: [Option<RecentPair>; 4],
    next_recent: usize,
}

type RecentPair = (Option<Arc<str>>, Option<Arc<str>>, Ends);

impl Names {
    fn span(&mut self, text: Option<&str>) -> Span {
        let Some(text) = text else {
            return Span::NONE;
        };
        // A scenario's addresses add up to far less than 4 GiB; past that they are lost
        // rather than wrong.
        match (u32::try_from(self.text.len()), u32::try_from(text.len())) {
            (Ok(start), Ok(len)) if start.checked_add(len).is_some_and(|end| end < V4_PAIR) => {
                self.text.push_str(text);
                Span(start, len)
            }
            _ => Span(0, 0),
        }
    }

    fn get(&self, start: u32, len: u32) -> Option<&str> {
        if start == Span::NONE.0 {
            return None;
        }
        let start = start as usize;
        self.text.get(start..start + len as usize)
    }

    fn push(&mut self, pair: Pair) -> Ends {
        self.ends.push(pair);
        Ends(self.ends.len() as u32 - 1)
    }

    /// A new pair, without looking for an equal one (a connection's addresses are its own).
    fn add_ends(&mut self, local: Option<&str>, peer: Option<&str>) -> Ends {
        let (local, peer) = (self.span(local), self.span(peer));
        self.push([local.0, local.1, peer.0, peer.1])
    }

    /// A connection's IP ends: two IPv4 ends as numbers, others as their texts.
    fn add_ip_ends(&mut self, local: SocketAddr, peer: SocketAddr) -> Ends {
        match (local, peer) {
            (SocketAddr::V4(l), SocketAddr::V4(p)) => self.push([
                V4_PAIR,
                u32::from(*l.ip()),
                u32::from(*p.ip()),
                u32::from(l.port()) << 16 | u32::from(p.port()),
            ]),
            _ => self.add_ends(Some(&local.to_string()), Some(&peer.to_string())),
        }
    }

    /// The pair's number, added if it is not there yet.
    fn find_ends(&mut self, local: Option<&str>, peer: Option<&str>) -> Ends {
        let hash = hash_of(&(local, peer));
        if let Some(&id) = self.ends_by_hash.get(&hash) {
            let (l, p) = self.ends_texts(Ends(id));
            if (l.as_deref(), p.as_deref()) == (local, peer) {
                return Ends(id);
            }
            return self.add_ends(local, peer);
        }
        let ends = self.add_ends(local, peer);
        self.ends_by_hash.insert(hash, ends.0);
        ends
    }

    /// [`Names::find_ends`] for shared texts, looking at [`Names::recent`] first.
    fn find_shared(&mut self, local: &Option<Arc<str>>, peer: &Option<Arc<str>>) -> Ends {
        fn same(a: &Option<Arc<str>>, b: &Option<Arc<str>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        let recent = self.recent.iter().flatten();
        if let Some((_, _, ends)) = recent
            .into_iter()
            .find(|(l, p, _)| same(l, local) && same(p, peer))
        {
            return *ends;
        }
        let ends = self.find_ends(local.as_deref(), peer.as_deref());
        let slot = self.next_recent % self.recent.len();
        self.recent[slot] = Some((local.clone(), peer.clone(), ends));
        self.next_recent = self.next_recent.wrapping_add(1);
        ends
    }

    /// The pair's two texts: `127.0.0.1:41234` for an IPv4 end, as `SocketAddr` writes it.
    fn ends_texts(&self, ends: Ends) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
        let v4 = |ip: u32, port: u32| Some(Cow::Owned(v4_text(ip, port).to_string()));
        match self.ends.get(ends.0 as usize) {
            Some(&[V4_PAIR, local, peer, ports]) => (v4(local, ports >> 16), v4(peer, ports)),
            Some(&[start, len, peer_start, peer_len]) => (
                self.get(start, len).map(Cow::Borrowed),
                self.get(peer_start, peer_len).map(Cow::Borrowed),
            ),
            None => (None, None),
        }
    }

    fn task(&mut self, task: &Arc<str>) -> u32 {
        if let Some(last) = self.tasks.get(self.last_task as usize) {
            if Arc::ptr_eq(last, task) || **last == **task {
                return self.last_task;
            }
        }
        let hash = hash_of(&**task);
        let id = match self.tasks_by_hash.get(&hash) {
            Some(&id) if *self.tasks[id as usize] == **task => id,
            found => {
                self.tasks.push(task.clone());
                let id = self.tasks.len() as u32 - 1;
                if found.is_none() {
                    self.tasks_by_hash.insert(hash, id);
                }
                id
            }
        };
        self.last_task = id;
        id
    }
}

fn v4_text(ip: u32, port: u32) -> Arc<str> {
    let addr = SocketAddrV4::new(Ipv4Addr::from(ip), (port & 0xffff) as u16);
    crate::net::addr::text_of(SocketAddr::V4(addr))
}

fn hash_of<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
    use std::hash::BuildHasher;
    std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(value)
}

/// Either a pair the transcript already keeps, or the texts of one to find or add.
#[derive(Clone, Copy)]
enum EndsOf<'a> {
    Kept(Ends),
    Shared(&'a Option<Arc<str>>, &'a Option<Arc<str>>),
}

/// Shared texts for the addresses of the events a snapshot hands out: one per pair, however
/// many events name it.
struct Shared {
    ends: Vec<Option<SharedEnds>>,
    /// The latest IPv4 peer's text: a scenario's connections mostly go to a few servers.
    last_v4_peer: Option<((u32, u32), Arc<str>)>,
}

type SharedEnds = (Option<Arc<str>>, Option<Arc<str>>);

impl Events {
    fn arena(&self, e: &Stored) -> &Arena {
        if e.data_len() > PREVIEW_BYTES {
            &self.whole
        } else {
            &self.short
        }
    }

    /// A pair's texts as the events a snapshot hands out share them.
    fn shared_ends(
        &self,
        ends: Ends,
        last_v4_peer: &mut Option<((u32, u32), Arc<str>)>,
    ) -> SharedEnds {
        match self.names.ends.get(ends.0 as usize) {
            Some(&[V4_PAIR, local, peer, ports]) => {
                let peer_end = (peer, ports & 0xffff);
                let peer = match last_v4_peer {
                    Some((end, text)) if *end == peer_end => text.clone(),
                    _ => {
                        let text = v4_text(peer, ports);
                        *last_v4_peer = Some((peer_end, text.clone()));
                        text
                    }
                };
                (Some(v4_text(local, ports >> 16)), Some(peer))
            }
            _ => {
                let (local, peer) = self.names.ends_texts(ends);
                (
                    local.as_deref().map(Arc::from),
                    peer.as_deref().map(Arc::from),
                )
            }
        }
    }

    /// The event as views read it; its payload shares the arena (see [`Arena::share`]).
    fn view(&self, e: &Stored, shared: &mut Shared) -> Event {
        let arena = self.arena(e);
        let data_end = e.offset + e.data_len();
        let slot = e.ends.0 as usize;
        let (local, peer) = match shared.ends.get(slot) {
            Some(Some(pair)) => pair.clone(),
            Some(None) => {
                let pair = self.shared_ends(e.ends, &mut shared.last_v4_peer);
                shared.ends[slot] = Some(pair.clone());
                pair
            }
            None => (None, None),
        };
        Event {
            at: Duration::from_nanos(e.at_nanos),
            task: self.names.tasks[e.task as usize].clone(),
            position: At::unpack(e.position),
            kind: e.kind,
            on: On {
                conn: (e.conn != NO_CONN).then_some(e.conn),
                transport: e.transport,
            },
            local,
            peer,
            data: arena.share(e.offset, e.data_len()),
            len: e.len,
            note: (e.note_len != NO_NOTE).then(|| {
                let note = arena.get(data_end, e.note_len as usize);
                String::from_utf8_lossy(note).into_owned()
            }),
        }
    }

    /// Where the arena already holds `kept`, as the payload of the last event of the same
    /// connection and kind (a sender repeating one Blob, a peer streaming the same bytes), so
    /// the two events share it. Looks back over a few events only, and never for a payload
    /// that has a note (the note follows its payload).
    fn same_as_before(&self, on: On, kind: EventKind, kept: &[u8]) -> Option<usize> {
        if kept.is_empty() {
            return None;
        }
        let conn = on.conn.unwrap_or(NO_CONN);
        let before = self
            .list
            .iter()
            .rev()
            .take(LOOK_BACK)
            .find(|e| e.conn == conn && e.kind == kind)?;
        (before.note_len == NO_NOTE
            && before.data_len() == kept.len()
            && self.arena(before).get(before.offset, kept.len()) == kept)
            .then_some(before.offset)
    }
}

/// How many events back [`Events::same_as_before`] looks for the previous payload of a
/// connection and kind: enough for the two directions of a few connections taking turns.
const LOOK_BACK: usize = 8;

impl Transcript {
    /// A transcript that keeps `capture` payload bytes whole (`--limit capture`).
    pub fn new(started: Instant, capture: usize) -> Self {
        Self::build(started, capture, None)
    }

    /// A transcript that also hands each event to `sink` as it happens (`--trace` in run mode).
    pub fn with_live(
        started: Instant,
        capture: usize,
        sink: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Self {
        Self::build(started, capture, Some(Box::new(sink)))
    }

    fn build(started: Instant, capture: usize, live: Option<Sink>) -> Self {
        Transcript {
            inner: Arc::new(Inner {
                started,
                capture,
                events: Mutex::new(Events::default()),
                live,
            }),
        }
    }

    /// Keep a connection's two addresses, for [`Transcript::record_on`]: its events then name
    /// them by number.
    pub fn ends(&self, local: Option<&str>, peer: Option<&str>) -> Ends {
        let mut events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        events.names.add_ends(local, peer)
    }

    /// [`Transcript::ends`] for a connection's IP addresses (named as `SocketAddr` writes
    /// them), kept as numbers rather than texts when both are IPv4.
    pub fn ip_ends(&self, local: SocketAddr, peer: SocketAddr) -> Ends {
        let mut events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        events.names.add_ip_ends(local, peer)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        task: Arc<str>,
        position: Option<At>,
        kind: EventKind,
        on: On,
        local: Option<Arc<str>>,
        peer: Option<Arc<str>>,
        payload: &[u8],
        note: Option<String>,
    ) {
        let ends = EndsOf::Shared(&local, &peer);
        self.push(&task, position, kind, on, ends, payload, note);
    }

    /// [`Transcript::record`] for an event between addresses kept by [`Transcript::ends`].
    #[allow(clippy::too_many_arguments)]
    pub fn record_on(
        &self,
        task: &Arc<str>,
        position: Option<At>,
        kind: EventKind,
        on: On,
        ends: Ends,
        payload: &[u8],
        note: Option<String>,
    ) {
        self.push(task, position, kind, on, EndsOf::Kept(ends), payload, note);
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        task: &Arc<str>,
        position: Option<At>,
        kind: EventKind,
        on: On,
        ends: EndsOf<'_>,
        payload: &[u8],
        note: Option<String>,
    ) {
        let at = self.inner.started.elapsed();
        let note = note.map(|mut n| {
            let keep = truncate_utf8(&n, MAX_NOTE).len();
            n.truncate(keep);
            n
        });
        let mut events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        // A payload is kept whole while the scenario's total stays within the limit (and is
        // under 4 GiB, as before); the first that does not fit ends whole payloads.
        let whole = !events.full
            && payload.len() <= u32::MAX as usize
            && events.captured.saturating_add(payload.len()) <= self.inner.capture;
        let kept = if whole {
            events.captured += payload.len();
            payload
        } else {
            events.full = true;
            &payload[..payload.len().min(PREVIEW_BYTES)]
        };
        let cut = (payload.len() - kept.len()) as u64;
        if let Some(live) = &self.inner.live {
            let (local, peer) = match ends {
                EndsOf::Kept(ends) => events.names.ends_texts(ends),
                EndsOf::Shared(local, peer) => (
                    local.as_deref().map(Cow::Borrowed),
                    peer.as_deref().map(Cow::Borrowed),
                ),
            };
            let (local, peer) = (local.as_deref(), peer.as_deref());
            live(&Event {
                at,
                task: task.clone(),
                position,
                kind,
                on,
                local: local.map(Arc::from),
                peer: peer.map(Arc::from),
                data: Bytes::copy_from_slice(&kept[..kept.len().min(PREVIEW_BYTES)]),
                len: payload.len(),
                note: note.clone(),
            });
        }
        if events.list.len() >= MAX_EVENTS {
            events.dropped.events += 1;
            events.dropped.bytes += payload.len() as u64;
            return;
        }
        events.dropped.bytes += cut;
        let ends = match ends {
            EndsOf::Kept(ends) => ends,
            EndsOf::Shared(local, peer) => events.names.find_shared(local, peer),
        };
        let task = events.names.task(task);
        let shared = match note {
            None => events.same_as_before(on, kind, kept),
            Some(_) => None,
        };
        let offset = shared.unwrap_or_else(|| {
            let note = note.as_deref().unwrap_or_default().as_bytes();
            if kept.len() > PREVIEW_BYTES {
                events.whole.push(kept, note)
            } else {
                events.short.push(kept, note)
            }
        });
        events.list.push(Stored {
            at_nanos: u64::try_from(at.as_nanos()).unwrap_or(u64::MAX),
            len: payload.len(),
            offset,
            // MAX_NOTE fits.
            note_len: note.map_or(NO_NOTE, |n| n.len() as u32),
            conn: on.conn.unwrap_or(NO_CONN),
            position: At::pack(position),
            task,
            ends,
            kind,
            transport: on.transport,
            whole,
        });
    }

    /// What was not kept so far.
    pub fn dropped(&self) -> Dropped {
        let events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        events.dropped
    }

    /// Every event so far, and what was not kept. The payloads share the transcript's arena
    /// rather than being copied: [`keep_previews`] or [`keep_within`] cut the long ones.
    pub fn snapshot(&self) -> (Vec<Event>, Dropped) {
        let mut events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        events.whole.close_open();
        events.short.close_open();
        let mut shared = Shared {
            ends: vec![None; events.names.ends.len()],
            last_v4_peer: None,
        };
        let list = events
            .list
            .iter()
            .map(|e| events.view(e, &mut shared))
            .collect();
        (list, events.dropped)
    }
}

/// Cut each payload to its first [`PREVIEW_BYTES`] bytes, in a buffer of its own (a slice would
/// keep the whole payload alive). `len` keeps counting the payload's full length.
pub fn keep_previews(events: &mut [Event]) {
    for event in events {
        if event.data.len() > PREVIEW_BYTES {
            event.data = Bytes::copy_from_slice(&event.data[..PREVIEW_BYTES]);
        }
    }
}

/// Keep each payload whole while `budget` (bytes past the previews, shared by every caller)
/// lasts, then its [`PREVIEW_BYTES`] preview: a run that keeps whole payloads for a report
/// holds at most `budget` more than one that keeps previews, however many scenarios it has.
/// What is kept is copied out of the transcript's arena, so it holds no more of it.
pub fn keep_within(events: &mut [Event], budget: &AtomicUsize) {
    for event in events {
        let past = event.data.len().saturating_sub(PREVIEW_BYTES);
        if past == 0 {
            continue;
        }
        let left = budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            Some(left - left.min(past))
        });
        let granted = left.unwrap_or(0).min(past);
        let keep = PREVIEW_BYTES + granted;
        event.data = Bytes::copy_from_slice(&event.data[..keep]);
    }
}

/// The longest note an event keeps (error messages are far shorter).
const MAX_NOTE: usize = 64 * 1024;
const _: () = assert!(PREVIEW_BYTES <= u32::MAX as usize && MAX_NOTE < NO_NOTE as usize);

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
            let arrow = match event.dir() {
                Some(Dir::In) => "<-",
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
    // After the addresses, so the columns before them stay where they were.
    match (event.on.transport, event.on.conn) {
        (Some(t), Some(c)) => {
            let _ = write!(out, " {}#{c}", t.as_str());
        }
        (Some(t), None) => {
            let _ = write!(out, " {}", t.as_str());
        }
        (None, Some(c)) => {
            let _ = write!(out, " #{c}");
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
        // A trace is read by people: it shows a preview even of a payload kept whole.
        let shown = &event.data[..event.data.len().min(PREVIEW_BYTES)];
        out.push('\n');
        out.push_str(&render_payload(shown, "    "));
        if event.len > shown.len() {
            let _ = write!(out, "\n    … {} more bytes", event.len - shown.len());
            if event.len > event.data.len() {
                out.push_str(" (not kept: past `--limit capture`)");
            }
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
    fn payloads_are_kept_whole_while_the_budget_lasts_then_previews() {
        let event = |n: usize| Event {
            data: Bytes::from(vec![b'x'; n]),
            len: n,
            ..Event::for_test(1, EventKind::Send, "a", "b", b"")
        };
        let budget = AtomicUsize::new(3000);
        let mut events = vec![
            event(10),
            event(PREVIEW_BYTES + 2000),
            event(PREVIEW_BYTES + 2000),
        ];
        keep_within(&mut events, &budget);
        let kept: Vec<usize> = events.iter().map(|e| e.data.len()).collect();
        assert_eq!(kept, [10, PREVIEW_BYTES + 2000, PREVIEW_BYTES + 1000]);
        assert_eq!(events[2].len, PREVIEW_BYTES + 2000);
        let mut more = vec![event(PREVIEW_BYTES + 5)];
        keep_within(&mut more, &budget);
        assert_eq!(more[0].data.len(), PREVIEW_BYTES);
    }

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
            position: None,
            kind: EventKind::Error,
            on: On::default(),
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
    fn outcomes_keep_previews_of_payloads_kept_whole() {
        let t = Transcript::new(Instant::now(), DEFAULT_CAPTURE);
        let big = vec![b'x'; 3 * PREVIEW_BYTES];
        t.record(
            "main".into(),
            None,
            EventKind::Recv,
            On::default(),
            None,
            None,
            &big,
            None,
        );
        t.record(
            "main".into(),
            None,
            EventKind::Recv,
            On::default(),
            None,
            None,
            b"hi",
            None,
        );
        let (mut events, _) = t.snapshot();
        assert_eq!(
            events[0].data.len(),
            big.len(),
            "kept whole within the capture"
        );
        keep_previews(&mut events);
        assert_eq!(events[0].data.len(), PREVIEW_BYTES);
        assert_eq!(events[0].len, big.len());
        assert_eq!(&events[1].data[..], b"hi");
    }

    #[test]
    fn events_come_back_as_recorded() {
        let t = Transcript::new(Instant::now(), DEFAULT_CAPTURE);
        let (local, peer): (Arc<str>, Arc<str>) = ("127.0.0.1:1".into(), "127.0.0.1:2".into());
        t.record(
            "main".into(),
            None,
            EventKind::Connect,
            On::default(),
            Some(local.clone()),
            Some(peer.clone()),
            b"",
            None,
        );
        t.record(
            "task 1".into(),
            None,
            EventKind::Recv,
            On::default(),
            Some(local),
            Some(peer),
            b"hello",
            None,
        );
        t.record(
            "main".into(),
            None,
            EventKind::Error,
            On::default(),
            None,
            None,
            b"",
            Some("recv: timed out \u{e9}".into()),
        );
        t.record(
            "main".into(),
            None,
            EventKind::Send,
            On::default(),
            None,
            None,
            b"\x00\xff",
            Some(String::new()),
        );
        let (events, dropped) = t.snapshot();
        assert_eq!(dropped, Dropped::default());
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
        let t = Transcript::new(Instant::now(), DEFAULT_CAPTURE);
        t.record(
            "main".into(),
            None,
            EventKind::Send,
            On::default(),
            None,
            None,
            &[b'a'; 5000],
            None,
        );
        let (events, dropped) = t.snapshot();
        assert_eq!(dropped, Dropped::default());
        assert_eq!(events[0].len, 5000);
        assert_eq!(
            events[0].data.len(),
            5000,
            "within the capture limit: whole"
        );
    }

    fn send(t: &Transcript, len: usize) {
        t.record(
            "main".into(),
            None,
            EventKind::Send,
            On::default(),
            None,
            None,
            &vec![b'a'; len],
            None,
        );
    }

    #[test]
    fn payloads_are_whole_up_to_the_capture_limit_then_previews() {
        // Exactly at the limit: everything kept.
        let t = Transcript::new(Instant::now(), 3000);
        send(&t, 1000);
        send(&t, 2000);
        let (events, dropped) = t.snapshot();
        assert_eq!(dropped, Dropped::default());
        assert_eq!(events[1].data.len(), 2000);
        // One byte past it: that payload and every one after keep a preview.
        let t = Transcript::new(Instant::now(), 3000);
        send(&t, 1000);
        send(&t, 2001);
        send(&t, 10);
        send(&t, 1500);
        let (events, dropped) = t.snapshot();
        let kept: Vec<_> = events.iter().map(|e| (e.len, e.data.len())).collect();
        assert_eq!(
            kept,
            [
                (1000, 1000),
                (2001, PREVIEW_BYTES),
                (10, 10),
                (1500, PREVIEW_BYTES)
            ]
        );
        assert_eq!(
            dropped,
            Dropped {
                bytes: (2001 - PREVIEW_BYTES + 1500 - PREVIEW_BYTES) as u64,
                events: 0
            }
        );
        let shown = render_event(&events[1]);
        assert!(
            shown.ends_with("… 977 more bytes (not kept: past `--limit capture`)"),
            "{shown}"
        );
    }

    /// `main`'s event, at no script position and with no addresses.
    fn record(t: &Transcript, kind: EventKind, on: On, data: &[u8], note: Option<String>) {
        t.record("main".into(), None, kind, on, None, None, data, note);
    }

    /// `n` bytes that differ from one call to the next (a small generator, seeded).
    fn varied(seed: &mut u32, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (*seed >> 16) as u8
            })
            .collect()
    }

    #[test]
    fn payloads_and_notes_come_back_across_arena_chunks_and_snapshots() {
        // Lengths around a preview and past a chunk, some with notes; snapshots taken between
        // records (the arena keeps writing after one) must all read back what was recorded.
        let t = Transcript::new(Instant::now(), MAX_CHUNK + 2 * 1024 * 1024);
        let mut seed = 7;
        let mut want = Vec::new();
        for i in 0..400usize {
            let len = match i % 7 {
                0 => 0,
                1 => PREVIEW_BYTES,
                2 => PREVIEW_BYTES + 1,
                3 => 40_000,
                4 if i % 50 == 4 => MAX_CHUNK + 3,
                _ => i * 13,
            };
            let data = varied(&mut seed, len);
            let note = (i % 3 == 0).then(|| format!("note {i}"));
            record(&t, EventKind::Send, On::default(), &data, note.clone());
            want.push((data, note));
            if i % 50 == 49 {
                let (events, _) = t.snapshot();
                assert_eq!(events.len(), want.len());
            }
        }
        let (events, dropped) = t.snapshot();
        assert!(dropped.bytes > 0, "past the capture too");
        for (i, (e, (data, note))) in events.iter().zip(&want).enumerate() {
            assert_eq!(e.len, data.len(), "event {i}");
            assert_eq!(&e.data[..], &data[..e.data.len()], "event {i}");
            assert!(e.data.len() == data.len() || e.data.len() == PREVIEW_BYTES);
            assert_eq!(e.note, *note, "event {i}");
        }
    }

    #[test]
    fn a_payload_repeated_on_a_connection_is_kept_once_and_read_back_for_each() {
        let t = Transcript::new(Instant::now(), 4 * PREVIEW_BYTES);
        let on = |conn| On {
            conn: Some(conn),
            transport: Some(Transport::Tcp),
        };
        let blob = vec![b'x'; 2 * PREVIEW_BYTES];
        let other = vec![b'y'; 2 * PREVIEW_BYTES];
        let rec = |conn, kind, data: &[u8], note: Option<&str>| {
            record(&t, kind, on(conn), data, note.map(str::to_owned));
        };
        // Two kept whole (the second shares the first), then previews past the capture.
        for _ in 0..50 {
            rec(1, EventKind::Send, &blob, None);
            rec(2, EventKind::Recv, &other, None);
            rec(1, EventKind::Recv, &blob, None);
        }
        rec(1, EventKind::Send, &blob, Some("with a note"));
        rec(1, EventKind::Send, &other, None);
        rec(1, EventKind::Recv, &other, None);
        let (events, dropped) = t.snapshot();
        {
            let kept = t.inner.events.lock().unwrap_or_else(|p| p.into_inner());
            // Whole: one `blob` and one `other`. Previews: one each for (1, send), (2, recv)
            // and (1, recv), the one with a note and the two changed payloads.
            assert_eq!(kept.whole.len(), 2 * blob.len());
            assert_eq!(kept.short.len(), 6 * PREVIEW_BYTES + "with a note".len());
        }
        // 153 events, two kept whole: each of the rest dropped all past its preview.
        assert_eq!(dropped.bytes, 151 * PREVIEW_BYTES as u64);
        let seen: Vec<_> = events.iter().map(|e| (e.data[0], e.data.len())).collect();
        let mut want = vec![
            (b'x', blob.len()),
            (b'y', other.len()),
            (b'x', PREVIEW_BYTES),
        ];
        for _ in 1..50 {
            want.extend([
                (b'x', PREVIEW_BYTES),
                (b'y', PREVIEW_BYTES),
                (b'x', PREVIEW_BYTES),
            ]);
        }
        want.extend([
            (b'x', PREVIEW_BYTES),
            (b'y', PREVIEW_BYTES),
            (b'y', PREVIEW_BYTES),
        ]);
        assert_eq!(seen, want);
        assert_eq!(events[150].note.as_deref(), Some("with a note"));
        assert!(events
            .iter()
            .all(|e| e.data.iter().all(|&b| b == e.data[0])));
    }

    #[test]
    fn events_past_the_most_kept_are_counted_with_their_bytes() {
        let t = Transcript::new(Instant::now(), DEFAULT_CAPTURE);
        for _ in 0..MAX_EVENTS {
            send(&t, 0);
        }
        send(&t, 7);
        send(&t, 0);
        let (events, dropped) = t.snapshot();
        assert_eq!(events.len(), MAX_EVENTS);
        assert_eq!(
            dropped,
            Dropped {
                bytes: 7,
                events: 2
            }
        );
    }

    #[test]
    fn tasks_and_addresses_are_kept_once_and_come_back_with_every_event() {
        let seen_live = Arc::new(Mutex::new(Vec::new()));
        let live = seen_live.clone();
        let t = Transcript::with_live(Instant::now(), DEFAULT_CAPTURE, move |e: &Event| {
            let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
            live.push((e.task.to_string(), e.local.clone(), e.peer.clone()));
        });
        let (main, task): (Arc<str>, Arc<str>) = ("main".into(), "task 1".into());
        let conn = t.ends(Some("127.0.0.1:1"), Some("127.0.0.1:2"));
        let other = t.ends(Some("127.0.0.1:2"), Some("127.0.0.1:1"));
        for round in 0..3 {
            t.record_on(
                &main,
                None,
                EventKind::Send,
                On::default(),
                conn,
                b"x",
                None,
            );
            t.record_on(
                &task,
                None,
                EventKind::Recv,
                On::default(),
                other,
                b"x",
                None,
            );
            // By text, as a listener or a UDP socket records: each pair is kept once.
            let peer = format!("10.0.0.{}:7", round % 2);
            t.record(
                "task 1".into(),
                None,
                EventKind::Recv,
                On::default(),
                Some("0.0.0.0:9".into()),
                Some(peer.as_str().into()),
                b"",
                None,
            );
            t.record(
                main.clone(),
                None,
                EventKind::Listen,
                On::default(),
                Some("0.0.0.0:9".into()),
                None,
                b"",
                None,
            );
        }
        let (events, _) = t.snapshot();
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.task.to_string(), e.local.clone(), e.peer.clone()))
            .collect();
        let text = |s: &str| Some(Arc::<str>::from(s));
        let mut expected = Vec::new();
        for round in 0..3 {
            expected.push(("main".to_owned(), text("127.0.0.1:1"), text("127.0.0.1:2")));
            expected.push((
                "task 1".to_owned(),
                text("127.0.0.1:2"),
                text("127.0.0.1:1"),
            ));
            let peer = format!("10.0.0.{}:7", round % 2);
            expected.push(("task 1".to_owned(), text("0.0.0.0:9"), text(&peer)));
            expected.push(("main".to_owned(), text("0.0.0.0:9"), None));
        }
        assert_eq!(seen, expected);
        assert_eq!(
            *seen_live.lock().unwrap_or_else(|p| p.into_inner()),
            expected
        );
        let events = t.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        // Two connections, two listener-socket peers and the listen.
        assert_eq!(events.names.ends.len(), 5);
        assert_eq!(events.names.tasks.len(), 2);
        // A pair's events share its texts.
        drop(events);
        let (events, _) = t.snapshot();
        assert!(Arc::ptr_eq(
            events[0].local.as_ref().unwrap_or(&main),
            events[4].local.as_ref().unwrap_or(&task)
        ));
    }

    #[test]
    fn a_relay_s_legs_are_found_again_by_their_shared_texts() {
        let t = Transcript::new(Instant::now(), DEFAULT_CAPTURE);
        let text = |s: &str| Some(Arc::<str>::from(s));
        let (down, up) = (
            (text("127.0.0.1:1"), text("127.0.0.1:2")),
            (text("127.0.0.1:3"), text("127.0.0.1:4")),
        );
        for _ in 0..10 {
            for (local, peer) in [&down, &up] {
                t.record(
                    "proxy".into(),
                    None,
                    EventKind::Recv,
                    On::default(),
                    local.clone(),
                    peer.clone(),
                    b"x",
                    None,
                );
            }
        }
        let (events, _) = t.snapshot();
        assert_eq!(events.len(), 20);
        for (i, e) in events.iter().enumerate() {
            let (local, peer) = if i % 2 == 0 { &down } else { &up };
            assert_eq!((&e.local, &e.peer), (local, peer));
        }
        let events = t.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(events.names.ends.len(), 2);
        assert_eq!(events.names.tasks.len(), 1);
    }

    #[test]
    fn ip_ends_come_back_as_socket_addresses_write_them() {
        let t = Transcript::new(Instant::now(), DEFAULT_CAPTURE);
        let main: Arc<str> = "main".into();
        let pairs: [(SocketAddr, SocketAddr); 3] = [
            (
                ([127, 0, 0, 1], 41234).into(),
                ([10, 1, 2, 3], 65535).into(),
            ),
            (([0, 0, 0, 0], 0).into(), ([255, 255, 255, 255], 1).into()),
            (
                "[::1]:8080".parse().unwrap_or(([1, 1, 1, 1], 1).into()),
                ([127, 0, 0, 1], 9).into(),
            ),
        ];
        for (local, peer) in pairs {
            let ends = t.ip_ends(local, peer);
            t.record_on(&main, None, EventKind::Send, On::default(), ends, b"", None);
        }
        let (events, _) = t.snapshot();
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.local.as_deref().map(str::to_owned),
                    e.peer.as_deref().map(str::to_owned),
                )
            })
            .collect();
        let expected: Vec<_> = pairs
            .iter()
            .map(|(l, p)| (Some(l.to_string()), Some(p.to_string())))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn an_event_stays_small() {
        // A benchmark holds ten thousand connections: events name their task and addresses
        // by number.
        assert!(
            std::mem::size_of::<Stored>() <= 48,
            "{}",
            std::mem::size_of::<Stored>()
        );
    }

    #[test]
    fn script_positions_come_back_and_payload_lengths_follow_from_whole() {
        let t = Transcript::new(Instant::now(), 3000);
        let at = |line, column| Some(At { line, column });
        let cases = [
            (at(1, 1), 10),
            (at(65535, 65535), 3000),
            (None, 2000),
            (at(7, 12), 0),
        ];
        for (position, len) in cases {
            t.record(
                "main".into(),
                position,
                EventKind::Send,
                On::default(),
                None,
                None,
                &vec![b'a'; len],
                Some("n".into()),
            );
        }
        let (events, _) = t.snapshot();
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.position, e.len, e.data.len(), e.note.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (at(1, 1), 10, 10, Some("n")),
                // Past the capture: a preview, and the note still after it.
                (at(65535, 65535), 3000, PREVIEW_BYTES, Some("n")),
                (None, 2000, PREVIEW_BYTES, Some("n")),
                (at(7, 12), 0, 0, Some("n")),
            ]
        );
        // Past what rhai counts: kept at the most, not wrapped.
        assert_eq!(
            At::unpack(At::pack(at(70_000, 1))),
            at(u32::from(u16::MAX), 1)
        );
    }

    #[test]
    fn connection_transport_and_direction_come_back_and_show_in_a_trace() {
        let t = Transcript::new(Instant::now(), DEFAULT_CAPTURE);
        let on = On {
            conn: Some(7),
            transport: Some(Transport::Tls),
        };
        for kind in [EventKind::Send, EventKind::Recv, EventKind::Close] {
            t.record(
                "main".into(),
                None,
                kind,
                on,
                Some("127.0.0.1:1".into()),
                Some("127.0.0.1:2".into()),
                b"",
                None,
            );
        }
        let (events, _) = t.snapshot();
        let seen: Vec<_> = events.iter().map(|e| (e.on, e.dir())).collect();
        assert_eq!(
            seen,
            [(on, Some(Dir::Out)), (on, Some(Dir::In)), (on, None)]
        );
        assert_eq!(
            render_event(&events[1])
                .split_once(']')
                .map(|(_, rest)| rest),
            Some(" main     recv     127.0.0.1:1 <- 127.0.0.1:2 tls#7 (0 bytes)")
        );
    }
}
