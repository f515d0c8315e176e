//! WebSockets against Python's `websockets` package (installed by `scripts/test`), an
//! independent implementation, both ways: text and binary messages, pings, close codes,
//! subprotocols, a refused handshake, a plain HTTP request to a WebSocket server, `wss://` with
//! a self-signed certificate; and the limits and the transcript. Loopback, port 0; each peer
//! prints its port first, the readiness signal.

use crate::harness::{python, python_listener, Test};

/// A `websockets` echo server on a free port, offering subprotocol `chat`: it echoes every
/// message, answers `bye` by closing with 4001, and exits after one client.
const PY_ECHO_SERVER: &str = r#"
import threading
from websockets.sync.server import serve
done = threading.Event()
def handler(ws):
    print("path", ws.request.path, "protocol", ws.subprotocol, "x-test", ws.request.headers.get("x-test"), flush=True)
    try:
        for msg in ws:
            if msg == "bye":
                ws.close(4001, "see you")
                break
            ws.send(msg)
    finally:
        done.set()
with serve(handler, "127.0.0.1", 0, subprotocols=["chat"]) as server:
    print(server.socket.getsockname()[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    done.wait(15)
    server.shutdown()
"#;

#[test]
fn a_sockscript_client_talks_to_a_python_server() {
    let mut peer = python(PY_ECHO_SERVER);
    let port = peer.port();
    let out = Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let ws = ws_connect(`ws://127.0.0.1:${port}/echo?room=1`,
                #{protocols: ["chat"], headers: #{"x-test": "yes"}});
            print(`status ${ws.response.status} protocol ${ws.response.protocol}`);
            ws.send("hello");
            print(ws.recv());
            ws.send(blob(3, 0xff));
            let b = ws.recv();
            print(`${type_of(b)} ${b.len()} ${b[0]}`);
            let rtt = ws.ping();
            assert(rtt >= 0.0 && rtt < 5000.0);
            ws.send("line 42 done");
            let m = ws.expect("line (\\d+)");
            print(`${m.text} ${m.groups[0]}`);
            ws.send("bye");
            let close = ws.recv_message();
            print(`${close.type} ${close.code} ${close.data}`);
            assert_eq(ws.recv(), ());
            print(`${ws.close_code} ${ws.close_reason} ${ws.closed}`);
            "#,
        )
        .run();
    out.code(0).stdout(
        "status 101 protocol chat\nhello\nblob 3 255\nline 42 42\nclose 4001 see you\n\
         4001 see you true\n",
    );
    let served = peer.wait();
    served
        .code(0)
        .stdout_has("path /echo?room=1 protocol chat x-test yes");
}

#[test]
fn a_python_client_talks_to_a_sockscript_server() {
    // Generous deadlines: Python's start and `import websockets` are slow on a busy machine.
    let mut server = Test::new()
        .args(&["--timeout", "15s"])
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0", #{protocols: ["v2", "chat"]});
            print(server.port);
            let ws = server.accept();
            print(`request ${ws.request.path} ${ws.request.query} ${ws.request.headers["x-who"]} ${ws.request.protocol}`);
            let text = ws.recv();
            ws.send(`got ${text}`);
            let data = ws.recv();
            ws.send(data + blob(1, 1));
            ws.close(4002, "done");
            print("closed");
            "#,
        )
        .spawn();
    let port = server.port();
    let mut client = python(&format!(
        r#"
from websockets.sync.client import connect
from websockets.exceptions import ConnectionClosed
with connect("ws://127.0.0.1:{port}/room?id=7", subprotocols=["chat"], additional_headers={{"X-Who": "py"}}) as ws:
    print("protocol", ws.subprotocol)
    # The server is reading: it answers the ping by itself.
    assert ws.ping(b"abc").wait(15), "no pong"
    ws.send("hi")
    print(ws.recv(timeout=15))
    ws.send(b"\x00\x01")
    print(ws.recv(timeout=15))
    try:
        ws.recv(timeout=15)
    except ConnectionClosed as e:
        print("close", e.rcvd.code, e.rcvd.reason)
"#
    ));
    client
        .wait()
        .code(0)
        .stdout("protocol chat\ngot hi\nb'\\x00\\x01\\x01'\nclose 4002 done\n");
    server
        .wait()
        .code(0)
        .stdout(&format!("{port}\nrequest /room id=7 py chat\nclosed\n"));
}

#[test]
fn a_refused_handshake_is_kind_websocket_with_status_and_body() {
    let mut peer = python_listener(
        r#"
c, _ = s.accept()
c.recv(4096)
body = b"no websockets for you"
c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
c.close()
"#,
    );
    let port = peer.port();
    let out = Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let e = assert_err(|| ws_connect(`ws://127.0.0.1:${port}/`), "websocket");
            print(e.message);
            "#,
        )
        .run();
    out.code(0)
        .stdout_has("HTTP 403 Forbidden")
        .stdout_has("no websockets for you");
    peer.wait().code(0);
}

