//! The stream API (`send*`, `recv*`, `expect`, `shutdown`, `close`, `closed`, `timeout`, and
//! `interactive`), registered once for every script type whose reads and writes go to a
//! [`Conn`]: a connection, a process's pipes. A WebSocket reads whole messages, not bytes, so
//! it has its own reads (`script::ws`) and shares only what every [`Handle`] has: `timeout`,
//! `closed`, `close()`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use rhai::{Blob, Dynamic, Engine, ImmutableString, Map, NativeCallContext, INT};

use super::context::call;
use super::error::{blob, script_error, text, ScriptResult};
use super::net::{count, ok};
use super::value::{deadline, deadline_value};
use crate::net::{Call, Conn, ErrorKind};

/// What every conversation handle has, whatever its reads return: a deadline of its own,
/// whether it is closed, and closing it. A byte stream ([`Stream`]) and a WebSocket share
/// these, registered once by [`register_handle`].
pub(super) trait Handle: Clone + Send + Sync + 'static {
    fn timeout(&self) -> Option<Duration>;
    fn set_timeout(&self, d: Duration);
    fn is_closed(&self) -> bool;
    /// Close now, the handle's own way (a WebSocket does its closing handshake).
    fn close(&self, call: &Call);
}

/// A script handle with the stream API.
pub(super) trait Stream: Handle {
    /// The stream its calls read and write.
    fn stream(&self) -> &Conn;
}

impl Handle for Conn {
    fn timeout(&self) -> Option<Duration> {
        Conn::timeout(self)
    }

    fn set_timeout(&self, d: Duration) {
        Conn::set_timeout(self, d)
    }

    fn is_closed(&self) -> bool {
        Conn::is_closed(self)
    }

    fn close(&self, call: &Call) {
        Conn::close(self, call)
    }
}

impl Stream for Conn {
    fn stream(&self) -> &Conn {
        self
    }
}

/// Register `closed`, `timeout` and `close()` on `H`.
pub(super) fn register_handle<H: Handle>(engine: &mut Engine) {
    engine
        .register_get("closed", |h: &mut H| h.is_closed())
        .register_get("timeout", |h: &mut H| deadline_value(h.timeout()))
        .register_set("timeout", |h: &mut H, d: Dynamic| -> ScriptResult<()> {
            h.set_timeout(deadline("timeout", &d)?);
            Ok(())
        })
        .register_fn("close", |ctx: NativeCallContext, h: H| h.close(&call(&ctx)));
}

fn byte_count(op: &str, n: INT) -> ScriptResult<usize> {
    usize::try_from(n).map_err(|_| {
        script_error(
            ErrorKind::InvalidArgument,
            op,
            format!("{op}: a byte count cannot be negative ({n})"),
        )
    })
}

/// The most regexes `expect` keeps compiled per thread.
const REGEX_CACHE: usize = 64;

thread_local! {
    static REGEXES: RefCell<HashMap<String, regex::bytes::Regex>> = RefCell::new(HashMap::new());
}

pub(super) fn cached_regex(op: &str, pattern: &str) -> ScriptResult<regex::bytes::Regex> {
    REGEXES.with(|cache| {
        if let Some(re) = cache.borrow().get(pattern) {
            return Ok(re.clone());
        }
        let re = regex::bytes::Regex::new(pattern).map_err(|e| {
            script_error(
                ErrorKind::InvalidArgument,
                op,
                format!("{op}: invalid regex: {e}"),
            )
        })?;
        let mut cache = cache.borrow_mut();
        if cache.len() >= REGEX_CACHE {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), re.clone());
        Ok(re)
    })
}

/// The terminal's input, read on a thread of its own (a blocking read cannot be stopped) and
/// kept between `interactive()` calls, so a line typed while none runs is not lost to a reader
/// left waiting. An empty chunk is Ctrl-D (the terminal says end of input; it may go on after).
fn terminal_input() -> &'static Mutex<Option<UnboundedReceiver<Vec<u8>>>> {
    static INPUT: OnceLock<Mutex<Option<UnboundedReceiver<Vec<u8>>>>> = OnceLock::new();
    INPUT.get_or_init(|| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = std::thread::Builder::new()
            .name("sockscript stdin".into())
            .spawn(move || {
                use std::io::Read as _;
                let mut buf = [0u8; 4096];
                loop {
                    let chunk = match std::io::stdin().read(&mut buf) {
                        Ok(n) => buf[..n].to_vec(),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    if tx.send(chunk).is_err() {
                        break;
                    }
                }
            });
        Mutex::new(reader.ok().map(|_| rx))
    })
}

/// `s.interactive()`: the terminal talks to the stream, as `nc` does, until the peer closes
/// or the user presses Ctrl-D; only in run mode with a terminal on stdin. Returns `true` when
/// the peer closed, `false` on Ctrl-D.
///
/// ```rhai
/// let conn = connect("127.0.0.1:6379");
/// conn.send_line("PING");
/// conn.interactive();   // type commands; Ctrl-D hands back to the script
/// ```
///
/// What arrives is shown with its control characters escaped (a peer cannot drive the
/// terminal) and the secrets masked, chunk by chunk.
pub(super) fn register_interactive<S: Stream>(
    engine: &mut Engine,
    run_mode: bool,
    redactor: &crate::redact::Redactor,
) {
    let redactor = redactor.clone();
    engine.register_fn(
        "interactive",
        move |ctx: NativeCallContext, s: S| -> ScriptResult<bool> {
            let refuse = |why: &str| {
                Err(script_error(
                    ErrorKind::InvalidArgument,
                    "interactive",
                    format!("interactive: {why}"),
                ))
            };
            if !run_mode {
                return refuse(
                    "test mode captures the output, so there is no terminal to hand over: \
                     run the one file without `--test`",
                );
            }
            if !std::io::stdin().is_terminal() {
                return refuse("stdin is not a terminal, so nobody can type to the stream");
            }
            let input = terminal_input();
            let taken = input.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some(mut rx) = taken else {
                return refuse("another task has the terminal");
            };
            let shown = s.stream().interact(&call(&ctx), &mut rx, |bytes| {
                let text = String::from_utf8_lossy(bytes);
                let text = redactor.str(&text);
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(crate::escape::terminal(&text).as_bytes());
                let _ = out.flush();
            });
            *input.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
            ok(shown)
        },
    );
}

