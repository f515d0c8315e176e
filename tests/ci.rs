//! The CI job in one step: `action.yml` against the GitHub Action metadata schema (SchemaStore's,
//! as the PyPI package check-jsonschema ships it; scripts/test installs it), the action's run
//! step (`scripts/action-run`) run as CI runs it, and the `Dockerfile`: its shape always, and
//! an image built and run when a container engine is present and working.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{root, Dir, Proc};

/// `python3 -m check_jsonschema --builtin-schema vendor.github-actions FILE`.
fn check_action(file: &Path) -> crate::harness::Output {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "check_jsonschema",
        "--builtin-schema",
        "vendor.github-actions",
    ])
    .arg(file);
    Proc::start("check-jsonschema", cmd, Duration::from_secs(60)).wait()
}

#[test]
fn action_yml_matches_the_github_action_metadata_schema() {
    check_action(&root().join("action.yml"))
        .code(0)
        .stdout_has("validation done");
    // The validator is live: the same file with an input that has no description fails.
    let action = std::fs::read_to_string(root().join("action.yml"))
        .unwrap_or_else(|e| panic!("cannot read action.yml: {e}"));
    let broken = action.replacen(
        "    description: Scenario files or directories, separated by spaces or newlines.\n",
        "",
        1,
    );
    assert_ne!(broken, action, "the input to break is not in action.yml");
    let dir = Dir::new("action");
    let copy = dir.join("action.yml");
    std::fs::write(&copy, broken).unwrap_or_else(|e| panic!("cannot write: {e}"));
    check_action(&copy).code(1);
}

#[test]
fn action_run_step_runs_the_suite_writes_reports_and_says_the_exit_code() {
    let dir = Dir::new("action-run");
    let suite = dir.join("suite");
    std::fs::create_dir_all(&suite).unwrap_or_else(|e| panic!("cannot create: {e}"));
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("cannot write: {e}"))
    };
    write(
        "suite/greets.rhai",
        "assert_eq(greeting, \"hello world\");\nassert_eq(n, 3);\n",
    );
    write("suite/fails.rhai", "assert_eq(1, 2);\n");
    write("summary.md", "before\n");
    let sockscript = env!("CARGO_BIN_EXE_sockscript");
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/action-run"))
        .current_dir(dir.path())
        .env("SOCKSCRIPT", sockscript)
        .env("ACTION_PATHS", "suite/greets.rhai\n suite/fails.rhai")
        .env("ACTION_VARS", "greeting=hello world\n\nn=3\n")
        .env("ACTION_ARGS", "--timeout 2s --jobs 1")
        .env("ACTION_REPORTS", "out")
        .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"))
        .env("GITHUB_OUTPUT", dir.join("github-output"));
    let out = Proc::start("action-run", cmd, Duration::from_secs(60)).wait();
    // One scenario fails: the step fails as the suite does.
    out.code(1)
        .stderr_has("greets.rhai: ok")
        .stderr_has("fails.rhai: FAILED");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    assert_eq!(read("github-output"), "exit-code=1\nreports=out\n");
    let junit = read("out/junit.xml");
    assert!(
        junit.contains("greets") && junit.contains("fails"),
        "{junit}"
    );
    let json = read("out/report.json");
    assert!(
        json.contains("greets.rhai") && json.contains("\"passed\": 1"),
        "{json}"
    );
    // The Markdown summary joins the job's summary when this sockscript writes one.
    let help = Command::new(sockscript)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let summary = read("summary.md");
    if help.contains("--report-markdown ") {
        assert_eq!(summary, format!("before\n{}", read("out/summary.md")));
    } else {
        assert_eq!(summary, "before\n");
    }
}

#[test]
fn action_run_step_refuses_an_empty_paths_input() {
    let dir = Dir::new("action-empty");
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/action-run"))
        .current_dir(dir.path())
        .env("SOCKSCRIPT", env!("CARGO_BIN_EXE_sockscript"))
        .env("ACTION_PATHS", " \n ")
        .env_remove("GITHUB_OUTPUT");
    Proc::start("action-run", cmd, Duration::from_secs(30))
        .wait()
        .code(2)
        .stdout_has("the `paths` input names no scenario");
}

