//! The socket layer: tokio sockets behind synchronous, deadline-bounded calls. It knows nothing
//! of rhai; the script layer wraps these handles and turns [`NetError`] into script errors.
//!
//! A stream's reads are split in two: [`conn`] reads the socket into a buffer under a deadline,
//! and [`decode`] says, without any I/O, which bytes of that buffer answer the read.

pub mod addr;
pub mod bridge;
pub mod call;
pub mod channel;
pub mod conn;
pub mod decode;
pub mod error;
pub mod listener;
mod pem;
mod plain;
mod socket_file;
mod stream;
pub mod tls;
pub mod udp;

pub use bridge::{CancelReason, Limits, Session};
pub use call::{At, Call, Within};
pub use channel::Channel;
pub use conn::Conn;
pub use decode::Match;
pub use error::{fmt_duration, Deadline, ErrorKind, NetError};
pub use listener::{ListenOptions, Listener};
pub use socket_file::kind_of as file_kind;
pub use tls::{ClientTls, ServerCert, ServerTls, TlsInfo};
pub use udp::Udp;
