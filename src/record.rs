//! `sockscript record`: a transcript of relayed connections → a scenario a person can edit.
//! [`conversations`] reads what the proxy recorded (the client's leg of each relayed
//! connection: its `recv`s are what the client sent, its `send`s what the server answered, an
//! `eof` the client's half-close, a `shutdown` the server's); [`scenario`] writes it as rhai
//! text for one side. Both are pure; running the proxy is `run::record`'s.
//!
//! Where two or more connections have the same shape (the same requests and answers in the
//! same order), the bytes of a checked step that differ between them (ids, timestamps,
//! counters) become a wildcard: what they share at the start and the end is checked, the
//! middle is not, and the file says so at that line. A text wildcard with a shared end is an
//! `expect`, so a counter that grows a digit still matches.

use std::fmt::Write as _;

use crate::transcript::{Event, EventKind};

/// Which end of the recorded conversations the scenario plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Play the recorded clients against the service, checking its answers.
    Client,
    /// Listen and play the recorded server to a client under test, checking its requests.
    Server,
}

/// One step of a recorded connection, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes the client sent.
    Request(Vec<u8>),
    /// Bytes the server answered.
    Answer(Vec<u8>),
    /// The client half-closed (FIN).
    ClientShutdown,
    /// The server half-closed.
    ServerShutdown,
}

impl Step {
    /// The bytes of a request or an answer.
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Step::Request(b) | Step::Answer(b) => Some(b),
            Step::ClientShutdown | Step::ServerShutdown => None,
        }
    }
}

/// A conversation's shape: its requests and answers in order (half-closes left out: when a
/// client's FIN crosses an answer is timing, not the protocol).
fn shape(c: &Conversation) -> impl Iterator<Item = bool> + '_ {
    c.steps
        .iter()
        .filter(|s| s.bytes().is_some())
        .map(|s| matches!(s, Step::Request(_)))
}

/// The `n`th request or answer of `c`.
fn nth_data(c: &Conversation, n: usize) -> Option<&[u8]> {
    c.steps.iter().filter_map(Step::bytes).nth(n)
}

/// One relayed connection: where its client came from, and its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub client: String,
    pub steps: Vec<Step>,
}

/// The connections `task` (the proxy's task) relayed, in the order they were accepted, with
/// consecutive bytes of one direction joined into one step. `Err` names a payload the
/// transcript did not keep whole.
pub fn conversations(events: &[Event], task: &str) -> Result<Vec<Conversation>, String> {
    let mut order: Vec<&Event> = events.iter().filter(|e| &*e.task == task).collect();
    order.sort_by_key(|e| e.at);
    let mut found: Vec<(u32, Conversation)> = Vec::new();
    for e in order {
        let Some(conn) = e.on.conn else { continue };
        if e.kind == EventKind::Accept {
            found.push((
                conn,
                Conversation {
                    client: e.peer.as_deref().unwrap_or("?").to_owned(),
                    steps: Vec::new(),
                },
            ));
            continue;
        }
        let Some((_, c)) = found.iter_mut().find(|(id, _)| *id == conn) else {
            // The proxy's leg to the upstream.
            continue;
        };
        if matches!(e.kind, EventKind::Recv | EventKind::Send) && e.data.len() != e.len {
            return Err(format!(
                "a payload of {} bytes was past the capture limit: record fewer or smaller \
                 conversations",
                e.len
            ));
        }
        let step = match e.kind {
            EventKind::Recv => Step::Request(e.data.to_vec()),
            EventKind::Send => Step::Answer(e.data.to_vec()),
            EventKind::Eof => Step::ClientShutdown,
            EventKind::Shutdown => Step::ServerShutdown,
            _ => continue,
        };
        match (c.steps.last_mut(), step) {
            (Some(Step::Request(a)), Step::Request(b))
            | (Some(Step::Answer(a)), Step::Answer(b)) => a.extend_from_slice(&b),
            (_, step) => c.steps.push(step),
        }
    }
    Ok(found
        .into_iter()
        .map(|(_, c)| c)
        .filter(|c| !c.steps.is_empty())
        .collect())
}

/// What the header of a written scenario says.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The address the proxy listened on while recording.
    pub listen: String,
    /// The service's address.
    pub upstream: String,
    /// When, as text (`2026-12-01T14:40:00Z`).
    pub when: String,
}

/// How a checked step is checked: its bytes, or a wildcard over the variants of its shape.
enum Check<'a> {
    Exact(&'a [u8]),
    Wild {
        /// The shared start and end.
        prefix: &'a [u8],
        suffix: &'a [u8],
        /// The length, when every variant has the same.
        len: Option<usize>,
        variants: usize,
    },
}

