//! The byte streams a [`Conn`](super::Conn) sits on: TCP or a Unix socket, either one under
//! TLS. Opening them (connect, and the TLS handshakes) and splitting them into the read and
//! write halves a connection keeps.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::addr::{Address, Endpoint};
use super::error::{ErrorKind, NetError};
use super::tls::{self, ClientTls, TlsInfo};

pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A connection's write half; plain sockets unboxed, like [`ReadIo`].
pub(crate) enum WriteIo {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Unix(tokio::net::unix::OwnedWriteHalf),
    Tls(BoxWrite),
}

impl AsyncWrite for WriteIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteIo::Tcp(w) => std::pin::Pin::new(w).poll_write(cx, buf),
            WriteIo::Unix(w) => std::pin::Pin::new(w).poll_write(cx, buf),
            WriteIo::Tls(w) => std::pin::Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteIo::Tcp(w) => std::pin::Pin::new(w).poll_flush(cx),
            WriteIo::Unix(w) => std::pin::Pin::new(w).poll_flush(cx),
            WriteIo::Tls(w) => std::pin::Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteIo::Tcp(w) => std::pin::Pin::new(w).poll_shutdown(cx),
            WriteIo::Unix(w) => std::pin::Pin::new(w).poll_shutdown(cx),
            WriteIo::Tls(w) => std::pin::Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// A connection's read half. Plain sockets stay concrete so a read can go straight to the
/// socket ([`ReadIo::read_now`]) without a trip through the runtime.
pub(crate) enum ReadIo {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Unix(tokio::net::unix::OwnedReadHalf),
    Tls(BoxRead),
}

impl ReadIo {
    /// Read what the socket holds now into `buf`'s spare room, on this thread and without
    /// waiting: `WouldBlock` when nothing is there yet, `None` for TLS (its bytes need the TLS
    /// state, which only the async path drives). The runtime still learns of readiness from
    /// its own attempts, which always try the socket before they wait, so no wake-up is lost.
    pub fn read_now(&self, buf: &mut bytes::BytesMut) -> Option<std::io::Result<usize>> {
        let sock = match self {
            ReadIo::Tcp(r) => socket2::SockRef::from(r.as_ref()),
            ReadIo::Unix(r) => socket2::SockRef::from(r.as_ref()),
            ReadIo::Tls(_) => return None,
        };
        let spare = buf.spare_capacity_mut();
        let room = spare.len();
        Some(sock.recv(spare).map(|n| {
            let n = n.min(room);
            // SAFETY: `recv` initialised the first `n` bytes of the spare capacity (the kernel
            // wrote them; socket2 returns how many), and `n` is within that capacity.
            #[allow(unsafe_code)]
            unsafe {
                buf.set_len(buf.len() + n);
            }
            n
        }))
    }
}

impl AsyncRead for ReadIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ReadIo::Tcp(r) => std::pin::Pin::new(r).poll_read(cx, buf),
            ReadIo::Unix(r) => std::pin::Pin::new(r).poll_read(cx, buf),
            ReadIo::Tls(r) => std::pin::Pin::new(r).poll_read(cx, buf),
        }
    }
}

/// A connected socket before any TLS.
pub(crate) enum Plain {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A stream ready to become a connection.
pub(crate) struct Opened {
    pub r: ReadIo,
    pub w: WriteIo,
    pub local: Endpoint,
    pub peer: Endpoint,
    pub tls: Option<TlsInfo>,
}

impl Plain {
    fn endpoints(
        &self,
        op: &'static str,
        listen_path: Option<&std::path::Path>,
    ) -> Result<(Endpoint, Endpoint), NetError> {
        let io = |e: std::io::Error| NetError::io(op, None, &e);
        match self {
            Plain::Tcp(s) => Ok((
                Endpoint::new(s.local_addr().map_err(io)?),
                Endpoint::new(s.peer_addr().map_err(io)?),
            )),
            Plain::Unix(s) => {
                let local = s.local_addr().map_err(io)?;
                let peer = s.peer_addr().map_err(io)?;
                // An accepted socket has no name of its own: it is the listener's path.
                let local_path = local.as_pathname().or(listen_path);
                Ok((
                    Endpoint::unix(local_path),
                    Endpoint::unix(peer.as_pathname()),
                ))
            }
        }
    }

