//! The scripting API's semantics (DESIGN.md §2), one scenario each. The assertions live inside
//! the rhai script, so each test only asks that the scenario passes: exit 0.

use std::time::Duration;

use crate::harness::{Output, Test};

/// Run `source` with a short default deadline and require it to pass.
#[track_caller]
fn passes(source: &str) -> Output {
    let out = Test::new().args(&["--timeout", "2s"]).script(source).run();
    out.code(0);
    out
}

#[test]
fn send_and_recv_round_trip() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        let echo = spawn(|| {
            let c = server.accept();
            let line = c.recv_line();
            c.send_line(`echo: ${line}`);
            let raw = c.recv();
            c.send(raw);
            c.recv_all()
        });
        let c = connect(server.addr);
        assert_eq(c.send_line("hello"), 6);
        assert_eq(c.recv_line(), "echo: hello");
        assert_eq(c.send("héllo"), 6);
        assert_eq(c.recv_exact(6), "héllo");
        c.send("bye");
        c.close();
        assert_eq(echo.join(), "bye");
        "#,
    );
}

#[test]
fn recv_until_consumes_the_delimiter() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {
            let c = server.accept();
            c.send("a;b;;c--END--tail");
            c.close();
        });
        let c = connect(server.addr);
        assert_eq(c.recv_until(";"), "a");
        assert_eq(c.recv_until(";"), "b");
        assert_eq(c.recv_until(";"), "");
        assert_eq(c.recv_until("--END--"), "c");
        assert_eq(c.recv_all(), "tail");
        "#,
    );
}

#[test]
fn recv_exact_takes_exactly_n_bytes_and_never_a_partial_result() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {
            let c = server.accept();
            c.send("abc");
            c.send("def");
            c.close();
        });
        let c = connect(server.addr);
        assert_eq(c.recv_exact(2), "ab");
        assert_eq(c.recv_exact(3), "cde");
        // Only one byte is left: EOF raises, and the byte stays for the next call.
        let e = assert_err(|| c.recv_exact(5), "eof");
        assert_eq(e.op, "recv_exact");
        assert_eq(c.recv_all(), "f");
        "#,
    );
}

#[test]
fn recv_all_collects_until_the_peer_closes() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {
            let c = server.accept();
            for i in 0..5 { c.send(`part${i};`); }
            c.close();
        });
        let c = connect(server.addr);
        assert_eq(c.recv_all(), "part0;part1;part2;part3;part4;");
        // After EOF there is nothing more: recv and recv_all say so with "".
        assert_eq(c.recv_all(), "");
        assert_eq(c.recv(), "");
        "#,
    );
}

#[test]
fn expect_returns_text_groups_and_before() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {
            let c = server.accept();
            c.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
            c.recv_all();
        });
        let c = connect(server.addr);
        let m = c.expect("Content-Length: (\\d+)");
        assert_eq(m.text, "Content-Length: 5");
        assert_eq(m.before, "HTTP/1.1 200 OK\r\n");
        assert_eq(m.groups.len(), 1);
        assert_eq(m.groups[0], "5");
        // Consumed through the match, no further.
        assert_eq(c.recv_until("\r\n\r\n"), "");
        assert_eq(c.recv_exact(parse_int(m.groups[0])), "hello");
        "#,
    );
}

#[test]
fn a_recv_that_timed_out_loses_no_bytes() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        let resume = channel();
        spawn(|| {
            let c = server.accept();
            c.send("part");
            resume.recv();
            c.send("ial\n");
            c.recv_all();
        });
        let c = connect(server.addr);
        c.timeout = 150;
        try {
            c.recv_line();
            fail("recv_line should have timed out");
        } catch (e) {
            assert_eq(e.kind, "timeout");
            assert_eq(e.op, "recv_line");
        }
        resume.send(true);
        c.timeout = "2s";
        assert_eq(c.recv_line(), "partial");
        "#,
    );
}

#[test]
fn shutdown_half_closes_and_keeps_receiving() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {
            let c = server.accept();
            // Ends only because the client's FIN arrives.
            let request = c.recv_all();
            c.send(`got ${request.len()} bytes: ${request}`);
            c.close();
        });
        let c = connect(server.addr);
        c.send("request");
        c.shutdown();
        assert_err(|| c.send("more"), "closed");
        assert_eq(c.recv_all(), "got 7 bytes: request");
        "#,
    );
}

