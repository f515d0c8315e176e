//! Failures as people read them: rhai positions become miette spans here and nowhere else.
//! One renderer serves the terminal (colour or not) and the reports (never colour), so the
//! words are the same everywhere.
//!
//! Each diagnostic has a [`Code`] for reports to sort by: an [`ErrorKind`], or one of the few
//! ends of a scenario that are no error kind (`assertion`, `compile`, `max_time`, …). Whether
//! the scenario failed or errored is read from that code by [`crate::outcome::Status::of`];
//! this module does not know the result model.
//!
//! A socket error on a connection links to it ([`Link`]); once the scenario has ended, the
//! diagnostic takes that connection's last few events from the transcript
//! ([`Diag::recent_traffic`]), so a CI log shows what was last sent and received without
//! `--trace`.

use std::time::Duration;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, MietteError,
    NamedSource, SourceCode, SourceSpan, SpanContents,
};
use rhai::{EvalAltResult, Map, Position};

use crate::escape;
use crate::net::{fmt_duration, ErrorKind};
use crate::redact::Redactor;
use crate::script::{abort_of, plain_message, Abort, Failure, ModuleSources, TaskOrigin};
use crate::transcript::{render_payload, Event, EventKind};

/// How many of a failed connection's last events the diagnostic shows.
pub const RECENT_EVENTS: usize = 5;
/// How many characters of each payload a recent-traffic line shows (hex: a third as many
/// bytes), so a line stays within the report's width.
const RECENT_PAYLOAD: usize = 48;

/// Which connection a failure happened on: its transcript id when the error carried one,
/// else the address the error named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub conn: Option<u32>,
    pub addr: Option<String>,
}

/// Reports are wrapped at this width so they read the same on every terminal and in files.
const WIDTH: usize = 100;

/// What a diagnostic is about, as reports name it (JUnit's `type`, TAP's and JSON's `code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// An error with a kind, as scripts see it in `e.kind`: `timeout`, `limit`, `script`,
    /// `cancelled`, …
    Kind(ErrorKind),
    /// The kind of a map a script threw that sockscript does not raise itself
    /// (`throw #{kind: "bad_reply"}`), as the script spelled it.
    Custom(String),
    /// An assertion did not hold, or `fail` was called: the one code that is a failure.
    Assertion,
    /// The script does not compile.
    Compile,
    /// The scenario ran past `--max-time`.
    MaxTime,
    /// The run was interrupted (Ctrl-C, SIGTERM).
    Interrupted,
    /// A `within` ran out while a built-in call kept running past it.
    Within,
    /// An uncaught thrown value that is not a map with a `kind`.
    Thrown,
}

impl Code {
    /// The code of a `kind` read from an error map: sockscript's own kind when it is one.
    fn of_kind(name: String) -> Code {
        ErrorKind::parse(&name).map_or(Code::Custom(name), Code::Kind)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Code::Kind(kind) => kind.as_str(),
            Code::Custom(name) => name,
            Code::Assertion => "assertion",
            Code::Compile => "compile",
            Code::MaxTime => "max_time",
            Code::Interrupted => "interrupted",
            Code::Within => "within",
            Code::Thrown => "thrown",
        }
    }
}

