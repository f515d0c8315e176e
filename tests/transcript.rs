//! The transcript of conversations, end to end: connection ids shared by both ends of a
//! connection the scenario holds, direction, transport and the script position of the call
//! behind each event in the JSON report, payloads kept whole up to `--limit capture` and
//! counted as dropped after it, and the recent traffic of a failed connection under its
//! diagnostic. Real processes: the binary, and a Python peer.

use std::path::Path;

use serde_json::Value;

use crate::harness::{python_listener, temp_dir, Test};

fn report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"))
}

/// Run `source` as `file` (run through its directory, `suite`), require it to pass, and read
/// its JSON report, written to `json`.
fn passing_report(file: &str, source: &str, json: &Path) -> Value {
    Test::new()
        .write(file, source)
        .path("suite")
        .args(&["--report-json", &json.to_string_lossy()])
        .run()
        .code(0);
    report(json)
}

/// An event as `(kind, conn, dir, transport)`.
type Shape = (String, Option<u64>, Option<String>, Option<String>);

/// The events of a scenario's transcript, by their shape.
fn shape(events: &[Value]) -> Vec<Shape> {
    events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["conn"].as_u64(),
                e["dir"].as_str().map(str::to_owned),
                e["transport"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

const BOTH_ENDS_AND_A_PEER: &str = r#"
let l = listen("127.0.0.1:0");
let c = connect(l.addr);
let s = l.accept();
c.send_line("ping");
assert_eq(s.recv_line(), "ping");
let p = connect(`127.0.0.1:${port}`);
p.send_line("hello");
assert_eq(p.recv_line(), "hello");
let u = listen("unix:app.sock");
let uc = connect("unix:app.sock");
let us = u.accept();
uc.send_line("hi");
assert_eq(us.recv_line(), "hi");
let d = udp("127.0.0.1:0");
d.send_to("x", d.addr);
d.recv_from();
"#;

#[test]
fn both_ends_share_a_connection_id_and_a_peer_s_connection_has_its_own() {
    let mut peer = python_listener("from peer import echo\nc, _ = s.accept()\necho(c)\n");
    let port = peer.port().to_string();
    let dir = temp_dir("transcript-ids");
    let json = dir.join("r.json");
    Test::new()
        .write("suite/ids.rhai", BOTH_ENDS_AND_A_PEER)
        .path("suite")
        .args(&["--var", &format!("port={port}")])
        .args(&["--report-json", &json.to_string_lossy()])
        .run()
        .code(0);
    let v = report(&json);
    let scenario = &v["scenarios"][0];
    // The TCP pair, the peer's connection and the Unix pair.
    assert_eq!(scenario["connections"], 3, "{scenario}");
    assert_eq!(
        scenario["dropped"],
        serde_json::json!({"bytes": 0, "events": 0})
    );
    let events = scenario["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let s = |x: &str| Some(x.to_owned());
    let (out, inn) = (s("out"), s("in"));
    let (tcp, unix, udp) = (s("tcp"), s("unix"), s("udp"));
    assert_eq!(
        shape(&events),
        [
            ("listen".into(), None, None, tcp.clone()),
            ("connect".into(), Some(1), out.clone(), tcp.clone()),
            ("accept".into(), Some(1), inn.clone(), tcp.clone()),
            ("send".into(), Some(1), out.clone(), tcp.clone()),
            ("recv".into(), Some(1), inn.clone(), tcp.clone()),
            ("connect".into(), Some(2), out.clone(), tcp.clone()),
            ("send".into(), Some(2), out.clone(), tcp.clone()),
            ("recv".into(), Some(2), inn.clone(), tcp.clone()),
            ("listen".into(), None, None, unix.clone()),
            ("connect".into(), Some(3), out.clone(), unix.clone()),
            ("accept".into(), Some(3), inn.clone(), unix.clone()),
            ("send".into(), Some(3), out.clone(), unix.clone()),
            ("recv".into(), Some(3), inn.clone(), unix.clone()),
            ("listen".into(), Some(4), None, udp.clone()),
            ("send".into(), Some(4), out.clone(), udp.clone()),
            ("recv".into(), Some(4), inn.clone(), udp.clone()),
        ]
    );
    // Both ends of the pair see each other's addresses; the peer's connection reaches it.
    let (connect, accept) = (&events[1], &events[2]);
    assert_eq!(connect["local"], accept["peer"]);
    assert_eq!(connect["peer"], accept["local"]);
    assert_eq!(events[5]["peer"], format!("127.0.0.1:{port}"));
    // The Unix client has a name a reader understands, the same from both ends.
    let (uconnect, uaccept) = (&events[9], &events[10]);
    assert_eq!(uconnect["local"], "unix:app.sock#client-3");
    assert_eq!(uaccept["peer"], "unix:app.sock#client-3");
    assert_eq!(uaccept["local"], "unix:app.sock");
    assert!(events
        .iter()
        .all(|e| e["local"] != "unix:" && e["peer"] != "unix:"));
    drop(peer);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Six clients connect at once to the scenario's own Unix listener; each accepted connection
/// is sent its number. The two ends of each connection share an id however the connecting
/// and accepting threads interleave: what the server sent on an id is what the client read on
/// it.
const UNIX_CLIENTS_AT_ONCE: &str = r#"
let l = listen("unix:many.sock");
let server = spawn(|| {
    for i in 0..6 { let c = l.accept(); c.send_line(`conn ${i}`); c.close(); }
});
let clients = [];
for k in 0..6 { clients.push(spawn(|| connect("unix:many.sock").recv_line())); }
for t in clients { t.join(); }
server.join();
"#;

#[test]
fn unix_clients_connecting_at_once_are_paired_with_their_own_accepts() {
    let dir = temp_dir("transcript-unix-pairs");
    let json = dir.join("r.json");
    for _ in 0..3 {
        Test::new()
            .write("suite/many.rhai", UNIX_CLIENTS_AT_ONCE)
            .path("suite")
            .args(&["--report-json", &json.to_string_lossy()])
            .run()
            .code(0);
        let v = report(&json);
        let events = v["scenarios"][0]["transcript"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let on = |kind: &str| -> std::collections::BTreeMap<u64, String> {
            events
                .iter()
                .filter(|e| e["kind"] == kind)
                .map(|e| {
                    let conn = e["conn"].as_u64().unwrap_or_default();
                    (conn, e["data"].as_str().unwrap_or_default().to_owned())
                })
                .collect()
        };
        let (sent, read) = (on("send"), on("recv"));
        assert_eq!(sent.len(), 6, "{events:#?}");
        assert_eq!(sent, read, "what was sent and read on each connection id");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const BULK: &str = r#"
let l = listen("127.0.0.1:0");
let c = connect(l.addr);
let s = l.accept();
let chunk = blob(4096, 0x61);
for i in 0..16 { c.send(chunk); }
let got = s.recv_exact_bytes(65536);
assert_eq(got.len(), 65536);
"#;

#[test]
fn past_the_capture_limit_payloads_keep_a_preview_and_the_rest_is_counted_as_dropped() {
    let dir = temp_dir("transcript-capture");
    let json = dir.join("r.json");
    let out = Test::new()
        .write("suite/bulk.rhai", BULK)
        .path("suite")
        .args(&["--limit", "capture=1KiB", "--trace"])
        .args(&["--report-json", &json.to_string_lossy()])
        .run();
    out.code(0)
        .stderr_has("(not kept: past `--limit capture`)")
        .stderr_has("the transcript did not keep");
    let v = report(&json);
    let scenario = &v["scenarios"][0];
    let events = scenario["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let payload: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e["kind"] == "send" || e["kind"] == "recv")
        .map(|e| {
            let kept = e["data_hex"].as_str().map_or(0, |h| h.len() as u64 / 2);
            (e["len"].as_u64().unwrap_or_default(), kept)
        })
        .collect();
    let total: u64 = payload.iter().map(|(len, _)| len).sum();
    let kept: u64 = payload.iter().map(|(_, kept)| kept).sum();
    assert_eq!(total, 2 * 65536, "{payload:?}");
    // Every payload is past the limit (the first send is 4 KiB): each keeps a 1 KiB preview.
    assert!(
        payload.iter().all(|&(len, kept)| kept == len.min(1024)),
        "{payload:?}"
    );
    assert_eq!(scenario["dropped"]["bytes"].as_u64(), Some(total - kept));
    assert_eq!(scenario["dropped"]["events"], 0);
    // Within the default limit the same transfer is kept whole.
    let whole = passing_report("suite/bulk.rhai", BULK, &dir.join("whole.json"));
    assert_eq!(whole["scenarios"][0]["dropped"]["bytes"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

const STALLED: &str = r#"
let c = connect(`127.0.0.1:${port}`);
c.timeout = "300ms";
c.send_line("HELLO");
c.recv_line();
"#;

/// The peer reads the request, answers half a line and stalls.
const HALF_A_LINE: &str = "c, _ = s.accept()\nc.makefile('rb').readline()\nc.sendall(b'par')\nfrom peer import hold\nhold()\n";

#[test]
fn a_failed_read_shows_the_recent_traffic_of_its_connection() {
    let mut peer = python_listener(HALF_A_LINE);
    let port = peer.port().to_string();
    let out = Test::new()
        .script(STALLED)
        .args(&["--var", &format!("port={port}")])
        .run();
    out.code(4)
        .stderr_has("recent traffic on this connection (tcp#1, this end, last 2 of 2):")
        .stderr_has("  main     send     -> 6 bytes \"HELLO\\n\"")
        .stderr_has("  main     recv     <- 3 bytes \"par\"");
    drop(peer);

    // The reports carry the same lines, from the same transcript.
    let mut peer = python_listener(HALF_A_LINE);
    let port = peer.port().to_string();
    let dir = temp_dir("transcript-recent");
    let (junit, tap) = (dir.join("r.xml"), dir.join("r.tap"));
    Test::new()
        .write("suite/stalled.rhai", STALLED)
        .path("suite")
        .args(&["--var", &format!("port={port}")])
        .args(&["--report-junit", &junit.to_string_lossy()])
        .args(&["--report-tap", &tap.to_string_lossy()])
        .run()
        .code(4)
        .stderr_has("recent traffic on this connection (tcp#1, this end, last 2 of 2):");
    for path in [&junit, &tap] {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            text.contains("recent traffic on this connection (tcp#1, this end, last 2 of 2):"),
            "{}:\n{text}",
            path.display()
        );
    }
    drop(peer);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each call on its own line, at a known column; `greet` sends from inside a function.
const POSITIONS: &str = r#"let c = connect(`127.0.0.1:${port}`);
fn greet(conn) {
    conn.send_line("hello");
}
greet(c);
assert_eq(c.recv_line(), "hello");
  c.close();
let l = listen("127.0.0.1:0");
let d = connect(l.addr);
let s = l.accept();
"#;

#[test]
fn events_point_at_the_script_calls_that_caused_them() {
    let mut peer = python_listener("from peer import echo\nc, _ = s.accept()\necho(c)\n");
    let port = peer.port().to_string();
    let dir = temp_dir("transcript-positions");
    let json = dir.join("r.json");
    let out = Test::new()
        .write("suite/positions.rhai", POSITIONS)
        .path("suite")
        .args(&["--var", &format!("port={port}")])
        .args(&["--report-json", &json.to_string_lossy()])
        .run();
    out.code(0);
    let v = report(&json);
    let events = v["scenarios"][0]["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let seen: Vec<(String, Option<u64>, Option<u64>)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["line"].as_u64(),
                e["column"].as_u64(),
            )
        })
        .collect();
    let at = |kind: &str, line, column| (kind.to_owned(), Some(line), Some(column));
    assert_eq!(
        seen,
        [
            at("connect", 1, 9),
            // Inside the function, at the call that sent, not where the function was called.
            at("send", 3, 10),
            at("recv", 6, 13),
            at("close", 7, 5),
            at("listen", 8, 9),
            at("connect", 9, 9),
            at("accept", 10, 11),
        ],
        "{events:?}"
    );
    drop(peer);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends of a Blob variable, made where the Blob lies (src/script/send_ref.rs), are recorded at
/// their calls, as rhai's own call records them.
const BLOB_SENDS: &str = r#"let l = listen("127.0.0.1:0");
let c = connect(l.addr);
let data = blob(2, 0x61);
c.send(data);
let n = c.send(data);
for i in 0..1 { n = c.send(data); }
if n > 0 {
    c.send(data);
}
"#;

#[test]
fn a_blob_sent_in_place_is_recorded_at_its_call() {
    let dir = temp_dir("transcript-blob-sends");
    let v = passing_report("suite/blob_sends.rhai", BLOB_SENDS, &dir.join("r.json"));
    let sends: Vec<(Option<u64>, Option<u64>)> = v["scenarios"][0]["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["kind"] == "send")
        .map(|e| (e["line"].as_u64(), e["column"].as_u64()))
        .collect();
    let at = |line, column| (Some(line), Some(column));
    assert_eq!(sends, [at(4, 3), at(5, 11), at(6, 23), at(8, 7)]);
    let _ = std::fs::remove_dir_all(&dir);
}
