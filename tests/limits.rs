//! Each `--limit` (README "Reliability"): the default holds, a lower value is reached with the
//! documented error, and a bad value is a usage error.

use crate::harness::{temp_dir, Output, Test};

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

/// Run `greedy` beside a scenario that passes, in test mode with `args` and a JSON report:
/// the greedy one must error with kind `limit` and the run go on to write its report. Returns
/// the run, the greedy scenario's diagnostic message and the report's size in bytes.
fn greedy_beside_a_passing_one(greedy: &str, args: &[&str]) -> (Output, String, u64) {
    greedy_errs_with("limit", greedy, args)
}

/// [`greedy_beside_a_passing_one`], erring with the error kind `code`.
fn greedy_errs_with(code: &str, greedy: &str, args: &[&str]) -> (Output, String, u64) {
    let dir = temp_dir("limits");
    let json = dir.join("report.json");
    let out = Test::new()
        .named("a_greedy.rhai", greedy)
        .named(
            "b_fine.rhai",
            r#"let x = [1, 2, 3]; assert_eq(x.len(), 3); print("fine");"#,
        )
        .args(&["--test", "--report-json", &json.to_string_lossy()])
        .args(args)
        .run();
    out.code(4);
    let text =
        std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no report: {e}\n{}", out.stderr));
    let size = text.len() as u64;
    let doc: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("the report is not JSON: {e}"));
    let scenarios = doc["scenarios"].as_array().cloned().unwrap_or_default();
    let status = |i: usize| scenarios.get(i).map(|s| s["status"].to_string());
    assert_eq!(status(0).as_deref(), Some("\"errored\""), "{}", out.stderr);
    assert_eq!(status(1).as_deref(), Some("\"passed\""), "{}", out.stderr);
    let diag = &scenarios[0]["diagnostic"];
    assert_eq!(diag["code"], code, "{diag}");
    let message = diag["message"].as_str().unwrap_or_default().to_owned();
    let _ = std::fs::remove_dir_all(&dir);
    (out, message, size)
}

#[test]
fn data_bounds_an_array_of_integers_in_bytes() {
    // 100 000 integers are 1.6 MB of `Dynamic`s: over 1MiB though fewer than 1Mi elements.
    let (out, message, _) =
        greedy_beside_a_passing_one("let a = []; a.pad(100000, 0);", &["--limit", "data=1MiB"]);
    assert!(
        message.contains("an array or Blob is larger than the data limit"),
        "{message}"
    );
    out.stderr_has("--limit data=SIZE");
}

#[test]
fn data_counts_nested_arrays_and_maps() {
    // 2000 arrays of 40: 82 000 elements, 1.3 MB.
    let nested = "let a = []; for i in 0..2000 { let row = []; row.pad(40, i); a.push(row); }";
    let (_, message, _) = greedy_beside_a_passing_one(nested, &["--limit", "data=1MiB"]);
    assert!(message.contains("an array or Blob"), "{message}");
    // 20 000 map entries are 1.3 MB at 64 bytes an entry, added by index assignment (rhai
    // checks the value assigned, not the map).
    let map = "let m = #{}; for i in 0..20000 { m[`k${i}`] = i; }";
    let (_, message, _) = greedy_beside_a_passing_one(map, &["--limit", "data=1MiB"]);
    assert!(message.contains("an object map"), "{message}");
    // Long keys count too: 100 keys of 100 KB.
    let keys = r#"let k = ""; k.pad(100000, "k"); let m = #{}; for i in 0..100 { m[k + i] = 0; }"#;
    let (_, message, _) = greedy_beside_a_passing_one(keys, &["--limit", "data=1MiB"]);
    assert!(message.contains("an object map"), "{message}");
}

#[test]
fn data_counts_what_closures_and_function_pointers_hold() {
    // 100 closures (and curried function pointers) holding 100 KB each: 10 MB that rhai's own
    // check counts as 100 elements.
    let base = r#"fn f(x) { x } let base = ""; base.pad(100000, "y"); let a = [];"#;
    for grow in [
        "for i in 0..100 { let s = base + i; a.push(|| s); }",
        r#"for i in 0..100 { a.push(Fn("f").curry(base + i)); }"#,
    ] {
        let (_, message, _) =
            greedy_beside_a_passing_one(&format!("{base} {grow}"), &["--limit", "data=1MiB"]);
        assert!(message.contains("an array or Blob"), "{grow}: {message}");
    }
}

