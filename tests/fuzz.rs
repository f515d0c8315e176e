//! Bad scripts exit 0, 1, 3 or 4 with a diagnostic, never a panic or a hang. A seeded generator
//! writes batches of scripts (API calls with wrong argument types and counts, random tokens,
//! and mangled copies of `scenarios/*.rhai`) and runs each batch once in test mode,
//! `-j 2 --max-time 2s --timeout 200ms`. Every scenario must end with a status line within its
//! `--max-time`, and the run with one of the documented exit codes.
//!
//! `SOCKSCRIPT_FUZZ_CASES` sets how many scripts (default 1000, a few seconds) and
//! `SOCKSCRIPT_FUZZ_SEED` the seed (default fixed, so CI runs the same scripts every time).
//! A script that breaks a rule is saved under the target directory's `fuzz-found/`; copy it
//! into `tests/fuzz/` with an `// exit: N` header and it runs in every suite from then on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use crate::harness::{expected_exit, rhai_files, root, Output, Test};

const DEFAULT_CASES: usize = 1000;
const DEFAULT_SEED: u64 = 0x5eed_f022;
const BATCH: usize = 100;
/// The options every fuzz run uses; `--max-time` bounds each scenario, the limits keep a
/// runaway script small.
const OPTIONS: &[&str] = &[
    "--max-time",
    "2s",
    "--timeout",
    "200ms",
    "--limit",
    "tasks=64",
    "--limit",
    "handles=256",
    "--limit",
    "data=1MiB",
];

/// SplitMix64: small, seedable, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Free functions: the API, rhai built-ins, and names that do not exist.
const FUNCTIONS: &[&str] = &[
    "listen",
    "connect",
    "udp",
    "udp_connect",
    "ws_connect",
    "ws_listen",
    "spawn",
    "channel",
    "sleep",
    "within",
    "wait_for",
    "env",
    "assert",
    "assert_eq",
    "assert_ne",
    "assert_match",
    "assert_err",
    "fail",
    "print",
    "hex",
    "hexdump",
    "pack",
    "unpack",
    "unpack_from",
    "calcsize",
    "blob",
    "to_hex",
    "parse_int",
    "type_of",
    "eval",
    "Fn",
    "open",
    "read_file",
    "system",
    "no_such_function",
];

/// Methods and properties of the handles, and of strings, arrays and maps.
const METHODS: &[&str] = &[
    "accept",
    "close",
    "send",
    "send_line",
    "recv",
    "recv_line",
    "recv_until",
    "recv_exact",
    "recv_all",
    "expect",
    "recv_bytes",
    "recv_exact_bytes",
    "recv_until_bytes",
    "recv_all_bytes",
    "shutdown",
    "send_to",
    "recv_from",
    "recv_from_bytes",
    "recv_message",
    "ping",
    "join",
    "recv",
    "to_hex",
    "as_string",
    "to_blob",
    "len",
    "push",
    "call",
    "trim",
    "split",
    "sub_string",
];

const PROPERTIES: &[&str] = &[
    "addr",
    "port",
    "host",
    "peer",
    "local",
    "peer_ip",
    "peer_port",
    "local_ip",
    "local_port",
    "timeout",
    "closed",
    "tls",
    "cert_pem",
    "response",
    "request",
    "close_code",
    "close_reason",
    "url",
    "done",
    "name",
    "kind",
    "nope",
];

