//! `--pcap`: a scenario's conversations as a pcapng capture that Wireshark and tshark open as
//! real TCP streams and UDP datagrams. Nothing was captured from the wire: the packets are
//! synthesized from the transcript, each TCP connection with a handshake, sequence and
//! acknowledgement numbers, FIN for a shutdown or close (an eof is the peer's FIN) and RST for
//! a reset, at the transcript's times. TLS is shown as its plaintext (the transcript records
//! what the script sent and read, not the records); Unix sockets, which have no IP addresses,
//! are given loopback ones (`127.1.x.y`, port 40000), listed in the file's comment. A
//! `proxy(...)`'s relayed connection is two TCP connections (client to proxy, proxy to
//! upstream), written like any other. A process's
//! pipes (`exec`, transport `process`) are left out: no packet of any network ever carried
//! them, and a made-up TCP stream would have Wireshark decode a program's output as whatever
//! protocol its stand-in port suggests; `--trace`, JSON and the sequence diagrams show them.
//!
//! WebSocket conversations (transport `ws`) are left out, and the file's comment says how many:
//! the transcript holds their messages, not the frames on the wire (headers, masks, the HTTP
//! upgrade), and writing the payloads as TCP data would show Wireshark a stream its WebSocket
//! dissector cannot read. `--trace` and the JSON report show every message.
//!
//! Each byte appears once: when the scenario holds both ends of a connection, its sends are
//! the data (their recvs are the same bytes); toward a peer outside, sends one way and recvs
//! the other. A payload the transcript did not keep whole (past `--limit capture`) is written
//! as far as it was kept, its sequence numbers still count the whole (Wireshark shows the gap),
//! and the packet's comment says how much is missing: bytes are never made up. Run mode
//! writes one file; test mode a directory with one file per scenario ([`super::Render`]).
//! Packet headers come from `etherparse`, the file format from `pcap-file`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use etherparse::{PacketBuilder, TcpHeader};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness};

use crate::outcome::Outcome;
use crate::transcript::{Event, EventKind, Transport};

/// `--pcap`.
pub const FORMAT: super::Format = super::Format {
    name: "pcap",
    flag: "--pcap",
    render: super::Render::Scenario {
        render,
        ext: "pcapng",
    },
    suite: false,
    whole_payloads: false,
};

/// The most payload one synthesized TCP segment carries: well under IP's 64 KiB.
const SEGMENT: usize = 32 * 1024;
/// The port every Unix socket's stand-in address uses.
const UNIX_PORT: u16 = 40000;

/// One packet, before it is written.
struct Packet {
    at: Duration,
    frame: Vec<u8>,
    comment: Option<String>,
}

/// The scenario's capture as a pcapng file.
pub fn render(o: &Outcome) -> Vec<u8> {
    let mut capture = Capture {
        packets: Vec::new(),
        addrs: Addrs::default(),
        notes: Vec::new(),
    };
    let mut order: Vec<usize> = (0..o.transcript.len()).collect();
    order.sort_by_key(|&i| (o.transcript[i].at, i));
    let events: Vec<&Event> = order.iter().map(|&i| &o.transcript[i]).collect();
    capture.streams(&events);
    capture.datagrams(&events);
    // Stable: packets of one time keep the order they were made in.
    capture.packets.sort_by_key(|p| p.at);
    capture.write(o)
}

struct Capture {
    packets: Vec<Packet>,
    addrs: Addrs,
    /// What the file's comment says besides the mapping of Unix sockets.
    notes: Vec<String>,
}

/// Addresses as the transcript names them, made socket addresses: IP ones as they are, the
/// rest (Unix sockets) given loopback stand-ins.
#[derive(Default)]
struct Addrs {
    mapped: BTreeMap<Arc<str>, SocketAddr>,
}

impl Addrs {
    fn get(&mut self, text: &Arc<str>) -> SocketAddr {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return addr;
        }
        let n = self.mapped.len() as u32 + 1;
        *self.mapped.entry(text.clone()).or_insert_with(|| {
            let ip = Ipv4Addr::new(127, 1, (n >> 8) as u8, n as u8);
            SocketAddr::new(IpAddr::V4(ip), UNIX_PORT)
        })
    }
}

