//! The rhai bindings: an engine per scenario whose functions call into `net`, the task threads
//! of `spawn`, the assertions, and the modules scripts import (`modules`, `imports`,
//! `std/*.rhai`). Nothing here knows about the command line or reports: a scenario goes in as
//! source text and comes out as `Ok(())` or a [`Failure`] with rhai positions.
//! Between the two, `send_ref.rs` rewrites the compiled script so that `conn.send(blob)` sends a
//! Blob variable where it lies instead of the copy rhai makes of a method's arguments.

mod assert;
mod binary;
mod context;
mod engine;
mod error;
mod imports;
mod limits;
mod modules;
mod net;
mod process;
mod proxy;
mod send_ref;
mod stream;
mod task;
mod value;
mod ws;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, ParseError, Position, Scope, AST};

use crate::net::{CancelReason, ErrorKind, Session};
use crate::redact::Redactor;

pub use engine::{ELEMENT_BYTES, MAP_ENTRY_BYTES};
use error::{abort, catchable_kind};
pub use error::{abort_of, catchable_map, plain_message, Abort, AssertionFailure};
pub use imports::{ImportRoot, ModuleSources};
pub use limits::size_text;
pub use modules::{call_site as std_call_site, is_std as is_std_module};
pub use value::{parse_deadline, parse_duration, parse_var};

/// What a script may use, so a runaway script cannot take the machine down.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Tasks a scenario may start.
    pub max_tasks: usize,
    /// rhai operations a scenario's script (each task counted apart) may run; 0 for no limit.
    pub max_operations: u64,
    /// The bytes one value may hold: a string's bytes; an array's elements, a Blob's bytes and
    /// a map's entries, nested ones included, at `ELEMENT_BYTES` and `MAP_ENTRY_BYTES` each.
    /// Also the bytes a channel may queue.
    pub max_data: usize,
    /// The bytes a scenario may `print` in test mode, where its output is kept for the reports.
    pub max_output: usize,
    /// The size of a scenario file.
    pub max_script: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tasks: 10_000,
            max_operations: 10_000_000_000,
            max_data: 64 * 1024 * 1024,
            max_output: 16 * 1024 * 1024,
            max_script: 16 * 1024 * 1024,
        }
    }
}

/// How a scenario runs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// The deadline of the whole scenario.
    pub max_time: Duration,
    /// `--var` constants, visible to the script by name.
    pub vars: Vec<(String, Dynamic)>,
    pub limits: Limits,
    /// The secrets, masked in what `print` writes.
    pub redactor: Redactor,
    /// What `env(name)` may read.
    pub env: EnvAccess,
    /// Which programs `exec` may start.
    pub exec: ExecAccess,
    /// Run mode: `interactive()` may hand a terminal to a stream (test mode captures output).
    pub run_mode: bool,
    /// Where `import` finds modules; `None` for a script with no file (nothing to import).
    pub imports: Option<ImportRoot>,
}

/// Which environment variables `env(name)` may read: by default none.
#[derive(Debug, Clone, Default)]
pub struct EnvAccess {
    /// Every variable (`--allow-env '*'`).
    pub all: bool,
    /// These names (`--allow-env NAME`).
    pub names: Vec<String>,
    /// Names that start with one of these (`SOCKSCRIPT_VAR_`, `SOCKSCRIPT_SECRET_`).
    pub prefixes: Vec<String>,
}

impl EnvAccess {
    pub fn allows(&self, name: &str) -> bool {
        self.all
            || self.names.iter().any(|n| n == name)
            || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }
}

/// Which programs `exec` may start: by default none (`--allow-exec`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ExecAccess {
    #[default]
    Denied,
    /// `--allow-exec`: any program.
    All,
    /// `--allow-exec=PROG,...`: these, as [`crate::net::process::resolve`] finds them; `exec`
    /// resolves its `argv[0]` the same way and must land on one of these paths.
    Programs(Vec<std::path::PathBuf>),
}

/// Where `print` goes: stdout as it happens (run mode), or a per-scenario buffer (test mode).
#[derive(Clone)]
pub enum Output {
    Stdout,
    Capture(Arc<Mutex<String>>),
}

