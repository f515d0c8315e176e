//! A connected stream: a read half with its persistent buffer and a write half, each behind its
//! own async mutex so one task may send while another receives.
//!
//! The read half is the reader: one loop, `Conn::read`, owns the buffer, the deadline and
//! cancellation, and how the socket is read; how many bytes answer a read (`recv`, `recv_exact`,
//! `recv_until`, `recv_line`, `recv_all`, `expect`) is a decoder's call, from [`super::decode`].
//!
//! Reads are cancel-safe: they only ever read into the connection's buffer (straight from a
//! plain socket, or `read_buf` under TLS) and take from it once the decoder has a whole frame,
//! so a read that times out loses nothing. A plain socket's read that finds nothing spins
//! briefly, then waits on the socket's readiness.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard};

use super::addr::{self, Address, Endpoint};
use super::bridge::{AddrName, CloseSignal, HandleSlot, HandleTimeout, Opening, Session};
use super::call::Call;
use super::decode::{self, Decoded, Decoder, Match};
use super::error::{ErrorKind, NetError};
use super::stream::{self, Opened};
use super::tls::{ClientTls, TlsInfo};
use super::transport::{ReadIo, Sink, Source, WriteIo};
use crate::transcript::{Ends, EventKind, On, Transport};

/// How much room the first read of a connection asks for: small, so ten thousand idle
/// connections stay small.
const FIRST_READ: usize = 512;
/// How far the room a read asks for grows while reads keep filling it (bulk transfers).
const MAX_READ: usize = 256 * 1024;
/// An empty buffer bigger than this is given back rather than kept for the next read.
const KEEP_EMPTY: usize = 1024 * 1024;
/// The smallest exact read that gets a buffer of its own (see [`Conn::read`]); smaller
/// answers are cheaper to copy than to allocate for.
const OWN_BUFFER_MIN: usize = 4096;
/// How much of the unread buffer a failure diagnostic shows.
const RECEIVED_PREVIEW: usize = 4096;

/// A connection handle; clones share the socket.
#[derive(Clone)]
pub struct Conn {
    inner: Arc<Inner>,
}

struct Inner {
    session: Arc<Session>,
    local: End,
    peer: End,
    /// The transcript's connection id for this connection's events.
    conn: u32,
    /// Its two addresses, as the transcript keeps them for its events.
    ends: Ends,
    /// Boxed: most connections are plain, and a scenario may hold ten thousand.
    tls: Option<Box<TlsInfo>>,
    reader: AsyncMutex<Reader>,
    writer: AsyncMutex<Writer>,
    /// The handle's own deadline in nanoseconds; `u64::MAX` for the session default.
    timeout: HandleTimeout,
    closed: CloseSignal,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The handle slot this connection took (see `from_opened`).
        self.session.release_handle();
    }
}

/// One end of a connection as the connection keeps it: an IP end as its address, whose text
/// (`127.0.0.1:41234`, as [`Endpoint::new`] writes it) is made only when something asks for
/// it; any other end (a Unix socket, a process) as its text. Ten thousand connections keep no
/// address texts.
enum End {
    Ip(SocketAddr),
    Named(Arc<str>),
    /// This side of a child process's pipes: a named end that also says what carries the
    /// connection (see [`Conn::transport`]).
    Pipe(Arc<str>),
}

impl End {
    fn of(end: Endpoint) -> End {
        match end.addr {
            Some(addr) => End::Ip(addr),
            None => End::Named(end.text),
        }
    }

    fn endpoint(&self) -> Endpoint {
        match self {
            End::Ip(addr) => Endpoint::new(*addr),
            End::Named(text) | End::Pipe(text) => Endpoint {
                addr: None,
                text: text.clone(),
            },
        }
    }

    fn text(&self) -> Cow<'_, str> {
        match self {
            End::Ip(addr) => Cow::Owned(addr.to_string()),
            End::Named(text) | End::Pipe(text) => Cow::Borrowed(text),
        }
    }
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Ip(addr) => addr.fmt(f),
            End::Named(text) | End::Pipe(text) => f.write_str(text),
        }
    }
}

impl AddrName for &End {
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(self.text())
    }
}

struct Reader {
    io: Option<ReadIo>,
    buf: BytesMut,
    eof: bool,
    /// How much room the next read asks for; doubles while reads fill what they were given (to
    /// [`MAX_READ`]).
    read_size: u32,
}

