//! Datagram sockets. Each `recv` returns one whole datagram; boundaries are kept. A connected
//! socket (`udp_connect`) reports an ICMP port-unreachable as `connection_refused` where the OS
//! passes it on (Linux does, on the next call).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::addr::{self, Endpoint};
use super::bridge::{CloseSignal, HandleSlot, HandleTimeout, Session};
use super::call::Call;
use super::error::{ErrorKind, NetError};
use crate::transcript::{EventKind, On, Transport};

/// The largest datagram a UDP socket can carry.
const MAX_DATAGRAM: usize = 65_536;

#[derive(Clone)]
pub struct Udp {
    inner: Arc<Inner>,
}

struct Inner {
    session: Arc<Session>,
    /// The socket's own transcript id (UDP has no connection to share one).
    on: On,
    /// Taken out by `close`, so the port is free at once.
    socket: Mutex<Option<Arc<UdpSocket>>>,
    local: Endpoint,
    /// The one peer of a connected socket.
    peer: Option<Endpoint>,
    timeout: HandleTimeout,
    closed: CloseSignal,
    _slot: HandleSlot,
}

impl Udp {
    /// A socket bound to `addr` (port 0 for any free port), able to talk to anyone.
    pub fn bind(session: &Arc<Session>, call: &Call, addr: &str) -> Result<Udp, NetError> {
        let target = addr::parse("udp", addr)?;
        let slot = session.open_handle("udp", addr)?;
        let socket = session.block_on(
            call,
            "udp",
            Some(addr),
            None,
            target.first_working("udp", addr, UdpSocket::bind),
        )?;
        Udp::from_socket(session, call, socket, None, slot, "udp", addr)
    }

