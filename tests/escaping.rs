//! The terminal is not the peer's (nor the script's, nor the file name's): what a scenario
//! printed, what a peer sent, a script's source lines, its file name and the messages built
//! from them reach stderr with their control characters, bidi overrides and noncharacters
//! escaped (`\x1b`, `\u{202e}`), in test mode, run mode and `--trace`; labels still point at
//! their words. Every report parses with a strict parser: JUnit with Python's `xml.etree`,
//! TAP's YAML blocks with PyYAML, JSON with Python's `json`. Run mode's stdout is the script's
//! and stays byte for byte.

use std::process::Command;

use serde_json::Value;

use crate::harness::{python_listener, temp_dir, Output, Proc, Test, WALL};

/// What must never reach stderr or a report as it is: C0 controls but newline and tab, DEL, C1
/// controls, bidi embeddings, overrides and isolates, noncharacters. Written out here rather
/// than taken from the crate, so the test does not trust the code it tests.
fn is_hostile(c: char) -> bool {
    let n = c as u32;
    (n < 0x20 && c != '\n' && c != '\t')
        || (0x7f..=0x9f).contains(&n)
        || (0x202a..=0x202e).contains(&n)
        || (0x2066..=0x2069).contains(&n)
        || (0xfdd0..=0xfdef).contains(&n)
        || n & 0xfffe == 0xfffe
}

#[track_caller]
fn assert_tame(what: &str, text: &str) {
    let found: Vec<String> = text
        .char_indices()
        .filter(|(_, c)| is_hostile(*c))
        .map(|(i, c)| format!("U+{:04X} at byte {i}", c as u32))
        .collect();
    assert!(
        found.is_empty(),
        "{what} holds raw {}:\n{text:?}",
        found.join(", ")
    );
}

#[track_caller]
fn assert_stderr_tame(out: &Output) {
    assert_tame("stderr", &out.stderr);
}

/// A file name with an escape sequence and a right-to-left override in it.
const HOSTILE_NAME: &str = "bad\x1b[7m\u{202e}.rhai";
/// How stderr shows [`HOSTILE_NAME`].
const HOSTILE_NAME_SHOWN: &str = "bad\\x1b[7m\\u{202e}.rhai";

/// Prints a screen clear, an OSC 52 clipboard write and more, then fails an assertion on line 5,
/// a line that holds a raw ESC and a raw U+FFFE inside a string literal (before the call).
const HOSTILE_SCRIPT: &str = concat!(
    "// prints escape sequences, then fails on a line holding raw control characters\n",
    "print(\"clear\\x1b[2Jscreen\");\n",
    "print(\"clip\\x1b]52;c;aGVsbG8=\\x07board\");\n",
    "print(\"c1\\x9b31m bidi\\u202eevil nonchar\\uFFFE\\uFFFF del\\x7f cr\\rover\");\n",
    "let s = \"raw\x1b[31m\u{fffe}red\"; assert_eq(s, \"plain\");\n",
);

