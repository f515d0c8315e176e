//! sockscript's integration tests: one binary that runs the real `sockscript` executable.
//!
//! - [`harness`]: the `Test` builder, bounded child processes, `normalize`, and the Python
//!   peers, which import their common roles (listen on port 0 and print it, accept one, echo, a
//!   TLS server) from `peers/peer.py`.
//! - [`diagnostics`]: `fixtures/<name>.rhai` against `fixtures/<name>.stderr` (tests as data).
//! - [`scenarios`]: every file in `scenarios/` passes, or fails as its header says.
//! - [`api`]: the scripting API's semantics, asserted from inside rhai: `api/<name>.rhai`, one
//!   named test per file (a table in `api.rs`), and the few that need a peer or a wall clock.
//! - [`cli`]: exit codes, `--var`, `--check`, test mode.
//! - [`escaping`]: control characters from peers, scripts and file names reach stderr escaped;
//!   every report parses with a strict parser.
//! - [`markdown`]: `--report-markdown` summaries, their diagrams read by the real Mermaid
//!   parser (npm `mermaid` under Node, `tests/js/mermaid`).
//! - [`pcap`]: `--pcap` captures read by the real `tshark`: each TCP stream gives exactly the
//!   bytes sent, both ways; UDP, Unix sockets, TLS, resets, the capture limit.
//! - [`proxy`]: `proxy(…)` and each fault measured on a Python client; its transcript.
//! - [`record`]: `sockscript record` with a real redis-server and a Python server; replays.
//! - [`interop`]: Python's `socket` module as an independent peer, byte for byte.
//! - [`hang`]: timeouts, cancellation and `--max-time` end runs promptly.
//! - [`imports`]: modules imported from the scenario's tree, and nothing from outside it.
//! - [`hostile`]: peers that send garbage, reset, half-close, stall or trickle; Ctrl-C; the
//!   sandbox.
//! - [`sandbox`]: `unlink` removes only stale socket files, listeners only their own; FIFOs,
//!   devices and symbolic link loops never hang a run before its deadlines start.
//! - [`properties`]: random chunkings and read mixes never lose or duplicate a byte.
//! - [`fuzz`]: generated and mangled scripts exit 0, 1, 3 or 4, never panic or hang.
//! - [`secrets`]: PEM errors quote no key material; `--secret` values are `***` everywhere;
//!   `env` reads only what `--allow-env` allows.
//! - [`soak`]: a thousand runs in one process leak no descriptors or threads.
//! - [`trust_tls`]: a TLS listener serves good clients whatever the others do; a task cannot
//!   wait for itself.

mod harness;

mod api;
mod cli;
mod deadlines;
mod diagnostics;
mod escaping;
mod fuzz;
mod hang;
mod hostile;
mod imports;
mod interop;
mod limits;
mod markdown;
mod pcap;
mod pipes;
mod properties;
mod protocols;
mod proxy;
mod record;
mod sandbox;
mod scenarios;
mod secrets;
mod soak;
mod test_mode;
mod transcript;
mod trust_tls;