impl From<ErrorKind> for Code {
    fn from(kind: ErrorKind) -> Code {
        Code::Kind(kind)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rendered-on-demand diagnostic: message, the script, labelled spans and help.
#[derive(Debug, Clone)]
pub struct Diag {
    pub code: Code,
    pub message: String,
    pub file: String,
    pub source: String,
    pub labels: Vec<(usize, usize, String)>,
    pub help: Option<String>,
    /// The scenario's line of its first label, 1-based, for reports that want a line number:
    /// for a failure inside a module, the scenario's call that led there.
    pub line: Option<usize>,
    /// The connection a socket error happened on, for its recent traffic.
    pub on: Link,
    /// The imported modules the failure happened in or passed through, drawn as the scenario
    /// is, each with its own labels.
    pub more: Vec<Snippet>,
    /// The failure itself happened in `more[0]` (a module), drawn first; the scenario's
    /// labels are then the calls that led there.
    pub failed_in_module: bool,
}

/// Another file a diagnostic draws: an imported module, with its labels.
#[derive(Debug, Clone)]
pub struct Snippet {
    pub file: String,
    pub source: String,
    pub labels: Vec<(usize, usize, String)>,
}

impl Diag {
    fn new(code: impl Into<Code>, message: impl Into<String>, file: &str, source: &str) -> Self {
        Diag {
            code: code.into(),
            message: message.into(),
            file: file.to_owned(),
            source: source.to_owned(),
            labels: Vec::new(),
            help: None,
            line: None,
            on: Link::default(),
            more: Vec::new(),
            failed_in_module: false,
        }
    }

    /// A diagnostic with no script to point into.
    pub fn plain(code: impl Into<Code>, message: impl Into<String>, file: &str) -> Self {
        Diag::new(code, message, file, "")
    }

    fn label(mut self, pos: Position, text: impl Into<String>) -> Self {
        if let Some((offset, len)) = span(&self.source, pos) {
            if self.line.is_none() {
                self.line = pos.line();
            }
            self.labels.push((offset, len, text.into()));
        }
        self
    }

    fn help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Add a line at the end of the help.
    pub fn add_help(&mut self, text: &str) {
        self.help = Some(match self.help.take() {
            Some(help) => format!("{help}\n{text}"),
            None => text.to_owned(),
        });
    }

    /// A place in another file (an imported module): drawn from the module's text when the
    /// scenario read it, else said in the help as `file:line:column`.
    fn elsewhere(
        mut self,
        modules: &ModuleSources,
        module: &str,
        pos: Position,
        what: &str,
    ) -> Self {
        if self.draw(modules, module, pos, what) {
            self
        } else {
            self.said(module, pos, what)
        }
    }

    /// Label `pos` in `module`'s text, when the scenario read that module. The first place
    /// labelled at all, here or in the scenario, is where the failure happened: its module is
    /// drawn first.
    fn draw(&mut self, modules: &ModuleSources, module: &str, pos: Position, what: &str) -> bool {
        let Some(text) = modules.get(module) else {
            return false;
        };
        let Some((offset, len)) = span(&text, pos) else {
            return false;
        };
        let first = self.labels.is_empty() && self.more.iter().all(|s| s.labels.is_empty());
        let mut at = match self.more.iter().position(|s| s.file == module) {
            Some(at) => at,
            None => {
                self.more.push(Snippet {
                    file: module.to_owned(),
                    source: text.to_string(),
                    labels: Vec::new(),
                });
                self.more.len() - 1
            }
        };
        if first {
            self.more.swap(0, at);
            self.failed_in_module = true;
            at = 0;
        }
        self.more[at].labels.push((offset, len, what.to_owned()));
        true
    }

    /// A place in a module whose text is not at hand, said in the help.
    fn said(mut self, module: &str, pos: Position, what: &str) -> Self {
        let place = match (pos.line(), pos.position()) {
            (Some(line), Some(column)) => format!("{module}:{line}:{column}"),
            (Some(line), None) => format!("{module}:{line}"),
            _ => module.to_owned(),
        };
        let text = format!("{what}: {place}");
        self.help = Some(match self.help.take() {
            Some(help) => format!("{text}\n{help}"),
            None => text,
        });
        self
    }

    /// The error happened at `pos` in `module`, not in this source: the labels made at that
    /// position (which point at whatever this source has there) give way to the place in the
    /// module, labelled as the first of them was.
    fn moved_to(mut self, modules: &ModuleSources, module: &str, pos: Position) -> Self {
        let what = self.labels.first().map(|(_, _, text)| text.clone());
        self.labels.clear();
        self.line = None;
        if self.draw(modules, module, pos, what.as_deref().unwrap_or("here")) {
            self
        } else {
            self.said(module, pos, "it happened in an imported module")
        }
    }

    /// Add the last [`RECENT_EVENTS`] events of the failed connection to the help, from the
    /// scenario's transcript: what was last sent and received on it, as the end that failed
    /// saw it (its events name the error's address as their peer). The connection is the one
    /// the error named by id, else (a failed send) the latest one with that peer.
    /// Only what crossed the wire is shown (send, recv, eof, shutdown, close); the error is
    /// the diagnostic's own. One end's events keep their order from run to run, where both
    /// ends' would interleave as their tasks happen to run. `redact` masks the payloads.
    pub fn recent_traffic(&mut self, events: &[Event], redact: &Redactor) {
        let addr = self.on.addr.as_deref();
        let conn = self.on.conn.or_else(|| {
            events
                .iter()
                .rev()
                .find(|e| e.peer.as_deref() == addr && e.on.conn.is_some())
                .and_then(|e| e.on.conn)
        });
        let Some(conn) = conn else { return };
        let on_wire = |e: &&Event| {
            e.on.conn == Some(conn)
                && matches!(
                    e.kind,
                    EventKind::Send
                        | EventKind::Recv
                        | EventKind::Eof
                        | EventKind::Shutdown
                        | EventKind::Close
                )
        };
        let mut traffic: Vec<&Event> = events
            .iter()
            .filter(on_wire)
            .filter(|e| addr.is_some() && e.peer.as_deref() == addr)
            .collect();
        if traffic.is_empty() {
            // The error named the peer otherwise (a host name): every event of the connection.
            traffic = events.iter().filter(on_wire).collect();
        }
        let Some(last) = traffic.last() else { return };
        let shown = &traffic[traffic.len().saturating_sub(RECENT_EVENTS)..];
        let transport = last.on.transport.map_or("", |t| t.as_str());
        let mut text = format!(
            "recent traffic on this connection ({transport}#{conn}, this end, last {} of {}):",
            shown.len(),
            traffic.len()
        );
        for event in shown {
            text.push('\n');
            text.push_str(&traffic_line(&redact.event(event)));
        }
        self.help = Some(match self.help.take() {
            Some(help) => format!("{help}\n{text}"),
            None => text,
        });
    }

    /// The whole report, as miette draws it. Everything in it that came from a script, a peer
    /// or a file name is escaped first (see [`escape`]): the script's lines too, with each
    /// label moved to where its word went, so it still points at it.
    pub fn render(&self, color: bool) -> String {
        // The code (`timeout`, `assertion`) is for reports to sort by; the message says it.
        let mut diag = MietteDiagnostic::new(escape::text(&self.message));
        if let Some(help) = &self.help {
            diag = diag.with_help(escape::text(help));
        }
        // The file where the failure happened first: the scenario, or the module it was in.
        let mut files = vec![(self.file.as_str(), self.source.as_str(), &self.labels[..])];
        files.extend(
            self.more
                .iter()
                .map(|s| (s.file.as_str(), s.source.as_str(), &s.labels[..])),
        );
        if self.failed_in_module {
            files.rotate_left(1);
        }
        // miette reads one source per diagnostic: each file is a region of one, a byte apart,
        // so each is drawn with its own name and line numbers.
        let mut regions = Vec::with_capacity(files.len());
        let mut labels = Vec::new();
        let mut base = 0;
        for (file, text, spans) in files {
            let (shown, moved) = escape::source(text);
            let mut columns = Vec::with_capacity(spans.len());
            for (offset, len, label) in spans {
                let start = moved(*offset);
                let span = (base + start, moved(offset + len) - start);
                let label = Some(escape::text(label).into_owned());
                let before = text.get(..*offset).unwrap_or("");
                let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
                columns.push((start, line.chars().count()));
                labels.push(if labels.is_empty() {
                    LabeledSpan::new_primary_with_span(label, span)
                } else {
                    LabeledSpan::new_with_span(label, span)
                });
            }
            let len = shown.len();
            regions.push(Region {
                code: NamedSource::new(escape::line(file), shown.into_owned()),
                base,
                len,
                columns,
            });
            base += len + 1;
        }
        let diag = diag.with_labels(labels);
        let report = miette::Report::new(diag).with_source_code(Shown { regions });
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let mut out = String::new();
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(WIDTH)
            .with_links(false);
        if handler.render_report(&mut out, report.as_ref()).is_err() {
            return format!("error: {}", escape::text(&self.message));
        }
        out
    }
}

/// The escaped files a diagnostic draws, as miette reads them: one source whose regions are
/// the files. Each `[file:line:column]` heading gives its label's column as the script has
/// it, in characters as rhai and editors count them, rather than miette's byte count in the
/// escaped text.
struct Shown {
    regions: Vec<Region>,
}

/// One file in [`Shown`]: its spans start at `base`.
struct Region {
    code: NamedSource<String>,
    base: usize,
    len: usize,
    /// Each label's offset in the escaped text, and its 0-based column in the script.
    columns: Vec<(usize, usize)>,
}

impl SourceCode for Shown {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        // A span across two regions (miette joining nearby labels) is refused: each file is
        // drawn on its own. A label at the end of a file (an unclosed block) reaches one byte
        // past it, into the gap before the next.
        let region = self
            .regions
            .iter()
            .rev()
            .find(|r| r.base <= span.offset())
            .filter(|r| span.offset() + span.len() <= r.base + r.len + 1)
            .ok_or(MietteError::OutOfBounds)?;
        let local = SourceSpan::new((span.offset() - region.base).into(), span.len());
        let contents = region.code.read_span(&local, before, after)?;
        // miette reads a heading's position as its label's span without context.
        let column = region
            .columns
            .iter()
            .find(|&&(offset, _)| (before, after) == (0, 0) && local.offset() == offset)
            .map(|&(_, column)| column);
        let at = contents.span();
        let span = SourceSpan::new((at.offset() + region.base).into(), at.len());
        Ok(Box::new(Placed {
            contents,
            span,
            column,
        }))
    }
}

/// Span contents moved to their region's place in [`Shown`], perhaps with a column of their
/// own.
struct Placed<'a> {
    contents: Box<dyn SpanContents<'a> + 'a>,
    span: SourceSpan,
    column: Option<usize>,
}

