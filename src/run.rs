//! Orchestration: load scenarios, run them (one in run mode, many in parallel in test mode),
//! collect outcomes, hand them to the reports, and choose the exit code.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use tokio::runtime::Runtime;

use crate::diagnostic;
use crate::escape;
use crate::net::{CancelReason, Session};
use crate::options::{Mode, Options};
use crate::outcome::{Outcome, Status};
use crate::report::{self, console};
use crate::scenario::{self, LoadError, Scenario};
use crate::script::{self, Output};
use crate::transcript::{render_event, Transcript};

pub fn run(options: Options) -> u8 {
    // Thousands of connections in one scenario should not need the user to touch `ulimit`.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sockscript-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            console::eprintln(&format!("error: cannot start the async runtime: {e}"));
            return crate::EXIT_ERROR;
        }
    };
    let interrupt = Interrupt::install(&runtime);
    let code = match &options.mode {
        Mode::Run(path) => run_one(&runtime, &options, &interrupt, path),
        Mode::Test(paths) => run_suite(&runtime, &options, &interrupt, paths),
    };
    runtime.shutdown_background();
    if interrupt.is_set() {
        return crate::EXIT_INTERRUPTED;
    }
    code
}

/// Ctrl-C and SIGTERM: the first stops every running scenario (their blocked calls return at
/// once) and lets the run report what it has; a second one exits at once.
pub struct Interrupt {
    set: AtomicBool,
    sessions: Mutex<Vec<Weak<Session>>>,
}

impl Interrupt {
    fn install(runtime: &Runtime) -> Arc<Interrupt> {
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
                console::eprintln(
                    "\ninterrupted: stopping the running scenarios (again to exit at once)",
                );
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
fn run_one(runtime: &Runtime, options: &Options, interrupt: &Interrupt, path: &Path) -> u8 {
    let max_size = options.script_limits.max_script;
    let scenario = match Scenario::load(path, path.display().to_string(), max_size) {
        Ok(s) => s,
        Err(e) => {
            console::eprintln(&format!("error: {}", escape::text(&e.to_string())));
            return match e {
                LoadError::Unreadable(_) | LoadError::TooLarge(_) => crate::EXIT_USAGE,
                LoadError::NotText(_) => crate::EXIT_COMPILE,
            };
        }
    };
    let outcome = execute(
        runtime,
        options,
        interrupt,
        &scenario,
        Output::Stdout,
        options.trace,
    );
    if let Some(diag) = &outcome.diagnostic {
        console::eprint(&diag.render(options.color));
    }
    outcome.status.exit_code()
}

/// Test mode: every selected scenario, in parallel, each one's output captured.
fn run_suite(
    runtime: &Runtime,
    options: &Options,
    interrupt: &Interrupt,
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
    let files = scenario::select(found, &options.filters, shard);
    if files.is_empty() && !options.filters.is_empty() && shard.is_none() {
        console::eprintln(&format!(
            "error: no scenario matches --filter {}",
            escape::line(&options.filters.join(", "))
        ));
        return crate::EXIT_USAGE;
    }
    let started = Instant::now();
    let progress = Progress::new(files.len(), options);
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; files.len()]);
    std::thread::scope(|s| {
        for _ in 0..options.jobs.min(files.len()) {
            s.spawn(|| loop {
                if interrupt.is_set() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, name)) = files.get(i) else {
                    break;
                };
                progress.start(name);
                let outcome = run_with_retries(runtime, options, interrupt, path, name);
                let mut text = report::terminal::status_line(&outcome);
                if options.trace {
                    text.push_str(&report::terminal::transcript(&outcome));
                }
                progress.finish(name, &text);
                outcomes.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(outcome);
            });
        }
    });
    progress.clear();
    let outcomes: Vec<Outcome> = outcomes
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let elapsed = started.elapsed();
    // Reports first, so a report that cannot be written is said before the summary, whose
    // last line stays `N passed, N failed`.
    let written = report::write_all(&options.reports, &outcomes, elapsed);
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

