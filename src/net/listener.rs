//! A listening socket, TCP or Unix, optionally TLS. `accept` may be called from several tasks
//! at once; `close` releases the port (or removes the socket file) at once and fails any
//! `accept` still waiting. What a Unix path holds, and which files may be removed, is
//! `socket_file`'s to say.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, UnixListener};

use super::addr::{self, Address, Endpoint};
use super::bridge::{CloseSignal, HandleSlot, HandleTimeout, Session};
use super::conn::Conn;
use super::error::{ErrorKind, NetError};
use super::socket_file::{self, SocketFile};
use super::stream::Plain;
use super::tls::{self, ServerTls};
use crate::transcript::EventKind;

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
    socket: Mutex<Option<Arc<Socket>>>,
    local: Endpoint,
    /// The path of a Unix listener, which names its accepted connections.
    unix_path: Option<PathBuf>,
    /// The socket file this listener made, removed when it closes if it is still that file.
    unix_file: Option<SocketFile>,
    tls: Option<tls::Acceptor>,
    timeout: HandleTimeout,
    closed: CloseSignal,
    _slot: HandleSlot,
}

impl Listener {
    /// Bind `addr` and listen. Port 0 asks the OS for a free port.
    pub fn bind(
        session: &Arc<Session>,
        addr: &str,
        opts: &ListenOptions,
    ) -> Result<Listener, NetError> {
        let address = addr::parse_address("listen", addr)?;
        let slot = session.open_handle("listen", addr)?;
        let bound = match &address {
            Address::Ip(target) => session.block_on(
                "listen",
                Some(addr),
                None,
                target.first_working("listen", addr, |sa| std::future::ready(bind_tcp(sa))),
            ),
            Address::Unix(path) => bind_unix(session, path, addr, opts.unlink),
        };
        let socket = bound.inspect_err(|e| {
            session.record(
                EventKind::Error,
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
        let tls = match &opts.tls {
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
        let note = tls.as_ref().map(|_| "tls".to_owned());
        session.record(EventKind::Listen, Some(local.text.clone()), None, b"", note);
        Ok(Listener {
            inner: Arc::new(Inner {
                session: session.clone(),
                socket: Mutex::new(Some(Arc::new(socket))),
                local,
                unix_path,
                unix_file,
                tls,
                timeout: HandleTimeout::new(),
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
    pub fn accept(&self) -> Result<Conn, NetError> {
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
            .block_on("accept", Some(addr), self.timeout(), async {
                let io = |e: std::io::Error| NetError::io("accept", Some(addr), &e);
                tokio::select! {
                    _ = inner.closed.closed() => Err(NetError::closed("accept", Some(addr))),
                    r = async {
                        let plain = match &*socket {
                            Socket::Tcp(l) => {
                                let (s, _) = l.accept().await.map_err(io)?;
                                let _ = s.set_nodelay(true);
                                Plain::Tcp(s)
                            }
                            Socket::Unix(l) => Plain::Unix(l.accept().await.map_err(io)?.0),
                        };
                        let path = inner.unix_path.as_deref();
                        match &inner.tls {
                            Some(t) => plain.server_tls("accept", &t.acceptor, addr, path).await,
                            None => plain.open("accept", path),
                        }
                    } => r,
                }
            });
        drop(socket);
        let opened = accepted.inspect_err(|e| {
            if e.kind != ErrorKind::Cancelled {
                inner.session.record(
                    EventKind::Error,
                    Some(inner.local.text.clone()),
                    None,
                    b"",
                    Some(e.message.clone()),
                )
            }
        })?;
        let conn = Conn::from_opened(&inner.session, opened, true, slot);
        inner.session.record(
            EventKind::Accept,
            Some(conn.local().text.clone()),
            Some(conn.peer().text.clone()),
            b"",
            conn.tls_note(),
        );
        Ok(conn)
    }

    /// Stop listening and release the port (or remove the socket file).
    pub fn close(&self) {
        if !self.inner.closed.close() {
            return;
        }
        self.inner
            .socket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(file) = &self.inner.unix_file {
            file.remove();
        }
        self.inner.session.record(
            EventKind::Close,
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
fn certificate_names(local: &Endpoint) -> Vec<String> {
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

fn bind_tcp(sa: std::net::SocketAddr) -> std::io::Result<Socket> {
    let socket = if sa.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Lets a scenario re-listen on a port whose old connections sit in TIME_WAIT; a port with a
    // live listener still fails with `addr_in_use`.
    socket.set_reuseaddr(true)?;
    socket.bind(sa)?;
    socket.listen(BACKLOG).map(Socket::Tcp)
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
