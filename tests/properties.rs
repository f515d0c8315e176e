//! No byte is lost or duplicated, however the stream is cut up. A property test generates a
//! byte stream of lines, delimited records, binary runs and `expect` targets, and a script that
//! reads it back with a matching mix of `recv_line`, `recv_until(_bytes)`, `recv_exact(_bytes)`
//! and `expect`, with reads that time out (a tiny handle timeout or `within`, caught) between
//! them, and ends with `recv_all`, `recv_all_bytes` or a `recv_bytes` loop. A writer thread of
//! the test sends the stream in random chunks with random pauses. Every read prints what it got
//! in hex; the output must equal what the same reads give on the whole stream at once.
//!
//! The seed is fixed, so CI runs the same cases every time; set `PROPTEST_RNG_SEED` to explore
//! others and `PROPTEST_CASES` for more (or fewer) of them.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use crate::harness::Test;

/// A delimiter for `recv_until`: its bytes, and how the script writes it as text (when it is
/// text) and as a Blob.
struct Delim {
    bytes: &'static [u8],
    text: Option<&'static str>,
    blob: &'static str,
}

const DELIMS: &[Delim] = &[
    Delim {
        bytes: b"\r\n\r\n",
        text: Some(r#""\r\n\r\n""#),
        blob: r#""\r\n\r\n".to_blob()"#,
    },
    Delim {
        bytes: b"|",
        text: Some(r#""|""#),
        blob: r#""|".to_blob()"#,
    },
    Delim {
        bytes: b"END",
        text: Some(r#""END""#),
        blob: r#"hex("454e44")"#,
    },
    Delim {
        bytes: "€".as_bytes(),
        text: Some(r#""€""#),
        blob: r#""€".to_blob()"#,
    },
    Delim {
        bytes: b"\x00\xff",
        text: None,
        blob: r#"hex("00ff")"#,
    },
];

/// The `expect` pattern of [`Recv::Expect`] and the probes' never-arriving delimiter: the
/// generated streams never contain `~`.
const EXPECT: &str = r"(\d+);";
const NEVER: &str = "~never~";

/// One read of the script, and the part of the stream written for it.
#[derive(Debug, Clone)]
enum Recv {
    /// `recv_line` of `body` + `\n` or `\r\n`.
    Line { body: Vec<u8>, crlf: bool },
    /// `recv_until` (text) or `recv_until_bytes` of `body` + a delimiter.
    Until {
        body: Vec<u8>,
        delim: usize,
        bytes: bool,
    },
    /// `recv_exact_bytes` or `recv_exact` (text) of `body`.
    Exact { body: Vec<u8>, bytes: bool },
    /// `expect(EXPECT)` over `filler` + `digits` + `;`.
    Expect { filler: Vec<u8>, digits: String },
}

/// A read that cannot finish, made to time out and caught; it must not consume anything.
#[derive(Debug, Clone)]
enum Probe {
    /// `recv_until(NEVER)` under a tiny handle timeout.
    Until(u8),
    /// `expect(NEVER)` under a tiny `within`.
    Expect(u8),
    /// `recv_exact_bytes` of a megabyte under a tiny handle timeout.
    Exact(u8),
}

/// How the script reads what is left after the last read.
#[derive(Debug, Clone, Copy)]
enum Tail {
    AllBytes,
    AllText,
    BytesLoop,
}

#[derive(Debug, Clone)]
struct Case {
    steps: Vec<(Option<Probe>, Recv)>,
    /// Bytes after the last read's part, left for the tail.
    trailer: Vec<u8>,
    tail: Tail,
    /// Where the writer cuts the stream, and how long it pauses after each chunk (ms).
    cuts: Vec<(Index, u8)>,
}

impl Case {
    fn stream(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, read) in &self.steps {
            match read {
                Recv::Line { body, crlf } => {
                    out.extend_from_slice(body);
                    out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
                }
                Recv::Until { body, delim, .. } => {
                    out.extend_from_slice(body);
                    out.extend_from_slice(DELIMS[*delim].bytes);
                }
                Recv::Exact { body, .. } => out.extend_from_slice(body),
                Recv::Expect { filler, digits } => {
                    out.extend_from_slice(filler);
                    out.extend_from_slice(digits.as_bytes());
                    out.push(b';');
                }
            }
        }
        out.extend_from_slice(&self.trailer);
        out
    }

    /// The stream as the writer sends it: chunks, each followed by a pause.
    fn chunks(&self) -> Vec<(Vec<u8>, Duration)> {
        let stream = self.stream();
        let mut cuts: Vec<(usize, u8)> = self
            .cuts
            .iter()
            .map(|(i, d)| (i.index(stream.len() + 1), *d))
            .collect();
        cuts.sort();
        cuts.dedup_by_key(|(at, _)| *at);
        let mut chunks = Vec::new();
        let mut from = 0;
        for (at, pause) in cuts.into_iter().chain([(stream.len(), 0)]) {
            if at > from {
                chunks.push((
                    stream[from..at].to_vec(),
                    Duration::from_millis(u64::from(pause)),
                ));
                from = at;
            }
        }
        chunks
    }

    fn script(&self) -> String {
        let mut s = String::from(
            "fn show(b) { \"x\" + b.to_hex() }\n\
             let conn = connect(`127.0.0.1:${port}`);\n\
             conn.timeout = \"5s\";\n",
        );
        for (probe, read) in &self.steps {
            match probe {
                None => {}
                Some(Probe::Until(ms)) => s.push_str(&format!(
                    "conn.timeout = \"{ms}ms\";\n\
                     try {{ conn.recv_until(\"{NEVER}\"); print(\"no timeout\"); }} catch (e) {{ print(e.kind); }}\n\
                     conn.timeout = \"5s\";\n"
                )),
                Some(Probe::Expect(ms)) => s.push_str(&format!(
                    "try {{ within(\"{ms}ms\", || conn.expect(\"{NEVER}\")); print(\"no timeout\"); }} catch (e) {{ print(e.kind); }}\n"
                )),
                Some(Probe::Exact(ms)) => s.push_str(&format!(
                    "conn.timeout = \"{ms}ms\";\n\
                     try {{ conn.recv_exact_bytes(1048576); print(\"no timeout\"); }} catch (e) {{ print(e.kind); }}\n\
                     conn.timeout = \"5s\";\n"
                )),
            }
            let line = match read {
                Recv::Line { .. } => "print(show(conn.recv_line().to_blob()));".to_owned(),
                Recv::Until { delim, bytes, .. } => match (DELIMS[*delim].text, bytes) {
                    (Some(text), false) => {
                        format!("print(show(conn.recv_until({text}).to_blob()));")
                    }
                    (Some(text), true) if delim % 2 == 0 => {
                        format!("print(show(conn.recv_until_bytes({text})));")
                    }
                    _ => format!(
                        "print(show(conn.recv_until_bytes({})));",
                        DELIMS[*delim].blob
                    ),
                },
                Recv::Exact { body, bytes: true } => {
                    format!("print(show(conn.recv_exact_bytes({})));", body.len())
                }
                Recv::Exact { body, bytes: false } => {
                    format!("print(show(conn.recv_exact({}).to_blob()));", body.len())
                }
                Recv::Expect { .. } => format!(
                    "let m = conn.expect({EXPECT:?});\n\
                     print(`${{show(m.before.to_blob())}} ${{show(m.text.to_blob())}} ${{show(m.groups[0].to_blob())}}`);"
                ),
            };
            s.push_str(&line);
            s.push('\n');
        }
        s.push_str("conn.send_line(\"done\");\n");
        s.push_str(match self.tail {
            Tail::AllBytes => "print(show(conn.recv_all_bytes()));\n",
            Tail::AllText => "print(show(conn.recv_all().to_blob()));\n",
            Tail::BytesLoop => {
                "let all = blob();\n\
                 for i in 0..100000 {\n\
                 \x20   let b = conn.recv_bytes();\n\
                 \x20   if b.len() == 0 { break; }\n\
                 \x20   all.append(b);\n\
                 }\n\
                 print(show(all));\n"
            }
        });
        s
    }

    /// What the script prints when every read runs on the whole stream at once.
    fn expected(&self) -> Vec<String> {
        let stream = self.stream();
        let mut rest: &[u8] = &stream;
        let mut out = Vec::new();
        let expect = regex::bytes::Regex::new(EXPECT).unwrap_or_else(|e| panic!("{e}"));
        for (probe, read) in &self.steps {
            if probe.is_some() {
                out.push("timeout".to_owned());
            }
            let line = match read {
                Recv::Line { .. } => {
                    let (mut line, after) = split_at_delim(rest, b"\n");
                    rest = after;
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    show(&text(line))
                }
                Recv::Until { delim, bytes, .. } => {
                    let (found, after) = split_at_delim(rest, DELIMS[*delim].bytes);
                    rest = after;
                    // A delimiter that is not text is read with `recv_until_bytes` only.
                    if *bytes || DELIMS[*delim].text.is_none() {
                        show(found)
                    } else {
                        show(&text(found))
                    }
                }
                Recv::Exact { body, bytes } => {
                    let (found, after) = rest.split_at(body.len());
                    rest = after;
                    if *bytes {
                        show(found)
                    } else {
                        show(&text(found))
                    }
                }
                Recv::Expect { .. } => {
                    let caps = expect
                        .captures(rest)
                        .unwrap_or_else(|| panic!("the stream has no match for {EXPECT}"));
                    let (whole, group) = match (caps.get(0), caps.get(1)) {
                        (Some(w), Some(g)) => (w, g),
                        _ => panic!("{EXPECT} matched without its group"),
                    };
                    let line = format!(
                        "{} {} {}",
                        show(&text(&rest[..whole.start()])),
                        show(&text(whole.as_bytes())),
                        show(&text(group.as_bytes()))
                    );
                    rest = &rest[whole.end()..];
                    line
                }
            };
            out.push(line);
        }
        out.push(match self.tail {
            Tail::AllText => show(&text(rest)),
            Tail::AllBytes | Tail::BytesLoop => show(rest),
        });
        out
    }
}

/// What comes before the first `delim`, and what comes after it.
fn split_at_delim<'a>(data: &'a [u8], delim: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(delim.len()).position(|w| w == delim) {
        Some(i) => (&data[..i], &data[i + delim.len()..]),
        None => panic!("the stream lacks a delimiter it was built with"),
    }
}

/// Bytes as the text reads give them: UTF-8, invalid sequences as U+FFFD.
fn text(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes).into_owned().into_bytes()
}

/// As the script's `show`: `x` and lowercase hex.
fn show(bytes: &[u8]) -> String {
    let mut s = String::from("x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Pieces of a stream: words, multi-byte UTF-8, CR, LF, binary; never `~`.
fn bytes(max: usize, newlines: bool) -> impl Strategy<Value = Vec<u8>> {
    let atom = prop_oneof![
        3 => "[a-zA-Z0-9 ]{1,8}".prop_map(String::into_bytes),
        1 => prop::sample::select(vec!["é", "€", "😀", "\r", "\r\n", "\n", "|", "END", ";"])
            .prop_map(|s| s.as_bytes().to_vec()),
        2 => prop::collection::vec(any::<u8>(), 1..6),
    ];
    prop::collection::vec(atom, 0..max).prop_map(move |atoms| {
        atoms
            .concat()
            .into_iter()
            .filter(|&b| b != b'~' && (newlines || b != b'\n'))
            .collect()
    })
}

fn recv() -> impl Strategy<Value = Recv> {
    prop_oneof![
        (bytes(6, false), any::<bool>()).prop_map(|(body, crlf)| Recv::Line { body, crlf }),
        (bytes(6, true), 0..DELIMS.len(), any::<bool>())
            .prop_map(|(body, delim, bytes)| { Recv::Until { body, delim, bytes } }),
        (bytes(6, true), any::<bool>()).prop_map(|(body, bytes)| Recv::Exact { body, bytes }),
        ("[a-zA-Z ,.é€]{0,12}", "[0-9]{1,6}").prop_map(|(filler, digits)| Recv::Expect {
            filler: filler.into_bytes(),
            digits
        }),
    ]
}

fn probe() -> impl Strategy<Value = Option<Probe>> {
    prop_oneof![
        3 => Just(None),
        1 => (1u8..25).prop_map(|ms| Some(Probe::Until(ms))),
        1 => (1u8..25).prop_map(|ms| Some(Probe::Expect(ms))),
        1 => (1u8..25).prop_map(|ms| Some(Probe::Exact(ms))),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((probe(), recv()), 1..10),
        bytes(4, true),
        prop::sample::select(vec![Tail::AllBytes, Tail::AllText, Tail::BytesLoop]),
        prop::collection::vec((any::<Index>(), 0u8..4), 0..16),
    )
        .prop_map(|(steps, trailer, tail, cuts)| Case {
            steps,
            trailer,
            tail,
            cuts,
        })
}

/// A fixed seed and 64 cases unless the `PROPTEST_*` environment says otherwise; shrinking is
/// bounded because every case starts a process.
fn config() -> Config {
    let env = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            env.cases
        } else {
            64
        },
        rng_seed: match env.rng_seed {
            RngSeed::Random => RngSeed::Fixed(0x50c5_c21f),
            fixed => fixed,
        },
        failure_persistence: None,
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        ..env
    }
}

/// Sends `chunks` to the one client of `listener`, pausing after each, then waits for the
/// client's `done` line before closing. Gives up when `stop` is set (the scenario ended).
fn writer(
    listener: TcpListener,
    chunks: Vec<(Vec<u8>, Duration)>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut conn: TcpStream = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                        return Err("the scenario never connected".into());
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        let setup = conn
            .set_nonblocking(false)
            .and_then(|()| conn.set_nodelay(true))
            .and_then(|()| conn.set_read_timeout(Some(Duration::from_secs(10))));
        setup.map_err(|e| e.to_string())?;
        for (chunk, pause) in chunks {
            conn.write_all(&chunk).map_err(|e| format!("write: {e}"))?;
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        let mut heard = Vec::new();
        let mut buf = [0u8; 64];
        while !heard.ends_with(b"done\n") {
            match conn.read(&mut buf) {
                Ok(0) => return Err("the scenario closed before saying done".into()),
                Ok(n) => heard.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("waiting for done: {e}")),
            }
        }
        Ok(())
    })
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| TestCaseError::fail(e.to_string()))?;
    let port = listener
        .local_addr()
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .port();
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(listener, case.chunks(), stop.clone());
    let script = case.script();
    let out = Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(&script)
        .wall(Duration::from_secs(20))
        .run();
    stop.store(true, Ordering::SeqCst);
    let wrote = writing
        .join()
        .unwrap_or_else(|_| Err("the writer panicked".into()));
    let expected = case.expected();
    let got: Vec<&str> = out.stdout.lines().collect();
    if out.code != 0 || got != expected || wrote.is_err() {
        return Err(TestCaseError::fail(format!(
            "exit code {}, writer {wrote:?}\n--- script ---\n{script}--- expected ---\n{}\n--- stdout ---\n{}--- stderr ---\n{}",
            out.code,
            expected.join("\n"),
            out.stdout,
            out.stderr,
        )));
    }
    Ok(())
}

#[test]
fn random_chunks_and_read_mixes_match_a_one_shot_read() {
    let mut runner = TestRunner::new(config());
    if let Err(e) = runner.run(&case(), |case| check(&case)) {
        panic!("{e}");
    }
}

#[test]
fn the_model_reads_a_known_case_as_sockscript_should() {
    // The model itself, on a case small enough to check by eye.
    let case = Case {
        steps: vec![
            (
                Some(Probe::Until(1)),
                Recv::Line {
                    body: b"hi\r".to_vec(),
                    crlf: true,
                },
            ),
            (
                None,
                Recv::Until {
                    body: b"a\xffb".to_vec(),
                    delim: 1,
                    bytes: false,
                },
            ),
            (
                None,
                Recv::Expect {
                    filler: b"n=".to_vec(),
                    digits: "42".into(),
                },
            ),
        ],
        trailer: b"\x00!".to_vec(),
        tail: Tail::AllBytes,
        cuts: vec![],
    };
    assert_eq!(case.stream(), b"hi\r\r\na\xffb|n=42;\x00!");
    assert_eq!(
        case.expected(),
        [
            "timeout",
            "x68690d",
            "x61efbfbd62",
            "x6e3d x34323b x3432",
            "x0021"
        ]
    );
}
