//! The one place where synchronous script threads wait on asynchronous sockets.
//!
//! Every blocking socket call is one [`Session::block_on`]: the script thread polls the
//! operation itself, inside the shared multi-thread runtime's context (its timers and sockets),
//! racing it against the call's deadline and the scenario's cancellation, and sleeps between
//! polls in `net::park`. Script threads are plain OS threads, never runtime workers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::call::Call;
use super::error::{Deadline, ErrorKind, NetError};
use super::park;
use crate::transcript::{Ends, EventKind, On, Transcript};

/// Limits that protect the machine from a runaway peer or script.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The furthest `recv_line`, `recv_until` and `expect` search for their delimiter or match.
    pub max_line: usize,
    /// The most bytes a connection buffers (what `recv_all` may collect).
    pub max_buffer: usize,
    /// The most connections, listeners and UDP sockets a scenario may have open at once.
    pub max_handles: usize,
    /// How many payload bytes a scenario's transcript keeps whole (`--limit capture`).
    pub capture: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 1024 * 1024,
            max_buffer: 64 * 1024 * 1024,
            max_handles: 50_000,
            capture: crate::transcript::DEFAULT_CAPTURE,
        }
    }
}

/// Unix connection ids waiting for their other end: opened by a connect, or by an accept.
/// A client bound to a name of the kernel's choosing (every Unix connect of sockscript's is)
/// is paired by that name, which both ends see; one without is paired in order.
#[derive(Default)]
struct Pending {
    named: HashMap<Box<[u8]>, u32>,
    connected: VecDeque<u32>,
    accepted: VecDeque<u32>,
}

impl Pending {
    /// The id the other end took, or a new one (from `new_id`) left for it. `connecting`: this
    /// end is the client.
    fn pair(
        &mut self,
        client: Option<&[u8]>,
        connecting: bool,
        new_id: impl FnOnce() -> u32,
    ) -> u32 {
        if let Some(name) = client {
            return self.named.remove(name).unwrap_or_else(|| {
                let id = new_id();
                self.named.insert(name.into(), id);
                id
            });
        }
        let (theirs, ours) = if connecting {
            (&mut self.accepted, &mut self.connected)
        } else {
            (&mut self.connected, &mut self.accepted)
        };
        theirs.pop_front().unwrap_or_else(|| {
            let id = new_id();
            ours.push_back(id);
            id
        })
    }
}

/// How a connection was opened, for [`Session::open_connection`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Opening<'a> {
    /// A connect to anything but one of this scenario's Unix listeners.
    Connect,
    /// A connect to this scenario's Unix listener at this path: its accept shares the id.
    ConnectOwn(&'a Path),
    /// An accept; the listener's Unix path, and whether the client is this process.
    Accept {
        unix_path: Option<&'a Path>,
        same_process: bool,
    },
    /// A child process's pipes (`exec`): an id of its own, and no connection counted.
    Process,
}

/// Why a scenario's token was cancelled; the first reason wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The main script returned: tasks still blocked are stopped, which is not a failure.
    Finished,
    /// A task failed; the scenario fails with that task's error.
    TaskFailed,
    /// The scenario ran past `--max-time`.
    MaxTime,
    /// The user interrupted the run.
    Interrupted,
    /// A `within` ran out while its thread was inside one built-in call that did not return
    /// in time: the scenario cannot go on past that `within`, so it stops.
    WithinOverrun,
}