#[test]
fn values_nested_too_deep_stop_their_scenario_not_the_run() {
    // rhai clones, checks and drops nested values by recursion: 3000 levels overflowed the
    // stack of a test-mode thread and aborted the whole run.
    for grow in [
        "let a = []; for i in 0..3000 { a = [a]; }",
        "let m = #{}; for i in 0..3000 { m = #{x: m}; }",
    ] {
        let (_, message, _) = greedy_beside_a_passing_one(grow, &[]);
        assert!(
            message.contains("more than 256 levels deep"),
            "{grow}: {message}"
        );
    }
}

#[test]
fn to_hex_with_a_long_separator_is_refused_before_it_allocates() {
    // 64 KiB bytes with a 1 MB separator would be 64 GB of text.
    let (out, message, _) = greedy_beside_a_passing_one(
        r#"let sep = ""; sep.pad(1000000, "-"); let text = to_hex(blob(65536, 1), sep);"#,
        &["--limit", "data=1MiB"],
    );
    assert!(
        message.contains("to_hex: the text would be 65535131072 bytes"),
        "{message}"
    );
    assert!(message.contains("over `--limit data=1MiB`"), "{message}");
    out.faster_than(std::time::Duration::from_secs(5));
}

#[test]
fn a_full_channel_makes_send_wait_and_a_flood_times_out() {
    // Nobody receives: 15 Blobs of 64 KiB fill 1MiB, the 16th waits out `--timeout`.
    let flood = "let ch = channel(); let b = blob(65536, 1); loop { ch.send(b); }";
    let (_, message, _) = greedy_errs_with(
        "timeout",
        flood,
        &["--limit", "data=1MiB", "--timeout", "300ms"],
    );
    assert!(
        message.contains("channel.send timed out after 300ms"),
        "{message}"
    );
    // A value larger than the whole queue cannot wait for room.
    Test::new()
        .script(
            r#"let s = ""; s.pad(1048570, "x");
               let e = assert_err(|| channel().send(s), "limit");
               print(e.message);"#,
        )
        .args(&["--limit", "data=1MiB"])
        .run()
        .code(0)
        .stdout_has("more than a channel queues (1048576 bytes)");
    // A receiver makes room: 4 MiB go through a 1 MiB queue.
    Test::new()
        .script(
            r#"let ch = channel();
               let t = spawn(|| { for i in 0..64 { ch.send(blob(65536, i)); } });
               let n = 0;
               for i in 0..64 { n += ch.recv().len(); }
               t.join();
               assert_eq(n, 4194304);"#,
        )
        .args(&["--limit", "data=1MiB"])
        .run()
        .code(0);
}

#[test]
fn output_keeps_what_fits_and_fails_the_scenario() {
    // 3000 lines of 1000 bytes: 3 MB, of which 1MiB is kept.
    let chatty = r#"let s = ""; s.pad(1000, "x"); for i in 0..3000 { print(s); } assert(true);"#;
    let (out, message, size) = greedy_beside_a_passing_one(chatty, &["--limit", "output=1MiB"]);
    assert!(
        message.contains("bytes more than `--limit output=1MiB`"),
        "{message}"
    );
    out.stderr_has("[output truncated: ");
    assert!(size < 1_100_000, "the report is {size} bytes");
    // Run mode prints as it goes and keeps nothing: no limit applies.
    let out = Test::new()
        .script(chatty)
        .args(&["--limit", "output=1KiB"])
        .run();
    out.code(0);
    assert_eq!(out.stdout.len(), 3000 * 1001);
}

#[test]
fn script_refuses_a_larger_file_before_reading_it() {
    let big = format!("let x = 1;\n{}", "// padding\n".repeat(200));
    let (_, message, _) = greedy_beside_a_passing_one(&big, &["--limit", "script=1KiB"]);
    assert!(
        message.contains("a_greedy.rhai` is 2211 bytes, over `--limit script=1KiB`"),
        "{message}"
    );
    // Run mode: a usage error.
    Test::new()
        .script(&big)
        .args(&["--limit", "script=1KiB"])
        .run()
        .code(2)
        .stderr_has("over `--limit script=1KiB`");
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
