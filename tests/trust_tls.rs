//! Trust: a TLS listener serves every client that speaks TLS whatever the others do (stay
//! silent, probe and hang up, send garbage), and a task cannot wait for itself.
//!
//! The TLS tests use real peers (Python's `socket` and `ssl`, and the scenario's own plain
//! connections) and assert on what the scenario got, not on timing alone. With the handshake
//! done inline in `accept`, the tests of silent, stalled and probing clients and of garbage
//! ended in a `timeout` or `tls` error; the others guard what running handshakes in the
//! background must keep (the handle limit, `close` and drop freeing the port, no leaked
//! sockets, no panic on a huge timeout).

use std::time::Duration;

use crate::harness::{python, Test};
use crate::protocols::port_and_pem;

#[test]
fn a_silent_tcp_client_does_not_hold_up_a_tls_client() {
    // The inline handshake waited on the silent client until `--timeout`, then raised
    // `timeout` at `accept`.
    let mut server = Test::new()
        .args(&["--timeout", "4s"])
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed"});
            print(server.port);
            print(server.cert_pem);
            let c = server.accept();
            c.send_line("served");
            print(`${c.tls.version} sni=${c.tls.sni}`);
            // Until the client has looked at its silent connection: the end of the scenario
            // closes that one.
            c.recv_all();
            c.close();
            "#,
        )
        .spawn();
    let (port, pem) = port_and_pem(&mut server);
    let mut clients = python(&format!(
        r#"
import socket, ssl, time
silent = socket.create_connection(("127.0.0.1", {port}), timeout=10)
time.sleep(0.2)
ctx = ssl.create_default_context(cadata="""{pem}""")
raw = socket.create_connection(("127.0.0.1", {port}), timeout=10)
t = ctx.wrap_socket(raw, server_hostname="localhost")
print(t.makefile("rb").readline().decode().strip())
# The silent client is still connected: it was passed over, not closed.
silent.setblocking(False)
try:
    silent.recv(1)
    print("silent closed")
except BlockingIOError:
    print("silent still connected")
t.close()
silent.close()
"#
    ));
    assert_eq!(clients.line(), "served");
    assert_eq!(clients.line(), "silent still connected");
    clients.wait().code(0);
    server.wait().code(0).stdout_has("TLSv1_3 sni=localhost\n");
}

#[test]
fn a_wait_for_probe_does_not_make_accept_raise() {
    let out = Test::new()
        .args(&["--trace"])
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed"});
            let addr = server.addr;
            let ca = server.cert_pem;
            // The probe connects and hangs up without a byte, before any client.
            wait_for(addr);
            let client = spawn(|| {
                let c = connect(addr, #{tls: #{ca: ca}});
                c.recv_line()
            });
            let s = server.accept();
            s.send_line("after the probe");
            assert_eq(client.join(), "after the probe");
            print("served");
            "#,
        )
        .run();
    out.code(0)
        .stdout("served\n")
        .stderr_has("the client closed the connection without sending a byte: skipped");
}

#[test]
fn garbage_behind_a_silent_client_still_raises_tls_at_once() {
    let out = Test::new()
        .args(&["--timeout", "4s"])
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed"});
            let silent = connect(server.addr);
            let junk = connect(server.addr);
            junk.send("GET / HTTP/1.0\r\n\r\n");
            let e = assert_err(|| server.accept(), "tls");
            print(e.message);
            "#,
        )
        .run();
    out.code(0)
        .stdout_has("accept from `127.0.0.1:")
        .stdout_has("tls: handshake failed");
}

#[test]
fn a_client_that_stalls_mid_handshake_raises_tls_at_accept() {
    // It began a handshake (a TLS record header) and went quiet: once the listener's timeout
    // has passed since it connected, its handshake has failed, and `accept` says so.
    Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed", timeout: 300});
            let stalled = connect(server.addr);
            stalled.send(hex("16 03 01"));
            sleep(1000);
            let e = assert_err(|| server.accept(), "tls");
            print(e.message);
            "#,
        )
        .run()
        .code(0)
        .stdout_has("tls: handshake failed: the client did not finish it within 300ms\n");
}