/// One direction of a TCP connection: its next sequence number, whether it sent its FIN.
#[derive(Clone, Copy)]
struct Side {
    addr: SocketAddr,
    seq: u32,
    fin: bool,
}

/// What a TCP segment carries besides its payload.
#[derive(Clone, Copy, Default)]
struct Flags {
    syn: bool,
    fin: bool,
    rst: bool,
    psh: bool,
    ack: bool,
}

impl Capture {
    /// Every connection (TCP, TLS, Unix): a handshake, then its bytes and closes in time order.
    fn streams(&mut self, events: &[&Event]) {
        let mut conns: BTreeMap<u32, Vec<&Event>> = BTreeMap::new();
        let mut websockets = std::collections::BTreeSet::new();
        for e in events {
            if let (Some(conn), Some(Transport::Ws)) = (e.on.conn, e.on.transport) {
                websockets.insert(conn);
                continue;
            }
            if let (Some(conn), Some(t)) = (e.on.conn, e.on.transport) {
                let stream = !matches!(t, Transport::Udp | Transport::Process);
                if stream && e.local.is_some() && e.peer.is_some() {
                    conns.entry(conn).or_default().push(e);
                }
            }
        }
        for (conn, list) in conns {
            self.stream(conn, &list);
        }
        if !websockets.is_empty() {
            self.notes.push(format!(
                "{} WebSocket connection(s) are not in this capture: the transcript records \
                 their messages, not their frames (see --trace or --report-json).",
                websockets.len()
            ));
        }
    }

    fn stream(&mut self, conn: u32, events: &[&Event]) {
        // The client is the end that connected; else the peer of the end that accepted.
        let opening = events
            .iter()
            .find(|e| matches!(e.kind, EventKind::Connect | EventKind::Accept))
            .unwrap_or(&events[0]);
        let (Some(local), Some(peer)) = (&opening.local, &opening.peer) else {
            return;
        };
        let (client, server) = match opening.kind {
            EventKind::Accept => (peer.clone(), local.clone()),
            _ => (local.clone(), peer.clone()),
        };
        let both = events.iter().any(|e| e.local.as_ref() == Some(&client))
            && events.iter().any(|e| e.local.as_ref() == Some(&server));
        let isn = conn.wrapping_mul(0x0100_0193).wrapping_add(1);
        let mut sides = [
            Side {
                addr: self.addrs.get(&client),
                seq: isn,
                fin: false,
            },
            Side {
                addr: self.addrs.get(&server),
                seq: isn ^ 0x5a5a_0000,
                fin: false,
            },
        ];
        if sides[0].addr == sides[1].addr {
            return;
        }
        let t0 = opening.at;
        let syn = Flags {
            syn: true,
            ..Flags::default()
        };
        let mut comment = opening.on.transport.and_then(|t| match t {
            Transport::Tls => Some("tls: the plaintext, not the records".to_owned()),
            Transport::Unix => Some(format!("unix: {client} -> {server}")),
            _ => None,
        });
        self.segment(t0, &mut sides, 0, syn, b"", comment.take());
        let syn_ack = Flags { ack: true, ..syn };
        self.segment(t0, &mut sides, 1, syn_ack, b"", None);
        self.segment(t0, &mut sides, 0, ack(), b"", None);
        for e in events {
            // Which side the event's end is, and which side the bytes or FIN came from.
            let mine = usize::from(e.local.as_ref() != Some(&client));
            let theirs = 1 - mine;
            match e.kind {
                EventKind::Send => self.data(e, &mut sides, mine),
                EventKind::Recv if !both => self.data(e, &mut sides, theirs),
                EventKind::Shutdown | EventKind::Close => self.fin(e.at, &mut sides, mine),
                EventKind::Eof if !both => self.fin(e.at, &mut sides, theirs),
                EventKind::Error
                    if e.note
                        .as_deref()
                        .is_some_and(|n| n.contains("connection reset")) =>
                {
                    let rst = Flags { rst: true, ..ack() };
                    self.segment(e.at, &mut sides, theirs, rst, b"", None);
                }
                _ => {}
            }
        }
    }