/// The check for `bytes`, the `index`th request or answer of a conversation whose shape-mates
/// are `peers`.
fn check<'a>(bytes: &'a [u8], index: usize, peers: &[&'a Conversation]) -> Check<'a> {
    let variants: Vec<&[u8]> = peers.iter().filter_map(|c| nth_data(c, index)).collect();
    if variants.iter().all(|v| *v == bytes) {
        return Check::Exact(bytes);
    }
    let shortest = variants.iter().map(|v| v.len()).min().unwrap_or(0);
    let prefix = (0..shortest)
        .take_while(|&i| variants.iter().all(|v| v[i] == bytes[i]))
        .count();
    let suffix = (0..shortest - prefix)
        .take_while(|&i| {
            let at = |v: &[u8]| v[v.len() - 1 - i];
            variants.iter().all(|v| at(v) == at(bytes))
        })
        .count();
    let same_len = variants.iter().all(|v| v.len() == bytes.len());
    Check::Wild {
        prefix: &bytes[..prefix],
        suffix: &bytes[bytes.len() - suffix..],
        len: same_len.then_some(bytes.len()),
        variants: variants.len(),
    }
}

/// Text a scenario can hold as a string literal: UTF-8 of printable characters, tabs and line
/// ends; anything else is written as `hex(…)`.
fn is_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| {
        s.chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
    })
}

/// A rhai string literal.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `"text"` or `hex("…")`, as the bytes are.
fn literal(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if is_text(bytes) => quote(text),
        _ => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("hex({})", quote(&hex))
        }
    }
}

/// The comment above a wildcard's line.
fn wild_note(variants: usize) -> String {
    format!(
        "// wildcard: the {variants} recorded connections of this shape differed here (an id,\n    \
         // a time, a counter?): only their shared start and end are checked"
    )
}

/// The lines that receive `expected` on `conn` and check it.
fn receive(out: &mut String, check: Check<'_>) {
    match check {
        Check::Exact(bytes) if is_text(bytes) => {
            let _ = writeln!(
                out,
                "    assert_eq(conn.recv_exact({}), {});",
                bytes.len(),
                literal(bytes)
            );
        }
        Check::Exact(bytes) => {
            let _ = writeln!(
                out,
                "    assert_eq(conn.recv_exact_bytes({}), {});",
                bytes.len(),
                literal(bytes)
            );
        }
        Check::Wild {
            prefix,
            suffix,
            len,
            variants,
        } => {
            let _ = writeln!(out, "    {}", wild_note(variants));
            let text = is_text(prefix) && is_text(suffix);
            let pattern = |prefix: &[u8], suffix: &[u8]| {
                format!(
                    "^{}[\\s\\S]*{}",
                    regex::escape(&String::from_utf8_lossy(prefix)),
                    regex::escape(&String::from_utf8_lossy(suffix))
                )
            };
            match (len, text) {
                (_, true) if !suffix.is_empty() => {
                    let re = pattern(prefix, suffix).replace("[\\s\\S]*", "[\\s\\S]*?");
                    let _ = writeln!(out, "    conn.expect({});", quote(&re));
                }
                (Some(n), true) => {
                    let re = format!("{}$", pattern(prefix, suffix));
                    let _ = writeln!(
                        out,
                        "    assert_match(conn.recv_exact({n}), {});",
                        quote(&re)
                    );
                }
                (Some(n), false) => {
                    let _ = writeln!(out, "    let got = conn.recv_exact_bytes({n});");
                    if !prefix.is_empty() {
                        let _ = writeln!(
                            out,
                            "    assert_eq(got.extract(0, {}), {});",
                            prefix.len(),
                            literal(prefix)
                        );
                    }
                    if !suffix.is_empty() {
                        let _ = writeln!(
                            out,
                            "    assert_eq(got.extract({}, {}), {});",
                            n - suffix.len(),
                            suffix.len(),
                            literal(suffix)
                        );
                    }
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "    conn.recv_bytes(); // lengths differed and nothing marks the end: \
                         not checked"
                    );
                }
            }
        }
    }
}

