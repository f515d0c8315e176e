//! Orchestration: load scenarios, run them (one in run mode, many in parallel in test mode),
//! collect outcomes, hand them to the reports, and choose the exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::runtime::{Handle, Runtime};

use crate::diagnostic;
use crate::escape;
use crate::net::Proxy;
use crate::net::{CancelReason, ErrorKind, Session};
use crate::options::{Mode, Options, Recording};

use crate::outcome::{Outcome, Status};
use crate::report::progress::Progress;
use crate::report::{self, console};
use crate::scenario::{self, LoadError, Scenario};
use crate::script::{self, Output};
use crate::transcript::{render_event, Transcript};

pub fn run(options: Options) -> u8 {
    // Thousands of connections in one scenario should not need the user to touch `ulimit`.
    let Some(runtime) = runtime() else {
        return crate::EXIT_ERROR;
    };
    // Run mode says one word: the person who pressed Ctrl-C knows where the script was.
    let said = match options.mode {
        Mode::Run(_) => "interrupted",
        Mode::Test(_) => "\ninterrupted: stopping the running scenarios (again to exit at once)",
    };
    let interrupt = Interrupt::install(&runtime, said);
    let handle = runtime.handle();
    let code = match &options.mode {
        Mode::Run(path) => run_one(handle, &options, &interrupt, path),
        Mode::Test(paths) => run_suite(handle, &options, &interrupt, paths),
    };
    runtime.shutdown_background();
    if interrupt.is_set() {
        return crate::EXIT_INTERRUPTED;
    }
    code
}

/// The one multi-thread runtime of the process, with the open-file limit raised.
fn runtime() -> Option<Runtime> {
    // Thousands of connections in one scenario should not need the user to touch `ulimit`.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sockscript-io")
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            console::eprintln(&format!("error: cannot start the async runtime: {e}"));
            None
        }
    }
}

/// `sockscript record`: relay until enough connections have closed or Ctrl-C, then write the
/// scenario (to `--out` or stdout). Status lines go to stderr.
pub fn record(options: Recording) -> u8 {
    let Some(runtime) = runtime() else {
        return crate::EXIT_ERROR;
    };
    let interrupt = Interrupt::install(&runtime, "stopping the recording");
    let handle = runtime.handle();
    let transcript = Transcript::new(Instant::now(), RECORD_CAPTURE);
    let limits = crate::net::Limits {
        capture: RECORD_CAPTURE,
        ..crate::net::Limits::default()
    };
    let session = Session::new(handle.clone(), options.timeout, limits, transcript.clone());
    interrupt.register(&session);
    let call = crate::net::Call::new(Arc::from("record"), None, None);
    let proxy_options = crate::net::ProxyOptions {
        connect_timeout: Some(options.timeout),
        faults: Vec::new(),
    };
    let proxy = match Proxy::start(
        &session,
        &call,
        &options.listen,
        &options.upstream,
        proxy_options,
    ) {
        Ok(p) => p,
        Err(e) => {
            console::eprintln(&format!("error: {}", escape::text(&e.message)));
            return crate::EXIT_ERROR;
        }
    };
    let until = match options.connections {
        Some(n) => format!(
            "until {n} connection{} have closed",
            if n == 1 { "" } else { "s" }
        ),
        None => "until Ctrl-C".to_owned(),
    };
    console::eprintln(&format!(
        "recording on {} for {}, {until}",
        proxy.local().text,
        escape::text(&options.upstream)
    ));
    handle
        .block_on(proxy.wait_finished(options.connections.unwrap_or(usize::MAX), session.token()));
    session.cancel(CancelReason::Finished);
    let (events, _) = transcript.snapshot();
    runtime.shutdown_background();
    let conversations = match crate::record::conversations(&events, crate::net::proxy::TASK) {
        Ok(c) => c,
        Err(e) => {
            console::eprintln(&format!("error: {e}"));
            return crate::EXIT_ERROR;
        }
    };
    let meta = crate::record::Meta {
        listen: proxy.local().text.to_string(),
        upstream: options.upstream.clone(),
        when: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    let text = crate::record::scenario(&conversations, options.side, &meta);
    let written = match &options.out {
        Some(path) => {
            crate::report::write_file(path, &text).map_err(|e| (path.display().to_string(), e))
        }
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| ("stdout".to_owned(), e)),
    };
    if let Err((to, e)) = written {
        console::eprintln(&format!("error: cannot write {}: {e}", escape::text(&to)));
        return crate::EXIT_ERROR;
    }
    let n = conversations.len();
    console::eprintln(&format!(
        "recorded {n} connection{}{}",
        if n == 1 { "" } else { "s" },
        options.out.as_ref().map_or(String::new(), |p| format!(
            " into {}",
            escape::text(&p.display().to_string())
        ))
    ));
    crate::EXIT_OK
}

