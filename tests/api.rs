//! The scripting API's semantics (DESIGN.md §2). Most of them are scripts that assert from
//! inside rhai: `api/<name>.rhai`, one test each, named after the file (`api::<name>`) and listed
//! in [`api_scripts!`]. The tests here need more than the script: a Python peer, or a bound on
//! the wall time.
//!
//! A script's leading comment says what it checks and, as in `scenarios/`, what it expects
//! besides passing: `// exit: N` (default 0), `// args: ...` (after `--timeout 2s`), and one
//! `// stdout: line` per line it prints (compared after [`normalize`]; without one, stdout is
//! not looked at).

use std::time::Duration;

use crate::harness::{expected_exit, header, headers, normalize, rhai_files, root, Output, Test};

/// Run `source` with a short default deadline and require it to pass.
#[track_caller]
fn passes(source: &str) -> Output {
    let out = Test::new().args(&["--timeout", "2s"]).script(source).run();
    out.code(0);
    out
}

/// One `#[test]` per script of `tests/api/`, named after the file, and the list of them (which
/// [`every_api_script_is_in_the_table`] compares with the directory).
macro_rules! api_scripts {
    ($($name:ident),* $(,)?) => {
        /// The scripts of the table, by file stem.
        const SCRIPTS: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                run_script(stringify!($name));
            }
        )*
    };
}

api_scripts! {
    a_connection_dropped_with_unread_input_still_ends_with_fin,
    a_websocket_port_can_be_listened_on_again_after_its_server_closed_first,
    a_line_longer_than_the_limit_is_too_long,
    a_recv_that_timed_out_loses_no_bytes,
    a_send_cut_off_by_its_deadline_poisons_the_connection,
    blobs_round_trip_byte_for_byte,
    channels_carry_values_between_tasks_in_order,
    closing_a_connection_wakes_a_recv_blocked_in_another_task,
    connection_endpoints_match_across_the_two_sides,
    errors_are_maps_with_kind_message_op_and_addr,
    expect_returns_text_groups_and_before,
    handle_options_set_the_timeout,
    handle_timeouts_read_back_in_milliseconds,
    names_and_ipv6_addresses_resolve,
    one_task_sends_while_another_receives_on_the_same_connection,
    print_shows_handles,
    recv_all_bytes_takes_more_than_a_megabyte,
    recv_all_collects_until_the_peer_closes,
    recv_exact_takes_exactly_n_bytes_and_never_a_partial_result,
    recv_until_consumes_the_delimiter,
    send_and_recv_round_trip,
    shutdown_half_closes_and_keeps_receiving,
    sleep_with_a_unit_string,
    spawn_copies_loop_variables,
    sending_a_blob_variable_leaves_it_as_it_was,
    send_on_a_udp_a_channel_or_a_map_takes_a_copy,
    a_script_function_named_send_takes_the_method_call,
    websocket_options_take_none_as_their_timeout,
    clearing_a_down_fault_returns_when_the_port_cannot_be_bound_again,
}

/// Run `tests/api/<name>.rhai` as its leading comment says.
#[track_caller]
fn run_script(name: &str) {
    let path = root().join("tests/api").join(format!("{name}.rhai"));
    let source =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let extra = header(&source, "args").unwrap_or_default();
    let mut args = vec!["--timeout", "2s"];
    args.extend(extra.split_whitespace());
    let out = Test::new().args(&args).file(&path).run();
    out.code(expected_exit(&source, &path));
    let stdout = headers(&source, "stdout");
    if !stdout.is_empty() {
        let expected: String = stdout.iter().map(|line| format!("{line}\n")).collect();
        assert_eq!(
            normalize(&out.stdout),
            expected,
            "{}: unexpected stdout\n{out:?}",
            path.display()
        );
    }
}

