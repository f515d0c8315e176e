//! How failures travel through rhai. Socket errors become catchable maps; assertion failures and
//! cancellation become `ErrorTerminated` with an [`Abort`] payload, which `try`/`catch` cannot
//! swallow. Positions stay rhai positions here; `diagnostic.rs` turns them into spans.
//! Every kind put in or read from an error map is a [`crate::net::ErrorKind`]; a map a script
//! throws may carry a kind of its own, which passes through as it is.

use rhai::{Blob, Dynamic, EvalAltResult, Map, Position};

use crate::net::{ErrorKind, NetError};

/// Why a script stopped in a way it may not catch.
#[derive(Debug, Clone)]
pub enum Abort {
    /// An assertion did not hold (or `fail` was called).
    Assertion(AssertionFailure),
    /// The scenario was cancelled: see the session's cancel reason.
    Cancelled,
    /// A CPU-bound stretch ran past the deadline of the `within` at this depth.
    WithinExpired(usize),
    /// A limit that sockscript checks outside rhai was reached; the message names the flag.
    Limit(String),
}

/// A failed `assert*` or `fail`, with where it was called.
#[derive(Debug, Clone)]
pub struct AssertionFailure {
    pub message: String,
    /// Labelled values to show: `("left", "\"a\"")`, `("right", "\"b\"")`.
    pub values: Vec<(String, String)>,
    pub position: Position,
    /// The module file the position is in; `None` when it is in the scenario itself.
    pub file: Option<String>,
    /// The function called (`assert_eq`), whose name is at the position.
    pub function: String,
    /// What the diagnostic says at the position.
    pub label: &'static str,
}

pub type ScriptResult<T> = Result<T, Box<EvalAltResult>>;

pub fn abort(abort: Abort, position: Position) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(abort), position).into()
}

/// The payload of a non-catchable stop raised by sockscript, if this is one.
pub fn abort_of(err: &EvalAltResult) -> Option<Abort> {
    match err.unwrap_inner() {
        EvalAltResult::ErrorTerminated(token, _) => token.clone().try_cast::<Abort>(),
        _ => None,
    }
}

/// Turn a socket error into what the script sees: a catchable map, or an uncatchable stop.
pub fn raise(err: NetError) -> Box<EvalAltResult> {
    if err.kind == ErrorKind::Cancelled {
        return abort(Abort::Cancelled, Position::NONE);
    }
    EvalAltResult::ErrorRuntime(error_map(&err).into(), Position::NONE).into()
}

/// `#{kind, message, op, addr}`, plus `waiting_for` and `received` when a read gave up, and
/// `conn` (the connection's id in the transcript) when the call was on a connection.
pub fn error_map(err: &NetError) -> Map {
    let mut map = Map::new();
    map.insert("kind".into(), err.kind.as_str().into());
    map.insert("message".into(), err.message.clone().into());
    map.insert("op".into(), err.op.into());
    map.insert(
        "addr".into(),
        err.addr.clone().map_or(Dynamic::UNIT, Dynamic::from),
    );
    if let Some(w) = &err.waiting_for {
        map.insert("waiting_for".into(), w.clone().into());
    }
    if let Some(d) = err.deadline {
        map.insert("deadline".into(), d.as_str().into());
    }
    if let Some(r) = &err.received {
        map.insert("received".into(), Dynamic::from_blob(r.to_vec()));
    }
    if let Some(conn) = err.conn {
        map.insert("conn".into(), rhai::INT::from(conn).into());
    }
    map
}

/// A script-level error with a kind, for bad arguments to API calls and the limits the script
/// layer checks.
pub fn script_error(kind: ErrorKind, op: &str, message: impl Into<String>) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("kind".into(), kind.as_str().into());
    map.insert("message".into(), message.into().into());
    map.insert("op".into(), op.into());
    map.insert("addr".into(), Dynamic::UNIT);
    EvalAltResult::ErrorRuntime(map.into(), Position::NONE).into()
}

/// The kind of a catchable error as sockscript knows it: `None` for a map a script threw with a
/// `kind` of its own.
pub fn catchable_kind(err: &EvalAltResult) -> Option<ErrorKind> {
    let map = catchable_map(err);
    ErrorKind::parse(&map.get("kind")?.to_string())
}

/// The map `catch (e)` and `assert_err` hand to scripts for any catchable error: sockscript's
/// own maps as they are, a thrown map with a `kind` as it is, anything else as kind `script`.
pub fn catchable_map(err: &EvalAltResult) -> Map {
    if let EvalAltResult::ErrorRuntime(value, _) = err.unwrap_inner() {
        if let Some(map) = value.read_lock::<Map>() {
            if map.contains_key("kind") {
                return map.clone();
            }
        }
        let mut map = Map::new();
        map.insert("kind".into(), ErrorKind::Script.as_str().into());
        map.insert("message".into(), value.to_string().into());
        map.insert("value".into(), value.clone());
        return map;
    }
    let mut map = Map::new();
    map.insert("kind".into(), ErrorKind::Script.as_str().into());
    map.insert("message".into(), plain_message(err.unwrap_inner()).into());
    map
}

/// rhai's message without its trailing ` (line N, position M)`.
pub fn plain_message(err: &EvalAltResult) -> String {
    let text = err.to_string();
    match text.rfind(" (line ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

/// What a received payload looks like to a script: text (lossy UTF-8) or a Blob.
/// Received bytes as a script string (invalid UTF-8 becomes U+FFFD). Bytes that own their
/// whole buffer (a large exact read) become the string without a copy.
pub fn text(bytes: impl Into<Vec<u8>>) -> String {
    String::from_utf8(bytes.into())
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Received bytes as a Blob; without a copy when they own their whole buffer.
pub fn blob(bytes: impl Into<Vec<u8>>) -> Blob {
    bytes.into()
}
