//! WebSocket conversations (`ws_connect`, `ws_listen`): a message stream over TCP or TLS.
//!
//! The protocol (handshakes, framing, masking, the closing handshake, answering pings) is
//! `tokio-tungstenite`'s; TCP and TLS are this crate's own (the same rustls configurations as
//! `connect` and `listen`, from [`super::tls`]), and so are deadlines, cancellation and the
//! transcript. A read is a whole message, as a UDP read is a whole datagram: no byte-stream
//! decoder applies, so [`WebSocket`] keeps its own small reader instead of [`super::Conn`]'s
//! buffer. Each message is one transcript event (transport `ws`), its type in the note.
//!
//! A WebSocket is split into a read half and a write half, each behind its own async mutex,
//! so one task may send while another receives. Reads are cancel-safe: tungstenite keeps a
//! partial frame in its own buffer, and a message is taken only once it is whole. Messages a
//! `ping` reads past while it waits for its pong are kept for the next read.
//!
//! The server side reads the HTTP request head itself, so that a request that is no WebSocket
//! upgrade is answered `400 Bad Request` and recorded, and `accept` waits for the next client;
//! a real upgrade is answered with tungstenite's response. A listener's TLS accepts and
//! upgrades run in the background, each client under its own deadline
//! (`handshakes`), so that one silent client holds up no other; `accept` takes the
//! clients in the order their upgrades finish.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex as AsyncMutex;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::{create_response, write_response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{http, ClientRequestBuilder, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::addr::{self, Endpoint};
use super::bridge::{CloseSignal, HandleSlot, HandleTimeout, Opening, Session};
use super::call::Call;
use super::error::{describe, fmt_duration, ErrorKind, NetError};
use super::handshakes::{Handshakes, Limit, Listening, PassedOver, Shaken};
use super::plain::{PlainSocket, Polled, Spinning};
use super::tls::{self, ClientTls, ServerTls, TlsInfo};
use crate::transcript::{EventKind, On, Transport};

/// The longest HTTP request head a WebSocket server reads before it answers 400.
const MAX_HEAD: usize = 16 * 1024;
/// How much of a refused handshake's body the error quotes.
const BODY_PREVIEW: usize = 200;
/// How long `close` waits for the peer's close frame past its own deadline's start, at most.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The bytes under a WebSocket: a plain TCP socket read and written directly on the script
/// thread (as a `Conn`'s is), or TLS over TCP through the runtime.
pub(crate) enum Io {
    Tcp(Polled),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Io {
    /// A plain socket, taken out of the runtime's poller (it registers itself while it waits).
    fn plain(tcp: TcpStream) -> std::io::Result<Io> {
        let sock: socket2::Socket = tcp.into_std()?.into();
        Ok(Io::Tcp(Polled::new(PlainSocket::new(sock))))
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => s.poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => s.poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(_) => Poll::Ready(Ok(())),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Poll::Ready(s.shutdown()),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Ws = WebSocketStream<Io>;

/// What kind of frame a message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Binary,
    Ping,
    Pong,
    Close,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Binary => "binary",
            Kind::Ping => "ping",
            Kind::Pong => "pong",
            Kind::Close => "close",
        }
    }
}

/// One message as it arrived. A close carries its code (when the frame had one) and its
/// reason as `data`.
#[derive(Debug, Clone)]
pub struct Received {
    pub kind: Kind,
    pub data: Bytes,
    pub code: Option<u16>,
}

impl Received {
    fn of(msg: Message) -> Option<Received> {
        let (kind, data, code) = match msg {
            Message::Text(t) => (Kind::Text, Bytes::from(t), None),
            Message::Binary(b) => (Kind::Binary, b, None),
            Message::Ping(b) => (Kind::Ping, b, None),
            Message::Pong(b) => (Kind::Pong, b, None),
            Message::Close(frame) => match frame {
                Some(f) => (Kind::Close, Bytes::from(f.reason), Some(u16::from(f.code))),
                None => (Kind::Close, Bytes::new(), None),
            },
            // Raw frames are never read, only written.
            Message::Frame(_) => return None,
        };
        Some(Received { kind, data, code })
    }

    /// How the transcript notes it: `text`, `close 1000`.
    fn note(&self) -> String {
        match self.code {
            Some(code) => format!("{} {code}", self.kind.as_str()),
            None => self.kind.as_str().to_owned(),
        }
    }
}

/// The HTTP side of a WebSocket's opening handshake.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// The response status (client side; 101).
    pub status: u16,
    /// The request's path and query (server side).
    pub path: String,
    pub query: Option<String>,
    /// The other side's headers, names lower-case, in the order they came.
    pub headers: Vec<(String, String)>,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// What the TLS handshake under it settled on (`wss`).
    pub tls: Option<TlsInfo>,
}

impl Handshake {
    fn headers_of(map: &http::HeaderMap) -> Vec<(String, String)> {
        map.iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    }
}

/// What `ws_connect(url, opts)` may ask for beyond the URL.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub headers: Vec<(String, String)>,
    pub protocols: Vec<String>,
    /// For `wss://`; the defaults when not given.
    pub tls: Option<ClientTls>,
    pub timeout: Option<Duration>,
}

/// What `ws_listen(addr, opts)` may ask for beyond the address.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    pub tls: Option<ServerTls>,
    /// Subprotocols to accept, in the server's order of preference.
    pub protocols: Vec<String>,
}

/// A WebSocket handle; clones share the connection.
#[derive(Clone)]
pub struct WebSocket {
    inner: Arc<Inner>,
    /// Stops the keeper when the last handle goes.
    _alive: Arc<Alive>,
}