    /// Use the stream as it is.
    pub fn open(
        self,
        op: &'static str,
        listen_path: Option<&std::path::Path>,
    ) -> Result<Opened, NetError> {
        let (local, peer) = self.endpoints(op, listen_path)?;
        let (r, w) = match self {
            Plain::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadIo::Tcp(r), WriteIo::Tcp(w))
            }
            Plain::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadIo::Unix(r), WriteIo::Unix(w))
            }
        };
        Ok(Opened {
            r,
            w,
            local,
            peer,
            tls: None,
        })
    }

    /// The client side of a TLS handshake.
    pub async fn client_tls(
        self,
        op: &'static str,
        connector: TlsConnector,
        name: rustls::pki_types::ServerName<'static>,
        addr: &str,
    ) -> Result<Opened, NetError> {
        let (local, peer) = self.endpoints(op, None)?;
        let (r, w, info) = match self {
            Plain::Tcp(s) => client_handshake(s, connector, name, op, addr).await?,
            Plain::Unix(s) => client_handshake(s, connector, name, op, addr).await?,
        };
        Ok(Opened {
            r,
            w,
            local,
            peer,
            tls: Some(info),
        })
    }

    /// The server side of a TLS handshake.
    pub async fn server_tls(
        self,
        op: &'static str,
        acceptor: &TlsAcceptor,
        addr: &str,
        listen_path: Option<&std::path::Path>,
    ) -> Result<Opened, NetError> {
        let (local, peer) = self.endpoints(op, listen_path)?;
        let (r, w, info) = match self {
            Plain::Tcp(s) => server_handshake(s, acceptor, op, addr).await?,
            Plain::Unix(s) => server_handshake(s, acceptor, op, addr).await?,
        };
        Ok(Opened {
            r,
            w,
            local,
            peer,
            tls: Some(info),
        })
    }
}

async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    s: S,
    connector: TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
    op: &'static str,
    addr: &str,
) -> Result<(ReadIo, WriteIo, TlsInfo), NetError> {
    let stream = connector
        .connect(name, s)
        .await
        .map_err(|e| tls::handshake_error(op, addr, &e))?;
    let info = tls::info_of(stream.get_ref().1, None);
    let (r, w) = tokio::io::split(stream);
    Ok((ReadIo::Tls(Box::new(r)), WriteIo::Tls(Box::new(w)), info))
}

async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    s: S,
    acceptor: &TlsAcceptor,
    op: &'static str,
    addr: &str,
) -> Result<(ReadIo, WriteIo, TlsInfo), NetError> {
    let stream = acceptor
        .accept(s)
        .await
        .map_err(|e| tls::handshake_error(op, addr, &e))?;
    let conn = &stream.get_ref().1;
    let info = tls::info_of(conn, conn.server_name());
    let (r, w) = tokio::io::split(stream);
    Ok((ReadIo::Tls(Box::new(r)), WriteIo::Tls(Box::new(w)), info))
}

/// Connect to `address` (every address a name resolves to, in turn), then TLS if asked.
pub(crate) async fn connect(
    op: &'static str,
    address: &Address,
    addr: &str,
    tls: Option<&ClientTls>,
) -> Result<Opened, NetError> {
    let plain = match address {
        Address::Ip(target) => {
            let mut last = None;
            let mut found = None;
            for sa in target.resolve(op, addr).await? {
                match TcpStream::connect(sa).await {
                    Ok(s) => {
                        // Scenarios send small messages and wait for answers: no Nagle delay.
                        let _ = s.set_nodelay(true);
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = Some(NetError::io(op, Some(addr), &e)),
                }
            }
            match found {
                Some(s) => Plain::Tcp(s),
                None => {
                    return Err(last.unwrap_or_else(|| {
                        NetError::io(op, Some(addr), &std::io::ErrorKind::AddrNotAvailable.into())
                    }))
                }
            }
        }
        Address::Unix(path) => match UnixStream::connect(path).await {
            Ok(s) => Plain::Unix(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NetError::new(
                    ErrorKind::ConnectionRefused,
                    op,
                    Some(addr),
                    format!(
                        "{op} to `{addr}` failed: no socket file at `{}`",
                        path.display()
                    ),
                ))
            }
            Err(e) => return Err(NetError::io(op, Some(addr), &e)),
        },
    };
    match tls {
        None => plain.open(op, None),
        Some(opts) => {
            let host = match address {
                Address::Ip(t) => t.host.clone(),
                Address::Unix(_) => "localhost".to_owned(),
            };
            let (connector, name) = tls::connector(opts, &host, addr)?;
            plain.client_tls(op, connector, name, addr).await
        }
    }
}

/// Two ends seen by one scenario are one connection: the key is the same from both sides.
pub(crate) fn ip_key(a: &Endpoint, b: &Endpoint) -> Option<(SocketAddr, SocketAddr)> {
    let (a, b) = (a.addr?, b.addr?);
    Some(if a <= b { (a, b) } else { (b, a) })
}
