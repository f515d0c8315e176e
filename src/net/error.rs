//! The socket layer's one error type: a kind a script can branch on, the operation, the address,
//! and whatever had arrived when a read gave up. The script layer turns it into a catchable map.
//!
//! [`ErrorKind`] is the one list of error kinds, from `net` up to the diagnostic: the script
//! layer raises its own errors with it (`invalid_argument`, `script`), and every other layer
//! chooses and compares kinds through it. [`ErrorKind::as_str`] is the one place a kind is
//! spelled; those names are a contract with scripts (`e.kind`).

use std::fmt;
use std::io;
use std::time::Duration;

use bytes::Bytes;

/// What went wrong, as the snake_case names scripts see in `e.kind`.
///
/// Most kinds come from sockets; `InvalidArgument` and `Script` are raised only by the script
/// layer, which `net` never does, but they are kinds scripts branch on all the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    AddrInUse,
    AddrNotAvailable,
    ConnectionRefused,
    ConnectionReset,
    Timeout,
    Eof,
    Dns,
    InvalidAddress,
    PermissionDenied,
    Closed,
    TooLong,
    Tls,
    /// A WebSocket handshake was refused (the HTTP status and the start of the body say
    /// why), or the peer broke the WebSocket protocol.
    Websocket,
    /// A limit of the scenario was reached (open sockets, tasks, data sizes).
    Limit,
    Io,
    /// An API call was given a bad argument (a negative duration, an unknown option).
    InvalidArgument,
    /// A peer's reply broke its protocol, as a protocol module (`std/resp`, `std/http`,
    /// `std/lines`) reads it: a RESP reply that starts with an unknown byte, an HTTP response
    /// without a status line. Not `invalid_argument`: the script called nothing wrongly.
    Protocol,
    /// A script error that is no sockscript kind: rhai's own errors, and thrown values that
    /// are not maps with a `kind`, as `catch` sees them.
    Script,
    /// The scenario was cancelled (a task failed, the main script ended, `--max-time`):
    /// never shown to scripts, which cannot catch it.
    Cancelled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::AddrInUse => "addr_in_use",
            ErrorKind::AddrNotAvailable => "addr_not_available",
            ErrorKind::ConnectionRefused => "connection_refused",
            ErrorKind::ConnectionReset => "connection_reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Eof => "eof",
            ErrorKind::Dns => "dns",
            ErrorKind::InvalidAddress => "invalid_address",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Closed => "closed",
            ErrorKind::TooLong => "too_long",
            ErrorKind::Tls => "tls",
            ErrorKind::Websocket => "websocket",
            ErrorKind::Limit => "limit",
            ErrorKind::Io => "io",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Script => "script",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// Every kind, in the order of the enum.
    pub const ALL: [ErrorKind; 19] = [
        ErrorKind::AddrInUse,
        ErrorKind::AddrNotAvailable,
        ErrorKind::ConnectionRefused,
        ErrorKind::ConnectionReset,
        ErrorKind::Timeout,
        ErrorKind::Eof,
        ErrorKind::Dns,
        ErrorKind::InvalidAddress,
        ErrorKind::PermissionDenied,
        ErrorKind::Closed,
        ErrorKind::TooLong,
        ErrorKind::Tls,
        ErrorKind::Websocket,
        ErrorKind::Limit,
        ErrorKind::Io,
        ErrorKind::InvalidArgument,
        ErrorKind::Protocol,
        ErrorKind::Script,
        ErrorKind::Cancelled,
    ];

    /// The kind a script-visible name stands for; `None` for a name sockscript does not raise
    /// (a script may throw a map with a `kind` of its own).
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn of_io(err: &io::Error) -> ErrorKind {
        use io::ErrorKind as K;
        match err.kind() {
            K::AddrInUse => ErrorKind::AddrInUse,
            K::AddrNotAvailable => ErrorKind::AddrNotAvailable,
            K::ConnectionRefused => ErrorKind::ConnectionRefused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ErrorKind::ConnectionReset,
            K::TimedOut => ErrorKind::Timeout,
            K::UnexpectedEof => ErrorKind::Eof,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed socket operation; boxed, so the `Ok` path of every call stays small.
#[derive(Debug, Clone)]
pub struct NetError(Box<Details>);

/// What a [`NetError`] says; reached through `Deref`.
#[derive(Debug, Clone)]
pub struct Details {
    pub kind: ErrorKind,
    /// The whole sentence, lower-case: ``recv_line from `127.0.0.1:5000` timed out after 5s``.
    pub message: String,
    /// The script-level name of the operation (`connect`, `recv_line`, …).
    pub op: &'static str,
    /// The address the operation was about, when there is one.
    pub addr: Option<String>,
    /// What a read was waiting for, e.g. ``a line ending in `\n` ``.
    pub waiting_for: Option<String>,
    /// What had arrived but was not consumed when a read gave up.
    pub received: Option<Bytes>,
    /// For a timeout, whose deadline ran out.
    pub deadline: Option<Deadline>,
    /// The transcript id of the connection the operation was on, when it was on one: the
    /// diagnostic shows that connection's recent traffic.
    pub conn: Option<u32>,
}

/// Whose deadline a timed-out call ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The session's default, `--timeout`.
    Default,
    /// The handle's own (`conn.timeout = d`), or the call's (`join(t, d)`, `wait_for(a, d)`).
    Handle,
    /// An enclosing `within`.
    Within,
}

impl Deadline {
    /// As scripts see it in a caught error's `deadline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Deadline::Default => "default",
            Deadline::Handle => "handle",
            Deadline::Within => "within",
        }
    }
}

