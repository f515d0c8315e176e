//! The one result model every view reads: how a scenario ended, how long it took, what it
//! printed, what crossed the wire, and the diagnostic of its failure. A failure's [`Status`] is
//! read from its diagnostic's [`Code`] here, so `diagnostic` needs nothing from this module.

use std::time::{Duration, SystemTime};

use crate::diagnostic::{Code, Diag};
use crate::transcript::{Dropped, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Passed,
    /// An assertion or expectation did not hold.
    Failed,
    /// A socket error, a timeout or a script error.
    Errored,
    /// The script does not compile.
    CompileError,
}

impl Status {
    /// How a scenario that did not pass ended, by what its diagnostic is about: an assertion
    /// failed, a script did not compile, and anything else (a socket error, a timeout, a
    /// script error, a limit, `--max-time`) is an error.
    pub fn of(code: &Code) -> Status {
        match code {
            Code::Assertion => Status::Failed,
            Code::Compile => Status::CompileError,
            Code::Kind(_)
            | Code::Custom(_)
            | Code::MaxTime
            | Code::Interrupted
            | Code::Within
            | Code::Thrown => Status::Errored,
        }
    }

    /// The process exit code this outcome asks for.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Passed => crate::EXIT_OK,
            Status::Failed => crate::EXIT_FAILED,
            Status::Errored => crate::EXIT_ERROR,
            Status::CompileError => crate::EXIT_COMPILE,
        }
    }

    /// Severity for "the worst outcome seen": compile errors, then errors, then failures.
    pub fn severity(self) -> u8 {
        match self {
            Status::Passed => 0,
            Status::Failed => 1,
            Status::Errored => 2,
            Status::CompileError => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "ok",
            Status::Failed => "FAILED",
            Status::Errored => "ERROR",
            Status::CompileError => "COMPILE ERROR",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub status: Status,
    /// When it started, by the wall clock: the transcript's times count from here.
    pub started: SystemTime,
    pub duration: Duration,
    /// Connections opened or accepted.
    pub connections: usize,
    /// What the script printed (test mode; empty in run mode, where it went to stdout).
    pub stdout: String,
    pub transcript: Vec<Event>,
    /// What the transcript did not keep (past `--limit capture`, or too many events).
    pub dropped: Dropped,
    pub diagnostic: Option<Diag>,
    /// How many times it ran: more than 1 when `--retry` ran it again.
    pub attempts: u32,
    /// The scenario's script, for views that show the lines its events came from (empty when
    /// the file could not be read).
    pub source: std::sync::Arc<str>,
}

#[cfg(test)]
impl Outcome {
    /// A bare outcome (one connection, no output or transcript) for the reports' tests.
    pub fn for_test(
        name: &str,
        status: Status,
        diagnostic: Option<Diag>,
        duration: Duration,
    ) -> Outcome {
        Outcome {
            name: name.into(),
            status,
            started: SystemTime::UNIX_EPOCH,
            duration,
            connections: 1,
            stdout: String::new(),
            transcript: Vec::new(),
            dropped: Dropped::default(),
            diagnostic,
            attempts: 1,
            source: "".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ErrorKind;

    #[test]
    fn only_assertions_fail_and_only_compile_errors_do_not_compile() {
        assert_eq!(Status::of(&Code::Assertion), Status::Failed);
        assert_eq!(Status::of(&Code::Compile), Status::CompileError);
        for code in [
            Code::Kind(ErrorKind::Timeout),
            Code::Kind(ErrorKind::Limit),
            Code::Custom("assertion".into()),
            Code::MaxTime,
            Code::Thrown,
        ] {
            assert_eq!(Status::of(&code), Status::Errored, "{code}");
        }
    }
}