/// Payload bytes a recording keeps whole: what it writes out must be whole.
const RECORD_CAPTURE: usize = 256 * 1024 * 1024;

/// Ctrl-C and SIGTERM: the first stops every running scenario (their blocked calls return at
/// once), says so (`said`) and lets the run report what it has; a second one exits at once.
pub struct Interrupt {
    set: AtomicBool,
    sessions: Mutex<Vec<Weak<Session>>>,
}

impl Interrupt {
    fn install(runtime: &Runtime, said: &'static str) -> Arc<Interrupt> {
        let interrupt = Arc::new(Interrupt {
            set: AtomicBool::new(false),
            sessions: Mutex::new(Vec::new()),
        });
        let watcher = interrupt.clone();
        runtime.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            let mut seen = 0;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                seen += 1;
                if seen > 1 {
                    console::eprintln("\ninterrupted again: exiting now");
                    std::process::exit(i32::from(crate::EXIT_INTERRUPTED));
                }
                console::eprintln(said);
                watcher.trigger();
            }
        });
        interrupt
    }

    fn trigger(&self) {
        self.set.store(true, Ordering::SeqCst);
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|p| p.into_inner()));
        for session in sessions.iter().filter_map(Weak::upgrade) {
            session.cancel(CancelReason::Interrupted);
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Watch `session`; if the run was already interrupted, stop it now.
    fn register(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|s| s.strong_count() > 0);
        sessions.push(Arc::downgrade(session));
        drop(sessions);
        if self.is_set() {
            session.cancel(CancelReason::Interrupted);
        }
    }
}

/// Run mode: the script's output as it happens, its failure as a diagnostic on stderr.
fn run_one(handle: &Handle, options: &Options, interrupt: &Arc<Interrupt>, path: &Path) -> u8 {
    let max_size = options.script_limits.max_script;
    let tree = scenario::tree_of_file(path);
    let scenario = match Scenario::load(path, path.display().to_string(), &tree, max_size) {
        Ok(s) => s,
        Err(e) => {
            console::eprintln(&format!("error: {}", escape::text(&e.to_string())));
            return match e {
                LoadError::Unreadable(_) | LoadError::TooLarge(_) => crate::EXIT_USAGE,
                LoadError::NotText(_) => crate::EXIT_COMPILE,
            };
        }
    };
    // The script runs on this thread; should it be left behind, the outcome is said from the
    // runtime and the process ends there, with the exit code it would have had.
    let left_behind: LeftBehind = {
        let (color, interrupt) = (options.color, interrupt.clone());
        let reports = options.reports.clone();
        Arc::new(move |outcome: Outcome| {
            if let Some(diag) = outcome.diagnostic.as_ref().filter(|_| !interrupt.is_set()) {
                console::eprint(&diag.render(color));
            }
            let code = if interrupt.is_set() {
                crate::EXIT_INTERRUPTED
            } else {
                run_reports(&reports, outcome)
            };
            std::process::exit(i32::from(code));
        })
    };
    let Some(outcome) = execute(
        handle,
        options,
        interrupt,
        &scenario,
        Output::Stdout,
        options.trace,
        left_behind,
    ) else {
        // Left behind: the runtime is ending the process.
        loop {
            std::thread::park();
        }
    };
    if options.trace && !outcome.dropped.is_empty() {
        console::eprintln(&outcome.dropped.describe());
    }
    // An interrupted run has said `interrupted` already.
    if let Some(diag) = outcome.diagnostic.as_ref().filter(|_| !interrupt.is_set()) {
        console::eprint(&diag.render(options.color));
    }
    run_reports(&options.reports, outcome)
}

