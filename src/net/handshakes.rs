//! The background side of a listener whose clients need a handshake before `accept` returns
//! them: TLS for a TLS `listen`, TLS and the HTTP upgrade for `ws_listen`. Done inline, one
//! client that connects and stays silent would hold every other client's handshake behind its
//! own. Here one task accepts, each client's handshake runs in a task of its own under a
//! deadline (the listener's timeout, else the session's default, from the moment it
//! connected), at most [`MAX_HANDSHAKES`] clients are in hand at once, and `accept` takes the
//! results in the order they finish. `close`, a drop, and the scenario's end stop every task.
//!
//! What a handshake produces is the listener's own. A client it passes over (no client of
//! its kind, or one that stalled) is recorded here when that happens, as an event of the
//! listener's (the call that made it), and handed to no `accept`: a record left for the next
//! `accept` would be lost when no `accept` follows.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Mutex as AsyncMutex, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::bridge::{deadline_after, CloseSignal, HandleTimeout, Session};
use super::call::Call;
use super::error::NetError;
use crate::transcript::{EventKind, On};

/// The most connections a listener holds between the kernel and `accept`: in their handshake,
/// or handshaken and waiting to be taken. Further clients wait in the backlog.
const MAX_HANDSHAKES: usize = 128;

/// A listening socket the background side accepts clients from.
pub(crate) trait Listening: Send + Sync + 'static {
    /// A client as accepted, before its handshake.
    type Client: Send + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<Self::Client>> + Send;
}

/// How long one client's handshake may take, and when it must be done.
#[derive(Clone, Copy)]
pub(crate) struct Limit {
    pub length: Duration,
    pub at: tokio::time::Instant,
}

/// What `accept` takes from: the handshakes that finished, in order. Dropping it stops the
/// background side as [`Handshakes::close`] does.
pub(crate) struct Handshakes<T> {
    /// Unbounded as a channel; each entry holds a place among [`MAX_HANDSHAKES`].
    ready: AsyncMutex<mpsc::UnboundedReceiver<Handshaken<T>>>,
    /// Stops the background tasks: on `close`, on drop, and with the scenario (a child token).
    stop: CancellationToken,
    /// Disconnected once the task that accepts has dropped the listening socket: `close` waits
    /// on it so the port is free when it returns. A plain channel, not the task's `JoinHandle`:
    /// waiting needs no runtime, which may be shutting down by then.
    serving: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

/// One client out of the background, holding its place among [`MAX_HANDSHAKES`].
struct Handshaken<T> {
    /// `Err`: the accept or the handshake failed, and `accept` raises it.
    arrival: Result<T, NetError>,
    _room: OwnedSemaphorePermit,
}

/// What one client's handshake came to.
pub(crate) enum Shaken<T> {
    /// A client for `accept`.
    Ready(T),
    /// No client of the listener's kind, or one that failed or stalled before it was one.
    PassedOver(PassedOver),
}

/// A client passed over, as the transcript records it.
pub(crate) struct PassedOver {
    pub kind: EventKind,
    pub on: On,
    pub local: Option<Arc<str>>,
    pub peer: Option<Arc<str>>,
    /// What it sent, when that is worth keeping (a refused request head).
    pub head: bytes::Bytes,
    pub why: String,
}

/// What the accepting task owns: the listening socket, then (dropped after it, as fields drop
/// in order) the sender whose end tells `close` the socket is gone.
struct Serving<L> {
    socket: L,
    _gone: std::sync::mpsc::Sender<()>,
}

/// What the accepting task needs besides its socket and the handshake.
struct Shared<T> {
    session: Arc<Session>,
    /// The call that made the listener: its task and place name what it passes over.
    call: Call,
    addr: Arc<str>,
    timeout: Arc<HandleTimeout>,
    default_timeout: Duration,
    stop: CancellationToken,
    ready: mpsc::UnboundedSender<Handshaken<T>>,
}

impl<T: Send + 'static> Handshakes<T> {
    /// Start accepting from `socket` (the listener at `addr`, bounded by `timeout`) on the
    /// session's runtime, running `handshake` for each client: it gives the client for
    /// `accept`, the error `accept` raises, or a client passed over, recorded as made by
    /// `call`.
    pub(crate) fn start<L, H, F>(
        session: &Arc<Session>,
        call: &Call,
        socket: L,
        addr: Arc<str>,
        timeout: Arc<HandleTimeout>,
        handshake: H,
    ) -> Handshakes<T>
    where
        L: Listening,
        H: Fn(L::Client, Limit) -> F + Send + 'static,
        F: Future<Output = Result<Shaken<T>, NetError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = session.token().child_token();
        let (gone, serving) = std::sync::mpsc::channel();
        let shared = Shared {
            session: session.clone(),
            call: call.clone(),
            addr,
            timeout,
            default_timeout: session.default_timeout(),
            stop: stop.clone(),
            ready: tx,
        };
        let serving_socket = Serving {
            socket,
            _gone: gone,
        };
        session
            .handle()
            .spawn(serve(serving_socket, shared, handshake));
        Handshakes {
            ready: AsyncMutex::new(rx),
            stop,
            serving: Mutex::new(Some(serving)),
        }
    }

    /// The next client whose handshake finished, or the error that came instead; `closed`
    /// (for `accept` at `addr`) once the listener is.
    pub(crate) async fn next(&self, closed: &CloseSignal, addr: &str) -> Result<T, NetError> {
        let closed_err = || NetError::closed("accept", Some(addr));
        let mut ready = tokio::select! {
            _ = closed.closed() => return Err(closed_err()),
            ready = self.ready.lock() => ready,
        };
        let next = tokio::select! {
            _ = closed.closed() => return Err(closed_err()),
            next = ready.recv() => next.ok_or_else(closed_err)?,
        };
        next.arrival
    }
}

