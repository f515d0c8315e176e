//! `proxy(listen, upstream)` and its faults, measured on a real client: a Python `socket`
//! client talks through the proxy to a sockscript server, and reports what it saw (delays,
//! the segment sizes its reads returned, the bytes before the close, the reset). Tolerances
//! are generous: the bounds say the effect happened, not how precisely a busy machine timed it.

use crate::harness::{python, Test};

/// A sockscript server behind a proxy with `faults` added, running `serve` with the accepted
/// connection as `c`; a Python client (given `port`, the proxy's) runs `client` and prints
/// what it measured, which is returned. The server's script must pass.
fn through_proxy(faults: &str, serve: &str, client: &str) -> String {
    let mut server = Test::new()
        .script(&format!(
            r#"
            let server = listen("127.0.0.1:0");
            let p = proxy("127.0.0.1:0", server.addr);
            {faults}
            print(p.port);
            let c = server.accept();
            {serve}
            // Until the client has gone: the relay ends with the scenario.
            try {{ c.recv_all(); }} catch {{}}
            "#
        ))
        .spawn();
    let port = server.port();
    let mut py = python(&format!(
        "import socket, time\nfrom peer import connect, read_to_end\nport = {port}\n{client}"
    ));
    let out = py.wait();
    out.code(0);
    server.wait().code(0);
    out.stdout
}

