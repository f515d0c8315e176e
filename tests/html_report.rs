//! `--report-html` in a real browser: Debian's headless Chromium, driven by Playwright
//! (`tests/js/browser/observe.mjs`; both installed by `scripts/test`), opens reports of real
//! runs and says what a reader sees; these tests check it against the scenarios: the lanes
//! and arrows of the conversation, a clicked arrow's payload and hexdump, the failure where it
//! happened with the terminal's diagnostic, and that the page asked the network for nothing.
//!
//! `SOCKSCRIPT_SCREENSHOTS=DIR` also writes the README's pictures (`greeting.png`,
//! `failing.png`) there: `scripts/screenshots` remakes `docs/pictures/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{python, root, Dir, Output, Proc};

/// How long the browser may take over one plan (it starts, opens and checks each page).
const BROWSER_WALL: Duration = Duration::from_secs(120);

/// Open each page of `pages` (see `observe.mjs` for the fields) and return what was seen.
fn observe(dir: &Dir, pages: Value) -> Vec<Value> {
    let browser = root().join("tests/js/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir() && Path::new(CHROMIUM).exists(),
        "the browser tests need `{CHROMIUM}` and tests/js/browser/node_modules: run scripts/test"
    );
    let plan = dir.join("plan.json");
    write(&plan, &json!({ "pages": pages }).to_string());
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "10", "node"]);
    cmd.arg(browser.join("observe.mjs")).arg(&plan);
    cmd.current_dir(&browser);
    let out = Proc::start("node", cmd, BROWSER_WALL).wait();
    out.code(0);
    let seen: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("observe.mjs printed no JSON ({e}):\n{}", out.stdout));
    let pages = seen["pages"].as_array().cloned().unwrap_or_default();
    for page in &pages {
        assert_eq!(page["errors"], json!([]), "the page's script failed");
    }
    pages
}

const CHROMIUM: &str = "/usr/bin/chromium";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// These tests run one at a time: a browser and a large run each keep both CPUs of a small
/// machine busy, and the suite's timing-sensitive tests run beside them.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `path` (a file of the repository, or a directory) with `args` and `--report-html page`,
/// from the crate root. At a lower priority, like the browser: these runs are heavy, and the
/// suite's timing-sensitive tests run beside them.
fn run_with_page(path: impl AsRef<Path>, page: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "10"]).arg(env!("CARGO_BIN_EXE_sockscript"));
    cmd.args(["--color", "never"]).args(args);
    cmd.arg("--report-html").arg(page).arg(path.as_ref());
    cmd.current_dir(root());
    // As the harness does: the run must not depend on whoever runs the tests.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SOCKSCRIPT_") {
            cmd.env_remove(k);
        }
    }
    Proc::start("sockscript", cmd, Duration::from_secs(180)).wait()
}

/// The page asked for nothing but itself.
#[track_caller]
fn no_requests(page: &Value, file: &Path) {
    let own = format!("file://{}", file.display());
    assert_eq!(
        page["requests"],
        json!([own]),
        "requests other than the page"
    );
}

/// Where the README's pictures go, when asked for.
fn screenshot(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SOCKSCRIPT_SCREENSHOTS")?;
    let dir = root().join(dir);
    let _ = std::fs::create_dir_all(&dir);
    Some(dir.join(name))
}