struct Inner {
    session: Arc<Session>,
    local: Endpoint,
    peer: Endpoint,
    conn: u32,
    /// The URL a client connected to; the listener's address for a server.
    url: Arc<str>,
    handshake: Handshake,
    reader: AsyncMutex<Reader>,
    writer: AsyncMutex<Writer>,
    timeout: HandleTimeout,
    closed: CloseSignal,
    /// The peer's close frame once it came: its code and reason.
    peer_close: Mutex<Option<(Option<u16>, String)>>,
    /// Makes the payloads of `ping()`, so a pong answers the ping that asked for it.
    pings: AtomicU64,
    keeper: Keeper,
    _slot: HandleSlot,
}

/// How long the script reads nothing before the keeper reads for it.
const IDLE: Duration = Duration::from_millis(20);

/// What the script's reads and the keeper ([`keep`]) share: the keeper reads (answering pings
/// and the peer's close) only while no script read wants the reader, and gives it up as soon
/// as one does. A script read costs two atomic counts and a look at `engaged`; the keeper
/// looks every [`IDLE`] whether the script read since.
struct Keeper {
    /// Script reads started, ever: the keeper waits until this stays still for [`IDLE`].
    reads: AtomicU64,
    /// Script reads running or waiting for the reader.
    active: AtomicUsize,
    /// The keeper holds the reader, or is about to take it.
    engaged: AtomicBool,
    /// A script read wants the reader back.
    wanted: tokio::sync::Notify,
    /// The last script read running ended.
    done: tokio::sync::Notify,
}

impl Keeper {
    /// A script read starts: the keeper lets the reader go (and stays off it until it ends).
    /// `engaged` is read after `active` is counted and the keeper counts `active` after it
    /// sets `engaged` (both `SeqCst`), so one of the two sees the other.
    fn want(&self) -> Wanting<'_> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.active.fetch_add(1, Ordering::SeqCst);
        if self.engaged.load(Ordering::SeqCst) {
            self.wanted.notify_one();
        }
        Wanting(self)
    }
}

/// A script read in progress, for the [`Keeper`]; counted out when dropped.
struct Wanting<'a>(&'a Keeper);

impl Drop for Wanting<'_> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.done.notify_one();
        }
    }
}

/// Stops a WebSocket's keeper when the last script handle of it goes (a clone shares it).
struct Alive(CancellationToken);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

struct Reader {
    io: Option<SplitStream<Ws>>,
    /// Messages read (and recorded) before a script read asked for them, in the order they
    /// came: data messages a `ping` or `close` read past, and every frame the keeper read.
    pending: VecDeque<Received>,
    /// What `pending` holds, in bytes plus [`KEPT_EACH`] a message: the keeper reads no more
    /// past [`KEPT_AT_MOST`], so a peer the script does not read still meets back-pressure.
    kept: usize,
    /// The keeper's read failed (a reset): the next script read raises it.
    failed: Option<WsError>,
    /// The peer's close frame (or the end of the stream) came: nothing more will.
    ended: bool,
}

impl Reader {
    fn keep(&mut self, m: Received) {
        self.kept += m.data.len() + KEPT_EACH;
        self.pending.push_back(m);
    }

    fn take(&mut self) -> Option<Received> {
        let m = self.pending.pop_front()?;
        self.kept = self.kept.saturating_sub(m.data.len() + KEPT_EACH);
        Some(m)
    }

    /// The pong that answers `payload`, when one is kept.
    fn take_pong(&mut self, payload: &[u8]) -> bool {
        let answer = |m: &Received| m.kind == Kind::Pong && m.data == payload;
        let Some(m) = self
            .pending
            .iter()
            .position(answer)
            .and_then(|i| self.pending.remove(i))
        else {
            return false;
        };
        self.kept = self.kept.saturating_sub(m.data.len() + KEPT_EACH);
        true
    }
}

/// Who reads a frame: a script read, `close` (which its own close does not end), or the
/// keeper (no spin on a runtime thread; a failure is kept for the next script read).
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Script,
    Closing,
    Keeper,
}

struct Writer {
    io: Option<SplitSink<Ws, Message>>,
    /// A send was cut off part-way: what the peer got is unknown.
    interrupted: bool,
}

fn config(session: &Session) -> WebSocketConfig {
    let limit = session.limits.max_buffer;
    // A smaller read buffer than tungstenite's default 128 KiB, which it allocates up front:
    // a scenario may hold thousands of WebSockets.
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// A protocol error as a [`NetError`] of the call `op`.
fn ws_error(op: &'static str, addr: &str, err: WsError) -> NetError {
    let at = describe(op, Some(addr));
    match err {
        WsError::Io(e) => NetError::io(op, Some(addr), &e),
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => NetError::new(
            ErrorKind::TooLong,
            op,
            Some(addr),
            format!(
                "{at}: a message of {size} bytes or more is over the buffer limit of {max_size} \
                 bytes (`--limit buffer`)"
            ),
        ),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => NetError::new(
            ErrorKind::ConnectionReset,
            op,
            Some(addr),
            format!("{at}: the peer closed the connection without a closing handshake"),
        ),
        WsError::ConnectionClosed | WsError::AlreadyClosed => NetError::new(
            ErrorKind::Closed,
            op,
            Some(addr),
            format!("{at}: the WebSocket is closed"),
        ),
        WsError::Protocol(ProtocolError::SendAfterClosing) => NetError::new(
            ErrorKind::Closed,
            op,
            Some(addr),
            format!("{at}: the WebSocket is closing: nothing more can be sent"),
        ),
        WsError::Http(resp) => refused(op, addr, resp.status().as_u16(), resp.body().as_deref()),
        other => NetError::new(
            ErrorKind::Websocket,
            op,
            Some(addr),
            format!("{at} failed: {}", other.to_string().to_lowercase()),
        ),
    }
}

/// The server answered the upgrade with something other than 101.
fn refused(op: &'static str, addr: &str, status: u16, body: Option<&[u8]>) -> NetError {
    let body = body.unwrap_or_default();
    let shown = String::from_utf8_lossy(&body[..body.len().min(BODY_PREVIEW)]);
    let shown = shown.trim();
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut message = format!(
        "{} failed: the server refused the WebSocket upgrade with HTTP {status} {reason}",
        describe(op, Some(addr))
    );
    if !shown.is_empty() {
        message.push_str(&format!(": {shown:?}"));
        if body.len() > BODY_PREVIEW {
            message.push('…');
        }
    }
    NetError::new(ErrorKind::Websocket, op, Some(addr), message)
}

/// `ws://host:port/path` → (secure, host as written, `host:port`).
fn parse_url(op: &'static str, url: &str) -> Result<(http::Uri, bool, String, String), NetError> {
    let bad = |why: &str| {
        NetError::new(
            ErrorKind::InvalidAddress,
            op,
            Some(url),
            format!("`{url}` is not a WebSocket URL: {why}"),
        )
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|_| bad("write `ws://host:port/path`"))?;
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(bad("the scheme is `ws://` or `wss://`")),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("the host is missing"))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let addr = format!("{host}:{port}");
    Ok((uri, secure, host, addr))
}

