//! Test mode as a CI harness (README "Running scenarios", "Use in CI", "Reports"; DESIGN.md §3):
//! one status line per scenario, the failures in full, the summary, the worst exit code, the
//! JUnit/TAP/JSON reports read back by independent parsers (Python's `xml.etree` and `json`,
//! Perl's `prove`), `-j`, `--partition`, `--filter`, `--retry`, variables and `wait_for`.
//!
//! Every scenario is written at run time into a temp directory: `tests/fixtures/` is walked
//! recursively by the diagnostics runner, so scenario files cannot live there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use crate::harness::{normalize, python, temp_dir, Output, Proc, Test, WALL};

// ---------------------------------------------------------------------------------------------
// Scenarios and helpers

/// Connects to itself, exchanges a line each way, and prints what it got.
const PASS_CONNECTING: &str = r#"
let server = listen("127.0.0.1:0");
let t = spawn(|| { let c = server.accept(); c.send_line("hello"); c.recv_line() });
let conn = connect(server.addr);
let greeting = conn.recv_line();
print(`got ${greeting}`);
conn.send_line("bye");
assert_eq(t.join(), "bye");
"#;

/// Prints, then an assertion fails on line 4.
const FAIL: &str = r#"
print("before the assertion");
let answer = 41;
assert_eq(answer, 42);
"#;

/// Prints, then connects to a port that was just closed (line 6).
const ERROR: &str = r#"
let l = listen("127.0.0.1:0");
let addr = l.addr;
l.close();
print("connecting");
connect(addr);
"#;

const COMPILE: &str = "let x = ;\n";

const PASS_NESTED: &str = "print(\"nested\");\n";

/// A suite under `suite/` of the temp dir: pass, compile error, failure, a nested pass, error.
/// Sorted: `a_pass`, `b_compile`, `c_fail`, `d_sub/nested`, `e_error`: TAP numbers 2, 3, 5 fail.
fn mixed_suite() -> Test {
    Test::new()
        .write("suite/a_pass.rhai", PASS_CONNECTING)
        .write("suite/b_compile.rhai", COMPILE)
        .write("suite/c_fail.rhai", FAIL)
        .write("suite/d_sub/nested.rhai", PASS_NESTED)
        .write("suite/e_error.rhai", ERROR)
        .write("suite/notes.txt", "not a scenario")
        .path("suite")
}

fn status_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^(\S.*?): (ok|FAILED|ERROR|COMPILE ERROR) \((\d+) connections?, (\d+) ms(?:, (\d+) attempts)?\)$",
        )
        .expect("status line regex")
    })
}

/// One parsed status line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    name: String,
    status: String,
    attempts: Option<u32>,
}

/// The status lines at the top of stderr (everything before the first blank line), each one
/// checked to be a whole status line: a torn or interleaved line fails here.
#[track_caller]
fn status_lines(out: &Output) -> Vec<Status> {
    let mut found = Vec::new();
    for line in out.stderr.lines() {
        if line.is_empty() {
            return found;
        }
        let Some(c) = status_re().captures(line) else {
            panic!(
                "not a status line: {line:?}\n--- stderr ---\n{}",
                out.stderr
            );
        };
        found.push(Status {
            name: c[1].to_owned(),
            status: c[2].to_owned(),
            attempts: c.get(5).map(|a| a.as_str().parse().expect("attempts")),
        });
    }
    panic!(
        "stderr has no blank line before the summary\n{}",
        out.stderr
    );
}

/// The last line of stderr.
fn last_line(out: &Output) -> &str {
    out.stderr.lines().last().unwrap_or_default()
}

/// Run `python3 -c source args…` to the end.
fn python_run(source: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(source).args(args);
    Proc::start("python3", cmd, WALL).wait()
}

/// A JSON file read by Python's strict `json` (no NaN/Infinity), handed back as a `Value`.
#[track_caller]
fn json_via_python(path: &Path) -> Value {
    let out = python_run(
        r#"
import json, sys
def bad(c):
    raise ValueError("non-standard JSON constant " + c)
with open(sys.argv[1], encoding="utf-8") as f:
    doc = json.load(f, parse_constant=bad)
print(json.dumps(doc))
"#,
        &[&path.to_string_lossy()],
    );
    assert_eq!(
        out.code, 0,
        "Python cannot read the JSON report:\n{}",
        out.stderr
    );
    serde_json::from_str(&out.stdout).expect("python's json.dumps output")
}

/// An XML file parsed by Python's `xml.etree`, as nested `{tag, attrib, text, children}`.
#[track_caller]
fn xml_via_python(path: &Path) -> Value {
    let out = python_run(
        r#"
import json, sys
import xml.etree.ElementTree as ET
def el(e):
    return {"tag": e.tag, "attrib": dict(e.attrib), "text": e.text or "",
            "children": [el(c) for c in e]}
print(json.dumps(el(ET.parse(sys.argv[1]).getroot())))
"#,
        &[&path.to_string_lossy()],
    );
    assert_eq!(
        out.code, 0,
        "Python cannot parse the JUnit report:\n{}",
        out.stderr
    );
    serde_json::from_str(&out.stdout).expect("python's json.dumps output")
}

fn children<'a>(v: &'a Value, tag: &str) -> Vec<&'a Value> {
    v["children"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["tag"] == tag).collect())
        .unwrap_or_default()
}

