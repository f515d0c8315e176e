//! Script tasks: `spawn` runs a closure on its own OS thread, against the scenario's shared
//! engine and AST. Captures are copied at spawn time, like Rust's `move`, so no two threads
//! ever wait on one rhai variable lock. The first task to fail fails the scenario and cancels
//! every blocked call. A task that would wait for itself (joining its own handle, or a task
//! that is joining it) is refused at the `join`, since it would otherwise wait until
//! `--max-time`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Position, AST};
use tokio::sync::watch;

use super::error::{abort, abort_of, Abort, ScriptResult};
use super::limits::Printed;
use super::{Output, TaskOrigin};
use crate::net::{CancelReason, ErrorKind, Session};

/// Stack of each task thread: deep enough for rhai's call depth limit.
const TASK_STACK: usize = 8 * 1024 * 1024;
/// How long the end of a scenario waits for cancelled tasks to unwind: they look at
/// cancellation on every operation, so only one stuck inside a built-in call takes longer, and
/// it is left behind.
const JOIN_GRACE: Duration = super::LEFT_BEHIND_AFTER;

/// What the engine's functions share: the session, where `print` goes, and the tasks.
pub struct ScriptCtx {
    pub session: Arc<Session>,
    pub output: Output,
    /// What `print` has kept so far, against `--limit output` in test mode.
    pub printed: Printed,
    /// Set once compiled; weak so the engine's own closures do not keep it alive.
    engine: OnceLock<Weak<Engine>>,
    ast: Mutex<Option<Arc<AST>>>,
    tasks: Mutex<Vec<Task>>,
    started: AtomicUsize,
    /// Tasks the scenario may start, so a runaway loop of `spawn` cannot exhaust the machine.
    max_tasks: usize,
    failure: Mutex<Option<TaskFailure>>,
    /// The script is compiled and given to the engine.
    attached: std::sync::atomic::AtomicBool,
    /// The `within` that a task overran inside one built-in call, if one did.
    overrun: Mutex<Option<Overrun>>,
    /// Who is waiting in `join` for whom, by task name (`main`, `task 1`, …): a join that
    /// would close a cycle here is refused.
    joins: Mutex<HashMap<Arc<str>, Arc<str>>>,
}

/// A `within` whose task stayed inside one built-in call past its deadline.
pub struct Overrun {
    pub length: Duration,
    pub at: Position,
    pub task: String,
}

impl Overrun {
    pub fn into_failure(self) -> super::Failure {
        super::Failure::WithinOverrun {
            length: self.length,
            at: self.at,
            task: self.task,
        }
    }
}

pub struct TaskFailure {
    pub origin: TaskOrigin,
    pub error: Box<EvalAltResult>,
}

impl ScriptCtx {
    /// `max_output`: the bytes `print` may keep (`None`: no limit).
    pub fn new(
        session: Arc<Session>,
        output: Output,
        max_tasks: usize,
        max_output: Option<usize>,
    ) -> Arc<Self> {
        Arc::new(ScriptCtx {
            session,
            output,
            printed: Printed::new(max_output),
            engine: OnceLock::new(),
            ast: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            started: AtomicUsize::new(0),
            max_tasks,
            failure: Mutex::new(None),
            overrun: Mutex::new(None),
            attached: std::sync::atomic::AtomicBool::new(false),
            joins: Mutex::new(HashMap::new()),
        })
    }

    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::SeqCst)
    }

    pub fn take_overrun(&self) -> Option<Overrun> {
        self.overrun
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub fn attach(&self, engine: &Arc<Engine>, ast: &Arc<AST>) {
        self.attached.store(true, Ordering::SeqCst);
        let _ = self.engine.set(Arc::downgrade(engine));
        *self.ast.lock().unwrap_or_else(|p| p.into_inner()) = Some(ast.clone());
    }

    /// Drop the AST so its closures (which hold handles) are freed with the scenario.
    pub fn detach(&self) {
        self.ast.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn record_failure(&self, failure: TaskFailure) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(failure);
        }
        drop(slot);
        self.session.cancel(CancelReason::TaskFailed);
    }

    pub fn take_failure(&self) -> Option<TaskFailure> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Wait (briefly: they are cancelled) for every task thread, including ones tasks started.
    pub fn join_tasks(&self) {
        let deadline = std::time::Instant::now() + JOIN_GRACE;
        loop {
            let pending: Vec<Task> = {
                let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::take(&mut *tasks)
            };
            if pending.is_empty() {
                return;
            }
            for task in pending {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let mut done = task.inner.done.clone();
                let finished = self.session.handle().block_on(async {
                    tokio::time::timeout(left, done.wait_for(|d| *d))
                        .await
                        .is_ok()
                });
                if finished {
                    if let Some(thread) = task
                        .inner
                        .thread
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                    {
                        let _ = thread.join();
                    }
                }
            }
        }
    }
}

