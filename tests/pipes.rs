//! Pipes close: a reader that goes away (`| head -1`, `| true`) never panics sockscript, and
//! the exit code stays the scenario's. Each case runs the real binary in a real shell pipeline.

use std::process::Command;
use std::time::Duration;

use crate::harness::{temp_dir, Output, Proc};

/// Run `pipeline` in bash with `$BIN` the sockscript binary and `$DIR` a fresh directory
/// holding `files`; the pipeline prints the exit codes it wants to assert on.
fn shell(pipeline: &str, files: &[(String, String)]) -> Output {
    let dir = temp_dir("pipes");
    for (name, source) in files {
        if let Err(e) = std::fs::write(dir.join(name), source) {
            panic!("cannot write `{name}`: {e}");
        }
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(pipeline)
        .env("BIN", env!("CARGO_BIN_EXE_sockscript"))
        .env("DIR", &dir)
        .env_remove("CI");
    let out = Proc::start("bash", cmd, Duration::from_secs(30)).wait();
    let _ = std::fs::remove_dir_all(dir);
    out
}

#[test]
fn a_suite_whose_stderr_reader_goes_away_does_not_panic() {
    // Thirty failing scenarios write far more than the one line `head` reads.
    let files: Vec<(String, String)> = (0..30)
        .map(|i| {
            (
                format!("s{i:02}.rhai"),
                format!("print({i});\nassert({i} < 0);\n"),
            )
        })
        .collect();
    let out = shell(
        r#""$BIN" --color never --test -j 1 "$DIR" 2>&1 >/dev/null | head -1
           echo "exit ${PIPESTATUS[0]}""#,
        &files,
    );
    out.code(0);
    assert!(out.stdout.starts_with("s00.rhai: FAILED"), "{}", out.stdout);
    assert!(out.stdout.ends_with("exit 1\n"), "{}", out.stdout);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn a_run_whose_stdout_reader_goes_away_says_so_and_keeps_its_exit_code() {
    let files = vec![(
        "script.rhai".to_owned(),
        "for i in 0..100000 { print(`line ${i}`); }\nassert(false);\n".to_owned(),
    )];
    let out = shell(
        r#""$BIN" --color never "$DIR/script.rhai" | true
           echo "exit ${PIPESTATUS[0]}" >&2"#,
        &files,
    );
    out.code(0);
    assert!(out.stderr.contains("exit 1\n"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("warning: cannot write the script's output to stdout (broken pipe)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("assertion failed"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn a_run_whose_stdout_and_stderr_are_closed_keeps_its_exit_code() {
    let files = vec![(
        "script.rhai".to_owned(),
        "print(\"lost\");\nassert_eq(1, 2);\n".to_owned(),
    )];
    let out = shell(
        r#""$BIN" --color never "$DIR/script.rhai" >&- 2>&-
           echo "exit $?""#,
        &files,
    );
    out.code(0);
    assert_eq!(out.stdout, "exit 1\n");
}