    /// A send's or recv's bytes from side `from`, in segments; what was not kept is counted
    /// in the sequence numbers and said in the comment.
    fn data(&mut self, e: &Event, sides: &mut [Side; 2], from: usize) {
        let kept = &e.data[..];
        let missing = e.len.saturating_sub(kept.len());
        let flags = Flags { psh: true, ..ack() };
        let chunks: Vec<&[u8]> = kept.chunks(SEGMENT).collect();
        for (k, chunk) in chunks.iter().enumerate() {
            let last = k + 1 == chunks.len();
            let comment = (last && missing > 0).then(|| not_kept(e.len, kept.len()));
            self.segment(e.at, sides, from, flags, chunk, comment);
        }
        if kept.is_empty() && missing > 0 {
            let comment = Some(not_kept(e.len, 0));
            self.segment(e.at, sides, from, ack(), b"", comment);
        }
        sides[from].seq = sides[from].seq.wrapping_add(missing as u32);
    }

    /// Side `from` closes its direction, once; when both have, the last FIN is acknowledged.
    fn fin(&mut self, at: Duration, sides: &mut [Side; 2], from: usize) {
        if sides[from].fin {
            return;
        }
        let fin = Flags { fin: true, ..ack() };
        self.segment(at, sides, from, fin, b"", None);
        sides[from].fin = true;
        if sides[1 - from].fin {
            self.segment(at, sides, 1 - from, ack(), b"", None);
        }
    }

    /// One TCP segment from side `from`, acknowledging all the other side sent; SYN and FIN
    /// take a sequence number, as the payload's bytes do.
    fn segment(
        &mut self,
        at: Duration,
        sides: &mut [Side; 2],
        from: usize,
        flags: Flags,
        payload: &[u8],
        comment: Option<String>,
    ) {
        let (src, dst) = (sides[from], sides[1 - from]);
        let mut tcp = TcpHeader::new(src.addr.port(), dst.addr.port(), src.seq, 65535);
        tcp.syn = flags.syn;
        tcp.fin = flags.fin;
        tcp.rst = flags.rst;
        tcp.psh = flags.psh;
        tcp.ack = flags.ack;
        if flags.ack {
            tcp.acknowledgment_number = dst.seq;
        }
        let used = payload.len() as u32 + u32::from(flags.syn) + u32::from(flags.fin);
        sides[from].seq = src.seq.wrapping_add(used);
        let (ip_src, ip_dst) = (src.addr.ip(), dst.addr.ip());
        let b = ip(ip_src, ip_dst).tcp_header(tcp);
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        let frame = b.write(&mut frame, payload).map(|()| frame);
        self.push(at, frame, comment);
    }

    /// UDP: every send is a datagram, and every recv whose sender is not one of the
    /// scenario's sockets (whose send is there already).
    fn datagrams(&mut self, events: &[&Event]) {
        let ours: Vec<&Arc<str>> = events
            .iter()
            .filter(|e| e.on.transport == Some(Transport::Udp))
            .filter_map(|e| e.local.as_ref())
            .collect();
        for e in events {
            if e.on.transport != Some(Transport::Udp) {
                continue;
            }
            let (Some(local), Some(peer)) = (&e.local, &e.peer) else {
                continue;
            };
            let (from, to) = match e.kind {
                EventKind::Send => (local, peer),
                EventKind::Recv if !ours.contains(&peer) => (peer, local),
                _ => continue,
            };
            let (src, dst) = (self.addrs.get(from), self.addrs.get(to));
            let comment = (e.data.len() < e.len).then(|| not_kept(e.len, e.data.len()));
            let b = ip(src.ip(), dst.ip()).udp(src.port(), dst.port());
            let mut frame = Vec::with_capacity(b.size(e.data.len()));
            let frame = b.write(&mut frame, &e.data).map(|()| frame);
            self.push(e.at, frame, comment);
        }
    }

