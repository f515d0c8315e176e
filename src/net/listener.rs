//! A listening socket, TCP or Unix, optionally TLS. `accept` may be called from several tasks
//! at once; `close` releases the port (or removes the socket file) at once and fails any
//! `accept` still waiting. What a Unix path holds, and which files may be removed, is
//! `socket_file`'s to say.
//!
//! A plain listener accepts on the calling script thread. A TLS listener cannot: one client
//! that connects and stays silent would hold every other client's handshake behind its own.
//! It runs its handshakes in the background instead (`handshakes`), each under a
//! deadline, and `accept` takes connections in the order their handshakes finish.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio_rustls::TlsAcceptor;

use super::addr::{self, Address, Endpoint};
use super::bridge::{CloseSignal, HandleSlot, HandleTimeout, Opening, Session};
use super::call::Call;
use super::conn::Conn;
use super::error::{fmt_duration, ErrorKind, NetError};
use super::handshakes::{Handshakes, Limit, Listening, PassedOver, Shaken};
use super::socket_file::{self, SocketFile};
use super::stream::{Opened, Plain};
use super::tls::{self, ServerTls};
use crate::transcript::{EventKind, On, Transport};

/// Pending connections the kernel queues before `accept`.
const BACKLOG: u32 = 4096;

/// What `listen(addr, opts)` may ask for beyond the address.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    /// Remove a stale socket file left at a Unix path before binding (one that no socket is
    /// bound to; never a live socket or a file of another kind).
    pub unlink: bool,
    pub tls: Option<ServerTls>,
}

#[derive(Clone)]
pub struct Listener {
    inner: Arc<Inner>,
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

struct Inner {
    session: Arc<Session>,
    /// No connection id; the transport, for the listener's own events.
    on: On,
    socket: Mutex<Option<Arc<Socket>>>,
    local: Endpoint,
    /// The path of a Unix listener, which names its accepted connections.
    unix_path: Option<PathBuf>,
    /// The socket file this listener made, removed when it closes if it is still that file.
    unix_file: Option<SocketFile>,
    /// A TLS listener's background side; it owns the listening socket (`socket` is `None`).
    tls: Option<TlsSide>,
    /// Shared with a TLS listener's background side, whose handshakes it bounds.
    timeout: Arc<HandleTimeout>,
    closed: CloseSignal,
    _slot: HandleSlot,
}

/// What a TLS listener's `accept` takes from: connections whose handshakes ran in the
/// background, as they finished.
struct TlsSide {
    cert_pem: String,
    handshakes: Handshakes<Box<Opened>>,
}

impl Listener {
    /// Bind `addr` and listen. Port 0 asks the OS for a free port.
    pub fn bind(
        session: &Arc<Session>,
        call: &Call,
        addr: &str,
        opts: &ListenOptions,
    ) -> Result<Listener, NetError> {
        let address = addr::parse_address("listen", addr)?;
        let slot = session.open_handle("listen", addr)?;
        let bound = match &address {
            Address::Ip(target) => session.block_on(
                call,
                "listen",
                Some(addr),
                None,
                target.first_working("listen", addr, |sa| std::future::ready(bind_tcp(sa))),
            ),
            Address::Unix(path) => bind_unix(session, path, addr, opts.unlink),
        };
        let socket = bound.inspect_err(|e| {
            let transport = match (&address, &opts.tls) {
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
                Some(Arc::from(addr)),
                None,
                b"",
                Some(e.message.clone()),
            )
        })?;
        let (local, unix_path, unix_file) = match (&socket, &address) {
            (Socket::Tcp(l), _) => (
                Endpoint::new(
                    l.local_addr()
                        .map_err(|e| NetError::io("listen", Some(addr), &e))?,
                ),
                None,
                None,
            ),
            (Socket::Unix(_), Address::Unix(path)) => {
                session.add_unix_path(path);
                let file = SocketFile::bound(path);
                (Endpoint::unix(Some(path)), Some(path.clone()), file)
            }
            (Socket::Unix(_), Address::Ip(_)) => {
                unreachable!("a Unix socket comes from a unix: address")
            }
        };
        let acceptor = match &opts.tls {
            // The socket closes with this error: its file goes too, or the path stays taken.
            Some(t) => Some(
                tls::acceptor(t, certificate_names(&local), addr).inspect_err(|_| {
                    if let Some(file) = &unix_file {
                        file.remove();
                    }
                })?,
            ),
            None => None,
        };
        let timeout = Arc::new(HandleTimeout::new());
        let (socket, tls) = match acceptor {
            None => (Some(Arc::new(socket)), None),
            Some(acceptor) => {
                let shared = Arc::new(TlsHandshake {
                    acceptor: acceptor.acceptor,
                    addr: local.text.clone(),
                    unix_path: unix_path.clone(),
                });
                let handshakes = Handshakes::start(
                    session,
                    call,
                    socket,
                    local.text.clone(),
                    timeout.clone(),
                    move |plain, limit| handshake(plain, shared.clone(), limit),
                );
                let side = TlsSide {
                    cert_pem: acceptor.cert_pem,
                    handshakes,
                };
                (None, Some(side))
            }
        };
        let note = tls.as_ref().map(|_| "tls".to_owned());
        let transport = match (&tls, &unix_path) {
            (Some(_), _) => Transport::Tls,
            (None, Some(_)) => Transport::Unix,
            (None, None) => Transport::Tcp,
        };
        let on = On {
            conn: None,
            transport: Some(transport),
        };
        session.record(
            call,
            EventKind::Listen,
            on,
            Some(local.text.clone()),
            None,
            b"",
            note,
        );
        Ok(Listener {
            inner: Arc::new(Inner {
                on,
                session: session.clone(),
                socket: Mutex::new(socket),
                local,
                unix_path,
                unix_file,
                tls,
                timeout,
                closed: CloseSignal::new(),
                _slot: slot,
            }),
        })
    }

