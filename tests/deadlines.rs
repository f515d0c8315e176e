//! A deadline is a deadline: `--max-time`, `within`, Ctrl-C and SIGTERM end a scenario on
//! time whatever its thread is doing: inside one slow built-in call (a 100 MB `hexdump`), in a
//! loop of such calls, or still compiling a large script. A thread that does not come back is
//! left behind; the outcome, its diagnostic and the reports are due on time.
//!
//! The slow calls are sized for the debug build the suite runs: one `hexdump` of 20 MB takes
//! seconds there, one `to_upper` of 32 MB milliseconds (so the thousand operations between two
//! looks at cancellation, as it was, took seconds more than the deadline).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{python_listener, temp_dir, Output, Proc, Test};

/// A script stuck in one call that runs for seconds: `hexdump` of 20 MB, again and again.
const STUCK: &str = r#"
let b = blob(20_000_000, 0x41);
print("ready");
loop { let h = hexdump(b); }
"#;

/// Room for the 100 MB that one `hexdump` of 20 MB makes.
const ROOMY: [&str; 2] = ["--limit", "data=512MiB"];

#[test]
fn max_time_ends_a_loop_of_slow_builtin_calls_on_time() {
    Test::new()
        .args(&["--max-time", "2s"])
        .script(
            r#"
            let s = "x";
            for i in 0..25 { s += s; }
            loop { s = s.to_upper(); s = s.to_lower(); }
            "#,
        )
        .wall(Duration::from_secs(30))
        .run()
        .code(4)
        .stderr_has("the scenario ran past its deadline of 2s")
        .faster_than(Duration::from_millis(3000));
}

#[test]
fn max_time_leaves_behind_a_script_stuck_in_one_builtin_call() {
    Test::new()
        .args(&["--max-time", "1s"])
        .args(&ROOMY)
        .script(STUCK)
        .wall(Duration::from_secs(30))
        .run()
        .code(4)
        .stdout("ready\n")
        .stderr_has("the scenario ran past its deadline of 1s")
        .stderr_has("left behind")
        .faster_than(Duration::from_millis(2500));
}

#[test]
fn max_time_leaves_behind_a_task_stuck_in_one_builtin_call() {
    Test::new()
        .args(&["--max-time", "1s"])
        .args(&ROOMY)
        .script(
            r#"
            let t = spawn(|| { let b = blob(20_000_000, 0x41); loop { hexdump(b); } });
            t.join();
            "#,
        )
        .wall(Duration::from_secs(30))
        .run()
        .code(4)
        .stderr_has("the scenario ran past its deadline of 1s")
        .faster_than(Duration::from_millis(2500));
}

#[test]
fn within_ends_on_time_when_its_call_is_stuck() {
    // The `catch` is never reached: the script cannot go on from inside the stuck call.
    Test::new()
        .args(&["--max-time", "30s"])
        .args(&ROOMY)
        .script(
            r#"
            let b = blob(20_000_000, 0x41);
            try {
                within(300, || hexdump(b));
            } catch (e) {
                print(`caught ${e.kind}`);
            }
            "#,
        )
        .wall(Duration::from_secs(30))
        .run()
        .code(4)
        .stdout("")
        .stderr_has("`within(300ms)` ran out while the main script was inside one built-in call")
        .stderr_has("[script.rhai:4:")
        .faster_than(Duration::from_millis(2500));
}

#[test]
fn within_stays_catchable_around_a_loop_of_slow_calls() {
    Test::new()
        .script(
            r#"
            let s = "";
            s.pad(16_000_000, "x");
            let started = timestamp();
            try {
                within(300, || loop { s = s.to_upper(); s = s.to_lower(); });
            } catch (e) {
                print(e.kind);
            }
            let took = started.elapsed;
            assert(took < 1.0, `within(300) ended after ${took} s`);
            "#,
        )
        .wall(Duration::from_secs(30))
        .run()
        .code(0)
        .stdout("timeout\n");
}

/// Send `signal` to `proc` once it has printed `ready`; it must exit 130 within 1 s.
fn interrupt_when_ready(mut proc: Proc, signal: &str) -> Output {
    assert_eq!(proc.line(), "ready");
    interrupt(proc, signal)
}

