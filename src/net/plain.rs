//! A plain (not TLS) connected socket that its connection reads and writes directly, on the
//! script thread. A call that must wait for it waits in the script thread's own `poll(2)`
//! ([`park`]); only a wait polled elsewhere (a WebSocket's stream, a runtime task) registers it
//! with the runtime's poller, and only while it waits. An idle connection therefore costs the
//! poller nothing (tokio's registration is about 270 bytes), and data that arrives while nobody
//! waits wakes no runtime thread.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::park::{self, Readiness};
use super::transport::{Sink, Source};

/// A peer that has gone raises EPIPE, never SIGPIPE (the sockscript binary ignores the signal
/// anyway; this covers the library in other programs). Elsewhere the flag does not exist.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

pub(crate) struct PlainSocket {
    sock: socket2::Socket,
    /// The socket's registration while calls wait on it. Every clone is made and dropped under
    /// this lock, so its count tells how many calls wait.
    poller: Mutex<Option<Registered>>,
}

/// What a registration holds: a reference to the socket, so the descriptor stays open for as
/// long as the registration lives, whatever the drop order. (While registered, the socket and
/// its registration refer to each other; the last call to stop waiting takes the registration
/// out, which ends that.)
struct Held(Arc<PlainSocket>);

impl std::os::fd::AsRawFd for Held {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.sock.as_raw_fd()
    }
}

type Registered = Arc<AsyncFd<Held>>;

/// One call's use of the registration; the last one to end takes the socket out of the poller.
struct Waiting<'a> {
    socket: &'a PlainSocket,
    registered: Option<Registered>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.socket.unregister(&mut self.registered);
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
            sock,
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

    fn waiting(self: &Arc<Self>) -> io::Result<Waiting<'_>> {
        Ok(Waiting {
            socket: self,
            registered: Some(self.register()?),
        })
    }

    /// A reference to the socket's registration, made now if there is none. Whoever holds it
    /// gives it back through [`PlainSocket::unregister`] (as [`Waiting`] does on drop).
    fn register(self: &Arc<Self>) -> io::Result<Registered> {
        let mut poller = self.poller();
        Ok(match &*poller {
            Some(registered) => registered.clone(),
            None => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                // SAFETY: the registration owns a reference to the socket (`Held`), so its
                // descriptor stays open (and the same) for as long as the registration lives.
                #[allow(unsafe_code)]
                let registered =
                    unsafe { AsyncFd::register_with_interest(Held(self.clone()), interest) }
                        .map_err(io::Error::from)?;
                let registered = Arc::new(registered);
                *poller = Some(registered.clone());
                registered
            }
        })
    }

    /// Give back a reference from [`PlainSocket::register`]; the last one takes the socket out
    /// of the poller.
    fn unregister(&self, held: &mut Option<Registered>) {
        let mut poller = self.poller();
        // Both references go under the lock, so the socket is out of the poller before another
        // call can register it again.
        *held = None;
        if poller.as_ref().is_some_and(|r| Arc::strong_count(r) == 1) {
            *poller = None;
        }
    }

    /// Wait until the socket may have something to read. The caller reads again after; a
    /// readiness that turns out stale costs one more wait. A socket added to the poller is
    /// reported at once when data is already there, so nothing that arrived before the wait
    /// is missed.
    async fn readable(self: &Arc<Self>) -> io::Result<()> {
        if park::ready(self, Readiness::Read).await {
            return Ok(());
        }
        let waiting = self.waiting()?;
        if let Some(registered) = &waiting.registered {
            registered.readable().await?.clear_ready();
        }
        Ok(())
    }

    /// Wait until the socket may take more to send (the same rules as
    /// [`PlainSocket::readable`]).
    async fn writable(self: &Arc<Self>) -> io::Result<()> {
        if park::ready(self, Readiness::Write).await {
            return Ok(());
        }
        let waiting = self.waiting()?;
        if let Some(registered) = &waiting.registered {
            registered.writable().await?.clear_ready();
        }
        Ok(())
    }
}