/// The scenario that plays `side` of `conversations`: formatted, commented, ready to run.
pub fn scenario(conversations: &[Conversation], side: Side, meta: &Meta) -> String {
    let mut out = String::new();
    let total = conversations.len();
    let _ = writeln!(
        out,
        "// Recorded by `sockscript record` on {}:\n// {total} connection{} between clients and {}.",
        meta.when,
        if total == 1 { "" } else { "s" },
        meta.upstream
    );
    let (host, port) = meta
        .upstream
        .rsplit_once(':')
        .unwrap_or((meta.upstream.as_str(), "0"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match side {
        Side::Client => {
            out.push_str(
                "// It plays the recorded clients against the service, one connection after the\n\
                 // other and one exchange at a time: what a client sent is sent, and what the\n\
                 // service answered must come back, byte for byte.\n\
                 //\n",
            );
            let _ = writeln!(
                out,
                "// Run it:  sockscript --var host={host} --var port={port} <this file>\n"
            );
            let _ = writeln!(out, "let host = var(\"host\", {});", quote(host));
            let port = port.parse::<u16>().map_or(quote(port), |p| p.to_string());
            let _ = writeln!(out, "let port = var(\"port\", {port});");
        }
        Side::Server => {
            out.push_str(
                "// It plays the recorded service to a client under test: it listens, and for\n\
                 // each recorded connection accepts one, checks each request it receives and\n\
                 // answers as the service did.\n\
                 //\n",
            );
            let _ = writeln!(
                out,
                "// Run it:  sockscript --var listen={} <this file>   (then start the client)\n",
                meta.listen
            );
            let _ = writeln!(
                out,
                "let server = listen(var(\"listen\", {}));",
                quote(&meta.listen)
            );
            out.push_str("print(`listening on ${server.addr}`);\n");
        }
    }
    for (i, c) in conversations.iter().enumerate() {
        let peers: Vec<&Conversation> = conversations
            .iter()
            .filter(|o| shape(o).eq(shape(c)))
            .collect();
        let _ = writeln!(
            out,
            "\n// Connection {} of {total} (the client was {}).",
            i + 1,
            c.client
        );
        out.push_str("{\n");
        match side {
            Side::Client => out.push_str("    let conn = connect(`${host}:${port}`);\n"),
            Side::Server => out.push_str("    let conn = server.accept();\n"),
        }
        let mut data = 0;
        for step in &c.steps {
            let k = data;
            data += usize::from(step.bytes().is_some());
            match (side, step) {
                (Side::Client, Step::Request(b)) => {
                    let _ = writeln!(out, "    conn.send({});", literal(b));
                }
                (Side::Client, Step::Answer(b)) | (Side::Server, Step::Request(b)) => {
                    receive(&mut out, check(b, k, &peers));
                }
                (Side::Server, Step::Answer(b)) => {
                    let _ = writeln!(out, "    conn.send({});", literal(b));
                }
                (Side::Client, Step::ClientShutdown) | (Side::Server, Step::ServerShutdown) => {
                    out.push_str("    conn.shutdown();\n");
                }
                (Side::Client, Step::ServerShutdown) => {
                    out.push_str(
                        "    assert_eq(conn.recv_all(), \"\"); // the service closed here\n",
                    );
                }
                (Side::Server, Step::ClientShutdown) => {
                    out.push_str(
                        "    assert_eq(conn.recv_all(), \"\"); // the client closed here\n",
                    );
                }
            }
        }
        out.push_str("    conn.close();\n}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(steps: Vec<Step>) -> Conversation {
        Conversation {
            client: "127.0.0.1:50000".into(),
            steps,
        }
    }

    fn meta() -> Meta {
        Meta {
            listen: "127.0.0.1:7000".into(),
            upstream: "127.0.0.1:6379".into(),
            when: "2026-12-01 14:40 UTC".into(),
        }
    }

    #[test]
    fn a_client_scenario_sends_and_checks_each_exchange() {
        let c = conv(vec![
            Step::Request(b"PING\r\n".to_vec()),
            Step::Answer(b"+PONG\r\n".to_vec()),
            Step::Request(vec![0, 1, 0xff]),
            Step::Answer(vec![0xff, 0x00]),
            Step::ClientShutdown,
            Step::ServerShutdown,
        ]);
        let text = scenario(&[c], Side::Client, &meta());
        assert_eq!(
            text,
            r#"// Recorded by `sockscript record` on 2026-12-01 14:40 UTC:
// 1 connection between clients and 127.0.0.1:6379.
// It plays the recorded clients against the service, one connection after the
// other and one exchange at a time: what a client sent is sent, and what the
// service answered must come back, byte for byte.
//
// Run it:  sockscript --var host=127.0.0.1 --var port=6379 <this file>

let host = var("host", "127.0.0.1");
let port = var("port", 6379);

// Connection 1 of 1 (the client was 127.0.0.1:50000).
{
    let conn = connect(`${host}:${port}`);
    conn.send("PING\r\n");
    assert_eq(conn.recv_exact(7), "+PONG\r\n");
    conn.send(hex("0001ff"));
    assert_eq(conn.recv_exact_bytes(2), hex("ff00"));
    conn.shutdown();
    assert_eq(conn.recv_all(), ""); // the service closed here
    conn.close();
}
"#
        );
    }

    #[test]
    fn bytes_that_differ_between_same_shaped_connections_are_wildcards() {
        let a = conv(vec![
            Step::Request(b"INCR n\r\n".to_vec()),
            Step::Answer(b":1\r\n".to_vec()),
        ]);
        let b = conv(vec![
            Step::Request(b"INCR n\r\n".to_vec()),
            Step::Answer(b":2\r\n".to_vec()),
        ]);
        let text = scenario(&[a, b], Side::Client, &meta());
        assert!(
            text.contains(
                "    // wildcard: the 2 recorded connections of this shape differed here"
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"    conn.expect("^:[\\s\\S]*?\r\n");"#),
            "{text}"
        );
        // A server scenario checks the requests, which were the same.
        let server = scenario(
            &[conv(vec![Step::Request(b"hi\n".to_vec())])],
            Side::Server,
            &meta(),
        );
        assert!(server.contains("let server = listen(var(\"listen\", \"127.0.0.1:7000\"));"));
        assert!(server.contains("    assert_eq(conn.recv_exact(3), \"hi\\n\");"));
    }
}
