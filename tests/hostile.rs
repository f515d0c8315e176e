//! Hostile peers: Python servers on loopback that send garbage, reset, half-close, never read,
//! trickle, or close in the middle of a large send. Each case is a scenario run through the
//! binary; the test asserts the exit code, the error kind and the line of the call in the
//! diagnostic, and a bound on the wall time. Also Ctrl-C and SIGTERM: a blocked run stops with
//! exit code 130 within 1.5 s and still writes its report.
//!
//! Every peer prints its port as its readiness signal; the ones that must outlive the scenario
//! wait for EOF on stdin, which the test closes when it is done with them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::harness::{python, root, temp_dir, Output, Proc, Test};

/// A Python server that accepts one client as `c` (`peer.accept_one`); the body follows at the
/// top level.
const ACCEPT_ONE: &str = r#"
import random, socket, struct, sys, time
from peer import accept_one
c = accept_one()
"#;

fn peer(body: &str) -> Proc {
    python(&format!("{ACCEPT_ONE}{body}"))
}

/// Run `source` as `script.rhai` with `port` as a variable and these options.
fn scenario(port: u16, args: &[&str], source: &str) -> Output {
    Test::new()
        .args(&["--var", &format!("port={port}")])
        .args(args)
        .script(source)
        .wall(Duration::from_secs(15))
        .run()
}

/// The diagnostic points at `line` of `script.rhai` and names `kind`.
#[track_caller]
fn fails_at(out: &Output, line: usize, kind: &str) {
    out.code(4)
        .stderr_has(&format!("[script.rhai:{line}:"))
        .stderr_has(&format!("`{kind}`"));
    no_panic(out);
    assert!(
        documented_kinds().contains(&kind.to_owned()),
        "`{kind}` is not in the README's table of error kinds"
    );
}

/// The diagnostic's message says `text`, however the terminal width wrapped it.
#[track_caller]
fn says(out: &Output, text: &str) {
    let wrap = Regex::new(r"\s*\n\s*│?\s*").unwrap_or_else(|e| panic!("{e}"));
    let flat = wrap.replace_all(&out.stderr, " ");
    assert!(
        flat.contains(text),
        "the diagnostic does not say {text:?}:\n{}",
        out.stderr
    );
}

#[track_caller]
fn no_panic(out: &Output) {
    assert!(
        !out.stderr.contains("panicked"),
        "sockscript panicked:\n{}",
        out.stderr
    );
}

/// The error kinds of the README's `| kind | when |` table.
fn documented_kinds() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md"))
        .unwrap_or_else(|e| panic!("cannot read README.md: {e}"));
    let row = Regex::new(r"^\| `([a-z_]+)` \|").unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<String> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| kind | when |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| Some(row.captures(l)?[1].to_owned()))
        .collect();
    assert!(kinds.len() > 10, "the README's kind table was not found");
    kinds
}

#[test]
fn random_bytes_without_a_newline_make_recv_line_too_long() {
    let mut peer = peer(
        r#"
r = random.Random(7)
c.sendall(bytes(r.choice([b for b in range(256) if b != 10]) for _ in range(20000)))
sys.stdin.read()
"#,
    );
    let port = peer.port();
    let out = scenario(
        port,
        &["--limit", "line=1024"],
        r#"
let conn = connect(`127.0.0.1:${port}`);
conn.timeout = "3s";
let line = conn.recv_line();
"#,
    );
    fails_at(&out, 4, "too_long");
    says(
        &out,
        "bytes arrived without a line ending in \"\\n\" (the limit is 1024 bytes)",
    );
    out.stderr_has("not consumed")
        .faster_than(Duration::from_secs(3));
    peer.close_stdin();
    peer.wait();
}

#[test]
fn random_bytes_arrive_exactly_after_a_recv_line_gave_up() {
    // Every byte value but `\n`, shuffled, then more random ones: a text read that gives up
    // with `too_long` must leave them all for `recv_exact_bytes`.
    let mut peer = peer(
        r#"
r = random.Random(11)
values = [b for b in range(256) if b != 10]
r.shuffle(values)
data = bytes(values) + bytes(r.choice(values) for _ in range(5745))
c.sendall(data)
print(data.hex())
sys.stdin.read()
"#,
    );
    let port = peer.port();
    let out = scenario(
        port,
        &["--limit", "line=1024"],
        r#"
let conn = connect(`127.0.0.1:${port}`);
conn.timeout = "3s";
let err = assert_err(|| conn.recv_line(), "too_long");
print(err.kind);
print(conn.recv_exact_bytes(1000).to_hex());
print(conn.recv_exact_bytes(5000).to_hex());
"#,
    );
    out.code(0).faster_than(Duration::from_secs(3));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(lines[0], "too_long");
    assert_eq!(format!("{}{}", lines[1], lines[2]), peer.line());
    peer.close_stdin();
    peer.wait();
}