#[test]
fn latency_delays_each_way_by_about_its_ms() {
    // Downstream delays the answer, upstream the request: either way the round trip is late.
    for direction in ["downstream", "upstream"] {
        let out = through_proxy(
            &format!(r#"p.fault("latency", #{{ms: 300, direction: "{direction}"}});"#),
            r#"c.send_line(c.recv_line());"#,
            r#"
c = connect(port)
t = time.monotonic()
c.sendall(b"ping\n")
assert c.recv(100) == b"ping\n"
print(round(time.monotonic() - t, 3))
"#,
        );
        let secs: f64 = out.trim().parse().unwrap_or(-1.0);
        assert!(
            (0.29..3.0).contains(&secs),
            "{direction}: round trip {secs}s"
        );
    }
}

#[test]
fn slicer_splits_into_segments_a_reader_sees() {
    let out = through_proxy(
        r#"p.fault("slicer", #{size: 100, delay: 200000});"#,
        r#"c.send(blob(400, 120));"#,
        r#"
c = connect(port)
sizes = []
for _ in range(100):
    n = len(c.recv(4096))
    if n == 0:
        break
    sizes.append(n)
print(sizes)
"#,
    );
    // Four segments of 100 bytes, 200 ms apart: each read returns one.
    assert_eq!(out.trim(), "[100, 100, 100, 100]");
}

#[test]
fn limit_data_passes_that_many_bytes_then_closes() {
    let out = through_proxy(
        r#"p.fault("limit_data", #{bytes: 1234});"#,
        r#"try { c.send(blob(10000, 121)); } catch {}"#,
        r#"
c = connect(port)
print(len(read_to_end(c)))
"#,
    );
    assert_eq!(out.trim(), "1234");
}

#[test]
fn reset_peer_resets_the_client_after_its_ms() {
    let out = through_proxy(
        r#"p.fault("reset_peer", #{ms: 200});"#,
        "",
        r#"
c = connect(port)
t = time.monotonic()
try:
    c.recv(100)
    print("no reset")
except ConnectionResetError:
    print("reset", round(time.monotonic() - t, 3))
"#,
    );
    let (what, secs) = out.trim().split_once(' ').unwrap_or((out.trim(), ""));
    assert_eq!(what, "reset", "{out}");
    let secs: f64 = secs.parse().unwrap_or(-1.0);
    assert!((0.15..3.0).contains(&secs), "reset after {secs}s");
}

#[test]
fn timeout_stops_relaying_then_closes_or_holds_silent() {
    let out = through_proxy(
        r#"p.fault("timeout", #{ms: 300});"#,
        r#"c.send("never seen");"#,
        r#"
c = connect(port)
t = time.monotonic()
print(read_to_end(c), round(time.monotonic() - t, 3))
"#,
    );
    let (data, secs) = out.trim().split_once(' ').unwrap_or(("?", ""));
    assert_eq!(data, "b''", "{out}");
    let secs: f64 = secs.parse().unwrap_or(-1.0);
    assert!((0.25..3.0).contains(&secs), "closed after {secs}s");

    let out = through_proxy(
        r#"p.fault("timeout", #{ms: 0});"#,
        r#"c.send("never seen");"#,
        r#"
c = connect(port)
c.settimeout(0.5)
try:
    print(c.recv(100))
except socket.timeout:
    print("silent")
"#,
    );
    assert_eq!(out.trim(), "silent");
}

#[test]
fn bandwidth_paces_to_its_rate() {
    // 10 KiB at 20 KiB/s: half a second.
    let out = through_proxy(
        r#"p.fault("bandwidth", #{rate: 20});"#,
        r#"c.send(blob(10240, 122));"#,
        r#"
c = connect(port)
t = time.monotonic()
n = 0
for _ in range(100000):
    got = len(c.recv(65536))
    n += got
    if got == 0 or n >= 10240:
        break
assert n == 10240, n
print(round(time.monotonic() - t, 3))
"#,
    );
    let secs: f64 = out.trim().parse().unwrap_or(-1.0);
    assert!((0.35..5.0).contains(&secs), "took {secs}s");
}

#[test]
fn slow_close_delays_the_fin() {
    let out = through_proxy(
        r#"p.fault("slow_close", #{ms: 400});"#,
        r#"c.send("bye"); c.shutdown();"#,
        r#"
c = connect(port)
assert c.recv(100) == b"bye"
t = time.monotonic()
assert c.recv(100) == b""
print(round(time.monotonic() - t, 3))
"#,
    );
    let secs: f64 = out.trim().parse().unwrap_or(-1.0);
    assert!((0.3..3.0).contains(&secs), "FIN after {secs}s");
}

#[test]
fn down_cuts_open_connections_refuses_new_ones_until_cleared() {
    // The client steers the script over a control connection: "down", then "up".
    let mut server = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let ctl = listen("127.0.0.1:0");
            let p = proxy("127.0.0.1:0", server.addr);
            let echo = spawn(|| {
                for i in 0..2 {
                    let c = server.accept();
                    try { c.send_line(c.recv_line()); c.recv_all(); } catch {}
                }
            });
            print(p.port);
            print(ctl.port);
            let control = ctl.accept();
            assert_eq(control.recv_line(), "down");
            p.fault("down");
            control.send_line("ok");
            assert_eq(control.recv_line(), "up");
            p.clear_faults();
            control.send_line("ok");
            control.recv_all();
            echo.join();
            "#,
        )
        .spawn();
    let port = server.port();
    let ctl = server.port();
    let mut py = python(&format!(
        r#"
from peer import connect, read_to_end
ctl = connect({ctl})
first = connect({port})
first.sendall(b"1\n")
assert first.recv(100) == b"1\n"
ctl.sendall(b"down\n")
assert ctl.recv(100) == b"ok\n"
try:
    print("open:", first.recv(100))
except ConnectionResetError:
    print("open: reset")
try:
    connect({port})
    print("new: connected")
except ConnectionRefusedError:
    print("new: refused")
ctl.sendall(b"up\n")
assert ctl.recv(100) == b"ok\n"
again = connect({port})
again.sendall(b"2\n")
print("after:", again.recv(100))
again.close()
ctl.close()
"#
    ));
    let out = py.wait();
    out.code(0)
        .stdout("open: b''\nnew: refused\nafter: b'2\\n'\n");
    server.wait().code(0);
}

