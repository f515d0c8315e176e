//! The command line (DESIGN.md §3): exit codes, `--var` constants, `--check`, and test mode's
//! per-scenario lines and summary.

use crate::harness::{normalize, Test};

#[test]
fn exit_0_when_the_scenario_passes() {
    Test::new()
        .script("print(`1 + 1 = ${1 + 1}`);")
        .run()
        .code(0)
        .stdout("1 + 1 = 2\n")
        .stderr("");
}

#[test]
fn exit_1_when_an_assertion_fails() {
    Test::new()
        .script("assert_eq(1 + 1, 3);")
        .run()
        .code(1)
        .stderr_has("assert_eq failed");
}

#[test]
fn exit_2_for_a_missing_file() {
    Test::new()
        .path("no/such/scenario.rhai")
        .run()
        .code(2)
        .stdout("")
        .stderr_has("no/such/scenario.rhai");
}

#[test]
fn exit_2_for_a_bad_timeout() {
    Test::new()
        .args(&["--timeout", "abc"])
        .script("print(1);")
        .run()
        .code(2)
        .stdout("")
        .stderr_has("--timeout: `abc` is not a duration");
}

#[test]
fn exit_2_for_a_bad_var() {
    Test::new()
        .args(&["--var", "no-dash=1"])
        .script("print(1);")
        .run()
        .code(2)
        .stderr_has("--var");
}

#[test]
fn exit_2_for_an_unknown_option() {
    Test::new()
        .args(&["--no-such-flag"])
        .script("print(1);")
        .run()
        .code(2);
}

#[test]
fn exit_3_when_the_script_does_not_compile() {
    Test::new()
        .script("let x = ;")
        .run()
        .code(3)
        .stdout("")
        .stderr_has("`script.rhai` does not compile");
}

#[test]
fn exit_4_when_a_socket_call_fails() {
    let out = Test::new()
        .script(
            r#"
            let l = listen("127.0.0.1:0");
            let addr = l.addr;
            l.close();
            connect(addr);
            "#,
        )
        .run();
    out.code(4).stderr_has("failed: connection refused");
}

#[test]
fn vars_are_constants_of_the_type_they_spell() {
    Test::new()
        .args(&[
            "--var",
            "port=8080",
            "--var",
            "verbose=true",
            "--var",
            "quiet=false",
            "--var",
            "host=127.0.0.1",
            "--var",
            "greeting=hello world",
            "--var",
            "empty=",
        ])
        .script(
            r#"
            assert_eq(type_of(port), "i64");
            assert_eq(port, 8080);
            assert_eq(type_of(verbose), "bool");
            assert_eq(verbose, true);
            assert_eq(quiet, false);
            assert_eq(type_of(host), "string");
            assert_eq(host, "127.0.0.1");
            assert_eq(greeting, "hello world");
            assert_eq(empty, "");
            // Functions see them too.
            fn target() { `${host}:${port}` }
            print(target());
            "#,
        )
        .run()
        .code(0)
        .stdout("127.0.0.1:8080\n");
}

#[test]
fn vars_are_visible_inside_spawned_tasks() {
    Test::new()
        .args(&["--var", "n=21"])
        .script("let t = spawn(|| n * 2); assert_eq(t.join(), 42);")
        .run()
        .code(0);
}

#[test]
fn vars_come_from_the_environment_a_file_and_flags_later_ones_winning() {
    Test::new()
        .env("SOCKSCRIPT_VAR_from_env", "1")
        .env("SOCKSCRIPT_VAR_overridden", "env")
        .write("vars.txt", "# a comment\nfrom_file=yes\noverridden=file\n")
        .args(&["--vars-file", "vars.txt", "--var", "from_flag=7"])
        .script(
            r#"
            assert_eq(from_env, 1);
            assert_eq(from_file, "yes");
            assert_eq(from_flag, 7);
            assert_eq(overridden, "file");
            "#,
        )
        .run()
        .code(0);
}