/// Run mode's report files (the formats that do not ask for a suite: Markdown, pcap), and the
/// exit code: the outcome's, or a usage error when it passed but a report was not written.
fn run_reports(reports: &[(report::Format, PathBuf)], mut outcome: Outcome) -> u8 {
    let code = outcome.status.exit_code();
    let files = report::Files::new(reports, false);
    files.scenario(&mut outcome);
    let duration = outcome.duration;
    if !files.finish(std::slice::from_ref(&outcome), duration) && code == crate::EXIT_OK {
        return crate::EXIT_USAGE;
    }
    code
}

/// Test mode: every selected scenario, in parallel, each one's output captured.
fn run_suite(
    handle: &Handle,
    options: &Options,
    interrupt: &Arc<Interrupt>,
    paths: &[std::path::PathBuf],
) -> u8 {
    let found = match scenario::discover(paths) {
        Ok(f) => f,
        Err(e) => {
            console::eprintln(&format!("error: {}", escape::text(&e)));
            return crate::EXIT_USAGE;
        }
    };
    if found.is_empty() {
        console::eprintln("error: no `.rhai` scenarios found");
        return crate::EXIT_USAGE;
    }
    let shard = options.partition.map(|p| (p.k, p.n));
    let files = scenario::select(found, &options.filters, &options.excludes, shard);
    if files.is_empty() && shard.is_none() {
        let filters = escape::line(&options.filters.join(", ")).into_owned();
        let excludes = escape::line(&options.excludes.join(", ")).into_owned();
        console::eprintln(&match (filters.is_empty(), excludes.is_empty()) {
            (false, true) => format!("error: no scenario matches --filter {filters}"),
            (true, false) => format!("error: --exclude {excludes} leaves no scenario"),
            _ => format!(
                "error: no scenario matches --filter {filters} but not --exclude {excludes}"
            ),
        });
        return crate::EXIT_USAGE;
    }
    let started = Instant::now();
    let suite = Arc::new(Suite {
        handle: handle.clone(),
        options: options.clone(),
        interrupt: interrupt.clone(),
        progress: Progress::new(files.len(), options.trace),
        state: Mutex::new(SuiteState {
            next: 0,
            outcomes: vec![None; files.len()],
            workers: 0,
        }),
        changed: Condvar::new(),
        files,
        reports: report::Files::new(&options.reports, true),
    });
    for _ in 0..options.jobs.min(suite.files.len()) {
        suite.start_worker(None);
    }
    let outcomes = suite.wait();
    suite.progress.clear();
    let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    // Reports first, so a report that cannot be written is said before the summary, whose
    // last line stays `N passed, N failed`.
    let written = suite.reports.finish(&outcomes, elapsed);
    console::eprint(&report::terminal::summary(
        &outcomes,
        elapsed,
        options.color,
    ));
    let code = outcomes
        .iter()
        .map(|o| o.status)
        .max_by_key(|s| s.severity())
        .map_or(crate::EXIT_OK, Status::exit_code);
    if !written && code == crate::EXIT_OK {
        return crate::EXIT_USAGE;
    }
    code
}

/// A test-mode run: workers take the scenarios in order and run each on their own thread. A
/// worker whose scenario is left behind (stuck inside one built-in call past its deadline) is
/// left with it, and a new worker takes its place, so the suite goes on and ends on time.
struct Suite {
    handle: Handle,
    options: Options,
    interrupt: Arc<Interrupt>,
    files: Vec<scenario::Found>,
    /// The report files: each scenario's as it ends, the suite's at the end.
    reports: report::Files,
    progress: Progress,
    state: Mutex<SuiteState>,
    /// Signalled when a worker stops.
    changed: Condvar,
}

struct SuiteState {
    /// The next scenario to take.
    next: usize,
    outcomes: Vec<Option<Outcome>>,
    /// Workers still taking scenarios; the suite is over when none is.
    workers: usize,
}