#[test]
fn connection_endpoints_match_across_the_two_sides() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        assert_eq(server.host, "127.0.0.1");
        assert(server.port > 0, "port 0 is replaced by the bound port");
        assert_eq(server.addr, `127.0.0.1:${server.port}`);
        let t = spawn(|| {
            let s = server.accept();
            #{ peer: s.peer, local: s.local, peer_port: s.peer_port, local_port: s.local_port,
               peer_ip: s.peer_ip }
        });
        let c = connect(server.addr);
        let other = t.join();
        assert_eq(c.peer, server.addr);
        assert_eq(c.peer_port, server.port);
        assert_eq(c.peer_ip, "127.0.0.1");
        assert_eq(c.local, `127.0.0.1:${c.local_port}`);
        assert_eq(other.peer_port, c.local_port);
        assert_eq(other.local_port, c.peer_port);
        assert_eq(other.peer, c.local);
        assert_eq(other.local, c.peer);
        assert_eq(other.peer_ip, "127.0.0.1");
        "#,
    );
}

#[test]
fn channels_carry_values_between_tasks_in_order() {
    passes(
        r#"
        let ch = channel();
        let back = channel();
        let producer = spawn(|| {
            for i in 1..=5 { ch.send(i); }
            ch.send(#{ done: true, words: ["a", "b"] });
            back.recv()
        });
        let got = [];
        for i in 1..=5 { got.push(ch.recv()); }
        assert_eq(got, [1, 2, 3, 4, 5]);
        let last = ch.recv();
        assert_eq(last.done, true);
        assert_eq(last.words, ["a", "b"]);
        back.send("thanks");
        assert_eq(producer.join(), "thanks");
        // An empty channel times out like any blocking call.
        assert_err(|| ch.recv(100), "timeout");
        "#,
    );
}

#[test]
fn within_bounds_a_recv_and_the_timeout_is_catchable() {
    let out = passes(
        r#"
        let server = listen("127.0.0.1:0");
        let c = connect(server.addr);
        let e = assert_err(|| within(200, || c.recv()), "timeout");
        print(e.kind);
        try {
            within("150ms", || c.recv_line());
        } catch (e) {
            print(`caught ${e.kind}`);
        }
        // A closure that finishes in time hands back its value.
        assert_eq(within("1s", || 6 * 7), 42);
        "#,
    );
    out.stdout("timeout\ncaught timeout\n")
        .faster_than(Duration::from_secs(3));
}

#[test]
fn within_also_stops_a_cpu_loop() {
    passes(
        r#"
        let e = assert_err(|| within(100, || { let n = 0; loop { n += 1; } }), "timeout");
        assert_eq(e.kind, "timeout");
        "#,
    )
    .faster_than(Duration::from_secs(3));
}

#[test]
fn sleep_with_a_unit_string() {
    passes(
        r#"
        let t = timestamp();
        sleep("150ms");
        let took = t.elapsed;
        assert(took >= 0.15, `slept ${took}s`);
        assert(took < 2.0, `slept ${took}s`);
        "#,
    );
}

#[test]
fn sleep_with_integer_milliseconds() {
    // The wall bound keeps the bug (a 100 s sleep that ignores cancellation) from stalling
    // the suite.
    let out = Test::new()
        .args(&["--max-time", "3s"])
        .script(
            r#"
            let t = timestamp();
            sleep(100);
            let took = t.elapsed;
            assert(took >= 0.1, `slept ${took}s`);
            assert(took < 2.0, `slept ${took}s`);
            "#,
        )
        .wall(Duration::from_secs(6))
        .run();
    out.code(0);
}

#[test]
fn handle_timeouts_read_back_in_milliseconds() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        let c = connect(server.addr);
        server.accept();
        assert_eq(c.timeout, ());
        c.timeout = "2s";
        assert_eq(c.timeout, 2000);
        server.timeout = 250;
        assert_eq(server.timeout, 250);
        assert_err(|| server.accept(), "timeout");
        "#,
    );
}

#[test]
fn blobs_round_trip_byte_for_byte() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {
            let c = server.accept();
            let b = c.recv_until_bytes("\r\n");
            c.send(b);
            c.close();
        });
        let c = connect(server.addr);
        let out = blob();
        for i in [0, 255, 128, 10, 0] { out.push(i); }
        c.send(out);
        c.send("\r\n");
        let back = c.recv_all_bytes();
        assert_eq(back, out);
        "#,
    );
}