/// The `Dockerfile`'s shape: a build stage with the Rust toolchain, a final stage from a slim
/// Debian image that copies only the binary and runs as a user that is not root.
#[test]
fn dockerfile_builds_in_one_stage_and_runs_small_and_unprivileged_in_another() {
    let text = std::fs::read_to_string(root().join("Dockerfile"))
        .unwrap_or_else(|e| panic!("cannot read Dockerfile: {e}"));
    // Each stage: its `FROM` line without the word, and the lines up to the next one.
    let mut stages: Vec<String> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("FROM ") {
            Some(from) => stages.push(format!("{from}\n")),
            None => {
                if let Some(stage) = stages.last_mut() {
                    stage.push_str(line);
                    stage.push('\n');
                }
            }
        }
    }
    assert_eq!(stages.len(), 2, "two stages: {text}");
    let (build, last) = (&stages[0], &stages[1]);
    assert!(
        build.starts_with("rust:") && build.contains(" AS build"),
        "{build}"
    );
    assert!(build.contains("cargo build --release --locked"), "{build}");
    assert!(
        last.starts_with("debian:") && last.contains("-slim"),
        "{last}"
    );
    assert!(
        last.contains("COPY --from=build /src/target/release/sockscript /usr/local/bin/"),
        "{last}"
    );
    let user = last
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap_or_else(|| panic!("no USER in the final stage: {last}"));
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "{user}"
    );
    let ignored = std::fs::read_to_string(root().join(".dockerignore")).unwrap_or_default();
    assert!(ignored.lines().any(|l| l == "target/"), "{ignored}");
}

/// Whether a container engine answers; the reason when none does.
fn container_engine() -> Result<&'static str, String> {
    let mut reasons = Vec::new();
    for engine in ["docker", "podman"] {
        let mut cmd = Command::new(engine);
        cmd.args(["info", "--format", "{{.ServerVersion}}"]);
        match cmd.output() {
            Err(e) => reasons.push(format!("{engine}: {e}")),
            Ok(o) if o.status.success() => return Ok(engine),
            Ok(o) => reasons.push(format!(
                "{engine}: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("no answer")
            )),
        }
    }
    Err(reasons.join("; "))
}

/// Build the image and run it: `--version`, a scenario from a mounted directory, the user.
/// Skipped, saying why, where no container engine works (`docker` may be there without a
/// daemon).
#[test]
fn the_image_builds_and_runs_a_scenario_as_non_root() {
    let engine = match container_engine() {
        Ok(engine) => engine,
        Err(why) => {
            eprintln!("skipped: no working container engine ({why})");
            return;
        }
    };
    let tag = format!("sockscript-test-{}", std::process::id());
    let run = |args: &[&str], wall: u64| {
        let mut cmd = Command::new(engine);
        cmd.args(args).current_dir(root());
        Proc::start(engine, cmd, Duration::from_secs(wall)).wait()
    };
    run(&["build", "-t", &tag, "."], 1800).code(0);
    run(&["run", "--rm", &tag, "--version"], 120)
        .code(0)
        .stdout_has("sockscript ");
    let dir = Dir::new("image");
    std::fs::write(
        dir.join("hello.rhai"),
        "let l = listen(\"127.0.0.1:0\");\nlet c = connect(l.addr);\nprint(\"up\");\n",
    )
    .unwrap_or_else(|e| panic!("cannot write: {e}"));
    let mount = format!("{}:/scenarios:ro", dir.text());
    run(
        &["run", "--rm", "-v", &mount, &tag, "--test", "/scenarios"],
        120,
    )
    .code(0)
    .stderr_has("hello.rhai: ok");
    run(&["run", "--rm", "--entrypoint", "id", &tag, "-u"], 120)
        .code(0)
        .stdout("10001\n");
    run(&["rmi", "-f", &tag], 120);
}
