//! What a blocking `net` call is told about the script call that made it: the task that made
//! it and where in the script. `net` records it in the transcript and knows nothing of rhai;
//! the script layer builds one per call.

use std::sync::Arc;

pub use crate::transcript::At;

/// The script call a `net` operation serves.
#[derive(Debug, Clone)]
pub struct Call {
    /// The script task making the call: `main`, `task 1`, …
    pub task: Arc<str>,
    /// Where in the script the call was made, when known.
    pub at: Option<At>,
}

impl Call {
    pub fn new(task: Arc<str>, at: Option<At>) -> Self {
        Call { task, at }
    }
}