    pub fn local(&self) -> &Endpoint {
        &self.inner.local
    }

    /// The PEM certificate of a TLS listener, for clients to trust.
    pub fn cert_pem(&self) -> Option<&str> {
        self.inner.tls.as_ref().map(|t| t.cert_pem.as_str())
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

    /// The next connection (its TLS handshake done, for a TLS listener).
    pub fn accept(&self, call: &Call) -> Result<Conn, NetError> {
        if let Some(side) = &self.inner.tls {
            return self.accept_tls(call, side);
        }
        let inner = &self.inner;
        let addr = &*inner.local.text;
        let socket = inner
            .socket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| NetError::closed("accept", Some(addr)))?;
        let slot = inner.session.open_handle("accept", addr)?;
        let accepted = inner
            .session
            .block_on(call, "accept", Some(addr), self.timeout(), async {
                let io = |e: std::io::Error| NetError::io("accept", Some(addr), &e);
                tokio::select! {
                    _ = inner.closed.closed() => Err(NetError::closed("accept", Some(addr))),
                    r = async {
                        loop {
                            let plain = socket.accept().await.map_err(io)?;
                            if plain.reset_before_accept() {
                                // Nothing left to talk to, nor an address to name it by (a
                                // port scan, a health check): recorded, passed over.
                                inner.session.record(
                                    call,
                                    EventKind::Close,
                                    inner.on,
                                    Some(inner.local.text.clone()),
                                    None,
                                    b"",
                                    Some(
                                        "a client reset its connection before it was accepted: \
                                         passed over"
                                            .to_owned(),
                                    ),
                                );
                                continue;
                            }
                            return plain.open("accept", inner.unix_path.as_deref());
                        }
                    } => r,
                }
            });
        drop(socket);
        self.accepted(call, accepted, slot)
    }

    /// `accept` on a TLS listener: the next connection whose handshake has finished. Clients
    /// that were no TLS clients at all were recorded and passed over in the background.
    fn accept_tls(&self, call: &Call, side: &TlsSide) -> Result<Conn, NetError> {
        let inner = &self.inner;
        let addr = &*inner.local.text;
        if inner.closed.is_closed() {
            return Err(NetError::closed("accept", Some(addr)));
        }
        let slot = inner.session.open_handle("accept", addr)?;
        let accepted = inner
            .session
            .block_on(call, "accept", Some(addr), self.timeout(), async {
                let opened = side.handshakes.next(&inner.closed, addr).await?;
                Ok(*opened)
            });
        self.accepted(call, accepted, slot)
    }

    /// Record what `accept` got, and make the connection.
    fn accepted(
        &self,
        call: &Call,
        accepted: Result<Opened, NetError>,
        slot: HandleSlot,
    ) -> Result<Conn, NetError> {
        let inner = &self.inner;
        let opened = accepted.inspect_err(|e| {
            if e.kind != ErrorKind::Cancelled {
                inner.session.record(
                    call,
                    EventKind::Error,
                    inner.on,
                    Some(inner.local.text.clone()),
                    None,
                    b"",
                    Some(e.message.clone()),
                )
            }
        })?;
        let opening = Opening::Accept {
            unix_path: inner.unix_path.as_deref(),
            same_process: opened.same_process,
        };
        let conn = Conn::from_opened(&inner.session, opened, opening, slot);
        conn.record(call, EventKind::Accept, b"", conn.tls_note());
        Ok(conn)
    }