impl<'a> SpanContents<'a> for Placed<'a> {
    fn data(&self) -> &'a [u8] {
        self.contents.data()
    }
    fn span(&self) -> &SourceSpan {
        &self.span
    }
    fn name(&self) -> Option<&str> {
        self.contents.name()
    }
    fn line(&self) -> usize {
        self.contents.line()
    }
    fn column(&self) -> usize {
        self.column.unwrap_or_else(|| self.contents.column())
    }
    fn line_count(&self) -> usize {
        self.contents.line_count()
    }
    fn language(&self) -> Option<&str> {
        self.contents.language()
    }
}

/// Describe a failure; its [`Code`] classifies it.
/// `redact` masks secrets in the bytes it shows (a hexdump cannot be masked once drawn); the
/// caller masks the words of the result.
pub fn describe(
    failure: &Failure,
    file: &str,
    source: &str,
    modules: &ModuleSources,
    timeout: Duration,
    redact: &Redactor,
) -> Diag {
    match failure {
        Failure::Compile(err) => {
            let what = err.err_type().to_string();
            let help = match err.err_type() {
                rhai::ParseErrorType::VariableUndefined(name) => Some(format!(
                    "if `{name}` should come from outside the script, pass `--var {name}=VALUE`, \
                     a `{name}=VALUE` line in `--vars-file`, or set `SOCKSCRIPT_VAR_{name}`"
                )),
                _ => None,
            };
            Diag::new(
                Code::Compile,
                format!("`{file}` does not compile: {what}"),
                file,
                source,
            )
            .label(err.position(), what)
            .help(help)
        }
        Failure::MaxTime(limit, at) => Diag::new(
            Code::MaxTime,
            format!(
                "the scenario ran past its deadline of {}",
                fmt_duration(*limit)
            ),
            file,
            source,
        )
        .label(*at, "the main script was here")
        .help(Some(
            "give it longer with `--max-time`, or find the call that never returned with `--trace`"
                .into(),
        )),
        Failure::Interrupted(at) => {
            Diag::new(Code::Interrupted, "the run was interrupted", file, source)
                .label(*at, "the main script was here")
        }
        Failure::WithinOverrun { length, at, task } => {
            let length = fmt_duration(*length);
            let who = if task == "main" {
                "the main script".to_owned()
            } else {
                task.clone()
            };
            Diag::new(
                Code::Within,
                format!(
                    "`within({length})` ran out while {who} was inside one built-in call that \
                     kept running past it, so the scenario was stopped"
                ),
                file,
                source,
            )
            .label(*at, format!("this `within({length})` ran out"))
            .help(Some(
                "a built-in call on a large value (a long string, Blob or array) cannot be \
                 interrupted; work on smaller pieces, or give `within` longer"
                    .into(),
            ))
        }
        Failure::LeftBehind { cause, compiling } => {
            let mut diag = describe(cause, file, source, modules, timeout, redact);
            let note = if *compiling {
                "the script was still being compiled; its thread was left behind".to_owned()
            } else {
                format!(
                    "the script was inside one built-in call that did not return within {} of \
                     being stopped; its thread was left behind",
                    fmt_duration(crate::script::LEFT_BEHIND_AFTER)
                )
            };
            diag.help = Some(match diag.help.take() {
                Some(help) => format!("{help}\n{note}"),
                None => note,
            });
            diag
        }
        Failure::Raised { error, task } => {
            raised(error, task.as_ref(), file, source, modules, timeout, redact)
        }
    }
}