/// Sends a line and a partial one, waits for the client's answer, then resets (SO_LINGER 0).
const RESETTING_PEER: &str = r#"
c.sendall(b"hello\npartial")
c.recv(100)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
sys.stdin.read()
"#;

#[test]
fn a_reset_mid_stream_is_connection_reset_at_the_next_read() {
    let mut peer = peer(RESETTING_PEER);
    let port = peer.port();
    let out = scenario(
        port,
        &[],
        r#"
let conn = connect(`127.0.0.1:${port}`);
conn.timeout = "3s";
print(conn.recv_line());
conn.send_line("ok");
let rest = conn.recv_line();
"#,
    );
    // Linux reports the reset to the first read after it (ECONNRESET), not as an end of stream.
    fails_at(&out, 6, "connection_reset");
    out.stdout("hello\n")
        .stderr_has("connection reset by peer")
        .stderr_has("received so far (7 bytes, not consumed)")
        .stderr_has("\"partial\"")
        .faster_than(Duration::from_secs(3));
    peer.close_stdin();
    peer.wait();
}

#[test]
fn after_a_reset_reads_say_eof_and_sends_say_connection_reset() {
    let mut peer = peer(RESETTING_PEER);
    let port = peer.port();
    let out = scenario(
        port,
        &[],
        r#"
let conn = connect(`127.0.0.1:${port}`);
conn.timeout = "3s";
assert_eq(conn.recv_line(), "hello");
conn.send_line("ok");
let e = assert_err(|| conn.recv_line(), "connection_reset");
assert_eq(e.received.as_string(), "partial");
// The socket reported its error once; from then on it reads as closed.
let e = assert_err(|| conn.recv_line(), "eof");
assert_eq(e.received.as_string(), "partial");
assert_eq(conn.recv_all(), "partial");
assert_eq(conn.recv(), "");
assert_err(|| conn.send("more"), "connection_reset");
print("done");
"#,
    );
    out.code(0)
        .stdout("done\n")
        .faster_than(Duration::from_secs(3));
    no_panic(&out);
    peer.close_stdin();
    peer.wait();
}

#[test]
fn a_half_closed_peer_is_read_to_the_end_and_still_hears_us() {
    let mut peer = peer(
        r#"
c.sendall(b"line one\r\nline two\ntail")
c.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = c.recv(4096)
    if not chunk:
        break
    data += chunk
print(repr(data))
"#,
    );
    let port = peer.port();
    let out = scenario(
        port,
        &[],
        r#"
let conn = connect(`127.0.0.1:${port}`);
conn.timeout = "3s";
print(conn.recv_line());
print(conn.recv_line());
assert_err(|| conn.recv_line(), "eof");
print(conn.recv_all());
assert_eq(conn.recv(), "");
assert_eq(conn.recv(), "");
assert_eq(conn.recv_bytes().len, 0);
conn.send_line("still here");
conn.send("bye");
conn.close();
"#,
    );
    out.code(0)
        .stdout("line one\nline two\ntail\n")
        .faster_than(Duration::from_secs(3));
    assert_eq!(peer.line(), r"b'still here\nbye'");
    peer.wait().code(0);
}

#[test]
fn a_peer_that_never_reads_makes_send_time_out_then_refuse() {
    let mut peer = peer("sys.stdin.read()\n");
    let port = peer.port();
    let out = scenario(
        port,
        &[],
        r#"
let conn = connect(`127.0.0.1:${port}`);
conn.timeout = "300ms";
let big = blob(1048576, 0x78);
let err = ();
for i in 0..200 {
    try { conn.send(big); } catch (e) { err = e; break; }
}
print(err.kind);
print(err.message);
conn.send("one more");
"#,
    );
    fails_at(&out, 11, "io");
    let stdout: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(stdout[0], "timeout", "{}", out.stdout);
    assert!(
        stdout[1].ends_with("timed out after 300ms"),
        "{}",
        out.stdout
    );
    says(
        &out,
        "an earlier send was cut off part-way, so what the peer has received is unknown; \
         open a new connection",
    );
    out.faster_than(Duration::from_secs(4));
    peer.close_stdin();
    peer.wait();
}