/// What `expect` returns: `#{text, groups}`, the first group at index 0 (`()` where a group
/// took no part in the match).
pub(super) fn match_map<B: Into<Vec<u8>>>(matched: B, groups: Vec<Option<B>>) -> Map {
    let mut map = Map::new();
    map.insert("text".into(), text(matched).into());
    let groups: rhai::Array = groups
        .into_iter()
        .map(|g| g.map_or(Dynamic::UNIT, |g| text(g).into()))
        .collect();
    map.insert("groups".into(), groups.into());
    map
}

/// Register the stream API on `S`.
pub(super) fn register<S: Stream>(engine: &mut Engine) {
    register_handle::<S>(engine);
    engine
        // Sending.
        .register_fn(
            "send",
            |ctx: NativeCallContext, s: S, data: ImmutableString| -> ScriptResult<INT> {
                ok(s.stream().send(&call(&ctx), "send", data.as_bytes())).map(count)
            },
        )
        .register_fn(
            "send",
            |ctx: NativeCallContext, s: S, data: Blob| -> ScriptResult<INT> {
                super::net::send_bytes(s.stream(), &call(&ctx), &data)
            },
        )
        .register_fn(
            "send_line",
            |ctx: NativeCallContext, s: S, line: ImmutableString| -> ScriptResult<INT> {
                let mut data = Vec::with_capacity(line.len() + 1);
                data.extend_from_slice(line.as_bytes());
                data.push(b'\n');
                ok(s.stream().send(&call(&ctx), "send_line", &data)).map(count)
            },
        )
        // Receiving, as text.
        .register_fn(
            "recv",
            |ctx: NativeCallContext, s: S| -> ScriptResult<String> {
                ok(s.stream().recv(&call(&ctx), "recv", true)).map(text)
            },
        )
        .register_fn(
            "recv_line",
            |ctx: NativeCallContext, s: S| -> ScriptResult<String> {
                ok(s.stream().recv_line(&call(&ctx), "recv_line")).map(text)
            },
        )
        .register_fn(
            "recv_until",
            |ctx: NativeCallContext, s: S, delim: ImmutableString| -> ScriptResult<String> {
                ok(s.stream()
                    .recv_until(&call(&ctx), "recv_until", delim.as_bytes()))
                .map(text)
            },
        )
        .register_fn(
            "recv_exact",
            |ctx: NativeCallContext, s: S, n: INT| -> ScriptResult<String> {
                ok(s.stream()
                    .recv_exact(&call(&ctx), "recv_exact", byte_count("recv_exact", n)?))
                .map(text)
            },
        )
        .register_fn(
            "recv_all",
            |ctx: NativeCallContext, s: S| -> ScriptResult<String> {
                ok(s.stream().recv_all(&call(&ctx), "recv_all")).map(text)
            },
        )
        .register_fn(
            "expect",
            |ctx: NativeCallContext, s: S, pattern: ImmutableString| -> ScriptResult<Map> {
                let re = cached_regex("expect", &pattern)?;
                let m = ok(s.stream().expect(&call(&ctx), "expect", &re))?;
                let mut map = match_map(m.text, m.groups);
                map.insert("before".into(), text(m.before).into());
                Ok(map)
            },
        )
        // Receiving, as Blobs.
        .register_fn(
            "recv_bytes",
            |ctx: NativeCallContext, s: S| -> ScriptResult<Blob> {
                ok(s.stream().recv(&call(&ctx), "recv_bytes", false)).map(blob)
            },
        )
        .register_fn(
            "recv_exact_bytes",
            |ctx: NativeCallContext, s: S, n: INT| -> ScriptResult<Blob> {
                ok(s.stream().recv_exact(
                    &call(&ctx),
                    "recv_exact_bytes",
                    byte_count("recv_exact_bytes", n)?,
                ))
                .map(blob)
            },
        )
        .register_fn(
            "recv_until_bytes",
            |ctx: NativeCallContext, s: S, delim: Blob| -> ScriptResult<Blob> {
                ok(s.stream()
                    .recv_until(&call(&ctx), "recv_until_bytes", &delim))
                .map(blob)
            },
        )
        .register_fn(
            "recv_until_bytes",
            |ctx: NativeCallContext, s: S, delim: ImmutableString| -> ScriptResult<Blob> {
                ok(s.stream()
                    .recv_until(&call(&ctx), "recv_until_bytes", delim.as_bytes()))
                .map(blob)
            },
        )
        .register_fn(
            "recv_all_bytes",
            |ctx: NativeCallContext, s: S| -> ScriptResult<Blob> {
                ok(s.stream().recv_all(&call(&ctx), "recv_all_bytes")).map(blob)
            },
        )
        // Ending.
        .register_fn(
            "shutdown",
            |ctx: NativeCallContext, s: S| -> ScriptResult<()> {
                ok(s.stream().shutdown(&call(&ctx)))
            },
        );
}