fn raised(
    error: &EvalAltResult,
    task: Option<&TaskOrigin>,
    file: &str,
    source: &str,
    modules: &ModuleSources,
    timeout: Duration,
    redact: &Redactor,
) -> Diag {
    // An error from inside a shipped module (`std/resp`) shows at the scenario's call of it:
    // positions inside the module mean nothing in the scenario's source.
    let (std_call, inner) = match crate::script::std_call_site(error) {
        Some((call, raised)) => (Some(call), raised),
        None => (None, error.unwrap_inner()),
    };
    let at = |pos: Position| std_call.unwrap_or(pos);
    let prefix = task.map_or(String::new(), |t| format!("{}: ", t.name));
    let mut diag = match abort_of(error) {
        Some(Abort::Assertion(f)) => {
            let values = f
                .values
                .iter()
                .map(|(k, v)| format!("{k:>5}: {v}"))
                .collect::<Vec<_>>()
                .join("\n");
            let diag = Diag::new(
                Code::Assertion,
                format!("{prefix}{}", f.message),
                file,
                source,
            )
            .help((!values.is_empty()).then_some(values));
            // rhai names the file of the module function running, also while it runs a
            // closure written in the scenario (`lib::each(|x| assert(…))`): the assertion is
            // in the file that has its function's name at its position.
            let file = f.file.as_deref().filter(|module| {
                let called = |text: &str| word_at(text, f.position) == Some(f.function.as_str());
                modules.get(module).is_none_or(|text| called(&text)) || !called(source)
            });
            let diag = match file {
                Some(module) => diag.elsewhere(modules, module, f.position, f.label),
                None => diag.label(f.position, f.label),
            };
            // A failed assertion stops the scenario (rhai's uncatchable `ErrorTerminated`),
            // which rhai passes up through script functions without a frame per call: each
            // call only moves its position, so it ends at the outermost call. That call is
            // named from the source, so a helper called twice says which call failed.
            let called_at = inner.position();
            if called_at.is_none() || (called_at == f.position && file.is_none()) {
                diag
            } else {
                let what = match word_at(source, called_at) {
                    Some(name) => format!("in `{name}`, called here"),
                    None => "in the function called here".to_owned(),
                };
                diag.label(called_at, what)
            }
        }
        Some(Abort::Limit(message)) => {
            Diag::new(ErrorKind::Limit, format!("{prefix}{message}"), file, source)
                .label(at(inner.position()), "stopped here")
        }
        Some(_) => Diag::new(
            ErrorKind::Cancelled,
            format!("{prefix}the scenario was cancelled"),
            file,
            source,
        ),
        None => match inner {
            EvalAltResult::ErrorRuntime(value, pos) => match value.read_lock::<Map>() {
                Some(map) if map.contains_key("kind") => {
                    socket_error(&map, &prefix, at(*pos), file, source, timeout, redact)
                }
                _ => Diag::new(
                    Code::Thrown,
                    format!("{prefix}uncaught: {value}"),
                    file,
                    source,
                )
                .label(at(*pos), "thrown here"),
            },
            EvalAltResult::ErrorTooManyOperations(pos) => Diag::new(
                ErrorKind::Limit,
                format!("{prefix}the script ran past its limit of operations"),
                file,
                source,
            )
            .label(at(*pos), "stopped here")
            .help(Some(
                "raise it with `--limit operations=N` (0 for none)".into(),
            )),
            EvalAltResult::ErrorDataTooLarge(what, pos) => Diag::new(
                ErrorKind::Limit,
                format!("{prefix}{} is larger than the data limit", data_kind(what)),
                file,
                source,
            )
            .label(at(*pos), "here")
            .help(Some(format!(
                "`--limit data=SIZE` bounds one value in bytes: a string byte counts 1, an \
                     array element or a Blob byte {}, a map entry {}; raise it with \
                     `--limit data=SIZE`, e.g. `--limit data=256MiB`",
                crate::script::ELEMENT_BYTES,
                crate::script::MAP_ENTRY_BYTES
            ))),
            other => Diag::new(
                ErrorKind::Script,
                format!("{prefix}{}", plain_message(other)),
                file,
                source,
            )
            .label(at(other.position()), "here"),
        },
    };
    // The calls the error came up through, outermost first, down to a shipped module's (whose
    // insides the user cannot see), each with the file of the function called (empty: the
    // scenario itself; else an imported `lib` module's path).
    let mut frame = error;
    let mut frames = Vec::new();
    while let EvalAltResult::ErrorInFunctionCall(name, module, inner, pos) = frame {
        if crate::script::is_std_module(module) {
            break;
        }
        frames.push((name.clone(), modules.file_of(name, module), *pos));
        frame = inner;
    }
    // The error itself happened in the innermost function's file: when that is a module, its
    // position is not in this scenario's source.
    if let Some((_, module, _)) = frames.last().filter(|(_, f, _)| !f.is_empty()) {
        diag = diag.moved_to(modules, module, at(inner.position()));
    }
    // Each call is made from the file of the function one frame out.
    let mut caller = String::new();
    for (name, module, pos) in frames {
        let what = if name.starts_with("anon$") {
            "in the closure called here".to_owned()
        } else {
            format!("in `{name}`, called here")
        };
        diag = if caller.is_empty() {
            diag.label(pos, what)
        } else {
            diag.elsewhere(modules, &caller, pos, &what)
        };
        caller = module;
    }
    if let Some(t) = task {
        diag = diag.label(t.spawned_at, format!("{} was spawned here", t.name));
    }
    diag
}

