//! sockscript drives real network sockets from rhai scenario scripts: one `.rhai` file holds
//! the servers and clients of a conversation, and a run says what crossed the wire.
//!
//! # Layout
//! - [`cli`] is what the user typed (clap); [`options`] resolves it and finds usage errors,
//!   and chooses the report formats.
//! - [`run`](mod@run) loads scenarios, runs them, hands outcomes to [`report`], picks the
//!   exit code.
//! - [`script`] is the rhai side: the engine, the API functions (the stream API registered
//!   once for every stream type), `spawn`, assertions, and what `import` resolves: the
//!   protocol modules shipped in the binary (`src/script/std/*.rhai`) and `.rhai` files of the
//!   tree given on the command line.
//! - [`net`] is the socket side, rhai-free: connections, listeners, deadlines, cancellation
//!   (a script thread waits for a call in its own `poll(2)`, `net::park`),
//!   and WebSockets ([`net::ws`], a message stream of its own; bound in `script::ws`). A
//!   listener whose clients need a handshake (TLS, a WebSocket upgrade) runs them in the
//!   background, each under its own deadline (`net::handshakes`). A stream is a transport
//!   (two halves: read what is ready or wait, write what goes or wait, shut down), one reader
//!   that owns the buffer and deadlines, and pure decoders ([`net::decode`]). A child
//!   process's pipes are one more transport ([`net::process`], `exec`), its process group
//!   killed when the scenario's session is. Its [`net::ErrorKind`] is the one list of error
//!   kinds, up to the diagnostic. [`net::proxy`] relays connections on the runtime, with
//!   Toxiproxy's faults.
//! - [`transcript`] is what `net` records; [`outcome`] is the one result model;
//!   [`diagnostic`] turns rhai positions into miette reports (the scenario's lines, and an
//!   imported module's from the texts the engine kept, `script::ModuleSources`), each with a
//!   [`diagnostic::Code`] from which [`outcome`] reads whether the scenario failed or errored.
//! - [`report`] renders outcomes, each [`report::Format`] from plain data; it reads
//!   [`outcome`] and never [`options`]. [`report::sequence`] turns one outcome's transcript
//!   into lanes and steps, the model every sequence diagram (Markdown, HTML) draws.
//! - [`escape`] makes text from peers, scripts and file names safe for the terminal and the
//!   reports: every view passes such text through it.
//! - [`record`] turns what a proxy relayed into a scenario (`sockscript record`, run by
//!   [`run::record`](mod@run)).
//! - [`redact`] masks secrets in what is printed and in outcomes, before any view reads them.

pub mod cli;
pub mod diagnostic;
pub mod escape;
pub mod net;
pub mod options;
pub mod outcome;
pub mod record;
pub mod redact;
pub mod report;
pub mod run;
pub mod scenario;
pub mod script;
pub mod transcript;

use std::ffi::OsString;

/// Every scenario passed (or `--check` found every script compiles).
pub const EXIT_OK: u8 = 0;
/// An assertion or expectation failed.
pub const EXIT_FAILED: u8 = 1;
/// sockscript was called wrongly.
pub const EXIT_USAGE: u8 = 2;
/// A script does not compile.
pub const EXIT_COMPILE: u8 = 3;
/// A scenario raised an error: a socket error, a timeout, a script error.
pub const EXIT_ERROR: u8 = 4;
/// The run was interrupted (Ctrl-C, SIGTERM), as shells report for SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Run sockscript with these arguments (the first is the program name); returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    // `record` as the first argument is the subcommand; a scenario file of that name runs as
    // `./record`. (A clap subcommand would make every scenario path a possible subcommand.)
    if args.get(1).is_some_and(|a| a == "record") {
        return parse_and_run(&args[1..], options::Recording::resolve, run::record);
    }
    parse_and_run(&args, options::Options::resolve, run::run)
}

/// Parse `args` as `P`, resolve them (usage errors are exit code 2) and run.
fn parse_and_run<P: clap::Parser, O>(
    args: &[OsString],
    resolve: impl FnOnce(P) -> Result<O, options::UsageError>,
    run: impl FnOnce(O) -> u8,
) -> u8 {
    let cli = match P::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            print_clap_error::<P>(&e, args);
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    match resolve(cli) {
        Ok(options) => run(options),
        Err(e) => {
            report::console::eprintln(&format!("error: {}", escape::text(&e.to_string())));
            EXIT_USAGE
        }
    }
}

/// clap quotes what the user typed and, on a terminal, prints it as it is. When an argument
/// holds control characters, the same error is made again from the arguments escaped, so it
/// quotes them visibly; failing that, it is printed escaped and without colour.
fn print_clap_error<P: clap::Parser>(e: &clap::Error, args: &[OsString]) {
    let hostile = |a: &OsString| a.to_string_lossy().chars().any(escape::is_unsafe);
    if !args.iter().any(hostile) {
        let _ = e.print();
        return;
    }
    let escaped = args
        .iter()
        .map(|a| OsString::from(escape::line(&a.to_string_lossy()).into_owned()));
    match P::try_parse_from(escaped) {
        Err(again) if again.kind() == e.kind() => {
            let _ = again.print();
        }
        _ => report::console::eprint(&escape::text(&e.render().to_string())),
    }
}
