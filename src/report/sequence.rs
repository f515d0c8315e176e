//! One scenario's conversation as a sequence diagram, before anything draws it: the shared
//! model of the Markdown (Mermaid) and HTML diagrams. [`Sequence::of`] is a pure function of
//! one [`Outcome`]; this module knows no Mermaid, no HTML and no escaping (every label here is
//! text a peer or a script controls: each view escapes it for its own format).
//!
//! # The model
//! - [`Lane`]s, one per endpoint, in the order they first take part: each listener
//!   ([`LaneKind::Listener`]), each connection end the scenario holds ([`LaneKind::End`], one
//!   per end: both ends of a connection the scenario holds on both sides are two lanes), each
//!   UDP socket ([`LaneKind::Socket`]), each address outside the scenario it talked to
//!   ([`LaneKind::Peer`], one per remote address), a task's calls that had no socket yet (a
//!   failed `connect`: [`LaneKind::Task`]) and, only when a failure has no socket to sit on (an
//!   assertion), the script itself ([`LaneKind::Script`]).
//! - [`Step`]s in time order: a [`StepKind::Message`] per send, an arrow from the sending lane
//!   to the receiving one. When the scenario holds both ends, the send and the recv events
//!   that carried its bytes are that one arrow ([`Step::recv`], [`Step::received_at`]): TCP by
//!   byte offsets in each direction (a send read in two recvs, two sends read in one), UDP
//!   datagram by datagram. A recv whose send is not in the transcript (a peer outside the
//!   scenario) is an arrow from that peer's lane with no send event. Listen, accept, connect,
//!   shutdown, eof, close and error are marks on their lane.
//! - The failure, for a scenario that did not pass: the error event its diagnostic names (by
//!   connection, else address, else script line) becomes a [`StepKind::Failure`] step on that
//!   event's lane; a failure no event records (an assertion) is a step of its own at the end,
//!   on the lane of the events of its script line, else on the [`LaneKind::Script`] lane.
//!   [`Sequence::failure`] is its index; the message is the outcome's diagnostic.
//!
//! Every step keeps the index of its transcript event(s) in [`Outcome::transcript`], so a view
//! can show payloads, both timestamps and the script line. Steps are ordered by the time of
//! their first event (a message: its send), ties by transcript order; transcript order alone
//! is not time order, since two tasks record concurrently.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::diagnostic::Diag;
use crate::outcome::{Outcome, Status};
use crate::transcript::{Event, EventKind, Transport};

/// A lane's index in [`Sequence::lanes`].
pub type LaneId = usize;

/// One scenario's conversation: its lanes and steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sequence {
    pub lanes: Vec<Lane>,
    /// In time order.
    pub steps: Vec<Step>,
    /// The index in `steps` of the failure, when the scenario did not pass.
    pub failure: Option<usize>,
}

/// What kind of endpoint a lane is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneKind {
    /// A listening socket (TCP, TLS or Unix) of the scenario.
    Listener,
    /// One end of a connection, held by the scenario.
    End,
    /// A UDP socket of the scenario.
    Socket,
    /// An address outside the scenario that it talked to (or tried to).
    Peer,
    /// A task's calls made before it had a socket (a `connect` that failed).
    Task,
    /// The script, for a failure no socket event records (an assertion).
    Script,
}

impl LaneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LaneKind::Listener => "listener",
            LaneKind::End => "end",
            LaneKind::Socket => "socket",
            LaneKind::Peer => "peer",
            LaneKind::Task => "task",
            LaneKind::Script => "script",
        }
    }
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub kind: LaneKind,
    /// The task whose call made it (its first event's task); `None` for a peer and the script.
    pub task: Option<Arc<str>>,
    /// Its address: a listener's or an end's local address, a peer's address; `None` for a
    /// task and the script lane.
    pub addr: Option<Arc<str>>,
    /// The connection id of an end or a UDP socket.
    pub conn: Option<u32>,
    pub transport: Option<Transport>,
}

impl Lane {
    /// A plain-text title: `task 1 · 127.0.0.1:4000 (tcp#1)`, `listen 127.0.0.1:4000 (tcp)`,
    /// `peer 127.0.0.1:9`. It holds peer- and script-controlled text: views escape it.
    pub fn title(&self) -> String {
        let mut title = match self.kind {
            LaneKind::Listener => "listen".to_owned(),
            LaneKind::Peer => "peer".to_owned(),
            LaneKind::Script => "script".to_owned(),
            LaneKind::End | LaneKind::Socket | LaneKind::Task => {
                self.task.as_deref().unwrap_or("?").to_owned()
            }
        };
        if let Some(addr) = &self.addr {
            let sep = if self.kind == LaneKind::Listener || self.kind == LaneKind::Peer {
                " "
            } else {
                " · "
            };
            title.push_str(sep);
            title.push_str(addr);
        }
        match (self.transport, self.conn) {
            (Some(t), Some(c)) => title.push_str(&format!(" ({}#{c})", t.as_str())),
            (Some(t), None) => title.push_str(&format!(" ({})", t.as_str())),
            _ => {}
        }
        title
    }
}