impl Suite {
    fn lock(&self) -> std::sync::MutexGuard<'_, SuiteState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a worker; `resume` is a scenario to run again first (after `attempts` attempts).
    fn start_worker(self: &Arc<Self>, resume: Option<(usize, u32)>) {
        self.lock().workers += 1;
        let suite = self.clone();
        let started = std::thread::Builder::new()
            .name("sockscript worker".into())
            .stack_size(SCRIPT_STACK)
            .spawn(move || suite.work(resume));
        if let Err(e) = started {
            console::eprintln(&format!("error: cannot start a worker thread: {e}"));
            self.worker_stopped();
        }
    }

    fn worker_stopped(&self) {
        self.lock().workers -= 1;
        self.changed.notify_all();
    }

    /// Every outcome, once no worker is left taking scenarios (all ran, or the run was
    /// interrupted and the running ones have ended).
    fn wait(&self) -> Vec<Option<Outcome>> {
        let mut state = self.lock();
        while state.workers > 0 {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        std::mem::take(&mut state.outcomes)
    }

    fn work(self: Arc<Self>, mut resume: Option<(usize, u32)>) {
        loop {
            let (i, attempts) = match resume.take() {
                Some(at) => at,
                None => {
                    let mut state = self.lock();
                    if self.interrupt.is_set() || state.next >= self.files.len() {
                        break;
                    }
                    let i = state.next;
                    state.next += 1;
                    drop(state);
                    self.progress.start(&self.files[i].name);
                    (i, 0)
                }
            };
            match self.run_with_retries(i, attempts) {
                Some(outcome) => self.record(i, outcome),
                // Left behind: the worker that took this one's place counts for it.
                None => return,
            }
        }
        self.worker_stopped();
    }

    /// Run scenario `i`, again up to `--retry` times while it does not pass. A script that
    /// does not compile is not retried: it cannot change. `None` when an attempt was left
    /// behind (its outcome is [`Suite::left_behind`]'s).
    fn run_with_retries(self: &Arc<Self>, i: usize, mut attempts: u32) -> Option<Outcome> {
        let scenario::Found { path, name, tree } = &self.files[i];
        loop {
            attempts += 1;
            let max_size = self.options.script_limits.max_script;
            let mut outcome = match Scenario::load(path, name.clone(), tree, max_size) {
                Ok(scenario) => {
                    let buf = Arc::new(Mutex::new(String::new()));
                    let left_behind: LeftBehind = {
                        let (suite, buf) = (self.clone(), buf.clone());
                        Arc::new(move |mut outcome: Outcome| {
                            outcome.stdout = take_output(&buf);
                            outcome.attempts = attempts;
                            suite.left_behind(i, outcome);
                        })
                    };
                    let mut o = execute(
                        &self.handle,
                        &self.options,
                        &self.interrupt,
                        &scenario,
                        Output::Capture(buf.clone()),
                        false,
                        left_behind,
                    )?;
                    o.stdout = take_output(&buf);
                    o
                }
                Err(e) => unreadable(name, e),
            };
            outcome.attempts = attempts;
            if !self.again(&outcome) {
                return Some(outcome);
            }
        }
    }

    fn again(&self, outcome: &Outcome) -> bool {
        matches!(outcome.status, Status::Failed | Status::Errored)
            && !self.interrupt.is_set()
            && outcome.attempts <= self.options.retry
    }

    /// Scenario `i`'s worker was left behind with `outcome`: a new worker takes its place (and
    /// runs the scenario again first, if `--retry` says so). Runs on the runtime.
    fn left_behind(self: &Arc<Self>, i: usize, outcome: Outcome) {
        if self.again(&outcome) {
            self.start_worker(Some((i, outcome.attempts)));
        } else {
            self.record(i, outcome);
            self.start_worker(None);
        }
        self.worker_stopped();
    }

    fn record(&self, i: usize, mut outcome: Outcome) {
        self.reports.scenario(&mut outcome);
        let mut text = report::terminal::status_line(&outcome);
        if self.options.trace {
            text.push_str(&report::terminal::transcript(&outcome));
        }
        self.progress.finish(&outcome.name, &text);
        self.lock().outcomes[i] = Some(outcome);
    }
}

fn take_output(buf: &Mutex<String>) -> String {
    std::mem::take(&mut *buf.lock().unwrap_or_else(|p| p.into_inner()))
}

fn unreadable(name: &str, why: LoadError) -> Outcome {
    let (status, code) = match why {
        LoadError::Unreadable(_) => (Status::Errored, ErrorKind::Io),
        LoadError::TooLarge(_) => (Status::Errored, ErrorKind::Limit),
        // The code says why it could not be read; the status, that it cannot run as it is.
        LoadError::NotText(_) => (Status::CompileError, ErrorKind::Io),
    };
    Outcome {
        name: name.to_owned(),
        status,
        started: std::time::SystemTime::now(),
        duration: std::time::Duration::ZERO,
        connections: 0,
        stdout: String::new(),
        transcript: Vec::new(),
        dropped: Default::default(),
        diagnostic: Some(diagnostic::Diag::plain(code, why.to_string(), name)),
        attempts: 1,
        source: "".into(),
    }
}

/// What becomes of a scenario's outcome when its thread is left behind: it is made on the
/// runtime and handed here.
pub type LeftBehind = Arc<dyn Fn(Outcome) + Send + Sync>;

/// Compile and run one scenario on this thread to an [`Outcome`], due by its deadline whatever
/// its script is doing. Should the thread not come back within [`script::LEFT_BEHIND_AFTER`]
/// of the scenario being stopped (`--max-time`, an interrupt, a failed task, an overrun
/// `within`), it is left behind: the runtime makes the outcome and hands it to `left_behind`,
/// and when the thread does come back (it stops at its next rhai operation) this returns
/// `None`. Running the script here rather than on a thread of its own saves a thread and two
/// wake-ups per scenario.
pub fn execute(
    handle: &Handle,
    options: &Options,
    interrupt: &Interrupt,
    scenario: &Scenario,
    output: Output,
    live_trace: bool,
    left_behind: LeftBehind,
) -> Option<Outcome> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let transcript = if live_trace {
        let redactor = crate::redact::LiveRedactor::new(options.redactor.clone());
        Transcript::with_live(started, options.net_limits.capture, move |event| {
            let event = redactor.event(event);
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{}", render_event(&event));
        })
    } else {
        Transcript::new(started, options.net_limits.capture)
    };
    let session = Session::new(
        handle.clone(),
        options.timeout,
        options.net_limits.clone(),
        transcript.clone(),
    );
    session.set_seed(options.seed);
    interrupt.register(&session);
    let modules = script::ModuleSources::default();
    let config = script::Config {
        max_time: options.max_time,
        vars: options.vars.clone(),
        limits: options.script_limits.clone(),
        redactor: options.redactor.clone(),
        env: options.env.clone(),
        exec: options.exec.clone(),
        run_mode: matches!(options.mode, Mode::Run(_)),
        imports: Some(script::ImportRoot {
            tree: scenario.tree.clone(),
            file: scenario.path.clone(),
            max_size: options.script_limits.max_script,
            sources: modules.clone(),
        }),
    };
    let ending = Ending {
        name: scenario.name.clone(),
        source: scenario.source.as_str().into(),
        modules,
        timeout: options.timeout,
        redactor: options.redactor.clone(),
        transcript,
        session: session.clone(),
        started,
        started_at,
        views: options.trace || !options.reports.is_empty(),
    };
    let runner = script::Runner::new(session.clone(), output, config);
    // Whoever settles the outcome first, this thread or the watch, gives it.
    let settled = Arc::new(AtomicBool::new(false));
    let watch = handle.spawn(watch_scenario(
        runner.watch(),
        ending.clone(),
        settled.clone(),
        options.max_time,
        left_behind,
    ));
    let result = runner.compile(&scenario.source).and_then(|compiled| {
        if options.check {
            Ok(())
        } else {
            compiled.run()
        }
    });
    if settled.swap(true, Ordering::SeqCst) {
        return None;
    }
    watch.abort();
    Some(ending.outcome(result))
}

