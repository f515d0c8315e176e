//! sockscript's integration tests: one binary that runs the real `sockscript` executable.
//!
//! - [`harness`]: the `Test` builder, bounded child processes, `normalize`, and the Python
//!   peers, which import their common roles (listen on port 0 and print it, accept one, echo, a
//!   TLS server) from `peers/peer.py`.
//! - [`diagnostics`]: `fixtures/<name>.rhai` against `fixtures/<name>.stderr` (tests as data).
//! - [`scenarios`]: every file in `scenarios/` passes, or fails as its header says.
//! - [`api`]: the scripting API's semantics, asserted from inside rhai: `api/<name>.rhai`, one
//!   named test per file (a table in `api.rs`), and the few that need a peer or a wall clock.
//! - [`ci`]: `action.yml` against the GitHub Action schema, the action's run step, the
//!   `Dockerfile` (an image is built only where a container engine works).
//! - [`cli`]: exit codes, `--var`, `--check`, test mode.
//! - [`escaping`]: control characters from peers, scripts and file names reach stderr escaped;
//!   every report parses with a strict parser.
//! - [`html_report`]: `--report-html` pages opened in headless Chromium (Playwright): lanes,
//!   arrows, payloads, the failure and its diagnostic, no network; scale and size.
//! - [`markdown`]: `--report-markdown` summaries, their diagrams read by the real Mermaid
//!   parser (npm `mermaid` under Node, `tests/js/mermaid`).
//! - [`pcap`]: `--pcap` captures read by the real `tshark`: each TCP stream gives exactly the
//!   bytes sent, both ways; UDP, Unix sockets, TLS, resets, the capture limit.
//! - [`proxy`]: `proxy(…)` and each fault measured on a Python client; its transcript.
//! - [`record`]: `sockscript record` with a real redis-server and a Python server; replays.
//! - [`interop`]: Python's `socket` module as an independent peer, byte for byte.
//! - [`hang`]: timeouts, cancellation and `--max-time` end runs promptly.
//! - [`imports`]: modules imported from the scenario's tree, and nothing from outside it.
//! - [`lesson`]: the socket lesson of `scenarios/lesson/` in its four terminals, as real
//!   processes, each terminal's output checked whole; its HTTP page by hand.
//! - [`process`]: `exec` (a process as streams, `--allow-exec`, nothing outlives a run however
//!   it ends), `"none"` deadlines, `interactive()` on a pseudo-terminal.
//! - [`hostile`]: peers that send garbage, reset, half-close, stall or trickle; Ctrl-C; the
//!   sandbox.
//! - [`sandbox`]: `unlink` removes only stale socket files, listeners only their own; FIFOs,
//!   devices and symbolic link loops never hang a run before its deadlines start.
//! - [`properties`]: random chunkings and read mixes never lose or duplicate a byte.
//! - [`fuzz`]: generated and mangled scripts exit 0, 1, 3 or 4, never panic or hang.
//! - [`secrets`]: PEM errors quote no key material; `--secret` values are `***` everywhere;
//!   `env` reads only what `--allow-env` allows.
//! - [`std_modules`]: the protocol modules (`std/resp`, `std/http`, `std/lines`) against a
//!   Python peer that sends tricky and broken replies (`peers/scripted.py`).
//! - [`soak`]: a thousand runs in one process leak no descriptors or threads.
//! - [`trust_tls`]: a TLS listener serves good clients whatever the others do; a task cannot
//!   wait for itself.
//! - [`websocket`]: WebSockets against Python's `websockets` package, both ways; the 400 for
//!   a plain HTTP request, `wss://`, limits, one transcript event per message.

mod harness;

mod api;
mod ci;
mod cli;
mod deadlines;
mod diagnostics;
mod escaping;
mod fuzz;
mod hang;
mod hostile;
mod html_report;
mod imports;
mod interop;
mod lesson;
mod limits;
mod markdown;
mod pcap;
mod pipes;
mod process;
mod properties;
mod protocols;
mod proxy;
mod record;
mod sandbox;
mod scenarios;
mod secrets;
mod soak;
mod std_modules;
mod test_mode;
mod transcript;
mod trust_tls;
mod websocket;