/// Whether a send may start on a connection whose writer is `w`: not after a send cut off
/// part-way, nor after `shutdown`.
fn may_send(w: &Writer, op: &'static str, addr: &End) -> Result<(), NetError> {
    if w.interrupted {
        return Err(NetError::new(
            ErrorKind::Io,
            op,
            Some(&addr.text()),
            format!(
                "{op} to `{addr}`: an earlier send was cut off part-way, so what the peer has \
                 received is unknown; open a new connection"
            ),
        ));
    }
    if w.shut {
        return Err(NetError::new(
            ErrorKind::Closed,
            op,
            Some(&addr.text()),
            format!("{op} to `{addr}`: this side was shut down for sending"),
        ));
    }
    Ok(())
}

/// What [`Conn::send_now`] did.
enum Now<'a> {
    Sent,
    Failed(NetError),
    /// Sent this many bytes (perhaps none: the transport was full, or writes only by waiting);
    /// the rest waits, the writer still held so that no other send comes between.
    Partly(AsyncMutexGuard<'a, Writer>, usize),
    /// Tried nothing: the waiting path takes the whole send.
    Wait,
}

struct Writer {
    io: Option<WriteIo>,
    /// A send was cut off part-way (timeout or cancellation): what the peer got is unknown.
    interrupted: bool,
    shut: bool,
}

impl Conn {
    /// Connect to `addr` (`host:port` or `unix:/path`), trying each address a name resolves
    /// to, then do the TLS handshake if `tls` asks for it; all under one deadline.
    pub fn connect(
        session: &Arc<Session>,
        call: &Call,
        addr: &str,
        timeout: Option<Duration>,
        tls: Option<&ClientTls>,
    ) -> Result<Conn, NetError> {
        let address = addr::parse_address("connect", addr)?;
        let slot = session.open_handle("connect", addr)?;
        let opened = session.block_on(
            call,
            "connect",
            Some(addr),
            timeout,
            stream::connect("connect", &address, addr, tls),
        );
        let opened = opened.inspect_err(|e| {
            let transport = match (&address, tls) {
                (_, Some(_)) => Transport::Tls,
                (Address::Unix(_), None) => Transport::Unix,
                (Address::Ip(_), None) => Transport::Tcp,
            };
            session.record(
                call,
                EventKind::Error,
                On {
                    conn: None,
                    transport: Some(transport),
                },
                None,
                Some(Arc::from(addr)),
                b"",
                Some(e.message.clone()),
            )
        })?;
        // A Unix connection to this scenario's own listener is counted once, when accepted,
        // and its accept shares its id.
        let opening = match &address {
            Address::Unix(path) if session.listens_on(path) => Opening::ConnectOwn(path),
            _ => Opening::Connect,
        };
        let conn = Conn::from_opened(session, opened, opening, slot);
        conn.record(call, EventKind::Connect, b"", conn.tls_note());
        Ok(conn)
    }

