//! A relaying TCP proxy with Toxiproxy's faults, run on the runtime rather than on a script
//! thread: the script goes on while it relays. It owns the listening socket, the relay of each
//! connection (two pumps, one a direction) and the faults; the script layer parses a fault's
//! options into a [`Fault`] and `record` reads what it relayed from the transcript.
//!
//! # In the transcript
//! The proxy's events belong to a task of their own, `proxy`. Each relayed connection is two
//! TCP connections: the client's to the proxy and the proxy's to the upstream, each with its
//! id (shared with the scenario's own end, when the client or the upstream is the scenario's),
//! so a sequence diagram draws client → proxy → upstream. Bytes are recorded as a `recv` on the
//! leg they came in on and a `send` on the leg they left by; bytes a fault drops have a `recv`
//! and no `send`.
//!
//! # Faults
//! Named and shaped as Toxiproxy's toxics. A fault applies to a direction (`upstream`: client
//! to upstream; `downstream`: upstream to client; or both); its `toxicity` is the chance that
//! it applies to a given connection, drawn once per connection, direction and fault from a
//! generator seeded by the run's seed, the proxy's number, the connection's number and the
//! fault's number, so the same `--seed` draws the same whatever the timing. Faults are a
//! `watch` value: a pump looks at it between reads (an atomic load while nothing changes) and
//! wakes for a change while it waits.
//!
//! # Spinning
//! Both pumps of a connection run in one task. After it has relayed bytes it asks both sockets
//! again for up to 50 µs before it waits in the poller (`Spin`), so an answer that comes
//! within that costs no wake-up of the runtime's thread, under a script read's limits on
//! spinners (`SpinSlot`, in `plain.rs`) or as the one `Yielding` spinner (a read's too) of a
//! process pinned to fewer CPUs than the machine has (bench/ANALYSIS.md, 7l).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::addr::{self, Endpoint};
use super::bridge::{HandleSlot, Opening, Session};
use super::call::Call;
use super::error::{Deadline, NetError};
use super::plain::{Spinner, SPIN};
use super::stream::ip_key;
use crate::transcript::{EventKind, On, Transport};

/// The task name of the proxy's events in the transcript.
pub const TASK: &str = "proxy";
/// The most bytes a pump reads at once: a bulk transfer through the proxy keeps up with socat's
/// (bench 7b) when reads are this large.
const CHUNK: usize = 256 * 1024;
/// What a pump's buffer starts at; it doubles, up to [`CHUNK`], each time a read fills it, so
/// thousands of quiet connections do not hold a quarter MiB each.
const FIRST_CHUNK: usize = 16 * 1024;

/// Which way bytes go, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the upstream.
    Upstream,
    /// From the upstream to the client (Toxiproxy's default stream).
    Downstream,
    Both,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "upstream" => Some(Direction::Upstream),
            "downstream" => Some(Direction::Downstream),
            "both" => Some(Direction::Both),
            _ => None,
        }
    }

    fn covers(self, way: Way) -> bool {
        matches!(
            (self, way),
            (Direction::Both, _)
                | (Direction::Upstream, Way::Up)
                | (Direction::Downstream, Way::Down)
        )
    }
}

/// What a fault does, with Toxiproxy's names and units.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Delay each chunk by `ms`, plus or minus up to `jitter`.
    Latency { delay: Duration, jitter: Duration },
    /// At most `rate` bytes a second.
    Bandwidth { rate: u64 },
    /// Split each chunk into segments of `size` bytes, plus or minus up to `variation`, with
    /// `delay` between them.
    Slicer {
        size: usize,
        variation: usize,
        delay: Duration,
    },
    /// Relay `bytes` bytes, then close the connection.
    LimitData { bytes: u64 },
    /// Stop relaying; close the connection after the time (never, for zero).
    Timeout { after: Duration },
    /// Reset (RST) the connection after the time.
    ResetPeer { after: Duration },
    /// Delay the close (FIN) by the time.
    SlowClose { delay: Duration },
    /// Refuse new connections and cut the ones open.
    Down,
}

