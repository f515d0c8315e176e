//! `sockscript record`: conversations with a real redis-server and a Python server recorded
//! through the proxy, written as scenarios, and replayed: against the same service (pass),
//! against a changed one (fails at the exchange that changed), and the `--side server` file to
//! the original client (pass). A file named `record` still runs as a scenario.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{python, Dir, Proc, Test};

/// `sockscript record … --out out` relaying to `upstream`; returns it and the port it
/// listens on (its first stderr line says where).
fn record(upstream: u16, out: &Path, extra: &[&str]) -> (Proc, u16) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sockscript"));
    cmd.args(["record", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(format!("127.0.0.1:{upstream}"))
        .arg("--out")
        .arg(out)
        .args(extra);
    let mut proc = Proc::start("sockscript record", cmd, Duration::from_secs(30));
    let line = proc.err_line();
    let port = line
        .strip_prefix("recording on 127.0.0.1:")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (proc, port)
}

/// A line server: each connection gets its number; every line comes back upper-cased after
/// `id=<number> `, until `quit` (answered `bye`). `CHANGED` answers `world` in lower case.
fn line_server(changed: bool) -> Proc {
    python(&format!(
        r#"
from peer import listen
s = listen(backlog=8, timeout=None)
n = 0
while True:
    c, _ = s.accept()
    n += 1
    f = c.makefile("rb")
    for line in f:
        if line.strip() == b"quit":
            c.sendall(b"bye\n")
            break
        answer = line if {changed} and line == b"world\n" else line.upper()
        c.sendall(b"id=%d " % n + answer)
    f.close()
    c.close()
"#,
        changed = if changed { "True" } else { "False" }
    ))
}

/// The client the line server is recorded with: it checks what it is answered.
fn line_client(port: u16) -> Proc {
    python(&format!(
        r#"
from peer import connect
c = connect({port})
f = c.makefile("rb")
for line in [b"hello\n", b"world\n", b"quit\n"]:
    c.sendall(line)
    got = f.readline()
    assert got == b"bye\n" if line == b"quit\n" else got.endswith(line.upper()), got
print("client ok")
f.close()
c.close()
"#
    ))
}

/// Run the recorded client scenario `file` against the service on `port`.
fn replay(file: &Path, port: u16, extra: &[&str]) -> crate::harness::Output {
    let port = format!("port={port}");
    let mut args = vec!["--var", port.as_str()];
    args.extend_from_slice(extra);
    Test::new().file(file).args(&args).run()
}

/// The 1-based line of `file` that holds `needle` first.
fn line_of(file: &str, needle: &str) -> usize {
    file.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in\n{file}"))
}

#[test]
fn a_python_server_recorded_replays_and_a_changed_one_fails_at_its_exchange() {
    let dir = Dir::new("record-py");
    let out = dir.join("lines.rhai");
    let mut server = line_server(false);
    let upstream = server.port();
    let (mut recorder, port) = record(upstream, &out, &["--connections", "2"]);
    for _ in 0..2 {
        line_client(port).wait().code(0).stdout("client ok\n");
    }
    recorder.wait().code(0).stderr_has("recorded 2 connections");
    let scenario = std::fs::read_to_string(&out).unwrap_or_default();
    // The ids differed between the two connections: a wildcard, said in a comment.
    assert!(
        scenario.contains("// wildcard: the 2 recorded connections"),
        "{scenario}"
    );
    assert!(scenario.contains(r#"conn.send("hello\n");"#), "{scenario}");
    assert!(
        scenario.contains(r#"assert_eq(conn.recv_exact(4), "bye\n");"#),
        "{scenario}"
    );
    replay(&out, upstream, &[]).code(0);

    // The changed server answers `world` in lower case: the wildcard's `expect` waits for
    // ` WORLD` at that exchange, and says there what came instead.
    let mut changed = line_server(true);
    let failed = replay(&out, changed.port(), &["--timeout", "1s"]);
    let at = line_of(&scenario, " WORLD\\n\"");
    failed
        .code(4)
        .stderr_has(&format!("lines.rhai:{at}:"))
        .stderr_has("id=1 world");
    drop(changed);
    drop(server);
}

#[test]
fn a_server_side_recording_plays_the_service_to_the_original_client() {
    let dir = Dir::new("record-server");
    let out = dir.join("service.rhai");
    let mut server = line_server(false);
    let (mut recorder, port) = record(
        server.port(),
        &out,
        &["--connections", "1", "--side", "server"],
    );
    line_client(port).wait().code(0);
    recorder.wait().code(0);
    drop(server);
    let scenario = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(scenario.contains("server.accept()"), "{scenario}");
    let mut replay = Test::new()
        .file(&out)
        .args(&["--var", "listen=127.0.0.1:0"])
        .spawn();
    let line = replay.line();
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    line_client(port).wait().code(0).stdout("client ok\n");
    replay.wait().code(0);
}

/// A redis-server of the test's own on a free loopback port (its own settings on the command
/// line, no persistence), ready once it says so.
fn redis(dir: &Dir) -> (Proc, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--dir", dir.text()]);
    let mut proc = Proc::start("redis-server", cmd, Duration::from_secs(60));
    for _ in 0..100 {
        if proc.line().contains("Ready to accept connections") {
            return (proc, port);
        }
    }
    panic!("redis-server did not say it was ready");
}

/// A RESP client. With `greeting`, it only sets the key `greeting` to it (directly, as the
/// setup of the data). Else it asks PING, GET greeting (`hello`) and INCR hits (whose answer
/// differs each time).
fn redis_client(port: u16, greeting: Option<&str>) -> Proc {
    let asks = match greeting {
        Some(v) => format!(
            "ask(b'*3\\r\\n$3\\r\\nSET\\r\\n$8\\r\\ngreeting\\r\\n${}\\r\\n{v}\\r\\n', b'+OK\\r\\n')",
            v.len()
        ),
        None => r#"ask(b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n")
ask(b"*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n", b"$5\r\nhello\r\n")
ask(b"*2\r\n$4\r\nINCR\r\n$4\r\nhits\r\n", None)"#
            .to_owned(),
    };
    python(&format!(
        r#"
from peer import connect
c = connect({port})
def ask(request, answer):
    c.sendall(request)
    got = b""
    while len(got) < (len(answer) if answer else 1) or not got.endswith(b"\r\n"):
        chunk = c.recv(100)
        assert chunk, got
        got += chunk
    assert answer is None or got == answer, got
{asks}
c.close()
print("client ok")
"#
    ))
}

#[test]
fn a_redis_conversation_recorded_replays_and_fails_where_the_data_changed() {
    let dir = Dir::new("record-redis");
    let (redis_proc, upstream) = redis(&dir);
    redis_client(upstream, Some("hello")).wait().code(0);
    let out = dir.join("redis.rhai");
    let (mut recorder, port) = record(upstream, &out, &["--connections", "2"]);
    for _ in 0..2 {
        redis_client(port, None)
            .wait()
            .code(0)
            .stdout("client ok\n");
    }
    recorder.wait().code(0);
    let scenario = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        scenario.contains(r#"conn.send("*1\r\n$4\r\nPING\r\n");"#),
        "{scenario}"
    );
    // `INCR hits` was answered `:1`, then `:2`: a wildcard.
    assert!(
        scenario.contains("// wildcard: the 2 recorded"),
        "{scenario}"
    );
    replay(&out, upstream, &[]).code(0);
    // The data changes: the replay fails at the GET's answer.
    redis_client(upstream, Some("changed")).wait().code(0);
    let at = line_of(&scenario, r#""$5\r\nhello\r\n""#);
    replay(&out, upstream, &[])
        .code(1)
        .stderr_has(&format!("redis.rhai:{at}:"));
    drop(redis_proc);
}

#[test]
fn record_is_a_subcommand_and_a_file_named_record_still_runs() {
    Test::new()
        .write("record", "print(\"a scenario named record\");")
        .path("./record")
        .run()
        .code(0)
        .stdout("a scenario named record\n");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sockscript"));
    cmd.arg("record");
    let out = Proc::start("sockscript record", cmd, Duration::from_secs(10)).wait();
    out.code(2).stderr_has("--listen <ADDR>");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sockscript"));
    cmd.args([
        "record",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--connections",
        "0",
    ]);
    Proc::start("sockscript record", cmd, Duration::from_secs(10))
        .wait()
        .code(2)
        .stderr_has("`--connections` must be at least 1");
}
