//! What the user typed: clap types only. `options.rs` resolves them; nothing else imports clap.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Drive real network sockets from rhai scenario scripts.
///
/// One FILE runs it and shows what it prints. `--test`, several files or a directory run every
/// scenario as a test suite: a line per scenario, a summary and an exit code.
#[derive(Debug, Parser)]
#[command(name = "sockscript", version, about, max_term_width = 100)]
pub struct Cli {
    /// Scenario files (`.rhai`) or directories of them.
    #[arg(value_name = "FILE|DIR", required = true)]
    pub paths: Vec<PathBuf>,

    /// Test mode: run every scenario, report each, exit with the worst outcome.
    #[arg(long)]
    pub test: bool,

    /// Scenarios run at once in test mode [default: the number of CPUs].
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Run only the K-th of N deterministic shards of the scenario list (e.g. `2/4`), to spread
    /// a suite across a CI system's parallel jobs.
    #[arg(long, value_name = "K/N")]
    pub partition: Option<String>,

    /// Run only the scenarios whose path contains TEXT. Repeatable: any match selects.
    #[arg(long, value_name = "TEXT")]
    pub filter: Vec<String>,

    /// Leave out the scenarios whose path contains TEXT (after `--filter`). Repeatable: any
    /// match leaves a scenario out.
    #[arg(long, value_name = "TEXT")]
    pub exclude: Vec<String>,

    /// Re-run a scenario that did not pass, up to N more times; reports say it was retried.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retry: u32,

    /// Deadline of a blocking call whose handle sets none (`250ms`, `5s`, `1m`); `none` for
    /// no deadline.
    #[arg(long, value_name = "D", default_value = "5s")]
    pub timeout: String,

    /// Deadline of a whole scenario; `none` runs it until it ends or Ctrl-C (test mode needs
    /// `--allow-no-deadline` for that).
    #[arg(long, value_name = "D", default_value = "60s")]
    pub max_time: String,

    /// Let test mode run with `--max-time none`: without it a suite refuses to, so a CI run
    /// cannot hang by accident.
    #[arg(long)]
    pub allow_no_deadline: bool,