/// Values of every type a call might get, wrong ones most of all. Addresses are this
/// machine's, on port 0 (the OS picks) or on low ports where nothing listens: a fuzz script
/// must never reach another test's peer.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "42",
    "65536",
    "1048576",
    "9223372036854775807",
    "-9223372036854775808",
    "0.5",
    "-1.0",
    "1e300",
    "true",
    "false",
    "()",
    "\"\"",
    "\"x\"",
    "\"127.0.0.1:0\"",
    "\"127.0.0.1:1\"",
    "\"127.0.0.1:9\"",
    "\"ws://127.0.0.1:9/\"",
    "\"[::1]:0\"",
    "\"localhost:9\"",
    "\"unix:fz.sock\"",
    "\"no.such.host.invalid:80\"",
    "\"127.0.0.1\"",
    "\"10ms\"",
    "\"0\"",
    "\"-5s\"",
    "\"1h\"",
    "\"99999999999999999999s\"",
    "\"self-signed\"",
    "\"\\r\\n\"",
    "\"(\"",
    "\"é€😀\"",
    "\">H\"",
    "\"<3Q\"",
    "\"999999999s\"",
    "\"18446744073709551615s\"",
    "[]",
    "[1, \"a\", ()]",
    "#{}",
    "#{timeout: \"10ms\"}",
    "#{timeout: -1}",
    "#{tls: true}",
    "#{tls: \"self-signed\"}",
    "#{tls: #{ca: \"garbage\", insecure: true, alpn: [1]}}",
    "#{unlink: 7}",
    "#{bogus: 1}",
    "blob(3, 0)",
    "blob()",
    "hex(\"zz\")",
    "|| 1",
    "|x| x",
    "|| throw \"up\"",
    "|| sleep(\"5ms\")",
];

/// Names the API soup binds at its start, so later calls have handles to misuse.
const HANDLES: &[&str] = &["server", "c", "s", "u", "ch", "t", "b", "m", "a", "e"];

const PRELUDE: &str = r#"let server = (); let c = (); let s = (); let u = (); let e = ();
try { server = listen("127.0.0.1:0"); c = connect(server.addr); s = server.accept(); } catch (err) { e = err; }
try { u = udp("127.0.0.1:0"); } catch (err) { e = err; }
let ch = channel();
let t = spawn(|| 1);
let b = blob(4, 1);
let m = #{a: 1};
let a = [1, 2];
"#;

fn value(rng: &mut Rng) -> String {
    if rng.chance(25) {
        rng.pick(HANDLES).to_string()
    } else {
        rng.pick(VALUES).to_string()
    }
}

fn args(rng: &mut Rng) -> String {
    let n = rng.below(4);
    (0..n).map(|_| value(rng)).collect::<Vec<_>>().join(", ")
}

fn statement(rng: &mut Rng, depth: usize) -> String {
    let call = match rng.below(6) {
        0 | 1 => format!("{}({})", rng.pick(FUNCTIONS), args(rng)),
        2 | 3 => format!("{}.{}({})", rng.pick(HANDLES), rng.pick(METHODS), args(rng)),
        4 => format!("print({}.{})", rng.pick(HANDLES), rng.pick(PROPERTIES)),
        _ => format!(
            "{}.{} = {}",
            rng.pick(HANDLES),
            rng.pick(PROPERTIES),
            value(rng)
        ),
    };
    let call = if depth < 2 && rng.chance(10) {
        format!("spawn(|| {{ {}; }})", statement(rng, depth + 1))
    } else if depth < 2 && rng.chance(10) {
        format!("within(\"50ms\", || {{ {}; }})", statement(rng, depth + 1))
    } else {
        call
    };
    // Mostly caught, so that later calls run too.
    if rng.chance(80) {
        format!("try {{ {call}; }} catch (err) {{ print(err); }}")
    } else {
        format!("{call};")
    }
}

/// A prelude of real handles, then calls with random arguments.
fn api_soup(rng: &mut Rng) -> String {
    let mut out = String::from(PRELUDE);
    for _ in 0..1 + rng.below(16) {
        out.push_str(&statement(rng, 0));
        out.push('\n');
    }
    out
}

const TOKENS: &[&str] = &[
    "let",
    "const",
    "fn",
    "if",
    "else",
    "while",
    "for",
    "in",
    "do",
    "until",
    "break",
    "continue",
    "return",
    "throw",
    "try",
    "catch",
    "import",
    "export",
    "as",
    "private",
    "switch",
    "this",
    "global",
    "true",
    "false",
    "Fn",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    ",",
    ".",
    "::",
    "=>",
    "?.",
    "??",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "<<",
    "&",
    "|",
    "^",
    "==",
    "!=",
    "<=",
    "&&",
    "||",
    "=",
    "+=",
    "..",
    "..=",
    "#{",
    "||",
    "0",
    "1",
    "-7",
    "3.5",
    "\"s\"",
    "`t ${1}`",
    "'c'",
    "x",
    "y",
    "conn",
    "listen",
    "connect",
    "spawn",
    "recv_line",
    "send",
    "sleep",
    "print",
    "\"127.0.0.1:0\"",
    "\"5ms\"",
    "//",
    "/*",
    "*/",
    "\n",
];

