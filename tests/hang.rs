//! No run can hang: a blocked call ends at its deadline, a failing task stops the others at
//! once, tasks still blocked when the main script returns are cancelled quietly, and
//! `--max-time` stops even a CPU loop. Each test bounds the wall time it allows.

use std::time::Duration;

use crate::harness::{python_listener, Test};

#[test]
fn a_silent_peer_times_out_at_the_timeout_given() {
    // Accepts, then says nothing until the test closes its stdin.
    let mut peer = python_listener(
        r#"
c, addr = s.accept()
sys.stdin.read()
"#,
    );
    let port = peer.port();
    let out = Test::new()
        .args(&["--timeout", "500ms", "--var", &format!("port={port}")])
        .script(
            r#"
            let conn = connect(`127.0.0.1:${port}`);
            conn.recv();
            "#,
        )
        .wall(Duration::from_secs(10))
        .run();
    out.code(4)
        .stderr_has("timed out after 500ms")
        .stderr_has("--timeout` (500ms)")
        .faster_than(Duration::from_secs(3));
    assert!(
        out.elapsed >= Duration::from_millis(500),
        "gave up early: {:?}",
        out.elapsed
    );
    peer.close_stdin();
    peer.wait().code(0);
}

#[test]
fn main_returning_cancels_a_task_blocked_in_accept() {
    Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let serving = spawn(|| {
                loop { server.accept(); }
            });
            print("main done");
            "#,
        )
        .wall(Duration::from_secs(10))
        .run()
        .code(0)
        .stdout("main done\n")
        .stderr("")
        .faster_than(Duration::from_secs(2));
}

#[test]
fn main_returning_cancels_tasks_blocked_in_recv() {
    // The tasks own both ends of their connections, so only cancellation can wake them.
    Test::new()
        .script(
            r#"
            spawn(|| {
                let server = listen("127.0.0.1:0");
                let c = connect(server.addr);
                let s = server.accept();
                s.recv_line()
            });
            spawn(|| channel().recv());
            spawn(|| sleep("30s"));
            "#,
        )
        .wall(Duration::from_secs(10))
        .run()
        .code(0)
        .stderr("")
        .faster_than(Duration::from_secs(2));
}

/// Run `copies` copies of `source` in test mode; races show up as differing outcomes.
fn repeated(source: &str, copies: usize) -> crate::harness::Output {
    let mut t = Test::new().args(&["--test", "-j", "4"]);
    for i in 0..copies {
        t = t.write(&format!("copy{i:02}.rhai"), source);
    }
    t.path(".").wall(Duration::from_secs(20)).run()
}

#[test]
fn main_returning_never_fails_a_task_reading_from_main() {
    // Main holds the client end. When main returns, the task must be cancelled (a pass), not
    // woken by the EOF of main's connection closing (a failure). Racy, hence 30 copies.
    let out = repeated(
        r#"
        let server = listen("127.0.0.1:0");
        let c = connect(server.addr);
        let s = server.accept();
        spawn(|| s.recv_line());
        "#,
        30,
    );
    out.code(0).stderr_has("30 passed, 0 failed");
}

#[test]
fn a_failing_task_stops_main_blocked_in_recv_line() {
    let out = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            spawn(|| {
                sleep("50ms");
                fail("the server gave up");
            });
            let conn = connect(server.addr);
            conn.recv_line();
            "#,
        )
        .wall(Duration::from_secs(10))
        .run();
    out.code(1)
        .stderr_has("task 1: the server gave up")
        .stderr_has("task 1 was spawned here")
        .faster_than(Duration::from_secs(2));
}

#[test]
fn a_task_error_stops_main_blocked_in_recv_line() {
    let out = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let closed = listen("127.0.0.1:0");
            let closed_addr = closed.addr;
            closed.close();
            spawn(|| {
                sleep("50ms");
                connect(closed_addr);
            });
            let conn = connect(server.addr);
            conn.recv_line();
            "#,
        )
        .wall(Duration::from_secs(10))
        .run();
    out.code(4)
        .stderr_has("task 1: connect to `127.0.0.1:")
        .stderr_has("connection refused")
        .faster_than(Duration::from_secs(2));
}

#[test]
fn a_failing_task_is_reported_not_the_eof_it_caused() {
    // The task fails while holding the accepted end; unwinding closes it, and main's recv_line
    // sees EOF. The scenario must still report the task's assertion (exit 1), every time.
    let out = repeated(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {
            let c = server.accept();
            fail("the server gave up");
        });
        let conn = connect(server.addr);
        conn.recv_line();
        "#,
        30,
    );
    out.code(1).stderr_has("0 passed, 30 failed");
    let errored = out
        .stderr
        .lines()
        .filter(|l| l.contains(": ERROR ("))
        .count();
    assert_eq!(errored, 0, "{}", out.stderr);
}

