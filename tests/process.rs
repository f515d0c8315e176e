//! `exec`: the service under test as a process (its stdout, stdin and stderr as streams, its
//! exit code), `--allow-exec` and its allow-list, and that no process outlives its run however
//! the run ends (the scenario's end, `--max-time`, a failure, Ctrl-C); `"none"` deadlines;
//! `interactive()` on a real pseudo-terminal (`script`, from bsdutils).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{ctrl_c, temp_dir, Proc, Test};

const WALL: Duration = Duration::from_secs(30);

/// Whether process `pid` is still running: a zombie (killed, not yet reaped by whoever
/// inherited it) is not.
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Every pid a run printed on a line `pids: A B ...` is gone, within a short grace (a killed
/// process takes a moment to die).
fn assert_gone(stdout: &str) {
    let pids: Vec<u32> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("pids: "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse().expect("a pid")))
        .collect();
    assert!(!pids.is_empty(), "no pids printed:\n{stdout}");
    let until = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|&p| running(p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left: Vec<_> = pids.iter().filter(|&&p| running(p)).collect();
    assert!(left.is_empty(), "still running after the run: {left:?}");
}

/// A shell that starts a grandchild (`sleep`) and prints both pids, then waits: killing the
/// shell alone would leave the `sleep` behind.
const FAMILY: &str = r#"
let p = exec(["sh", "-c", "sleep 300 & echo $$ $!; wait"]);
print(`pids: ${p.recv_line()}`);
"#;

#[test]
fn the_smoke_service_started_with_exec_answers_and_is_gone_after_the_run() {
    let out = Test::new()
        .args(&["--allow-exec=python3"])
        .file("scenarios/exec_service.rhai")
        .wall(WALL)
        .run();
    out.code(0).stdout_has("answered PING");
    let pid: u32 = out
        .stdout
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .expect("the service's pid");
    assert_gone(&format!("pids: {pid}\n"));
}

#[test]
fn a_process_is_a_stream_with_stderr_an_exit_code_and_a_kill() {
    Test::new()
        .args(&["--allow-exec"])
        .script(
            r#"
            let p = exec(["sh", "-c", "echo ready; echo oops >&2; read line; echo got $line; exit 3"]);
            assert_eq(p.recv_line(), "ready");
            assert_eq(p.stderr.recv_line(), "oops");
            p.send_line("hello");
            assert_eq(p.expect("got (\\w+)").groups[0], "hello");
            assert_eq(p.wait(), 3);
            assert_eq(p.exit_code, 3);
            assert_eq(p.recv_all(), "\n");

            // shutdown() closes its stdin: `cat` sees the end of its input and exits.
            let cat = exec(["cat"]);
            cat.send("a\nb");
            cat.shutdown();
            assert_eq(cat.recv_all(), "a\nb");
            assert_eq(cat.wait("2s"), 0);

            // A killed process's code is 128 + the signal (9).
            let sleeper = exec(["sleep", "300"]);
            sleeper.kill();
            assert_eq(sleeper.wait(), 137);

            // Environment and working directory.
            let env = exec(["sh", "-c", "echo $GREETING $(pwd)"], #{env: #{GREETING: "hi"}, cwd: "/"});
            assert_eq(env.recv_line(), "hi /");

            // A process that does not answer in time is a timeout like any stream's.
            let slow = exec(["sleep", "300"], #{timeout: 100});
            assert_eq(assert_err(|| slow.recv_line(), "timeout").op, "recv_line");
            assert_eq(slow.timeout, 100);
            // Its stderr is read, not written.
            assert_err(|| slow.stderr.send("x"), "io");
            print(`${p}`);
            "#,
        )
        .wall(WALL)
        .run()
        .code(0)
        .stdout_has("Process(process:sh[")
        .stdout_has("], exit code 3)");
}

/// A chatty service whose output the scenario does not read: with `stdout` or `stderr`
/// `"discard"` it never waits on a full pipe (1 MiB is far more than a pipe holds), and the
/// discarded stream reads as ended.
#[test]
fn a_process_s_output_can_be_discarded_so_it_never_waits_on_a_full_pipe() {
    let out = Test::new()
        .args(&["--allow-exec", "--timeout", "5s"])
        .script(
            r#"
            let chatty = exec(["sh", "-c", "head -c 1048576 /dev/zero >&2; echo ready"], #{stderr: "discard"});
            assert_eq(chatty.recv_line(), "ready");
            assert_eq(chatty.stderr.recv_all(), "");
            assert_eq(chatty.wait(), 0);

            let quiet = exec(["sh", "-c", "head -c 1048576 /dev/zero; echo done >&2"], #{stdout: "discard", stderr: "pipe"});
            assert_eq(quiet.stderr.recv_line(), "done");
            assert_eq(quiet.wait(), 0);
            assert_eq(quiet.recv_all(), "");

            let err = assert_err(|| exec(["true"], #{stdout: "null"}), "invalid_argument");
            print(err.message);
            "#,
        )
        .args(&["--trace"])
        .wall(WALL)
        .run();
    out.code(0)
        .stdout_has(r#"exec: `stdout` is "pipe" (the default: the scenario reads it) or "discard", not "null""#)
        .stderr_has("(stdout discarded)");
}

#[test]
fn exec_needs_allow_exec_and_an_allow_list_compares_resolved_paths() {
    let denied = r#"
        let e = assert_err(|| exec(["sh", "-c", "true"]), "permission_denied");
        print(e.message);
    "#;
    Test::new()
        .script(denied)
        .run()
        .code(0)
        .stdout("exec: starting `sh` is not allowed: pass `--allow-exec` (any program) or `--allow-exec=sh`\n");
    // Uncaught, it fails the run at the call, naming the flag.
    Test::new()
        .script("exec([\"true\"]);\n")
        .run()
        .code(4)
        .stderr_has("permission_denied")
        .stderr_has("--allow-exec");
    // `sh` is allowed by name and by the path it resolves to; nothing else is, not even a
    // program of that name elsewhere.
    let sh = Command::new("sh")
        .args(["-c", "command -v sh"])
        .output()
        .expect("sh");
    let sh_path = String::from_utf8_lossy(&sh.stdout).trim().to_owned();
    let dir = temp_dir("fake-sh");
    let fake = dir.join("sh");
    std::fs::write(&fake, "#!/bin/sh\necho fake\n").expect("write");
    let chmod = Command::new("chmod").arg("+x").arg(&fake).status();
    assert!(chmod.is_ok_and(|s| s.success()));
    let script = format!(
        r#"
        assert_eq(exec(["sh", "-c", "echo one"]).recv_line(), "one");
        assert_eq(exec(["{sh_path}", "-c", "echo two"]).recv_line(), "two");
        let e = assert_err(|| exec(["{}"]), "permission_denied");
        assert_match(e.message, "is not one of the programs `--allow-exec` allows");
        assert_err(|| exec(["cat"]), "permission_denied");
        assert_err(|| exec([]), "invalid_argument");
        assert_err(|| exec("sh -c true"), "invalid_argument");
        "#,
        fake.display()
    );
    Test::new()
        .args(&["--allow-exec=sh"])
        .script(&script)
        .run()
        .code(0);
    // A program the list names that cannot be found is a usage error before anything runs.
    Test::new()
        .args(&["--allow-exec=no-such-program-here"])
        .script("print(1);\n")
        .run()
        .code(2)
        .stderr("error: --allow-exec: `no-such-program-here` is not found in PATH\n");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_process_outlives_its_scenario_however_it_ends() {
    let endings = [
        // The main script returns.
        ("ends", "", 0),
        // An assertion fails.
        ("fails", "fail(\"no\");", 1),
        // A task fails.
        ("task", "spawn(|| throw \"boom\").join();", 4),
        // The scenario runs past --max-time.
        ("max-time", "sleep(60000);", 4),
    ];
    for (name, tail, code) in endings {
        let out = Test::new()
            .args(&["--allow-exec", "--max-time", "1s"])
            .script(&format!("{FAMILY}{tail}\n"))
            .wall(WALL)
            .run();
        assert_eq!(out.code, code, "{name}:\n{}\n{}", out.stdout, out.stderr);
        assert_gone(&out.stdout);
    }
    // The main thread stuck inside one built-in call when --max-time comes: the run ends
    // without it (left behind), and the processes go all the same.
    let stuck =
        format!("{FAMILY}let b = blob(20_000_000, 0x41);\nloop {{ let h = hexdump(b); }}\n");
    let out = Test::new()
        .args(&["--allow-exec", "--max-time", "1s", "--limit", "data=512MiB"])
        .script(&stuck)
        .wall(WALL)
        .run();
    assert_eq!(out.code, 4, "left behind:\n{}\n{}", out.stdout, out.stderr);
    assert_gone(&out.stdout);
    // Test mode too, several at once: their output is captured, so the shells write the pids
    // to a file.
    let dir = temp_dir("test-mode-pids");
    let pidfile = dir.join("pids");
    let family = "let p = exec([\"sh\", \"-c\", `sleep 300 & echo $$ $! >> ${var(\"pidfile\")}; echo; wait`]);\n\
                  p.recv_line();\n";
    let out = Test::new()
        .args(&["--allow-exec", "--test", "--max-time", "1s"])
        .args(&["--var", &format!("pidfile={}", pidfile.display())])
        .named("a.rhai", family)
        .named("b.rhai", &format!("{family}sleep(60000);\n"))
        .named("c.rhai", &format!("{family}fail(\"no\");\n"))
        .wall(WALL)
        .run();
    out.code(4);
    let pids = std::fs::read_to_string(&pidfile).expect("the shells wrote their pids");
    assert_eq!(pids.lines().count(), 3, "{pids}");
    assert_gone(&format!("pids: {}", pids.replace('\n', " ")));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ctrl_c_kills_the_process_group_at_once() {
    let mut run = Test::new()
        .args(&["--allow-exec", "--max-time", "none", "--timeout", "none"])
        .script(&format!(
            "{FAMILY}\nlet c = exec([\"cat\"]);\nprint(\"ready\");\nc.recv_line();\n"
        ))
        .wall(WALL)
        .spawn();
    let pids = run.line();
    assert_eq!(run.line(), "ready");
    ctrl_c(run).stderr("interrupted\n");
    assert_gone(&pids);
}

#[test]
fn none_lifts_a_deadline_where_one_may_be_lifted() {
    Test::new()
        .args(&["--timeout", "none"])
        .script(
            r#"
            let l = listen("127.0.0.1:0");
            assert_eq(l.timeout, ());
            l.timeout = "none";
            assert_eq(l.timeout, "none");
            let c = connect(l.addr, #{timeout: "none"});
            assert_eq(c.timeout, "none");
            c.timeout = "2s";
            assert_eq(c.timeout, 2000);
            let e = assert_err(|| within("none", || 1), "invalid_argument");
            print(e.message);
            assert_err(|| sleep("none"), "invalid_argument");
            "#,
        )
        .run()
        .code(0)
        .stdout(
            "within: `\"none\"` (no deadline) is only for `--timeout`, `--max-time` and a \
             handle's `timeout`; give within a duration\n",
        );
    // Test mode refuses to run with no deadline at all, unless told it may.
    Test::new()
        .args(&["--test", "--max-time", "none"])
        .script("print(1);\n")
        .run()
        .code(2)
        .stderr_has("`--max-time none` in test mode could hang a CI run")
        .stderr_has("--allow-no-deadline");
    Test::new()
        .args(&["--test", "--max-time", "none", "--allow-no-deadline"])
        .script("print(1);\n")
        .run()
        .code(0);
    Test::new()
        .args(&["--timeout", "soon"])
        .script("print(1);\n")
        .run()
        .code(2)
        .stderr_has("`soon` is not a duration")
        .stderr_has("(or `none`)");
}

#[test]
fn with_no_deadline_a_run_waits_until_ctrl_c() {
    let mut run = Test::new()
        .args(&["--max-time", "none", "--timeout", "none"])
        .script(
            r#"
            let l = listen("127.0.0.1:0");
            print("ready");
            l.accept();
            "#,
        )
        .wall(WALL)
        .spawn();
    assert_eq!(run.line(), "ready");
    // Well past the default deadlines' first marks, it is still waiting.
    std::thread::sleep(Duration::from_millis(300));
    ctrl_c(run).stdout("ready\n").stderr("interrupted\n");
}

/// An echo peer for `interactive()`: greets, then answers each line in capitals; with
/// `once`, closes after the first answer.
fn interactive_script(once: bool) -> String {
    let answer = if once {
        "c.send_line(c.recv_line().to_upper()); c.close();"
    } else {
        "loop { c.send_line(c.recv_line().to_upper()); }"
    };
    format!(
        r#"
        let server = listen("127.0.0.1:0");
        spawn(|| {{
            let c = server.accept();
            c.timeout = "none";
            c.send_line("welcome");
            {answer}
        }});
        let conn = connect(server.addr);
        print(`closed by peer: ${{conn.interactive()}}`);
        "#
    )
}

/// Run `source` under `script` on a pseudo-terminal: for each step, once its text is on the
/// screen, type its keys.
fn on_a_terminal(source: &str, steps: &[(&str, &[u8])]) -> String {
    let dir = temp_dir("interactive");
    let file = dir.join("talk.rhai");
    std::fs::write(&file, source).expect("write the scenario");
    let command = format!(
        "{} --max-time 20s {}",
        env!("CARGO_BIN_EXE_sockscript"),
        file.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &command, "/dev/null"]);
    let mut run = Proc::start("script", cmd, WALL);
    for (seen, typed) in steps {
        while !run.line().contains(seen) {}
        run.send(typed);
    }
    let out = run.wait();
    let _ = std::fs::remove_dir_all(dir);
    out.code(0);
    out.stdout
}

#[test]
fn interactive_hands_the_terminal_to_the_stream_until_the_peer_closes() {
    let screen = on_a_terminal(&interactive_script(true), &[("welcome", b"hello\n")]);
    assert!(screen.contains("HELLO"), "{screen:?}");
    assert!(screen.contains("closed by peer: true"), "{screen:?}");
}

#[test]
fn interactive_ends_on_ctrl_d() {
    let screen = on_a_terminal(
        &interactive_script(false),
        &[("welcome", b"hi\n"), ("HI", b"\x04")],
    );
    assert!(screen.contains("HI"), "{screen:?}");
    assert!(screen.contains("closed by peer: false"), "{screen:?}");
}

#[test]
fn interactive_needs_run_mode_and_a_terminal() {
    let script = "let l = listen(\"127.0.0.1:0\");\nlet c = connect(l.addr);\nc.interactive();\n";
    Test::new()
        .script(script)
        .run()
        .code(4)
        .stderr_has("invalid_argument")
        .stderr_has("stdin is not a terminal");
    Test::new()
        .args(&["--test"])
        .script(script)
        .run()
        .code(4)
        .stderr_has("test mode captures the output");
}

#[test]
fn a_process_s_pipes_are_in_the_transcript_as_transport_process() {
    let dir = temp_dir("process-json");
    let json = dir.join("r.json");
    let script = "let p = exec([\"sh\", \"-c\", \"read x; echo got $x\"]);\n\
                  p.send_line(\"a\");\n\
                  assert_eq(p.recv_line(), \"got a\");\n\
                  assert_eq(p.wait(), 0);\n";
    Test::new()
        .args(&["--allow-exec", "--report-json", &json.display().to_string()])
        .script(script)
        .run()
        .code(0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the report")).expect("JSON");
    let events = report["scenarios"][0]["transcript"]
        .as_array()
        .expect("events");
    let seen: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {} {}",
                e["kind"].as_str().unwrap_or("?"),
                e["transport"].as_str().unwrap_or("?"),
                e["local"].as_str().unwrap_or("?"),
                e["data"].as_str().unwrap_or("?"),
                e["note"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            "connect process pipe:stdio  exec sh -c read x; echo got $x",
            "connect process pipe:stderr  ",
            "send process pipe:stdio a\n ",
            "recv process pipe:stdio got a\n ",
            "close process pipe:stdio  exit code 0",
        ]
    );
    let peer = events[0]["peer"].as_str().unwrap_or_default();
    assert!(
        peer.starts_with("process:sh[") && peer.ends_with(']'),
        "{peer}"
    );
    // Run mode's --trace shows the same events as they happen.
    Test::new()
        .args(&["--allow-exec", "--trace"])
        .script(script)
        .run()
        .code(0)
        .stderr_has("recv     pipe:stdio <- process:sh[")
        .stderr_has("process#1 (6 bytes)");
    let _ = std::fs::remove_dir_all(dir);
}