/// Tokens of rhai and of the API in random order: mostly compile errors.
fn token_soup(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..1 + rng.below(40) {
        let token = rng.pick(TOKENS);
        // A `loop` only ends at `--max-time`: allowed, but rarely.
        let token = if rng.chance(1) { "loop" } else { token };
        out.push_str(token);
        out.push(' ');
    }
    out
}

/// One of the example scenarios with one to three lines or characters broken.
fn mangled(rng: &mut Rng, sources: &[String]) -> String {
    let mut lines: Vec<String> = rng.pick(sources).lines().map(str::to_owned).collect();
    for _ in 0..1 + rng.below(3) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        match rng.below(6) {
            0 => lines.truncate(i),
            1 => {
                lines.remove(i);
            }
            2 => {
                let line = lines[i].clone();
                lines.insert(rng.below(lines.len() + 1), line);
            }
            3 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            4 => {
                // Cut a line at a random character.
                let chars: Vec<char> = lines[i].chars().collect();
                let at = rng.below(chars.len() + 1);
                lines[i] = chars[..at].iter().collect();
            }
            _ => {
                // Put a token or a wrong value in place of a word.
                let words: Vec<&str> = lines[i].split(' ').collect();
                let at = rng.below(words.len());
                let with = if rng.chance(50) {
                    rng.pick(TOKENS).to_string()
                } else {
                    value(rng)
                };
                let mut words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
                words[at] = with;
                lines[i] = words.join(" ");
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn generate(rng: &mut Rng, sources: &[String]) -> String {
    match rng.below(10) {
        0..=3 => api_soup(rng),
        4..=5 => token_soup(rng),
        _ => mangled(rng, sources),
    }
}

/// What a run in test mode must show for `names`: no panic, a documented exit code, a status
/// line per scenario that ended within `--max-time` (plus slack for a slow machine), and a
/// summary that adds up. Returns the rules broken.
fn broken_rules(out: &Output, names: &[String]) -> Vec<String> {
    let mut broken = Vec::new();
    if out.stderr.contains("panicked at") || out.stderr.contains("RUST_BACKTRACE") {
        broken.push("sockscript panicked".to_owned());
    }
    if ![0, 1, 3, 4].contains(&out.code) {
        broken.push(format!("exit code {}", out.code));
    }
    let status = Regex::new(
        r"(?m)^(\S+\.rhai): (ok|FAILED|ERROR|COMPILE ERROR) \(\d+ connections?, (\d+) ms\)$",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    for caps in status.captures_iter(&out.stderr) {
        let ms: u64 = caps[3].parse().unwrap_or(u64::MAX);
        if ms > 3500 {
            broken.push(format!("{} ran {ms} ms, past --max-time 2s", &caps[1]));
        }
        seen.push(caps[1].to_owned());
    }
    for name in names {
        if !seen.iter().any(|s| s.ends_with(name.as_str())) {
            broken.push(format!("{name}: no status line"));
        }
    }
    let summary = Regex::new(r"(?m)^(\d+) passed, (\d+) failed$").unwrap_or_else(|e| panic!("{e}"));
    match summary.captures(&out.stderr) {
        Some(c)
            if c[1].parse::<usize>().unwrap_or(0) + c[2].parse::<usize>().unwrap_or(0)
                == names.len() => {}
        _ => broken.push(format!("no summary adding up to {} scenarios", names.len())),
    }
    broken
}

fn run_batch(cases: &[(String, String)]) -> Output {
    let mut test = Test::new().args(&["--test", "-j", "2"]).args(OPTIONS);
    for (name, source) in cases {
        test = test.write(name, source);
    }
    // Two scenarios at a time, each stopped at 2 s: the batch ends well within this.
    let wall = Duration::from_secs(10 + 2 * cases.len() as u64 / 2);
    test.path(".").wall(wall).run()
}

/// Run each case of a batch that broke a rule on its own, and keep the ones that break one
/// again (or all of them, when none does alone) where a developer can find them.
fn save_culprits(seed: u64, cases: &[(String, String)]) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-found");
    let _ = std::fs::create_dir_all(&dir);
    let mut culprits: Vec<&(String, String)> = cases
        .iter()
        .filter(|case| {
            !broken_rules(
                &run_batch(std::slice::from_ref(case)),
                std::slice::from_ref(&case.0),
            )
            .is_empty()
        })
        .collect();
    if culprits.is_empty() {
        culprits = cases.iter().collect();
    }
    culprits
        .into_iter()
        .map(|(name, source)| {
            let path = dir.join(format!("{seed:x}-{name}"));
            let _ = std::fs::write(&path, source);
            path
        })
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        }
        Err(_) => default,
    }
}

#[test]
fn generated_scripts_never_panic_or_hang() {
    let total = env_number("SOCKSCRIPT_FUZZ_CASES", DEFAULT_CASES as u64) as usize;
    let seed = env_number("SOCKSCRIPT_FUZZ_SEED", DEFAULT_SEED);
    let examples = root().join("scenarios");
    let sources: Vec<String> = rhai_files(&examples)
        .into_iter()
        .filter(|p| p.parent() == Some(examples.as_path()))
        .map(|p| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!sources.is_empty(), "no scenarios to mangle");
    let mut rng = Rng(seed);
    let mut done = 0;
    while done < total {
        let n = BATCH.min(total - done);
        let cases: Vec<(String, String)> = (done..done + n)
            .map(|i| (format!("case{i:05}.rhai"), generate(&mut rng, &sources)))
            .collect();
        let names: Vec<String> = cases.iter().map(|(name, _)| name.clone()).collect();
        let out = run_batch(&cases);
        let broken = broken_rules(&out, &names);
        if !broken.is_empty() {
            let saved = save_culprits(seed, &cases);
            panic!(
                "seed {seed:#x}, cases {done}..{}: {}\nsaved: {saved:#?}\n--- stderr (last 4000 bytes) ---\n{}",
                done + n,
                broken.join("; "),
                tail(&out.stderr, 4000)
            );
        }
        done += n;
    }
}

fn tail(text: &str, max: usize) -> &str {
    let mut from = text.len().saturating_sub(max);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    &text[from..]
}

/// Run each file in run mode with the fuzz options: no panic, the exit code of its
/// `// exit: N` header, a diagnostic when it is not 0, and quickly.
fn replay(files: &[PathBuf]) {
    assert!(!files.is_empty(), "no regression cases");
    let mut wrong = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{e}"));
        let out = Test::new()
            .args(OPTIONS)
            .file(file)
            .wall(Duration::from_secs(10))
            .run();
        let expected = expected_exit(&source, file);
        let diagnosed = out.code == 0 || out.stderr.contains('×');
        if out.stderr.contains("panicked at")
            || out.code != expected
            || !diagnosed
            || out.elapsed > Duration::from_secs(4)
        {
            wrong.push(format!(
                "{}: expected exit {expected}, got {} after {:?}\n{}",
                file.display(),
                out.code,
                out.elapsed,
                tail(&out.stderr, 1500)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn what_the_fuzzer_found_stays_fixed() {
    replay(&rhai_files(&root().join("tests/fuzz")));
}

#[test]
fn the_generator_is_deterministic_and_varied() {
    let sources = vec!["let a = 1;\nprint(a);\n".to_owned()];
    let batch = |seed| {
        let mut rng = Rng(seed);
        (0..50)
            .map(|_| generate(&mut rng, &sources))
            .collect::<Vec<_>>()
    };
    assert_eq!(batch(7), batch(7));
    assert_ne!(batch(7), batch(8));
    let distinct: std::collections::HashSet<String> = batch(7).into_iter().collect();
    assert!(
        distinct.len() > 40,
        "only {} distinct scripts",
        distinct.len()
    );
}
