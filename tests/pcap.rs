//! `--pcap`: real scenarios write captures that the real `tshark` (Debian's package, installed
//! by `scripts/test`) reads as TCP streams and UDP datagrams. Following each TCP stream gives
//! exactly the bytes the scenario sent, in order, both ways.

use std::path::Path;
use std::process::Command;

use crate::harness::{python, python_listener, text, Dir, Proc, Test, WALL};

/// `tshark` with these arguments, to the end (bounded); its stdout.
fn tshark(args: &[&str]) -> String {
    let mut cmd = Command::new("tshark");
    cmd.args(args);
    let out = Proc::start("tshark (run `scripts/test` to install it)", cmd, WALL).wait();
    assert_eq!(out.code, 0, "tshark {args:?}: {}", out.stderr);
    out.stdout
}

/// The TCP stream `n` of `file` as `tshark -z follow,tcp,raw` gives it: the bytes from the
/// end that sent the first packet (the client), and from the other.
fn follow(file: &Path, n: usize) -> (Vec<u8>, Vec<u8>) {
    let out = tshark(&["-r", text(file), "-q", "-z", &format!("follow,tcp,raw,{n}")]);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let body = out
        .split_once("Node 1: ")
        .and_then(|(_, rest)| rest.split_once('\n'))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no stream {n}:\n{out}"));
    for line in body.lines().take_while(|l| !l.starts_with("====")) {
        // The second node's data is indented by a tab.
        let (to, hex) = match line.strip_prefix('\t') {
            Some(hex) => (&mut second, hex),
            None => (&mut first, line),
        };
        to.extend(unhex(hex.trim()));
    }
    (first, second)
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {hex}"))
}

/// One line per packet: these fields, tab-separated.
fn fields(file: &Path, filter: &str, names: &[&str]) -> Vec<String> {
    let mut args = vec!["-r", text(file), "-Y", filter, "-T", "fields"];
    for name in names {
        args.extend(["-e", name]);
    }
    tshark(&args).lines().map(str::to_owned).collect()
}

fn stream_count(file: &Path) -> usize {
    let mut streams = fields(file, "tcp", &["tcp.stream"]);
    streams.sort();
    streams.dedup();
    streams.len()
}

const BOTH_ENDS: &str = r#"
let server = listen("127.0.0.1:0");
let t = spawn(|| {
    let c = server.accept();
    c.send_line(c.recv_line().to_upper());
    c.send(c.recv_exact_bytes(256));
    let big = c.recv_exact(131072);
    c.send_line(`${big.len()}`);
    c.close();
});
let conn = connect(server.addr);
conn.send_line("hello");
assert_eq(conn.recv_line(), "HELLO");
let b = blob(256);
for i in 0..256 { b[i] = i; }
conn.send(b);
assert_eq(conn.recv_exact_bytes(256), b);
let s = "x";
for i in 0..17 { s += s; }
conn.send(s);
assert_eq(conn.recv_line(), "131072");
conn.close();
t.join();
"#;