    /// Retry connecting to `addr` until something accepts, for services still starting.
    /// Each probe connection is closed at once. Returns how many attempts it took.
    pub fn wait_for(
        session: &Arc<Session>,
        call: &Call,
        addr: &str,
        timeout: Duration,
    ) -> Result<u32, NetError> {
        let address = addr::parse_address("wait_for", addr)?;
        // Why the latest attempt failed, for the message when time runs out.
        let mut last = String::from("no attempt finished");
        let waited = session.block_on(call, "wait_for", Some(addr), Some(timeout), async {
            let mut attempts = 0;
            let mut pause = Duration::from_millis(10);
            loop {
                attempts += 1;
                match stream::connect("wait_for", &address, addr, None).await {
                    Ok(_) => return Ok(attempts),
                    Err(e) if e.kind == ErrorKind::Dns || e.kind == ErrorKind::InvalidAddress => {
                        return Err(e)
                    }
                    Err(e) => last = e.message.clone(),
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        });
        waited.map_err(|e| match e.kind {
            ErrorKind::Timeout => NetError::new(
                ErrorKind::Timeout,
                "wait_for",
                Some(addr),
                format!(
                    "wait_for `{addr}`: nothing accepted a connection within {} (last attempt: {})",
                    super::fmt_duration(timeout),
                    last.rsplit(": ").next().unwrap_or(&last)
                ),
            ),
            _ => e,
        })
    }

    pub(crate) fn from_opened(
        session: &Arc<Session>,
        mut opened: Opened,
        opening: Opening<'_>,
        slot: HandleSlot,
    ) -> Conn {
        let ip = stream::ip_key(&opened.local, &opened.peer);
        let id = session.open_unix_or_ip(opening, ip, opened.unix_client.as_deref());
        opened.local.name_unix_client(&opened.peer, id);
        opened.peer.name_unix_client(&opened.local, id);
        let transport = match (&opened.tls, &opened.r, opened.local.addr) {
            (Some(_), _, _) => Transport::Tls,
            (None, ReadIo::Pipe(_), _) => Transport::Process,
            (None, _, Some(_)) => Transport::Tcp,
            (None, _, None) => Transport::Unix,
        };
        let local = match transport {
            Transport::Process => End::Pipe(opened.local.text),
            _ => End::of(opened.local),
        };
        let peer = End::of(opened.peer);
        let ends = match (&local, &peer) {
            (End::Ip(l), End::Ip(p)) => session.transcript().ip_ends(*l, *p),
            _ => session
                .transcript()
                .ends(Some(&local.text()), Some(&peer.text())),
        };
        // The slot is given back when the connection's state drops (`Inner`'s drop).
        slot.keep_in_session();
        session.connection_opened();
        Conn {
            inner: Arc::new(Inner {
                session: session.clone(),
                ends,
                local,
                peer,
                conn: id,
                tls: opened.tls.map(Box::new),
                reader: AsyncMutex::new(Reader {
                    io: Some(opened.r),
                    buf: BytesMut::new(),
                    eof: false,
                    read_size: FIRST_READ as u32,
                }),
                writer: AsyncMutex::new(Writer {
                    io: Some(opened.w),
                    interrupted: false,
                    shut: false,
                }),
                timeout: HandleTimeout::new(),
                closed: CloseSignal::new(),
            }),
        }
    }

    /// What the TLS handshake settled on, for the transcript.
    pub(crate) fn tls_note(&self) -> Option<String> {
        self.inner.tls.as_ref().map(|t| t.note())
    }

    /// The TLS parameters, when this connection is TLS.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.inner.tls.as_deref()
    }

    pub fn local(&self) -> Endpoint {
        self.inner.local.endpoint()
    }

    pub fn peer(&self) -> Endpoint {
        self.inner.peer.endpoint()
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.inner.timeout.get()
    }

    pub fn set_timeout(&self, d: Duration) {
        self.inner.timeout.set(d);
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_closed()
    }

    /// Send all of `data`; returns its length.
    pub fn send(&self, call: &Call, op: &'static str, data: &[u8]) -> Result<usize, NetError> {
        let inner = &self.inner;
        let addr = &self.inner.peer;
        // Recorded as it starts, so the transcript never shows the peer receiving first; a
        // send that then fails is followed by an error event.
        self.record(call, EventKind::Send, data, None);
        // Most sends on a plain socket go into its buffer whole at once: then there is no
        // future to poll, no deadline to work out and no thread to park.
        let (held, rest) = match self.send_now(op, data) {
            Now::Sent => return Ok(data.len()),
            Now::Failed(e) => return Err(self.failed(call, e)),
            Now::Partly(w, sent) => (Some(w), &data[sent..]),
            Now::Wait => (None, data),
        };
        let sent = inner
            .session
            .block_on_to(call, op, addr, self.timeout(), async {
                // A writer held from the first attempt has been looked at there.
                let (mut w, full) = match held {
                    Some(w) => (w, true),
                    None => {
                        let w = inner.writer.lock().await;
                        may_send(&w, op, addr)?;
                        (w, false)
                    }
                };
                let w = &mut *w;
                let io =
                    w.io.as_mut()
                        .ok_or_else(|| NetError::closed(op, Some(&addr.text())))?;
                w.interrupted = true;
                let result = tokio::select! {
                    _ = inner.closed.closed() => Err(NetError::closed(op, Some(&addr.text()))),
                    r = async {
                        if full {
                            io.write_rest(rest).await
                        } else {
                            io.write_all(rest).await
                        }
                    } => r.map_err(|e| NetError::io(op, Some(&addr.text()), &e)),
                };
                w.interrupted = false;
                result
            });
        match sent {
            Ok(()) => Ok(data.len()),
            Err(e) => Err(self.failed(call, e)),
        }
    }

    /// The first attempt of a send, without a future: what the transport takes now
    /// ([`Sink::write_ready`]), when nothing stands in the way (another task's send, an
    /// earlier send cut off, a shut-down or closed connection, cancellation: those take the
    /// waiting path, which says so).
    fn send_now(&self, op: &'static str, data: &[u8]) -> Now<'_> {
        let inner = &self.inner;
        if data.is_empty() || inner.closed.is_closed() || inner.session.is_cancelled() {
            return Now::Wait;
        }
        let Ok(mut w) = inner.writer.try_lock() else {
            return Now::Wait;
        };
        if w.interrupted || w.shut {
            return Now::Wait;
        }
        match w.io.as_mut().and_then(|io| io.write_ready(data)) {
            Some(Ok(sent)) if sent == data.len() => Now::Sent,
            Some(Ok(sent)) => {
                // Cut off part-way unless the rest follows (`Conn::send` clears it then).
                w.interrupted = true;
                Now::Partly(w, sent)
            }
            None => Now::Partly(w, 0),
            // As the waiting path reports it (`Session::block_on_to`): an error that lost the
            // race to cancellation is cancellation.
            Some(Err(_)) if inner.session.is_cancelled() => Now::Failed(NetError::cancelled(op)),
            Some(Err(e)) => Now::Failed(NetError::io(op, Some(&inner.peer.text()), &e)),
        }
    }

    /// Half-close: send FIN, keep receiving.
    pub fn shutdown(&self, call: &Call) -> Result<(), NetError> {
        let inner = &self.inner;
        let addr = &self.inner.peer;
        inner
            .session
            .block_on_to(call, "shutdown", addr, self.timeout(), async {
                let mut w = inner.writer.lock().await;
                if w.shut {
                    return Ok(());
                }
                let io =
                    w.io.as_mut()
                        .ok_or_else(|| NetError::closed("shutdown", Some(&addr.text())))?;
                io.shutdown()
                    .await
                    .map_err(|e| NetError::io("shutdown", Some(&addr.text()), &e))?;
                w.shut = true;
                Ok(())
            })
            .map_err(|e| self.failed(call, e))?;
        self.record(call, EventKind::Shutdown, b"", None);
        Ok(())
    }

    /// Close both directions now. Calls blocked on this connection in other tasks fail with
    /// kind `closed`. Closing twice is harmless.
    pub fn close(&self, call: &Call) {
        let inner = &self.inner;
        if !inner.closed.close() {
            return;
        }
        // The blocked calls let go of the locks as soon as they see the signal. Shutting the
        // write side first sends TLS's close_notify; a plain socket sends its FIN when it is
        // dropped either way (`PlainSocket`'s drop).
        let _ = inner.session.handle().block_on(async {
            tokio::time::timeout(Duration::from_secs(1), async {
                let mut guard = inner.writer.lock().await;
                let w = &mut *guard;
                if let (Some(io), false) = (w.io.as_mut(), w.shut || w.interrupted) {
                    let _ = tokio::time::timeout(Duration::from_millis(200), io.shutdown()).await;
                }
                w.io = None;
                drop(guard);
                inner.reader.lock().await.io = None;
            })
            .await
        });
        self.record(call, EventKind::Close, b"", None);
    }

    /// The next bytes that arrive, at least one; empty once the peer has closed. With `text`,
    /// a UTF-8 sequence split across reads is held back until it is whole.
    pub fn recv(&self, call: &Call, op: &'static str, text: bool) -> Result<Bytes, NetError> {
        self.read(call, op, decode::Any { text })
    }

    /// Exactly `n` bytes.
    pub fn recv_exact(&self, call: &Call, op: &'static str, n: usize) -> Result<Bytes, NetError> {
        let limit = self.inner.session.limits.max_buffer;
        if n > limit {
            return Err(NetError::new(
                ErrorKind::TooLong,
                op,
                Some(&*self.inner.peer.text()),
                format!("{op}: {n} bytes is more than the buffer limit of {limit} bytes"),
            ));
        }
        self.read(call, op, decode::Exact { n })
    }

    /// Everything before `delim`; the delimiter is consumed and not returned.
    pub fn recv_until(
        &self,
        call: &Call,
        op: &'static str,
        delim: &[u8],
    ) -> Result<Bytes, NetError> {
        let limit = self.inner.session.limits.max_line;
        let Some(until) = decode::Until::new(delim, limit) else {
            return Err(NetError::new(
                ErrorKind::Io,
                op,
                Some(&*self.inner.peer.text()),
                format!("{op}: the delimiter is empty"),
            ));
        };
        self.read(call, op, until)
    }

    /// One line, without its `\n` or `\r\n`.
    pub fn recv_line(&self, call: &Call, op: &'static str) -> Result<Bytes, NetError> {
        self.read(
            call,
            op,
            decode::Line::new(self.inner.session.limits.max_line),
        )
    }

    /// Everything until the peer closes.
    pub fn recv_all(&self, call: &Call, op: &'static str) -> Result<Bytes, NetError> {
        let limit = self.inner.session.limits.max_buffer;
        self.read(call, op, decode::All { limit })
    }

    /// Wait until the buffered input matches `re`; consume through the match.
    pub fn expect(
        &self,
        call: &Call,
        op: &'static str,
        re: &regex::bytes::Regex,
    ) -> Result<Match, NetError> {
        let limit = self.inner.session.limits.max_line;
        self.read(call, op, decode::Pattern::new(re, limit))
    }

    /// The read loop every `recv_*` shares: offer the buffer to `decoder` until it finds a
    /// frame, reading more whenever it asks; fail on EOF, when the buffer passes the decoder's
    /// limit, on error. Nothing leaves the buffer before the frame is whole, so a read cut off
    /// by its deadline loses nothing.
    ///
    /// A frame whose size the decoder knows in advance ([`Decoder::exact_len`]) and that is
    /// large gets a buffer of its own: an empty buffer is replaced by one of just that size, so
    /// reads cannot overshoot, and the frame is that buffer, handed over with no copy out of a
    /// shared one (the caller's Blob or string is that buffer).
    fn read<D: Decoder>(
        &self,
        call: &Call,
        op: &'static str,
        mut decoder: D,
    ) -> Result<D::Output, NetError> {
        let inner = &self.inner;
        let addr = &self.inner.peer;
        let own = decoder
            .exact_len()
            .filter(|n| (OWN_BUFFER_MIN..=KEEP_EMPTY).contains(n));
        let result = inner.session.block_on_to(call, op, addr, self.timeout(), async {
            let mut guard = inner.reader.lock().await;
            let r = &mut *guard;
            let mut direct_reads = 0;
            loop {
                match decoder.decode(&r.buf, r.eof) {
                    Decoded::Frame { len, consume } => {
                        let exact = decoder.exact_len().is_some();
                        let frame = take_frame(&mut r.buf, len, consume, exact);
                        // A connection that has only seen small reads keeps no buffer between
                        // them: ten thousand idle connections cost no read buffers.
                        if r.buf.is_empty() && r.read_size as usize <= FIRST_READ {
                            r.buf = BytesMut::new();
                        }
                        return Ok(decoder.output(frame));
                    }
                    Decoded::Eof => return Err(NetError::eof(op, Some(&addr.text()))),
                    Decoded::TooLong { limit } => {
                        return Err(NetError::new(
                            ErrorKind::TooLong,
                            op,
                            Some(&addr.text()),
                            format!(
                                "{op} from `{addr}`: {} bytes arrived without {decoder} (the limit is {limit} bytes)",
                                r.buf.len()
                            ),
                        ))
                    }
                    Decoded::NeedMore => {}
                }
                if direct_reads == YIELD_EVERY {
                    // Direct reads never wait, so a peer that keeps sending would keep this
                    // loop from ever noticing its deadline or cancellation: let the runtime
                    // look now and then (a safe point: nothing read is lost if it stops here).
                    direct_reads = 0;
                    tokio::task::yield_now().await;
                }
                let io = r.io.as_mut().ok_or_else(|| NetError::closed(op, Some(&addr.text())))?;
                match own {
                    // An empty buffer becomes the frame's own; one part-filled keeps filling
                    // (growing it would copy what it holds and share the frame with the rest).
                    Some(size) if r.buf.is_empty() || r.buf.capacity() == size => {
                        if r.buf.capacity() != size {
                            r.buf = BytesMut::with_capacity(size);
                        }
                    }
                    _ => {
                        if r.buf.is_empty() && r.buf.capacity() > KEEP_EMPTY {
                            r.buf = BytesMut::new();
                        }
                        let read_size = r.read_size as usize;
                        if r.buf.capacity() - r.buf.len() < read_size / 2 {
                            r.buf.reserve(read_size);
                        }
                    }
                }
                let own_buffer = own.is_some_and(|size| r.buf.capacity() == size);
                let room = r.buf.capacity() - r.buf.len();
                let before = r.buf.len();
                let n = match io.read_ready(&mut r.buf, true) {
                    Some(n) => {
                        direct_reads += 1;
                        n
                    }
                    // Nothing ready: wait for it (reading it, too), unless the handle closes.
                    None => {
                        tokio::select! {
                            _ = inner.closed.closed() => return Err(NetError::closed(op, Some(&addr.text()))),
                            n = io.read(&mut r.buf) => n,
                        }
                    }
                }
                .map_err(|e| NetError::io(op, Some(&addr.text()), &e))?;
                // Filling an own buffer says nothing about the stream's pace.
                if n == room && !own_buffer {
                    r.read_size = (r.read_size * 2).min(MAX_READ as u32);
                }
                if n == 0 {
                    r.eof = true;
                    self.record(call, EventKind::Eof, b"", None);
                } else {
                    self.record(call, EventKind::Recv, &r.buf[before..], None);
                }
            }
        });
        result.map_err(|e| self.failed(call, e.waiting_for(decoder.to_string())))
    }

    /// Hand the stream to a person: each chunk `input` gives is sent, and what arrives (what
    /// was buffered first) goes to `output`, until the peer closes (`true`) or `input` gives
    /// an empty chunk or ends (`false`: Ctrl-D). No deadline but the scenario's and a `within`;
    /// recorded like any send and recv.
    pub fn interact(
        &self,
        call: &Call,
        input: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
        mut output: impl FnMut(&[u8]),
    ) -> Result<bool, NetError> {
        const OP: &str = "interactive";
        let inner = &self.inner;
        let addr = &self.inner.peer;
        let timeout = Some(super::bridge::NO_DEADLINE);
        let result = inner.session.block_on_to(call, OP, addr, timeout, async {
            let mut guard = inner.reader.lock().await;
            let r = &mut *guard;
            loop {
                if !r.buf.is_empty() {
                    output(&r.buf);
                    r.buf.clear();
                }
                if r.eof {
                    return Ok(true);
                }
                r.buf.reserve(FIRST_READ);
                let io = r.io.as_mut().ok_or_else(|| NetError::closed(OP, Some(&addr.text())))?;
                tokio::select! {
                    _ = inner.closed.closed() => return Err(NetError::closed(OP, Some(&addr.text()))),
                    typed = input.recv() => {
                        let Some(data) = typed.filter(|d| !d.is_empty()) else {
                            return Ok(false);
                        };
                        self.record(call, EventKind::Send, &data, None);
                        let mut w = inner.writer.lock().await;
                        let io = w.io.as_mut().ok_or_else(|| NetError::closed(OP, Some(&addr.text())))?;
                        io.write_all(&data).await.map_err(|e| NetError::io(OP, Some(&addr.text()), &e))?;
                    }
                    n = io.read(&mut r.buf) => {
                        if n.map_err(|e| NetError::io(OP, Some(&addr.text()), &e))? == 0 {
                            r.eof = true;
                            self.record(call, EventKind::Eof, b"", None);
                        } else {
                            self.record(call, EventKind::Recv, &r.buf, None);
                        }
                    }
                }
            }
        });
        result.map_err(|e| self.failed(call, e))
    }

    /// Attach what had arrived to a failed read, and put the failure in the transcript.
    fn failed(&self, call: &Call, err: NetError) -> NetError {
        if err.kind == ErrorKind::Cancelled {
            return err;
        }
        let received = match self.inner.reader.try_lock() {
            Ok(r) => Bytes::copy_from_slice(&r.buf[..r.buf.len().min(RECEIVED_PREVIEW)]),
            Err(_) => Bytes::new(),
        };
        self.record(call, EventKind::Error, b"", Some(err.message.clone()));
        err.with_received(received).on_conn(self.id())
    }

    /// The connection's id in the transcript, shared with its other end when the scenario
    /// holds both.
    pub fn id(&self) -> u32 {
        self.inner.conn
    }

    /// The connection and transport its events are recorded under.
    fn on(&self) -> On {
        On {
            conn: Some(self.inner.conn),
            transport: Some(self.transport()),
        }
    }

    /// What carries the connection: kept in what it has anyway rather than a field of its own.
    fn transport(&self) -> Transport {
        match (&self.inner.tls, &self.inner.local) {
            (Some(_), _) => Transport::Tls,
            (None, End::Pipe(_)) => Transport::Process,
            (None, End::Ip(_)) => Transport::Tcp,
            (None, End::Named(_)) => Transport::Unix,
        }
    }

    pub(crate) fn record(
        &self,
        call: &Call,
        kind: EventKind,
        payload: &[u8],
        note: Option<String>,
    ) {
        self.inner
            .session
            .record_on(call, kind, self.on(), self.inner.ends, payload, note);
    }
}

impl std::fmt::Display for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Conn({} -> {}{})",
            self.inner.local,
            self.inner.peer,
            if self.is_closed() { ", closed" } else { "" }
        )
    }
}