/// What a step shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Bytes from `lane` to `to`.
    Message,
    Listen,
    Accept,
    Connect,
    Shutdown,
    Eof,
    Close,
    /// An error event that is not the scenario's failure (a caught error).
    Error,
    /// Where the scenario failed.
    Failure,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Message => "message",
            StepKind::Listen => "listen",
            StepKind::Accept => "accept",
            StepKind::Connect => "connect",
            StepKind::Shutdown => "shutdown",
            StepKind::Eof => "eof",
            StepKind::Close => "close",
            StepKind::Error => "error",
            StepKind::Failure => "failure",
        }
    }
}

/// One step of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub kind: StepKind,
    /// The lane it is on; a message's sending lane.
    pub lane: LaneId,
    /// A message's receiving lane; a connect's listener (else its peer); an accept's listener;
    /// a failed connect's target. `None` for the other marks.
    pub to: Option<LaneId>,
    /// Where it sits in time: its event's; a message's send (else its first recv); a failure
    /// no event records, the end of the scenario.
    pub at: Duration,
    /// Its transcript event: a mark's, a message's send; `None` for a message whose send is
    /// not in the transcript (from a peer outside) and a failure no event records.
    pub event: Option<usize>,
    /// A message's recv events that carried any of its bytes, in order (a recv that read two
    /// sends belongs to both); empty when nothing of it was received in the scenario.
    pub recv: Vec<usize>,
    /// When a message's last byte was received, if the scenario received all of it.
    pub received_at: Option<Duration>,
    /// A message's length in bytes (its send's, else its recv's); 0 for marks.
    pub len: usize,
}

impl Sequence {
    /// The conversation of one outcome, with its failure when it did not pass.
    pub fn of(outcome: &Outcome) -> Sequence {
        let failed = outcome.status != Status::Passed;
        build(
            &outcome.transcript,
            failed.then_some(outcome.diagnostic.as_ref()),
            outcome.duration,
        )
    }
}

/// The sequence of `events`; `failure` is `Some` when the scenario did not pass (with its
/// diagnostic, if it has one); `duration` is when it ended.
pub fn build(events: &[Event], failure: Option<Option<&Diag>>, duration: Duration) -> Sequence {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| (events[i].at, i));
    let mut b = Builder {
        events,
        lanes: Vec::new(),
        index: HashMap::new(),
        sockets: HashMap::new(),
        steps: Vec::new(),
    };
    b.find_lanes(&order);
    let failed_event = failure.and_then(|diag| diag.and_then(|d| failed_event(events, d)));
    for &i in &order {
        b.step(i, failed_event == Some(i));
    }
    b.pair_streams(&order);
    b.pair_datagrams(&order);
    if let Some(diag) = failure {
        if failed_event.is_none() {
            let end = events.iter().map(|e| e.at).max().unwrap_or_default();
            let lane = diag
                .and_then(|d| d.line)
                .and_then(|line| {
                    events
                        .iter()
                        .rposition(|e| e.position.is_some_and(|p| p.line as usize == line))
                })
                .and_then(|i| b.index.get(&lane_key(&events[i])).copied());
            let lane = lane.unwrap_or_else(|| b.lane(LaneKey::Script, None, None));
            b.steps.push(Step {
                kind: StepKind::Failure,
                lane,
                to: None,
                at: end.max(duration),
                event: None,
                recv: Vec::new(),
                received_at: None,
                len: 0,
            });
        }
    }
    let mut steps = b.steps;
    // Stable: equal times keep transcript order, and a failure no event records comes last.
    steps.sort_by_key(|s| s.at);
    let failure = failure
        .is_some()
        .then(|| steps.iter().position(|s| s.kind == StepKind::Failure))
        .flatten();
    Sequence {
        lanes: b.lanes,
        steps,
        failure,
    }
}

/// The transcript event where the diagnostic's failure happened: the latest error on the
/// connection it names, else on the address it names, else at its script line.
fn failed_event(events: &[Event], diag: &Diag) -> Option<usize> {
    let errors = || {
        events
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, e)| e.kind == EventKind::Error)
    };
    let by_conn = diag
        .on
        .conn
        .and_then(|c| errors().find(|(_, e)| e.on.conn == Some(c)));
    let by_addr = || {
        let addr = diag.on.addr.as_deref()?;
        errors().find(|(_, e)| e.peer.as_deref() == Some(addr) || e.local.as_deref() == Some(addr))
    };
    let by_line = || {
        let line = diag.line?;
        errors().find(|(_, e)| e.position.is_some_and(|p| p.line as usize == line))
    };
    by_conn.or_else(by_addr).or_else(by_line).map(|(i, _)| i)
}