/// One event on one line: `  main     send  -> 6 bytes "HELLO\n"`. No time or address: the
/// lines read the same on every run, and the heading names the connection.
fn traffic_line(event: &Event) -> String {
    let arrow = match event.dir() {
        Some(crate::transcript::Dir::Out) => "->",
        Some(crate::transcript::Dir::In) => "<-",
        None => "  ",
    };
    let mut line = format!(
        "  {:<8} {:<8} {arrow}",
        escape::line(&event.task),
        event.kind.as_str()
    );
    if matches!(event.kind, EventKind::Send | EventKind::Recv) {
        let data = &event.data[..event.data.len().min(RECENT_PAYLOAD)];
        let (mut shown, mut cut) = match std::str::from_utf8(data) {
            // `{:?}` escapes controls, bidi overrides and noncharacters.
            Ok(text) => (format!("{text:?}"), event.len > data.len()),
            Err(_) => {
                let bytes = &data[..data.len().min(RECENT_PAYLOAD / 3)];
                let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                (hex.join(" "), event.len > bytes.len())
            }
        };
        if shown.chars().count() > RECENT_PAYLOAD {
            shown = shown.chars().take(RECENT_PAYLOAD).collect();
            cut = true;
        }
        let more = if cut { "…" } else { "" };
        let unit = if event.len == 1 { "byte" } else { "bytes" };
        line.push_str(&format!(" {} {unit} {shown}{more}", event.len));
    }
    line.trim_end().to_owned()
}