impl WebSocket {
    /// Connect to a `ws://` or `wss://` URL and do the opening handshake; all under one
    /// deadline (`opts.timeout`, else the session's).
    pub fn connect(
        session: &Arc<Session>,
        call: &Call,
        url: &str,
        opts: &ConnectOptions,
    ) -> Result<WebSocket, NetError> {
        let op = "ws_connect";
        let failed = |e: NetError| {
            if e.kind != ErrorKind::Cancelled {
                session.record(
                    call,
                    EventKind::Error,
                    On {
                        conn: None,
                        transport: Some(Transport::Ws),
                    },
                    None,
                    Some(Arc::from(url)),
                    b"",
                    Some(e.message.clone()),
                );
            }
            e
        };
        let (uri, secure, host, addr) = parse_url(op, url).map_err(failed)?;
        let target = addr::parse(op, &addr).map_err(failed)?;
        let slot = session.open_handle(op, url)?;
        let mut request = ClientRequestBuilder::new(uri);
        for (k, v) in &opts.headers {
            request = request.with_header(k, v);
        }
        for p in &opts.protocols {
            request = request.with_sub_protocol(p);
        }
        let config = config(session);
        let opened = session.block_on(call, op, Some(url), opts.timeout, async {
            let tcp = target.first_working(op, &addr, TcpStream::connect).await?;
            let _ = tcp.set_nodelay(true);
            let io_err = |e: std::io::Error| NetError::io(op, Some(url), &e);
            let local = Endpoint::new(tcp.local_addr().map_err(io_err)?);
            let peer = Endpoint::new(tcp.peer_addr().map_err(io_err)?);
            let (io, settled) = if secure {
                let t = opts.tls.clone().unwrap_or_default();
                let name = host.trim_start_matches('[').trim_end_matches(']');
                let (connector, name) = tls::connector(&t, name, &addr)?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls::handshake_error(op, &addr, &e))?;
                let settled = tls::info_of(stream.get_ref().1, None);
                (Io::Tls(Box::new(stream.into())), Some(settled))
            } else {
                (Io::plain(tcp).map_err(io_err)?, None)
            };
            let (ws, response) =
                tokio_tungstenite::client_async_with_config(request, io, Some(config))
                    .await
                    .map_err(|e| ws_error(op, url, e))?;
            let headers = response.headers();
            let handshake = Handshake {
                status: response.status().as_u16(),
                protocol: headers
                    .get("sec-websocket-protocol")
                    .and_then(|p| p.to_str().ok())
                    .map(str::to_owned),
                headers: Handshake::headers_of(headers),
                tls: settled,
                ..Handshake::default()
            };
            Ok((ws, local, peer, handshake))
        });
        let (ws, local, peer, handshake) = opened.map_err(failed)?;
        let mut note = match &handshake.protocol {
            Some(p) => format!("{url}: {} (protocol {p})", handshake.status),
            None => format!("{url}: {}", handshake.status),
        };
        if let Some(t) = &handshake.tls {
            note = format!("{note}, {}", t.note());
        }
        let socket = WebSocket::new(session, ws, local, peer, Arc::from(url), handshake, slot);
        socket.record(call, EventKind::Connect, b"", Some(note));
        Ok(socket)
    }

    fn new(
        session: &Arc<Session>,
        ws: Ws,
        local: Endpoint,
        peer: Endpoint,
        url: Arc<str>,
        handshake: Handshake,
        slot: HandleSlot,
    ) -> WebSocket {
        let conn = session.open_connection(Opening::Connect, super::stream::ip_key(&local, &peer));
        let (w, r) = ws.split();
        let inner = Arc::new(Inner {
            session: session.clone(),
            local,
            peer,
            conn,
            url,
            handshake,
            reader: AsyncMutex::new(Reader {
                io: Some(r),
                pending: VecDeque::new(),
                kept: 0,
                failed: None,
                ended: false,
            }),
            writer: AsyncMutex::new(Writer {
                io: Some(w),
                interrupted: false,
            }),
            timeout: HandleTimeout::new(),
            closed: CloseSignal::new(),
            peer_close: Mutex::new(None),
            pings: AtomicU64::new(0),
            keeper: Keeper {
                reads: AtomicU64::new(0),
                active: AtomicUsize::new(0),
                engaged: AtomicBool::new(false),
                wanted: tokio::sync::Notify::new(),
                done: tokio::sync::Notify::new(),
            },
            _slot: slot,
        });
        let stop = session.token().child_token();
        session.handle().spawn(keep(inner.clone(), stop.clone()));
        WebSocket {
            inner,
            _alive: Arc::new(Alive(stop)),
        }
    }

    pub fn local(&self) -> &Endpoint {
        &self.inner.local
    }

    pub fn peer(&self) -> &Endpoint {
        &self.inner.peer
    }

    /// The URL of a client's connection.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The handshake: the response a client got, or the request a server accepted.
    pub fn handshake(&self) -> &Handshake {
        &self.inner.handshake
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.inner.timeout.get()
    }

    pub fn set_timeout(&self, d: Duration) {
        self.inner.timeout.set(d);
    }

    /// Closed by this side, or by the peer's close frame.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_closed() || self.peer_close().is_some()
    }

    /// The peer's close frame, once it came: its code (none when the frame had none) and reason.
    pub fn peer_close(&self) -> Option<(Option<u16>, String)> {
        self.inner
            .peer_close
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The connection's id in the transcript.
    pub fn id(&self) -> u32 {
        self.inner.conn
    }

    fn addr(&self) -> &str {
        &self.inner.peer.text
    }

    /// Send a text message, or a binary one; returns the payload's length.
    pub fn send(&self, call: &Call, data: &[u8], text: bool) -> Result<usize, NetError> {
        // A script's strings are UTF-8; a Blob (or any other bytes) is sent as binary.
        let utf8 = if text {
            std::str::from_utf8(data).ok()
        } else {
            None
        };
        let (msg, kind) = match utf8 {
            Some(t) => (Message::text(t), Kind::Text),
            None => (Message::binary(Bytes::copy_from_slice(data)), Kind::Binary),
        };
        self.send_message(call, "send", msg, kind, data)?;
        Ok(data.len())
    }

    fn send_message(
        &self,
        call: &Call,
        op: &'static str,
        msg: Message,
        kind: Kind,
        payload: &[u8],
    ) -> Result<(), NetError> {
        let inner = &self.inner;
        let addr = self.addr();
        self.record(
            call,
            EventKind::Send,
            payload,
            Some(kind.as_str().to_owned()),
        );
        let sent = inner
            .session
            .block_on(call, op, Some(addr), self.timeout(), async {
                let mut w = inner.writer.lock().await;
                if w.interrupted {
                    return Err(NetError::new(
                        ErrorKind::Io,
                        op,
                        Some(addr),
                        format!(
                            "{op} to `{addr}`: an earlier send was cut off part-way, so what the \
                             peer has received is unknown; open a new WebSocket"
                        ),
                    ));
                }
                let w = &mut *w;
                let io =
                    w.io.as_mut()
                        .ok_or_else(|| NetError::closed(op, Some(addr)))?;
                w.interrupted = true;
                let result = tokio::select! {
                    _ = inner.closed.closed() => Err(NetError::closed(op, Some(addr))),
                    r = io.send(msg) => r.map_err(|e| ws_error(op, addr, e)),
                };
                w.interrupted = false;
                result
            });
        sent.map_err(|e| self.failed(call, e))
    }

    /// The next text or binary message; pings and pongs are passed over (pings are answered);
    /// `None` once the peer has closed.
    pub fn recv(&self, call: &Call, op: &'static str) -> Result<Option<Received>, NetError> {
        self.read(call, op, "a message", |m| {
            matches!(m.kind, Kind::Text | Kind::Binary | Kind::Close)
        })
        .map(|m| m.filter(|m| m.kind != Kind::Close))
    }

    /// The next frame of any kind: text, binary, ping, pong or close; `None` after the close.
    pub fn recv_message(
        &self,
        call: &Call,
        op: &'static str,
    ) -> Result<Option<Received>, NetError> {
        self.read(call, op, "a message", |_| true)
    }

    /// The next text message that matches `re`; those before it are passed over (they stay in
    /// the transcript).
    pub fn expect(
        &self,
        call: &Call,
        op: &'static str,
        re: &regex::bytes::Regex,
    ) -> Result<(Bytes, Vec<Option<Bytes>>), NetError> {
        let mut found = None;
        let waiting = format!("a text message matching `{}`", re.as_str());
        let got = self.read(call, op, &waiting, |m| {
            if m.kind == Kind::Close {
                return true;
            }
            if m.kind != Kind::Text {
                return false;
            }
            match re.captures(&m.data) {
                Some(c) => {
                    let groups = c
                        .iter()
                        .skip(1)
                        .map(|g| g.map(|g| m.data.slice(g.range())))
                        .collect();
                    found = Some((m.data.slice(c.get(0).map_or(0..0, |g| g.range())), groups));
                    true
                }
                None => false,
            }
        })?;
        match found {
            Some(f) => Ok(f),
            None => {
                let why = match got {
                    Some(m) => format!("the peer closed the WebSocket ({})", m.note()),
                    None => "the peer closed the WebSocket".to_owned(),
                };
                let e = NetError::new(
                    ErrorKind::Eof,
                    op,
                    Some(self.addr()),
                    format!("{}: {why}", describe(op, Some(self.addr()))),
                );
                Err(self.failed(call, e.waiting_for(waiting)))
            }
        }
    }

    /// Read frames until `wanted` says one is the answer; the frames before it are gone (they
    /// are in the transcript). `None` when the stream ended before one was.
    fn read(
        &self,
        call: &Call,
        op: &'static str,
        waiting: &str,
        mut wanted: impl FnMut(&Received) -> bool,
    ) -> Result<Option<Received>, NetError> {
        let inner = &self.inner;
        let addr = self.addr();
        let result = inner
            .session
            .block_on(call, op, Some(addr), self.timeout(), async {
                let _wanting = inner.keeper.want();
                let mut r = inner.reader.lock().await;
                loop {
                    let next = match r.take() {
                        Some(m) => Some(m),
                        None => inner.read_frame(call, op, &mut r, By::Script).await?,
                    };
                    match next {
                        Some(m) if wanted(&m) => return Ok(Some(m)),
                        Some(_) => {}
                        None => return Ok(None),
                    }
                }
            });
        result.map_err(|e| self.failed(call, e.waiting_for(waiting)))
    }

    /// Send a ping and wait for its pong: the round trip. Messages that arrive first are kept
    /// for the next read.
    pub fn ping(&self, call: &Call, data: Option<&[u8]>) -> Result<Duration, NetError> {
        let op = "ping";
        let inner = &self.inner;
        let addr = self.addr();
        let payload = match data {
            Some(d) => Bytes::copy_from_slice(d),
            None => {
                let n = inner.pings.fetch_add(1, Ordering::Relaxed);
                Bytes::from(format!("sockscript-ping-{n}"))
            }
        };
        // Before the ping goes: the keeper leaves the pong to this read (one it reads first is
        // kept in `pending`).
        let _wanting = inner.keeper.want();
        let started = Instant::now();
        self.send_message(
            call,
            op,
            Message::Ping(payload.clone()),
            Kind::Ping,
            &payload,
        )?;
        let result = inner
            .session
            .block_on(call, op, Some(addr), self.timeout(), async {
                let mut r = inner.reader.lock().await;
                if r.take_pong(&payload) {
                    return Ok(started.elapsed());
                }
                loop {
                    match inner.read_frame(call, op, &mut r, By::Script).await? {
                        Some(m) if m.kind == Kind::Pong && m.data == payload => {
                            return Ok(started.elapsed())
                        }
                        Some(m) if matches!(m.kind, Kind::Text | Kind::Binary) => r.keep(m),
                        Some(_) => {}
                        None => {
                            return Err(NetError::new(
                                ErrorKind::Eof,
                                op,
                                Some(addr),
                                format!(
                                    "{}: the peer closed the WebSocket before it answered",
                                    describe(op, Some(addr))
                                ),
                            ))
                        }
                    }
                }
            });
        result.map_err(|e| self.failed(call, e.waiting_for("the pong")))
    }

    /// The closing handshake: send a close frame with `code` and `reason`, wait (briefly) for
    /// the peer's, then drop the connection. Calls blocked on this WebSocket in other tasks fail
    /// with kind `closed`. Closing twice is harmless.
    pub fn close(&self, call: &Call, code: u16, reason: &str) {
        let inner = &self.inner;
        if !inner.closed.close() {
            return;
        }
        let addr = self.addr();
        let wait = self
            .timeout()
            .unwrap_or(inner.session.default_timeout())
            .min(CLOSE_WAIT);
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let note = format!("close {code}");
        let _ = inner
            .session
            .block_on(call, "close", Some(addr), Some(wait), async {
                {
                    let mut w = inner.writer.lock().await;
                    let w = &mut *w;
                    if let (Some(io), false) = (w.io.as_mut(), w.interrupted) {
                        if self.peer_close().is_none() {
                            self.record(call, EventKind::Send, reason.as_bytes(), Some(note));
                        }
                        // Refused when the peer closed first (the answer went already).
                        let _ = io.send(Message::Close(Some(frame))).await;
                    }
                }
                let _wanting = inner.keeper.want();
                let mut r = inner.reader.lock().await;
                while !r.ended {
                    match inner.read_frame(call, "close", &mut r, By::Closing).await {
                        Ok(Some(m)) if matches!(m.kind, Kind::Text | Kind::Binary) => r.keep(m),
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
                Ok(())
            });
        // Whatever the peer did, the connection goes now.
        let _ = inner.session.handle().block_on(async {
            tokio::time::timeout(Duration::from_secs(1), async {
                inner.writer.lock().await.io = None;
                inner.reader.lock().await.io = None;
            })
            .await
        });
        self.record(call, EventKind::Close, b"", None);
    }

    fn record(&self, call: &Call, kind: EventKind, payload: &[u8], note: Option<String>) {
        self.inner.record(call, kind, payload, note);
    }

    /// Put a failure in the transcript and say which connection it was on.
    fn failed(&self, call: &Call, err: NetError) -> NetError {
        if err.kind == ErrorKind::Cancelled {
            return err;
        }
        self.record(call, EventKind::Error, b"", Some(err.message.clone()));
        err.on_conn(self.id())
    }
}

impl Inner {
    /// Read the next frame off the wire, record it, and send tungstenite's answer to a ping or
    /// a close; `None` at the end. Except while closing, this side's `close` ends the wait.
    async fn read_frame(
        &self,
        call: &Call,
        op: &'static str,
        r: &mut Reader,
        by: By,
    ) -> Result<Option<Received>, NetError> {
        let m = self.take_frame(call, op, r, by).await?;
        if m.as_ref().is_some_and(|m| self.answered(m)) {
            self.send_replies().await;
        }
        Ok(m)
    }

    /// Whether tungstenite has queued an answer to `m`: a pong to a ping (unless this side has
    /// sent its close: then none), this side's close to the peer's.
    fn answered(&self, m: &Received) -> bool {
        m.kind == Kind::Close || (m.kind == Kind::Ping && !self.closed.is_closed())
    }

    /// [`Inner::read_frame`] up to the answer: the frame read and recorded, with its answer
    /// recorded as sent. A failure the keeper met is kept in the reader for the next script
    /// read, which raises it under its own name (the keeper gets `None`).
    async fn take_frame(
        &self,
        call: &Call,
        op: &'static str,
        r: &mut Reader,
        by: By,
    ) -> Result<Option<Received>, NetError> {
        let addr = &*self.peer.text;
        if let Some(e) = r.failed.take() {
            return Err(ws_error(op, addr, e));
        }
        if r.ended {
            return Ok(None);
        }
        let io =
            r.io.as_mut()
                .ok_or_else(|| NetError::closed(op, Some(addr)))?;
        let next = match by {
            By::Script => tokio::select! {
                _ = self.closed.closed() => return Err(NetError::closed(op, Some(addr))),
                next = Spinning::new(io.next()) => next,
            },
            By::Keeper => tokio::select! {
                _ = self.closed.closed() => return Err(NetError::closed(op, Some(addr))),
                next = io.next() => next,
            },
            By::Closing => io.next().await,
        };
        let msg = match next {
            Some(Ok(msg)) => msg,
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                r.ended = true;
                self.record(call, EventKind::Eof, b"", None);
                return Ok(None);
            }
            Some(Err(e)) if by == By::Keeper => {
                r.failed = Some(e);
                return Ok(None);
            }
            Some(Err(e)) => return Err(ws_error(op, addr, e)),
        };
        let Some(m) = Received::of(msg) else {
            return Ok(None);
        };
        self.record(call, EventKind::Recv, &m.data, Some(m.note()));
        // tungstenite answers a ping with a pong of its payload, and a close frame this side
        // did not start with the same frame: the answers are this side's sends.
        if m.kind == Kind::Close {
            r.ended = true;
            *self.peer_close.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((m.code, String::from_utf8_lossy(&m.data).into_owned()));
            if !self.closed.is_closed() {
                self.record(call, EventKind::Send, &m.data, Some(m.note()));
            }
        } else if self.answered(&m) {
            self.record(call, EventKind::Send, &m.data, Some("pong".to_owned()));
        }
        Ok(Some(m))
    }

    /// tungstenite queues the answer to a ping or a close and sends it with the next write or
    /// read: send it now, unless another task is writing (its write sends it).
    async fn send_replies(&self) {
        if let Ok(mut guard) = self.writer.try_lock() {
            let w = &mut *guard;
            if let (Some(io), false) = (w.io.as_mut(), w.interrupted) {
                let _ = tokio::time::timeout(Duration::from_millis(500), io.flush()).await;
            }
        }
    }

    fn record(&self, call: &Call, kind: EventKind, payload: &[u8], note: Option<String>) {
        self.session.record(
            call,
            kind,
            On {
                conn: Some(self.conn),
                transport: Some(Transport::Ws),
            },
            Some(self.local.text.clone()),
            Some(self.peer.text.clone()),
            payload,
            note,
        );
    }
}

/// A WebSocket's keeper, on the runtime: while the script reads nothing (for [`IDLE`], and
/// no read of it waits), it reads for it, so a ping is answered and the peer's close is
/// answered when it comes, not at the script's next read. What it reads is recorded then (as
/// the task [`KEEPER_TASK`], in the order it came) and waits in `pending` for the script's
/// reads: `recv_message` sees the pings too, a `ping` finds its pong there. It lets the
/// reader go as soon as a script read wants it, and ends with the WebSocket's last handle,
/// its close, its end, or the scenario.
async fn keep(inner: Arc<Inner>, stop: CancellationToken) {
    let call = Call::new(Arc::from(KEEPER_TASK), None, None);
    let keeper = &inner.keeper;
    loop {
        // Until the script has started no read for IDLE, and none is running.
        loop {
            if keeper.active.load(Ordering::SeqCst) > 0 {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = keeper.done.notified() => {}
                }
                continue;
            }
            let seen = keeper.reads.load(Ordering::SeqCst);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(IDLE) => {}
            }
            let still = keeper.reads.load(Ordering::SeqCst) == seen;
            if still && keeper.active.load(Ordering::SeqCst) == 0 {
                break;
            }
        }
        keeper.engaged.store(true, Ordering::SeqCst);
        let reader = if keeper.active.load(Ordering::SeqCst) == 0 {
            inner.reader.try_lock().ok()
        } else {
            None
        };
        let Some(mut r) = reader else {
            keeper.engaged.store(false, Ordering::SeqCst);
            continue;
        };
        let mut read = 0u32;
        let ended = loop {
            if keeper.active.load(Ordering::SeqCst) > 0 || r.kept >= KEPT_AT_MOST {
                break false;
            }
            // Frames that keep coming must not hold the runtime's thread.
            read = read.wrapping_add(1);
            if read % 64 == 0 {
                tokio::task::yield_now().await;
            }
            let frame = tokio::select! {
                _ = stop.cancelled() => return,
                _ = keeper.wanted.notified() => break false,
                frame = inner.take_frame(&call, "recv", &mut r, By::Keeper) => frame,
            };
            match frame {
                Ok(Some(m)) => {
                    // Kept before the answer goes, which a script read may not cut short.
                    let answered = inner.answered(&m);
                    r.keep(m);
                    if answered {
                        inner.send_replies().await;
                    }
                }
                // The end, or a failure the next script read raises; or this side closed
                // (its `close` takes over).
                Ok(None) | Err(_) => break true,
            }
        };
        keeper.engaged.store(false, Ordering::SeqCst);
        drop(r);
        if ended {
            return;
        }
    }
}

