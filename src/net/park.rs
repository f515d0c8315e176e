//! How a script thread waits for a blocking call: it polls the call's future itself and, between
//! polls, sleeps in one `poll(2)` until the deadline, a wake-up, or a socket the future waits on
//! directly is ready.
//!
//! A wake-up (from the runtime's timers and I/O, a channel, a closing handle, cancellation)
//! writes to the thread's eventfd. A plain socket the future waits on ([`ready`]) is not
//! registered with the runtime's poller at all: it is one more descriptor of that `poll(2)`,
//! so its readiness wakes this thread straight from the kernel. That spares each such wait an
//! `epoll_ctl` to register, another to deregister, and a hop through a runtime thread, which
//! is most of what a bulk transfer's waits cost.
//!
//! Only the script thread's own polls ([`poll_once`], [`block_on`]) wait directly; a socket
//! polled anywhere else (a runtime task, `Handle::block_on`, a combinator with a waker of its
//! own) uses the runtime's poller as before.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use rustix::event::{PollFd, PollFlags};

/// What a direct wait waits for.
#[derive(Clone, Copy)]
pub(crate) enum Readiness {
    Read = 0,
    Write = 1,
}

/// Wait until `source` may be read or written, polled from this thread's [`block_on`]:
/// `true` once `poll(2)` said so (the caller tries again; a readiness that turns out stale
/// costs one more wait). `false` at once when the caller is not polled by [`block_on`] or
/// [`poll_once`]: it then waits through the runtime's poller instead.
pub(crate) fn ready<S>(source: &Arc<S>, readiness: Readiness) -> impl Future<Output = bool> + '_
where
    S: AsFd + Send + Sync + 'static,
{
    std::future::poll_fn(move |cx| {
        // A combinator with a waker of its own (it polls only what was woken) would not poll
        // this again after the thread's `poll(2)`.
        let polled_again = HERE.with(|here| {
            here.as_ref()
                .is_some_and(|here| cx.waker().will_wake(&here.waker))
        });
        if !polled_again {
            return Poll::Ready(false);
        }
        poll_ready(source, readiness)
    })
}

/// [`ready`] for a socket polled through a layer that wraps the waker (a WebSocket's stream)
/// but polls the socket again whenever it is polled: `Ready(true)` once `poll(2)` found it
/// ready, `Pending` while it waits there, `Ready(false)` when not polled by [`block_on`] or
/// [`poll_once`] (then use the runtime's poller).
pub(crate) fn poll_ready<S>(source: &Arc<S>, readiness: Readiness) -> Poll<bool>
where
    S: AsFd + Send + Sync + 'static,
{
    if !POLLING.get() {
        return Poll::Ready(false);
    }
    HERE.with(|here| {
        let Some(here) = here else {
            return Poll::Ready(false);
        };
        // The socket's address, and which way it waits (a read and a write may wait on one
        // socket at once; the address is aligned, so its lowest bit is free).
        let key = Arc::as_ptr(source).cast::<()>() as usize | readiness as usize;
        let mut ready = here.ready.borrow_mut();
        if let Some(i) = ready.iter().position(|k| *k == key) {
            ready.swap_remove(i);
            return Poll::Ready(true);
        }
        let flags = match readiness {
            Readiness::Read => PollFlags::IN,
            Readiness::Write => PollFlags::OUT,
        };
        let source: Arc<dyn AsFd + Send + Sync> = source.clone();
        here.wanted.borrow_mut().push(Wanted { source, key, flags });
        Poll::Pending
    })
}

/// Poll `fut` once, with this thread's waker: a wake-up from what it registered reaches a
/// later [`block_on`] of the same future.
pub(crate) fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    HERE.with(|here| match here {
        Some(here) => {
            let polled = here.poll(fut);
            // A later `block_on` polls again before it sleeps.
            here.let_go();
            polled
        }
        None => fut.poll(&mut Context::from_waker(Waker::noop())),
    })
}

/// Run `fut` on this thread until it finishes, or until `deadline` passes (`None`). The
/// runtime must have been entered (`Handle::enter`): the future may use its timers and
/// sockets.
pub(crate) fn block_on<F: Future + ?Sized>(
    handle: &tokio::runtime::Handle,
    mut fut: Pin<&mut F>,
    deadline: Instant,
) -> Option<F::Output> {
    HERE.with(|here| {
        let Some(here) = here else {
            // No eventfd for this thread (out of descriptors): the runtime's way.
            return handle
                .block_on(async { tokio::time::timeout_at(deadline.into(), fut).await.ok() });
        };
        let waited = loop {
            if let Poll::Ready(v) = here.poll(fut.as_mut()) {
                break Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                break None;
            }
            here.sleep(deadline - now);
        };
        here.let_go();
        waited
    })
}

thread_local! {
    /// This thread's waker and direct waits; `None` when its eventfd could not be made.
    static HERE: Option<Here> = Here::new();
    /// Set while [`Here::poll`] polls a future: only then may a socket be waited on directly.
    static POLLING: Cell<bool> = const { Cell::new(false) };
}

/// A socket the future being polled waits on directly, until the next `poll(2)`.
struct Wanted {
    /// Held so the descriptor stays open (and the same) while it is polled.
    source: Arc<dyn AsFd + Send + Sync>,
    /// The source's address: how its [`ready`] future finds its readiness.
    key: usize,
    flags: PollFlags,
}