/// A `ws_listen` server (under `--trace`) that accepts one client, prints its first message
/// and ends; its port is its first line.
fn one_message_server() -> crate::harness::Proc {
    Test::new()
        .args(&["--trace", "--timeout", "15s"])
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0");
            print(server.port);
            let ws = server.accept();
            print(ws.recv());
            "#,
        )
        .spawn()
}

/// A client that resets in the middle of its request head is recorded and passed over: the
/// next client is accepted (the accept used to fail with "connection reset", or "transport
/// endpoint is not connected" when the reset came before the accept).
#[test]
fn a_client_that_resets_mid_request_is_passed_over() {
    let mut server = one_message_server();
    let port = server.port();
    let mut client = python(&format!(
        r#"
import socket, struct
from websockets.sync.client import connect
c = socket.create_connection(("127.0.0.1", {port}))
c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: webs")
# An abortive close: RST, not FIN.
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
with connect("ws://127.0.0.1:{port}/") as ws:
    ws.send("after the reset")
"#
    ));
    client.wait().code(0);
    let out = server.wait();
    out.code(0)
        .stdout(&format!("{port}\nafter the reset\n"))
        .stderr_has(&format!(
            "accept from `127.0.0.1:{port}` failed: connection reset"
        ));
}

#[test]
fn a_plain_http_request_gets_400_and_is_recorded() {
    let mut server = one_message_server();
    let port = server.port();
    let mut client = python(&format!(
        r#"
import socket
from websockets.sync.client import connect
c = socket.create_connection(("127.0.0.1", {port}))
c.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
reply = b""
while True:
    chunk = c.recv(4096)
    if not chunk:
        break
    reply += chunk
print(reply.split(b"\r\n")[0].decode())
with connect("ws://127.0.0.1:{port}/") as ws:
    ws.send("after the refusal")
"#
    ));
    client.wait().code(0).stdout_has("HTTP/1.1 400 Bad Request");
    let out = server.wait();
    out.code(0)
        .stdout(&format!("{port}\nafter the refusal\n"))
        .stderr_has("is not a websocket upgrade")
        .stderr_has("answered 400 Bad Request");
}

#[test]
fn wss_with_a_self_signed_certificate_for_python_and_sockscript_clients() {
    // Generous deadlines: Python's start and `import websockets` are slow on a busy machine.
    let mut server = Test::new()
        .args(&["--timeout", "15s"])
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0", #{tls: "self-signed"});
            print(server.port);
            print(server.cert_pem);
            for n in 0..2 {
                let ws = server.accept();
                ws.send(`secure ${ws.recv()}`);
                ws.close();
            }
            "#,
        )
        .spawn();
    let port = server.port();
    let mut pem = String::new();
    loop {
        let line = server.line();
        pem.push_str(&line);
        pem.push('\n');
        if line.starts_with("-----END CERTIFICATE-----") {
            break;
        }
    }
    let mut client = python(&format!(
        r#"
import ssl
from websockets.sync.client import connect
ctx = ssl.create_default_context(cadata="""{pem}""")
with connect("wss://127.0.0.1:{port}/", ssl=ctx) as ws:
    ws.send("python")
    print(ws.recv(timeout=15))
"#
    ));
    client.wait().code(0).stdout("secure python\n");
    let path = crate::harness::temp_dir("wss-ca").join("ca.pem");
    std::fs::write(&path, &pem).expect("write the certificate");
    let out = Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            // Without the certificate: not trusted.
            let e = assert_err(|| ws_connect(`wss://localhost:${port}/`), "tls");
            print(e.kind);
            "#,
        )
        .run();
    out.code(0).stdout("tls\n");
    let out = Test::new()
        .args(&[
            "--var",
            &format!("port={port}"),
            "--var-file",
            &format!("ca={}", path.display()),
        ])
        .script(
            r#"
            let ws = ws_connect(`wss://localhost:${port}/`, #{tls: #{ca: ca}});
            ws.send("sockscript");
            print(ws.recv());
            "#,
        )
        .run();
    out.code(0).stdout("secure sockscript\n");
    server.wait().code(0);
}