#[test]
fn a_silent_client_is_dropped_at_the_listener_timeout_and_the_next_is_served() {
    // Nobody calls `accept` while the silent client waits: its handshake deadline (the
    // listener's timeout) ends it anyway, so silent clients cannot pile up.
    let out = Test::new()
        .args(&["--trace", "--timeout", "4s"])
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed", timeout: 300});
            let addr = server.addr;
            let ca = server.cert_pem;
            let silent = connect(addr);
            silent.timeout = 2000;
            assert_eq(silent.recv(), "");
            let client = spawn(|| connect(addr, #{tls: #{ca: ca}}).recv_line());
            server.accept().send_line("next");
            assert_eq(client.join(), "next");
            print("ok");
            "#,
        )
        .run();
    out.code(0)
        .stdout("ok\n")
        .stderr_has("the client sent nothing within 300ms: closed, no tls handshake");
}

#[test]
fn a_timeout_too_long_for_the_clock_still_lets_a_tls_listener_serve() {
    // The handshake deadline is the listener's timeout, else `--timeout`; one too long to add
    // to the clock is a century, not a panic in the handshake task.
    Test::new()
        .args(&["--timeout", "584542046090y"])
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed"});
            let ca = server.cert_pem;
            let client = spawn(|| connect(server.addr, #{tls: #{ca: ca}}).recv_line());
            server.accept().send_line("served");
            print(client.join());
            "#,
        )
        .run()
        .code(0)
        .stdout("served\n");
}

#[test]
fn tls_accepts_in_several_tasks_then_close_fails_the_waiting_one_and_frees_the_port() {
    let out = Test::new()
        .args(&["--timeout", "4s"])
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed"});
            let addr = server.addr;
            let ca = server.cert_pem;
            let silent = connect(addr);
            let servers = [];
            for i in 0..3 {
                servers.push(spawn(|| {
                    let c = server.accept();
                    c.send_line("hi");
                    c.recv_all()
                }));
            }
            for i in 0..3 {
                let c = connect(addr, #{tls: #{ca: ca}});
                assert_eq(c.recv_line(), "hi");
                c.send("bye");
                c.close();
            }
            for s in servers { assert_eq(s.join(), "bye"); }
            let ready = channel();
            let waiting = spawn(|| {
                ready.send(());
                assert_err(|| server.accept(), "closed").kind
            });
            ready.recv();
            sleep(100);
            server.close();
            assert_eq(waiting.join(), "closed");
            let again = listen(addr, #{tls: "self-signed"});
            print(`again on ${again.port == server.port}`);
            "#,
        )
        .run();
    out.code(0).stdout("again on true\n");
}

#[test]
fn a_dropped_tls_listener_frees_its_port_at_once() {
    // Its background task owns the socket; dropping the last handle waits for that task to go.
    Test::new()
        .script(
            r#"
            let addr = listen("127.0.0.1:0", #{tls: "self-signed"}).addr;
            let bind = |addr| listen(addr, #{tls: "self-signed"}).port;
            for i in 0..50 { bind.call(addr); }
            print("rebound 50 times");
            "#,
        )
        .run()
        .code(0)
        .stdout("rebound 50 times\n");
}

#[test]
fn tls_accept_still_honours_the_handle_limit() {
    // Regression guard (it passed before): the listener and one client are the two handles.
    Test::new()
        .args(&["--limit", "handles=2"])
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed"});
            let client = connect(server.addr);
            let e = assert_err(|| server.accept(), "limit");
            print(e.message);
            "#,
        )
        .run()
        .code(0)
        .stdout_has("already has 2 sockets open");
}

#[test]
fn closing_a_tls_listener_lets_go_of_clients_still_in_their_handshake() {
    // Guards the background handshakes (the inline ones never held a client): after `close`,
    // none may wait for its deadline (`--timeout 30s`) to let its client go.
    let mut server = Test::new()
        .args(&["--timeout", "30s"])
        .script(
            r#"
            let tls = listen("127.0.0.1:0", #{tls: "self-signed"});
            let control = listen("127.0.0.1:0");
            print(tls.port);
            print(control.port);
            let c = control.accept();
            assert_eq(c.recv_line(), "connected");
            tls.close();
            c.send_line("closed");
            assert_eq(c.recv_line(), "bye");
            "#,
        )
        .spawn();
    let (tls, control) = (server.port(), server.port());
    let mut clients = python(&format!(
        r#"
import socket, time
silent = [socket.create_connection(("127.0.0.1", {tls}), timeout=10) for _ in range(20)]
time.sleep(0.3)
control = socket.create_connection(("127.0.0.1", {control}), timeout=10)
control.sendall(b"connected\n")
assert control.makefile("rb").readline() == b"closed\n"
start = time.monotonic()
for s in silent:
    s.settimeout(5)
    try:
        assert s.recv(1) == b""
    except ConnectionResetError:
        pass
print("let go", "in time" if time.monotonic() - start < 4 else "late")
control.sendall(b"bye\n")
"#
    ));
    assert_eq!(clients.line(), "let go in time");
    clients.wait().code(0);
    server.wait().code(0);
}

/// A TLS scenario that leaves a silent client connected and an `accept` waiting when main ends.
const TLS_SOAK: &str = r#"
let server = listen("127.0.0.1:0", #{tls: "self-signed"});
let ca = server.cert_pem;
wait_for(server.addr);
let silent = connect(server.addr);
let client = spawn(|| connect(server.addr, #{tls: #{ca: ca}}).recv_line());
let conn = server.accept();
conn.send_line("hi");
assert_eq(client.join(), "hi");
spawn(|| server.accept());
"#;

#[test]
fn tls_listeners_leak_no_tasks_or_sockets_over_many_runs() {
    // The background handshakes end with their scenario, not at their deadline (`--timeout
    // 30s` here): a handshake task that outlived its run would keep its socket open.
    const RUNS: usize = 600;
    let (out, samples) = crate::soak::runs_sampled(TLS_SOAK, RUNS, &["--timeout", "30s"]);
    out.code(0).stderr_has(&format!("{RUNS} passed, 0 failed"));
    crate::soak::assert_no_leak(&samples);
}

// ---------------------------------------------------------------------------------------------
// join

#[test]
fn a_task_joining_itself_fails_at_once_with_invalid_argument() {
    // Caught: the kind and the message.
    Test::new()
        .args(&["--max-time", "20s"])
        .script(
            r#"
            let handle = channel();
            let t = spawn(|| {
                let me = handle.recv();
                let e = assert_err(|| me.join(), "invalid_argument");
                e.message
            });
            handle.send(t);
            print(t.join());
            "#,
        )
        .wall(Duration::from_secs(10))
        .run()
        .code(0)
        .stdout("join: `task 1` cannot wait for itself: the join would never end\n");
    // Uncaught: the scenario fails (exit 4) with that error, not at `--max-time` (the wall of
    // 10s would kill it first).
    Test::new()
        .args(&["--max-time", "20s"])
        .script(
            r#"
            let handle = channel();
            let t = spawn(|| handle.recv().join());
            handle.send(t);
            t.join();
            "#,
        )
        .wall(Duration::from_secs(10))
        .run()
        .code(4)
        .stderr_has("cannot wait for itself")
        .stderr_has("invalid_argument");
}

#[test]
fn a_join_cycle_is_refused_with_invalid_argument_naming_it() {
    Test::new()
        .args(&["--max-time", "20s"])
        .script(
            r#"
            let to_a = channel();
            let to_b = channel();
            let run = |inbox| {
                let other = inbox.recv();
                let got = "joined";
                try { other.join(); } catch (e) { got = `${e.kind}: ${e.message}`; }
                got
            };
            let a = spawn(|| run.call(to_a));
            let b = spawn(|| run.call(to_b));
            to_a.send(b);
            to_b.send(a);
            let results = [a.join(), b.join()];
            let refused = results.filter(|r| r.starts_with("invalid_argument"));
            assert(refused.len() >= 1, `no join was refused: ${results}`);
            print(refused[0]);
            "#,
        )
        .wall(Duration::from_secs(10))
        .run()
        .code(0)
        .stdout_has("invalid_argument: join: `task ")
        .stdout_has("which waits for `task ")
        .stdout_has("the tasks would wait for each other forever");
}

#[test]
fn join_with_a_deadline_raises_a_catchable_timeout() {
    let out = Test::new()
        .args(&["--max-time", "20s"])
        .script(
            r#"
            let sleeper = spawn(|| sleep(10000));
            let e = assert_err(|| sleeper.join(100), "timeout");
            print(e.message);
            assert_err(|| sleeper.join("150ms"), "timeout");
            assert_eq(spawn(|| 42).join("2s"), 42);
            assert_err(|| sleeper.join("soon"), "invalid_argument");
            // A join with a deadline ends anyway: closing a cycle with one is not refused.
            let to_a = channel();
            let to_b = channel();
            let a = spawn(|| to_a.recv().join());
            let b = spawn(|| {
                let a = to_b.recv();
                assert_err(|| a.join(200), "timeout");
                "b gave up on a"
            });
            to_a.send(b);
            to_b.send(a);
            assert_eq(a.join(), "b gave up on a");
            print("done");
            "#,
        )
        .wall(Duration::from_secs(10))
        .run();
    out.code(0)
        .stdout("join timed out after 100ms\ndone\n")
        .faster_than(Duration::from_secs(5));
}

/// `SSL_CERT_FILE` naming a pipe: reading the system's roots would block for good; the TLS
/// connect raises `tls` at once, naming it.
#[test]
fn ssl_cert_file_naming_a_pipe_is_a_tls_error_not_a_hang() {
    let dir = crate::harness::temp_dir("cert-fifo");
    let fifo = dir.join("roots.pem");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    Test::new()
        .env("SSL_CERT_FILE", &fifo.to_string_lossy())
        .args(&["--max-time", "20s"])
        .script(
            r#"
            let l = listen("127.0.0.1:0", #{tls: "self-signed"});
            spawn(|| { l.accept(); });
            let e = assert_err(|| connect(l.addr, #{tls: true}), "tls");
            print(e.message);
            "#,
        )
        .run()
        .code(0)
        .faster_than(Duration::from_secs(10))
        .stdout_has("is not a regular file");
    let _ = std::fs::remove_dir_all(&dir);
}
