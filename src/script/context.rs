//! The script layer's per-thread state, and the [`Call`] that hands it to `net`: which task
//! runs on this thread and the `within`s open on it. A task is one OS thread, so the state is
//! per thread; `net` never reads it, it gets the values in each call's [`Call`].

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::NativeCallContext;

use crate::net::bridge::deadline_after;
use crate::net::call::Within;
use crate::net::{At, Call};

thread_local! {
    static TASK: RefCell<Arc<str>> = RefCell::new(Arc::from("main"));
    static WITHIN: RefCell<Vec<Within>> = const { RefCell::new(Vec::new()) };
}

/// Name the script task running on this thread.
pub fn set_task(name: &str) {
    TASK.with(|t| *t.borrow_mut() = Arc::from(name));
}

/// The script task running on this thread.
pub fn task() -> Arc<str> {
    TASK.with(|t| t.borrow().clone())
}

/// What `net` is told about the call `ctx` makes: this thread's task, the call's position and
/// the innermost `within`.
pub fn call(ctx: &NativeCallContext) -> Call {
    call_at(ctx.call_position())
}

/// What `net` is told about a call at `pos` on this thread: its task, the position and the
/// innermost `within`.
pub fn call_at(pos: rhai::Position) -> Call {
    let at = pos.line().map(|line| At {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: pos
            .position()
            .map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX)),
    });
    Call::new(task(), at, innermost_within())
}

fn innermost_within() -> Option<Within> {
    WITHIN.with(|w| w.borrow().iter().min_by_key(|w| w.deadline).copied())
}

/// While the guard lives, every blocking call on this thread ends by `now + length`.
pub fn enter_within(length: Duration) -> WithinGuard {
    WITHIN.with(|w| {
        let mut w = w.borrow_mut();
        w.push(Within {
            deadline: deadline_after(length),
            length,
        });
        WithinGuard { depth: w.len() }
    })
}

/// Whether the deadline of the `within` at `depth` (or any enclosing one) has passed. Called
/// on every rhai operation: with no `within` open it is one thread-local look.
pub fn within_expired() -> Option<usize> {
    WITHIN.with(|w| {
        let w = w.borrow();
        if w.is_empty() {
            return None;
        }
        let now = Instant::now();
        w.iter().position(|w| w.deadline <= now).map(|i| i + 1)
    })
}

pub struct WithinGuard {
    depth: usize,
}

impl WithinGuard {
    pub fn depth(&self) -> usize {
        self.depth
    }
}

impl Drop for WithinGuard {
    fn drop(&mut self) {
        WITHIN.with(|w| w.borrow_mut().truncate(self.depth - 1));
    }
}