#[test]
fn a_message_over_the_buffer_limit_is_too_long() {
    let out = Test::new()
        .args(&["--limit", "buffer=1024"])
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0");
            let t = spawn(|| {
                let ws = server.accept();
                let big = "x";
                big.pad(2000, 'x');
                ws.send(big);
            });
            let ws = ws_connect(`ws://${server.addr}/`);
            let e = assert_err(|| ws.recv(), "too_long");
            print(e.kind);
            t.join();
            "#,
        )
        .run();
    out.code(0).stdout("too_long\n");
}

#[test]
fn every_message_and_automatic_answer_is_one_event_in_the_json_report() {
    let dir = crate::harness::Dir::new("ws-json");
    let report = dir.join("report.json");
    let out = Test::new()
        .args(&["--report-json", &report.display().to_string()])
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0");
            let t = spawn(|| {
                let ws = server.accept();
                ws.send(ws.recv());
                ws.recv();
            });
            let ws = ws_connect(`ws://${server.addr}/`);
            ws.send("one message");
            ws.recv();
            ws.ping("are you there");
            ws.close();
            t.join();
            "#,
        )
        .run();
    out.code(0);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the report")).expect("JSON");
    let events = json["scenarios"][0]["transcript"]
        .as_array()
        .expect("a transcript");
    let messages: Vec<(&str, &str, u64)> = events
        .iter()
        .filter(|e| e["transport"] == "ws" && (e["kind"] == "send" || e["kind"] == "recv"))
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or(""),
                e["note"].as_str().unwrap_or(""),
                e["len"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            ("send", "text", 11),
            ("recv", "text", 11),
            ("send", "text", 11),
            ("recv", "text", 11),
            ("send", "ping", 13),
            ("recv", "ping", 13),
            // The server's automatic answers are its sends.
            ("send", "pong", 13),
            ("recv", "pong", 13),
            ("send", "close 1000", 0),
            ("recv", "close 1000", 0),
            ("send", "close 1000", 0),
            ("recv", "close 1000", 0),
        ],
        "{events:#?}"
    );
}