/// Everything the sockets of one scenario share: the runtime, the deadline defaults, the
/// cancellation token and the transcript.
pub struct Session {
    handle: Handle,
    cancel: CancellationToken,
    reason: OnceLock<CancelReason>,
    /// Set with the token: script threads look at it on every rhai operation, and an atomic
    /// load is cheaper there than the token's lock.
    cancelled: AtomicBool,
    /// When the token was first cancelled: the orchestrator gives a scenario's threads a grace
    /// from then to stop before it leaves them behind.
    cancelled_at: OnceLock<Instant>,
    default_timeout: Duration,
    pub limits: Limits,
    transcript: Transcript,
    /// Each connection once, by a hash of its endpoints in a fixed order, with its transcript
    /// id: a connection between two tasks of the scenario is seen from both ends but is one
    /// connection with one id. A 64-bit hash rather than the pair keeps ten thousand
    /// connections at 12 bytes each; a collision (odds about 1 in 10^11 at that count) would
    /// undercount by one and give two connections one id.
    connections: Mutex<HashMap<u64, u32>>,
    /// The next transcript id, for connections and UDP sockets alike.
    next_id: AtomicU32,
    /// Ids of Unix connections the scenario holds both ends of, by the listener's path, that
    /// one end has opened and the other not yet: a Unix client has no address to match, so
    /// the ends are paired in order (the kernel queues connections in order). Either end may
    /// come first: the connecting thread and the accepting one race.
    unix_pending: Mutex<HashMap<PathBuf, Pending>>,
    /// Handles open now, against `limits.max_handles`.
    open_handles: Arc<AtomicUsize>,
    /// The most connections open at once since memory was last given back (see
    /// [`Session::release_handle`]).
    peak_connections: AtomicUsize,
    /// Connections without an IP pair to tell their two ends apart (Unix sockets).
    other_connections: AtomicUsize,
    /// The Unix socket paths this scenario listens on.
    unix_paths: Mutex<HashSet<PathBuf>>,
    /// The process groups `exec` started; `None` once the scenario was stopped and they were
    /// killed (see [`super::process`]).
    processes: Mutex<Option<Vec<u32>>>,
    /// The run's seed (`--seed`), which a proxy's `toxicity` draws come from.
    seed: AtomicU64,
    /// Whether anything drew from the seed: then a failure says which seed it was.
    drew: AtomicBool,
    /// Proxies started so far: each draws from the seed mixed with its number.
    proxies: AtomicU32,
}

impl Session {
    pub fn new(
        handle: Handle,
        default_timeout: Duration,
        limits: Limits,
        transcript: Transcript,
    ) -> Arc<Self> {
        Arc::new(Session {
            handle,
            cancel: CancellationToken::new(),
            reason: OnceLock::new(),
            cancelled: AtomicBool::new(false),
            cancelled_at: OnceLock::new(),
            default_timeout,
            limits,
            transcript,
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            unix_pending: Mutex::new(HashMap::new()),
            open_handles: Arc::new(AtomicUsize::new(0)),
            peak_connections: AtomicUsize::new(0),
            other_connections: AtomicUsize::new(0),
            unix_paths: Mutex::new(HashSet::new()),
            processes: Mutex::new(Some(Vec::new())),
            seed: AtomicU64::new(0),
            drew: AtomicBool::new(false),
            proxies: AtomicU32::new(0),
        })
    }

    /// Set the run's seed (`--seed N`, or one chosen at random), before the script runs.
    pub fn set_seed(&self, seed: u64) {
        self.seed.store(seed, Ordering::Relaxed);
    }

    pub fn seed(&self) -> u64 {
        self.seed.load(Ordering::Relaxed)
    }