/// A fault as added with `p.fault(kind, opts)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub effect: Effect,
    pub direction: Direction,
    /// The chance, 0 to 1, that the fault applies to a connection.
    pub toxicity: f64,
}

/// The faults in force, each with the number it was added as (for its draws).
type Faults = Arc<Vec<(u64, Fault)>>;

/// One direction of a relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Up,
    Down,
}

/// A running proxy; clones are the same proxy.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    local: Endpoint,
    upstream: Arc<str>,
    faults: watch::Sender<Faults>,
    next_fault: AtomicU32,
    /// Connections accepted so far.
    accepted: AtomicUsize,
    /// Connections whose relay has ended.
    finished: AtomicUsize,
    finished_signal: Notify,
    stop: CancellationToken,
    /// Set when the accepting task has let go of the listening socket.
    gone: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    closed: AtomicBool,
    /// Whether the accepting task holds a listening socket (not during a `down`).
    listening: watch::Sender<bool>,
    /// Cancelled when the accepting task has ended, however it ended (closed, the scenario
    /// over, or the socket not bound again after a `down`): nothing will change `listening`.
    accepting_ended: CancellationToken,
}

/// What a proxy needs beyond its addresses.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Deadline of the connect to the upstream; the session's default when `None`.
    pub connect_timeout: Option<Duration>,
    /// Faults in force from the start.
    pub faults: Vec<Fault>,
}

/// What every relay of one proxy shares.
struct Shared {
    session: Arc<Session>,
    task: Arc<str>,
    upstream: addr::Target,
    upstream_text: Arc<str>,
    connect_timeout: Duration,
    /// Whose deadline that is, for its timeout error: the proxy's `timeout` option, or
    /// `--timeout`.
    connect_deadline: Deadline,
    /// The seed of this proxy's draws: the run's seed mixed with the proxy's number.
    seed: u64,
    proxy: Arc<Inner>,
}

impl Proxy {
    /// Bind `listen` and relay every connection to `upstream`.
    pub fn start(
        session: &Arc<Session>,
        call: &Call,
        listen: &str,
        upstream: &str,
        opts: ProxyOptions,
    ) -> Result<Proxy, NetError> {
        let target = addr::parse("proxy", upstream)?;
        let listen_target = addr::parse("proxy", listen)?;
        let slot = session.open_handle("proxy", listen)?;
        let listener = session
            .block_on(
                call,
                "proxy",
                Some(listen),
                None,
                listen_target.first_working("proxy", listen, |sa| {
                    std::future::ready(super::listener::tcp_listener(sa))
                }),
            )
            .inspect_err(|e| {
                session.record(
                    call,
                    EventKind::Error,
                    On {
                        conn: None,
                        transport: Some(Transport::Tcp),
                    },
                    Some(Arc::from(listen)),
                    None,
                    b"",
                    Some(e.message.clone()),
                )
            })?;
        let local = Endpoint::new(
            listener
                .local_addr()
                .map_err(|e| NetError::io("proxy", Some(listen), &e))?,
        );
        let numbered = opts
            .faults
            .into_iter()
            .enumerate()
            .map(|(i, f)| (i as u64, f))
            .collect::<Vec<_>>();
        let (faults, _) = watch::channel(Arc::new(numbered.clone()));
        let (gone_tx, gone_rx) = std::sync::mpsc::channel();
        let inner = Arc::new(Inner {
            local: local.clone(),
            upstream: Arc::from(upstream),
            faults,
            next_fault: AtomicU32::new(numbered.len() as u32),
            accepted: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            finished_signal: Notify::new(),
            stop: session.token().child_token(),
            gone: Mutex::new(Some(gone_rx)),
            closed: AtomicBool::new(false),
            listening: watch::channel(true).0,
            accepting_ended: CancellationToken::new(),
        });
        let task: Arc<str> = Arc::from(TASK);
        session.record(
            call,
            EventKind::Listen,
            On {
                conn: None,
                transport: Some(Transport::Tcp),
            },
            Some(local.text.clone()),
            Some(Arc::from(upstream)),
            b"",
            Some(format!("proxy to {upstream}")),
        );
        let shared = Arc::new(Shared {
            session: session.clone(),
            task,
            upstream: target,
            upstream_text: Arc::from(upstream),
            connect_timeout: opts
                .connect_timeout
                .unwrap_or_else(|| session.default_timeout()),
            connect_deadline: match opts.connect_timeout {
                Some(_) => Deadline::Handle,
                None => Deadline::Default,
            },
            seed: mix(session.seed(), u64::from(session.next_proxy())),
            proxy: inner.clone(),
        });
        session
            .handle()
            .spawn(accept_loop(shared, listener, local, slot, gone_tx));
        Ok(Proxy { inner })
    }