/// While it lives, a `within` of `length` on this thread is watched from the runtime: should
/// the thread still be inside it [`LEFT_BEHIND_AFTER`](super::LEFT_BEHIND_AFTER) past its
/// deadline (one built-in call that does not look at deadlines), the scenario stops. Dropping it
/// (the `within` returned) stops the watch.
pub struct WithinWatch(Option<tokio::task::JoinHandle<()>>);

impl Drop for WithinWatch {
    fn drop(&mut self) {
        if let Some(watch) = self.0.take() {
            watch.abort();
        }
    }
}

pub fn watch_within(ctx: &Arc<ScriptCtx>, length: Duration, at: Position) -> WithinWatch {
    let Some(deadline) = tokio::time::Instant::now()
        .checked_add(length)
        .and_then(|d| d.checked_add(super::LEFT_BEHIND_AFTER))
    else {
        // Longer than the clock can count: `--max-time` comes first.
        return WithinWatch(None);
    };
    let task = super::context::task().to_string();
    let watched = ctx.clone();
    let watch = ctx.session.handle().spawn(async move {
        let session = watched.session.clone();
        tokio::select! {
            _ = session.token().cancelled() => {}
            _ = tokio::time::sleep_until(deadline) => {
                watched
                    .overrun
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(Overrun { length, at, task });
                session.cancel(CancelReason::WithinOverrun);
            }
        }
    });
    WithinWatch(Some(watch))
}

/// A running or finished task; clones share it.
#[derive(Clone)]
pub struct Task {
    inner: Arc<TaskInner>,
}

struct TaskInner {
    origin: TaskOrigin,
    done: watch::Receiver<bool>,
    value: Mutex<Option<Result<Dynamic, ()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Task {
    pub fn name(&self) -> &str {
        &self.inner.origin.name
    }

    pub fn is_done(&self) -> bool {
        *self.inner.done.borrow()
    }

    /// The closure's value; if the task failed, the scenario is already failing, so this stops.
    /// Without a `deadline` it waits as long as the scenario may; running out of one is a
    /// catchable `timeout`. Waiting for itself, directly or through tasks waiting for it, is
    /// `invalid_argument`.
    pub fn join(
        &self,
        ctx: &ScriptCtx,
        call: &crate::net::Call,
        deadline: Option<Duration>,
    ) -> ScriptResult<Dynamic> {
        let waiting = ctx.start_join(self, deadline.is_some())?;
        let mut done = self.inner.done.clone();
        // Without a deadline of its own, the task's own calls carry the deadlines.
        let forever = Duration::from_secs(60 * 60 * 24 * 365);
        let joined = ctx.session.block_on(
            call,
            "join",
            None,
            Some(deadline.unwrap_or(forever)),
            async {
                let _ = done.wait_for(|d| *d).await;
                Ok(())
            },
        );
        drop(waiting);
        joined.map_err(super::error::raise)?;
        match &*self.inner.value.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Ok(v)) => Ok(v.clone()),
            _ => Err(abort(Abort::Cancelled, Position::NONE)),
        }
    }
}