    /// A socket bound to a free port and connected to `addr`: it sends there and hears only
    /// from there.
    pub fn connect(session: &Arc<Session>, call: &Call, addr: &str) -> Result<Udp, NetError> {
        let target = addr::parse("udp_connect", addr)?;
        let slot = session.open_handle("udp_connect", addr)?;
        let (socket, peer) = session.block_on(call, "udp_connect", Some(addr), None, async {
            let sa = *target
                .resolve("udp_connect", addr)
                .await?
                .first()
                .ok_or_else(|| {
                    NetError::io(
                        "udp_connect",
                        Some(addr),
                        &std::io::ErrorKind::AddrNotAvailable.into(),
                    )
                })?;
            let any: SocketAddr = if sa.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let io = |e: std::io::Error| NetError::io("udp_connect", Some(addr), &e);
            let socket = UdpSocket::bind(any).await.map_err(io)?;
            socket.connect(sa).await.map_err(io)?;
            Ok((socket, sa))
        })?;
        Udp::from_socket(
            session,
            call,
            socket,
            Some(Endpoint::new(peer)),
            slot,
            "udp_connect",
            addr,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn from_socket(
        session: &Arc<Session>,
        call: &Call,
        socket: UdpSocket,
        peer: Option<Endpoint>,
        slot: HandleSlot,
        op: &'static str,
        addr: &str,
    ) -> Result<Udp, NetError> {
        let local = Endpoint::new(
            socket
                .local_addr()
                .map_err(|e| NetError::io(op, Some(addr), &e))?,
        );
        let on = On {
            conn: Some(session.new_id()),
            transport: Some(Transport::Udp),
        };
        session.record(
            call,
            EventKind::Listen,
            on,
            Some(local.text.clone()),
            peer.as_ref().map(|p| p.text.clone()),
            b"",
            Some("udp".into()),
        );
        Ok(Udp {
            inner: Arc::new(Inner {
                session: session.clone(),
                on,
                socket: Mutex::new(Some(Arc::new(socket))),
                local,
                peer,
                timeout: HandleTimeout::new(),
                closed: CloseSignal::new(),
                _slot: slot,
            }),
        })
    }

    pub fn local(&self) -> &Endpoint {
        &self.inner.local
    }

    pub fn peer(&self) -> Option<&Endpoint> {
        self.inner.peer.as_ref()
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

    /// The socket, unless closed.
    fn socket(&self, op: &'static str) -> Result<Arc<UdpSocket>, NetError> {
        self.inner
            .socket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| NetError::closed(op, Some(&self.inner.local.text)))
    }

    /// Send one datagram to `addr`.
    pub fn send_to(&self, call: &Call, data: &[u8], addr: &str) -> Result<usize, NetError> {
        let socket = self.socket("send_to")?;
        let target = addr::parse("send_to", addr)?;
        let inner = &self.inner;
        let (n, to) = inner.session.block_on(call, "send_to", Some(addr), self.timeout(), async {
            let to = *target
                .resolve("send_to", addr)
                .await?
                .first()
                .ok_or_else(|| NetError::io("send_to", Some(addr), &std::io::ErrorKind::AddrNotAvailable.into()))?;
            tokio::select! {
                _ = inner.closed.closed() => Err(NetError::closed("send_to", Some(addr))),
                r = socket.send_to(data, to) => r.map(|n| (n, to)).map_err(|e| NetError::io("send_to", Some(addr), &e)),
            }
        })?;
        self.record(call, EventKind::Send, Some(Endpoint::new(to).text), data);
        Ok(n)
    }

    /// Send one datagram to the connected peer.
    pub fn send(&self, call: &Call, data: &[u8]) -> Result<usize, NetError> {
        let socket = self.socket("send")?;
        let inner = &self.inner;
        let peer = self.connected("send")?;
        let n = inner.session.block_on(call, "send", Some(&peer.text), self.timeout(), async {
            tokio::select! {
                _ = inner.closed.closed() => Err(NetError::closed("send", Some(&peer.text))),
                r = socket.send(data) => r.map_err(|e| NetError::io("send", Some(&peer.text), &e)),
            }
        })?;
        self.record(call, EventKind::Send, Some(peer.text.clone()), data);
        Ok(n)
    }

    /// The next datagram, and who sent it.
    pub fn recv_from(
        &self,
        call: &Call,
        op: &'static str,
    ) -> Result<(Bytes, SocketAddr), NetError> {
        let socket = self.socket(op)?;
        let inner = &self.inner;
        let at = inner.local.text.clone();
        let (data, from) = inner
            .session
            .block_on(call, op, Some(&at), self.timeout(), async {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                tokio::select! {
                    _ = inner.closed.closed() => Err(NetError::closed(op, Some(&at))),
                    r = socket.recv_from(&mut buf) => match r {
                        Ok((n, from)) => {
                            buf.truncate(n);
                            Ok((Bytes::from(buf), from))
                        }
                        Err(e) => Err(NetError::io(op, Some(&at), &e)),
                    },
                }
            })
            .map_err(|e| e.waiting_for("a datagram"))?;
        self.record(call, EventKind::Recv, Some(Endpoint::new(from).text), &data);
        Ok((data, from))
    }

    /// The next datagram from the connected peer.
    pub fn recv(&self, call: &Call, op: &'static str) -> Result<Bytes, NetError> {
        self.connected(op)?;
        let (data, _) = self.recv_from(call, op)?;
        Ok(data)
    }

    fn connected(&self, op: &'static str) -> Result<&Endpoint, NetError> {
        self.inner.peer.as_ref().ok_or_else(|| {
            NetError::new(
                ErrorKind::Io,
                op,
                Some(&self.inner.local.text),
                format!(
                    "{op} on `{}`: the socket is not connected; use send_to/recv_from, or udp_connect(addr)",
                    self.inner.local.text
                ),
            )
        })
    }

    pub fn close(&self, call: &Call) {
        if self.inner.closed.close() {
            self.inner
                .socket
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            self.record(call, EventKind::Close, None, b"");
        }
    }

    fn record(&self, call: &Call, kind: EventKind, peer: Option<Arc<str>>, payload: &[u8]) {
        let peer = peer.or_else(|| self.inner.peer.as_ref().map(|p| p.text.clone()));
        self.inner.session.record(
            call,
            kind,
            self.inner.on,
            Some(self.inner.local.text.clone()),
            peer,
            payload,
            None,
        );
    }
}

impl std::fmt::Display for Udp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner.peer {
            Some(p) => write!(f, "Udp({} -> {})", self.inner.local.text, p.text),
            None => write!(f, "Udp({})", self.inner.local.text),
        }
    }
}