/// rhai's name for what outgrew its limit, as the diagnostic says it.
fn data_kind(what: &str) -> &str {
    match what {
        "Length of string" => "a string",
        "Size of array/BLOB" => "an array or Blob",
        "Size of BLOB" => "a Blob",
        "Size of object map" => "an object map",
        other => other,
    }
}

fn socket_error(
    map: &Map,
    prefix: &str,
    pos: Position,
    file: &str,
    source: &str,
    timeout: Duration,
    redact: &Redactor,
) -> Diag {
    let get = |k: &str| {
        map.get(k)
            .map(|v| v.to_string())
            .filter(|s| !s.is_empty() && s != "()")
    };
    // A `kind` that is empty or `()` reads as `error`.
    let code = Code::of_kind(get("kind").unwrap_or_else(|| "error".into()));
    let kind = code.as_str();
    let message = get("message").unwrap_or_else(|| kind.to_owned());
    let mut help = Vec::new();
    if let Some(w) = get("waiting_for") {
        help.push(format!("waited for {w}"));
    }
    match map
        .get("received")
        .and_then(|r| r.read_lock::<rhai::Blob>().map(|b| b.clone()))
    {
        Some(bytes) => help.push(format!(
            "received so far ({} bytes, not consumed):\n{}",
            bytes.len(),
            render_payload(&redact.bytes(&bytes), "  ")
        )),
        None if get("waiting_for").is_some() => help.push("nothing had arrived".into()),
        None => {}
    }
    if get("deadline").as_deref() == Some(crate::net::Deadline::Default.as_str()) {
        help.push(format!(
            "the deadline is `--timeout` ({}); give one handle longer with `conn.timeout = \"10s\"`",
            fmt_duration(timeout)
        ));
    }
    let label = format!("`{kind}`");
    let mut diag = Diag::new(code, format!("{prefix}{message}"), file, source)
        .label(pos, label)
        .help((!help.is_empty()).then(|| help.join("\n")));
    // Reads name their connection; a send (or shutdown) that failed is found by its peer's
    // address. Other calls (connect, listen, accept) were on no connection yet.
    let op = get("op").unwrap_or_default();
    let conn = map
        .get("conn")
        .and_then(|c| c.as_int().ok())
        .and_then(|c| u32::try_from(c).ok());
    // A protocol module's error is about what the peer sent last.
    let protocol = diag.code == Code::Kind(ErrorKind::Protocol);
    if conn.is_some() || op.starts_with("send") || op == "shutdown" || protocol {
        diag.on = Link {
            conn,
            addr: get("addr"),
        };
    }
    diag
}