/// Run a scenario, again up to `--retry` times while it does not pass. A script that does
/// not compile is not retried: it cannot change.
fn run_with_retries(
    runtime: &Runtime,
    options: &Options,
    interrupt: &Interrupt,
    path: &Path,
    name: &str,
) -> Outcome {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let max_size = options.script_limits.max_script;
        let mut outcome = match Scenario::load(path, name.to_owned(), max_size) {
            Ok(scenario) => {
                let buf = Arc::new(Mutex::new(String::new()));
                let mut o = execute(
                    runtime,
                    options,
                    interrupt,
                    &scenario,
                    Output::Capture(buf.clone()),
                    false,
                );
                o.stdout = std::mem::take(&mut *buf.lock().unwrap_or_else(|p| p.into_inner()));
                o
            }
            Err(e) => unreadable(name, e),
        };
        outcome.attempts = attempts;
        let again =
            matches!(outcome.status, Status::Failed | Status::Errored) && !interrupt.is_set();
        if !again || attempts > options.retry {
            return outcome;
        }
    }
}

/// Test mode's live view: a progress bar on a terminal, plain lines everywhere else (CI, pipes).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    running: Mutex<Vec<String>>,
}

impl Progress {
    fn new(total: usize, options: &Options) -> Progress {
        use std::io::IsTerminal;
        let interactive =
            std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() && !options.trace;
        let bar = interactive.then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{pos}/{len}] {elapsed} {wide_msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            running: Mutex::new(Vec::new()),
        }
    }

    fn start(&self, name: &str) {
        if let Some(bar) = &self.bar {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.push(name.to_owned());
            bar.set_message(escape::line(&running.join(", ")).into_owned());
        }
    }

    /// Print a finished scenario's lines whole, so parallel scenarios never interleave.
    fn finish(&self, name: &str, text: &str) {
        match &self.bar {
            Some(bar) => {
                let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                running.retain(|n| n != name);
                bar.set_message(escape::line(&running.join(", ")).into_owned());
                bar.println(text.trim_end());
                bar.inc(1);
            }
            None => {
                let _guard = self.running.lock().unwrap_or_else(|p| p.into_inner());
                console::eprint(text);
            }
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn unreadable(name: &str, why: LoadError) -> Outcome {
    let (status, code) = match why {
        LoadError::Unreadable(_) => (Status::Errored, "io"),
        LoadError::TooLarge(_) => (Status::Errored, "limit"),
        LoadError::NotText(_) => (Status::CompileError, "io"),
    };
    Outcome {
        name: name.to_owned(),
        status,
        duration: std::time::Duration::ZERO,
        connections: 0,
        stdout: String::new(),
        transcript: Vec::new(),
        diagnostic: Some(diagnostic::Diag::plain(code, why.to_string(), name)),
        attempts: 1,
    }
}

/// Compile and run one scenario to an [`Outcome`], due by its deadline whatever its script is
/// doing: the script runs on a thread of its own, and a thread that does not come back within
/// [`script::LEFT_BEHIND_AFTER`] of the scenario being stopped (`--max-time`, an interrupt, a
/// failed task, an overrun `within`) is left behind. It stops at its next rhai operation; the
/// process does not wait for it.
pub fn execute(
    runtime: &Runtime,
    options: &Options,
    interrupt: &Interrupt,
    scenario: &Scenario,
    output: Output,
    live_trace: bool,
) -> Outcome {
    let started = Instant::now();
    let transcript = if live_trace {
        let redactor = options.redactor.clone();
        Transcript::with_live(started, move |event| {
            let event = redactor.event(event);
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{}", render_event(&event));
        })
    } else {
        Transcript::new(started)
    };
    let session = Session::new(
        runtime.handle().clone(),
        options.timeout,
        options.net_limits.clone(),
        transcript.clone(),
    );
    interrupt.register(&session);
    let config = script::Config {
        max_time: options.max_time,
        vars: options.vars.clone(),
        limits: options.script_limits.clone(),
        redactor: options.redactor.clone(),
        env: options.env.clone(),
    };
    // The scenario's clock runs from here, so compiling a huge script counts too.
    let clock = {
        let session = session.clone();
        let max_time = options.max_time;
        runtime.spawn(async move {
            tokio::select! {
                _ = session.token().cancelled() => {}
                _ = tokio::time::sleep(max_time) => session.cancel(CancelReason::MaxTime),
            }
        })
    };
    let runner = script::Runner::new(session.clone(), output, config);
    let watch = runner.watch();
    let result = match run_on_own_thread(runner, scenario.source.clone(), options.check) {
        Ok(done) => wait_for_script(runtime, &session, options, started, done)
            .unwrap_or_else(|| Err(watch.left_behind())),
        Err(e) => Err(script::Failure::Raised {
            error: format!("cannot start the scenario's thread: {e}").into(),
            task: None,
        }),
    };
    clock.abort();
    let duration = started.elapsed();
    let (status, diagnostic) = match result {
        Ok(()) => (Status::Passed, None),
        Err(failure) => {
            let (status, diag) = diagnostic::describe(
                &failure,
                &scenario.name,
                &scenario.source,
                options.timeout,
                &options.redactor,
            );
            (status, Some(diag))
        }
    };
    let (events, _dropped) = transcript.snapshot();
    let mut outcome = Outcome {
        name: scenario.name.clone(),
        status,
        duration,
        connections: session.connections(),
        stdout: String::new(),
        transcript: events,
        diagnostic,
        attempts: 1,
    };
    // Once, before any view (terminal, `--trace`, reports) reads it.
    options.redactor.outcome(&mut outcome);
    outcome
}

type ScriptResult = Result<(), script::Failure>;

/// Stack of a scenario's main thread: deep enough for rhai's call depth limit.
const SCRIPT_STACK: usize = 8 * 1024 * 1024;

/// Compile and run (or only compile, for `--check`) on a new thread; its result comes back on
/// the channel returned.
fn run_on_own_thread(
    runner: script::Runner,
    source: String,
    check_only: bool,
) -> std::io::Result<tokio::sync::oneshot::Receiver<ScriptResult>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sockscript main".into())
        .stack_size(SCRIPT_STACK)
        .spawn(move || {
            let result =
                runner.compile(&source).and_then(
                    |compiled| {
                        if check_only {
                            Ok(())
                        } else {
                            compiled.run()
                        }
                    },
                );
            let _ = tx.send(result);
        })?;
    Ok(rx)
}

/// The script's result, or `None` when it did not come back in time: [`LEFT_BEHIND_AFTER`]
/// after the scenario was stopped for a reason other than its main script finishing, or after
/// `--max-time` whatever happened.
///
/// [`LEFT_BEHIND_AFTER`]: script::LEFT_BEHIND_AFTER
fn wait_for_script(
    runtime: &Runtime,
    session: &Session,
    options: &Options,
    started: Instant,
    mut done: tokio::sync::oneshot::Receiver<ScriptResult>,
) -> Option<ScriptResult> {
    let grace = script::LEFT_BEHIND_AFTER;
    let last_call = crate::net::bridge::deadline_after(options.max_time.saturating_add(grace));
    let last_call = std::cmp::max(last_call, started);
    runtime.block_on(async {
        loop {
            let stopped = session
                .cancelled_at()
                .filter(|_| session.cancel_reason() != Some(CancelReason::Finished));
            let give_up = match stopped {
                Some(at) => std::cmp::min(at + grace, last_call),
                None => last_call,
            };
            tokio::select! {
                result = &mut done => {
                    return Some(result.unwrap_or_else(|_| {
                        Err(script::Failure::Raised {
                            error: "the scenario's thread ended without a result".into(),
                            task: None,
                        })
                    }));
                }
                // Look again once the scenario is stopped: that starts the grace.
                _ = session.token().cancelled(), if stopped.is_none()
                    && !session.is_cancelled() => {}
                _ = tokio::time::sleep_until(give_up.into()) => return None,
            }
        }
    })
}