#[test]
fn every_api_script_is_in_the_table() {
    // By path under tests/api, without `.rhai`: a file in a subdirectory is never in the table.
    let dir = root().join("tests/api");
    let on_disk: Vec<String> = rhai_files(&dir)
        .iter()
        .map(|p| {
            let relative = p.strip_prefix(&dir).unwrap_or(p).with_extension("");
            crate::harness::text(&relative).to_owned()
        })
        .collect();
    let listed = SCRIPTS;
    let missing: Vec<&String> = on_disk
        .iter()
        .filter(|f| !listed.contains(&f.as_str()))
        .collect();
    let stale: Vec<&&str> = listed
        .iter()
        .filter(|n| !on_disk.iter().any(|f| f == *n))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "tests/api and `api_scripts!` differ: files not in the table {missing:?}, \
         names without a file {stale:?}"
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
fn one_connection_sends_and_receives_at_once_in_two_tasks() {
    // A Python echo peer sends everything back as it reads it, so neither side can finish
    // unless this connection sends and receives at the same time: a task sends 64 MiB while the
    // main script receives it. Both wait on the socket at once (for room to send, for data to
    // read), sharing its registration with the runtime's poller.
    let mut peer = crate::harness::python_listener(
        r#"
from peer import echo
c, _ = s.accept()
c.settimeout(30)
echo(c)
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

/// What a run shows: exit code, stdout and stderr (normalised).
fn shown(source: &str, args: &[&str]) -> (i32, String, String) {
    let out = Test::new().args(args).script(source).run();
    (out.code, normalize(&out.stdout), normalize(&out.stderr))
}

/// `x.send(v)` rewritten to send a Blob where it lies (src/script/send_ref.rs) shows what rhai's
/// own call showed: each script runs as it is and with a three-parameter function `send` (never
/// called) put in front of its first line, which leaves a script unrewritten, and the two runs
/// must agree. The runs overlap, as the diagnostics fixtures do.
#[track_caller]
fn same_with_and_without_rewrite(cases: &[(String, Vec<String>)]) {
    let differ: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = cases
            .iter()
            .map(|(source, args)| {
                s.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let rewritten = shown(source, &args);
                    let unrewritten = shown(&format!("fn send(a, b, c) {{}} {source}"), &args);
                    (rewritten != unrewritten).then(|| {
                        format!("{args:?}\n{source}\nrewritten: {rewritten:#?}\nas rhai calls it: {unrewritten:#?}")
                    })
                })
            })
            .collect();
        runs.into_iter()
            .filter_map(|r| r.join().unwrap_or_else(|_| Some("the run panicked".into())))
            .collect()
    });
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
}

#[test]
fn a_send_made_in_place_shows_what_rhai_s_own_call_showed() {
    let files = [
        "tests/api/sending_a_blob_variable_leaves_it_as_it_was.rhai",
        "tests/api/send_on_a_udp_a_channel_or_a_map_takes_a_copy.rhai",
        "tests/api/a_script_function_named_send_takes_the_method_call.rhai",
        "tests/fixtures/send_closed.rhai",
        "tests/fixtures/send_wrong_type.rhai",
    ];
    let cases: Vec<(String, Vec<String>)> = files
        .iter()
        .map(|f| {
            let path = root().join(f);
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (source, vec!["--timeout".into(), "2s".into()])
        })
        .collect();
    same_with_and_without_rewrite(&cases);
}

/// The start of the scripts below: a connection to send on. The first lines are comments,
/// because the first line differs between the two runs and a diagnostic quotes the line before
/// its own.
const CONNECTED: &str = "//\n//\n//\n\
    let server = listen(\"127.0.0.1:0\");\n\
    let c = connect(server.addr);\n";

/// `source` run with each of `limits` (`--limit` values).
fn with_limits(source: &str, limits: impl Iterator<Item = String>) -> Vec<(String, Vec<String>)> {
    limits
        .map(|limit| {
            (
                format!("{CONNECTED}{source}"),
                vec!["--limit".into(), limit],
            )
        })
        .collect()
}

#[test]
fn a_send_made_in_place_counts_the_operations_rhai_counted() {
    // `--limit operations=N` stops the script at the same operation, at the same position,
    // for every N up to past the end, so each operation of the sends is counted where rhai
    // counted it, also for a send evaluated as it was (text); the sends that ran are the lines
    // printed.
    let source = "let data = blob(2, 0x61);\n\
        for i in 0..3 {\n\
        \x20   let k = c.send(data);\n\
        \x20   print(k + i);\n\
        }\n\
        let text = \"ab\";\n\
        let m = c.send(text);\n\
        print(m);\n";
    let limits = (1..=70).map(|n| format!("operations={n}"));
    same_with_and_without_rewrite(&with_limits(source, limits));
}

#[test]
fn a_send_made_in_place_keeps_the_schedule_of_looks_at_variables() {
    // A map grown entry by entry is caught by the sampled look at variables (engine.rs), which
    // counts every variable read; the rewritten sends read theirs without rhai, and must count
    // them, or the look that catches the map comes at another entry (printed before it).
    let source = "let data = blob(1);\n\
        let m = #{};\n\
        for i in 0..400 {\n\
        \x20   m[`k${i}`] = i;\n\
        \x20   c.send(data);\n\
        \x20   print(i);\n\
        }\n";
    let limits = ["2KiB", "3KiB", "5KiB"].iter().map(|l| format!("data={l}"));
    same_with_and_without_rewrite(&with_limits(source, limits));
}