/// What identifies a lane while building.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LaneKey {
    Listener(Arc<str>),
    /// A connection end or UDP socket: its id and local address.
    End(u32, Arc<str>),
    Peer(Arc<str>),
    Task(Arc<str>),
    Script,
}

/// The lane an event happens on, by its own fields: an end or socket by id and local
/// address, a listener by address, a task's socketless call by task.
fn lane_key(e: &Event) -> LaneKey {
    match (e.on.conn, &e.local) {
        (Some(c), Some(local)) => LaneKey::End(c, local.clone()),
        (None, Some(local)) => LaneKey::Listener(local.clone()),
        (_, None) => LaneKey::Task(e.task.clone()),
    }
}

/// One direction of a connection: its id and the sending end's address.
type Direction = (u32, Arc<str>);

struct Builder<'a> {
    events: &'a [Event],
    lanes: Vec<Lane>,
    index: HashMap<LaneKey, LaneId>,
    /// The UDP sockets by local address (the first, should two have had one address).
    sockets: HashMap<Arc<str>, LaneId>,
    steps: Vec<Step>,
}

impl Builder<'_> {
    /// The lane for `key`, made on first use from the event that first names it.
    fn lane(&mut self, key: LaneKey, task: Option<&Arc<str>>, e: Option<&Event>) -> LaneId {
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let transport = e.and_then(|e| e.on.transport);
        let lane = match &key {
            LaneKey::Listener(addr) => Lane {
                kind: LaneKind::Listener,
                task: task.cloned(),
                addr: Some(addr.clone()),
                conn: None,
                transport,
            },
            LaneKey::End(conn, addr) => Lane {
                kind: if transport == Some(Transport::Udp) {
                    LaneKind::Socket
                } else {
                    LaneKind::End
                },
                task: task.cloned(),
                addr: Some(addr.clone()),
                conn: Some(*conn),
                transport,
            },
            LaneKey::Peer(addr) => Lane {
                kind: LaneKind::Peer,
                task: None,
                addr: Some(addr.clone()),
                conn: None,
                transport: None,
            },
            LaneKey::Task(task) => Lane {
                kind: LaneKind::Task,
                task: Some(task.clone()),
                addr: None,
                conn: None,
                transport: None,
            },
            LaneKey::Script => Lane {
                kind: LaneKind::Script,
                task: None,
                addr: None,
                conn: None,
                transport: None,
            },
        };
        let id = self.lanes.len();
        if let (LaneKind::Socket, LaneKey::End(_, addr)) = (lane.kind, &key) {
            self.sockets.entry(addr.clone()).or_insert(id);
        }
        self.lanes.push(lane);
        self.index.insert(key, id);
        id
    }

    /// Make the scenario's own lanes (listeners, ends, sockets) in the order they first take
    /// part, so that peers are only what is not the scenario's.
    fn find_lanes(&mut self, order: &[usize]) {
        let events = self.events;
        for &i in order {
            let e = &events[i];
            // A failed listen names an address nobody listens on; a failed connect has no
            // socket: their lanes are made when their step is.
            if e.kind == EventKind::Error && e.on.conn.is_none() {
                continue;
            }
            let key = lane_key(e);
            if !matches!(key, LaneKey::Task(_)) {
                self.lane(key, Some(&e.task), Some(e));
            }
        }
    }

    /// The scenario's lane at `addr` that the end `e` (on `conn`) talks to: the other end of
    /// its connection, the UDP socket bound there, a listener there; else the outside peer.
    fn remote(&mut self, e: &Event, addr: &Arc<str>) -> LaneId {
        let udp = e.on.transport == Some(Transport::Udp);
        if let (Some(conn), false) = (e.on.conn, udp) {
            if let Some(&id) = self.index.get(&LaneKey::End(conn, addr.clone())) {
                return id;
            }
        }
        let found = if udp {
            self.sockets.get(addr).copied()
        } else {
            self.listener(addr)
        };
        match found {
            Some(id) => id,
            None => self.lane(LaneKey::Peer(addr.clone()), None, None),
        }
    }

    fn step(&mut self, i: usize, failed: bool) {
        let e = &self.events[i];
        let lane = self.lane(lane_key(e), Some(&e.task), Some(e));
        let mut step = Step {
            kind: StepKind::Message,
            lane,
            to: None,
            at: e.at,
            event: Some(i),
            recv: Vec::new(),
            received_at: None,
            len: 0,
        };
        step.kind = match e.kind {
            EventKind::Send => {
                step.to = e.peer.as_ref().map(|p| self.remote(e, p));
                step.len = e.len;
                StepKind::Message
            }
            // Paired with their sends later; a recv from outside is a message of its own.
            EventKind::Recv => return,
            EventKind::Listen => StepKind::Listen,
            EventKind::Connect => {
                step.to = e.peer.as_ref().map(|p| self.listener_or_peer(p));
                StepKind::Connect
            }
            EventKind::Accept => {
                step.to = e.local.as_ref().and_then(|l| self.listener(l));
                StepKind::Accept
            }
            EventKind::Shutdown => StepKind::Shutdown,
            EventKind::Eof => StepKind::Eof,
            EventKind::Close => StepKind::Close,
            EventKind::Error => {
                if e.local.is_none() {
                    step.to = e.peer.as_ref().map(|p| self.listener_or_peer(p));
                }
                if failed {
                    StepKind::Failure
                } else {
                    StepKind::Error
                }
            }
        };
        self.steps.push(step);
    }

    fn listener(&self, addr: &Arc<str>) -> Option<LaneId> {
        self.index.get(&LaneKey::Listener(addr.clone())).copied()
    }

    fn listener_or_peer(&mut self, addr: &Arc<str>) -> LaneId {
        match self.listener(addr) {
            Some(id) => id,
            None => self.lane(LaneKey::Peer(addr.clone()), None, None),
        }
    }

    /// The step index of each send event.
    fn sends(&self) -> HashMap<usize, usize> {
        let mut sends = HashMap::new();
        for (s, step) in self.steps.iter().enumerate() {
            if let (StepKind::Message, Some(i)) = (step.kind, step.event) {
                sends.insert(i, s);
            }
        }
        sends
    }

    /// A recv nobody in the scenario sent: a message from its peer's lane.
    fn unpaired(&mut self, i: usize) {
        let e = &self.events[i];
        let to = self.lane(lane_key(e), Some(&e.task), Some(e));
        let from = match &e.peer {
            Some(p) => self.remote(e, p),
            None => self.lane(LaneKey::Peer(Arc::from("?")), None, None),
        };
        self.steps.push(Step {
            kind: StepKind::Message,
            lane: from,
            to: Some(to),
            at: e.at,
            event: None,
            recv: vec![i],
            received_at: Some(e.at),
            len: e.len,
        });
    }

    /// Stream transports: each direction of a connection whose both ends the scenario holds
    /// is a byte stream; a recv carries the bytes at its offset, which sends made them.
    fn pair_streams(&mut self, order: &[usize]) {
        let events = self.events;
        let sends = self.sends();
        // (conn, sending end's address) -> its sends in time order, with their end offsets.
        let mut sent: HashMap<Direction, Vec<(u64, usize)>> = HashMap::new();
        for &i in order {
            let e = &events[i];
            if e.kind != EventKind::Send || e.on.transport.is_some_and(Transport::keeps_boundaries)
            {
                continue;
            }
            let (Some(conn), Some(local)) = (e.on.conn, &e.local) else {
                continue;
            };
            if e.len == 0 {
                continue;
            }
            let list = sent.entry((conn, local.clone())).or_default();
            let end = list.last().map_or(0, |&(end, _)| end) + e.len as u64;
            list.push((end, sends[&i]));
        }
        // How far each receiving direction has read, and the next send it may be reading.
        let mut read: HashMap<Direction, (u64, usize)> = HashMap::new();
        for &i in order {
            let e = &events[i];
            if e.kind != EventKind::Recv || e.on.transport.is_some_and(Transport::keeps_boundaries)
            {
                continue;
            }
            let key = match (e.on.conn, &e.peer) {
                (Some(conn), Some(peer)) => (conn, peer.clone()),
                _ => {
                    self.unpaired(i);
                    continue;
                }
            };
            let Some(list) = sent.get(&key) else {
                self.unpaired(i);
                continue;
            };
            let (offset, next) = read.entry(key).or_insert((0, 0));
            let end = *offset + e.len as u64;
            *offset = end;
            // Every send whose bytes begin before `end`, from the first not yet read whole.
            let mut k = *next;
            let mut any = false;
            while let Some(&(send_end, s)) = list.get(k) {
                if send_end - self.steps[s].len as u64 >= end {
                    break;
                }
                any = true;
                self.steps[s].recv.push(i);
                if send_end > end {
                    break;
                }
                self.steps[s].received_at = Some(e.at);
                k += 1;
            }
            *next = k;
            if !any {
                // More bytes than the scenario's sends made (an event was not kept).
                self.unpaired(i);
            }
        }
    }

    /// UDP and WebSocket messages: a recv is the datagram (message) sent to its socket's
    /// address from its peer's address, the first such send not yet received with the same
    /// length and bytes. (A WebSocket's automatic pong and close reply are no one's send: they
    /// stay unpaired.)
    fn pair_datagrams(&mut self, order: &[usize]) {
        let events = self.events;
        let sends = self.sends();
        let mut waiting: HashMap<(Arc<str>, Arc<str>), VecDeque<usize>> = HashMap::new();
        for &i in order {
            let e = &events[i];
            if !e.on.transport.is_some_and(Transport::keeps_boundaries) {
                continue;
            }
            let (Some(local), Some(peer)) = (&e.local, &e.peer) else {
                continue;
            };
            match e.kind {
                EventKind::Send => {
                    waiting
                        .entry((local.clone(), peer.clone()))
                        .or_default()
                        .push_back(sends[&i]);
                }
                EventKind::Recv => {
                    let queue = waiting.get_mut(&(peer.clone(), local.clone()));
                    let found = queue.and_then(|q| {
                        let k = q.iter().position(|&s| {
                            let step = &self.steps[s];
                            step.len == e.len
                                && step.event.map(|j| &events[j].data) == Some(&e.data)
                        })?;
                        q.remove(k)
                    });
                    match found {
                        Some(s) => {
                            self.steps[s].recv.push(i);
                            self.steps[s].received_at = Some(e.at);
                        }
                        None => self.unpaired(i),
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::diagnostic::Code;
    use crate::net::ErrorKind;
    use crate::transcript::{At, On};

    /// An event at `ms` milliseconds, made at script line `ms`.
    #[allow(clippy::too_many_arguments)]
    fn ev(
        ms: u64,
        task: &str,
        kind: EventKind,
        conn: Option<u32>,
        transport: Transport,
        local: Option<&str>,
        peer: Option<&str>,
        data: &'static [u8],
    ) -> Event {
        Event {
            at: Duration::from_millis(ms),
            task: task.into(),
            position: Some(At {
                line: ms as u32,
                column: 1,
            }),
            kind,
            on: On {
                conn,
                transport: Some(transport),
            },
            local: local.map(Arc::from),
            peer: peer.map(Arc::from),
            data: Bytes::from_static(data),
            len: data.len(),
            note: None,
        }
    }

    const SRV: &str = "127.0.0.1:4000";
    const CLI: &str = "127.0.0.1:5000";

    /// A TCP greeting, both ends in the scenario: the server sends in two pieces, the client
    /// reads them in one recv and then in another, then the close.
    fn greeting() -> Vec<Event> {
        use EventKind as K;
        let t = Transport::Tcp;
        vec![
            ev(1, "main", K::Listen, None, t, Some(SRV), None, b""),
            // Recorded before the accept, though it came after it.
            ev(3, "main", K::Connect, Some(1), t, Some(CLI), Some(SRV), b""),
            ev(
                2,
                "task 1",
                K::Accept,
                Some(1),
                t,
                Some(SRV),
                Some(CLI),
                b"",
            ),
            ev(
                4,
                "task 1",
                K::Send,
                Some(1),
                t,
                Some(SRV),
                Some(CLI),
                b"Thank ",
            ),
            ev(
                5,
                "task 1",
                K::Send,
                Some(1),
                t,
                Some(SRV),
                Some(CLI),
                b"you",
            ),
            ev(
                6,
                "main",
                K::Recv,
                Some(1),
                t,
                Some(CLI),
                Some(SRV),
                b"Thank y",
            ),
            ev(7, "task 1", K::Close, Some(1), t, Some(SRV), Some(CLI), b""),
            ev(8, "main", K::Recv, Some(1), t, Some(CLI), Some(SRV), b"ou"),
            ev(9, "main", K::Eof, Some(1), t, Some(CLI), Some(SRV), b""),
        ]
    }

    fn kinds(seq: &Sequence) -> Vec<(StepKind, LaneId, Option<LaneId>)> {
        seq.steps.iter().map(|s| (s.kind, s.lane, s.to)).collect()
    }

    #[test]
    fn both_ends_in_the_scenario_make_one_arrow_per_send() {
        let seq = build(&greeting(), None, Duration::from_millis(10));
        let titles: Vec<_> = seq.lanes.iter().map(Lane::title).collect();
        assert_eq!(
            titles,
            [
                "listen 127.0.0.1:4000 (tcp)",
                "task 1 · 127.0.0.1:4000 (tcp#1)",
                "main · 127.0.0.1:5000 (tcp#1)",
            ]
        );
        use StepKind::*;
        assert_eq!(
            kinds(&seq),
            [
                (Listen, 0, None),
                (Accept, 1, Some(0)),
                (Connect, 2, Some(0)),
                (Message, 1, Some(2)),
                (Message, 1, Some(2)),
                (Close, 1, None),
                (Eof, 2, None),
            ]
        );
        let (thank, you) = (&seq.steps[3], &seq.steps[4]);
        assert_eq!(
            (thank.event, &thank.recv[..], thank.len),
            (Some(3), &[5][..], 6)
        );
        assert_eq!(thank.received_at, Some(Duration::from_millis(6)));
        // "you" came in two recvs: received when the second one came.
        assert_eq!((you.event, &you.recv[..]), (Some(4), &[5, 7][..]));
        assert_eq!(you.received_at, Some(Duration::from_millis(8)));
        assert_eq!(seq.failure, None);
    }

    #[test]
    fn a_peer_outside_is_one_lane_per_address() {
        use EventKind as K;
        let t = Transport::Tcp;
        let svc = "192.0.2.7:25";
        let events = vec![
            ev(1, "main", K::Connect, Some(1), t, Some(CLI), Some(svc), b""),
            ev(
                2,
                "main",
                K::Recv,
                Some(1),
                t,
                Some(CLI),
                Some(svc),
                b"220 hi\r\n",
            ),
            ev(
                3,
                "main",
                K::Send,
                Some(1),
                t,
                Some(CLI),
                Some(svc),
                b"QUIT\r\n",
            ),
            ev(
                4,
                "main",
                K::Connect,
                Some(2),
                t,
                Some("127.0.0.1:5001"),
                Some(svc),
                b"",
            ),
            ev(
                5,
                "main",
                K::Close,
                Some(2),
                t,
                Some("127.0.0.1:5001"),
                Some(svc),
                b"",
            ),
        ];
        let seq = build(&events, None, Duration::ZERO);
        let kinds_of: Vec<_> = seq.lanes.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds_of,
            [LaneKind::End, LaneKind::End, LaneKind::Peer],
            "{:?}",
            seq.lanes
        );
        assert_eq!(seq.lanes[2].title(), "peer 192.0.2.7:25");
        use StepKind::*;
        assert_eq!(
            kinds(&seq),
            [
                (Connect, 0, Some(2)),
                (Message, 2, Some(0)),
                (Message, 0, Some(2)),
                (Connect, 1, Some(2)),
                (Close, 1, None),
            ]
        );
        // The greeting has no send event: only its recv.
        assert_eq!(seq.steps[1].event, None);
        assert_eq!(seq.steps[1].recv, [1]);
        assert_eq!(seq.steps[1].len, 8);
        assert_eq!((seq.steps[2].event, seq.steps[2].recv.len()), (Some(2), 0));
    }

    #[test]
    fn unix_socket_ends_are_lanes_by_their_names() {
        use EventKind as K;
        let t = Transport::Unix;
        let (srv, cli) = ("unix:/tmp/s.sock", "unix:/tmp/s.sock#client-1");
        let events = vec![
            ev(1, "main", K::Listen, None, t, Some(srv), None, b""),
            ev(2, "main", K::Connect, Some(1), t, Some(cli), Some(srv), b""),
            ev(
                3,
                "main",
                K::Send,
                Some(1),
                t,
                Some(cli),
                Some(srv),
                b"hello\n",
            ),
            ev(
                4,
                "task 1",
                K::Accept,
                Some(1),
                t,
                Some(srv),
                Some(cli),
                b"",
            ),
            ev(
                5,
                "task 1",
                K::Recv,
                Some(1),
                t,
                Some(srv),
                Some(cli),
                b"hello\n",
            ),
            ev(
                6,
                "task 1",
                K::Send,
                Some(1),
                t,
                Some(srv),
                Some(cli),
                b"HELLO\n",
            ),
            ev(
                7,
                "main",
                K::Recv,
                Some(1),
                t,
                Some(cli),
                Some(srv),
                b"HELLO\n",
            ),
        ];
        let seq = build(&events, None, Duration::ZERO);
        let titles: Vec<_> = seq.lanes.iter().map(Lane::title).collect();
        assert_eq!(
            titles,
            [
                "listen unix:/tmp/s.sock (unix)",
                "main · unix:/tmp/s.sock#client-1 (unix#1)",
                "task 1 · unix:/tmp/s.sock (unix#1)",
            ]
        );
        use StepKind::*;
        assert_eq!(
            kinds(&seq),
            [
                (Listen, 0, None),
                (Connect, 1, Some(0)),
                (Message, 1, Some(2)),
                (Accept, 2, Some(0)),
                (Message, 2, Some(1)),
            ]
        );
        assert_eq!(seq.steps[2].recv, [4]);
        assert_eq!(seq.steps[4].recv, [6]);
    }

    #[test]
    fn a_process_is_a_peer_lane_its_pipes_talk_to() {
        use EventKind as K;
        let t = Transport::Process;
        let (stdio, stderr, child) = ("pipe:stdio", "pipe:stderr", "process:cat[42]");
        let events = vec![
            ev(
                1,
                "main",
                K::Connect,
                Some(1),
                t,
                Some(stdio),
                Some(child),
                b"",
            ),
            ev(
                2,
                "main",
                K::Connect,
                Some(2),
                t,
                Some(stderr),
                Some(child),
                b"",
            ),
            ev(
                3,
                "main",
                K::Send,
                Some(1),
                t,
                Some(stdio),
                Some(child),
                b"hi\n",
            ),
            ev(
                4,
                "main",
                K::Recv,
                Some(1),
                t,
                Some(stdio),
                Some(child),
                b"hi\n",
            ),
            ev(
                5,
                "main",
                K::Recv,
                Some(2),
                t,
                Some(stderr),
                Some(child),
                b"oops\n",
            ),
        ];
        let seq = build(&events, None, Duration::ZERO);
        let titles: Vec<_> = seq.lanes.iter().map(Lane::title).collect();
        assert_eq!(
            titles,
            [
                "main · pipe:stdio (process#1)",
                "main · pipe:stderr (process#2)",
                "peer process:cat[42]",
            ]
        );
        use StepKind::*;
        assert_eq!(
            kinds(&seq),
            [
                (Connect, 0, Some(2)),
                (Connect, 1, Some(2)),
                (Message, 0, Some(2)),
                (Message, 2, Some(0)),
                (Message, 2, Some(1)),
            ]
        );
    }

    #[test]
    fn udp_pairs_datagrams_by_address_and_content() {
        use EventKind as K;
        let t = Transport::Udp;
        let (a, b) = ("127.0.0.1:7000", "127.0.0.1:7001");
        let out = "198.51.100.1:53";
        let events = vec![
            ev(1, "main", K::Listen, Some(1), t, Some(a), None, b""),
            ev(2, "main", K::Listen, Some(2), t, Some(b), Some(a), b""),
            ev(3, "main", K::Send, Some(2), t, Some(b), Some(a), b"one"),
            ev(4, "main", K::Send, Some(2), t, Some(b), Some(a), b"two"),
            // The first datagram was lost: "two" is the one received.
            ev(5, "task 1", K::Recv, Some(1), t, Some(a), Some(b), b"two"),
            ev(6, "task 1", K::Send, Some(1), t, Some(a), Some(out), b"q"),
            ev(
                7,
                "task 1",
                K::Recv,
                Some(1),
                t,
                Some(a),
                Some(out),
                b"answer",
            ),
        ];
        let seq = build(&events, None, Duration::ZERO);
        let kinds_of: Vec<_> = seq.lanes.iter().map(|l| (l.kind, l.conn)).collect();
        assert_eq!(
            kinds_of,
            [
                (LaneKind::Socket, Some(1)),
                (LaneKind::Socket, Some(2)),
                (LaneKind::Peer, None)
            ]
        );
        use StepKind::*;
        assert_eq!(
            kinds(&seq),
            [
                (Listen, 0, None),
                (Listen, 1, None),
                (Message, 1, Some(0)),
                (Message, 1, Some(0)),
                (Message, 0, Some(2)),
                (Message, 2, Some(0)),
            ]
        );
        assert_eq!(seq.steps[2].recv, Vec::<usize>::new(), "lost");
        assert_eq!(seq.steps[3].recv, [4]);
        assert_eq!(seq.steps[5].recv, [6]);
        assert_eq!(seq.steps[5].event, None);
    }

    /// WebSocket messages pair one send with one recv, by content, even where a byte stream
    /// would have run them together; a ping's automatic pong is no one's send.
    #[test]
    fn websocket_messages_pair_one_to_one() {
        use EventKind as K;
        let t = Transport::Ws;
        let (srv, cli) = (Some(SRV), Some(CLI));
        let events = vec![
            ev(1, "main", K::Listen, None, t, srv, None, b""),
            ev(2, "task 1", K::Accept, Some(1), t, srv, cli, b""),
            ev(3, "main", K::Connect, Some(1), t, cli, srv, b""),
            ev(4, "main", K::Send, Some(1), t, cli, srv, b"ab"),
            ev(5, "main", K::Send, Some(1), t, cli, srv, b"c"),
            ev(6, "task 1", K::Recv, Some(1), t, srv, cli, b"ab"),
            ev(7, "task 1", K::Recv, Some(1), t, srv, cli, b"c"),
            ev(8, "main", K::Recv, Some(1), t, cli, srv, b"pong"),
        ];
        let seq = build(&events, None, Duration::ZERO);
        let (ab, c) = (&seq.steps[3], &seq.steps[4]);
        assert_eq!((ab.event, &ab.recv[..]), (Some(3), &[5][..]));
        assert_eq!((c.event, &c.recv[..]), (Some(4), &[6][..]));
        assert_eq!(
            seq.steps.last().map(|s| s.event),
            Some(None),
            "the pong is unpaired"
        );
    }

    fn diag(code: Code, conn: Option<u32>, addr: Option<&str>, line: Option<usize>) -> Diag {
        let mut d = Diag::plain(code, "it broke", "s.rhai");
        d.on.conn = conn;
        d.on.addr = addr.map(str::to_owned);
        d.line = line;
        d
    }

    #[test]
    fn a_socket_failure_is_its_error_event_on_its_lane() {
        let mut events = greeting();
        events.truncate(6);
        let mut timeout = ev(
            20,
            "main",
            EventKind::Error,
            Some(1),
            Transport::Tcp,
            Some(CLI),
            Some(SRV),
            b"",
        );
        timeout.note = Some("recv timed out".into());
        events.push(timeout.clone());
        // A caught error earlier stays an error mark.
        events.insert(
            1,
            Event {
                at: Duration::from_millis(1),
                ..timeout
            },
        );
        let d = diag(Code::Kind(ErrorKind::Timeout), Some(1), None, None);
        let seq = build(&events, Some(Some(&d)), Duration::from_millis(30));
        let failure = seq.failure.map(|f| &seq.steps[f]);
        assert_eq!(
            failure.map(|s| (s.kind, s.event, s.at)),
            Some((StepKind::Failure, Some(7), Duration::from_millis(20)))
        );
        let lane = failure.map(|s| &seq.lanes[s.lane]);
        assert_eq!(lane.and_then(|l| l.addr.as_deref()), Some(CLI));
        assert_eq!(seq.failure, Some(seq.steps.len() - 1));
        assert!(seq.steps.iter().any(|s| s.kind == StepKind::Error));
    }

    #[test]
    fn a_refused_connect_fails_on_its_task_toward_the_peer() {
        let mut refused = ev(
            2,
            "main",
            EventKind::Error,
            None,
            Transport::Tcp,
            None,
            Some("127.0.0.1:9"),
            b"",
        );
        refused.note = Some("connection refused".into());
        let d = diag(
            Code::Kind(ErrorKind::ConnectionRefused),
            None,
            Some("127.0.0.1:9"),
            Some(2),
        );
        let seq = build(&[refused], Some(Some(&d)), Duration::from_millis(3));
        let titles: Vec<_> = seq.lanes.iter().map(Lane::title).collect();
        assert_eq!(titles, ["main", "peer 127.0.0.1:9"]);
        assert_eq!(kinds(&seq), [(StepKind::Failure, 0, Some(1))]);
        assert_eq!(seq.failure, Some(0));
    }

    #[test]
    fn an_assertion_fails_at_the_end_on_its_lines_lane_else_the_scripts() {
        let events = greeting();
        // Line 6 is the first recv's (see `ev`): the failure sits on the client's lane.
        let d = diag(Code::Assertion, None, None, Some(6));
        let seq = build(&events, Some(Some(&d)), Duration::from_millis(30));
        let last = seq.steps.last().map(|s| (s.kind, s.lane, s.event, s.at));
        assert_eq!(
            last,
            Some((StepKind::Failure, 2, None, Duration::from_millis(30)))
        );
        assert_eq!(seq.failure, Some(seq.steps.len() - 1));
        // A line with no event, or no diagnostic at all: the script's lane.
        for d in [Some(diag(Code::Assertion, None, None, Some(99))), None] {
            let seq = build(&events, Some(d.as_ref()), Duration::from_millis(1));
            let lane = seq.failure.map(|f| &seq.lanes[seq.steps[f].lane]);
            assert_eq!(lane.map(|l| l.kind), Some(LaneKind::Script));
            assert_eq!(
                seq.failure.map(|f| seq.steps[f].at),
                Some(Duration::from_millis(9)),
                "after the last event"
            );
        }
    }

    #[test]
    fn ten_thousand_connections_build_in_linear_time() {
        use EventKind as K;
        let t = Transport::Tcp;
        let mut events = vec![ev(0, "main", K::Listen, None, t, Some(SRV), None, b"")];
        for c in 0..10_000u32 {
            let cli = format!("127.0.0.1:{}", 10_000 + c);
            let ms = u64::from(c);
            let (s, p) = (Some(SRV), Some(cli.as_str()));
            events.push(ev(ms, "main", K::Connect, Some(c), t, p, s, b""));
            events.push(ev(ms, "task 1", K::Accept, Some(c), t, s, p, b""));
            events.push(ev(ms, "task 1", K::Send, Some(c), t, s, p, b"hi"));
            events.push(ev(ms, "main", K::Recv, Some(c), t, p, s, b"hi"));
            // And a peer outside, sent to from each.
            events.push(ev(
                ms,
                "main",
                K::Send,
                Some(c),
                t,
                p,
                Some("192.0.2.1:1"),
                b"x",
            ));
        }
        let started = std::time::Instant::now();
        let seq = build(&events, None, Duration::ZERO);
        let took = started.elapsed();
        assert_eq!(seq.lanes.len(), 1 + 20_000 + 1);
        assert_eq!(seq.steps.len(), 1 + 4 * 10_000);
        assert!(seq
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Message)
            .all(|s| s.to.is_some()));
        // A quadratic lookup takes minutes here; the linear build well under a second, even
        // unoptimized.
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn an_empty_transcript_is_an_empty_sequence() {
        assert_eq!(build(&[], None, Duration::ZERO), Sequence::default());
    }
}