/// The most the keeper holds for the script, in bytes plus [`KEPT_EACH`] a message: past it,
/// it reads no more (pings behind them wait for the script's reads), as a socket's buffers
/// would fill.
const KEPT_AT_MOST: usize = 256 * 1024;

/// What each message kept counts besides its bytes, so a flood of empty ones is bounded too.
const KEPT_EACH: usize = 64;

/// The task the transcript names for what a WebSocket's keeper reads and answers.
const KEEPER_TASK: &str = "auto";

impl std::fmt::Display for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebSocket({} -> {}{})",
            self.inner.local.text,
            self.inner.peer.text,
            if self.is_closed() { ", closed" } else { "" }
        )
    }
}

/// A WebSocket server: a TCP listener (TLS when asked) that upgrades its clients in the
/// background; `accept` takes them as their upgrades finish.
#[derive(Clone)]
pub struct WsListener {
    inner: Arc<ListenerInner>,
}

struct ListenerInner {
    session: Arc<Session>,
    local: Endpoint,
    cert_pem: Option<String>,
    /// The clients whose upgrades ran in the background; it owns the listening socket.
    upgrades: Handshakes<Box<Upgraded>>,
    /// Shared with the background side, whose upgrades it bounds.
    timeout: Arc<HandleTimeout>,
    closed: CloseSignal,
    _slot: HandleSlot,
}