    /// The number of a proxy starting now: 1, 2, … in the order the script starts them.
    pub(crate) fn next_proxy(&self) -> u32 {
        self.proxies.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Note that a draw came from the seed, so a failure of this scenario names it.
    pub(crate) fn drew_from_seed(&self) {
        self.drew.store(true, Ordering::Relaxed);
    }

    /// Whether anything drew from the seed.
    pub fn seed_was_drawn(&self) -> bool {
        self.drew.load(Ordering::Relaxed)
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
    }

    /// Stop every blocked call of this scenario and kill the processes it started; the first
    /// reason given is the one kept. Every ending of a scenario (its main script returning
    /// too) comes here.
    pub fn cancel(&self, reason: CancelReason) {
        let _ = self.reason.set(reason);
        let _ = self.cancelled_at.set(Instant::now());
        self.cancelled.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        self.kill_processes();
    }

    /// Start a process with `spawn` (which gives it and its process group id) and adopt its
    /// group, unless the scenario has been stopped: then `None`, and nothing is started. One
    /// lock covers both, so a process cannot slip in after [`Session::kill_processes`].
    pub(crate) fn adopt_process<T>(
        &self,
        spawn: impl FnOnce() -> std::io::Result<(T, u32)>,
    ) -> Option<std::io::Result<T>> {
        let mut processes = self.processes.lock().unwrap_or_else(|p| p.into_inner());
        let adopted = processes.as_mut()?;
        Some(spawn().map(|(child, pgid)| {
            adopted.push(pgid);
            child
        }))
    }

    /// Kill every process group the scenario started; none can start after this.
    fn kill_processes(&self) {
        let taken = self
            .processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for pgid in taken.into_iter().flatten() {
            super::process::kill_group(pgid);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// When the scenario was first cancelled, if it was.
    pub fn cancelled_at(&self) -> Option<Instant> {
        self.cancelled_at.get().copied()
    }

    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.reason.get().copied()
    }

    pub fn token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Distinct connections opened or accepted so far.
    pub fn connections(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
            + self.other_connections.load(Ordering::Relaxed)
    }

    /// A fresh transcript id (a UDP socket's, or a connection's with no pair to match).
    pub(crate) fn new_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Count a connection and give it its transcript id: by its endpoint pair (the same from
    /// both ends, so both get one id), or, for a Unix socket, by how it was opened.
    pub(crate) fn open_connection(
        &self,
        opening: Opening<'_>,
        key: Option<(SocketAddr, SocketAddr)>,
    ) -> u32 {
        self.open_unix_or_ip(opening, key, None)
    }

    /// [`Session::open_connection`], with the abstract name a Unix client is bound to
    /// (`unix_client`, the same from both ends) to pair the scenario's own Unix connections by.
    pub(crate) fn open_unix_or_ip(
        &self,
        opening: Opening<'_>,
        key: Option<(SocketAddr, SocketAddr)>,
        unix_client: Option<&[u8]>,
    ) -> u32 {
        if let Some(key) = key {
            use std::hash::{BuildHasher, BuildHasherDefault};
            let hash = BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(key);
            let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            return *connections.entry(hash).or_insert_with(|| self.new_id());
        }
        if let Opening::Process = opening {
            return self.new_id();
        }
        let mut pending = self.unix_pending.lock().unwrap_or_else(|p| p.into_inner());
        match opening {
            // Counted once, when accepted.
            Opening::ConnectOwn(path) => {
                let queues = pending.entry(path.to_owned()).or_default();
                queues.pair(unix_client, true, || self.new_id())
            }
            Opening::Accept {
                unix_path: Some(path),
                same_process: true,
            } => {
                self.other_connections.fetch_add(1, Ordering::Relaxed);
                let queues = pending.entry(path.to_owned()).or_default();
                queues.pair(unix_client, false, || self.new_id())
            }
            Opening::Connect | Opening::Accept { .. } | Opening::Process => {
                self.other_connections.fetch_add(1, Ordering::Relaxed);
                self.new_id()
            }
        }
    }

    /// Take one of the scenario's handle slots for a socket about to open; it is given back
    /// when the slot drops with the handle.
    pub(crate) fn open_handle(&self, op: &'static str, addr: &str) -> Result<HandleSlot, NetError> {
        let max = self.limits.max_handles;
        let open = self.open_handles.fetch_add(1, Ordering::SeqCst);
        let slot = HandleSlot(Some(self.open_handles.clone()));
        if open >= max {
            return Err(NetError::new(
                ErrorKind::Limit,
                op,
                Some(addr),
                format!(
                    "{}: the scenario already has {max} sockets open, its limit (`--limit handles=N`)",
                    super::error::describe(op, Some(addr))
                ),
            ));
        }
        Ok(slot)
    }

    /// Give back a slot kept by [`HandleSlot::keep_in_session`] (a connection's). When most
    /// of many connections have closed, the memory they freed is given back to the system:
    /// the C allocator keeps it otherwise, scattered between what is still in use, where the
    /// next large allocation (the outcome's copy of the transcript) cannot use it, so a
    /// scenario that held ten thousand connections would need megabytes more at its end.
    pub(crate) fn release_handle(&self) {
        let open = self
            .open_handles
            .fetch_sub(1, Ordering::SeqCst)
            .saturating_sub(1);
        let peak = self.peak_connections.load(Ordering::Relaxed);
        if peak >= TRIM_AFTER && open <= peak / 8 {
            self.peak_connections.store(open, Ordering::Relaxed);
            give_back_freed_memory();
        }
    }

    /// Count a connection opening, for [`Session::release_handle`].
    pub(crate) fn connection_opened(&self) {
        let open = self.open_handles.load(Ordering::Relaxed);
        self.peak_connections.fetch_max(open, Ordering::Relaxed);
    }

    pub(crate) fn add_unix_path(&self, path: &Path) {
        self.unix_paths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned());
    }

    pub(crate) fn listens_on(&self, path: &Path) -> bool {
        self.unix_paths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(path)
    }

    /// Record an event of `call` in the transcript.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        call: &Call,
        kind: EventKind,
        on: On,
        local: Option<Arc<str>>,
        peer: Option<Arc<str>>,
        payload: &[u8],
        note: Option<String>,
    ) {
        self.transcript.record(
            call.task.clone(),
            call.at,
            kind,
            on,
            local,
            peer,
            payload,
            note,
        );
    }

    /// Record an event of `call` between addresses the transcript keeps ([`Transcript::ends`]).
    pub(crate) fn record_on(
        &self,
        call: &Call,
        kind: EventKind,
        on: On,
        ends: Ends,
        payload: &[u8],
        note: Option<String>,
    ) {
        self.transcript
            .record_on(&call.task, call.at, kind, on, ends, payload, note);
    }

    /// Run `op` to completion unless `timeout` (or the `within` in `call`) runs out or the
    /// scenario is cancelled first. `what` and `addr` name the call in a timeout error.
    pub fn block_on<T>(
        &self,
        call: &Call,
        what: &'static str,
        addr: Option<&str>,
        timeout: Option<Duration>,
        op: impl Future<Output = Result<T, NetError>>,
    ) -> Result<T, NetError> {
        self.block_on_to(call, what, addr, timeout, op)
    }

    /// [`Session::block_on`] with an address whose text is made only for a timeout error (a
    /// connection keeps its peer's address, not its text).
    pub(crate) fn block_on_to<T>(
        &self,
        call: &Call,
        what: &'static str,
        addr: impl AddrName,
        timeout: Option<Duration>,
        op: impl Future<Output = Result<T, NetError>>,
    ) -> Result<T, NetError> {
        if self.is_cancelled() {
            return Err(NetError::cancelled(what));
        }
        // Most sends, and reads whose bytes are already here, finish on their first poll: then
        // there is no deadline to work out and no thread to park.
        let _runtime = self.handle.enter();
        let mut op = std::pin::pin!(op);
        let result = match park::poll_once(op.as_mut()) {
            Poll::Ready(r) => r,
            Poll::Pending => self.wait(call, what, &addr, timeout, op),
        };
        // A read that lost the race to cancellation reports cancellation, not its own error.
        match result {
            Err(e) if e.kind != ErrorKind::Cancelled && self.is_cancelled() => {
                Err(NetError::cancelled(what))
            }
            other => other,
        }
    }

    /// The slow path of [`Session::block_on`]: park until `op`, its deadline or cancellation.
    fn wait<T>(
        &self,
        call: &Call,
        what: &'static str,
        addr: &impl AddrName,
        timeout: Option<Duration>,
        op: std::pin::Pin<&mut impl Future<Output = Result<T, NetError>>>,
    ) -> Result<T, NetError> {
        let whose = if timeout.is_some() {
            Deadline::Handle
        } else {
            Deadline::Default
        };
        let timeout = timeout.unwrap_or(self.default_timeout);
        let mut deadline = deadline_after(timeout);
        let mut by_within = None;
        if let Some(within) = call.within {
            if within.deadline < deadline {
                deadline = within.deadline;
                by_within = Some(within.length);
            }
        }
        let mut stoppable = std::pin::pin!(async {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => Err(NetError::cancelled(what)),
                r = op => r,
            }
        });
        park::block_on(&self.handle, stoppable.as_mut(), deadline).unwrap_or_else(|| {
            let addr = addr.name();
            let addr = addr.as_deref();
            Err(match by_within {
                Some(length) => NetError::timeout(what, addr, length, Deadline::Within),
                None => NetError::timeout(what, addr, timeout, whose),
            })
        })
    }