impl<T> Handshakes<T> {
    /// Stop the background side and wait (briefly) until its accepting task has let the port
    /// go; drop the clients nobody took, so they see the close now.
    pub(crate) fn close(&self) {
        self.stop.cancel();
        let serving = self
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // Only a thread outside the runtime waits (script threads are): a runtime thread must
        // not block, and the task still ends at its next poll.
        if let (Some(serving), Err(_)) = (serving, tokio::runtime::Handle::try_current()) {
            let _ = serving.recv_timeout(Duration::from_secs(1));
        }
        if let Ok(mut ready) = self.ready.try_lock() {
            ready.close();
            while ready.try_recv().is_ok() {}
        }
    }
}

impl<T> Drop for Handshakes<T> {
    /// As `close` does, so a dropped listener's port is free at once too.
    fn drop(&mut self) {
        self.close();
    }
}

/// The accepting task: accept clients and start each one's handshake in a task of its own,
/// until the listener closes or drops or the scenario ends. At most [`MAX_HANDSHAKES`] clients
/// are in hand at once.
async fn serve<L, T, H, F>(serving: Serving<L>, shared: Shared<T>, handshake: H)
where
    L: Listening,
    T: Send + 'static,
    H: Fn(L::Client, Limit) -> F,
    F: Future<Output = Result<Shaken<T>, NetError>> + Send + 'static,
{
    let socket = &serving.socket;
    let room = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (accepted, permit) = tokio::select! {
            _ = shared.stop.cancelled() => return,
            next = async {
                let permit = room.clone().acquire_owned().await;
                (socket.accept().await, permit)
            } => next,
        };
        let Ok(permit) = permit else { return };
        match accepted {
            Ok(client) => {
                let length = shared.timeout.get().unwrap_or(shared.default_timeout);
                // `deadline_after`: a script may give a timeout too long for the clock to add.
                let at = tokio::time::Instant::from_std(deadline_after(length));
                let shaken = handshake(client, Limit { length, at });
                let stop = shared.stop.clone();
                let ready = shared.ready.clone();
                let (session, call) = (shared.session.clone(), shared.call.clone());
                tokio::spawn(async move {
                    let arrival = tokio::select! {
                        _ = stop.cancelled() => return,
                        arrival = shaken => arrival,
                    };
                    let arrival = match arrival {
                        Ok(Shaken::Ready(client)) => Ok(client),
                        Ok(Shaken::PassedOver(p)) => {
                            let note = Some(p.why);
                            session.record(&call, p.kind, p.on, p.local, p.peer, &p.head, note);
                            return;
                        }
                        Err(e) => Err(e),
                    };
                    let _ = ready.send(Handshaken {
                        arrival,
                        _room: permit,
                    });
                });
            }
            Err(e) => {
                let failed = NetError::io("accept", Some(&shared.addr), &e);
                let _ = shared.ready.send(Handshaken {
                    arrival: Err(failed),
                    _room: permit,
                });
                // An error such as "too many open files" repeats at once: do not spin on it.
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}