#[test]
fn vars_files_repeat_and_files_become_variables() {
    Test::new()
        .write("a.vars", "host = a\nport = 1\n")
        .write("b.vars", "port = 2\n")
        .write(
            "ca.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .args(&["--vars-file", "a.vars", "--vars-file", "b.vars"])
        .args(&["--var-file", "ca=ca.pem"])
        .script(
            r#"
            assert_eq(host, "a");
            assert_eq(port, 2);
            assert_eq(ca, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
            "#,
        )
        .run()
        .code(0);
}

#[test]
fn a_var_file_that_is_not_there_is_a_usage_error() {
    Test::new()
        .args(&["--var-file", "ca=missing.pem"])
        .script("print(1);")
        .run()
        .code(2)
        .stderr_has("--var-file ca: cannot read `missing.pem`");
}

/// `var(name)` and `var(name, default)` compile whether or not the variable is given; a
/// default is used only when it is missing (and only then evaluated), in tasks and functions
/// too; a missing one without a default is `invalid_argument` at its line.
#[test]
fn var_reads_a_variable_or_its_default() {
    let script = r#"
        fn host() { var("host", "127.0.0.1") }
        let port = var("port", 8080);
        let t = spawn(|| var("port", 0) + 1);
        print(`${host()}:${port} ${t.join()}`);
        let n = 0;
        let x = var("port", { n += 1; 5 });
        print(`defaults evaluated: ${n}`);
        try { var("missing"); } catch (e) { print(e.kind); }
        var("missing");
        "#;
    Test::new()
        .script(script)
        .run()
        .code(4)
        .stdout("127.0.0.1:8080 1\ndefaults evaluated: 1\ninvalid_argument\n")
        .stderr_has("no variable `missing`: give it with `--var missing=VALUE`")
        .stderr_has("script.rhai:10:");
    Test::new()
        .args(&["--var", "port=99", "--var", "host=h", "--var", "missing=m"])
        .script(script)
        .run()
        .code(0)
        .stdout("h:99 100\ndefaults evaluated: 0\n");
}

#[test]
fn an_undefined_var_is_a_compile_error() {
    Test::new()
        .script("print(port);")
        .run()
        .code(3)
        .stderr_has("Undefined variable: port");
}

#[test]
fn check_compiles_without_running() {
    let refuses = r#"
        let l = listen("127.0.0.1:0");
        let addr = l.addr;
        l.close();
        print("connecting");
        connect(addr);
        "#;
    Test::new()
        .args(&["--check"])
        .script(refuses)
        .run()
        .code(0)
        .stdout("")
        .stderr("");
    // Without --check the same script runs, prints, and fails.
    Test::new()
        .script(refuses)
        .run()
        .code(4)
        .stdout("connecting\n");
}

#[test]
fn check_still_finds_compile_errors() {
    Test::new()
        .args(&["--check"])
        .script("let b = (1 + ;")
        .run()
        .code(3);
}

#[test]
fn test_mode_prints_a_line_per_scenario_and_a_summary() {
    let out = Test::new()
        .args(&["--test", "-j", "2"])
        .write("a_pass.rhai", "print(\"captured\");")
        .write("b_fail.rhai", "assert_eq(1, 2);")
        .write(
            "sub/c_pass.rhai",
            "let l = listen(\"127.0.0.1:0\"); let c = connect(l.addr); let s = l.accept();",
        )
        .path(".")
        .run();
    out.code(1).stdout("");
    let stderr = normalize(&out.stderr);
    let mut status: Vec<&str> = stderr.lines().take(3).collect();
    status.sort();
    assert_eq!(
        status,
        [
            "a_pass.rhai: ok (0 connections, N ms)",
            "b_fail.rhai: FAILED (0 connections, N ms)",
            "sub/c_pass.rhai: ok (1 connection, N ms)",
        ],
        "{stderr}"
    );
    assert!(stderr.contains("---- b_fail.rhai ----"), "{stderr}");
    assert!(stderr.contains("assert_eq failed"), "{stderr}");
    assert!(
        !stderr.contains("captured"),
        "passing scenarios' output stays captured:\n{stderr}"
    );
    assert!(
        stderr.ends_with("\n3 scenarios in N.NNs\n2 passed, 1 failed\n"),
        "{stderr}"
    );
}

#[test]
fn test_mode_shows_the_output_of_a_failed_scenario() {
    let out = Test::new()
        .args(&["--test"])
        .named(
            "talkative.rhai",
            "print(\"step 1\"); print(\"step 2\"); fail(\"stop\");",
        )
        .run();
    out.code(1)
        .stdout("")
        .stderr_has("output:\n  | step 1\n  | step 2\n");
}

#[test]
fn test_mode_exits_with_the_worst_outcome() {
    // Compile errors outrank errors, which outrank failures.
    let fail = "assert(false);";
    let error = "throw \"boom\";";
    let compile = "let x = ;";
    let run = |files: &[(&str, &str)]| {
        let mut t = Test::new().args(&["--test"]);
        for (name, src) in files {
            t = t.write(name, src);
        }
        t.path(".").run().code
    };
    assert_eq!(run(&[("a.rhai", fail), ("b.rhai", "print(1);")]), 1);
    assert_eq!(run(&[("a.rhai", fail), ("b.rhai", error)]), 4);
    assert_eq!(
        run(&[("a.rhai", error), ("b.rhai", compile), ("c.rhai", fail)]),
        3
    );
    assert_eq!(run(&[("a.rhai", "print(1);"), ("b.rhai", "print(2);")]), 0);
}

#[test]
fn an_empty_directory_is_a_usage_error() {
    Test::new()
        .write("notes.txt", "not a scenario")
        .path(".")
        .run()
        .code(2)
        .stderr_has("no `.rhai` scenarios found");
}

#[test]
fn trace_shows_every_socket_event_on_stderr() {
    let out = Test::new()
        .args(&["--trace"])
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let c = connect(server.addr);
            let s = server.accept();
            c.send("ping");
            print(s.recv_exact(4));
            s.close();
            "#,
        )
        .run();
    out.code(0).stdout("ping\n");
    let stderr = normalize(&out.stderr);
    for event in ["listen", "connect", "accept", "send", "recv", "close"] {
        let re = regex::Regex::new(&format!(
            r"(?m)^\[ *[0-9.]+ms\] main +{event} +127\.0\.0\.1:PORT"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(re.is_match(&stderr), "no `{event}` event in:\n{stderr}");
    }
    assert!(stderr.contains("(4 bytes)\n    \"ping\""), "{stderr}");
}

#[test]
fn zero_durations_and_jobs_are_usage_errors() {
    Test::new()
        .args(&["--timeout", "0"])
        .script("print(1);")
        .run()
        .code(2);
    Test::new()
        .args(&["--max-time", "0s"])
        .script("print(1);")
        .run()
        .code(2);
    Test::new()
        .args(&["--test", "-j", "0"])
        .script("print(1);")
        .run()
        .code(2);
}
