//! Every file in `scenarios/` is an example users copy from, so each one runs here, in run
//! mode, and must pass: exit 0 unless its leading comment says otherwise (`// exit: N`).
//!
//! A scenario whose header says `// needs: --var host=HOST --var port=PORT (a running
//! service ...)` checks a service it does not start: the `service.py` next to it is started
//! first (it prints its port), and the scenario gets `--var host=127.0.0.1 --var port=N`.
//! `// args: FLAGS` are added to its command line (`--allow-exec=python3`). `// skip: WHY` is
//! for a scenario that runs until Ctrl-C or needs another terminal's server (the lesson's):
//! the test WHY names runs it.

use std::path::Path;

use crate::harness::{expected_exit, header, python_file, rhai_files, root, Proc, Test};

/// Start the service a `needs:` scenario checks, if it needs one; with it, the `--var`s.
fn service_for(path: &Path, source: &str, extra: &[&str]) -> Option<(Proc, Vec<String>)> {
    let needs = header(source, "needs")?;
    let script = path.with_file_name("service.py");
    assert!(
        script.exists(),
        "{} needs `{needs}` but has no service.py next to it",
        path.display()
    );
    let mut service = python_file(&script, extra);
    let port = service.port();
    let vars = vec![
        "--var".to_owned(),
        "host=127.0.0.1".to_owned(),
        "--var".to_owned(),
        format!("port={port}"),
    ];
    Some((service, vars))
}

#[test]
fn every_scenario_runs_as_its_header_says() {
    let files: Vec<_> = rhai_files(&root().join("scenarios"))
        .into_iter()
        .filter(|path| {
            let source = std::fs::read_to_string(path).unwrap_or_default();
            header(&source, "skip").is_none()
        })
        .collect();
    assert!(!files.is_empty(), "no scenarios found");
    let failures: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = files
            .iter()
            .map(|path| {
                s.spawn(move || {
                    let source = std::fs::read_to_string(path)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    let expected = expected_exit(&source, path);
                    let service = service_for(path, &source, &[]);
                    let mut vars = service.as_ref().map(|(_, v)| v.clone()).unwrap_or_default();
                    let args = header(&source, "args").unwrap_or_default();
                    vars.extend(args.split_whitespace().map(str::to_owned));
                    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
                    let out = Test::new().args(&vars).file(path).run();
                    drop(service);
                    (out.code != expected).then(|| {
                        format!(
                            "==== {}: expected exit {expected}, got {}\n--- stdout ---\n{}--- stderr ---\n{}",
                            path.display(),
                            out.code,
                            out.stdout,
                            out.stderr
                        )
                    })
                })
            })
            .collect();
        runs.into_iter()
            .filter_map(|h| {
                h.join()
                    .unwrap_or_else(|_| Some("a scenario run panicked".into()))
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn greeting_prints_both_sides_of_the_conversation() {
    let out = Test::new().file("scenarios/greeting.rhai").run();
    out.code(0);
    let mut lines: Vec<String> = out.stdout.lines().map(crate::harness::normalize).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "Got connection from 127.0.0.1:PORT",
            "Got connection from 127.0.0.1:PORT",
            "Thank you for connecting",
            "Thank you for connecting",
        ],
        "{}",
        out.stdout
    );
}

#[test]
fn duplicate_bind_reports_the_second_bind() {
    let out = Test::new().file("scenarios/duplicate_bind.rhai").run();
    out.code(0).stdout_has("second bind failed: ");
    assert_eq!(
        crate::harness::normalize(&out.stdout),
        "first server listening on 127.0.0.1:PORT\n\
         second bind failed: listen on `127.0.0.1:PORT` failed: the address is already in use\n"
    );
}

#[test]
fn the_smoke_suite_goes_red_against_a_broken_service() {
    let ping = root().join("scenarios/smoke/ping.rhai");
    let source = std::fs::read_to_string(&ping).unwrap_or_else(|e| panic!("{e}"));
    let Some((_service, vars)) = service_for(&ping, &source, &["--broken"]) else {
        panic!("ping.rhai should need a service");
    };
    let mut args: Vec<&str> = vars.iter().map(String::as_str).collect();
    args.push("--test");
    let out = Test::new().args(&args).file("scenarios/smoke").run();
    out.code(1)
        .stderr_has("ping.rhai: FAILED")
        .stderr_has("set_get.rhai: ok")
        .stderr_has("\"-ERR broken\"");
}
