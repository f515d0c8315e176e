//! A listening TCP socket. `accept` may be called from several tasks at once; `close` releases
//! the port at once and fails any `accept` still waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use super::addr::{self, Endpoint};
use super::bridge::Session;
use super::conn::Conn;
use super::error::NetError;
use crate::transcript::EventKind;

/// Pending connections the kernel queues before `accept`.
const BACKLOG: u32 = 4096;

#[derive(Clone)]
pub struct Listener {
    inner: Arc<Inner>,
}

struct Inner {
    session: Arc<Session>,
    io: Mutex<Option<Arc<TcpListener>>>,
    local: Endpoint,
    timeout: AtomicU64,
    closed: CancellationToken,
}

impl Listener {
    /// Bind `addr` and listen. Port 0 asks the OS for a free port.
    pub fn bind(session: &Arc<Session>, addr: &str) -> Result<Listener, NetError> {
        let target = addr::parse("listen", addr)?;
        let listener = session.block_on("listen", Some(addr), None, async {
            let mut last = None;
            for sa in target.resolve("listen", addr).await? {
                match bind(sa) {
                    Ok(l) => return Ok(l),
                    Err(e) => last = Some(NetError::io("listen", Some(addr), &e)),
                }
            }
            Err(last.unwrap_or_else(|| {
                NetError::io("listen", Some(addr), &std::io::ErrorKind::AddrNotAvailable.into())
            }))
        });
        let listener = listener.inspect_err(|e| {
            session.record(EventKind::Error, Some(Arc::from(addr)), None, b"", Some(e.message.clone()))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| NetError::io("listen", Some(addr), &e))?;
        let local = Endpoint::new(local);
        session.record(EventKind::Listen, Some(local.text.clone()), None, b"", None);
        Ok(Listener {
            inner: Arc::new(Inner {
                session: session.clone(),
                io: Mutex::new(Some(Arc::new(listener))),
                local,
                timeout: AtomicU64::new(u64::MAX),
                closed: CancellationToken::new(),
            }),
        })
    }

    pub fn local(&self) -> &Endpoint {
        &self.inner.local
    }

    pub fn timeout(&self) -> Option<Duration> {
        match self.inner.timeout.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    pub fn set_timeout(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1);
        self.inner.timeout.store(n, Ordering::Relaxed);
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// The next connection.
    pub fn accept(&self) -> Result<Conn, NetError> {
        let inner = &self.inner;
        let addr = &*inner.local.text;
        let io = inner
            .io
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| NetError::closed("accept", Some(addr)))?;
        let accepted = inner.session.block_on("accept", Some(addr), self.timeout(), async {
            tokio::select! {
                _ = inner.closed.cancelled() => Err(NetError::closed("accept", Some(addr))),
                r = io.accept() => r.map_err(|e| NetError::io("accept", Some(addr), &e)),
            }
        });
        drop(io);
        let (stream, _) = accepted.inspect_err(|e| {
            if e.kind != super::ErrorKind::Cancelled {
                inner.session.record(
                    EventKind::Error,
                    Some(inner.local.text.clone()),
                    None,
                    b"",
                    Some(e.message.clone()),
                )
            }
        })?;
        let conn = Conn::from_tcp(&inner.session, stream, "accept")?;
        inner.session.record(
            EventKind::Accept,
            Some(conn.local().text.clone()),
            Some(conn.peer().text.clone()),
            b"",
            None,
        );
        Ok(conn)
    }

    /// Stop listening and release the port.
    pub fn close(&self) {
        if self.inner.closed.is_cancelled() {
            return;
        }
        self.inner.closed.cancel();
        self.inner
            .io
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.inner.session.record(
            EventKind::Close,
            Some(self.inner.local.text.clone()),
            None,
            b"",
            None,
        );
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Listener({}{})",
            self.inner.local.text,
            if self.is_closed() { ", closed" } else { "" }
        )
    }
}

fn bind(sa: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if sa.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Lets a scenario re-listen on a port whose old connections sit in TIME_WAIT; a port with a
    // live listener still fails with `addr_in_use`.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(sa)?;
    socket.listen(BACKLOG)
}