#[test]
fn a_failing_task_stops_its_sibling_tasks() {
    let out = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let waiter = spawn(|| server.accept());
            let failer = spawn(|| { sleep("50ms"); throw "task broke"; });
            waiter.join();
            "#,
        )
        .wall(Duration::from_secs(10))
        .run();
    out.code(4)
        .stderr_has("task 2: uncaught: task broke")
        .faster_than(Duration::from_secs(2));
}

#[test]
fn max_time_stops_a_cpu_loop() {
    Test::new()
        .args(&["--max-time", "1s"])
        .script("let n = 0; loop { n += 1; }")
        .wall(Duration::from_secs(10))
        .run()
        .code(4)
        .stderr_has("the scenario ran past its deadline of 1s")
        .faster_than(Duration::from_secs(3));
}

#[test]
fn max_time_stops_a_cpu_loop_in_a_task() {
    Test::new()
        .args(&["--max-time", "1s"])
        .script("let t = spawn(|| { let n = 0; loop { n += 1; } }); t.join();")
        .wall(Duration::from_secs(10))
        .run()
        .code(4)
        .stderr_has("ran past its deadline of 1s")
        .faster_than(Duration::from_secs(3));
}

#[test]
fn max_time_cannot_be_caught() {
    Test::new()
        .args(&["--max-time", "500ms"])
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let c = connect(server.addr);
            try { c.recv(); } catch (e) { print(`caught ${e}`); }
            print("after");
            "#,
        )
        .wall(Duration::from_secs(10))
        .run()
        .code(4)
        .stdout("")
        .stderr_has("ran past its deadline of 500ms")
        .faster_than(Duration::from_secs(3));
}

#[test]
fn a_read_fed_without_pause_still_ends_at_its_deadline() {
    // The peer never stops sending (the kernel feeds a 16 MiB `sendall` as fast as the script
    // reads), so the read always finds more and never has to wait: it must still look at its
    // deadline, and would otherwise run on until the 1 GiB buffer limit given here.
    let mut peer = python_listener(
        r#"
c, addr = s.accept()
block = b"x" * (16 << 20)
try:
    while True:
        c.sendall(block)
except OSError:
    pass
"#,
    );
    let port = peer.port();
    let out = Test::new()
        .args(&["--var", &format!("port={port}"), "--limit", "buffer=1GiB"])
        .script(
            r#"
            let conn = connect(`127.0.0.1:${port}`);
            conn.timeout = 100;
            let started = timestamp();
            try {
                conn.recv_all_bytes();
                fail("recv_all_bytes should have timed out");
            } catch (e) {
                assert_eq(e.kind, "timeout");
            }
            let took = started.elapsed;
            assert(took < 0.5, `the 100 ms timeout ended the read after ${took} s`);
            print("timed out");
            "#,
        )
        .wall(Duration::from_secs(30))
        .run();
    out.code(0).stdout("timed out\n");
    peer.wait().code(0);
}

/// A read spins for up to 50 µs before its thread sleeps; one that waits a second spends no
/// CPU beyond that. Checked with the process pinned to one CPU (on a machine of two or more,
/// where a pinned process's read spins as the yielding spinner) and unpinned. The Python
/// client reads the sockscript process's CPU time from `/proc` around a second of silence.
#[cfg(target_os = "linux")]
#[test]
fn a_read_that_waits_spends_no_cpu_pinned_or_not() {
    for pin in [true, false] {
        let mut server = Test::new()
            .script(
                r#"
                let server = listen("127.0.0.1:0");
                print(server.port);
                let c = server.accept();
                c.timeout = "20s";
                print(c.recv_line());
                "#,
            )
            .spawn();
        let port = server.port();
        let pid = server.id();
        let pin = if pin { "True" } else { "False" };
        let mut py = crate::harness::python(&format!(
            r#"
import os, time
from peer import connect, cpu_seconds
def cpu():
    return cpu_seconds({pid})
if {pin}:
    for t in os.listdir("/proc/{pid}/task"):
        os.sched_setaffinity(int(t), {{0}})
c = connect({port})
time.sleep(0.2)
before = cpu()
time.sleep(1.0)
print(round(cpu() - before, 3))
c.sendall(b"done\n")
"#
        ));
        let out = py.wait();
        out.code(0);
        server.wait().code(0).stdout_has("done");
        let secs: f64 = out.stdout.trim().parse().unwrap_or(-1.0);
        assert!(
            (0.0..0.1).contains(&secs),
            "CPU over a second of waiting (pinned: {pin}): {secs}s"
        );
    }
}
