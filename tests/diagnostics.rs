//! Expected diagnostics as data: each `fixtures/<name>.rhai` runs in run mode and its stderr,
//! normalised, must equal `fixtures/<name>.stderr`. The script's leading comment gives the
//! exit code (`// exit: 4`, default 0) and any extra arguments (`// args: --max-time 1s`).
//!
//! To accept new output after a deliberate change, run
//! `SOCKSCRIPT_BLESS=1 cargo test --test integration diagnostics`: it writes every `.stderr`
//! file from the actual output instead of comparing (then review the diff before committing).

use std::path::Path;

use crate::harness::{expected_exit, header, normalize, rhai_files, root, Test};

#[test]
fn fixtures_match_their_stderr() {
    let bless = std::env::var_os("SOCKSCRIPT_BLESS").is_some_and(|v| v == "1");
    let fixtures = rhai_files(&root().join("tests/fixtures"));
    assert!(!fixtures.is_empty(), "no fixtures found");
    // Each fixture is its own process; run them side by side so the slow ones overlap.
    let results: Vec<(String, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = fixtures
            .iter()
            .map(|path| s.spawn(move || check(path, bless)))
            .collect();
        handles
            .into_iter()
            .zip(&fixtures)
            .map(|(h, path)| {
                let name = path.display().to_string();
                match h.join() {
                    Ok(problem) => (name, problem),
                    Err(_) => (name, Some("the check panicked (see above)".to_owned())),
                }
            })
            .collect()
    });
    let problems: Vec<String> = results
        .into_iter()
        .filter_map(|(name, p)| p.map(|p| format!("==== {name}\n{p}")))
        .collect();
    assert!(
        problems.is_empty(),
        "{} of {} fixtures differ (SOCKSCRIPT_BLESS=1 rewrites the .stderr files):\n{}",
        problems.len(),
        fixtures.len(),
        problems.join("\n")
    );
}

/// Run one fixture; `Some(description)` when it does not match.
fn check(path: &Path, bless: bool) -> Option<String> {
    let source =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let extra = header(&source, "args").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let out = Test::new().args(&extra).file(path).run();
    let actual = normalize(&out.stderr);
    let expected_path = path.with_extension("stderr");
    let mut problems = Vec::new();
    let code = expected_exit(&source, path);
    if out.code != code {
        problems.push(format!("exit code: expected {code}, got {}", out.code));
    }
    if bless {
        if let Err(e) = std::fs::write(&expected_path, &actual) {
            problems.push(format!("cannot write `{}`: {e}", expected_path.display()));
        }
    } else {
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => problems.push(format!(
                "stderr differs\n--- expected ---\n{expected}--- actual ---\n{actual}"
            )),
            Err(_) => problems.push(format!(
                "`{}` is missing; actual stderr:\n{actual}",
                expected_path.display()
            )),
        }
    }
    (!problems.is_empty()).then(|| problems.join("\n"))
}