    pub fn local(&self) -> &Endpoint {
        &self.inner.local
    }

    pub fn upstream(&self) -> &str {
        &self.inner.upstream
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.inner.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose relay has ended.
    pub fn finished(&self) -> usize {
        self.inner.finished.load(Ordering::SeqCst)
    }

    /// Wait until `n` relays have ended or `stop` is cancelled.
    pub async fn wait_finished(&self, n: usize, stop: &CancellationToken) {
        loop {
            let notified = self.inner.finished_signal.notified();
            if self.finished() >= n {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Add a fault to the connections open now and to come. A `down` returns once the
    /// listening socket is closed, so a client refused is refused from then on.
    pub fn add_fault(&self, call: &Call, session: &Session, fault: Fault) -> Result<(), NetError> {
        let n = u64::from(self.inner.next_fault.fetch_add(1, Ordering::SeqCst));
        self.change_faults(call, session, |faults| {
            let mut list = faults.as_ref().clone();
            list.push((n, fault));
            *faults = Arc::new(list);
        })
    }

    /// Remove every fault; after a `down`, returns once the proxy listens again.
    pub fn clear_faults(&self, call: &Call, session: &Session) -> Result<(), NetError> {
        self.change_faults(call, session, |faults| {
            if !faults.is_empty() {
                *faults = Arc::new(Vec::new());
            }
        })
    }

    /// Change the faults; when that starts or ends a `down`, wait for the accepting task to
    /// close or bind the listening socket.
    fn change_faults(
        &self,
        call: &Call,
        session: &Session,
        change: impl FnOnce(&mut Faults),
    ) -> Result<(), NetError> {
        let mut down = None;
        self.inner.faults.send_modify(|faults| {
            let was = is_down(faults);
            change(faults);
            down = (is_down(faults) != was).then_some(!was);
        });
        let Some(down) = down.filter(|_| !self.is_closed()) else {
            return Ok(());
        };
        let mut listening = self.inner.listening.subscribe();
        let ended = self.inner.accepting_ended.clone();
        session.block_on(
            call,
            "fault",
            Some(&self.inner.local.text),
            None,
            async move {
                // The accepting task gone ends the wait too.
                tokio::select! {
                    _ = listening.wait_for(|l| *l != down) => {}
                    () = ended.cancelled() => {}
                }
                Ok(())
            },
        )
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Stop accepting and cut every relayed connection; the port is free when this returns.
    pub fn close(&self, call: &Call, session: &Session) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.stop.cancel();
        let gone = self
            .inner
            .gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(gone) = gone {
            // Disconnected once the accepting task has dropped the socket; it wakes for the
            // cancellation at once, so this is short.
            let _ = gone.recv_timeout(Duration::from_secs(5));
        }
        session.record(
            call,
            EventKind::Close,
            On {
                conn: None,
                transport: Some(Transport::Tcp),
            },
            Some(self.inner.local.text.clone()),
            None,
            b"",
            None,
        );
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Proxy({} -> {})",
            self.inner.local.text, self.inner.upstream
        )
    }
}

/// splitmix64's finaliser over `a` and `b`: independent seeds from related numbers.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn is_down(faults: &Faults) -> bool {
    faults.iter().any(|(_, f)| f.effect == Effect::Down)
}

/// Accept and relay until the proxy closes or the scenario ends; while a `down` fault is in
/// force the listening socket is closed (new clients are refused) and bound again after.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    local: Endpoint,
    _slot: HandleSlot,
    gone: std::sync::mpsc::Sender<()>,
) {
    let _ended = shared.proxy.accepting_ended.clone().drop_guard();
    let stop = shared.proxy.stop.clone();
    let mut faults = shared.proxy.faults.subscribe();
    let mut listener = Some(listener);
    let mut number: u64 = 0;
    loop {
        let down = is_down(&faults.borrow_and_update());
        if down {
            listener = None;
            shared.proxy.listening.send_replace(false);
        } else if listener.is_none() {
            let Some(sa) = local.addr else { break };
            match super::listener::tcp_listener(sa) {
                Ok(l) => {
                    listener = Some(l);
                    shared.proxy.listening.send_replace(true);
                }
                Err(e) => {
                    record_error(&shared, None, &local.text, None, &e.to_string());
                    break;
                }
            }
        }
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            changed = faults.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
            r = async {
                match &listener {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => r,
        };
        match accepted {
            Ok((client, peer)) => {
                number += 1;
                shared.proxy.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(relay(shared.clone(), client, peer, number));
            }
            Err(e) => {
                record_error(&shared, None, &local.text, None, &e.to_string());
                // Out of file descriptors, say: do not spin, but stop at once if asked to.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
        }
    }
    drop(listener);
    drop(gone);
}

fn record_error(
    shared: &Shared,
    conn: Option<u32>,
    local: &Arc<str>,
    peer: Option<&Arc<str>>,
    note: &str,
) {
    shared.session.transcript().record(
        shared.task.clone(),
        None,
        EventKind::Error,
        On {
            conn,
            transport: Some(Transport::Tcp),
        },
        Some(local.clone()),
        peer.cloned(),
        b"",
        Some(note.to_owned()),
    );
}

/// One leg of a relayed connection as the transcript names it.
#[derive(Clone)]
struct Leg {
    conn: u32,
    local: Arc<str>,
    peer: Arc<str>,
}

impl Leg {
    fn new(session: &Session, local: Endpoint, peer: Endpoint, opening: Opening<'_>) -> Leg {
        let conn = session.open_connection(opening, ip_key(&local, &peer));
        Leg {
            conn,
            local: local.text,
            peer: peer.text,
        }
    }

    fn record(&self, shared: &Shared, kind: EventKind, payload: &[u8], note: Option<String>) {
        shared.session.transcript().record(
            shared.task.clone(),
            None,
            kind,
            On {
                conn: Some(self.conn),
                transport: Some(Transport::Tcp),
            },
            Some(self.local.clone()),
            Some(self.peer.clone()),
            payload,
            note,
        );
    }
}

/// How a relayed connection is to end, set by whichever pump decides it.
#[derive(Default)]
struct Cut {
    token: CancellationToken,
    /// Reset the client's socket (an RST rather than a FIN).
    reset_client: AtomicBool,
    reset_upstream: AtomicBool,
}

impl Cut {
    fn close(&self) {
        self.token.cancel();
    }

    fn reset(&self, direction: Direction) {
        if direction.covers(Way::Down) {
            self.reset_client.store(true, Ordering::SeqCst);
        }
        if direction.covers(Way::Up) {
            self.reset_upstream.store(true, Ordering::SeqCst);
        }
        self.token.cancel();
    }
}

/// Relay one client: connect to the upstream, pump both ways, close both.
async fn relay(shared: Arc<Shared>, client: TcpStream, peer: SocketAddr, number: u64) {
    let session = &shared.session;
    let client_local = client
        .local_addr()
        .map(Endpoint::new)
        .unwrap_or_else(|_| shared.proxy.local.clone());
    let down_leg = Leg::new(
        session,
        client_local,
        Endpoint::new(peer),
        Opening::Accept {
            unix_path: None,
            same_process: false,
        },
    );
    down_leg.record(&shared, EventKind::Accept, b"", None);
    let slots = (
        session.open_handle("proxy", &down_leg.local),
        session.open_handle("proxy", &shared.upstream_text),
    );
    let (Ok(_s1), Ok(_s2)) = slots else {
        down_leg.record(
            &shared,
            EventKind::Error,
            b"",
            Some("too many sockets open (`--limit handles`)".into()),
        );
        // Dropped on return: its end of the conversation closes.
        down_leg.record(&shared, EventKind::Close, b"", None);
        return finish(&shared);
    };
    let stop = shared.proxy.stop.clone();
    let target = shared.upstream.clone();
    let upstream_text = shared.upstream_text.clone();
    let connecting = target.first_working("connect", &upstream_text, TcpStream::connect);
    let connecting = tokio::time::timeout(shared.connect_timeout, connecting);
    let upstream = tokio::select! {
        _ = stop.cancelled() => {
            down_leg.record(&shared, EventKind::Close, b"", None);
            return finish(&shared);
        }
        r = connecting => r.unwrap_or_else(|_| {
            let after = shared.connect_timeout;
            let whose = shared.connect_deadline;
            Err(NetError::timeout("connect", Some(&upstream_text), after, whose))
        }),
    };
    let upstream = match upstream {
        Ok(s) => s,
        Err(e) => {
            record_error(
                &shared,
                None,
                &down_leg.local,
                Some(&upstream_text),
                &e.message,
            );
            down_leg.record(
                &shared,
                EventKind::Close,
                b"",
                Some("the upstream is not there".into()),
            );
            return finish(&shared);
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let up_leg = match (upstream.local_addr(), upstream.peer_addr()) {
        (Ok(l), Ok(p)) => Leg::new(
            session,
            Endpoint::new(l),
            Endpoint::new(p),
            Opening::Connect,
        ),
        _ => {
            down_leg.record(&shared, EventKind::Close, b"", None);
            return finish(&shared);
        }
    };
    up_leg.record(
        &shared,
        EventKind::Connect,
        b"",
        Some(format!("relays tcp#{}", down_leg.conn)),
    );
    let cut = Cut::default();
    let heat = Heat::default();
    let mut client = client;
    let mut upstream = upstream;
    {
        let (client_r, client_w) = client.split();
        let (up_r, up_w) = upstream.split();
        let pump = |way, from, to, from_leg, to_leg| Pump {
            shared: &shared,
            way,
            from_leg,
            to_leg,
            cut: &cut,
            heat: &heat,
            faults: shared.proxy.faults.subscribe(),
            rng_seed: mix(mix(shared.seed, number), way as u64),
            from,
            to,
        };
        let up = pump(Way::Up, client_r, up_w, &down_leg, &up_leg);
        let down = pump(Way::Down, up_r, client_w, &up_leg, &down_leg);
        let both = std::pin::pin!(async { tokio::join!(up.run(), down.run()) });
        tokio::select! {
            _ = Spin { inner: both, heat: &heat } => {}
            _ = stop.cancelled() => {}
        }
    }
    if cut.reset_client.load(Ordering::SeqCst) {
        let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
    }
    if cut.reset_upstream.load(Ordering::SeqCst) {
        let _ = socket2::SockRef::from(&upstream).set_linger(Some(Duration::ZERO));
    }
    drop(client);
    drop(upstream);
    let reset = |r: &AtomicBool| r.load(Ordering::SeqCst).then(|| "reset (RST)".to_owned());
    down_leg.record(&shared, EventKind::Close, b"", reset(&cut.reset_client));
    up_leg.record(&shared, EventKind::Close, b"", reset(&cut.reset_upstream));
    finish(&shared)
}

fn finish(shared: &Shared) {
    shared.proxy.finished.fetch_add(1, Ordering::SeqCst);
    shared.proxy.finished_signal.notify_waiters();
}

/// The faults of one pump that apply to it, drawn once each.
#[derive(Default)]
struct Active {
    latency: Option<(Duration, Duration)>,
    bandwidth: Option<u64>,
    slicer: Option<(usize, usize, Duration)>,
    limit: Option<u64>,
    timeout: Option<Duration>,
    reset: Option<(Duration, Direction)>,
    slow_close: Option<Duration>,
    down: bool,
}

/// One direction of a relayed connection.
struct Pump<'a, R, W> {
    shared: &'a Shared,
    way: Way,
    from_leg: &'a Leg,
    to_leg: &'a Leg,
    cut: &'a Cut,
    heat: &'a Heat,
    faults: watch::Receiver<Faults>,
    rng_seed: u64,
    from: R,
    to: W,
}

impl<R, W> Pump<'_, R, W>
where
    R: AsRef<TcpStream>,
    W: tokio::io::AsyncWrite + Unpin,
{
    /// The faults in force for this direction; `drawn` keeps each fault's draw.
    fn active(&self, faults: &Faults, drawn: &mut Vec<(u64, bool)>) -> Active {
        let mut active = Active::default();
        for (n, f) in faults.iter() {
            if f.effect == Effect::Down {
                active.down = true;
                continue;
            }
            if !f.direction.covers(self.way) {
                continue;
            }
            let applies = match drawn.iter().find(|(m, _)| m == n) {
                Some(&(_, a)) => a,
                None => {
                    let a = f.toxicity >= 1.0
                        || (f.toxicity > 0.0
                            && SmallRng::seed_from_u64(mix(self.rng_seed, *n))
                                .random_bool(f.toxicity));
                    if f.toxicity < 1.0 {
                        self.shared.session.drew_from_seed();
                    }
                    drawn.push((*n, a));
                    a
                }
            };
            if !applies {
                continue;
            }
            match f.effect {
                Effect::Latency { delay, jitter } => active.latency = Some((delay, jitter)),
                Effect::Bandwidth { rate } => active.bandwidth = Some(rate),
                Effect::Slicer {
                    size,
                    variation,
                    delay,
                } => active.slicer = Some((size, variation, delay)),
                Effect::LimitData { bytes } => active.limit = Some(bytes),
                Effect::Timeout { after } => active.timeout = Some(after),
                Effect::ResetPeer { after } => active.reset = Some((after, f.direction)),
                Effect::SlowClose { delay } => active.slow_close = Some(delay),
                Effect::Down => {}
            }
        }
        active
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; FIRST_CHUNK];
        let mut drawn = Vec::new();
        let mut rng = SmallRng::seed_from_u64(mix(self.rng_seed, u64::MAX));
        let mut watching = true;
        let mut active = Active::default();
        let mut reset_at: Option<Instant> = None;
        let mut timeout_at: Option<Instant> = None;
        let mut passed: u64 = 0;
        let mut first = true;
        loop {
            if first || (watching && self.faults.has_changed().unwrap_or(false)) {
                first = false;
                let faults = self.faults.borrow_and_update().clone();
                active = self.active(&faults, &mut drawn);
                if active.down {
                    self.cut.close();
                    return;
                }
                reset_at = match (active.reset, reset_at) {
                    (Some(_), Some(at)) => Some(at),
                    (Some((after, _)), None) => Some(Instant::now() + after),
                    (None, _) => None,
                };
                timeout_at = match (active.timeout, timeout_at) {
                    (Some(d), Some(at)) if !d.is_zero() => Some(at),
                    (Some(d), None) if !d.is_zero() => Some(Instant::now() + d),
                    _ => None,
                };
            }
            let read = tokio::select! {
                biased;
                _ = self.cut.token.cancelled() => return,
                changed = self.faults.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                    } else {
                        // Seen by `has_changed` at the top: mark it unseen again.
                        self.faults.mark_changed();
                    }
                    continue;
                }
                _ = sleep_until(reset_at) => {
                    let direction = active.reset.map_or(Direction::Both, |(_, d)| d);
                    self.cut.reset(direction);
                    return;
                }
                _ = sleep_until(timeout_at) => {
                    self.cut.close();
                    return;
                }
                r = read(self.from.as_ref(), &mut buf, self.heat) => r,
            };
            // Until the next read: whatever this pump waits on now is not the peer's bytes.
            let _stalled = self.heat.stall();
            let n = match read {
                Ok(0) => {
                    self.from_leg.record(self.shared, EventKind::Eof, b"", None);
                    if let Some(d) = active.slow_close {
                        if self.pause(d).await.is_err() {
                            return;
                        }
                    }
                    let _ = self.to.shutdown().await;
                    self.to_leg
                        .record(self.shared, EventKind::Shutdown, b"", None);
                    return;
                }
                Ok(n) => {
                    self.heat.moved.store(true, Ordering::Relaxed);
                    n
                }
                Err(e) => {
                    self.error(self.from_leg, &e);
                    return;
                }
            };
            if n == buf.len() && n < CHUNK {
                // The bytes read stay where they are.
                buf.resize(n * 2, 0);
            }
            let data = &buf[..n];
            self.from_leg
                .record(self.shared, EventKind::Recv, data, None);
            if active.timeout.is_some() {
                // Toxiproxy's timeout: nothing gets through.
                continue;
            }
            let (data, then_close) = match active.limit {
                Some(limit) => {
                    let left = limit.saturating_sub(passed);
                    let take = (n as u64).min(left) as usize;
                    (&data[..take], passed + take as u64 >= limit)
                }
                None => (data, false),
            };
            if let Some((delay, jitter)) = active.latency {
                let d = if jitter.is_zero() {
                    delay
                } else {
                    let j = jitter.as_micros() as i64;
                    let us = delay.as_micros() as i64 + rng.random_range(-j..=j);
                    Duration::from_micros(us.max(0) as u64)
                };
                if self.pause(d).await.is_err() {
                    return;
                }
            }
            if self.forward(data, &active, &mut rng).await.is_err() {
                return;
            }
            passed += data.len() as u64;
            if then_close {
                self.cut.close();
                return;
            }
        }
    }

    /// Wait `d` unless the connection is cut first.
    async fn pause(&self, d: Duration) -> Result<(), ()> {
        tokio::select! {
            _ = self.cut.token.cancelled() => Err(()),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Write `data` on, in the segments and at the pace the faults ask for.
    async fn forward(
        &mut self,
        data: &[u8],
        active: &Active,
        rng: &mut SmallRng,
    ) -> Result<(), ()> {
        if active.slicer.is_none() && active.bandwidth.is_none() {
            return self.write(data).await;
        }
        let mut rest = data;
        while !rest.is_empty() {
            let mut size = rest.len();
            let mut gap = Duration::ZERO;
            if let Some((s, variation, delay)) = active.slicer {
                let v = variation.min(s.saturating_sub(1)) as i64;
                let s = (s as i64 + rng.random_range(-v..=v)).max(1) as usize;
                size = size.min(s);
                gap = delay;
            }
            if let Some(rate) = active.bandwidth {
                // Pieces of a tenth of a second at the rate, as Toxiproxy paces.
                let piece = (rate / 10).max(1) as usize;
                size = size.min(piece);
                let secs = size as f64 / rate.max(1) as f64;
                gap = gap.max(Duration::from_secs_f64(secs));
            }
            let (segment, after) = rest.split_at(size);
            self.write(segment).await?;
            rest = after;
            if !gap.is_zero() {
                self.pause(gap).await?;
            }
        }
        Ok(())
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), ()> {
        if data.is_empty() {
            return Ok(());
        }
        // Recorded as it starts, as a script's send is: the transcript never shows the peer
        // receiving (or answering) first. A send that then fails is followed by its error.
        self.to_leg.record(self.shared, EventKind::Send, data, None);
        let written = tokio::select! {
            _ = self.cut.token.cancelled() => return Err(()),
            r = self.to.write_all(data) => r,
        };
        match written {
            Ok(()) => Ok(()),
            Err(e) => {
                self.error(self.to_leg, &e);
                Err(())
            }
        }
    }

    /// A socket error on one leg: recorded; the other side is reset, as the error is passed on.
    fn error(&self, leg: &Leg, e: &io::Error) {
        leg.record(self.shared, EventKind::Error, b"", Some(e.to_string()));
        let reset = matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
        );
        if reset {
            // Pass a reset on to the other side as a reset.
            let other = if std::ptr::eq(leg, self.from_leg) == (self.way == Way::Up) {
                Direction::Upstream
            } else {
                Direction::Downstream
            };
            self.cut.reset(other);
        } else {
            self.cut.close();
        }
    }
}

/// Read what `stream` holds, waiting for it through the runtime. While [`Spin`] polls the relay
/// again and again, the runtime's poller does not run, so its readiness does not show bytes that
/// arrive meanwhile: then the socket itself is asked (a direct `read`). Cancel-safe: it takes
/// bytes only when it returns them.
async fn read(stream: &TcpStream, buf: &mut [u8], heat: &Heat) -> io::Result<usize> {
    std::future::poll_fn(|cx| loop {
        match stream.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => match stream.try_read(buf) {
                // Readiness the poller saw before the bytes were taken: `try_read` has cleared
                // it, and the next turn registers for the next bytes.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            },
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending if heat.spinning.load(Ordering::Relaxed) => {
                match io::Read::read(&mut &*socket2::SockRef::from(stream), buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    done => return Poll::Ready(done),
                }
            }
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// Whether a relayed connection is hot: one of its pumps has just read bytes (so an answer
/// is likely within microseconds), and neither is held up by a full socket or a fault's pause.
#[derive(Default)]
struct Heat {
    /// A pump read bytes since [`Spin`] last looked.
    moved: AtomicBool,
    /// Pumps between a read and their next read (writing, pausing, closing).
    stalled: AtomicUsize,
    /// Set while [`Spin`] polls the relay again and again.
    spinning: AtomicBool,
}

impl Heat {
    fn stall(&self) -> Stalled<'_> {
        self.stalled.fetch_add(1, Ordering::Relaxed);
        Stalled(self)
    }

    /// Whether bytes moved since the last look and both pumps now wait for bytes.
    fn hot(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed) && self.stalled.load(Ordering::Relaxed) == 0
    }
}

struct Stalled<'a>(&'a Heat);

impl Drop for Stalled<'_> {
    fn drop(&mut self) {
        self.0.stalled.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The relay of one connection (both pumps), polled again and again for up to [`SPIN`] after
/// it has moved bytes and both pumps wait to read, before its thread goes back to the poller:
/// a reply that comes within that is relayed without the runtime's thread being woken for it
/// (a wake-up across CPUs costs tens of µs on a VM). It spins under a script read's rules
/// ([`Spinner`]: at most one fewer spinners than the process has CPUs, or else the one that
/// yields its CPU between looks). An idle connection, which is not polled, never spins.
/// Bytes that keep coming keep it spinning; after [`SPIN_ROUNDS`] of them it yields to the
/// runtime's other tasks.
struct Spin<'a, F> {
    inner: std::pin::Pin<&'a mut F>,
    heat: &'a Heat,
}

/// How many times in a row a spinning relay starts its wait again after relaying more bytes
/// before it lets the runtime run its other tasks (as a script's read yields every 64).
const SPIN_ROUNDS: u32 = 64;

impl<F: std::future::Future> std::future::Future for Spin<'_, F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let mut polled = this.inner.as_mut().poll(cx);
        if polled.is_ready() || !this.heat.hot() {
            return polled;
        }
        let Some(spinner) = Spinner::take() else {
            return polled;
        };
        this.heat.spinning.store(true, Ordering::Relaxed);
        let mut started = std::time::Instant::now();
        let mut rounds = 0;
        while polled.is_pending() && started.elapsed() < SPIN {
            spinner.pause();
            polled = this.inner.as_mut().poll(cx);
            if polled.is_pending() && this.heat.moved.load(Ordering::Relaxed) {
                if !this.heat.hot() {
                    break;
                }
                rounds += 1;
                if rounds >= SPIN_ROUNDS {
                    cx.waker().wake_by_ref();
                    break;
                }
                started = std::time::Instant::now();
            }
        }
        this.heat.spinning.store(false, Ordering::Relaxed);
        polled
    }
}

/// Sleep until `at`; never, for `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