impl Output {
    fn line(&self, text: &str) {
        match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
                    stdout_lost(&e);
                }
            }
            Output::Capture(buf) => {
                let mut buf = buf.lock().unwrap_or_else(|p| p.into_inner());
                buf.push_str(text);
                buf.push('\n');
            }
        }
    }
}

/// Say once, on stderr, that the script's output cannot be written (a closed pipe, a full
/// disk): it would otherwise be lost without a word. The scenario goes on and keeps its outcome.
fn stdout_lost(error: &std::io::Error) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "warning: cannot write the script's output to stdout ({}); the rest of it is lost",
        error.kind()
    );
}

/// Where a failure happened when it was not the main script: the task and its `spawn`.
#[derive(Debug, Clone)]
pub struct TaskOrigin {
    pub name: String,
    pub spawned_at: Position,
}

/// Why a scenario did not pass.
#[derive(Debug)]
pub enum Failure {
    /// The script does not compile.
    Compile(ParseError),
    /// An uncaught error or a failed assertion, in the main script or in a task.
    Raised {
        error: Box<EvalAltResult>,
        task: Option<TaskOrigin>,
    },
    /// The scenario ran past `--max-time`; where the main script was stopped, if known.
    MaxTime(Duration, Position),
    /// The run was interrupted (Ctrl-C, SIGTERM); where the main script was, if known.
    Interrupted(Position),
    /// A `within` ran out while its task was inside one built-in call that kept running past
    /// it: the script cannot go on from inside that call, so the scenario stops.
    WithinOverrun {
        length: Duration,
        at: Position,
        task: String,
    },
    /// The scenario was stopped for this reason, and its main thread did not come back within
    /// [`LEFT_BEHIND_AFTER`] (it was inside one built-in call): the outcome is reported without
    /// it, and the thread is left to finish on its own.
    LeftBehind {
        cause: Box<Failure>,
        /// It was still compiling the script.
        compiling: bool,
    },
}

/// How long a stopped scenario's main thread has to come back before it is left behind, and
/// how long past a `within` a task may stay inside one built-in call before the scenario stops.
pub const LEFT_BEHIND_AFTER: Duration = Duration::from_millis(400);

/// A scenario's engine, built and waiting for its script. [`Runner::watch`] gives the
/// orchestrator what it needs to describe the scenario should its thread not come back.
pub struct Runner {
    engine: Arc<Engine>,
    imports: modules::Imports,
    ctx: Arc<task::ScriptCtx>,
    config: Config,
}

impl Runner {
    /// Build the scenario's engine over `session`.
    pub fn new(session: Arc<Session>, output: Output, config: Config) -> Runner {
        // Captured output is kept for the reports, so it is bounded; stdout keeps nothing.
        let max_output = matches!(output, Output::Capture(..)).then_some(config.limits.max_output);
        let ctx = task::ScriptCtx::new(session, output, config.limits.max_tasks, max_output);
        let (engine, imports) = engine::build(&ctx, &config);
        Runner {
            engine: Arc::new(engine),
            imports,
            ctx,
            config,
        }
    }

    pub fn watch(&self) -> Watch {
        Watch {
            ctx: self.ctx.clone(),
            max_time: self.config.max_time,
        }
    }

    /// Compile `source` against this engine.
    pub fn compile(self, source: &str) -> Result<Scenario, Failure> {
        let ast = modules::compile(
            &self.engine,
            &self.imports,
            &var_scope(&self.config),
            source,
        )
        .map_err(Failure::Compile)?;
        let ast = Arc::new(send_ref::rewrite(ast));
        self.ctx.attach(&self.engine, &ast);
        Ok(Scenario {
            engine: self.engine,
            ast,
            ctx: self.ctx,
            config: self.config,
        })
    }
}

/// What the orchestrator keeps of a scenario whose thread it may leave behind.
pub struct Watch {
    ctx: Arc<task::ScriptCtx>,
    max_time: Duration,
}