#[test]
fn a_trickling_peer_times_out_recv_line_showing_what_came() {
    let mut peer = peer(
        r#"
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for b in b"abcdefghijklmnopqrstuvwxyz\n":
    try:
        c.send(bytes([b]))
    except OSError:
        break
    time.sleep(0.1)
"#,
    );
    let port = peer.port();
    let out = scenario(
        port,
        &[],
        r#"
let conn = connect(`127.0.0.1:${port}`);
conn.timeout = "350ms";
let line = conn.recv_line();
"#,
    );
    fails_at(&out, 4, "timeout");
    out.stderr_has("recv_line from `127.0.0.1:")
        .stderr_has("timed out after 350ms")
        .faster_than(Duration::from_secs(3));
    assert!(
        out.elapsed >= Duration::from_millis(350),
        "{:?}",
        out.elapsed
    );
    let so_far = Regex::new(r#"received so far \((\d+) bytes, not consumed\):\s+"([a-z]*)""#)
        .unwrap_or_else(|e| panic!("{e}"));
    let caps = so_far
        .captures(&out.stderr)
        .unwrap_or_else(|| panic!("no bytes shown:\n{}", out.stderr));
    let n: usize = caps[1].parse().unwrap_or(0);
    // A byte every 100 ms for 350 ms: the first at once, then three or four more.
    assert!((2..=5).contains(&n), "{n} bytes:\n{}", out.stderr);
    assert_eq!(&caps[2], &"abcdefghijklmnopqrstuvwxyz"[..n]);
    peer.wait();
}

#[test]
fn a_peer_closing_during_a_large_send_is_connection_reset() {
    let mut peer = peer(
        r#"
got = 0
while got < 100000:
    got += len(c.recv(65536))
c.close()
print(got)
sys.stdin.read()
"#,
    );
    let port = peer.port();
    // A Blob holds a sixteenth of `--limit data` (rhai counts its bytes as array elements).
    let out = scenario(
        port,
        &["--limit", "data=512MiB"],
        r#"
let conn = connect(`127.0.0.1:${port}`);
conn.timeout = "5s";
conn.send(blob(32 * 1048576, 0x41));
"#,
    );
    // The peer closed with unread data, so its kernel answers with a reset: ECONNRESET or
    // EPIPE, both `connection_reset`.
    fails_at(&out, 4, "connection_reset");
    out.stderr_has("send to `127.0.0.1:")
        .faster_than(Duration::from_secs(4));
    let got: usize = peer.line().parse().unwrap_or(0);
    assert!(got >= 100_000, "{got}");
    peer.close_stdin();
    peer.wait();
}

/// Send `signal` (`INT`, `TERM`) to a running process.
fn kill(proc: &Proc, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &proc.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(status.success(), "kill -s {signal} failed");
}

/// Signal `proc`, then wait: it must exit 130 within 1.5 s of the signal.
fn interrupt(proc: &mut Proc, signal: &str) -> Output {
    let sent = Instant::now();
    kill(proc, signal);
    let out = proc.wait();
    let took = sent.elapsed();
    out.code(130);
    assert!(
        took < Duration::from_millis(1500),
        "exit {took:?} after SIG{signal}"
    );
    no_panic(&out);
    out
}

#[test]
fn ctrl_c_stops_a_run_blocked_in_accept() {
    for signal in ["INT", "TERM"] {
        let mut run = Test::new()
            .script(
                r#"
let server = listen("127.0.0.1:0");
print("ready");
server.accept();
"#,
            )
            .wall(Duration::from_secs(10))
            .spawn();
        assert_eq!(run.line(), "ready");
        let out = interrupt(&mut run, signal);
        // Run mode says one word, not where the script was.
        out.stderr("interrupted\n");
    }
}

/// A suite of three scenarios run one at a time: the first passes, the second blocks in
/// `accept` after telling a Python peer it is there, the third never starts. The signal stops
/// the second; the JSON report holds the two that ran.
fn interrupted_suite(signal: &str) {
    let mut witness = peer(
        r#"
print(c.recv(100).decode().strip())
sys.stdin.read()
"#,
    );
    let port = witness.port();
    let dir = temp_dir("interrupt");
    let report = dir.join("report.json");
    let report_arg = report.to_string_lossy().into_owned();
    let mut run = Test::new()
        .args(&["--test", "-j", "1", "--report-json", &report_arg])
        .args(&["--var", &format!("port={port}")])
        .write("a_quick.rhai", "print(\"quick ran\");\n")
        .write(
            "b_blocked.rhai",
            r#"
let server = listen("127.0.0.1:0");
let witness = connect(`127.0.0.1:${port}`);
witness.send_line("blocked in accept");
server.accept();
"#,
        )
        .write("c_later.rhai", "print(\"never\");\n")
        .path(".")
        .wall(Duration::from_secs(10))
        .spawn();
    assert_eq!(witness.line(), "blocked in accept");
    let out = interrupt(&mut run, signal);
    out.stderr_has("a_quick.rhai: ok")
        .stderr_has("the run was interrupted")
        .stderr_has("1 passed, 1 failed");
    assert!(!out.stderr.contains("c_later"), "{}", out.stderr);
    check_report(&report);
    witness.close_stdin();
    witness.wait();
    let _ = std::fs::remove_dir_all(dir);
}

fn check_report(path: &Path) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at `{}`: {e}", path.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"));
    assert_eq!(json["summary"]["total"], 2, "{text}");
    assert_eq!(json["summary"]["passed"], 1, "{text}");
    assert_eq!(json["summary"]["errored"], 1, "{text}");
    let scenarios = json["scenarios"]
        .as_array()
        .unwrap_or_else(|| panic!("no scenarios:\n{text}"));
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    assert!(names[0].ends_with("a_quick.rhai"), "{names:?}");
    assert!(names[1].ends_with("b_blocked.rhai"), "{names:?}");
    assert_eq!(scenarios[0]["status"], "passed");
    assert_eq!(scenarios[0]["stdout"], "quick ran\n");
    assert_eq!(scenarios[1]["status"], "errored");
    assert_eq!(scenarios[1]["diagnostic"]["code"], "interrupted", "{text}");
    assert_eq!(scenarios[1]["diagnostic"]["line"], 5, "{text}");
}