#[test]
fn both_ends_in_the_scenario_make_one_stream_with_every_byte_once() {
    let dir = Dir::new("pcap-both");
    let file = dir.join("run.pcapng");
    Test::new()
        .script(BOTH_ENDS)
        .args(&["--pcap", text(&file)])
        .run()
        .code(0);
    assert_eq!(stream_count(&file), 1);
    let all_bytes: Vec<u8> = (0..=255).collect();
    let mut sent = b"hello\n".to_vec();
    sent.extend(&all_bytes);
    sent.extend(vec![b'x'; 131072]);
    let mut answered = b"HELLO\n".to_vec();
    answered.extend(&all_bytes);
    answered.extend(b"131072\n");
    let (client, server) = follow(&file, 0);
    assert_eq!(client.len(), sent.len());
    assert!(client == sent, "the client's bytes differ");
    assert_eq!(server, answered);
    // A handshake, then a FIN each way.
    let count = |filter: &str| fields(&file, filter, &["frame.number"]).len();
    assert_eq!(count("tcp.flags.syn == 1 && tcp.flags.ack == 0"), 1);
    assert_eq!(count("tcp.flags.syn == 1 && tcp.flags.ack == 1"), 1);
    let fins = fields(&file, "tcp.flags.fin == 1", &["tcp.srcport"]);
    assert_eq!(fins.len(), 2, "{fins:?}");
    // tshark found nothing wrong with the sequence numbers.
    let wrong = fields(
        &file,
        "tcp.analysis.flags && !tcp.analysis.window_update",
        &["frame.number"],
    );
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn a_peer_outside_is_one_end_of_its_stream_its_close_a_fin() {
    let mut peer = python_listener(
        "c, _ = s.accept()\nc.sendall(b'220 ready\\r\\n')\nf = c.makefile('rb')\n\
         while f.readline() != b'QUIT\\r\\n': pass\nc.sendall(b'221 bye\\r\\n')\nc.close()\n",
    );
    let port = peer.port().to_string();
    let dir = Dir::new("pcap-peer");
    let file = dir.join("run.pcapng");
    Test::new()
        .script(
            r#"
let conn = connect(`127.0.0.1:${port}`);
assert_eq(conn.recv_line(), "220 ready");
conn.send("EHLO sockscript\r\nQUIT\r\n");
assert_eq(conn.recv_all(), "221 bye\r\n");
conn.close();
"#,
        )
        .args(&["--var", &format!("port={port}"), "--pcap", text(&file)])
        .run()
        .code(0);
    peer.wait().code(0);
    let (client, server) = follow(&file, 0);
    assert_eq!(client, b"EHLO sockscript\r\nQUIT\r\n");
    assert_eq!(server, b"220 ready\r\n221 bye\r\n");
    let fins = fields(&file, "tcp.flags.fin == 1", &["tcp.srcport"]);
    assert_eq!(fins.len(), 2, "the peer's FIN (our eof) and ours: {fins:?}");
    assert_eq!(fins[0], port, "the peer closed first");
}

#[test]
fn a_reset_is_a_rst_from_the_peer() {
    let mut peer = python_listener(
        "import struct\nc, _ = s.accept()\nc.makefile('rb').readline()\n\
         c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\nc.close()\n",
    );
    let port = peer.port().to_string();
    let dir = Dir::new("pcap-rst");
    let file = dir.join("run.pcapng");
    Test::new()
        .script(
            r#"
let conn = connect(`127.0.0.1:${port}`);
conn.send_line("hi");
let err = assert_err(|| conn.recv_line(), "connection_reset");
"#,
        )
        .args(&["--var", &format!("port={port}"), "--pcap", text(&file)])
        .run()
        .code(0);
    peer.wait().code(0);
    let rst = fields(&file, "tcp.flags.reset == 1", &["tcp.srcport"]);
    assert_eq!(rst, [port]);
    assert_eq!(follow(&file, 0).0, b"hi\n");
}

#[test]
fn udp_datagrams_are_sent_once_whoever_received_them() {
    let mut echo = python(
        "from peer import udp\nu = udp()\nd, a = u.recvfrom(100)\nu.sendto(b'echo: ' + d, a)\n",
    );
    let port = echo.port().to_string();
    let dir = Dir::new("pcap-udp");
    let file = dir.join("run.pcapng");
    Test::new()
        .script(
            r#"
let a = udp("127.0.0.1:0");
let b = udp("127.0.0.1:0");
a.send_to("ping", b.addr);
assert_eq(b.recv_from().data, "ping");
b.send_to("pong", a.addr);
assert_eq(a.recv_from().data, "pong");
a.send_to("out", `127.0.0.1:${port}`);
assert_eq(a.recv_from().data, "echo: out");
"#,
        )
        .args(&["--var", &format!("port={port}"), "--pcap", text(&file)])
        .run()
        .code(0);
    echo.wait().code(0);
    let datagrams = fields(&file, "udp", &["udp.payload"]);
    let texts: Vec<String> = datagrams
        .iter()
        .map(|h| String::from_utf8_lossy(&unhex(h)).into_owned())
        .collect();
    assert_eq!(texts, ["ping", "pong", "out", "echo: out"]);
    let ports = fields(&file, "udp", &["udp.srcport", "udp.dstport"]);
    assert!(ports[2].ends_with(&format!("\t{port}")), "{ports:?}");
    assert!(ports[3].starts_with(&format!("{port}\t")), "{ports:?}");
}

#[test]
fn unix_sockets_get_loopback_addresses_and_the_file_says_which() {
    let dir = Dir::new("pcap-unix");
    let file = dir.join("run.pcapng");
    Test::new()
        .script(
            r#"
let server = listen("unix:app.sock");
let t = spawn(|| { let c = server.accept(); c.send_line(c.recv_line().to_upper()); c.close(); });
let conn = connect("unix:app.sock");
conn.send_line("hi");
assert_eq(conn.recv_line(), "HI");
t.join();
"#,
        )
        .args(&["--pcap", text(&file)])
        .run()
        .code(0);
    assert_eq!(follow(&file, 0), (b"hi\n".to_vec(), b"HI\n".to_vec()));
    let hosts = fields(
        &file,
        "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        &["ip.src", "ip.dst"],
    );
    assert_eq!(hosts, ["127.1.0.1\t127.1.0.2"]);
    let mut cmd = Command::new("capinfos");
    cmd.arg(&file);
    let info = Proc::start("capinfos", cmd, WALL).wait().stdout;
    assert!(
        info.contains("127.1.0.2:40000 = unix:app.sock")
            && info.contains("= unix:app.sock#client-1"),
        "{info}"
    );
}

#[test]
fn tls_is_its_plaintext() {
    let dir = Dir::new("pcap-tls");
    let file = dir.join("run.pcapng");
    Test::new()
        .script(
            r#"
let server = listen("127.0.0.1:0", #{tls: "self-signed"});
let t = spawn(|| { let c = server.accept(); c.send_line("secret hello"); c.close(); });
let conn = connect(server.addr, #{tls: #{ca: server.cert_pem}});
assert_eq(conn.recv_line(), "secret hello");
t.join();
"#,
        )
        .args(&["--pcap", text(&file)])
        .run()
        .code(0);
    assert_eq!(follow(&file, 0), (Vec::new(), b"secret hello\n".to_vec()));
}

#[test]
fn bytes_past_the_capture_limit_are_a_gap_and_a_comment_never_made_up() {
    let dir = Dir::new("pcap-limit");
    let file = dir.join("run.pcapng");
    Test::new()
        .script(
            r#"
let server = listen("127.0.0.1:0");
let t = spawn(|| {
    let c = server.accept();
    let a = "a"; for i in 0..11 { a += a; }
    let b = "b"; for i in 0..11 { b += b; }
    c.send(a); c.send(b); c.close();
});
let conn = connect(server.addr);
assert_eq(conn.recv_all().len(), 4096);
t.join();
"#,
        )
        .args(&["--limit", "capture=3000", "--pcap", text(&file)])
        .run()
        .code(0);
    let (_, server) = follow(&file, 0);
    let mut kept = vec![b'a'; 2048];
    kept.extend(vec![b'b'; 1024]);
    assert!(server == kept, "{} bytes", server.len());
    let comments = fields(
        &file,
        "frame.comment",
        &["tcp.seq", "tcp.len", "frame.comment"],
    );
    assert_eq!(
        comments,
        [
            "2049\t1024\t2048 bytes; the transcript kept the first 1024 (past `--limit capture`): \
          the other 1024 are not in this capture"
        ]
    );
    // The FIN comes after the whole payload, gap included.
    let fin = fields(&file, "tcp.flags.fin == 1", &["tcp.seq"]);
    assert_eq!(fin, ["4097"]);
}

#[test]
fn test_mode_writes_a_file_per_scenario_in_a_directory() {
    let dir = Dir::new("pcap-suite");
    let out = dir.join("captures");
    Test::new()
        .write("suite/one.rhai", BOTH_ENDS)
        .write("suite/deeper/two.rhai", "let s = listen(\"127.0.0.1:0\");")
        .path("suite")
        .args(&["--pcap", text(&out)])
        .run()
        .code(0);
    let one = out.join("one.pcapng");
    let two = out.join("deeper/two.pcapng");
    assert_eq!(stream_count(&one), 1);
    assert!(two.is_file(), "{}", two.display());
    assert!(fields(&two, "frame", &["frame.number"]).is_empty());
    // The JSON report of the same run keeps its 1 KiB previews.
    let json = dir.join("r.json");
    Test::new()
        .write("suite/one.rhai", BOTH_ENDS)
        .path("suite")
        .args(&["--pcap", text(&out), "--report-json", text(&json)])
        .run()
        .code(0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
            .unwrap_or_default();
    let longest = report["scenarios"][0]["transcript"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["data_hex"].as_str())
                .map(|h| h.len() / 2)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    assert_eq!(longest, 1024, "{report}");
}

#[test]
fn a_capture_that_cannot_be_written_fails_the_run_once_not_per_scenario() {
    let dir = Dir::new("pcap-unwritable");
    let taken = dir.join("a-file");
    std::fs::write(&taken, "not a directory").unwrap_or_else(|e| panic!("{e}"));
    let out = Test::new()
        .write("suite/one.rhai", "let x = 1;")
        .write("suite/two.rhai", "let y = 2;")
        .path("suite")
        .args(&["--pcap", text(&taken)])
        .run();
    out.code(2);
    assert_eq!(
        out.stderr.matches("error: cannot write the report").count(),
        1,
        "{}",
        out.stderr
    );
}