    fn push(
        &mut self,
        at: Duration,
        frame: Result<Vec<u8>, etherparse::err::packet::BuildWriteError>,
        comment: Option<String>,
    ) {
        match frame {
            Ok(frame) => self.packets.push(Packet { at, frame, comment }),
            // A datagram too large for one IP packet (past 64 KiB): said, not cut.
            Err(e) => self
                .notes
                .push(format!("a packet at {at:?} is not in this capture: {e}")),
        }
    }

    /// The file: a section whose comment says what this is, one Ethernet interface with
    /// nanosecond times, the packets.
    fn write(self, o: &Outcome) -> Vec<u8> {
        let mut comment = format!(
            "sockscript scenario {}: packets synthesized from its transcript (handshakes, \
             sequence numbers, FIN and RST made up to match), not captured from the wire. TLS \
             connections carry their plaintext.",
            o.name
        );
        if !self.addrs.mapped.is_empty() {
            comment.push_str(" Unix sockets are shown at loopback addresses:");
            for (text, addr) in &self.addrs.mapped {
                comment.push_str(&format!("\n  {addr} = {text}"));
            }
        }
        if !o.dropped.is_empty() {
            comment.push('\n');
            comment.push_str(&o.dropped.describe());
            comment.push_str(": those bytes are not in this capture.");
        }
        for note in &self.notes {
            comment.push('\n');
            comment.push_str(note);
        }
        let section = SectionHeaderBlock {
            endianness: Endianness::Little,
            major_version: 1,
            minor_version: 0,
            section_length: -1,
            options: vec![
                SectionHeaderOption::Comment(Cow::Owned(comment)),
                SectionHeaderOption::UserApplication(Cow::Borrowed(concat!(
                    "sockscript ",
                    env!("CARGO_PKG_VERSION")
                ))),
            ],
        };
        let start = o
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let written = PcapNgWriter::with_section_header(Vec::new(), section).and_then(|mut w| {
            w.write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: 0,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Borrowed("sockscript")),
                    InterfaceDescriptionOption::IfDescription(Cow::Borrowed(
                        "the scenario's transcript",
                    )),
                    // Nanoseconds, as pcap-file writes the times.
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            })?;
            for p in self.packets {
                w.write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: start + p.at,
                    original_len: p.frame.len() as u32,
                    data: Cow::Owned(p.frame),
                    options: p
                        .comment
                        .map(|c| vec![EnhancedPacketOption::Comment(Cow::Owned(c))])
                        .unwrap_or_default(),
                })?;
            }
            Ok(w.into_inner())
        });
        // Writing to a Vec fails only on a block too large for the format, which the
        // segment size rules out: an empty file then says something went wrong.
        written.unwrap_or_default()
    }
}

fn ack() -> Flags {
    Flags {
        ack: true,
        ..Flags::default()
    }
}

fn not_kept(len: usize, kept: usize) -> String {
    format!(
        "{len} bytes; the transcript kept the first {kept} (past `--limit capture`): the other \
         {} are not in this capture",
        len - kept
    )
}

