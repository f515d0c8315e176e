//! A plain (not TLS) connected socket that its connection reads and writes directly, on the
//! script thread. The socket is registered with the runtime's poller only while a call waits on
//! it. An idle connection therefore costs the poller nothing (tokio's registration is about
//! 270 bytes), and data that arrives while nobody waits wakes no runtime thread.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A peer that has gone raises EPIPE, never SIGPIPE (the sockscript binary ignores the signal
/// anyway; this covers the library in other programs). Elsewhere the flag does not exist.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

pub(crate) struct PlainSocket {
    /// Shared with the registration, so the descriptor outlives it whatever the drop order.
    sock: Arc<socket2::Socket>,
    /// The socket's registration while calls wait on it. Every clone is made and dropped under
    /// this lock, so its count tells how many calls wait.
    poller: Mutex<Option<Registered>>,
}

type Registered = Arc<AsyncFd<Arc<socket2::Socket>>>;

/// One call's use of the registration; the last one to end takes the socket out of the poller.
struct Waiting<'a> {
    socket: &'a PlainSocket,
    registered: Option<Registered>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut poller = self.socket.poller();
        // Both references go under the lock, so the socket is out of the poller before another
        // call can register it again.
        self.registered = None;
        if poller.as_ref().is_some_and(|r| Arc::strong_count(r) == 1) {
            *poller = None;
        }
    }
}

impl Drop for PlainSocket {
    fn drop(&mut self) {
        // FIN before the descriptor closes: closing a socket with unread input sends only RST,
        // and the peer would see "connection reset" instead of the end of the stream.
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

impl PlainSocket {
    /// Take over a connected socket; it must already be non-blocking (as the runtime's are).
    pub fn new(sock: socket2::Socket) -> Arc<Self> {
        Arc::new(PlainSocket {
            sock: Arc::new(sock),
            poller: Mutex::new(None),
        })
    }

    fn poller(&self) -> std::sync::MutexGuard<'_, Option<Registered>> {
        self.poller.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read what the socket holds now into `buf`'s spare room, without waiting:
    /// `WouldBlock` when nothing is there yet.
    pub fn read_now(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        let room = spare.len();
        let n = self.sock.recv(spare)?.min(room);
        // SAFETY: `recv` initialised the first `n` bytes of the spare capacity (the kernel
        // wrote them; socket2 returns how many), and `n` is within that capacity.
        #[allow(unsafe_code)]
        unsafe {
            buf.set_len(buf.len() + n);
        }
        Ok(n)
    }

    /// Write what the socket's buffer takes now, without waiting: `WouldBlock` when it is full.
    pub fn write_now(&self, data: &[u8]) -> io::Result<usize> {
        self.sock.send_with_flags(data, SEND_FLAGS)
    }

    /// Half-close: no more sending.
    pub fn shutdown(&self) -> io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Write)
    }

    fn waiting(&self) -> io::Result<Waiting<'_>> {
        let mut poller = self.poller();
        let registered = match &*poller {
            Some(registered) => registered.clone(),
            None => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                // SAFETY: the registration owns a reference to the socket, so its descriptor
                // stays open (and the same) for as long as the registration lives.
                #[allow(unsafe_code)]
                let registered =
                    unsafe { AsyncFd::register_with_interest(self.sock.clone(), interest) }
                        .map_err(io::Error::from)?;
                let registered = Arc::new(registered);
                *poller = Some(registered.clone());
                registered
            }
        };
        Ok(Waiting {
            socket: self,
            registered: Some(registered),
        })
    }

    /// Wait until the socket may have something to read. The caller reads again after; a
    /// readiness that turns out stale costs one more wait. A socket added to the poller is
    /// reported at once when data is already there, so nothing that arrived before the wait
    /// is missed.
    pub async fn readable(&self) -> io::Result<()> {
        let waiting = self.waiting()?;
        if let Some(registered) = &waiting.registered {
            registered.readable().await?.clear_ready();
        }
        Ok(())
    }

    /// Wait until the socket may take more to send (the same rules as
    /// [`PlainSocket::readable`]).
    pub async fn writable(&self) -> io::Result<()> {
        let waiting = self.waiting()?;
        if let Some(registered) = &waiting.registered {
            registered.writable().await?.clear_ready();
        }
        Ok(())
    }
}