/// What an upgrade attempt came to.
enum Upgrade {
    Done(Box<Ws>, Handshake),
    /// Not a WebSocket request: answered 400. The request head, and why.
    Refused(Bytes, String),
}

struct Upgraded {
    ws: Ws,
    local: Endpoint,
    peer: Endpoint,
    handshake: Handshake,
}

/// What every upgrade of one listener shares.
struct Upgrades {
    local: Endpoint,
    acceptor: Option<TlsAcceptor>,
    protocols: Vec<String>,
    config: WebSocketConfig,
}

impl Listening for TcpListener {
    /// With its address as `accept(2)` gave it: a client that has already reset has no peer
    /// address to ask for any more (its upgrade then fails).
    type Client = (TcpStream, std::net::SocketAddr);

    async fn accept(&self) -> std::io::Result<Self::Client> {
        TcpListener::accept(self).await
    }
}

const LISTENER: On = On {
    conn: None,
    transport: Some(Transport::Ws),
};

impl WsListener {
    /// Bind `addr` and listen for WebSocket clients.
    pub fn bind(
        session: &Arc<Session>,
        call: &Call,
        addr: &str,
        opts: &ListenOptions,
    ) -> Result<WsListener, NetError> {
        let op = "ws_listen";
        let target = addr::parse(op, addr)?;
        let slot = session.open_handle(op, addr)?;
        let bound = session.block_on(
            call,
            op,
            Some(addr),
            None,
            target.first_working(op, addr, |sa| {
                std::future::ready(super::listener::tcp_listener(sa))
            }),
        );
        let socket = bound.inspect_err(|e| {
            session.record(
                call,
                EventKind::Error,
                LISTENER,
                Some(Arc::from(addr)),
                None,
                b"",
                Some(e.message.clone()),
            )
        })?;
        let local = Endpoint::new(
            socket
                .local_addr()
                .map_err(|e| NetError::io(op, Some(addr), &e))?,
        );
        let (acceptor, cert_pem) = match &opts.tls {
            Some(t) => {
                let a = tls::acceptor(t, super::listener::certificate_names(&local), addr)?;
                (Some(a.acceptor), Some(a.cert_pem))
            }
            None => (None, None),
        };
        let note = if acceptor.is_some() { "wss" } else { "ws" };
        let timeout = Arc::new(HandleTimeout::new());
        let shared = Arc::new(Upgrades {
            local: local.clone(),
            acceptor,
            protocols: opts.protocols.clone(),
            config: config(session),
        });
        let upgrades = Handshakes::start(
            session,
            call,
            socket,
            local.text.clone(),
            timeout.clone(),
            move |client, limit| handshake(client, shared.clone(), limit),
        );
        session.record(
            call,
            EventKind::Listen,
            LISTENER,
            Some(local.text.clone()),
            None,
            b"",
            Some(note.to_owned()),
        );
        Ok(WsListener {
            inner: Arc::new(ListenerInner {
                session: session.clone(),
                local,
                cert_pem,
                upgrades,
                timeout,
                closed: CloseSignal::new(),
                _slot: slot,
            }),
        })
    }

