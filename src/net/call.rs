//! What a blocking `net` call is told about the script call that made it: the task that made
//! it, where in the script, and the innermost `within` deadline it must end by. `net` records
//! the first two in the transcript and races every wait against the third; it knows nothing of
//! rhai, and keeps no per-thread state of the script's: the script layer builds one per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::transcript::At;

/// The script call a `net` operation serves.
#[derive(Debug, Clone)]
pub struct Call {
    /// The script task making the call: `main`, `task 1`, …
    pub task: Arc<str>,
    /// Where in the script the call was made, when known.
    pub at: Option<At>,
    /// The `within` that ends soonest among those the call is inside, if any.
    pub within: Option<Within>,
}

/// A `within`'s deadline, and the length it was given (for the timeout's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Within {
    pub deadline: Instant,
    pub length: Duration,
}

impl Call {
    pub fn new(task: Arc<str>, at: Option<At>, within: Option<Within>) -> Self {
        Call { task, at, within }
    }
}