fn interrupt(mut proc: Proc, signal: &str) -> Output {
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-s", signal, &proc.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(status.success(), "kill -s {signal} failed");
    let out = proc.wait();
    let took = sent.elapsed();
    out.code(130);
    assert!(
        took < Duration::from_secs(1),
        "exit {took:?} after SIG{signal}\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

#[test]
fn ctrl_c_and_sigterm_end_a_run_stuck_in_one_builtin_call() {
    for signal in ["INT", "TERM"] {
        let run = Test::new()
            .args(&ROOMY)
            .script(STUCK)
            .wall(Duration::from_secs(30))
            .spawn();
        // Whether the thread was caught between two calls or left behind inside one is a race;
        // the exit is due on time either way, and run mode says one word.
        interrupt_when_ready(run, signal).stderr("interrupted\n");
    }
}

#[test]
fn ctrl_c_ends_a_suite_stuck_in_one_builtin_call_and_writes_its_report() {
    // Test mode captures `print`: the stuck scenario tells a Python witness instead, just
    // before its slow calls.
    let mut witness = python_listener(
        r#"
c, addr = s.accept()
print(c.recv(100).decode().strip())
sys.stdin.read()
"#,
    );
    let port = witness.port();
    let dir = temp_dir("stuck-suite");
    let report = dir.join("report.json");
    let run = Test::new()
        .args(&["--test", "-j", "1", "--report-json"])
        .args(&[report.to_string_lossy().as_ref()])
        .args(&["--var", &format!("port={port}")])
        .args(&ROOMY)
        .write("a_quick.rhai", "print(\"quick\");\n")
        .write(
            "b_stuck.rhai",
            r#"
let b = blob(20_000_000, 0x41);
let witness = connect(`127.0.0.1:${port}`);
witness.send_line("stuck");
loop { let h = hexdump(b); }
"#,
        )
        .path(".")
        .wall(Duration::from_secs(30))
        .spawn();
    assert_eq!(witness.line(), "stuck");
    let out = interrupt(run, "INT");
    out.stderr_has("a_quick.rhai: ok")
        .stderr_has("the run was interrupted")
        .stderr_has("1 passed, 1 failed");
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report at `{}`: {e}", report.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"));
    assert_eq!(json["summary"]["total"], 2, "{text}");
    assert_eq!(
        json["scenarios"][1]["diagnostic"]["code"], "interrupted",
        "{text}"
    );
    witness.close_stdin();
    witness.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// A script whose compilation takes longer than any deadline here: rhai looks up each of tens of
/// thousands of variables among the ones before it.
fn slow_to_compile() -> String {
    let mut source = String::new();
    for i in 0..20_000 {
        source.push_str(&format!("let v{i} = [{i}, \"{i}\", #{{a: {i}}}];\n"));
    }
    source.push_str("print(\"compiled and ran\");\n");
    source
}

#[test]
fn ctrl_c_ends_a_run_still_compiling_a_large_script() {
    let run = Test::new()
        .script(&slow_to_compile())
        .wall(Duration::from_secs(60))
        .spawn();
    // No readiness signal exists inside a compiler: give the run a moment to start it.
    std::thread::sleep(Duration::from_millis(300));
    interrupt(run, "INT").stdout("").stderr("interrupted\n");
}

#[test]
fn max_time_counts_compiling() {
    Test::new()
        .args(&["--max-time", "1s"])
        .script(&slow_to_compile())
        .wall(Duration::from_secs(60))
        .run()
        .code(4)
        .stdout("")
        .stderr_has("the scenario ran past its deadline of 1s")
        .stderr_has("still being compiled")
        .faster_than(Duration::from_millis(2500));
}

#[test]
fn main_returning_leaves_behind_a_task_stuck_in_one_builtin_call() {
    // Stopping the tasks still running when main returns is not a failure, and a task inside
    // one slow call does not hold the scenario's end.
    Test::new()
        .args(&ROOMY)
        .script(
            r#"
            let ready = channel();
            spawn(|| { let b = blob(20_000_000, 0x41); ready.send(true); loop { hexdump(b); } });
            ready.recv();
            print("main done");
            "#,
        )
        .wall(Duration::from_secs(30))
        .run()
        .code(0)
        .stdout("main done\n")
        .faster_than(Duration::from_millis(1500));
}

#[test]
fn a_suite_goes_on_past_a_scenario_left_behind_and_retries_it() {
    // One worker: the stuck scenario's worker is left with it, and a new one runs the retry
    // and then the scenarios after it.
    let dir = temp_dir("left-behind-suite");
    let report = dir.join("report.json");
    let out = Test::new()
        .args(&["--test", "-j", "1", "--max-time", "1s", "--retry", "1"])
        .args(&["--report-json", report.to_string_lossy().as_ref()])
        .args(&ROOMY)
        .write("a_stuck.rhai", STUCK)
        .write("b_after.rhai", "print(\"b ran\");\n")
        .write("c_after.rhai", "print(\"c ran\");\n")
        .path(".")
        .wall(Duration::from_secs(30))
        .run();
    out.code(4)
        .stderr_has("a_stuck.rhai: ERROR")
        .stderr_has("2 attempts")
        .stderr_has("b_after.rhai: ok")
        .stderr_has("c_after.rhai: ok")
        .stderr_has("left behind")
        .faster_than(Duration::from_millis(4500));
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report at `{}`: {e}", report.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"));
    assert_eq!(json["summary"]["total"], 3, "{text}");
    assert_eq!(json["scenarios"][0]["stdout"], "ready\n", "{text}");
    assert_eq!(json["scenarios"][1]["stdout"], "b ran\n", "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