    pub fn local(&self) -> &Endpoint {
        &self.inner.local
    }

    pub fn cert_pem(&self) -> Option<&str> {
        self.inner.cert_pem.as_deref()
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

    /// The next client that asks for a WebSocket, upgraded. A client that sends a plain HTTP
    /// request is answered 400, recorded, and passed over; so is one whose TLS handshake fails,
    /// one that resets or closes before its request is whole, and one that sends no whole
    /// request within its deadline.
    pub fn accept(&self, call: &Call) -> Result<WebSocket, NetError> {
        let op = "accept";
        let inner = &self.inner;
        let addr = &*inner.local.text;
        if inner.closed.is_closed() {
            return Err(NetError::closed(op, Some(addr)));
        }
        let slot = inner.session.open_handle(op, addr)?;
        let accepted = inner
            .session
            .block_on(call, op, Some(addr), self.timeout(), async {
                let upgraded = inner.upgrades.next(&inner.closed, addr).await?;
                Ok(*upgraded)
            });
        let Upgraded {
            ws,
            local,
            peer,
            handshake,
        } = accepted.inspect_err(|e| {
            if e.kind != ErrorKind::Cancelled {
                inner.session.record(
                    call,
                    EventKind::Error,
                    LISTENER,
                    Some(inner.local.text.clone()),
                    None,
                    b"",
                    Some(e.message.clone()),
                )
            }
        })?;
        let mut note = match &handshake.protocol {
            Some(p) => format!("{} (protocol {p})", handshake.path),
            None => handshake.path.clone(),
        };
        if let Some(t) = &handshake.tls {
            note = format!("{note}, {}", t.note());
        }
        let url = inner.local.text.clone();
        let socket = WebSocket::new(&inner.session, ws, local, peer, url, handshake, slot);
        socket.record(call, EventKind::Accept, b"", Some(note));
        Ok(socket)
    }

    /// Stop listening and release the port; a waiting `accept` fails with `closed`.
    pub fn close(&self, call: &Call) {
        if !self.inner.closed.close() {
            return;
        }
        self.inner.upgrades.close();
        self.inner.session.record(
            call,
            EventKind::Close,
            LISTENER,
            Some(self.inner.local.text.clone()),
            None,
            b"",
            None,
        );
    }
}

impl std::fmt::Display for WsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WsListener({}{}{})",
            self.inner.local.text,
            if self.inner.cert_pem.is_some() {
                ", tls"
            } else {
                ""
            },
            if self.is_closed() { ", closed" } else { "" }
        )
    }
}