/// The Ethernet and IP layers from `src` to `dst`: IPv4 when both are, else IPv6 (an IPv4
/// address mapped).
fn ip(src: IpAddr, dst: IpAddr) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    // Locally administered MAC addresses: nothing here came from a real interface.
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => eth.ipv4(a.octets(), b.octets(), 64),
        (a, b) => eth.ipv6(v6(a).octets(), v6(b).octets(), 64),
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{SlicedPacket, TransportSlice};
    use pcap_file::pcapng::{Block, PcapNgReader};

    use super::*;
    use crate::outcome::Status;

    /// (milliseconds, source port, flags as "SAFRP", seq, ack, payload) of each packet.
    fn packets(file: &[u8]) -> Vec<(u128, u16, String, u32, u32, Vec<u8>)> {
        let mut reader = PcapNgReader::new(file).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        while let Some(block) = reader.next_block() {
            let Ok(Block::EnhancedPacket(p)) = block else {
                continue;
            };
            let sliced = SlicedPacket::from_ethernet(&p.data).unwrap_or_else(|e| panic!("{e}"));
            let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
                panic!("not TCP")
            };
            let flags: String = [
                (tcp.syn(), 'S'),
                (tcp.ack(), 'A'),
                (tcp.fin(), 'F'),
                (tcp.rst(), 'R'),
                (tcp.psh(), 'P'),
            ]
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, c)| *c)
            .collect();
            out.push((
                p.timestamp.as_millis() % 1000,
                tcp.source_port(),
                flags,
                tcp.sequence_number(),
                tcp.acknowledgment_number(),
                tcp.payload().to_vec(),
            ));
        }
        out
    }

    #[test]
    fn a_process_s_pipes_are_no_packets() {
        let piped = |ms, kind, data| {
            let mut e = Event::for_test(ms, kind, "pipe:stdio", "process:cat[42]", data);
            e.on.transport = Some(Transport::Process);
            e
        };
        let o = Outcome {
            transcript: vec![
                piped(1, EventKind::Connect, b""),
                piped(2, EventKind::Send, b"hi\n"),
                piped(3, EventKind::Recv, b"hi\n"),
            ],
            ..Outcome::for_test("s.rhai", Status::Passed, None, Duration::ZERO)
        };
        assert!(packets(&render(&o)).is_empty());
    }

    #[test]
    fn a_peer_conversation_becomes_a_handshake_data_and_fins() {
        let (me, them) = ("127.0.0.1:5000", "127.0.0.1:25");
        let o = Outcome {
            transcript: vec![
                Event::for_test(1, EventKind::Connect, me, them, b""),
                Event::for_test(2, EventKind::Recv, me, them, b"220\r\n"),
                Event::for_test(3, EventKind::Send, me, them, b"QUIT\r\n"),
                Event::for_test(4, EventKind::Eof, me, them, b""),
                Event::for_test(5, EventKind::Close, me, them, b""),
            ],
            ..Outcome::for_test("s.rhai", Status::Passed, None, Duration::ZERO)
        };
        let isn = 1u32.wrapping_mul(0x0100_0193).wrapping_add(1);
        let peer_isn = isn ^ 0x5a5a_0000;
        let seen = packets(&render(&o));
        let expected = [
            (1, 5000, "S", isn, 0, &b""[..]),
            (1, 25, "SA", peer_isn, isn + 1, b""),
            (1, 5000, "A", isn + 1, peer_isn + 1, b""),
            (2, 25, "AP", peer_isn + 1, isn + 1, b"220\r\n"),
            (3, 5000, "AP", isn + 1, peer_isn + 6, b"QUIT\r\n"),
            (4, 25, "AF", peer_isn + 6, isn + 7, b""),
            (5, 5000, "AF", isn + 7, peer_isn + 7, b""),
            (5, 25, "A", peer_isn + 7, isn + 8, b""),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|&(ms, port, flags, seq, ack, data)| {
                (ms, port, flags.to_owned(), seq, ack, data.to_vec())
            })
            .collect();
        assert_eq!(seen, expected);
    }

    /// WebSocket messages are not made into TCP data: no packets, and the file says so.
    #[test]
    fn websocket_conversations_are_left_out_and_said_so() {
        let (me, them) = ("127.0.0.1:5000", "127.0.0.1:8080");
        let ws = |ms, kind, data| {
            let mut e = Event::for_test(ms, kind, me, them, data);
            e.on.transport = Some(Transport::Ws);
            e
        };
        let o = Outcome {
            transcript: vec![
                ws(1, EventKind::Connect, b""),
                ws(2, EventKind::Send, b"hello"),
                ws(3, EventKind::Recv, b"hello"),
            ],
            ..Outcome::for_test("s.rhai", Status::Passed, None, Duration::ZERO)
        };
        let file = render(&o);
        assert_eq!(packets(&file), []);
        let text = String::from_utf8_lossy(&file);
        assert!(
            text.contains("1 WebSocket connection(s) are not in this capture"),
            "{text}"
        );
    }
}