fn attr<'a>(v: &'a Value, name: &str) -> &'a str {
    v["attrib"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no attribute `{name}` in {v}"))
}

/// The diagnostic block of scenario `name` in test mode's stderr, as printed after
/// `---- name ----` (up to its `output:` block or the next section).
#[track_caller]
fn failure_block<'a>(stderr: &'a str, name: &str) -> &'a str {
    let header = format!("\n---- {name} ----\n");
    let start = stderr
        .find(&header)
        .unwrap_or_else(|| panic!("no `---- {name} ----` in\n{stderr}"))
        + header.len();
    let rest = &stderr[start..];
    let end = ["output:\n", "\n---- ", "\n\n"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The first line of a rendered diagnostic, without its `×` marker.
fn headline(block: &str) -> &str {
    block
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start()
        .trim_start_matches('×')
        .trim()
}

/// A free loopback port: bound by the OS, then released.
fn reserve_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A Python TCP service on a free port: the n-th connection gets `answers[n-1]` (the last one
/// from then on) as a line, and "conn n" goes to its stdout. It exits when its stdin closes.
fn answering_service(answers: &[&str]) -> (Proc, u16) {
    let answers: Vec<String> = answers.iter().map(|a| format!("{a:?}")).collect();
    let mut svc = python(&format!(
        r#"
import threading
from peer import hold, listen
answers = [{}]
s = listen(backlog=16, timeout=None, reuse=True)
def serve():
    n = 0
    while True:
        c, _ = s.accept()
        n += 1
        print("conn", n)
        c.sendall((answers[min(n, len(answers)) - 1] + "\n").encode())
        c.close()
threading.Thread(target=serve, daemon=True).start()
hold()
"#,
        answers.join(", ")
    ));
    let port = svc.port();
    (svc, port)
}

/// How many connections an [`answering_service`] served, once it is stopped.
fn served(mut svc: Proc) -> usize {
    let out = svc.wait();
    out.stdout
        .lines()
        .filter(|l| l.starts_with("conn "))
        .count()
}

// ---------------------------------------------------------------------------------------------
// 1. A directory as a suite

#[test]
fn a_directory_runs_as_a_suite_with_a_line_per_scenario_and_the_failures_after() {
    let out = mixed_suite().args(&["--test", "-j", "1"]).run();
    out.code(3).stdout("");
    // Recursive, names relative to the directory given, sorted (with one job, lines come in
    // the order the scenarios run); the compile error did not stop the scenarios after it.
    let stderr = normalize(&out.stderr);
    let lines: Vec<&str> = stderr.lines().take(6).collect();
    assert_eq!(
        lines,
        [
            "a_pass.rhai: ok (1 connection, N ms)",
            "b_compile.rhai: COMPILE ERROR (0 connections, N ms)",
            "c_fail.rhai: FAILED (0 connections, N ms)",
            "d_sub/nested.rhai: ok (0 connections, N ms)",
            "e_error.rhai: ERROR (0 connections, N ms)",
            "",
        ],
        "{stderr}"
    );
    assert_eq!(status_lines(&out).len(), 5);

    // The failures in full, in the sorted order, after the status lines.
    let failures = stderr.find("\nfailures:\n").expect("a failures section");
    let order: Vec<usize> = ["b_compile.rhai", "c_fail.rhai", "e_error.rhai"]
        .iter()
        .map(|n| {
            stderr
                .find(&format!("\n---- {n} ----\n"))
                .unwrap_or_else(|| panic!("no section for {n}:\n{stderr}"))
        })
        .collect();
    assert!(
        failures < order[0] && order[0] < order[1] && order[1] < order[2],
        "{stderr}"
    );
    for passed in ["a_pass.rhai", "d_sub/nested.rhai"] {
        assert!(!stderr.contains(&format!("---- {passed} ----")), "{stderr}");
    }
    let compile = failure_block(&stderr, "b_compile.rhai");
    assert!(
        compile.contains("× `b_compile.rhai` does not compile"),
        "{compile}"
    );
    assert!(compile.contains("1 │ let x = ;"), "{compile}");
    let fail = failure_block(&stderr, "c_fail.rhai");
    assert!(fail.contains("× assert_eq failed"), "{fail}");
    assert!(fail.contains("[c_fail.rhai:4:1]"), "{fail}");
    assert!(fail.contains("4 │ assert_eq(answer, 42);"), "{fail}");
    let error = failure_block(&stderr, "e_error.rhai");
    assert!(
        error.contains("× connect to `127.0.0.1:PORT` failed: connection refused"),
        "{error}"
    );
    assert!(error.contains("6 │ connect(addr);"), "{error}");
    // The captured output of the failures, and only of them.
    assert!(
        stderr.contains("---- c_fail.rhai ----\n")
            && stderr.contains("output:\n  | before the assertion\n"),
        "{stderr}"
    );
    assert!(stderr.contains("output:\n  | connecting\n"), "{stderr}");
    assert!(!stderr.contains("got hello"), "{stderr}");
    assert!(!stderr.contains("nested\n"), "{stderr}");

    assert!(
        stderr.ends_with("\n\n5 scenarios in N.NNs\n2 passed, 3 failed\n"),
        "{stderr}"
    );
    assert_eq!(last_line(&out), "2 passed, 3 failed");
}

#[test]
fn in_parallel_every_scenario_still_gets_exactly_one_line() {
    let out = mixed_suite().args(&["--test", "-j", "4"]).run();
    out.code(3);
    let mut names: Vec<(String, String)> = status_lines(&out)
        .into_iter()
        .map(|s| (s.name, s.status))
        .collect();
    names.sort();
    let expected = [
        ("a_pass.rhai", "ok"),
        ("b_compile.rhai", "COMPILE ERROR"),
        ("c_fail.rhai", "FAILED"),
        ("d_sub/nested.rhai", "ok"),
        ("e_error.rhai", "ERROR"),
    ]
    .map(|(n, s)| (n.to_owned(), s.to_owned()));
    assert_eq!(names, expected, "{}", out.stderr);
    assert_eq!(last_line(&out), "2 passed, 3 failed");
}

// ---------------------------------------------------------------------------------------------
// 2. Exit codes

#[test]
fn the_exit_code_is_the_worst_outcome() {
    let pass = ("pass.rhai", PASS_NESTED);
    let fail = ("fail.rhai", FAIL);
    let error = ("error.rhai", ERROR);
    let compile = ("compile.rhai", COMPILE);
    let cases: [(&[(&str, &str)], i32); 6] = [
        (&[pass], 0),
        (&[pass, fail], 1),
        (&[pass, error], 4),
        (&[fail, error], 4),
        (&[compile, error, fail], 3),
        (&[compile], 3),
    ];
    for (files, code) in cases {
        let mut t = Test::new().args(&["--test"]);
        for (name, source) in files {
            t = t.write(&format!("suite/{name}"), source);
        }
        let out = t.path("suite").run();
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(
            out.code, code,
            "{names:?}: expected exit {code}\n--- stderr ---\n{}",
            out.stderr
        );
        assert_eq!(status_lines(&out).len(), files.len(), "{}", out.stderr);
    }
}

#[test]
fn usage_errors_exit_2_and_run_nothing() {
    let suite = || {
        Test::new()
            .write("suite/a.rhai", PASS_NESTED)
            .write("suite/b.rhai", FAIL)
    };
    let cases: [(&[&str], &str, &str); 7] = [
        (&["--partition", "0/2"], "suite", "--partition"),
        (&["--partition", "3/2"], "suite", "--partition"),
        (&["--jobs", "0"], "suite", "--jobs"),
        (&[], "suite/missing", "suite/missing"),
        (
            &["--filter", "nomatch"],
            "suite",
            "no scenario matches --filter nomatch",
        ),
        (
            &["--exclude", "suite/"],
            "suite",
            "--exclude suite/ leaves no scenario",
        ),
        (
            &["--filter", "a.rhai", "--exclude", "a"],
            "suite",
            "no scenario matches --filter a.rhai but not --exclude a",
        ),
    ];
    for (args, path, says) in cases {
        let out = suite().args(&["--test"]).args(args).path(path).run();
        assert_eq!(
            out.code, 2,
            "{args:?} {path}: expected exit 2\n--- stderr ---\n{}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(
            out.stderr.contains(says),
            "{args:?} {path}: stderr lacks {says:?}\n{}",
            out.stderr
        );
        assert!(
            !status_re().is_match(out.stderr.lines().next().unwrap_or_default()),
            "{args:?}: a scenario ran:\n{}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Reports

#[test]
fn junit_tap_and_json_reports_describe_the_run() {
    let dir = temp_dir("reports");
    let junit = dir.join("a.xml");
    let tap = dir.join("a.tap");
    let json = dir.join("a.json");
    let out = mixed_suite()
        .args(&["--test"])
        .args(&["--report-junit", &junit.to_string_lossy()])
        .args(&["--report-tap", &tap.to_string_lossy()])
        .args(&["--report-json", &json.to_string_lossy()])
        .run();
    out.code(3);
    let stderr = &out.stderr;

    check_junit(&junit, stderr);
    check_tap(&tap, false, "2-3, 5");
    check_json(&json);

    // A run where everything passes: prove agrees.
    let tap_ok = dir.join("ok.tap");
    Test::new()
        .write("suite/a_pass.rhai", PASS_CONNECTING)
        .write("suite/d_sub/nested.rhai", PASS_NESTED)
        .path("suite")
        .args(&["--report-tap", &tap_ok.to_string_lossy()])
        .run()
        .code(0);
    check_tap(&tap_ok, true, "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_report_that_cannot_be_written_fails_a_passing_run() {
    let dir = temp_dir("unwritable");
    let json = dir.join("r.json");
    let unwritable = dir.join("no/such/dir/r.xml");
    let out = Test::new()
        .write("suite/a_pass.rhai", PASS_CONNECTING)
        .path("suite")
        .args(&["--report-junit", &unwritable.to_string_lossy()])
        .args(&["--report-json", &json.to_string_lossy()])
        .run();
    out.code(2).stderr_has(&unwritable.to_string_lossy());
    assert!(!unwritable.exists());
    // The other report is still written.
    assert_eq!(json_via_python(&json)["summary"]["passed"], 1);
    // A run that failed anyway keeps its own exit code.
    Test::new()
        .write("suite/e_error.rhai", ERROR)
        .path("suite")
        .args(&["--report-junit", &unwritable.to_string_lossy()])
        .run()
        .code(4)
        .stderr_has(&unwritable.to_string_lossy());
    let _ = std::fs::remove_dir_all(&dir);
}

#[track_caller]
fn check_junit(path: &Path, stderr: &str) {
    let root = xml_via_python(path);
    assert_eq!(root["tag"], "testsuites", "{root}");
    let suites = children(&root, "testsuite");
    assert_eq!(suites.len(), 1, "{root}");
    let suite = suites[0];
    assert_eq!(attr(suite, "tests"), "5");
    assert_eq!(attr(suite, "failures"), "1");
    assert_eq!(attr(suite, "errors"), "2");
    let cases = children(suite, "testcase");
    let names: Vec<&str> = cases.iter().map(|c| attr(c, "name")).collect();
    assert_eq!(
        names,
        [
            "a_pass.rhai",
            "b_compile.rhai",
            "c_fail.rhai",
            "d_sub/nested.rhai",
            "e_error.rhai"
        ]
    );
    for case in &cases {
        let time: f64 = attr(case, "time")
            .parse()
            .unwrap_or_else(|_| panic!("time is not a number: {case}"));
        assert!((0.0..60.0).contains(&time), "{case}");
    }
    let by_name: BTreeMap<&str, &Value> = names.iter().copied().zip(cases.clone()).collect();
    let one = |case: &str, tag: &str| -> Option<Value> {
        let found = children(by_name[case], tag);
        assert!(found.len() <= 1, "{case}: several <{tag}>");
        found.first().map(|v| (*v).clone())
    };

    // Passing cases: neither <failure> nor <error>; their output in <system-out>.
    for case in ["a_pass.rhai", "d_sub/nested.rhai"] {
        assert!(one(case, "failure").is_none() && one(case, "error").is_none());
    }
    assert_eq!(
        one("a_pass.rhai", "system-out").map(|s| s["text"].clone()),
        Some(Value::from("got hello\n"))
    );
    assert_eq!(
        one("d_sub/nested.rhai", "system-out").map(|s| s["text"].clone()),
        Some(Value::from("nested\n"))
    );

    // The assertion: a <failure> whose message is the diagnostic's first line and whose text
    // is the diagnostic as the terminal printed it (without colour).
    assert!(one("c_fail.rhai", "error").is_none());
    let failure = one("c_fail.rhai", "failure").expect("<failure> for c_fail.rhai");
    let block = failure_block(stderr, "c_fail.rhai");
    assert_eq!(attr(&failure, "message"), headline(block));
    let text = failure["text"].as_str().unwrap_or_default();
    assert!(text.contains('×'), "{text}");
    assert!(text.contains("assert_eq(answer, 42);"), "{text}");
    assert_eq!(text.trim(), block.trim(), "<failure> text vs terminal");
    assert_eq!(
        one("c_fail.rhai", "system-out").map(|s| s["text"].clone()),
        Some(Value::from("before the assertion\n"))
    );

    // The error and the compile error: <error>, not <failure>.
    for (case, line) in [
        ("e_error.rhai", "connect(addr);"),
        ("b_compile.rhai", "let x = ;"),
    ] {
        assert!(one(case, "failure").is_none(), "{case}");
        let error = one(case, "error").unwrap_or_else(|| panic!("<error> for {case}"));
        let block = failure_block(stderr, case);
        assert_eq!(attr(&error, "message"), headline(block), "{case}");
        let text = error["text"].as_str().unwrap_or_default();
        assert!(text.contains('×') && text.contains(line), "{case}: {text}");
    }
    assert_eq!(
        one("e_error.rhai", "system-out").map(|s| s["text"].clone()),
        Some(Value::from("connecting\n"))
    );
}

/// Read a TAP file with `prove`: it passes exactly when `passes`, and names `failed` as the
/// failed test numbers (as prove prints them, e.g. `2-3, 5`).
#[track_caller]
fn check_tap(path: &Path, passes: bool, failed: &str) {
    let text = std::fs::read_to_string(path).expect("the TAP report");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first().copied(), Some("TAP version 13"), "{text}");
    let plan = if passes { "1..2" } else { "1..5" };
    assert!(lines.contains(&plan), "{text}");

    if Command::new("prove").arg("--version").output().is_err() {
        panic!("`prove` is missing: install perl (scripts/test does)");
    }
    let mut cmd = Command::new("prove");
    cmd.arg("-e").arg("cat").arg(path);
    let out = Proc::start("prove", cmd, WALL).wait();
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(!all.contains("Parse errors"), "{all}\n--- TAP ---\n{text}");
    if passes {
        assert_eq!(out.code, 0, "{all}\n--- TAP ---\n{text}");
        assert!(all.contains("Result: PASS"), "{all}");
    } else {
        assert_ne!(out.code, 0, "{all}");
        assert!(all.contains("Result: FAIL"), "{all}");
        assert!(all.contains("Tests: 5 Failed: 3"), "{all}");
        let re = Regex::new(r"Failed tests?:\s+(.*)").expect("regex");
        let numbers = re
            .captures(&all)
            .map(|c| c[1].trim().to_owned())
            .unwrap_or_default();
        assert_eq!(numbers, failed, "{all}");
    }
}

#[track_caller]
fn check_json(path: &Path) {
    let doc = json_via_python(path);
    let summary = &doc["summary"];
    for (key, n) in [
        ("total", 5),
        ("passed", 2),
        ("failed", 1),
        ("errored", 1),
        ("compile_errors", 1),
    ] {
        assert_eq!(summary[key], n, "summary.{key}: {summary}");
    }
    let scenarios = doc["scenarios"].as_array().expect("scenarios array");
    let got: Vec<(&str, &str)> = scenarios
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default(),
                s["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a_pass.rhai", "passed"),
            ("b_compile.rhai", "compile_error"),
            ("c_fail.rhai", "failed"),
            ("d_sub/nested.rhai", "passed"),
            ("e_error.rhai", "errored"),
        ]
    );
    let by_name: BTreeMap<&str, &Value> = got.iter().map(|g| g.0).zip(scenarios).collect();
    assert_eq!(by_name["a_pass.rhai"]["stdout"], "got hello\n");
    assert_eq!(by_name["c_fail.rhai"]["stdout"], "before the assertion\n");
    assert_eq!(by_name["e_error.rhai"]["stdout"], "connecting\n");
    assert_eq!(by_name["a_pass.rhai"]["connections"], 1);
    assert_eq!(by_name["c_fail.rhai"]["diagnostic"]["line"], 4);
    assert_eq!(by_name["a_pass.rhai"]["diagnostic"], Value::Null);

    // The transcript of the scenario that connected: every kind of event, payloads as text.
    let transcript = by_name["a_pass.rhai"]["transcript"]
        .as_array()
        .expect("transcript array");
    let has = |kind: &str, data: &str| {
        transcript
            .iter()
            .any(|e| e["kind"] == kind && e["data"] == data)
    };
    assert!(has("connect", ""), "{transcript:?}");
    assert!(has("accept", ""), "{transcript:?}");
    assert!(has("send", "hello\n"), "{transcript:?}");
    assert!(has("recv", "hello\n"), "{transcript:?}");
    assert!(has("send", "bye\n"), "{transcript:?}");
    assert!(has("recv", "bye\n"), "{transcript:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. Parallel runs

#[test]
fn fifty_scenarios_on_two_jobs_each_see_their_own_connection_and_output() {
    const COUNT: usize = 50;
    let dir = temp_dir("parallel");
    let json = dir.join("r.json");
    let mut t = Test::new();
    for n in 0..COUNT {
        t = t.write(
            &format!("suite/p{n:02}.rhai"),
            &format!(
                r#"
let n = {n};
let server = listen("127.0.0.1:0");
let t = spawn(|| {{ let c = server.accept(); c.send_line(`hello from ${{n}}`); c.close(); }});
let conn = connect(server.addr);
let greeting = conn.recv_line();
print(greeting);
assert_eq(greeting, `hello from ${{n}}`);
t.join();
"#
            ),
        );
    }
    let out = t
        .path("suite")
        .args(&[
            "--test",
            "-j",
            "2",
            "--report-json",
            &json.to_string_lossy(),
        ])
        .run();
    out.code(0).stdout("").faster_than(Duration::from_secs(10));
    let lines = status_lines(&out);
    let mut names: Vec<String> = lines.iter().map(|s| s.name.clone()).collect();
    names.sort();
    let expected: Vec<String> = (0..COUNT).map(|n| format!("p{n:02}.rhai")).collect();
    assert_eq!(
        names, expected,
        "each scenario exactly once:\n{}",
        out.stderr
    );
    assert!(lines.iter().all(|s| s.status == "ok"), "{}", out.stderr);
    let stderr = normalize(&out.stderr);
    assert!(
        stderr.ends_with(&format!(
            "ms)\n\n{COUNT} scenarios in N.NNs\n{COUNT} passed, 0 failed\n"
        )),
        "{stderr}"
    );

    let doc = json_via_python(&json);
    assert_eq!(doc["summary"]["passed"], COUNT);
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), COUNT);
    for (n, s) in scenarios.iter().enumerate() {
        assert_eq!(s["name"], format!("p{n:02}.rhai"));
        assert_eq!(s["stdout"], format!("hello from {n}\n"), "{s}");
        assert_eq!(s["connections"], 1, "{}", s["name"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 5. Variables

#[test]
fn vars_come_from_flags_then_a_file_then_the_environment() {
    let vars_file = "\
# variables for the run

a=from-file
   # an indented comment
b=from-file

";
    Test::new()
        .env("SOCKSCRIPT_VAR_a", "from-env")
        .env("SOCKSCRIPT_VAR_b", "from-env")
        .env("SOCKSCRIPT_VAR_c", "42")
        .write("vars.txt", vars_file)
        .args(&["--vars-file", "vars.txt", "--var", "a=from-flag"])
        .script("print(`a=${a} b=${b} c=${c}`);\nprint(type_of(c));\n")
        .run()
        .code(0)
        .stdout("a=from-flag b=from-file c=42\ni64\n");
    // Each source alone.
    Test::new()
        .write("vars.txt", vars_file)
        .args(&["--vars-file", "vars.txt"])
        .script("print(`${a} ${b}`);")
        .run()
        .code(0)
        .stdout("from-file from-file\n");
    Test::new()
        .env("SOCKSCRIPT_VAR_a", "true")
        .script("print(type_of(a));")
        .run()
        .code(0)
        .stdout("bool\n");
}

#[test]
fn vars_reach_every_scenario_of_a_suite() {
    let dir = temp_dir("vars");
    let json = dir.join("r.json");
    let out = Test::new()
        .env("SOCKSCRIPT_VAR_who", "env")
        .write("suite/one.rhai", "print(`one sees ${who} ${n}`);")
        .write("suite/two/two.rhai", "print(`two sees ${who} ${n}`);")
        .path("suite")
        .args(&["--var", "n=7", "--report-json", &json.to_string_lossy()])
        .run();
    out.code(0);
    let doc = json_via_python(&json);
    assert_eq!(doc["scenarios"][0]["stdout"], "one sees env 7\n");
    assert_eq!(doc["scenarios"][1]["stdout"], "two sees env 7\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_variable_does_not_compile_and_says_how_to_pass_it() {
    let script = "let greeting = \"hi\";\nlet addr = `${host}:80`;\nprint(addr);\n";
    for mode in [&[][..], &["--test"][..]] {
        let out = Test::new()
            .args(mode)
            .named("needs_host.rhai", script)
            .run();
        out.code(3).stdout("");
        let flat = out.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("Undefined variable: host"), "{}", out.stderr);
        assert!(flat.contains("--var host=VALUE"), "{}", out.stderr);
        assert!(
            flat.contains("SOCKSCRIPT_VAR_host") && flat.contains("--vars-file"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("[needs_host.rhai:2:"), "{}", out.stderr);
        assert!(
            out.stderr.contains("2 │ let addr = `${host}:80`;"),
            "{}",
            out.stderr
        );
    }
    // Given from any source, the same script runs.
    Test::new()
        .env("SOCKSCRIPT_VAR_host", "example")
        .named("needs_host.rhai", script)
        .run()
        .code(0)
        .stdout("example:80\n");
}

// ---------------------------------------------------------------------------------------------
// 6. Selecting scenarios

#[test]
fn partitions_cover_every_scenario_exactly_once() {
    let names = [
        "a.rhai",
        "b.rhai",
        "c/d.rhai",
        "c/e.rhai",
        "f.rhai",
        "g/h/i.rhai",
        "j.rhai",
    ];
    let suite = || {
        names
            .iter()
            .fold(Test::new(), |t, n| {
                t.write(&format!("suite/{n}"), PASS_NESTED)
            })
            .path("suite")
    };
    let mut seen: Vec<String> = Vec::new();
    for k in 1..=3 {
        let out = suite().args(&["--partition", &format!("{k}/3")]).run();
        out.code(0);
        let lines = status_lines(&out);
        assert!(
            !lines.is_empty(),
            "shard {k}/3 ran nothing:\n{}",
            out.stderr
        );
        assert_eq!(
            last_line(&out),
            format!("{} passed, 0 failed", lines.len()),
            "{}",
            out.stderr
        );
        seen.extend(lines.into_iter().map(|s| s.name));
    }
    seen.sort();
    assert_eq!(seen, names, "the union of the shards");
    // The same shard twice is the same scenarios.
    let once = |k: usize| {
        let mut n: Vec<String> =
            status_lines(&suite().args(&["--partition", &format!("{k}/3")]).run())
                .into_iter()
                .map(|s| s.name)
                .collect();
        n.sort();
        n
    };
    assert_eq!(once(2), once(2));
}

#[test]
fn an_empty_shard_passes() {
    let out = Test::new()
        .write("suite/a.rhai", PASS_NESTED)
        .write("suite/b.rhai", FAIL)
        .path("suite")
        .args(&["--partition", "3/3"])
        .run();
    out.code(0);
    assert!(!out.stderr.contains("FAILED"), "{}", out.stderr);
    assert_eq!(last_line(&out), "0 passed, 0 failed", "{}", out.stderr);
    // A filter plus a shard that leaves nothing is not a usage error either.
    Test::new()
        .write("suite/a.rhai", PASS_NESTED)
        .write("suite/b.rhai", FAIL)
        .path("suite")
        .args(&["--filter", "a.rhai", "--partition", "2/2"])
        .run()
        .code(0);
}

#[test]
fn filters_select_by_path_substring() {
    let suite = || {
        Test::new()
            .write("suite/smoke/ping.rhai", PASS_NESTED)
            .write("suite/smoke/info.rhai", PASS_NESTED)
            .write("suite/other/smoke_test.rhai", PASS_NESTED)
            .write("suite/broken.rhai", FAIL)
            .path("suite")
    };
    let names = |args: &[&str]| {
        let out = suite().args(args).run();
        out.code(0);
        let mut n: Vec<String> = status_lines(&out).into_iter().map(|s| s.name).collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&["--filter", "smoke/"]),
        ["smoke/info.rhai", "smoke/ping.rhai"]
    );
    // Repeatable: any filter selects.
    assert_eq!(
        names(&["--filter", "ping", "--filter", "smoke_test"]),
        ["other/smoke_test.rhai", "smoke/ping.rhai"]
    );
    // The path as given, directory included, not only the name in the report.
    assert_eq!(
        names(&["--filter", "suite/other"]),
        ["other/smoke_test.rhai"]
    );
    // Without a filter the failing scenario runs.
    suite().args(&["--test"]).run().code(1);
}

// ---------------------------------------------------------------------------------------------
// 7. Retries

const FLAKY: &str = r#"
let conn = connect(`127.0.0.1:${port}`);
let answer = conn.recv_line();
print(`answer: ${answer}`);
assert_eq(answer, "ok");
"#;

#[test]
fn retry_runs_a_flaky_scenario_again_and_says_how_many_attempts() {
    let dir = temp_dir("retry");
    let json = dir.join("r.json");
    let (svc, port) = answering_service(&["fail", "ok"]);
    let out = Test::new()
        .write("suite/flaky.rhai", FLAKY)
        .write("suite/steady.rhai", PASS_NESTED)
        .path("suite")
        .args(&["--var", &format!("port={port}"), "--retry", "1"])
        .args(&["--report-json", &json.to_string_lossy()])
        .run();
    out.code(0);
    let lines = status_lines(&out);
    let flaky = lines
        .iter()
        .find(|s| s.name == "flaky.rhai")
        .expect("flaky.rhai's line");
    assert_eq!(
        (flaky.status.as_str(), flaky.attempts),
        ("ok", Some(2)),
        "{}",
        out.stderr
    );
    assert!(
        normalize(&out.stderr).contains("flaky.rhai: ok (1 connection, N ms, 2 attempts)\n"),
        "{}",
        out.stderr
    );
    // A scenario that passed at once says nothing about attempts.
    let steady = lines.iter().find(|s| s.name == "steady.rhai");
    assert_eq!(steady.map(|s| s.attempts), Some(None), "{}", out.stderr);
    assert_eq!(served(svc), 2);
    let doc = json_via_python(&json);
    assert_eq!(doc["scenarios"][0]["name"], "flaky.rhai");
    assert_eq!(doc["scenarios"][0]["attempts"], 2);
    assert_eq!(doc["scenarios"][0]["stdout"], "answer: ok\n");
    assert_eq!(doc["scenarios"][1]["attempts"], 1);
    let _ = std::fs::remove_dir_all(&dir);

    // Without --retry the same service order fails it.
    let (svc, port) = answering_service(&["fail", "ok"]);
    let out = Test::new()
        .args(&["--test", "--var", &format!("port={port}")])
        .named("flaky.rhai", FLAKY)
        .run();
    out.code(1);
    assert_eq!(
        normalize(&out.stderr).lines().next(),
        Some("flaky.rhai: FAILED (1 connection, N ms)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("  | answer: fail\n"), "{}", out.stderr);
    assert_eq!(served(svc), 1);
}

#[test]
fn retry_gives_up_after_n_more_attempts() {
    let (svc, port) = answering_service(&["fail"]);
    let out = Test::new()
        .args(&["--var", &format!("port={port}"), "--retry", "2"])
        .named("flaky.rhai", FLAKY)
        .run();
    out.code(1);
    assert_eq!(
        normalize(&out.stderr).lines().next(),
        Some("flaky.rhai: FAILED (1 connection, N ms, 3 attempts)"),
        "{}",
        out.stderr
    );
    assert_eq!(served(svc), 3, "one run and two retries");
    assert_eq!(last_line(&out), "0 passed, 1 failed");
}

// ---------------------------------------------------------------------------------------------
// 8. wait_for

#[test]
fn wait_for_retries_until_a_late_service_listens() {
    let port = reserve_port();
    let mut run = Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
let addr = `127.0.0.1:${port}`;
assert_err(|| connect(addr), "connection_refused");   // nothing listens yet
print("waiting");
let attempts = wait_for(addr, "10s");
print(`attempts: ${attempts}`);
let conn = connect(addr);
assert_eq(conn.recv_line(), "ready");
print("connected");
"#,
        )
        .spawn();
    assert_eq!(run.line(), "waiting");
    // The service starts only now, after the scenario began waiting.
    let mut svc = python(&format!(
        r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.settimeout(10)
s.bind(("127.0.0.1", {port}))
s.listen(16)
print("listening")
for _ in range(4):
    c, _ = s.accept()
    try:
        c.sendall(b"ready\n")
    except OSError:
        pass
    c.close()
"#
    ));
    assert_eq!(svc.line(), "listening");
    let line = run.line();
    let attempts: u32 = line
        .strip_prefix("attempts: ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected `attempts: N`, got {line:?}"));
    assert!(attempts >= 1, "{line}");
    let out = run.wait();
    out.code(0)
        .stdout(&format!("waiting\nattempts: {attempts}\nconnected\n"));
}

#[test]
fn wait_for_gives_up_with_kind_timeout() {
    Test::new()
        .script(
            r#"
let e = assert_err(|| wait_for("127.0.0.1:1", 300), "timeout");
print(e.kind);
print(e.message);
"#,
        )
        .run()
        .code(0)
        .stdout_has("timeout\n")
        .stdout_has("nothing accepted a connection within 300ms")
        .faster_than(Duration::from_secs(3));
    // Uncaught, it is an error of the scenario.
    Test::new()
        .args(&["--test"])
        .named("down.rhai", "wait_for(\"127.0.0.1:1\", \"300ms\");\n")
        .run()
        .code(4)
        .stderr_has("down.rhai: ERROR")
        .stderr_has("nothing accepted a connection within 300ms")
        .faster_than(Duration::from_secs(3));
}

// ---------------------------------------------------------------------------------------------
// 9. A terminal gets a progress bar; no terminal, no progress bar

#[test]
fn on_a_terminal_a_progress_bar_counts_up_and_is_cleared_at_the_end() {
    // `script` (util-linux) runs the command on a real pseudo-terminal and copies what the
    // terminal received to its stdout.
    let dir = temp_dir("tty");
    let files: [(&str, &str); 3] = [
        ("slow.rhai", "sleep(400); print(\"slept\");\n"),
        ("a_pass.rhai", PASS_CONNECTING),
        ("c_fail.rhai", FAIL),
    ];
    for (name, source) in files {
        std::fs::write(dir.join(name), source).expect("write a scenario");
    }
    let command = format!(
        "{} --test -j 2 {}",
        env!("CARGO_BIN_EXE_sockscript"),
        dir.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &command, "/dev/null"])
        .env_remove("CI")
        .env_remove("NO_COLOR");
    let out = Proc::start("script", cmd, WALL).wait();
    out.code(1);
    let screen = &out.stdout;
    for drawn in ["[0/3]", "[2/3]"] {
        assert!(screen.contains(drawn), "no {drawn} bar:\n{screen:?}");
    }
    for status in ["c_fail.rhai: FAILED", "a_pass.rhai: ok", "slow.rhai: ok"] {
        assert!(screen.contains(status), "no {status:?}:\n{screen:?}");
    }
    // The bar's last drawing is erased before the failures and the summary are printed.
    let report = screen.find("failures:").expect("a failures section");
    let last_bar = screen[..report]
        .rfind("/3]")
        .expect("a bar before the failures");
    assert!(
        screen[last_bar..report].contains("\x1b[2K"),
        "the bar is not cleared:\n{:?}",
        &screen[last_bar..]
    );
    assert!(screen.contains("2 passed, 1 failed"), "{screen:?}");
    let _ = std::fs::remove_dir_all(PathBuf::from(&dir));
}

#[test]
fn without_a_terminal_stderr_has_plain_lines_only() {
    let dir = temp_dir("plain");
    let files: [(&str, &str); 4] = [
        ("slow.rhai", "sleep(400); print(\"slept\");\n"),
        ("a_pass.rhai", PASS_CONNECTING),
        ("c_fail.rhai", FAIL),
        ("e_error.rhai", ERROR),
    ];
    for (name, source) in files {
        std::fs::write(dir.join(name), source).expect("write a scenario");
    }
    // `--color auto` as a user would run it; no CI or NO_COLOR to hide the bar for us.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sockscript"));
    cmd.args(["--color", "auto", "--test", "-j", "2"])
        .arg(&dir)
        .env_remove("CI")
        .env_remove("NO_COLOR");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SOCKSCRIPT_VAR_") {
            cmd.env_remove(k);
        }
    }
    let out = Proc::start("sockscript", cmd, WALL).wait();
    out.code(4);
    assert!(
        !out.stderr.contains('\r'),
        "a carriage return:\n{:?}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\x1b'),
        "an escape sequence:\n{:?}",
        out.stderr
    );
    assert_eq!(status_lines(&out).len(), 4);
    assert_eq!(last_line(&out), "2 passed, 2 failed");
    let _ = std::fs::remove_dir_all(PathBuf::from(&dir));
}

/// `--exclude` drops the scenarios whose path contains its text (after `--filter`), and a
/// directory named `lib` holds modules, not scenarios: none of them runs.
#[test]
fn exclude_and_lib_directories_leave_scenarios_out() {
    let out = Test::new()
        .write("suite/a_pass.rhai", "print(1);")
        .write("suite/slow/b_pass.rhai", "print(2);")
        .write("suite/c_fail.rhai", FAIL)
        .write(
            "suite/lib/helpers.rhai",
            "throw \"a module ran as a scenario\";",
        )
        .write(
            "suite/smoke/lib/more.rhai",
            "throw \"a module ran as a scenario\";",
        )
        .args(&["--exclude", "slow/", "--exclude", "c_fail"])
        .path("suite")
        .run();
    out.code(0).stderr_has("a_pass.rhai: ok");
    for left_out in ["b_pass", "c_fail", "helpers", "more.rhai"] {
        assert!(!out.stderr.contains(left_out), "{left_out}: {}", out.stderr);
    }
    assert!(out.stderr.contains("1 passed"), "{}", out.stderr);
}

/// A report replaces the file it is written to in one step (written beside it, then renamed
/// over it: a new inode, with the old file's permissions), so a run stopped while writing never
/// leaves half a report; a link is written through, a device such as `/dev/stdout` in place,
/// and nothing is left beside them.
#[test]
fn reports_replace_their_file_whole_and_write_through_links_and_devices() {
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("report-files");
    let junit = dir.join("r.xml");
    let target = dir.join("kept.json");
    let link = dir.join("r.json");
    for file in [&junit, &target] {
        std::fs::write(file, "old").unwrap_or_else(|e| panic!("{e}"));
    }
    // A report may hold a conversation: the file's own permissions stay.
    use std::os::unix::fs::PermissionsExt;
    let private = std::fs::Permissions::from_mode(0o600);
    std::fs::set_permissions(&junit, private).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
    let inode = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.ino());
    let before = inode(&junit);
    let out = Test::new()
        .write("suite/a.rhai", "print(\"hi\");\n")
        .path("suite")
        .args(&["--test", "--report-junit", &junit.to_string_lossy()])
        .args(&["--report-json", &link.to_string_lossy()])
        .args(&["--report-tap", "/dev/stdout"])
        .run();
    out.code(0).stdout_has("TAP version").stdout_has("ok 1");
    let text = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{e}"));
    assert!(text(&junit).contains("<testsuites"), "{}", text(&junit));
    assert_ne!(inode(&junit), before, "the report was rewritten in place");
    let mode = std::fs::metadata(&junit).map_or(0, |m| m.permissions().mode() & 0o777);
    assert_eq!(mode, 0o600, "the report's permissions");
    assert!(std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()));
    assert!(text(&target).contains("\"passed\""), "{}", text(&target));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(names, ["kept.json", "r.json", "r.xml"]);
    let _ = std::fs::remove_dir_all(&dir);
}