impl Watch {
    /// Why the scenario stopped, for when its main thread did not come back to say so.
    pub fn left_behind(&self) -> Failure {
        let cause = match self.ctx.session.cancel_reason() {
            Some(CancelReason::Interrupted) => Failure::Interrupted(Position::NONE),
            Some(CancelReason::WithinOverrun) => match self.ctx.take_overrun() {
                Some(o) => o.into_failure(),
                None => Failure::MaxTime(self.max_time, Position::NONE),
            },
            Some(CancelReason::TaskFailed) => match self.ctx.take_failure() {
                Some(f) => Failure::Raised {
                    error: f.error,
                    task: Some(f.origin),
                },
                None => Failure::MaxTime(self.max_time, Position::NONE),
            },
            _ => Failure::MaxTime(self.max_time, Position::NONE),
        };
        Failure::LeftBehind {
            cause: Box::new(cause),
            compiling: !self.ctx.is_attached(),
        }
    }
}

/// A compiled scenario, ready to run once.
pub struct Scenario {
    engine: Arc<Engine>,
    ast: Arc<AST>,
    ctx: Arc<task::ScriptCtx>,
    config: Config,
}

impl Scenario {
    /// Build the scenario's engine over `session` and compile `source`.
    pub fn compile(
        source: &str,
        session: Arc<Session>,
        output: Output,
        config: Config,
    ) -> Result<Scenario, Failure> {
        Runner::new(session, output, config).compile(source)
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.ctx.session
    }

    /// Run the main script to its end, then stop the tasks still blocked. Fails with the first
    /// failure of any task, or of the main script. The scenario's clock (`--max-time`) is the
    /// caller's: it cancels the session.
    pub fn run(self) -> Result<(), Failure> {
        let session = self.ctx.session.clone();
        context::set_task("main");
        let mut scope = var_scope(&self.config);
        let main = self.engine.run_ast_with_scope(&mut scope, &self.ast);

        // Stop the tasks before main's handles close (dropping the scope would close them), so
        // a task still reading from main sees cancellation, not an EOF that main caused.
        let reason = session.cancel_reason();
        session.cancel(CancelReason::Finished);
        self.ctx.join_tasks();
        drop(scope);
        let task_failure = self.ctx.take_failure();
        let over_output = self.ctx.printed.dropped() > 0;
        if over_output {
            self.ctx.output.line(&self.ctx.printed.marker());
        }

        let result = match (reason, main, task_failure) {
            (Some(CancelReason::MaxTime), main, _) => Err(Failure::MaxTime(
                self.config.max_time,
                main.err().map_or(Position::NONE, |e| e.position()),
            )),
            (Some(CancelReason::Interrupted), main, _) => Err(Failure::Interrupted(
                main.err().map_or(Position::NONE, |e| e.position()),
            )),
            (Some(CancelReason::WithinOverrun), main, _) => Err(match self.ctx.take_overrun() {
                Some(o) => o.into_failure(),
                None => Failure::MaxTime(
                    self.config.max_time,
                    main.err().map_or(Position::NONE, |e| e.position()),
                ),
            }),
            // Output cut at its limit fails a scenario that would have passed.
            (_, Ok(()), None) if over_output => Err(Failure::Raised {
                error: abort(Abort::Limit(self.ctx.printed.message()), Position::NONE),
                task: None,
            }),
            (_, Ok(()), None) => Ok(()),
            // A task that failed is the cause when main only saw its consequence: cancellation,
            // or the connection the failing task dropped as it unwound.
            (_, Err(error), Some(_)) if !is_consequence(&error) => {
                Err(Failure::Raised { error, task: None })
            }
            (_, _, Some(f)) => Err(Failure::Raised {
                error: f.error,
                task: Some(f.origin),
            }),
            (_, Err(error), None) if matches!(abort_of(&error), Some(Abort::Cancelled)) => {
                Err(Failure::Interrupted(error.position()))
            }
            (_, Err(error), None) => Err(Failure::Raised { error, task: None }),
        };
        self.ctx.detach();
        result
    }
}