/// One client's TLS accept (for `wss`) and upgrade, bounded by `limit`. A client that fails
/// or stalls is passed over.
async fn handshake(
    (tcp, peer): (TcpStream, std::net::SocketAddr),
    shared: Arc<Upgrades>,
    limit: Limit,
) -> Result<Shaken<Box<Upgraded>>, NetError> {
    let op = "accept";
    let addr = &*shared.local.text;
    let _ = tcp.set_nodelay(true);
    let peer = Endpoint::new(peer);
    let local = tcp
        .local_addr()
        .map_or_else(|_| shared.local.clone(), Endpoint::new);
    // A client that fails must not stop the server: passed over.
    let passed_over = |kind, head, why| {
        Ok(Shaken::PassedOver(PassedOver {
            kind,
            on: LISTENER,
            local: Some(local.text.clone()),
            peer: Some(peer.text.clone()),
            head,
            why,
        }))
    };
    let within = || fmt_duration(limit.length);
    let (io, settled) = match &shared.acceptor {
        Some(a) => match tokio::time::timeout_at(limit.at, a.accept(tcp)).await {
            Ok(Ok(s)) => {
                let conn = s.get_ref().1;
                let settled = tls::info_of(conn, conn.server_name());
                (Io::Tls(Box::new(s.into())), Some(settled))
            }
            // It does not trust the certificate, or speaks no TLS.
            Ok(Err(e)) => {
                let why = tls::handshake_error(op, addr, &e).message.clone();
                return passed_over(EventKind::Error, Bytes::new(), why);
            }
            Err(_) => {
                let why = format!(
                    "the client did not finish its tls handshake within {}: closed, passed over",
                    within()
                );
                return passed_over(EventKind::Close, Bytes::new(), why);
            }
        },
        None => (
            Io::plain(tcp).map_err(|e| NetError::io(op, Some(addr), &e))?,
            None,
        ),
    };
    let upgrade = upgrade(io, settled, &shared.protocols, shared.config);
    match tokio::time::timeout_at(limit.at, upgrade).await {
        Ok(Ok(Upgrade::Done(ws, handshake))) => Ok(Shaken::Ready(Box::new(Upgraded {
            ws: *ws,
            local,
            peer,
            handshake,
        }))),
        Ok(Ok(Upgrade::Refused(head, why))) => passed_over(EventKind::Close, head, why),
        // It reset or went in the middle of its request.
        Ok(Err(e)) => {
            let why = NetError::io(op, Some(addr), &e).message.clone();
            passed_over(EventKind::Error, Bytes::new(), why)
        }
        Err(_) => {
            let why = format!(
                "the client sent no complete request within {}: closed, passed over",
                within()
            );
            passed_over(EventKind::Close, Bytes::new(), why)
        }
    }
}