#[test]
fn errors_are_maps_with_kind_message_op_and_addr() {
    passes(
        r#"
        let l = listen("127.0.0.1:0");
        let addr = l.addr;
        l.close();
        try {
            connect(addr);
            fail("connect should have been refused");
        } catch (e) {
            assert_eq(e.kind, "connection_refused");
            assert_eq(e.op, "connect");
            assert_eq(e.addr, addr);
            assert_eq(e.message, "connect to `" + addr + "` failed: connection refused");
        }
        assert_err(|| connect("127.0.0.1"), "invalid_address");
        assert_err(|| l.accept(), "closed");
        "#,
    );
}

#[test]
fn print_shows_handles() {
    let out = passes(
        r#"
        let server = listen("127.0.0.1:0");
        print(server);
        let c = connect(server.addr);
        c.close();
        print(c);
        "#,
    );
    let text = crate::harness::normalize(&out.stdout);
    assert_eq!(
        text,
        "Listener(127.0.0.1:PORT)\nConn(127.0.0.1:PORT -> 127.0.0.1:PORT, closed)\n"
    );
}

#[test]
fn one_task_sends_while_another_receives_on_the_same_connection() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        let c = connect(server.addr);
        let s = server.accept();
        let reader = spawn(|| c.recv_line());
        // The reader holds the read half; the write half is free.
        c.send_line("to server");
        assert_eq(s.recv_line(), "to server");
        s.send_line("to client");
        assert_eq(reader.join(), "to client");
        "#,
    );
}

#[test]
fn closing_a_connection_wakes_a_recv_blocked_in_another_task() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        let c = connect(server.addr);
        let s = server.accept();
        let result = channel();
        spawn(|| {
            try { c.recv(); result.send("returned"); } catch (e) { result.send(e.kind); }
        });
        sleep("100ms");
        c.close();
        assert_eq(result.recv(), "closed");
        assert(c.closed);
        "#,
    );
}

#[test]
fn spawn_copies_loop_variables() {
    passes(
        r#"
        let tasks = [];
        for i in 0..4 { tasks.push(spawn(|| i * 10)); }
        let got = [];
        for t in tasks { got.push(t.join()); }
        assert_eq(got, [0, 10, 20, 30]);
        "#,
    );
}

#[test]
fn a_line_longer_than_the_limit_is_too_long() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {
            let c = server.accept();
            let text = "a";
            while text.len() < 1100000 { text += text; }
            c.send(text);
            c.recv_all();
        });
        let c = connect(server.addr);
        let e = assert_err(|| c.recv_line(), "too_long");
        assert_eq(e.op, "recv_line");
        "#,
    );
}

#[test]
fn recv_all_bytes_takes_more_than_a_megabyte() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {
            let c = server.accept();
            let text = "a";
            while text.len() < 1200000 { text += text; }
            c.send(text);
            c.close();
        });
        let c = connect(server.addr);
        assert_eq(c.recv_all_bytes().len(), 2097152);
        "#,
    );
}

#[test]
fn a_send_cut_off_by_its_deadline_poisons_the_connection() {
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        let c = connect(server.addr);
        // Accepted but never read: the socket buffers fill up and a send blocks part-way.
        let s = server.accept();
        let chunk = "x";
        while chunk.len() < 1000000 { chunk += chunk; }
        c.timeout = 200;
        let kind = "none";
        try {
            for i in 0..1000 { c.send(chunk); }
        } catch (e) {
            kind = e.kind;
        }
        assert_eq(kind, "timeout");
        let e = assert_err(|| c.send("more"), "io");
        assert(e.message.contains("cut off"), e.message);
        "#,
    );
}