    /// Stop listening and release the port (or remove the socket file).
    pub fn close(&self, call: &Call) {
        if !self.inner.closed.close() {
            return;
        }
        self.inner
            .socket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(side) = &self.inner.tls {
            side.handshakes.close();
        }
        if let Some(file) = &self.inner.unix_file {
            file.remove();
        }
        self.inner.session.record(
            call,
            EventKind::Close,
            self.inner.on,
            Some(self.inner.local.text.clone()),
            None,
            b"",
            None,
        );
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let (Some(file), false) = (&self.unix_file, self.closed.is_closed()) {
            file.remove();
        }
        // A TLS side's background stops as its `Handshakes` drops, next.
    }
}

/// What every handshake of one TLS listener shares.
struct TlsHandshake {
    acceptor: TlsAcceptor,
    addr: Arc<str>,
    unix_path: Option<PathBuf>,
}

/// One client's handshake, bounded by `limit`.
async fn handshake(
    plain: Plain,
    shared: Arc<TlsHandshake>,
    limit: Limit,
) -> Result<Shaken<Box<Opened>>, NetError> {
    let deadline = limit.at;
    let addr = &*shared.addr;
    let peer = plain.peer_text();
    // Not a TLS client: it closed without sending a byte (a `wait_for` probe, a port scan), or
    // sent nothing before the deadline.
    let skipped = |kind, why| {
        Ok(Shaken::PassedOver(PassedOver {
            kind,
            on: On {
                conn: None,
                transport: Some(Transport::Tls),
            },
            local: Some(shared.addr.clone()),
            // An unnamed Unix client, named for its listener.
            peer: peer.clone().map(|p| match &*p {
                "unix:" => Arc::from(format!("{addr}#client")),
                _ => p,
            }),
            head: bytes::Bytes::new(),
            why,
        }))
    };
    match tokio::time::timeout_at(deadline, plain.sends_a_byte()).await {
        Ok(Ok(false)) => {
            let why = "the client closed the connection without sending a byte: skipped, no \
                       tls handshake";
            return skipped(EventKind::Eof, why.to_owned());
        }
        Err(_) => {
            let why = format!(
                "the client sent nothing within {}: closed, no tls handshake",
                fmt_duration(limit.length)
            );
            return skipped(EventKind::Close, why);
        }
        // A byte is there, or the socket failed: the handshake tells which.
        Ok(_) => {}
    }
    let path = shared.unix_path.as_deref();
    let tls = plain.server_tls("accept", &shared.acceptor, addr, path);
    match tokio::time::timeout_at(deadline, tls).await {
        Ok(opened) => Ok(Shaken::Ready(Box::new(opened?))),
        Err(_) => {
            let why = format!(
                "the client did not finish it within {}",
                fmt_duration(limit.length)
            );
            let stalled = std::io::Error::new(std::io::ErrorKind::TimedOut, why);
            Err(tls::handshake_error("accept", addr, &stalled))
        }
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Listener({}{}{})",
            self.inner.local.text,
            if self.inner.tls.is_some() {
                ", tls"
            } else {
                ""
            },
            if self.is_closed() { ", closed" } else { "" }
        )
    }
}

/// The names a self-signed certificate is made for: `localhost` and the bound IP.
pub(crate) fn certificate_names(local: &Endpoint) -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Some(ip) = local.ip() {
        if ip != "0.0.0.0" && ip != "::" {
            names.push(ip);
        }
    }
    names.push("127.0.0.1".to_owned());
    names.push("::1".to_owned());
    names.dedup();
    names
}

impl Listening for Socket {
    type Client = Plain;

    /// The next connection, before any TLS.
    async fn accept(&self) -> std::io::Result<Plain> {
        match self {
            Socket::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Plain::Tcp(s))
            }
            Socket::Unix(l) => Ok(Plain::Unix(l.accept().await?.0)),
        }
    }
}

fn bind_tcp(sa: std::net::SocketAddr) -> std::io::Result<Socket> {
    tcp_listener(sa).map(Socket::Tcp)
}

/// A listening TCP socket as `listen` makes one, also for `ws_listen` and the proxy: a backlog
/// of [`BACKLOG`], and a scenario may listen again on a port whose old connections sit in
/// TIME_WAIT (a port with a live listener still fails with `addr_in_use`). In the runtime's
/// context.
pub(crate) fn tcp_listener(sa: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if sa.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(sa)?;
    socket.listen(BACKLOG)
}

/// Bind a Unix socket. Whatever is already at the path is reported, never silently replaced:
/// a live socket of any type, or a file that is not a socket, is `addr_in_use` saying what is
/// there; `unlink: true` removes only a stale socket file (one that nothing is bound to).
fn bind_unix(session: &Session, path: &Path, addr: &str, unlink: bool) -> Result<Socket, NetError> {
    let in_use = |occupant: socket_file::Occupant| {
        NetError::new(
            ErrorKind::AddrInUse,
            "listen",
            Some(addr),
            format!(
                "listen on `{addr}` failed: {}",
                occupant.refusal(path, unlink)
            ),
        )
    };
    if unlink {
        socket_file::remove_stale(path).map_err(in_use)?;
    }
    // Binding needs the runtime's reactor for the listener it registers.
    let _guard = session.handle().enter();
    match UnixListener::bind(path) {
        Ok(l) => Ok(Socket::Unix(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(in_use(socket_file::occupant(path)))
        }
        Err(e) => Err(NetError::io("listen", Some(addr), &e)),
    }
}
