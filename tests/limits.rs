//! Each `--limit` (README "Reliability"): the default holds, a lower value is reached with the
//! documented error, and a bad value is a usage error.

use crate::harness::Test;

/// A server task that sends `n` bytes of `x` and no newline, then waits for the client.
const SERVER: &str = r#"
let server = listen("127.0.0.1:0");
let t = spawn(|| {
    let c = server.accept();
    c.send(blob(N, 120));
    c.recv_all();
});
let c = connect(server.addr);
"#;

fn with_server(n: usize, rest: &str) -> String {
    SERVER.replace("N", &n.to_string()) + rest
}

#[test]
fn line_limits_how_far_a_delimiter_is_searched() {
    let script = with_server(
        3000,
        r#"let e = assert_err(|| c.recv_line(), "too_long"); print(e.message);
           assert_eq(c.recv_exact_bytes(3000).len, 3000);"#,
    );
    Test::new()
        .script(&script)
        .args(&["--limit", "line=1KiB"])
        .run()
        .code(0)
        .stdout_has("(the limit is 1024 bytes)");
    // Under the default (1 MiB) the same search just waits for more.
    Test::new()
        .script(&with_server(
            3000,
            r#"c.timeout = 200; assert_err(|| c.recv_line(), "timeout");"#,
        ))
        .run()
        .code(0);
}

#[test]
fn buffer_limits_what_recv_all_collects() {
    let script = with_server(
        100_000,
        r#"c.shutdown(); let e = assert_err(|| c.recv_all(), "too_long"); print(e.kind);"#,
    );
    Test::new()
        .script(&script)
        .args(&["--limit", "buffer=64KiB"])
        .run()
        .code(0)
        .stdout("too_long\n");
    let e = assert_err_kind("let x = 1;", &["--limit", "buffer=0"]);
    assert!(e.contains("must be at least 1"), "{e}");
}

#[test]
fn handles_limits_the_sockets_open_at_once() {
    Test::new()
        .script(
            r#"let l = listen("127.0.0.1:0");
               let a = connect(l.addr);
               let e = assert_err(|| connect(l.addr), "limit");
               print(e.message);
               a.close();"#,
        )
        .args(&["--limit", "handles=2"])
        .run()
        .code(0)
        .stdout_has("already has 2 sockets open");
}

#[test]
fn closing_a_handle_gives_its_place_back() {
    Test::new()
        .script(
            r#"let l = listen("127.0.0.1:0");
               for i in 0..20 { let c = connect(l.addr); let s = l.accept(); c.close(); s.close(); }"#,
        )
        .args(&["--limit", "handles=3"])
        .run()
        .code(0);
}

#[test]
fn tasks_limits_spawn() {
    Test::new()
        .script(
            r#"let a = spawn(|| 1); let b = spawn(|| 2);
               let e = assert_err(|| spawn(|| 3), "limit");
               print(e.message);
               assert_eq(a.join() + b.join(), 3);"#,
        )
        .args(&["--limit", "tasks=2"])
        .run()
        .code(0)
        .stdout_has("its limit of 2 tasks");
}

#[test]
fn operations_stops_a_busy_script_with_a_diagnostic() {
    Test::new()
        .script("let x = 0;\nloop { x += 1; }")
        .args(&["--limit", "operations=100000"])
        .run()
        .code(4)
        .stderr_has("ran past its limit of operations")
        .stderr_has("--limit operations=N");
}

#[test]
fn data_limits_strings_blobs_and_arrays() {
    Test::new()
        .script("let b = blob(4096, 0);")
        .args(&["--limit", "data=1KiB"])
        .run()
        .code(4)
        .stderr_has("larger than the data limit")
        .stderr_has("--limit data=SIZE");
    Test::new().script("let b = blob(4096, 0);").run().code(0);
}

#[test]
fn unknown_and_malformed_limits_are_usage_errors() {
    for bad in ["lines=5", "line", "line=lots", "tasks=-1"] {
        let e = assert_err_kind("let x = 1;", &["--limit", bad]);
        assert!(e.contains("--limit"), "{bad}: {e}");
    }
}

/// Run with `args`, expect exit 2, return stderr.
fn assert_err_kind(script: &str, args: &[&str]) -> String {
    let out = Test::new().script(script).args(args).run();
    out.code(2);
    out.stderr.clone()
}