/// A read cut off by its deadline loses nothing; messages a `ping` reads past are kept for the
/// next `recv`; bad URLs and close codes are refused before anything is sent.
#[test]
fn reads_are_cancel_safe_and_a_ping_keeps_what_it_reads_past() {
    let out = Test::new()
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0");
            let start = channel();
            let t = spawn(|| {
                let ws = server.accept();
                start.recv();
                ws.send("late");
                ws.send("queued");
                // Reading: the client's ping is answered meanwhile.
                assert_eq(ws.recv(), "done");
            });
            let ws = ws_connect(`ws://${server.addr}/`);
            ws.timeout = 200;
            print(assert_err(|| ws.recv(), "timeout").kind);
            start.send(true);
            ws.timeout = "5s";
            print(ws.recv());
            ws.ping("p");
            print(ws.recv());
            ws.send("done");
            t.join();
            assert_err(|| ws_connect("http://127.0.0.1:1/"), "invalid_address");
            assert_err(|| ws.close(1005, "reserved"), "invalid_argument");
            assert_err(|| ws_connect(`ws://${server.addr}/`, #{tls: true}), "invalid_argument");
            "#,
        )
        .run();
    out.code(0).stdout("timeout\nlate\nqueued\n");
}

/// A client that connects and sends nothing holds up no other: upgrades run in the background,
/// each under its own deadline (the listener's timeout, from the moment the client connected),
/// and `accept` takes the first that finishes. The silent client is closed at its deadline and
/// recorded then, as the listener's (its `ws_listen` in main), as passed over. (`accept` used to read the silent
/// client's request itself: it raised `timeout` at 4s, the good client still waiting.)
#[test]
fn a_silent_client_does_not_hold_up_the_next_and_is_passed_over_at_its_deadline() {
    const SCRIPT: &str = r#"
let server = ws_listen("127.0.0.1:0", #{timeout: 4000});
print(server.port);
let first = server.accept();
first.send(`first ${first.recv()}`);
first.close();
// The silent client's deadline was fixed when it connected; this accept may wait longer.
server.timeout = "15s";
let second = server.accept();
second.send(`second ${second.recv()}`);
second.close();
"#;
    let mut server = Test::new()
        .args(&["--trace", "--timeout", "15s"])
        .script(SCRIPT)
        .spawn();
    let port = server.port();
    let mut client = python(&format!(
        r#"
import socket, time
from websockets.sync.client import connect
silent = socket.create_connection(("127.0.0.1", {port}), timeout=15)
start = time.monotonic()
with connect("ws://127.0.0.1:{port}/", open_timeout=15) as ws:
    ws.send("good")
    print(ws.recv(timeout=15))
    took = time.monotonic() - start
    print("served", "well before the deadline" if took < 2 else "after %.1fs" % took)
# Passed over at its deadline: the server closes it, with nothing sent.
assert silent.recv(1) == b""
waited = time.monotonic() - start
print("silent closed", "at its deadline" if 3.5 < waited < 10 else "after %.1fs" % waited)
with connect("ws://127.0.0.1:{port}/", open_timeout=15) as ws:
    ws.send("after")
    print(ws.recv(timeout=15))
"#
    ));
    assert_eq!(client.line(), "first good");
    assert_eq!(client.line(), "served well before the deadline");
    assert_eq!(client.line(), "silent closed at its deadline");
    assert_eq!(client.line(), "second after");
    client.wait().code(0);
    let out = server.wait();
    out.code(0).stdout(&format!("{port}\n"));
    // Recorded once, as the listener's close of the silent client (the trace names the task
    // of its `ws_listen`).
    let stderr = &out.stderr;
    let passed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("passed over"))
        .collect();
    assert_eq!(passed.len(), 1, "{stderr}");
    let (_, event) = passed[0].split_once("] ").unwrap_or_default();
    let event: Vec<&str> = event.split_whitespace().collect();
    assert_eq!(
        event[..4],
        ["main", "close", &format!("127.0.0.1:{port}"), "->"],
        "{stderr}"
    );
    assert!(
        passed[0]
            .ends_with(" ws: the client sent no complete request within 4s: closed, passed over"),
        "{stderr}"
    );
}

/// Two `ws_listen` servers, one with TLS, each with a client in its upgrade when main ends (held
/// by a peer that outlives the run: one halfway through its request, one silent in its TLS
/// handshake), a probe passed over, and an `accept` waiting.
const WS_SOAK: &str = r#"
let plain = ws_listen("127.0.0.1:0");
let secure = ws_listen("127.0.0.1:0", #{tls: "self-signed"});
let ca = secure.cert_pem;
wait_for(plain.addr);
let holder = connect(`127.0.0.1:${holder}`);
holder.send_line(`${plain.port} ${secure.port}`);
assert_eq(holder.recv_line(), "connected");
// Connected after the held clients: accepted after them, so they are in their upgrades.
let client = spawn(|| ws_connect(`ws://${plain.addr}/`).recv());
let ws = plain.accept();
ws.send("hi");
assert_eq(client.join(), "hi");
let client = spawn(|| ws_connect(`wss://${secure.addr}/`, #{tls: #{ca: ca}}).recv());
let wss = secure.accept();
wss.send("hi");
assert_eq(client.join(), "hi");
spawn(|| plain.accept());
spawn(|| secure.accept());
"#;

/// Holds, until its stdin closes, two clients for each scenario that asks on its control
/// port: one halfway through a request to the plain listener, one silent to the TLS one.
const WS_SOAK_HOLDER: &str = r#"
import socket, sys, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(256)
print(srv.getsockname()[1], flush=True)
held = []
lock = threading.Lock()
def hold(control):
    with control:
        plain, secure = control.makefile("rb").readline().split()
        a = socket.create_connection(("127.0.0.1", int(plain)), timeout=10)
        a.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        b = socket.create_connection(("127.0.0.1", int(secure)), timeout=10)
        with lock:
            held.extend([a, b])
        control.sendall(b"connected\n")
def serve():
    while True:
        control, _ = srv.accept()
        threading.Thread(target=hold, args=(control,), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
sys.stdin.read()
print("held", len(held))
"#;

#[test]
fn ws_listeners_leak_no_tasks_or_sockets_over_many_runs() {
    // The background upgrades end with their scenario, not at their deadline (`--timeout 30s`
    // here), though their clients are still there: an upgrade task that outlived its run would
    // keep its socket open.
    const RUNS: usize = 300;
    let mut holder = python(WS_SOAK_HOLDER);
    let port = holder.port();
    let var = format!("holder={port}");
    let (out, samples) =
        crate::soak::runs_sampled(WS_SOAK, RUNS, &["--timeout", "30s", "--var", &var]);
    out.code(0).stderr_has(&format!("{RUNS} passed, 0 failed"));
    crate::soak::assert_no_leak(&samples);
    holder.close_stdin();
    holder
        .wait()
        .code(0)
        .stdout(&format!("{port}\nheld {}\n", 2 * RUNS));
}

/// `close()` lets go of the clients still in their upgrade at once (not at their deadline),
/// fails a waiting `accept` with `closed`, and frees the port; a `wss` client silent in its
/// TLS handshake is passed over at the listener's timeout. An upgrade needs nobody in
/// `accept()`: it runs in the background.
#[test]
fn closing_a_ws_listener_frees_its_port_and_lets_go_of_clients_in_their_upgrade() {
    let out = Test::new()
        .args(&["--trace", "--timeout", "10s"])
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0");
            let port = server.port;
            let silent = connect(server.addr);
            let ws = ws_connect(`ws://${server.addr}/`);
            print("upgraded before any accept");
            assert_eq(server.accept().peer, ws.local);
            // Spawned once the upgraded client is taken, so this accept cannot take it.
            let waiting = spawn(|| assert_err(|| server.accept(), "closed").kind);
            server.close();
            print(waiting.join());
            silent.timeout = "3s";
            assert_eq(silent.recv(), "");
            print(assert_err(|| server.accept(), "closed").kind);
            let again = ws_listen(`127.0.0.1:${port}`);
            print(`port free: ${again.port == port}`);

            let secure = ws_listen("127.0.0.1:0", #{tls: "self-signed", timeout: 300});
            let silent = connect(secure.addr);
            silent.timeout = "3s";
            assert_eq(silent.recv(), "");
            let ca = secure.cert_pem;
            let client = spawn(|| ws_connect(`wss://${secure.addr}/`, #{tls: #{ca: ca}}).recv());
            secure.accept().send("next");
            print(client.join());
            "#,
        )
        .wall(std::time::Duration::from_secs(20))
        .run();
    out.code(0)
        .stdout("upgraded before any accept\nclosed\nclosed\nport free: true\nnext\n")
        .stderr_has(
            "ws: the client did not finish its tls handshake within 300ms: closed, passed over",
        );
}

/// A `wss` WebSocket says what its TLS handshake settled on, on both sides (the server's with
/// the name the client asked for), and so do the transcript's connect and accept; a `ws` one
/// has no `tls`.
#[test]
fn a_wss_websocket_has_its_tls_parameters_and_a_ws_one_none() {
    Test::new()
        .args(&["--trace"])
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0", #{tls: "self-signed"});
            let t = spawn(|| {
                let s = server.accept();
                print(`server ${s.tls.version} sni ${s.tls.sni}`);
                s.recv();
            });
            let opts = #{tls: #{ca: server.cert_pem}};
            let ws = ws_connect(`wss://localhost:${server.port}/`, opts);
            print(`client ${ws.tls.version} ${ws.tls.cipher.starts_with("TLS")} sni ${ws.tls.sni}`);
            ws.close();
            t.join();
            let plain = ws_listen("127.0.0.1:0");
            print(`ws: ${ws_connect(`ws://${plain.addr}/`).tls}`);
            "#,
        )
        .run()
        .code(0)
        .stdout_has("client TLSv1_3 true sni \n")
        .stdout_has("server TLSv1_3 sni localhost\n")
        .stdout_has("ws: \n")
        .stderr_has(": 101, tls TLSv1_3 TLS13_")
        .stderr_has(" ws#1: /, tls TLSv1_3 TLS13_");
}

/// Pings and the peer's close are answered by a WebSocket whose script reads nothing (its
/// task waits on a channel): `ping` gets its pong and `close` the peer's close frame, and the
/// transcript shows what it read and answered as the `auto` task's, when it came. A ping the
/// script did not read shows in its next `recv_message`.
#[test]
fn a_websocket_whose_script_reads_nothing_still_answers_pings_and_closes() {
    let out = Test::new()
        .args(&["--trace", "--timeout", "5s"])
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0");
            let ws = ws_connect(`ws://${server.addr}/`);
            let s = server.accept();
            let start = channel();
            let t = spawn(|| {
                start.recv();
                let first = s.recv_message().type;
                `server saw: ${first}, then ${s.recv()}, then ${s.recv()}`
            });
            print(`pong: ${type_of(ws.ping())}`);
            ws.send("hello");
            ws.close();
            print("closed");
            start.send(1);
            print(t.join());
            "#,
        )
        .run();
    out.code(0)
        .stdout("pong: f64\nclosed\nserver saw: ping, then hello, then \n")
        .stderr_has("auto     send     ")
        .stderr_has("(17 bytes): pong")
        .stderr_has("(5 bytes): text\n    \"hello\"");
    assert!(!out.stderr.contains("task 1   recv"), "{}", out.stderr);
}

/// The reader in the background holds a bounded amount of messages the script has not read: a
/// peer that sends and sends still meets back-pressure (its send times out), as it would with
/// no reader at all.
#[test]
fn a_websocket_whose_script_reads_nothing_still_pushes_back() {
    Test::new()
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0");
            let ws = ws_connect(`ws://${server.addr}/`);
            let s = server.accept();
            let chunk = blob(65536, 120);
            s.timeout = 1000;
            let sent = 0;
            let why = "all sent";
            try {
                for i in 0..512 {
                    s.send(chunk);
                    sent += 1;
                }
            } catch (e) {
                why = e.kind;
            }
            print(`${why} after fewer than 256: ${sent < 256}`);
            "#,
        )
        .run()
        .code(0)
        .stdout("timeout after fewer than 256: true\n");
}

/// A peer that floods empty messages at a WebSocket whose script reads nothing: the reader in
/// the background stops at its bound (each message counts, not only its bytes) and lets the
/// runtime's other work run, so the script's `sleep` ends on time. (It read the flood into
/// memory without end, holding the runtime's thread: the `sleep` ended with the flood.)
#[test]
fn a_flood_of_empty_messages_is_bounded_and_holds_up_nothing() {
    let mut peer = python(
        r#"
import base64, hashlib, socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
head = b""
while b"\r\n\r\n" not in head:
    head += c.recv(4096)
key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
c.settimeout(5)
flood = b"\x82\x00" * 65536
end = time.monotonic() + 10
try:
    while time.monotonic() < end:
        c.sendall(flood)
except OSError:
    pass
"#,
    );
    let port = peer.port();
    let out = Test::new()
        .args(&["--max-time", "20s"])
        .script(&format!(
            r#"
            let ws = ws_connect("ws://127.0.0.1:{port}/");
            sleep(1000);
            print("slept");
            "#
        ))
        .run();
    let _ = peer.wait();
    out.code(0)
        .stdout_has("slept")
        .faster_than(std::time::Duration::from_secs(6));
}
