//! The byte streams a [`Conn`](super::Conn) sits on: TCP or a Unix socket, either one under
//! TLS. Opening them (connect, and the TLS handshakes) and giving a connection its read and
//! write halves ([`super::transport`]): a plain socket it uses directly ([`PlainSocket`]), or a
//! split TLS stream.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::addr::{Address, Endpoint};
use super::error::{ErrorKind, NetError};
use super::plain::PlainSocket;
use super::tls::{self, ClientTls, TlsInfo};
use super::transport::{ReadIo, TlsRead, TlsWrite, WriteIo};

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
    /// The peer is this process (a Unix socket's peer credentials say so): a connection the
    /// scenario holds both ends of.
    pub same_process: bool,
    /// The abstract name a Unix client is bound to (see [`connect_unix`]): the same from both
    /// ends, so the scenario's own connections are paired by it.
    pub unix_client: Option<Box<[u8]>>,
}

/// This side's address, the peer's, and the abstract name a Unix client is bound to.
type Ends = (Endpoint, Endpoint, Option<Box<[u8]>>);

impl Plain {
    /// This side's and the peer's address, and a Unix client's abstract name.
    fn endpoints(
        &self,
        op: &'static str,
        listen_path: Option<&std::path::Path>,
    ) -> Result<Ends, NetError> {
        let io = |e: std::io::Error| NetError::io(op, None, &e);
        match self {
            Plain::Tcp(s) => Ok((
                Endpoint::new(s.local_addr().map_err(io)?),
                Endpoint::new(s.peer_addr().map_err(io)?),
                None,
            )),
            Plain::Unix(s) => {
                let local = s.local_addr().map_err(io)?;
                let peer = s.peer_addr().map_err(io)?;
                // An accepted socket has no name of its own: it is the listener's path.
                let local_path = local.as_pathname().or(listen_path);
                let client = local.as_abstract_name().or(peer.as_abstract_name());
                Ok((
                    Endpoint::unix(local_path),
                    Endpoint::unix(peer.as_pathname()),
                    client.map(Into::into),
                ))
            }
        }
    }

    /// Whether the other end is this process, by a Unix socket's peer credentials.
    fn same_process(&self) -> bool {
        match self {
            Plain::Tcp(_) => false,
            Plain::Unix(s) => s
                .peer_cred()
                .is_ok_and(|c| c.pid() == i32::try_from(std::process::id()).ok()),
        }
    }

    /// Whether the client reset the connection while it waited to be accepted: the kernel
    /// still hands it over, but it has no peer address any more.
    pub fn reset_before_accept(&self) -> bool {
        match self {
            Plain::Tcp(s) => s
                .peer_addr()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotConnected),
            Plain::Unix(_) => false,
        }
    }

    /// The client's address as transcripts show it.
    pub fn peer_text(&self) -> Option<Arc<str>> {
        match self {
            Plain::Tcp(s) => s.peer_addr().ok().map(|a| Endpoint::new(a).text),
            Plain::Unix(s) => s
                .peer_addr()
                .ok()
                .map(|a| Endpoint::unix(a.as_pathname()).text),
        }
    }

    /// Wait until the peer sends its first byte, without taking it: `false` when it closed (or
    /// reset) the connection without sending one, as a `wait_for` probe or a port scan does.
    pub async fn sends_a_byte(&self) -> std::io::Result<bool> {
        use std::io::ErrorKind as K;
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let peeked = loop {
            let read = tokio::io::Interest::READABLE;
            let tried = match self {
                Plain::Tcp(s) => {
                    s.readable().await?;
                    s.try_io(read, || socket2::SockRef::from(s).peek(&mut byte))
                }
                Plain::Unix(s) => {
                    s.readable().await?;
                    s.try_io(read, || socket2::SockRef::from(s).peek(&mut byte))
                }
            };
            match tried {
                Err(e) if e.kind() == K::WouldBlock || e.kind() == K::Interrupted => continue,
                other => break other,
            }
        };
        match peeked {
            Ok(n) => Ok(n > 0),
            Err(e) if matches!(e.kind(), K::ConnectionReset | K::ConnectionAborted) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Use the stream as it is.
    pub fn open(
        self,
        op: &'static str,
        listen_path: Option<&std::path::Path>,
    ) -> Result<Opened, NetError> {
        let (local, peer, unix_client) = self.endpoints(op, listen_path)?;
        let same_process = self.same_process();
        // Out of the runtime's poller: the connection reads and writes the socket itself.
        let sock: socket2::Socket = match self {
            Plain::Tcp(s) => s.into_std().map(Into::into),
            Plain::Unix(s) => s.into_std().map(Into::into),
        }
        .map_err(|e| NetError::io(op, None, &e))?;
        let sock = PlainSocket::new(sock);
        let (r, w) = (ReadIo::Plain(sock.clone()), WriteIo::Plain(sock));
        Ok(Opened {
            r,
            w,
            local,
            peer,
            tls: None,
            same_process,
            unix_client,
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
        let (local, peer, unix_client) = self.endpoints(op, None)?;
        let same_process = false;
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
            same_process,
            unix_client,
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
        let (local, peer, unix_client) = self.endpoints(op, listen_path)?;
        let same_process = self.same_process();
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
            same_process,
            unix_client,
        })
    }
}

/// Connect to the Unix socket at `path` from a socket bound first to an abstract name of the
/// kernel's choosing (Linux's autobind), instead of an unnamed one: the accepted end sees
/// that name as its peer, so when the scenario holds both ends they are paired by it, not by
/// the order two threads happen to record them in. A peer elsewhere sees a name where it
/// would have seen none.
async fn connect_unix(path: &std::path::Path) -> std::io::Result<UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    // An empty path is the family alone: the kernel picks the name.
    socket.bind(&SockAddr::unix("")?)?;
    match socket.connect(&SockAddr::unix(path)?) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = UnixStream::from_std(std::os::unix::net::UnixStream::from(
        std::os::fd::OwnedFd::from(socket),
    ))?;
    stream.writable().await?;
    match stream.take_error()? {
        Some(e) => Err(e),
        None => Ok(stream),
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
    Ok((
        ReadIo::Tls(Box::new(TlsRead(Box::new(r)))),
        WriteIo::Tls(Box::new(TlsWrite(Box::new(w)))),
        info,
    ))
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
    Ok((
        ReadIo::Tls(Box::new(TlsRead(Box::new(r)))),
        WriteIo::Tls(Box::new(TlsWrite(Box::new(w)))),
        info,
    ))
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
            let s = target.first_working(op, addr, TcpStream::connect).await?;
            // Scenarios send small messages and wait for answers: no Nagle delay.
            let _ = s.set_nodelay(true);
            Plain::Tcp(s)
        }
        Address::Unix(path) => match connect_unix(path).await {
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