/// Take a frame off the front of `buf`: its first `len` bytes, with `consume` bytes (the frame
/// and its delimiter) leaving the buffer. An `exact` frame that is the whole of a full buffer is
/// the buffer itself: an own buffer (see [`Conn::read`]) goes to the caller as it is.
fn take_frame(buf: &mut BytesMut, len: usize, consume: usize, exact: bool) -> Bytes {
    if exact && len == buf.len() && len == buf.capacity() {
        return std::mem::take(buf).freeze();
    }
    // An empty frame needs no share of the buffer.
    let frame = if len == 0 {
        Bytes::new()
    } else {
        buf.split_to(len).freeze()
    };
    buf.advance(consume - len);
    frame
}

/// How many reads straight from the socket a call may make before it lets the runtime check
/// its deadline and cancellation.
const YIELD_EVERY: u32 = 64;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Call;
    use std::io::{Read, Write};
    use std::time::Instant;

    /// A large exact read that arrives in pieces is still handed over as its own buffer: the
    /// caller's Blob takes it with no copy.
    #[test]
    fn a_large_exact_read_keeps_its_own_buffer_when_it_arrives_in_pieces() {
        let (_rt, session, transcript) =
            crate::net::bridge::threaded_session(Duration::from_secs(5));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
            s.write_all(&[1; 8100]).unwrap_or_else(|e| panic!("{e}"));
            // The rest only once the reader has taken the first piece.
            let _ = go_rx.recv_timeout(Duration::from_secs(5));
            s.write_all(&[2; 92]).unwrap_or_else(|e| panic!("{e}"));
            let mut end = Vec::new();
            let _ = s.read_to_end(&mut end);
        });
        let call = Call::new("main".into(), None, None);
        let conn = Conn::connect(&session, &call, &addr.to_string(), None, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let reader = {
            let conn = conn.clone();
            std::thread::spawn(move || conn.recv_exact(&call, "recv_exact", 8192))
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let (events, _) = transcript.snapshot();
            if events.iter().any(|e| e.kind == EventKind::Recv) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = go_tx.send(());
        let frame = reader
            .join()
            .unwrap_or_else(|_| panic!("the reader panicked"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(frame.len(), 8192);
        assert_eq!((frame[0], frame[8191]), (1, 2));
        // As a Blob takes it: no copy, and no bigger buffer than the frame (the part-filled
        // buffer was not grown, which copies what it holds).
        let blob = Vec::from(frame);
        assert_eq!(
            blob.capacity(),
            8192,
            "the frame was copied into a bigger buffer"
        );
        conn.close(&Call::new("main".into(), None, None));
        drop(peer.join());
    }

    #[test]
    fn a_connection_stays_small() {
        // A benchmark holds ten thousand: no address texts, one-pointer I/O halves.
        assert!(std::mem::size_of::<super::End>() <= 32);
        assert!(std::mem::size_of::<Option<super::ReadIo>>() <= 16);
        assert!(std::mem::size_of::<Option<super::WriteIo>>() <= 16);
        let inner = std::mem::size_of::<super::Inner>();
        assert!(inner <= 296, "{inner}");
    }
}
