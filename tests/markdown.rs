//! `--report-markdown`: real scenarios (one against a Python peer) write the summary, and every
//! Mermaid diagram in it goes through the real Mermaid parser (the npm `mermaid` package under
//! Node, `tests/js/mermaid`, installed by `scripts/test`), which also tells what a browser
//! would show: the lanes, the arrows and their text.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{python_listener, root, text, Dir, Test};

/// Every Mermaid block of the Markdown file at `path`, as the Mermaid parser read it.
pub fn mermaid_blocks(path: &Path) -> Vec<Value> {
    let dir = root().join("tests/js/mermaid");
    assert!(
        dir.join("node_modules/mermaid").is_dir(),
        "the Mermaid parser is not installed: run `scripts/test`, or `npm ci` in {}",
        dir.display()
    );
    let out = Command::new("node")
        .arg(dir.join("parse.mjs"))
        .arg(path)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (run `scripts/test`): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A line a peer sends that holds everything Mermaid and Markdown would obey.
const HOSTILE: &str = "hello; `who` <b>#1</b> %% end ``` | x";

const GREETING: &str = r#"
let server = listen("127.0.0.1:0");
let serving = spawn(|| {
    let client = server.accept();
    client.send("Thank you for connecting");
    client.close();
});
let conn = connect(server.addr);
assert_eq(conn.recv_all(), "Thank you for connecting");
serving.join();
"#;

/// Against the peer: read its greeting, say PING, expect PONG; the peer closes instead.
const PEER: &str = r#"
let conn = connect(`127.0.0.1:${port}`);
let greeting = conn.recv_line();
conn.send_line("PING");
let reply = conn.recv_line();
"#;

const ASSERTION: &str = r#"
let server = listen("127.0.0.1:0");
let t = spawn(|| { let c = server.accept(); c.send_line("no"); });
let conn = connect(server.addr);
let got = conn.recv_line();
t.join();
assert_eq(got, "yes");
"#;

#[test]
fn a_suite_summary_has_a_table_and_a_parsed_diagram_for_each_failure() {
    let mut peer = python_listener(&format!(
        "c, _ = s.accept()\nc.sendall({HOSTILE:?}.encode() + b'\\n')\n\
         f = c.makefile('rb')\nf.readline()\nc.close()\n"
    ));
    let port = peer.port().to_string();
    let dir = Dir::new("markdown-suite");
    let md = dir.join("summary.md");
    let run = Test::new()
        .write("suite/a_greeting.rhai", GREETING)
        .write("suite/b_peer.rhai", PEER)
        .write("suite/c_assertion.rhai", ASSERTION)
        .path("suite")
        .args(&["-j", "1", "--var", &format!("port={port}")])
        .args(&["--report-markdown", text(&md)])
        .run();
    run.code(4);
    peer.wait().code(0);
    let summary = read(&md);
    for row in [
        r"| a\_greeting\.rhai | ✅ passed | ",
        r"| b\_peer\.rhai | 💥 errored | ",
        r"| c\_assertion\.rhai | ❌ failed | ",
    ] {
        assert!(summary.contains(row), "{row}\n{summary}");
    }
    assert!(
        summary.starts_with("## sockscript: 1 passed, 2 not passed (3 scenarios in "),
        "{summary}"
    );
    // A diagram for each scenario that did not pass, none for the one that did.
    assert!(!summary.contains("### a\\_greeting"), "{summary}");
    let blocks = mermaid_blocks(&md);
    assert_eq!(blocks.len(), 2, "{blocks:?}\n{summary}");
    for b in &blocks {
        assert_eq!(b["ok"], true, "{b}\n{summary}");
        assert_eq!(b["type"], "sequence", "{b}");
    }

    // The peer's conversation: this end and the peer, the hostile line shown as it was sent.
    let peer_diagram = &blocks[0];
    let actors: Vec<&str> = peer_diagram["actors"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x[1].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(actors.len(), 2, "{actors:?}");
    assert!(actors[0].starts_with("main · 127.0.0.1:"), "{actors:?}");
    assert!(actors[0].ends_with(" (tcp#1)"), "{actors:?}");
    assert_eq!(actors[1], format!("peer 127.0.0.1:{port}"));
    let messages: Vec<(String, String)> = peer_diagram["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["kind"].as_str().unwrap_or("").to_owned(),
                        m["text"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let hostile = format!("\"{}\\n\" ({} bytes)", HOSTILE, HOSTILE.len() + 1);
    let expected = [
        ("DOTTED", "connect".to_owned()),
        ("SOLID", hostile),
        ("SOLID", "\"PING\\n\" (5 bytes)".to_owned()),
        ("NOTE", "eof".to_owned()),
        ("RECT_START", "rgb(255, 220, 220)".to_owned()),
        (
            "NOTE",
            format!("FAILED: recv_line from `127.0.0.1:{port}`: the peer closed the connection"),
        ),
        ("RECT_END", String::new()),
    ];
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(k, t)| (k.to_owned(), t))
        .collect();
    // The close may land before or after the eof; what crossed the wire is in order.
    let seen: Vec<(String, String)> = messages.into_iter().filter(|(_, t)| t != "close").collect();
    assert_eq!(seen, expected, "{summary}");

    // The assertion: no socket event is its, so its failure closes the diagram on the
    // script's own lane.
    let last = peer_diagram_last_note(&blocks[1]);
    assert_eq!(
        last, "FAILED: assert_eq failed: the values differ",
        "{}",
        blocks[1]
    );
    let script_lane = blocks[1]["actors"]
        .as_array()
        .and_then(|a| a.last())
        .map(|a| a[1].clone());
    assert_eq!(script_lane, Some("script".into()), "{}", blocks[1]);

    // The diagnostic, as the terminal shows it (without colour), in a fence the hostile
    // backticks cannot close.
    let diag_start = run
        .stderr
        .find("  × recv_line from")
        .unwrap_or_else(|| panic!("{}", run.stderr));
    let diag = &run.stderr[diag_start..];
    let diag_first_lines: Vec<&str> = diag.lines().take(4).collect();
    for line in diag_first_lines {
        assert!(summary.contains(line), "{line:?}\n{summary}");
    }
    assert!(
        summary.contains("````text\n  × recv_line from"),
        "{summary}"
    );
}

/// The text of the last note in a parsed diagram.
fn peer_diagram_last_note(block: &Value) -> String {
    block["messages"]
        .as_array()
        .and_then(|a| a.iter().rev().find(|m| m["kind"] == "NOTE"))
        .and_then(|m| m["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn run_mode_stays_run_mode_and_writes_the_summary() {
    let dir = Dir::new("markdown-run");
    let md = dir.join("summary.md");
    Test::new()
        .script("print(\"live\");\nassert_eq(1, 2);")
        .args(&["--report-markdown", text(&md)])
        .run()
        .code(1)
        // Run mode: the print reaches stdout as it happens, not captured by a suite.
        .stdout("live\n");
    let summary = read(&md);
    assert!(
        summary.contains(r"| script\.rhai | ❌ failed | "),
        "{summary}"
    );
    // No socket: the failure is on the script's lane.
    let blocks = mermaid_blocks(&md);
    assert!(blocks.is_empty(), "no transcript, no diagram: {summary}");
    assert!(summary.contains("assert_eq failed"), "{summary}");
}

#[test]
fn a_long_conversation_shows_its_last_steps_and_says_how_many_it_left_out() {
    let dir = Dir::new("markdown-long");
    let md = dir.join("summary.md");
    Test::new()
        .script(
            r#"
let server = listen("127.0.0.1:0");
let t = spawn(|| {
    let c = server.accept();
    for n in 0..100 { c.send_line(`line ${n}`); }
    c.close();
});
let conn = connect(server.addr);
for n in 0..100 { assert_eq(conn.recv_line(), `line ${n}`); }
t.join();
conn.recv_line();
"#,
        )
        .args(&["--report-markdown", text(&md)])
        .run()
        .code(4);
    let summary = read(&md);
    let blocks = mermaid_blocks(&md);
    assert_eq!(blocks.len(), 1, "{summary}");
    assert_eq!(blocks[0]["ok"], true, "{}", blocks[0]);
    let messages = blocks[0]["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let first = messages.first().and_then(|m| m["text"].as_str());
    let skipped = first
        .and_then(|t| t.strip_suffix(" earlier steps not shown"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("{first:?}\n{summary}"));
    // Listen, accept, connect, 100 lines, close, eof, the failure: the last 40 are shown.
    assert_eq!(skipped, 106 - 40, "{summary}");
    let shown = messages
        .iter()
        .filter(|m| m["kind"] != "RECT_START" && m["kind"] != "RECT_END")
        .count();
    assert_eq!(shown, 41, "{summary}");
    let last_line = "\"line 99\\n\" (8 bytes)";
    assert!(
        messages.iter().any(|m| m["text"] == last_line),
        "{last_line}\n{summary}"
    );
}

#[test]
fn a_summary_that_cannot_be_written_fails_a_run_that_passed() {
    Test::new()
        .script("let x = 1;")
        .args(&["--report-markdown", "no/such/dir/summary.md"])
        .run()
        .code(2)
        .stderr_has("error: cannot write the report `no/such/dir/summary.md`");
}

/// A WebSocket conversation's diagram draws one arrow per message, from the end that sent it
/// to the end that received it, and the real Mermaid parser reads it.
#[test]
fn a_websocket_conversation_draws_one_arrow_per_message() {
    let dir = Dir::new("markdown-ws");
    let md = dir.join("summary.md");
    let run = Test::new()
        .script(
            r#"
            let server = ws_listen("127.0.0.1:0");
            let t = spawn(|| {
                let ws = server.accept();
                let x = ws.recv();
                let y = ws.recv();
                ws.send(`echo ${x}`);
                ws.send(`echo ${y}`);
            });
            let ws = ws_connect(`ws://${server.addr}/`);
            ws.send("one");
            ws.send("two");
            let a = ws.recv();
            let b = ws.recv();
            t.join();
            assert_eq(b, "three");
            "#,
        )
        .args(&["--report-markdown", text(&md)])
        .run();
    run.code(1);
    let blocks = mermaid_blocks(&md);
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0]["ok"], true, "{}", blocks[0]);
    let solid: Vec<String> = blocks[0]["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["kind"] == "SOLID")
                .map(|m| m["text"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        solid,
        [
            "\"one\" (3 bytes)",
            "\"two\" (3 bytes)",
            "\"echo one\" (8 bytes)",
            "\"echo two\" (8 bytes)"
        ],
        "{}",
        read(&md)
    );
}