#[test]
fn ctrl_c_stops_a_suite_and_still_writes_the_report() {
    interrupted_suite("INT");
}

#[test]
fn sigterm_stops_a_suite_and_still_writes_the_report() {
    interrupted_suite("TERM");
}

/// Scripts from an untrusted branch can open sockets and nothing else: no modules from outside
/// their own tree, no file or process functions, however they are called.
#[test]
fn scripts_cannot_load_modules_from_outside_touch_files_or_start_processes() {
    let dir = temp_dir("sandbox");
    let written = dir.join("written");
    let outside = written.to_string_lossy();
    let touch = format!("touch {outside}");
    let cases: Vec<(String, i32, &str)> = vec![
        // A module comes only from the shipped ones and the scenario's own tree
        // (tests/imports.rs): a path out of it, or a file that is not there, does not compile.
        (
            r#"import "helper.rhai" as h;"#.into(),
            3,
            "there is no `helper.rhai.rhai`",
        ),
        (
            r#"import "/etc/passwd" as p;"#.into(),
            3,
            "an import is a path relative to the importing file",
        ),
        (
            r#"import "../../../../../../../etc/passwd" as p;"#.into(),
            3,
            "is outside",
        ),
        (
            r#"import "std/../../etc/passwd" as p;"#.into(),
            3,
            "there is no module `std/../../etc/passwd`",
        ),
        // A path made at run time meets the same resolver when the `import` runs.
        (
            r#"let p = "/etc/" + "passwd"; import p as x;"#.into(),
            4,
            "an import is a path relative to the importing file",
        ),
        // A shipped module's helpers stay inside it.
        (
            r#"import "std/resp" as resp; resp::read_reply((), false, 0);"#.into(),
            4,
            "Function not found: resp::read_reply",
        ),
        (
            r#"open_file("/etc/passwd");"#.into(),
            4,
            "Function not found: open_file",
        ),
        (
            r#"let t = read_file("/etc/passwd");"#.into(),
            4,
            "Function not found: read_file",
        ),
        (
            format!(r#"write_file("{outside}", "x");"#),
            4,
            "Function not found: write_file",
        ),
        (
            format!(r#"system("{touch}");"#),
            4,
            "Function not found: system",
        ),
        // `exec` exists, behind `--allow-exec`.
        (
            format!(r#"exec("{touch}");"#),
            4,
            "exec: starting `touch` is not allowed: pass `--allow-exec`",
        ),
        (
            format!(r#"exec(["touch", "{outside}"]);"#),
            4,
            "exec: starting `touch` is not allowed: pass `--allow-exec`",
        ),
        (
            format!(r#"Fn("system").call("{touch}");"#),
            4,
            "Function not found: system",
        ),
        (
            format!(r#"eval("system(\"{touch}\")");"#),
            4,
            "Function not found: system",
        ),
        (
            r#"fs::read("/etc/passwd");"#.into(),
            3,
            "Undefined module: fs",
        ),
    ];
    for (source, code, says) in cases {
        let out = Test::new()
            .write("helper.rhai", "fn f() { 1 }\n")
            .script(&format!("{source}\n"))
            .run();
        out.code(code)
            .stderr_has(says)
            .stderr_has("[script.rhai:1:");
        no_panic(&out);
    }
    assert!(!written.exists(), "a script wrote `{outside}`");
    let _ = std::fs::remove_dir_all(dir);
}