/// The server side of the opening handshake, over `io` (TLS when `tls` says what it settled
/// on): read the request head; answer a WebSocket upgrade with 101 (choosing the first of
/// `protocols` the client offers), anything else with 400.
async fn upgrade(
    mut io: Io,
    tls: Option<TlsInfo>,
    protocols: &[String],
    config: WebSocketConfig,
) -> std::io::Result<Upgrade> {
    let mut buf = BytesMut::with_capacity(1024);
    let end = loop {
        if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            let why = format!("the request head is over {MAX_HEAD} bytes");
            return refuse(io, buf.freeze(), why).await;
        }
        if io.read_buf(&mut buf).await? == 0 {
            let why = "the client closed the connection before its request was whole".to_owned();
            return Ok(Upgrade::Refused(buf.freeze(), why));
        }
    };
    let tail = buf.split_off(end);
    let head = buf.freeze();
    let request = match parse_request(&head) {
        Ok(r) => r,
        Err(why) => return refuse(io, head, why).await,
    };
    let mut response = match create_response(&request) {
        Ok(r) => r,
        Err(e) => {
            let line = format!("{} {}", request.method(), request.uri());
            let why = format!("`{line}` is not a WebSocket upgrade ({e})").to_lowercase();
            return refuse(io, head, why).await;
        }
    };
    let offered: Vec<&str> = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let protocol = protocols.iter().find(|p| offered.contains(&p.as_str()));
    if let Some(p) = protocol {
        if let Ok(value) = http::HeaderValue::from_str(p) {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", value);
        }
    }
    let mut out = Vec::new();
    write_response(&mut out, &response).map_err(std::io::Error::other)?;
    io.write_all(&out).await?;
    io.flush().await?;
    let uri = request.uri();
    let handshake = Handshake {
        status: 101,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: Handshake::headers_of(request.headers()),
        protocol: protocol.cloned(),
        tls,
    };
    let ws =
        WebSocketStream::from_partially_read(io, tail.to_vec(), Role::Server, Some(config)).await;
    Ok(Upgrade::Done(Box::new(ws), handshake))
}

/// Answer 400 with `why` as the body, and close.
async fn refuse(mut io: Io, head: Bytes, why: String) -> std::io::Result<Upgrade> {
    let body = format!("{why}\n");
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The client may have gone; the refusal is recorded all the same.
    let _ = io.write_all(response.as_bytes()).await;
    let _ = io.shutdown().await;
    Ok(Upgrade::Refused(
        head,
        format!("{why}: answered 400 Bad Request"),
    ))
}

/// An HTTP/1.1 request head as `http` types.
fn parse_request(head: &[u8]) -> Result<http::Request<()>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("the request head is incomplete".into()),
        Err(e) => return Err(format!("not an HTTP request ({e})")),
    }
    let mut builder = http::Request::builder()
        .method(req.method.unwrap_or("GET"))
        .uri(req.path.unwrap_or("/"))
        .version(http::Version::HTTP_11);
    for h in req.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    builder
        .body(())
        .map_err(|e| format!("not an HTTP request ({e})"))
}