/// The page's embedded data, parsed.
fn data(html: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"data\">";
    let start = html
        .find(open)
        .map(|i| i + open.len())
        .expect("a data element");
    let end = start + html[start..].find("</script>").expect("its end");
    serde_json::from_str(&html[start..end]).expect("the data is JSON")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_greeting_is_five_lanes_and_two_arrows_and_an_arrow_shows_its_bytes() {
    let _one = one_at_a_time();
    let dir = Dir::new("html-greeting");
    let file = dir.join("greeting.html");
    // Run mode: the report keeps it, so the script still prints as it runs.
    run_with_page("scenarios/greeting.rhai", &file, &[])
        .code(0)
        .stdout_has("Thank you for connecting\n");
    let shot = screenshot("greeting.png");
    let pages = observe(
        &dir,
        json!([{ "file": file, "click": true, "screenshot": shot, "screenshot_after_click": true,
                 "keyboard": true }]),
    );
    let page = &pages[0];
    no_requests(page, &file);
    assert_eq!(page["index_rows"], 1);
    assert_eq!(page["scenario"], "passed scenarios/greeting.rhai");
    // The listener, and both ends of each of the two connections, in the order they first
    // took part (which the tasks' timing decides).
    let lanes = page["lanes"].as_array().cloned().unwrap_or_default();
    assert_eq!(lanes.len(), 5, "{lanes:?}");
    let listener = &lanes[0];
    assert_eq!(listener["task"], "main");
    assert_eq!(listener["role"], "listener · tcp");
    let addr = listener["addr"].as_str().unwrap_or("?");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let mut ends: Vec<String> = lanes[1..]
        .iter()
        .map(|l| format!("{} {}", l["role"], l["task"]))
        .collect();
    ends.sort();
    assert_eq!(
        ends,
        [
            "\"end · tcp#1\" \"main\"",
            "\"end · tcp#1\" \"task 1\"",
            "\"end · tcp#2\" \"main\"",
            "\"end · tcp#2\" \"task 1\""
        ]
    );
    // The server's ends are at the listener's address; the clients' are not.
    for (i, lane) in lanes.iter().enumerate().skip(1) {
        assert_eq!(lane["addr"] == addr, lane["task"] == "task 1", "lane {i}");
    }
    // One arrow per send, from the server's end to the client's end of the same connection:
    // both ends are in the scenario.
    assert_eq!(page["arrows"], 2);
    assert_eq!(page["model"]["arrows"], 2);
    let arrows = page["arrow_lanes"].as_array().cloned().unwrap_or_default();
    let mut connections = Vec::new();
    for arrow in &arrows {
        let lane = |k: usize| &lanes[arrow[k].as_u64().unwrap_or(99) as usize];
        let (from, to) = (lane(0), lane(1));
        assert_eq!(
            (&from["task"], &to["task"]),
            (&json!("task 1"), &json!("main"))
        );
        assert_eq!(from["role"], to["role"], "one connection: {arrow}");
        connections.push(from["role"].clone());
    }
    connections.dedup();
    assert_eq!(connections.len(), 2, "{arrows:?}");
    assert_eq!(
        strings(&page["arrow_labels"]),
        ["24 B  Thank you for connecting"; 2]
    );
    let mut marks = strings(&page["marks"]);
    marks.sort();
    assert_eq!(
        marks,
        ["accept", "accept", "close", "close", "connect", "connect", "eof", "eof", "listen"]
    );
    assert_eq!(page["failures"], json!([]));
    assert_eq!(page["diagnostic"], Value::Null);
    // Lines 7 listen, 11 accept, 13 send, 14 close, 19 connect, 20 recv_all.
    assert_eq!(page["source_hits"], json!([7, 11, 13, 14, 19, 20]));

    let clicked = &page["clicked"];
    let payload = b"Thank you for connecting";
    assert_eq!(clicked["text"], "Thank you for connecting");
    assert_eq!(clicked["hexdump"], sockscript::transcript::hexdump(payload));
    assert_eq!(clicked["selected_arrows"], 1);
    // The send at line 13 and the recv_all at line 20 that made it, both highlighted.
    assert_eq!(clicked["selected_lines"], json!([13, 20]));
    let fields = &clicked["fields"];
    assert!(fields["send"]
        .as_str()
        .is_some_and(|s| s.contains("by task 1, line 13:")));
    assert!(fields["recv"]
        .as_str()
        .is_some_and(|s| s.contains("by main, line 20:")));
    assert_eq!(fields["length"], "24 bytes");
    // The keyboard reaches the other arrow, and stays on it once it is shown.
    let keys = &page["keyboard"];
    assert_eq!(keys["selected"], json!([keys["second"]]), "{keys}");
    assert_eq!(keys["focused"], keys["second"], "{keys}");
    assert_eq!(keys["text"], "Thank you for connecting");
}

/// What the peer of `relay_denied.rhai` does: greet, read the HELO, refuse and hang up.
const RELAY_DENYING_PEER: &str = r#"
from peer import accept_one
c = accept_one()
c.sendall(b"220 mail.example ready\r\n")
c.makefile("rb").readline()
c.sendall(b"550 relaying denied\r\n")
c.close()
"#;

#[test]
fn a_failure_against_a_real_peer_is_a_red_mark_with_the_terminals_diagnostic() {
    let _one = one_at_a_time();
    let dir = Dir::new("html-failing");
    let file = dir.join("failing.html");
    let mut peer = python(RELAY_DENYING_PEER);
    let port = peer.port();
    let var = format!("port={port}");
    let run = run_with_page("tests/html/relay_denied.rhai", &file, &["--var", &var]);
    run.code(4);
    peer.wait().code(0);
    let shot = screenshot("failing.png");
    let pages = observe(
        &dir,
        json!([{ "file": file, "click": true, "screenshot": shot }]),
    );
    let page = &pages[0];
    no_requests(page, &file);
    assert_eq!(page["scenario"], "error tests/html/relay_denied.rhai");
    // The terminal's words, exactly (run mode prints the diagnostic alone on stderr).
    assert_eq!(page["diagnostic"].as_str(), Some(run.stderr.as_str()));
    let lanes = page["lanes"].as_array().cloned().unwrap_or_default();
    assert_eq!(lanes.len(), 2, "{lanes:?}");
    assert_eq!(lanes[0]["task"], "main");
    assert_eq!(lanes[1]["role"], "peer");
    assert_eq!(lanes[1]["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(
        strings(&page["arrow_labels"]),
        [
            "24 B  220 mail.example ready\\r\\n",
            "21 B  HELO client.example\\r\\n",
            "21 B  550 relaying denied\\r\\n"
        ]
    );
    assert_eq!(page["arrow_lanes"], json!([[1, 0], [0, 1], [1, 0]]));
    // The failure: on the client's lane, red, selected when the page opens, at line 7.
    let message = format!("expect from `127.0.0.1:{port}`: the peer closed the connection");
    assert_eq!(
        page["failures"],
        json!([{ "lane": 0, "selected": true, "text": message, "color": "rgb(207, 34, 46)" }])
    );
    assert_eq!(page["inspector_failure"], message);
    assert_eq!(page["source_fail"], json!([7]));
    // The line after the failure never ran: no event came from it.
    assert_eq!(page["source_hits"], json!([4, 5, 6, 7]));
    // The first arrow, clicked: the greeting, as the peer sent it.
    let greeting = b"220 mail.example ready\r\n";
    assert_eq!(page["clicked"]["text"], "220 mail.example ready\\r\n");
    assert_eq!(
        page["clicked"]["hexdump"],
        sockscript::transcript::hexdump(greeting)
    );
    assert_eq!(page["clicked"]["selected_lines"], json!([5]));
}

#[test]
fn ten_thousand_exchanges_open_and_scroll_in_bounded_time() {
    let _one = one_at_a_time();
    let dir = Dir::new("html-exchanges");
    let file = dir.join("exchanges.html");
    run_with_page("tests/html/exchanges.rhai", &file, &[]).code(0);
    let pages = observe(
        &dir,
        json!([{ "file": file, "click": true, "scroll": true }]),
    );
    let page = &pages[0];
    no_requests(page, &file);
    // 10,000 sends each way, each one arrow.
    assert_eq!(page["model"]["arrows"], 20_000);
    assert_eq!(page["lanes"].as_array().map(Vec::len), Some(3));
    // Only a screenful or so is drawn at a time, wherever the reader is.
    let scroll = &page["scroll"];
    assert_eq!(scroll["last_step_drawn"], true, "{scroll}");
    assert!(
        scroll["most_steps_drawn"].as_u64().is_some_and(|n| n < 200),
        "{scroll}"
    );
    // Bounds a slow CI machine meets with room to spare (here: about 1 s, and 50 ms a move).
    let open = page["open_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(open < 15_000.0, "opening took {open} ms");
    let worst = scroll["worst_frame_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(
        worst < 1_500.0,
        "a scroll took {worst} ms to draw: {scroll}"
    );
    let total = scroll["total_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(total < 30_000.0, "scrolling took {total} ms: {scroll}");
    assert_eq!(page["clicked"]["text"], "ping 0\n");
}

/// A suite of 500 scenarios, each sending 64 KiB each way, one failing: the page stays under
/// 20 MB, says what it summarized, and its index filters by status.
#[test]
fn a_500_scenario_suite_makes_a_small_page_that_filters_by_status() {
    let _one = one_at_a_time();
    let dir = Dir::new("html-suite");
    let suite = dir.join("suite");
    let _ = std::fs::create_dir_all(&suite);
    let body = r#"
let server = listen("127.0.0.1:0");
let client = connect(server.addr);
let conn = server.accept();
let blob = blob(65536, 0x41);
client.send(blob);
conn.send(conn.recv_exact_bytes(65536));
let back = client.recv_exact_bytes(65536);
"#;
    for i in 0..500 {
        let check = if i == 250 {
            "assert_eq(back.len(), 1);"
        } else {
            "assert_eq(back.len(), 65536);"
        };
        write(
            &suite.join(format!("s{i:03}.rhai")),
            &format!("{body}{check}\n"),
        );
    }
    let file = dir.join("suite.html");
    let run = run_with_page(&suite, &file, &["--test", "-j", "2"]);
    run.code(1).stderr_has("499 passed, 1 failed");
    let html = read(&file);
    assert!(html.len() < 20_000_000, "{} bytes", html.len());
    // Every payload byte the page does not show is counted: by the transcript (past its
    // previews) or by the page's own budget, which the page then says.
    let v = data(&html);
    let (mut not_shown, mut not_kept, mut past_previews) = (0u64, 0u64, 0u64);
    for s in v["scenarios"].as_array().into_iter().flatten() {
        for e in s["events"].as_array().into_iter().flatten() {
            let (len, kept, shown) = (&e["len"], &e["kept"], &e["shown"]);
            let (len, kept, shown) = (len.as_u64(), kept.as_u64(), shown.as_u64());
            let (len, kept, shown) = (len.unwrap_or(0), kept.unwrap_or(0), shown.unwrap_or(0));
            assert!(shown <= kept && kept <= len, "{e}");
            not_shown += kept - shown;
            not_kept += len - kept;
            past_previews += kept.saturating_sub(sockscript::transcript::PREVIEW_BYTES as u64);
        }
    }
    assert_eq!(v["limits"]["cut_bytes"], not_shown);
    // 64 MiB of payloads: the run kept its budget of them whole for the page, the rest as
    // previews, and the page says what it shows in part.
    assert_eq!(
        past_previews,
        sockscript::report::WHOLE_PAYLOAD_BYTES as u64
    );
    assert_eq!(v["limits"]["partial_bytes"], not_kept + not_shown);

    let pages = observe(&dir, json!([{ "file": file, "filter": "failed" }]));
    let page = &pages[0];
    no_requests(page, &file);
    assert_eq!(page["index_rows"], 500);
    // The failed one opens first; the filter leaves only it.
    assert_eq!(page["scenario"], "failed s250.rhai");
    assert_eq!(page["filtered_rows"], json!(["s250.rhai"]));
    let notes = strings(&page["notes"]);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("payloads are shown in part")),
        "the page says it summarized: {notes:?}"
    );
}

/// Markup in a payload, the output and a failure message stays text: no element is made from
/// it, nothing is fetched, nothing runs; a quiet time between sends is a labelled gap.
#[test]
fn what_peers_and_scripts_write_stays_text() {
    let _one = one_at_a_time();
    let dir = Dir::new("html-hostile");
    let file = dir.join("hostile.html");
    run_with_page("tests/html/hostile.rhai", &file, &["--test"]).code(1);
    let pages = observe(&dir, json!([{ "file": file, "click": true }]));
    let page = &pages[0];
    no_requests(page, &file);
    assert_eq!(page["title"], "sockscript report");
    // The page's own script is its one loader.
    assert_eq!(page["loaders"], 0);
    let payload =
        r#"</script><img src="http://127.0.0.1:9/payload" onerror="document.title='pwned'">"#;
    assert_eq!(page["clicked"]["text"], payload);
    let labels = strings(&page["arrow_labels"]);
    assert!(
        labels[0].starts_with("80 B  </script><img src="),
        "{labels:?}"
    );
    // Control and bidi characters are shown as escapes, not obeyed.
    assert_eq!(
        strings(&page["arrow_labels"])[1],
        "18 B  <!-- \\u{202e} \\x1b[31m -->"
    );
    let failure = page["failures"][0]["text"].as_str().unwrap_or("");
    assert!(
        failure.contains("<script>document.title='pwned'</script>"),
        "{failure}"
    );
    // The sleep between the sends; on a busy machine other steps may be far apart too.
    let gaps = strings(&page["gaps"]);
    let long: Vec<f64> = gaps
        .iter()
        .map(|g| idle_ms(g))
        .filter(|&ms| ms >= 250.0)
        .collect();
    assert_eq!(long.len(), 1, "{gaps:?}");
    // The gap runs between two events' timestamps, which the sleep's ends need not match to
    // the millisecond.
    assert!((250.0..5_000.0).contains(&long[0]), "{gaps:?}");
}

/// The length of an idle gap's label, `⋮ 301 ms idle` or `⋮ 1.20 s idle`, in milliseconds.
fn idle_ms(label: &str) -> f64 {
    let gap = label.trim_start_matches('\u{22ee}').trim();
    let (number, unit) = gap.split_once(' ').unwrap_or((gap, ""));
    let scale = if unit.starts_with("ms") { 1.0 } else { 1000.0 };
    number.parse::<f64>().unwrap_or(0.0) * scale
}