/// The scenario's clock and its watch, on the runtime: at `--max-time` it stops the scenario;
/// [`script::LEFT_BEHIND_AFTER`] after the scenario was stopped (for any reason but its main
/// script finishing), or after `--max-time` and that grace whatever happened, it gives the
/// outcome without the script's thread. The clock runs from the start, so compiling counts.
async fn watch_scenario(
    watch: script::Watch,
    ending: Ending,
    settled: Arc<AtomicBool>,
    max_time: Duration,
    left_behind: LeftBehind,
) {
    let session = &ending.session;
    let grace = script::LEFT_BEHIND_AFTER;
    let time_up = crate::net::bridge::deadline_after(max_time);
    let last_call = crate::net::bridge::deadline_after(max_time.saturating_add(grace));
    loop {
        let stopped = session
            .cancelled_at()
            .filter(|_| session.cancel_reason() != Some(CancelReason::Finished));
        let give_up = match stopped {
            Some(at) => std::cmp::min(at + grace, last_call),
            None => last_call,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(time_up.into()), if !session.is_cancelled() => {
                session.cancel(CancelReason::MaxTime);
            }
            // Look again once the scenario is stopped: that starts the grace.
            _ = session.token().cancelled(), if !session.is_cancelled() => {}
            _ = tokio::time::sleep_until(give_up.into()) => break,
        }
    }
    if settled.swap(true, Ordering::SeqCst) {
        return;
    }
    left_behind(ending.outcome(Err(watch.left_behind())));
}