/// Sixteen connections through a latency fault of toxicity 0.5: which were delayed, as 0s and
/// 1s, with `--seed 7`.
const TOXIC: &str = r#"
    let server = listen("127.0.0.1:0");
    let echo = spawn(|| {
        for i in 0..16 { let c = server.accept(); c.send_line(c.recv_line()); c.close(); }
    });
    let p = proxy("127.0.0.1:0", server.addr);
    p.fault("latency", #{ms: 300, toxicity: 0.5});
    let pattern = "";
    for i in 0..16 {
        let c = connect(p.addr);
        let t = timestamp();
        c.send_line("x");
        c.recv_line();
        pattern += if t.elapsed > 0.2 { "1" } else { "0" };
    }
    print(pattern);
    echo.join();
    if var("fail", false) { fail("as asked"); }
"#;

#[test]
fn toxicity_draws_from_the_seed_and_a_failure_names_it() {
    let first = Test::new().args(&["--seed", "7"]).script(TOXIC).run();
    first.code(0);
    let pattern = first.stdout.trim().to_owned();
    assert!(
        pattern.contains('0') && pattern.contains('1'),
        "toxicity 0.5 applied to all or none of 16: {pattern}"
    );
    Test::new()
        .args(&["--seed", "7"])
        .script(TOXIC)
        .run()
        .code(0)
        .stdout(&format!("{pattern}\n"));
    let failed = Test::new()
        .args(&["--var", "fail=true"])
        .script(TOXIC)
        .run();
    failed.code(1).stderr_has("came from seed ");
}

#[test]
fn bad_faults_and_options_are_invalid_arguments() {
    Test::new()
        .script(
            r#"
            let p = proxy("127.0.0.1:0", "127.0.0.1:9");
            for f in [
                || p.fault("jitter", #{}),
                || p.fault("latency", #{delay: 5}),
                || p.fault("latency", #{ms: 5, direction: "sideways"}),
                || p.fault("slicer", #{size: 0}),
                || p.fault("down", #{toxicity: 2.0}),
                || proxy("127.0.0.1:0", "127.0.0.1:9", #{colour: 1}),
            ] {
                print(assert_err(f, "invalid_argument").message);
            }
            print(`${p.upstream} ${p.connections} ${p.host} ${p.port > 0} ${p.addr == p.host + ":" + p.port}`);
            p.close();
            print(p.closed);
            "#,
        )
        .run()
        .code(0)
        .stdout(
            "fault: unknown kind `jitter` (known: latency, bandwidth, slicer, limit_data, timeout, reset_peer, slow_close, down)\n\
             fault `latency`: unknown option `delay` (known: ms, jitter, direction, toxicity)\n\
             fault `latency`: `direction` is \"upstream\", \"downstream\" or \"both\"\n\
             fault `slicer`: `size` (bytes) must be at least 1\n\
             fault `down`: `toxicity` is a number from 0.0 to 1.0\n\
             proxy: unknown option `colour` (known: timeout, faults)\n\
             127.0.0.1:9 0 127.0.0.1 true true\n\
             true\n",
        );
}

#[test]
fn a_relayed_connection_is_its_own_conversation_in_the_transcript() {
    let dir = crate::harness::Dir::new("proxy-json");
    let json = dir.join("r.json");
    let md = dir.join("r.md");
    Test::new()
        .args(&[
            "--report-json",
            crate::harness::text(&json),
            "--report-markdown",
            crate::harness::text(&md),
        ])
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let serving = spawn(|| { let c = server.accept(); c.send_line(c.recv_line()); c.close(); });
            let p = proxy("127.0.0.1:0", server.addr, #{faults: [#{kind: "latency", ms: 10}]});
            let c = connect(p.addr);
            c.send_line("hello");
            assert_eq(c.recv_line(), "hello");
            serving.join();
            fail("to draw the diagram");
            "#,
        )
        .run()
        .code(1);
    let json = std::fs::read_to_string(&json).unwrap_or_default();
    let report: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let events = report["scenarios"][0]["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let proxy_events: Vec<(String, i64)> = events
        .iter()
        .filter(|e| e["task"] == "proxy")
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("?").to_owned(),
                e["conn"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    // The client's connection to the proxy and the proxy's to the server: two ids, each
    // shared with the scenario's own end.
    let kinds: Vec<&str> = proxy_events.iter().map(|(k, _)| k.as_str()).collect();
    // (Its `close`s may come after the scenario has ended: the relay closes by itself.)
    for kind in ["accept", "connect", "recv", "send"] {
        assert!(kinds.contains(&kind), "no proxy {kind}: {proxy_events:?}");
    }
    let client_conn = events
        .iter()
        .find(|e| e["task"] == "main" && e["kind"] == "connect")
        .and_then(|e| e["conn"].as_i64());
    let server_conn = events
        .iter()
        .find(|e| e["task"] == "task 1" && e["kind"] == "accept")
        .and_then(|e| e["conn"].as_i64());
    assert!(proxy_events
        .iter()
        .any(|(k, c)| k == "accept" && Some(*c) == client_conn));
    assert!(proxy_events
        .iter()
        .any(|(k, c)| k == "connect" && Some(*c) == server_conn));
    assert_ne!(client_conn, server_conn);
    // The diagram, as the real Mermaid parser reads it: the client's bytes go to the proxy's
    // end, on from its other end to the server's.
    let blocks = crate::markdown::mermaid_blocks(&md);
    let block = &blocks[0];
    assert_eq!(block["ok"], true, "{block}");
    let label = |id: &serde_json::Value| {
        block["actors"]
            .as_array()
            .and_then(|a| a.iter().find(|x| &x[0] == id))
            .and_then(|x| x[1].as_str())
            .unwrap_or("?")
            .split(' ')
            .next()
            .unwrap_or("?")
            .to_owned()
    };
    let hops: Vec<(String, String)> = block["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|m| m["text"].as_str().is_some_and(|t| t.contains("hello")))
        .map(|m| (label(&m["from"]), label(&m["to"])))
        .collect();
    let hop = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        hops,
        [
            hop("main", "proxy"),
            hop("proxy", "task"),
            hop("task", "proxy"),
            hop("proxy", "main")
        ],
        "{block}"
    );
}

/// A relay spins briefly after it has relayed bytes, waiting for the answer; with its
/// connections idle it must spend no CPU (what the 50 µs bound and "an idle connection is not
/// polled" promise). The Python client reads the sockscript process's CPU time from `/proc`
/// around a second of silence on 20 relayed connections.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_proxy_spends_no_cpu() {
    let mut server = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let p = proxy("127.0.0.1:0", server.addr);
            print(p.port);
            let conns = [];
            for i in 0..20 {
                let c = server.accept();
                c.send_line(c.recv_line());
                conns.push(c);
            }
            // Until the client has gone: the relay ends with the scenario.
            for c in conns { try { c.recv_all(); } catch {} }
            "#,
        )
        .spawn();
    let port = server.port();
    let pid = server.id();
    let mut py = python(&format!(
        r#"
import time
from peer import connect, cpu_seconds
def cpu():
    return cpu_seconds({pid})
conns = []
for i in range(20):
    c = connect({port})
    c.sendall(b"hello\n")
    assert c.recv(100) == b"hello\n"
    conns.append(c)
time.sleep(0.2)
before = cpu()
time.sleep(1.0)
print(round(cpu() - before, 3))
for c in conns:
    c.close()
"#
    ));
    let out = py.wait();
    out.code(0);
    server.wait().code(0);
    let secs: f64 = out.stdout.trim().parse().unwrap_or(-1.0);
    assert!(
        (0.0..0.1).contains(&secs),
        "CPU over a second of idle connections: {secs}s"
    );
}

/// A client the proxy cannot relay because the scenario is at `--limit handles` is accepted,
/// gets the error, and is closed: its conversation in the transcript ends with a `close`.
#[test]
fn a_client_over_the_handle_limit_is_closed_in_the_transcript() {
    let dir = crate::harness::Dir::new("proxy-limit");
    let json = dir.join("r.json");
    Test::new()
        .args(&[
            "--limit",
            "handles=3",
            "--report-json",
            crate::harness::text(&json),
        ])
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let p = proxy("127.0.0.1:0", server.addr);
            let c = connect(p.addr);
            // The proxy closes it: no room for its two sockets.
            try { c.recv_all(); } catch {}
            "#,
        )
        .run()
        .code(0);
    let json = std::fs::read_to_string(&json).unwrap_or_default();
    let report: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let kinds: Vec<String> = report["scenarios"][0]["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["task"] == "proxy")
        .map(|e| e["kind"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(kinds, ["accept", "error", "close"], "{json}");
}

/// An upstream that never answers the SYN (a listener whose queue is full drops it) makes
/// the relay's connect time out at the proxy's `timeout`, reported like every other timeout:
/// what timed out, and after how long.
#[test]
fn an_upstream_that_never_answers_times_out_at_the_proxys_timeout() {
    let mut upstream = python(
        r#"
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
port = s.getsockname()[1]
# Fill its queue: the next SYN is dropped.
held = socket.create_connection(("127.0.0.1", port))
print(port, flush=True)
sys.stdin.read()
"#,
    );
    let port = upstream.port();
    let out = Test::new()
        .args(&["--trace", "--var", &format!("port={port}")])
        .script(
            r#"
            let p = proxy("127.0.0.1:0", `127.0.0.1:${var("port")}`, #{timeout: "300ms"});
            let c = connect(p.addr);
            try { c.recv_all(); } catch {}
            "#,
        )
        .run();
    upstream.close_stdin();
    out.code(0).stderr_has(&format!(
        "connect to `127.0.0.1:{port}` timed out after 300ms"
    ));
    upstream.wait();
}