/// The rows of stderr between `N │ ` of `line` and the label under it: the char column where
/// `word` starts in the source row, and where the underline starts in the row after it.
#[track_caller]
fn label_columns(stderr: &str, line: usize, word: &str) -> (usize, usize) {
    let rows: Vec<&str> = stderr.lines().collect();
    let prefix = format!(" {line} │ ");
    let i = rows
        .iter()
        .position(|r| r.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no source row {line} in\n{stderr}"));
    let source_row = rows[i];
    let under = rows.get(i + 1).copied().unwrap_or_default();
    let byte = source_row
        .find(word)
        .unwrap_or_else(|| panic!("no `{word}` in {source_row:?}"));
    let word_col = source_row[..byte].chars().count();
    let under_col = under
        .chars()
        .position(|c| matches!(c, '─' | '┬' | '^'))
        .unwrap_or_else(|| panic!("no underline under {source_row:?}: {under:?}"));
    (word_col, under_col)
}

#[test]
fn a_failed_scenario_in_test_mode_shows_its_output_source_and_name_escaped() {
    let out = Test::new()
        .named(HOSTILE_NAME, HOSTILE_SCRIPT)
        .args(&["--test"])
        .run();
    out.code(1);
    assert_stderr_tame(&out);
    out.stderr_has(&format!("{HOSTILE_NAME_SHOWN}: FAILED"))
        .stderr_has(&format!("---- {HOSTILE_NAME_SHOWN} ----"))
        .stderr_has(&format!("[{HOSTILE_NAME_SHOWN}:5:25]"))
        .stderr_has("  | clear\\x1b[2Jscreen\n")
        .stderr_has("  | clip\\x1b]52;c;aGVsbG8=\\x07board\n")
        .stderr_has(
            "  | c1\\u{9b}31m bidi\\u{202e}evil nonchar\\u{fffe}\\u{ffff} del\\x7f cr\\rover\n",
        )
        .stderr_has(" 5 │ let s = \"raw\\x1b[31m\\u{fffe}red\"; assert_eq(s, \"plain\");\n");
    let (word, under) = label_columns(&out.stderr, 5, "assert_eq");
    assert_eq!(
        word, under,
        "the label is not under `assert_eq`\n{}",
        out.stderr
    );
}

#[test]
fn run_mode_escapes_stderr_and_leaves_the_scripts_stdout_alone() {
    let out = Test::new().named(HOSTILE_NAME, HOSTILE_SCRIPT).run();
    out.code(1);
    assert_stderr_tame(&out);
    out.stderr_has(&format!("[{HOSTILE_NAME_SHOWN}:5:25]"))
        .stderr_has(" 5 │ let s = \"raw\\x1b[31m\\u{fffe}red\"; assert_eq(s, \"plain\");\n");
    let (word, under) = label_columns(&out.stderr, 5, "assert_eq");
    assert_eq!(
        word, under,
        "the label is not under `assert_eq`\n{}",
        out.stderr
    );
    // stdout is the script's: what it printed, byte for byte.
    out.stdout_has("clear\x1b[2Jscreen\nclip\x1b]52;c;aGVsbG8=\x07board\n");
}

#[test]
fn an_unreadable_file_name_and_usage_errors_are_escaped() {
    let out = Test::new().path("gone\x1b]52;c;aGk=\x07.rhai").run();
    out.code(2);
    assert_stderr_tame(&out);
    out.stderr_has("gone\\x1b]52;c;aGk=\\x07.rhai");

    let out = Test::new()
        .args(&["--var", "x\x1b[2J=1"])
        .script("print(1);")
        .run();
    out.code(2);
    assert_stderr_tame(&out);
    out.stderr_has("x\\x1b[2J");

    // clap's own message, quoting the value visibly.
    let out = Test::new()
        .args(&["--jobs", "\x1b]52;c;aGk=\x07"])
        .script("print(1);")
        .run();
    out.code(2);
    assert_stderr_tame(&out);
    out.stderr_has("invalid value '\\x1b]52;c;aGk=\\x07' for '--jobs <N>'");
}

/// A Python peer that sends a screen clear, an OSC 52 clipboard write, a C1 CSI, a bidi
/// override and a noncharacter, then `tail`, and waits for the client to go.
fn hostile_peer() -> (Proc, u16) {
    let mut peer = python_listener(
        r#"
c, _ = s.accept()
c.sendall(b"\x1b[2J\x1b]52;c;aGVsbG8=\x07 \xc2\x9b31m \xe2\x80\xae \xef\xbf\xbe tail")
c.settimeout(10)
while c.recv(4096):
    pass
"#,
    );
    let port = peer.port();
    (peer, port)
}

/// Receives from [`hostile_peer`] and prints it, listens on a Unix socket whose path holds an
/// escape sequence (so the transcript names it), then waits for a pattern holding an ESC that
/// never comes: the diagnostic says what it waited for.
const TRACED_SCRIPT: &str = r#"
let conn = connect(`127.0.0.1:${PORT}`);
conn.timeout = 300;
print(conn.recv_until("tail"));
let unix = listen("unix:s\x1b[2J.sock");
conn.expect("\x1b\\[9999");
"#;

#[track_caller]
fn check_traced(out: &Output) {
    out.code(4);
    assert_stderr_tame(out);
    out.stderr_has("listen   unix:s\\x1b[2J.sock")
        .stderr_has("waited for a match for /");
}

#[test]
fn trace_in_test_mode_shows_a_hostile_peer_escaped() {
    let (mut peer, port) = hostile_peer();
    let out = Test::new()
        .script(TRACED_SCRIPT)
        .args(&["--test", "--trace", "--var", &format!("PORT={port}")])
        .run();
    check_traced(&out);
    out.stderr_has("  | \\x1b[2J\\x1b]52;c;aGVsbG8=\\x07 \\u{9b}31m \\u{202e} \\u{fffe} \n");
    peer.wait();
}

#[test]
fn trace_in_run_mode_shows_a_hostile_peer_escaped() {
    let (mut peer, port) = hostile_peer();
    let out = Test::new()
        .script(TRACED_SCRIPT)
        .args(&["--trace", "--var", &format!("PORT={port}")])
        .run();
    check_traced(&out);
    // stdout is the script's.
    out.stdout_has("\x1b[2J\x1b]52;c;aGVsbG8=\x07 \u{9b}31m \u{202e} \u{fffe} \n");
    peer.wait();
}

/// Everything the reports carry, read back by Python's strict parsers: the JUnit XML with
/// `xml.etree` (every text and attribute value, in document order), each TAP YAML block with
/// PyYAML's `safe_load`, the JSON with `json` refusing non-standard constants.
const READ_REPORTS: &str = r#"
import json, re, sys
import xml.etree.ElementTree as ET
import yaml

junit = []
for e in ET.parse(sys.argv[1]).iter():
    junit.extend(e.attrib.values())
    junit.append(e.text or "")

with open(sys.argv[2], encoding="utf-8") as f:
    tap = f.read()
blocks = [
    yaml.safe_load("\n".join(line[2:] for line in m.group(1).splitlines()))
    for m in re.finditer(r"^  ---\n(.*?)^  \.\.\.\n", tap, re.S | re.M)
]

def bad(c):
    raise ValueError("non-standard JSON constant " + c)
with open(sys.argv[3], encoding="utf-8") as f:
    doc = json.load(f, parse_constant=bad)

print(json.dumps({"junit": junit, "tap": tap, "blocks": blocks, "json": doc}))
"#;

/// Prints every kind of hostile character and passes.
const LOUD_PASS: &str =
    "print(\"ok\\x1b[2J \\x9b \\u202e \\uFFFE \\uFFFF \\uFDD0 \\U0001FFFE \\x7f \\x01 end\");\n";
/// Fails with a message full of them.
const LOUD_FAIL: &str = "print(\"out\\x1b]52;c;aGVsbG8=\\x07 \\uFFFE\");\nfail(\"msg\\x1b[2J \\x9b \\u202e \\uFFFE \\uFFFF\");\n";
/// Throws them (an error, not a failure).
const LOUD_THROW: &str = "throw \"thrown\\x1b[2J\\uFFFF\\u2066\";\n";

#[test]
fn every_report_parses_with_a_strict_parser_and_holds_nothing_hostile() {
    let dir = temp_dir("escaping-reports");
    let (junit, tap, json) = (dir.join("r.xml"), dir.join("r.tap"), dir.join("r.json"));
    let out = Test::new()
        .write("suite/a_pass.rhai", LOUD_PASS)
        .write("suite/b_fail.rhai", LOUD_FAIL)
        .write(&format!("suite/c_{HOSTILE_NAME}"), HOSTILE_SCRIPT)
        .write("suite/d_throw.rhai", LOUD_THROW)
        .path("suite")
        .args(&["--report-junit", &junit.to_string_lossy()])
        .args(&["--report-tap", &tap.to_string_lossy()])
        .args(&["--report-json", &json.to_string_lossy()])
        .run();
    out.code(4);
    assert_stderr_tame(&out);

    let read = python_run(
        READ_REPORTS,
        &[&junit, &tap, &json].map(|p| p.to_string_lossy().into_owned()),
    );
    assert_eq!(
        read.code,
        0,
        "a strict parser rejects a report:\n{}\n--- TAP ---\n{}\n--- JUnit ---\n{}",
        read.stderr,
        std::fs::read_to_string(&tap).unwrap_or_default(),
        std::fs::read_to_string(&junit).unwrap_or_default(),
    );
    let parsed: Value = serde_json::from_str(&read.stdout).expect("the reader's JSON");

    // JUnit: nothing hostile in any text or attribute, and the failure is there by name.
    let texts: Vec<&str> = parsed["junit"]
        .as_array()
        .expect("junit texts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for text in &texts {
        assert_tame("a JUnit text", &text.replace('\r', ""));
    }
    // XML's own convention for C0 controls: their Unicode pictures.
    assert!(texts.contains(&"c_bad␛[7m\\u{202e}.rhai"), "{texts:?}");

    // TAP: the stream itself holds nothing hostile; each YAML block parsed; the captured
    // output comes back exactly as printed, through YAML's own escapes.
    let tap_text = parsed["tap"].as_str().unwrap_or_default();
    assert_tame("the TAP stream", tap_text);
    assert!(
        // TAP escapes its own escape character: a TAP reader shows `c_bad\x1b[7m…`.
        tap_text.contains("not ok 3 - c_bad\\\\x1b[7m\\\\u{202e}.rhai\n"),
        "{tap_text}"
    );
    let blocks = parsed["blocks"].as_array().expect("TAP blocks");
    assert_eq!(blocks.len(), 3, "{tap_text}");
    assert_eq!(
        blocks[0]["stdout"], "out\x1b]52;c;aGVsbG8=\x07 \u{fffe}",
        "{tap_text}"
    );
    assert_eq!(
        blocks[0]["message"], "msg\x1b[2J \u{9b} \u{202e} \u{fffe} \u{ffff}",
        "{tap_text}"
    );
    for block in blocks {
        let diagnostic = block["diagnostic"].as_str().unwrap_or_default();
        assert!(!diagnostic.is_empty(), "{block}");
        assert_tame("a TAP diagnostic", diagnostic);
    }

    // JSON: raw data survives in JSON's escapes; what was rendered for people is tame.
    let scenarios = parsed["json"]["scenarios"]
        .as_array()
        .expect("JSON scenarios");
    assert_eq!(
        scenarios[0]["stdout"],
        "ok\x1b[2J \u{9b} \u{202e} \u{fffe} \u{ffff} \u{fdd0} \u{1fffe} \x7f \x01 end\n"
    );
    assert_eq!(scenarios[2]["name"], format!("c_{HOSTILE_NAME}"));
    for s in scenarios.iter().skip(1) {
        let rendered = s["diagnostic"]["rendered"].as_str().unwrap_or_default();
        assert!(!rendered.is_empty(), "{s}");
        assert_tame("a rendered diagnostic in JSON", rendered);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Run `python3 -c source args…` to the end.
fn python_run(source: &str, args: &[String]) -> Output {
    if Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        panic!("python3's `yaml` module is missing: install python3-yaml (scripts/test does)");
    }
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(source).args(args);
    Proc::start("python3", cmd, WALL).wait()
}

/// Run `command` (a shell command line) on a real pseudo-terminal with `script` (util-linux),
/// with `env` set; what the terminal received comes back as stdout.
fn on_a_terminal(command: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", command, "/dev/null"])
        .env_remove("CI")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied());
    Proc::start("script", cmd, WALL).wait()
}

#[test]
fn on_a_terminal_the_progress_bar_and_clap_errors_show_names_escaped() {
    // The progress bar names the running scenarios, and colours are on: the screen has escape
    // sequences of sockscript's own, but none that came from a file name or an argument.
    let dir = temp_dir("escaping-tty");
    let name = "slow\x1b]52;c;aGk=\x07\x1b[2J.rhai";
    std::fs::write(dir.join(name), "sleep(400);\nfail(\"no\");\n").expect("write a scenario");
    std::fs::write(dir.join("a_pass.rhai"), "print(1);\n").expect("write a scenario");
    let bin = env!("CARGO_BIN_EXE_sockscript");
    let out = on_a_terminal(&format!("{bin} --test -j 2 {}", dir.display()), &[]);
    out.code(1);
    let screen = &out.stdout;
    for raw in ["\x1b]52;", "\x1b[2J", "\x07"] {
        assert!(
            !screen.contains(raw),
            "{raw:?} reached the terminal:\n{screen:?}"
        );
    }
    assert!(
        screen.contains("slow\\x1b]52;c;aGk=\\x07\\x1b[2J.rhai: FAILED"),
        "{screen:?}"
    );

    // clap colours its errors on a terminal and quotes the value the user typed.
    let out = on_a_terminal(
        &format!("{bin} --jobs \"$HOSTILE\" {}", dir.display()),
        &[("HOSTILE", "\x1b]52;c;aGk=\x07")],
    );
    out.code(2);
    let screen = &out.stdout;
    assert!(!screen.contains("\x1b]52;"), "{screen:?}");
    assert!(screen.contains("\\x1b]52;c;aGk=\\x07"), "{screen:?}");
    let _ = std::fs::remove_dir_all(dir);
}
