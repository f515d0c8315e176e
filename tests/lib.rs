//! sockscript's integration tests: one binary that runs the real `sockscript` executable.
//!
//! - [`harness`]: the `Test` builder, bounded child processes, `normalize`.
//! - [`diagnostics`]: `fixtures/<name>.rhai` against `fixtures/<name>.stderr` (tests as data).
//! - [`scenarios`]: every file in `scenarios/` passes, or fails as its header says.
//! - [`api`]: the scripting API's semantics, asserted from inside rhai.
//! - [`cli`]: exit codes, `--var`, `--check`, test mode.
//! - [`interop`]: Python's `socket` module as an independent peer, byte for byte.
//! - [`hang`]: timeouts, cancellation and `--max-time` end runs promptly.

mod harness;

mod api;
mod cli;
mod diagnostics;
mod hang;
mod interop;
mod scenarios;