    /// Let the scripts start processes with `exec(argv)`; `--allow-exec=PROG,...` allows only
    /// those programs (found in PATH as a shell finds them, or a path; `exec` must name the same
    /// file). Without it, `exec` is `permission_denied`. Processes are killed, with their
    /// children, when their scenario ends.
    #[arg(
        long,
        value_name = "PROG,...",
        num_args = 0..=1,
        require_equals = true,
        value_delimiter = ','
    )]
    pub allow_exec: Option<Vec<String>>,

    /// A constant the scripts see by NAME: an integer or bool where VALUE parses as one,
    /// else a string. Repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// Read `NAME=VALUE` lines (and `#` comments) as if each were a `--var`. Repeatable; a
    /// later file wins.
    #[arg(long, value_name = "FILE")]
    pub vars_file: Vec<PathBuf>,

    /// A variable whose value is the contents of the file at PATH, as a string (a Blob when it
    /// is not UTF-8): a CA certificate or a key in PEM, a request body. Repeatable.
    #[arg(long = "var-file", value_name = "NAME=PATH")]
    pub var_files: Vec<String>,

    /// A constant like `--var` whose value is shown as `***` in everything sockscript writes:
    /// printed output, `--trace`, diagnostics and reports. Repeatable. A command line can be
    /// read by other users of the machine (`ps`): in CI prefer the environment variable
    /// `SOCKSCRIPT_SECRET_<NAME>`, which defines a secret the same way.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,

    /// A secret like `--secret` whose value is the contents of the file at PATH (as
    /// `--var-file` reads it): a private key, a token file. Each of its lines is masked too.
    /// Repeatable.
    #[arg(long = "secret-file", value_name = "NAME=PATH")]
    pub secret_files: Vec<String>,

    /// Let the scripts' `env(NAME)` read the environment variable NAME; `*` allows every one.
    /// Repeatable. Without it, `env` reads only `SOCKSCRIPT_VAR_*` and `SOCKSCRIPT_SECRET_*`
    /// (a secret read so is shown as `***` too), so a script cannot put a CI token in a report.
    #[arg(long = "allow-env", value_name = "NAME")]
    pub allow_env: Vec<String>,

    /// Change a limit that protects the machine: `line` (longest line or match searched,
    /// default 1MiB), `buffer` (bytes a connection buffers, 64MiB), `handles` (sockets open at
    /// once, 50000), `tasks` (tasks a scenario starts, 10000), `operations` (script steps per
    /// task, 10000000000; 0 for none), `data` (bytes of one value: a string, an array at 16
    /// bytes an element, a Blob (a sixteenth of it), a map; and of a channel's queue, 64MiB),
    /// `output` (bytes a scenario prints in test mode, 16MiB), `script` (size of a scenario
    /// file, 16MiB), `capture` (payload bytes a scenario's transcript keeps whole, 16MiB;
    /// previews after that, the rest counted as dropped). Repeatable.
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limits: Vec<String>,

    /// The seed of every random draw a scenario makes (a proxy fault's `toxicity`, jitter,
    /// slice sizes), so a run can be repeated. Without it a seed is chosen at random and a
    /// failure that drew from it names it.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Show every socket event (listen, connect, send, recv, close) on stderr, with payloads.
    #[arg(long)]
    pub trace: bool,

    /// Colour on stderr; `auto` colours a terminal unless NO_COLOR is set.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,

    /// Only compile the scenarios; run nothing.
    #[arg(long)]
    pub check: bool,

    /// Write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report_junit: Option<PathBuf>,

    /// Write a TAP 13 report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report_tap: Option<PathBuf>,

    /// Write a JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,

    /// Write a Markdown summary to FILE: a table of the scenarios, and for each one that did
    /// not pass a Mermaid sequence diagram of its conversation and its diagnostic (for
    /// `$GITHUB_STEP_SUMMARY`). Run and test mode.
    #[arg(long, value_name = "FILE")]
    pub report_markdown: Option<PathBuf>,

    /// Write the conversations as pcapng for Wireshark and tshark (packets synthesized from
    /// the transcript): to the file PATH in run mode; in test mode PATH is a directory with a
    /// `<scenario>.pcapng` each.
    #[arg(long, value_name = "PATH")]
    pub pcap: Option<PathBuf>,

    /// Write an HTML report to FILE: one self-contained page with each scenario's sequence
    /// diagram, payloads and script. Run and test mode.
    #[arg(long, value_name = "FILE")]
    pub report_html: Option<PathBuf>,
}

/// Relay connections to a service and write what crossed as a scenario.
///
/// `sockscript record --listen ADDR --upstream ADDR` listens on ADDR, relays each client to the
/// service at the upstream address, and when N connections have closed (or on Ctrl-C) writes a
/// scenario that replays them: the recorded clients against the service (`--side client`), or
/// the recorded service to a client under test (`--side server`). A scenario file named
/// `record` runs as `sockscript ./record`.
#[derive(Debug, Parser)]
#[command(name = "sockscript record", max_term_width = 100)]
pub struct Record {
    /// Where clients connect: the proxy's address (port 0 picks one; it is printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,

    /// The service to relay to.
    #[arg(long, value_name = "ADDR")]
    pub upstream: String,

    /// Write the scenario to FILE rather than to stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Which end the scenario plays.
    #[arg(long, value_enum, default_value_t = Side::Client)]
    pub side: Side,

    /// Stop once N connections have closed [default: at Ctrl-C].
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,

    /// Deadline of each connect to the upstream.
    #[arg(long, value_name = "D", default_value = "5s")]
    pub timeout: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// Play the recorded clients against the service, checking its answers.
    Client,
    /// Listen and play the recorded service to a client under test, checking its requests.
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}