impl NetError {
    pub fn new(kind: ErrorKind, op: &'static str, addr: Option<&str>, message: String) -> Self {
        NetError(Box::new(Details {
            kind,
            message,
            op,
            addr: addr.map(str::to_owned),
            waiting_for: None,
            received: None,
            deadline: None,
            conn: None,
        }))
    }

    pub fn io(op: &'static str, addr: Option<&str>, err: &io::Error) -> Self {
        let kind = ErrorKind::of_io(err);
        let what = match kind {
            ErrorKind::AddrInUse => "the address is already in use".to_owned(),
            ErrorKind::AddrNotAvailable => {
                "the address is not available on this machine".to_owned()
            }
            ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            ErrorKind::ConnectionReset => "connection reset by peer".to_owned(),
            ErrorKind::PermissionDenied => "permission denied".to_owned(),
            ErrorKind::Timeout => "timed out".to_owned(),
            ErrorKind::Eof => "unexpected end of stream".to_owned(),
            _ => strip_os_error(&err.to_string()),
        };
        Self::new(
            kind,
            op,
            addr,
            format!("{} failed: {what}", describe(op, addr)),
        )
    }

    /// The call's deadline ran out; `deadline` says whose it was (see [`Details::deadline`]).
    pub fn timeout(
        op: &'static str,
        addr: Option<&str>,
        after: Duration,
        deadline: Deadline,
    ) -> Self {
        let within = deadline == Deadline::Within;
        let why = if within {
            format!(
                "timed out: the `within` deadline of {} ran out",
                fmt_duration(after)
            )
        } else {
            format!("timed out after {}", fmt_duration(after))
        };
        let mut err = Self::new(
            ErrorKind::Timeout,
            op,
            addr,
            format!("{} {why}", describe(op, addr)),
        );
        err.0.deadline = Some(deadline);
        err
    }

    pub fn eof(op: &'static str, addr: Option<&str>) -> Self {
        Self::new(
            ErrorKind::Eof,
            op,
            addr,
            format!("{}: the peer closed the connection", describe(op, addr)),
        )
    }

    pub fn closed(op: &'static str, addr: Option<&str>) -> Self {
        Self::new(
            ErrorKind::Closed,
            op,
            addr,
            format!("{}: the handle is closed", describe(op, addr)),
        )
    }

    pub fn cancelled(op: &'static str) -> Self {
        Self::new(
            ErrorKind::Cancelled,
            op,
            None,
            format!("{op} was cancelled"),
        )
    }

    pub fn waiting_for(mut self, what: impl Into<String>) -> Self {
        self.0.waiting_for = Some(what.into());
        self
    }

    pub fn with_received(mut self, received: Bytes) -> Self {
        if !received.is_empty() {
            self.0.received = Some(received);
        }
        self
    }

    /// Say which connection (its transcript id) the operation was on.
    pub fn on_conn(mut self, conn: u32) -> Self {
        self.0.conn = Some(conn);
        self
    }
}

impl std::ops::Deref for NetError {
    type Target = Details;

    fn deref(&self) -> &Details {
        &self.0
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NetError {}

/// `Network is unreachable (os error 101)` -> `network is unreachable`.
pub(crate) fn strip_os_error(text: &str) -> String {
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => text,
    };
    text.to_lowercase()
}

/// `connect to `addr``, `recv_line from `addr``: the start of every message.
pub(crate) fn describe(op: &str, addr: Option<&str>) -> String {
    let prep = match op {
        "connect" | "send" | "send_line" | "wait_for" => "to",
        "listen" => "on",
        op if op.starts_with("recv") || op == "expect" || op == "accept" => "from",
        _ => "on",
    };
    match addr {
        Some(addr) => format!("{op} {prep} `{addr}`"),
        None => op.to_owned(),
    }
}

/// `250ms`, `5s`, `1m 30s`: how durations read in messages.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 || ms % 1000 != 0 {
        if ms >= 1000 {
            return format!("{:.1}s", d.as_secs_f64());
        }
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s < 60 || s % 60 != 0 {
        return format!("{s}s");
    }
    format!("{}m", s / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "90s");
    }

    /// The names are a contract with scripts (README "Errors"): they do not change.
    #[test]
    fn kinds_keep_their_names() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "addr_in_use",
                "addr_not_available",
                "connection_refused",
                "connection_reset",
                "timeout",
                "eof",
                "dns",
                "invalid_address",
                "permission_denied",
                "closed",
                "too_long",
                "tls",
                "websocket",
                "limit",
                "io",
                "invalid_argument",
                "protocol",
                "script",
                "cancelled",
            ]
        );
    }

    #[test]
    fn kinds_read_back_from_their_names() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::parse("assertion"), None);
    }

    #[test]
    fn io_errors_map_to_kinds() {
        let e = NetError::io(
            "connect",
            Some("127.0.0.1:9"),
            &io::Error::from(io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(e.kind, ErrorKind::ConnectionRefused);
        assert_eq!(
            e.message,
            "connect to `127.0.0.1:9` failed: connection refused"
        );
    }
}