#[test]
fn handle_options_set_the_timeout() {
    passes(
        r#"
        let server = listen("127.0.0.1:0", #{ timeout: 150 });
        assert_eq(server.timeout, 150);
        assert_err(|| server.accept(), "timeout");
        let c = connect(server.addr, #{ timeout: "300ms" });
        assert_eq(c.timeout, 300);
        let e = assert_err(|| connect(server.addr, #{ timout: 1 }));
        assert_eq(e.kind, "invalid_argument");
        "#,
    );
}

#[test]
fn names_and_ipv6_addresses_resolve() {
    let out = passes(
        r#"
        let named = listen("localhost:0");
        let c = connect(`localhost:${named.port}`);
        assert_eq(named.accept().peer_port, c.local_port);
        try {
            let v6 = listen("[::1]:0");
            assert_eq(v6.addr, `[::1]:${v6.port}`);
            let c6 = connect(v6.addr);
            assert_eq(c6.peer_ip, "::1");
            print("ipv6 ok");
        } catch (e) {
            // A machine without IPv6 loopback cannot run this half.
            assert(e.kind == "addr_not_available" || e.kind == "io", e.message);
            print("ipv6 ok");
        }
        "#,
    );
    out.stdout("ipv6 ok\n");
}

#[test]
fn large_exact_reads_keep_every_byte_across_timeouts_and_leftovers() {
    // Reads of 4 KiB or more get a buffer of their own size; this checks them against a real
    // peer: one arriving whole, one cut by a timeout half-way, ones arriving back to back with
    // more behind them, and text.
    let mut peer = crate::harness::python_listener(
        r#"
c, _ = s.accept()
record = bytes(i % 251 for i in range(10000))
c.sendall(record)
c.sendall(record[:5000])
c.makefile("rb").readline()  # the client's "more": it has timed out on the half record
c.sendall(record[5000:] + record + ("é" * 3000).encode() + b"tail")
c.close()
"#,
    );
    let port = peer.port();
    Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let record = blob();
            for i in 0..10000 { record.push(i % 251); }
            let c = connect(`127.0.0.1:${port}`);
            assert_eq(c.recv_exact_bytes(10000), record);
            c.timeout = 200;
            try {
                c.recv_exact_bytes(10000);
                fail("the half record should have timed out");
            } catch (e) {
                assert_eq(e.kind, "timeout");
            }
            c.timeout = "5s";
            c.send_line("more");
            assert_eq(c.recv_exact_bytes(10000), record);
            assert_eq(c.recv_exact_bytes(10000), record);
            let text = c.recv_exact(6000);
            assert_eq(text.len(), 3000);
            let accents = "";
            for i in 0..3000 { accents += "é"; }
            assert_eq(text, accents);
            assert_eq(c.recv_all(), "tail");
            print("ok");
            "#,
        )
        .run()
        .code(0)
        .stdout("ok\n");
    peer.wait().code(0);
}

#[test]
fn a_connection_dropped_with_unread_input_still_ends_with_fin() {
    // The server task answers and lets its connection go without reading the client's second
    // line; closing a socket with unread input sends RST, so the FIN must go first for the
    // client to see the end of the stream rather than "connection reset".
    passes(
        r#"
        let server = listen("127.0.0.1:0");
        let done = channel();
        let serving = spawn(|| {
            let c = server.accept();
            let q = c.recv_line();
            c.send_line(`re: ${q}`);
            done.recv();
        });
        let c = connect(server.addr);
        c.send_line("GET /");
        assert_eq(c.recv_line(), "re: GET /");
        c.send_line("never read");
        done.send(true);
        serving.join();
        assert_eq(c.recv_all(), "");
        "#,
    );
}

#[test]
fn one_connection_sends_and_receives_at_once_in_two_tasks() {
    // A Python echo peer sends everything back as it reads it, so neither side can finish
    // unless this connection sends and receives at the same time: a task sends 64 MiB while the
    // main script receives it. Both wait on the socket at once (for room to send, for data to
    // read), sharing its registration with the runtime's poller.
    let mut peer = crate::harness::python_listener(
        r#"
c, _ = s.accept()
c.settimeout(30)
while True:
    data = c.recv(65536)
    if not data:
        break
    c.sendall(data)
c.close()
"#,
    );
    let port = peer.port();
    Test::new()
        .args(&["--var", &format!("port={port}"), "--timeout", "20s"])
        .script(
            r#"
            let c = connect(`127.0.0.1:${port}`);
            let chunk = blob();
            for i in 0..65536 { chunk.push(i % 253); }
            let sending = spawn(|| {
                for i in 0..1024 { c.send(chunk); }
                c.shutdown();
            });
            for i in 0..1024 {
                assert_eq(c.recv_exact_bytes(65536), chunk, `chunk ${i}`);
            }
            assert_eq(c.recv_all_bytes().len(), 0);
            sending.join();
            print("ok");
            "#,
        )
        .wall(Duration::from_secs(60))
        .run()
        .code(0)
        .stdout("ok\n");
    peer.wait().code(0);
}