impl std::os::fd::AsFd for PlainSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Source for Arc<PlainSocket> {
    /// Read what the socket has, asking again for up to [`SPIN`] while it has nothing (when
    /// `spin` says so and a [`SpinSlot`] is free).
    fn read_ready(&mut self, buf: &mut BytesMut, spin: bool) -> Option<io::Result<usize>> {
        let mut spinning: Option<(Spinner, Instant)> = None;
        loop {
            match self.read_now(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !spin {
                        return None;
                    }
                    let (spinner, started) = match &spinning {
                        Some((spinner, started)) => (spinner, *started),
                        None => {
                            spinning = Some((Spinner::take()?, Instant::now()));
                            continue;
                        }
                    };
                    if started.elapsed() >= SPIN {
                        return None;
                    }
                    spinner.pause();
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

    async fn write_rest(&mut self, data: &[u8]) -> io::Result<()> {
        self.writable().await?;
        self.write_all(data).await
    }

    fn write_ready(&mut self, data: &[u8]) -> Option<io::Result<usize>> {
        loop {
            match self.write_now(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                done => return Some(done),
            }
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.shutdown_write()
    }
}

/// How long a read that finds nothing keeps asking the socket before it parks its thread. A
/// peer on loopback usually answers within this, and an answer picked up here skips two
/// thread wake-ups (the runtime's poller, then this script thread).
pub(crate) const SPIN: Duration = Duration::from_micros(50);
/// Spin-loop hints between two attempts of a spinning read (well under a microsecond).
pub(crate) const SPIN_PAUSE: u32 = 32;

/// The right to spin: at most one fewer reads spin at once, across the process, than there
/// are CPUs (none on one CPU), so a thousand blocked tasks cannot take every core from the
/// peers they wait for. Given back on drop. The proxy's relay (`net::proxy`) uses these slots
/// too. Beside them, outside this count, a process pinned to fewer CPUs than are online has one
/// [`Yielding`] spinner, a read or a relay, which gives its CPU up between looks.
pub(crate) struct SpinSlot;

static SPINNING: AtomicUsize = AtomicUsize::new(0);

impl SpinSlot {
    pub(crate) fn take() -> Option<SpinSlot> {
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
        SPINNING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The right to spin of a read, a WebSocket read or a proxy relay: a [`SpinSlot`], or else the
/// process's one [`Yielding`] spinner. Given back on drop.
pub(crate) enum Spinner {
    Slot(#[allow(dead_code)] SpinSlot),
    Yielding(#[allow(dead_code)] Yielding),
}

impl Spinner {
    pub(crate) fn take() -> Option<Spinner> {
        SpinSlot::take()
            .map(Spinner::Slot)
            .or_else(|| Yielding::take().map(Spinner::Yielding))
    }

    /// Between two looks at the socket.
    pub(crate) fn pause(&self) {
        match self {
            // A short pause: each look takes the socket's lock, which the peer needs to deliver
            // into it (bulk receive was slower without it). (Tokio's `yield_now` instead made
            // ping-pong 2.5x slower: it hands the core to the runtime's poller, woken by the
            // very data this read is waiting for.)
            Spinner::Slot(_) => {
                for _ in 0..SPIN_PAUSE {
                    std::hint::spin_loop();
                }
            }
            // Whatever else may run on this CPU runs first.
            Spinner::Yielding(_) => std::thread::yield_now(),
        }
    }
}

/// The right to spin for a read or a relay (`net::proxy`) that [`SpinSlot`] leaves none: a
/// process pinned to fewer CPUs than the machine has (one, say, with its peers on another). One
/// at a time may, and it gives its CPU up (`sched_yield`) between two looks, so a thread of any
/// process that is runnable on that CPU (a client or server sharing it) runs first: the spin
/// takes only time the CPU would spend idle. On a machine of one CPU, nothing spins. Given back on drop.
///
/// Measured (bench/ANALYSIS.md, 7l): with the rtt client and the echo server on CPU 1 and the
/// relay on CPU 0, the relay added about 80 µs without it and 40 µs with it, what a relay
/// spinning all the time adds; with all three on CPU 0 it made no difference. A script's read
/// (bench/ANALYSIS.md, 1a and 2r): 16-byte ping-pong with the server on the other CPU 1.04x raw
/// without it, 3.3x with it; bulk receive in that placement 0.87x and 1.08x; WebSocket
/// ping-pong (7) 1.1x and 3.5x.
pub(crate) struct Yielding;

static YIELDING: AtomicUsize = AtomicUsize::new(0);

impl Yielding {
    pub(crate) fn take() -> Option<Yielding> {
        static MORE_CPUS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        // Pinned (`taskset`, a cpuset) to fewer CPUs than are online: the others are there for
        // the peers. A CPU quota is no such reason: a spin would spend what the peers share.
        let more = *MORE_CPUS.get_or_init(|| match (pinned_cpus(), online_cpus()) {
            (Some(mine), Some(online)) => mine < online,
            _ => false,
        });
        (more
            && YIELDING
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok())
        .then_some(Yielding)
    }
}

impl Drop for Yielding {
    fn drop(&mut self) {
        YIELDING.store(0, Ordering::Release);
    }
}

/// How many CPUs this process may run on (its affinity, whatever its CPU quota).
fn pinned_cpus() -> Option<usize> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    usize::try_from(set.count()).ok()
}

/// How many CPUs the machine has online (Linux: `/sys/devices/system/cpu/online`, such as
/// `0-3,6`); `None` where that cannot be read.
fn online_cpus() -> Option<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    count_cpus(&text)
}

fn count_cpus(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.trim().split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?);
                b.checked_sub(a)? + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// A plain socket for a caller that polls it through another layer rather than awaiting it (a
/// WebSocket's stream): reads and writes go straight to the socket. A read or write that must
/// wait waits in the script thread's `poll(2)` ([`park::poll_ready`]) when that thread polls
/// it; polled elsewhere, the socket is in the runtime's poller only while it is pending, as
/// with [`Waiting`].
pub(crate) struct Polled {
    sock: Arc<PlainSocket>,
    reading: Option<Registered>,
    writing: Option<Registered>,
}

impl Polled {
    pub(crate) fn new(sock: Arc<PlainSocket>) -> Self {
        Polled {
            sock,
            reading: None,
            writing: None,
        }
    }

    /// `io`'s result, or (on `WouldBlock`) wait for the readiness it needs: registered while
    /// pending, given back once it succeeds. While a [`Spinning`] future spins nothing is
    /// registered: it asks the socket again itself.
    fn poll_io<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        read: bool,
        mut io: impl FnMut(&socket2::Socket) -> io::Result<T>,
    ) -> std::task::Poll<io::Result<T>> {
        use std::task::Poll;
        loop {
            match io(&self.sock.sock) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if SPINNING_NOW.get() {
                        return Poll::Pending;
                    }
                    // On the script thread, wait in its own `poll(2)`, as a read does.
                    let readiness = if read {
                        Readiness::Read
                    } else {
                        Readiness::Write
                    };
                    match park::poll_ready(&self.sock, readiness) {
                        Poll::Ready(true) => continue,
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(false) => {}
                    }
                    let held = if read {
                        &mut self.reading
                    } else {
                        &mut self.writing
                    };
                    let registered = match held {
                        Some(r) => r.clone(),
                        None => held.insert(self.sock.register()?).clone(),
                    };
                    let ready = if read {
                        registered.poll_read_ready(cx)
                    } else {
                        registered.poll_write_ready(cx)
                    };
                    match ready {
                        Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                done => {
                    let held = if read {
                        &mut self.reading
                    } else {
                        &mut self.writing
                    };
                    if held.is_some() {
                        self.sock.unregister(held);
                    }
                    return Poll::Ready(done);
                }
            }
        }
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let spare = buf.initialize_unfilled();
        match self.poll_io(cx, true, |s| io::Read::read(&mut &*s, spare)) {
            std::task::Poll::Ready(Ok(n)) => {
                buf.advance(n);
                std::task::Poll::Ready(Ok(()))
            }
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.poll_io(cx, false, |s| s.send_with_flags(data, SEND_FLAGS))
    }

    /// Half-close: no more sending.
    pub(crate) fn shutdown(&self) -> io::Result<()> {
        self.sock.shutdown_write()
    }
}

impl Drop for Polled {
    fn drop(&mut self) {
        for held in [&mut self.reading, &mut self.writing] {
            if held.is_some() {
                self.sock.unregister(held);
            }
        }
    }
}

thread_local! {
    /// Set while a [`Spinning`] future spins on this thread: a [`Polled`] socket that has
    /// nothing says so without registering with the poller.
    static SPINNING_NOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A future polled again and again for up to [`SPIN`] while it is pending (when a [`Spinner`]
/// is free), before its thread parks: what [`Source::read_ready`] does, for a read that polls
/// a [`Polled`] socket through another layer (a WebSocket's stream). An answer picked up while
/// spinning costs no registration and skips two thread wake-ups. It spins on its first poll
/// only; after a real wake-up the data is there.
pub(crate) struct Spinning<F> {
    inner: F,
    spun: bool,
}

impl<F> Spinning<F> {
    pub(crate) fn new(inner: F) -> Self {
        Spinning { inner, spun: false }
    }
}

/// Clears [`SPINNING_NOW`] however the spin ends.
struct SpinFlag;

impl SpinFlag {
    fn set() -> SpinFlag {
        SPINNING_NOW.set(true);
        SpinFlag
    }
}

impl Drop for SpinFlag {
    fn drop(&mut self) {
        SPINNING_NOW.set(false);
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
        if !this.spun {
            this.spun = true;
            if let Some(spinner) = Spinner::take() {
                let _flag = SpinFlag::set();
                let started = Instant::now();
                loop {
                    if let Poll::Ready(v) = std::pin::Pin::new(&mut this.inner).poll(cx) {
                        return Poll::Ready(v);
                    }
                    if started.elapsed() >= SPIN {
                        break;
                    }
                    spinner.pause();
                }
            }
        }
        // Not spinning (any more): this poll registers for the wake-up.
        std::pin::Pin::new(&mut this.inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::count_cpus;

    #[test]
    fn online_cpu_lists_count_each_cpu_once() {
        assert_eq!(count_cpus("0\n"), Some(1));
        assert_eq!(count_cpus("0-1\n"), Some(2));
        assert_eq!(count_cpus("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpus("3-1"), None);
        assert_eq!(count_cpus("x"), None);
        assert_eq!(count_cpus(""), None);
    }
}