/// Whether main's error is what a failing task causes: being cancelled, or the other end of a
/// connection closing under it.
fn is_consequence(error: &EvalAltResult) -> bool {
    if matches!(abort_of(error), Some(Abort::Cancelled)) {
        return true;
    }
    error.is_catchable()
        && matches!(
            catchable_kind(error),
            Some(ErrorKind::Eof | ErrorKind::ConnectionReset | ErrorKind::Closed)
        )
}

fn var_scope(config: &Config) -> Scope<'static> {
    let mut scope = Scope::new();
    for (name, value) in &config.vars {
        scope.push_constant_dynamic(name.clone(), value.clone());
    }
    scope
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use rhai::Engine;

    /// What sockscript registers on its engine, read from the engine's own metadata, as the
    /// README writes it: functions and methods as `name(`, property getters (`get$name`) and
    /// setters (`set$name`) as `.name`. A signature a bare `Engine::new()` has too is rhai's own
    /// library; one that overloads a name of it for sockscript's types (`sleep("150ms")`,
    /// `blob.to_hex()`) is sockscript's.
    fn registered_names() -> BTreeSet<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let session = crate::net::Session::new(
            runtime.handle().clone(),
            Duration::from_secs(1),
            crate::net::Limits::default(),
            crate::transcript::Transcript::new(Instant::now(), crate::transcript::DEFAULT_CAPTURE),
        );
        let config = super::Config {
            max_time: Duration::from_secs(1),
            vars: Vec::new(),
            limits: super::Limits::default(),
            redactor: crate::redact::Redactor::default(),
            env: super::EnvAccess::default(),
            exec: super::ExecAccess::Denied,
            run_mode: false,
            imports: None,
        };
        let ctx = super::task::ScriptCtx::new(session, super::Output::Stdout, 1, None);
        let (ours, _) = super::engine::build(&ctx, &config);
        let theirs: BTreeSet<String> = Engine::new().gen_fn_signatures(true).into_iter().collect();
        ours.gen_fn_signatures(true)
            .into_iter()
            .filter(|signature| !theirs.contains(signature))
            .filter_map(|signature| {
                // `name(param: Type, ...) -> Type`; a property's name is `get$x` or `set$x`.
                let name = signature.split('(').next()?;
                // What `print` and `debug` call on a handle: the README shows what they print.
                if matches!(name, "to_string" | "to_debug") {
                    return None;
                }
                Some(
                    match name.strip_prefix("get$").or(name.strip_prefix("set$")) {
                        Some(property) => format!(".{property}"),
                        None => format!("{name}("),
                    },
                )
            })
            .collect()
    }

    /// The README's function reference must name every function, method and property that
    /// sockscript registers.
    #[test]
    fn readme_documents_every_registered_name() {
        let readme = include_str!("../../README.md");
        let reference = readme
            .split_once("\n## Function reference\n")
            .and_then(|(_, rest)| rest.split("\n## ").next())
            .expect("README.md has a `## Function reference` section");
        // A name counts where it is code (`sleep(d)`, `task.name`, an example) written as a
        // call or a property, not where it is a word of the prose ("name", "close").
        let span = regex::Regex::new("`[^`]+`").expect("regex");
        let mut code: Vec<&str> = Vec::new();
        let mut fenced = false;
        for line in reference.lines() {
            if line.starts_with("```") {
                fenced = !fenced;
            } else if fenced {
                code.push(line);
            } else {
                code.extend(span.find_iter(line).map(|m| m.as_str()));
            }
        }
        let names = registered_names();
        assert!(
            names.len() > 40,
            "only {} names registered: {names:?}",
            names.len()
        );
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| {
                // `.name` ends at a word boundary; `name(` starts at one.
                let word = match name.strip_prefix('.') {
                    Some(property) => format!(r"\.{}\b", regex::escape(property)),
                    None => format!(r"\b{}", regex::escape(name)),
                };
                let word = regex::Regex::new(&word).expect("regex");
                !code.iter().any(|span| word.is_match(span))
            })
            .collect();
        // `spawn` is custom syntax (`spawn(|| ...)`), not a registered function.
        assert!(reference.contains("spawn(closure)"));
        assert!(
            missing.is_empty(),
            "not in the README's function reference: {missing:?}"
        );
    }
}