/// What it takes to make a scenario's outcome, on its thread or on the runtime.
#[derive(Clone)]
struct Ending {
    name: String,
    source: Arc<str>,
    /// The modules the scenario read, for a failure inside one to be drawn there.
    modules: script::ModuleSources,
    timeout: Duration,
    redactor: crate::redact::Redactor,
    transcript: Transcript,
    session: Arc<Session>,
    started: Instant,
    /// `started` by the wall clock, for views that give times of day (pcap).
    started_at: SystemTime,
    /// Whether a view reads the transcript of a scenario that passed (`--trace`, a report).
    /// Without one, a passed outcome carries no events: copying tens of thousands of them
    /// only to drop them would be the run's high point of memory.
    views: bool,
}

impl Ending {
    fn outcome(&self, result: Result<(), script::Failure>) -> Outcome {
        let duration = self.started.elapsed();
        let (status, mut diagnostic) = match result {
            Ok(()) => (Status::Passed, None),
            Err(failure) => {
                let diag = diagnostic::describe(
                    &failure,
                    &self.name,
                    &self.source,
                    &self.modules,
                    self.timeout,
                    &self.redactor,
                );
                (Status::of(&diag.code), Some(diag))
            }
        };
        let (events, dropped) = if status == Status::Passed && !self.views {
            (Vec::new(), self.transcript.dropped())
        } else {
            self.transcript.snapshot()
        };
        if let Some(diag) = &mut diagnostic {
            diag.recent_traffic(&events, &self.redactor);
            if self.session.seed_was_drawn() {
                let seed = self.session.seed();
                diag.add_help(&format!(
                    "the draws of `toxicity` came from seed {seed}: repeat them with `--seed {seed}`"
                ));
            }
        }
        let mut outcome = Outcome {
            name: self.name.clone(),
            status,
            started: self.started_at,
            duration,
            connections: self.session.connections(),
            stdout: String::new(),
            transcript: events,
            dropped,
            diagnostic,
            attempts: 1,
            source: self.source.clone(),
        };
        // Once, before any view (terminal, `--trace`, reports) reads it. Payloads stay whole
        // (within the capture) for the views that read them: `report::Files::scenario` cuts
        // them to previews once those are written, before a suite keeps the outcome.
        self.redactor.outcome(&mut outcome);
        outcome
    }
}

/// Stack of the threads scripts run on: deep enough for rhai's call depth limit.
const SCRIPT_STACK: usize = 8 * 1024 * 1024;