impl ScriptCtx {
    /// Note that the task running on this thread waits for `target`, unless that wait could
    /// never end: `target` is this task, or is itself waiting (through others) for this task.
    /// A join with a deadline ends anyway, so it only has to not be a self-join; it is left out
    /// of the graph, and a cycle through it is none.
    fn start_join(&self, target: &Task, bounded: bool) -> ScriptResult<Option<Joining<'_>>> {
        let me = super::context::task();
        let target_name: Arc<str> = Arc::from(target.name());
        if bounded && *target_name != *me {
            return Ok(None);
        }
        let mut joins = self.joins.lock().unwrap_or_else(|p| p.into_inner());
        // Follow who the target waits for, and who that one waits for: reaching this task
        // means the join would never end. Each task waits for one other at most, so a walk
        // longer than the map is a cycle that does not include this task (refused earlier).
        let mut chain = vec![target_name];
        let closes_cycle = loop {
            let at = &chain[chain.len() - 1];
            if **at == *me {
                break true;
            }
            match joins.get(at) {
                Some(next) if chain.len() <= joins.len() => chain.push(next.clone()),
                _ => break false,
            }
        };
        if closes_cycle {
            let message = if chain.len() == 1 {
                format!("join: `{me}` cannot wait for itself: the join would never end")
            } else {
                let mut text = format!("join: `{me}` would wait for `{}`", chain[0]);
                for name in &chain[1..] {
                    text.push_str(&format!(", which waits for `{name}`"));
                }
                text.push_str(": the tasks would wait for each other forever");
                text
            };
            return Err(super::error::script_error(
                ErrorKind::InvalidArgument,
                "join",
                message,
            ));
        }
        joins.insert(me.clone(), chain.swap_remove(0));
        Ok(Some(Joining { ctx: self, me }))
    }
}

/// A task's entry in the join graph, removed when its `join` ends.
struct Joining<'a> {
    ctx: &'a ScriptCtx,
    me: Arc<str>,
}

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        self.ctx
            .joins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.me);
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_done() { "done" } else { "running" };
        write!(f, "Task({}, {state})", self.inner.origin.name)
    }
}

/// Start `closure` on a new thread. Its captured variables are copied first.
/// The closure sees the modules imported where it was spawned.
pub fn spawn(
    ctx: &Arc<ScriptCtx>,
    mut closure: FnPtr,
    at: Position,
    imports: super::modules::Imported,
) -> ScriptResult<Task> {
    let n = ctx.started.fetch_add(1, Ordering::Relaxed) + 1;
    if n > ctx.max_tasks {
        return Err(super::error::script_error(
            ErrorKind::Limit,
            "spawn",
            format!(
                "spawn: the scenario has started its limit of {} tasks (`--limit tasks=N`)",
                ctx.max_tasks
            ),
        ));
    }
    for captured in closure.iter_curry_mut() {
        *captured = captured.flatten_clone();
    }
    let engine = ctx
        .engine
        .get()
        .and_then(Weak::upgrade)
        .ok_or("spawn: the scenario is not running")?;
    let ast = ctx
        .ast
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or("spawn: the scenario is not running")?;
    let origin = TaskOrigin {
        name: format!("task {n}"),
        spawned_at: at,
    };
    let (done_tx, done_rx) = watch::channel(false);
    let task = Task {
        inner: Arc::new(TaskInner {
            origin: origin.clone(),
            done: done_rx,
            value: Mutex::new(None),
            thread: Mutex::new(None),
        }),
    };
    let thread = {
        let ctx = ctx.clone();
        let task = task.clone();
        std::thread::Builder::new()
            .name(format!("sockscript {}", origin.name))
            .stack_size(TASK_STACK)
            .spawn(move || {
                super::context::set_task(&origin.name);
                let result = imports.call(&engine, &ast, &closure);
                drop((engine, ast));
                let value = match result {
                    Ok(v) => Ok(v.flatten()),
                    Err(error) => {
                        if !matches!(abort_of(&error), Some(Abort::Cancelled)) {
                            ctx.record_failure(TaskFailure { origin, error });
                        }
                        Err(())
                    }
                };
                *task.inner.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
                let _ = done_tx.send(true);
            })
            .map_err(|e| format!("spawn: cannot start a thread: {e}"))?
    };
    *task.inner.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
    ctx.tasks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(task.clone());
    Ok(task)
}
