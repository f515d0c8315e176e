//! A plain (not TLS) connected socket that its connection reads and writes directly, on the
//! script thread. The socket is registered with the runtime's poller only while a call waits on
//! it. An idle connection therefore costs the poller nothing (tokio's registration is about
//! 270 bytes), and data that arrives while nobody waits wakes no runtime thread.

use std::io;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::transport::{Sink, Source};

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
    fn read_now(&self, buf: &mut BytesMut) -> io::Result<usize> {
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
    fn write_now(&self, data: &[u8]) -> io::Result<usize> {
        self.sock.send_with_flags(data, SEND_FLAGS)
    }

    /// Half-close: no more sending.
    fn shutdown_write(&self) -> io::Result<()> {
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

    /// The socket's registration, made now if there is none. One that no [`Waiting`] made is
    /// kept while the socket lives: for callers that poll rather than await (a WebSocket's
    /// stream), which have no wait to end.
    fn registered(&self) -> io::Result<Registered> {
        let waiting = self.waiting()?;
        let registered = waiting.registered.clone();
        // Kept in `poller` past the guard: two references while the guard drops.
        drop(waiting);
        registered.ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    /// Read into `buf` now, else have `cx` woken when the socket is readable: reads straight
    /// from the socket, as [`Source::read_ready`] does, for a caller that polls.
    pub(crate) fn poll_read(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        loop {
            let spare = buf.initialize_unfilled();
            match io::Read::read(&mut &*self.sock, spare) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let registered = self.registered()?;
                    match registered.poll_read_ready(cx) {
                        Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Write what the socket takes now, else have `cx` woken when it is writable.
    pub(crate) fn poll_write(
        &self,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        loop {
            match self.write_now(data) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let registered = self.registered()?;
                    match registered.poll_write_ready(cx) {
                        Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Half-close, for a caller that polls.
    pub(crate) fn shutdown_now(&self) -> io::Result<()> {
        self.shutdown_write()
    }

    /// Wait until the socket may have something to read. The caller reads again after; a
    /// readiness that turns out stale costs one more wait. A socket added to the poller is
    /// reported at once when data is already there, so nothing that arrived before the wait
    /// is missed.
    async fn readable(&self) -> io::Result<()> {
        let waiting = self.waiting()?;
        if let Some(registered) = &waiting.registered {
            registered.readable().await?.clear_ready();
        }
        Ok(())
    }

    /// Wait until the socket may take more to send (the same rules as
    /// [`PlainSocket::readable`]).
    async fn writable(&self) -> io::Result<()> {
        let waiting = self.waiting()?;
        if let Some(registered) = &waiting.registered {
            registered.writable().await?.clear_ready();
        }
        Ok(())
    }
}

impl Source for Arc<PlainSocket> {
    /// Read what the socket has, asking again for up to [`SPIN`] while it has nothing (when
    /// `spin` says so and a [`SpinSlot`] is free).
    fn read_ready(&mut self, buf: &mut BytesMut, spin: bool) -> Option<io::Result<usize>> {
        let mut spinning: Option<(SpinSlot, Instant)> = None;
        loop {
            match self.read_now(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !spin {
                        return None;
                    }
                    let started = match &spinning {
                        Some((_, started)) => *started,
                        None => {
                            spinning = Some((SpinSlot::take()?, Instant::now()));
                            continue;
                        }
                    };
                    if started.elapsed() >= SPIN {
                        return None;
                    }
                    // A short pause between attempts: each one takes the socket's lock, which
                    // the peer needs to deliver into it (bulk receive was slower without it).
                    // (`yield_now` instead made ping-pong 2.5x slower: it hands the core to the
                    // runtime's poller, woken by the very data this read is waiting for.)
                    for _ in 0..SPIN_PAUSE {
                        std::hint::spin_loop();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                done => return Some(done),
            }
        }
    }

    /// Wait on the socket's readiness, then read; a readiness that turns out stale waits again.
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            self.readable().await?;
            match self.read_now(buf) {
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted => {}
                done => return done,
            }
        }
    }
}

impl Sink for Arc<PlainSocket> {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            match self.write_now(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.shutdown_write()
    }
}

/// How long a read that finds nothing keeps asking the socket before it parks its thread. A
/// peer on loopback usually answers within this, and an answer picked up here skips two
/// thread wake-ups (the runtime's poller, then this script thread).
const SPIN: Duration = Duration::from_micros(50);
/// Spin-loop hints between two attempts of a spinning read (well under a microsecond).
const SPIN_PAUSE: u32 = 32;

/// The right to spin: at most one fewer reads spin at once, across the process, than there
/// are CPUs (none on one CPU), so a thousand blocked tasks cannot take every core from the
/// peers they wait for. Given back on drop.
struct SpinSlot;

static SPINNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl SpinSlot {
    fn take() -> Option<SpinSlot> {
        use std::sync::atomic::Ordering;
        static ALLOWED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let allowed = *ALLOWED.get_or_init(|| {
            std::thread::available_parallelism().map_or(0, |n| n.get().saturating_sub(1))
        });
        SPINNING
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < allowed).then_some(n + 1)
            })
            .ok()
            .map(|_| SpinSlot)
    }
}

impl Drop for SpinSlot {
    fn drop(&mut self) {
        SPINNING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A future polled again and again for up to [`SPIN`] while it is pending (when a [`SpinSlot`]
/// is free), before its thread parks: what [`Source::read_ready`] does for a read that polls a
/// plain socket through another layer (a WebSocket's stream, [`PlainSocket::poll_read`]). An
/// answer picked up while spinning skips two thread wake-ups. Spins once, on its first pending
/// poll; after a real wake-up the data is there.
pub(crate) struct Spinning<F> {
    inner: F,
    spun: bool,
}

impl<F> Spinning<F> {
    pub(crate) fn new(inner: F) -> Self {
        Spinning { inner, spun: false }
    }
}

impl<F: std::future::Future + Unpin> std::future::Future for Spinning<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Poll::Ready(v) = std::pin::Pin::new(&mut this.inner).poll(cx) {
            return Poll::Ready(v);
        }
        if this.spun {
            return Poll::Pending;
        }
        this.spun = true;
        let Some(_slot) = SpinSlot::take() else {
            return Poll::Pending;
        };
        let started = Instant::now();
        while started.elapsed() < SPIN {
            for _ in 0..SPIN_PAUSE {
                std::hint::spin_loop();
            }
            if let Poll::Ready(v) = std::pin::Pin::new(&mut this.inner).poll(cx) {
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    }
}