/// The identifier at a rhai position, if one starts there (a function's name at its call).
fn word_at(source: &str, pos: Position) -> Option<&str> {
    let (offset, len) = span(source, pos)?;
    let word = source.get(offset..offset + len)?;
    let first = word.chars().next()?;
    (first.is_alphabetic() || first == '_').then_some(word)
}

/// The byte span of a rhai position: its line and column, as long as the word there.
fn span(source: &str, pos: Position) -> Option<(usize, usize)> {
    let line = pos.line()?;
    let column = pos.position().unwrap_or(1).max(1);
    let line_start = if line == 1 {
        0
    } else {
        source.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let line_text = source[line_start..].split('\n').next().unwrap_or("");
    let col_offset: usize = line_text
        .char_indices()
        .nth(column - 1)
        .map_or(line_text.len(), |(i, _)| i);
    let rest = &line_text[col_offset..];
    let word = rest
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(rest.len(), |(i, _)| i);
    Some((line_start + col_offset, word.max(1).min(rest.len().max(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_lines_file_names_and_messages_are_escaped_and_labels_stay_on_their_word() {
        let src = "let s = \"\x1b[2J\u{202e}\"; fail(s);\n";
        let diag = Diag::new(
            Code::Custom("failed".into()),
            "got \x1b]52;c;aGk=\x07",
            "a\x1b[7m.rhai",
            src,
        )
        .label(Position::new(1, 18), "failed \u{fffe} here")
        .help(Some("left: \u{9b}\nright: 1".into()));
        // The heading says the column in the script (18); the label is under `fail`.
        assert_eq!(
            diag.render(false),
            "  × got \\x1b]52;c;aGk=\\x07\n   ╭─[a\\x1b[7m.rhai:1:18]\n \
             1 │ let s = \"\\x1b[2J\\u{202e}\"; fail(s);\n   \
             ·                            ──┬─\n   \
             ·                              ╰── failed \\u{fffe} here\n   ╰────\n  \
             help: left: \\u{9b}\n        right: 1\n"
        );
    }

    #[test]
    fn every_file_s_heading_counts_characters_and_a_label_at_the_end_is_drawn() {
        let modules = ModuleSources::default();
        modules.insert_for_test("m.rhai", "fn boom() {\n  throw \"x\";\n}\n");
        let src = "let u = \"✓✓✓\"; m::boom(1);\n";
        let diag = Diag::new(Code::Thrown, "uncaught: x", "s.rhai", src)
            .label(Position::new(1, 17), "thrown here")
            .moved_to(&modules, "m.rhai", Position::new(2, 3))
            .label(Position::new(1, 19), "in `boom`, called here");
        let shown = diag.render(false);
        // The module first, then the scenario's call: its column in characters (19), not
        // bytes (25).
        let (module, call) = (shown.find("[m.rhai:2:3]"), shown.find("[s.rhai:1:19]"));
        assert!(module.is_some() && module < call, "{shown}");
        // A compile error at the very end of a file (an unclosed block) still draws the file.
        let src = "let x = 1;\nfn f() {";
        let diag = Diag::new(Code::Compile, "does not compile", "e.rhai", src)
            .label(Position::new(2, 9), "Expecting '}'");
        let shown = diag.render(false);
        assert!(shown.contains("[e.rhai:2:9]"), "{shown}");
        assert!(!shown.contains("Failed to read"), "{shown}");
    }

    #[test]
    fn spans_cover_the_word_at_a_position() {
        let src = "let a = 1;\nlet c = connect(x);\n";
        let (off, len) = span(src, Position::new(2, 9)).unwrap_or_default();
        assert_eq!(&src[off..off + len], "connect");
    }

    #[test]
    fn a_thrown_kind_is_sockscript_s_only_when_it_names_an_error_kind() {
        let of = |name: &str| Code::of_kind(name.into());
        assert_eq!(of("timeout"), Code::Kind(ErrorKind::Timeout));
        // A script that throws `#{kind: "assertion"}` raised an error, not a failed assertion.
        assert_eq!(of("assertion"), Code::Custom("assertion".into()));
        assert_eq!(of("assertion").as_str(), "assertion");
    }

    fn wire(kind: EventKind, conn: u32, peer: &str, data: &'static [u8]) -> Event {
        Event {
            position: None,
            at: Duration::ZERO,
            task: "main".into(),
            kind,
            on: crate::transcript::On {
                conn: Some(conn),
                transport: Some(crate::transcript::Transport::Tcp),
            },
            local: None,
            peer: Some(peer.into()),
            data: bytes::Bytes::from_static(data),
            len: data.len(),
            note: None,
        }
    }

    #[test]
    fn recent_traffic_is_the_failed_end_s_last_events_on_its_connection() {
        let (client, server) = ("127.0.0.1:5000", "127.0.0.1:40000");
        let mut events = vec![
            wire(EventKind::Connect, 1, client, b""),
            wire(EventKind::Send, 2, client, b"other connection"),
        ];
        for i in 0..6u8 {
            events.push(wire(EventKind::Send, 1, client, b"ping\n"));
            // The other end of the same connection.
            events.push(wire(EventKind::Recv, 1, server, b"ping\n"));
            if i == 5 {
                events.push(wire(EventKind::Recv, 1, client, b"\x00\xff"));
            }
        }
        events.push(wire(EventKind::Error, 1, client, b""));
        let mut diag = Diag::plain(ErrorKind::Timeout, "recv timed out", "a.rhai");
        diag.on = Link {
            conn: Some(1),
            addr: Some(client.into()),
        };
        diag.recent_traffic(&events, &Redactor::default());
        assert_eq!(
            diag.help.as_deref(),
            Some(
                "recent traffic on this connection (tcp#1, this end, last 5 of 7):\n  \
                 main     send     -> 5 bytes \"ping\\n\"\n  \
                 main     send     -> 5 bytes \"ping\\n\"\n  \
                 main     send     -> 5 bytes \"ping\\n\"\n  \
                 main     send     -> 5 bytes \"ping\\n\"\n  \
                 main     recv     <- 2 bytes 00 ff"
            )
        );
        // A failed send names no connection: the latest one with its peer.
        let mut diag = Diag::plain(ErrorKind::ConnectionReset, "send failed", "a.rhai");
        diag.on = Link {
            conn: None,
            addr: Some(client.into()),
        };
        diag.recent_traffic(&events[..3], &Redactor::default());
        assert!(
            diag.help
                .as_deref()
                .is_some_and(|h| h.contains("tcp#1, this end, last 1 of 1")),
            "{:?}",
            diag.help
        );
        // No link, or nothing on the wire: no lines.
        let mut diag = Diag::plain(ErrorKind::Timeout, "x", "a.rhai");
        diag.recent_traffic(&events, &Redactor::default());
        assert_eq!(diag.help, None);
    }

    #[test]
    fn data_limits_name_what_outgrew_them() {
        assert_eq!(data_kind("Size of BLOB"), "a Blob");
        assert_eq!(data_kind("Length of string"), "a string");
        assert_eq!(data_kind("Size of object map"), "an object map");
    }
}