    /// Pause for `d`, waking early only for cancellation; a `within` deadline cuts it short.
    pub fn sleep(&self, call: &Call, d: Duration) -> Result<(), NetError> {
        let slept = self.block_on(
            call,
            "sleep",
            None,
            Some(d.saturating_add(Duration::from_secs(1))),
            async {
                tokio::time::sleep(d).await;
                Ok(())
            },
        );
        slept
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill_processes();
    }
}

/// How many connections a scenario must have held at once before their closing gives memory
/// back to the system (a few hundred kilobytes and more).
const TRIM_AFTER: usize = 1024;

/// Return the free pages of the C allocator's heap to the system (glibc's `malloc_trim`: it
/// releases whole free pages wherever they are, not only at the heap's top). A millisecond or
/// so for a heap of ten thousand connections; nothing to do with other allocators.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back_freed_memory() {
    // SAFETY: `malloc_trim` has no preconditions: it takes the allocator's own locks and only
    // releases pages no allocation uses.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back_freed_memory() {}

/// No deadline: `"none"` for `--timeout`, `--max-time` or a handle's `timeout`. Waits under it
/// end a century from now (`deadline_after`), or when the scenario is stopped.
pub const NO_DEADLINE: Duration = Duration::MAX;

/// A handle's own deadline for its blocking calls (`conn.timeout = d`); unset means the
/// session's default. Lock-free, since every call reads it.
pub(crate) struct HandleTimeout(std::sync::atomic::AtomicU64);

