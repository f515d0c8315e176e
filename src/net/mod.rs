//! The socket layer: tokio sockets behind synchronous, deadline-bounded calls. It knows nothing
//! of rhai; the script layer wraps these handles and turns [`NetError`] into script errors.
//!
//! A stream is three parts: a transport carries its bytes (`transport`: TCP, TLS and Unix
//! sockets and a child process's pipes, each as a read half and a write half; [`ws`] is a
//! message stream of its own), [`conn`] reads the transport into a
//! buffer and writes to it under deadlines, and [`decode`] says, without any I/O, which bytes
//! of that buffer answer a read.
//!
//! A script thread waits for a blocking call in `park`: it polls the call itself and sleeps in
//! one `poll(2)` on its eventfd and the plain sockets the call waits on. A read whose bytes are
//! there and a send the socket takes whole need neither: they are one system call each.
//!
//! A listener whose clients need a handshake first (TLS, a WebSocket upgrade) runs those
//! handshakes in the background, each under a deadline (`handshakes`), so that one silent
//! client holds up no other.
//!
//! [`proxy`] is no stream of the script's: it relays connections in the background, on the
//! runtime, and records them in the transcript.

pub mod addr;
pub mod bridge;
pub mod call;
pub mod channel;
pub mod conn;
pub mod decode;
pub mod error;
mod handshakes;
pub mod listener;
mod park;
mod pem;
mod plain;
pub mod process;
pub mod proxy;
mod socket_file;
mod stream;
pub mod tls;
mod transport;
pub mod udp;
pub mod ws;

pub use bridge::{CancelReason, Limits, Session, NO_DEADLINE};
pub use call::{At, Call, Within};
pub use channel::Channel;
pub use conn::Conn;
pub use decode::Match;
pub use error::{fmt_duration, Deadline, ErrorKind, NetError};
pub use listener::{ListenOptions, Listener};
pub use process::Process;
pub use proxy::{Fault, Proxy, ProxyOptions};
pub use socket_file::kind_of as file_kind;
pub use tls::{ClientTls, ServerCert, ServerTls, TlsInfo};
pub use udp::Udp;
pub use ws::{WebSocket, WsListener};