struct Here {
    signal: Arc<Signal>,
    waker: Waker,
    /// Sockets the future waits on, gathered by the latest poll.
    wanted: RefCell<Vec<Wanted>>,
    /// Sockets `poll(2)` found ready, for the next poll of the future.
    ready: RefCell<Vec<usize>>,
}

impl Here {
    fn new() -> Option<Here> {
        let flags = rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK;
        let fd = rustix::event::eventfd(0, flags).ok()?;
        let signal = Arc::new(Signal {
            fd,
            notified: AtomicBool::new(false),
        });
        Some(Here {
            waker: Waker::from(signal.clone()),
            signal,
            wanted: RefCell::new(Vec::new()),
            ready: RefCell::new(Vec::new()),
        })
    }

    fn poll<F: Future + ?Sized>(&self, fut: Pin<&mut F>) -> Poll<F::Output> {
        /// Clears the flag and the readiness not taken, however the poll ends.
        struct Polling<'a>(&'a Here);
        impl Drop for Polling<'_> {
            fn drop(&mut self) {
                POLLING.set(false);
                self.0.ready.borrow_mut().clear();
            }
        }
        // Wake-ups from here on write to the eventfd again.
        self.signal.notified.store(false, Ordering::SeqCst);
        self.wanted.borrow_mut().clear();
        POLLING.set(true);
        let _polling = Polling(self);
        fut.poll(&mut Context::from_waker(&self.waker))
    }

    /// Drop the sockets the last poll asked to wait on: a socket closes when its last holder
    /// lets it go, and a wait that ended (done, timed out) must not keep one open until this
    /// thread's next wait.
    fn let_go(&self) {
        self.wanted.borrow_mut().clear();
    }

    /// Sleep until a wake-up, a wanted socket's readiness, or `timeout`.
    fn sleep(&self, timeout: std::time::Duration) {
        let mut wanted = std::mem::take(&mut *self.wanted.borrow_mut());
        let timeout = rustix::event::Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = Vec::with_capacity(1 + wanted.len());
        fds.push(PollFd::new(&self.signal.fd, PollFlags::IN));
        fds.extend(wanted.iter().map(|w| PollFd::new(&w.source, w.flags)));
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) => {
                if !fds[0].revents().is_empty() {
                    // Reset the count; nothing else is in it.
                    let mut count = [0u8; 8];
                    let _ = rustix::io::read(&self.signal.fd, &mut count);
                }
                let mut ready = self.ready.borrow_mut();
                for (fd, w) in fds[1..].iter().zip(&wanted) {
                    if !fd.revents().is_empty() {
                        ready.push(w.key);
                    }
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            // Not expected (the descriptors are open, the array small): do not spin on it.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
        drop(fds);
        // Let the sockets go now (a socket closes when its last holder drops it); keep the room.
        wanted.clear();
        *self.wanted.borrow_mut() = wanted;
    }
}

/// The eventfd a thread's waker writes to.
struct Signal {
    fd: OwnedFd,
    /// Set by the first wake-up after a poll: the rest need not write again.
    notified: AtomicBool,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::SeqCst) {
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_wake_up_from_the_runtime_ends_the_sleep() {
        let rt = runtime();
        let _enter = rt.enter();
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send(7);
        });
        let mut rx = std::pin::pin!(rx);
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = block_on(rt.handle(), rx.as_mut(), deadline);
        assert_eq!(got.map(|r| r.ok()), Some(Some(7)));
    }

    #[test]
    fn the_deadline_ends_the_wait() {
        let rt = runtime();
        let _enter = rt.enter();
        let started = Instant::now();
        let mut never = std::pin::pin!(std::future::pending::<()>());
        let got = block_on(
            rt.handle(),
            never.as_mut(),
            started + Duration::from_millis(30),
        );
        assert!(got.is_none());
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_socket_is_waited_on_directly_and_only_here() {
        let rt = runtime();
        let _enter = rt.enter();
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("a pair");
        let a = Arc::new(a);
        // Polled elsewhere (tokio's own block_on), it says so at once.
        assert!(!rt.block_on(ready(&a, Readiness::Read)));
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            std::io::Write::write_all(&mut &b, b"x").expect("a write");
            b
        });
        let mut wait = std::pin::pin!(ready(&a, Readiness::Read));
        assert!(poll_once(wait.as_mut()).is_pending());
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(block_on(rt.handle(), wait.as_mut(), deadline), Some(true));
        // The wait held the socket only while it slept.
        assert_eq!(Arc::strong_count(&a), 1);
        drop(writer.join());
    }

    #[test]
    fn a_wait_that_times_out_lets_its_socket_go() {
        let rt = runtime();
        let _enter = rt.enter();
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("a pair");
        let a = Arc::new(a);
        let mut wait = std::pin::pin!(ready(&a, Readiness::Read));
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(block_on(rt.handle(), wait.as_mut(), deadline), None);
        // Nothing of this thread holds it (its last holder's drop would close it).
        assert_eq!(Arc::strong_count(&a), 1);
        // Nor after a first poll that a wait never followed.
        let mut again = std::pin::pin!(ready(&a, Readiness::Write));
        let _ = poll_once(again.as_mut());
        assert_eq!(Arc::strong_count(&a), 1);
    }
}