impl HandleTimeout {
    pub fn new() -> Self {
        HandleTimeout(std::sync::atomic::AtomicU64::new(u64::MAX))
    }

    pub fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            u64::MAX => None,
            // What `set` keeps of a deadline too long to count in nanoseconds: none.
            NONE_NANOS => Some(NO_DEADLINE),
            n => Some(Duration::from_nanos(n)),
        }
    }

    pub fn set(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos())
            .unwrap_or(NONE_NANOS)
            .min(NONE_NANOS);
        self.0.store(n, Ordering::Relaxed);
    }
}

/// [`HandleTimeout`]'s value for [`NO_DEADLINE`] (and for anything over 584 years).
const NONE_NANOS: u64 = u64::MAX - 1;

/// A handle's "closed" flag, which calls blocked on the handle wait on. Smaller than a
/// cancellation token (no tree of children, no allocation of its own): there is one per
/// connection, and a scenario may hold ten thousand.
pub(crate) struct CloseSignal {
    closed: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl CloseSignal {
    pub fn new() -> Self {
        CloseSignal {
            closed: std::sync::atomic::AtomicBool::new(false),
            notify: tokio::sync::Notify::new(),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Mark the handle closed and wake every call waiting in [`CloseSignal::closed`]; `false`
    /// when it already was.
    pub fn close(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::SeqCst);
        if first {
            self.notify.notify_waiters();
        }
        first
    }

    /// Finishes once the handle is closed.
    pub async fn closed(&self) {
        // A `Notified` sees every `notify_waiters` from its creation on, so creating it before
        // the check leaves no gap for a close to slip through.
        let notified = self.notify.notified();
        if self.is_closed() {
            return;
        }
        notified.await;
    }
}

/// One open socket's place in the scenario's count; given back on drop.
pub(crate) struct HandleSlot(Option<Arc<AtomicUsize>>);

impl HandleSlot {
    /// Leave the slot taken until its holder calls [`Session::release_handle`]: a holder that
    /// keeps its session need not keep the slot too (a connection, of which a scenario may
    /// hold ten thousand).
    pub fn keep_in_session(mut self) {
        self.0 = None;
    }
}

/// An address as an error names it, made only when an error needs it.
pub(crate) trait AddrName {
    fn name(&self) -> Option<std::borrow::Cow<'_, str>>;
}

impl AddrName for Option<&str> {
    fn name(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.map(std::borrow::Cow::Borrowed)
    }
}

impl Drop for HandleSlot {
    fn drop(&mut self) {
        if let Some(open) = &self.0 {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// `now + d`, or a century from now when `d` is too long for the clock to add: a script may
/// ask for `"584542046090y"`, and the scenario's own deadline still stops it.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// A session on a runtime with a thread of its own, as a run has (a script thread's wait does
/// not drive a runtime's timers or sockets), and its transcript.
#[cfg(test)]
pub(crate) fn threaded_session(
    timeout: Duration,
) -> (tokio::runtime::Runtime, Arc<Session>, Transcript) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let transcript = Transcript::new(Instant::now(), crate::transcript::DEFAULT_CAPTURE);
    let session = Session::new(
        rt.handle().clone(),
        timeout,
        Limits::default(),
        transcript.clone(),
    );
    (rt, session, transcript)
}

#[cfg(test)]
mod tests {
    use super::super::addr::Endpoint;
    use super::super::stream::ip_key;
    use super::*;

    fn session() -> (tokio::runtime::Runtime, Arc<Session>) {
        let (rt, session, _) = threaded_session(Duration::from_secs(1));
        (rt, session)
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_wait_ends_by_the_within_its_call_carries() {
        let (_rt, s, _) = threaded_session(Duration::from_secs(1));
        let length = Duration::from_millis(30);
        let within = super::super::call::Within {
            deadline: Instant::now() + length,
            length,
        };
        let call = Call::new("task 1".into(), None, Some(within));
        let started = Instant::now();
        let err = s
            .block_on(
                &call,
                "recv",
                None,
                Some(Duration::from_secs(10)),
                std::future::pending::<Result<(), NetError>>(),
            )
            .err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(err.as_ref().map(|e| e.kind), Some(ErrorKind::Timeout));
        assert_eq!(err.and_then(|e| e.deadline), Some(Deadline::Within));
        // Without one, the call's own timeout is the deadline.
        let call = Call::new("main".into(), None, None);
        let err = s
            .block_on(
                &call,
                "recv",
                None,
                Some(Duration::from_millis(10)),
                std::future::pending::<Result<(), NetError>>(),
            )
            .err();
        assert_eq!(err.and_then(|e| e.deadline), Some(Deadline::Handle));
    }

    #[test]
    fn closing_most_of_many_connections_gives_memory_back_once_each_time() {
        let (_rt, s) = session();
        let open = |n: usize| {
            for _ in 0..n {
                if let Ok(slot) = s.open_handle("connect", "x") {
                    slot.keep_in_session();
                }
                s.connection_opened();
            }
        };
        let peak = || s.peak_connections.load(Ordering::Relaxed);
        open(2000);
        assert_eq!(peak(), 2000);
        (0..1749).for_each(|_| s.release_handle());
        assert_eq!(peak(), 2000, "251 still open");
        s.release_handle();
        assert_eq!(peak(), 250, "given back at an eighth of the peak");
        (0..250).for_each(|_| s.release_handle());
        assert_eq!(s.open_handles.load(Ordering::SeqCst), 0);
        // Fewer than TRIM_AFTER: nothing more to give back.
        assert_eq!(peak(), 250);
    }

    #[test]
    fn both_ends_of_a_connection_share_an_id_and_an_outside_peer_gets_its_own() {
        let (_rt, s) = session();
        let pair = |a, b| ip_key(&Endpoint::new(a), &Endpoint::new(b));
        let client = s.open_connection(Opening::Connect, pair(addr(40000), addr(5000)));
        let server = s.open_connection(
            Opening::Accept {
                unix_path: None,
                same_process: false,
            },
            pair(addr(5000), addr(40000)),
        );
        assert_eq!(client, server);
        let outside = s.open_connection(Opening::Connect, pair(addr(40001), addr(6000)));
        assert_ne!(outside, client);
        assert_eq!(s.connections(), 2);
        // A UDP socket's id is no connection.
        assert_ne!(s.new_id(), outside);
        assert_eq!(s.connections(), 2);
    }

    #[test]
    fn a_unix_connection_to_the_scenario_s_own_listener_shares_its_id_with_the_accept() {
        let (_rt, s) = session();
        let path = Path::new("/tmp/x.sock");
        let first = s.open_connection(Opening::ConnectOwn(path), None);
        let second = s.open_connection(Opening::ConnectOwn(path), None);
        let own = Opening::Accept {
            unix_path: Some(path),
            same_process: true,
        };
        let outside = Opening::Accept {
            unix_path: Some(path),
            same_process: false,
        };
        // Another process's client does not take a pending id.
        let theirs = s.open_connection(outside, None);
        assert_eq!(s.open_connection(own, None), first);
        assert_eq!(s.open_connection(own, None), second);
        assert!(![first, second].contains(&theirs));
        // The accepting thread may get there first: the connect that follows takes its id.
        let accepted = s.open_connection(own, None);
        assert!(![first, second, theirs].contains(&accepted));
        assert_eq!(s.open_connection(Opening::ConnectOwn(path), None), accepted);
        assert_eq!(s.connections(), 4);
        // A connect to someone else's Unix socket is counted at once.
        s.open_connection(Opening::Connect, None);
        assert_eq!(s.connections(), 5);
    }

    /// Clients bound to names (as sockscript's are) are paired by name, whichever order the
    /// connecting and accepting threads get there in.
    #[test]
    fn unix_clients_with_names_are_paired_by_name_not_by_order() {
        let (_rt, s) = session();
        let path = Path::new("/tmp/y.sock");
        let own = Opening::Accept {
            unix_path: Some(path),
            same_process: true,
        };
        let a = s.open_unix_or_ip(Opening::ConnectOwn(path), None, Some(b"000a1"));
        let b = s.open_unix_or_ip(Opening::ConnectOwn(path), None, Some(b"000b2"));
        assert_ne!(a, b);
        assert_eq!(s.open_unix_or_ip(own, None, Some(b"000b2")), b);
        let c = s.open_unix_or_ip(own, None, Some(b"000c3"));
        assert_eq!(s.open_unix_or_ip(own, None, Some(b"000a1")), a);
        assert_eq!(
            s.open_unix_or_ip(Opening::ConnectOwn(path), None, Some(b"000c3")),
            c
        );
        assert!(![a, b].contains(&c));
        assert_eq!(s.connections(), 3);
        // A name used again later is a new connection.
        let again = s.open_unix_or_ip(Opening::ConnectOwn(path), None, Some(b"000a1"));
        assert!(![a, b, c].contains(&again));
    }
}
