//! What carries a stream's bytes, as the stream's reader and writer see it: the one seam a new
//! kind of stream fills. A transport comes in two halves, so one task may send while another
//! receives: a [`Source`] (read what is ready, wait for more) and a [`Sink`] (write what goes
//! now, wait to write the rest, shut down); closing is dropping both.
//!
//! Plain TCP and Unix sockets ([`PlainSocket`]) are read and written directly on the script
//! thread, without a future when bytes are ready or the socket takes them; TLS streams
//! ([`TlsRead`], [`TlsWrite`]) read and write through the runtime, and so do a child process's
//! pipes ([`PipeRead`], [`PipeWrite`], in [`super::process`]). WebSocket messages would be one
//! more pair of impls and a variant in [`ReadIo`] and [`WriteIo`], which dispatch without
//! boxing a future per call (a read on a ping-pong connection is a hot path).

use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::plain::PlainSocket;
use super::process::{PipeRead, PipeWrite};

/// The read half of a transport.
pub(crate) trait Source {
    /// Read what is ready now into `buf`'s spare room, without waiting; `Some(Ok(0))` at the
    /// end of the stream, `None` when nothing is ready (then [`Source::read`] waits). With
    /// `spin`, a transport may keep asking for a few microseconds first. A transport that can
    /// only read by waiting always says `None`.
    fn read_ready(&mut self, buf: &mut BytesMut, spin: bool) -> Option<io::Result<usize>>;

    /// Wait until something is ready and read it: at least one byte, or 0 at the end of the
    /// stream. Cancel-safe: dropped before it returns, it has taken nothing.
    fn read(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send;
}

/// The write half of a transport.
pub(crate) trait Sink {
    /// Send all of `data`, waiting while the transport cannot take more.
    fn write_all(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// Write what the transport takes now, without waiting: `None` when it takes nothing now
    /// (then [`Sink::write_all`] waits). A transport that can only write by waiting always
    /// says `None`.
    fn write_ready(&mut self, data: &[u8]) -> Option<io::Result<usize>>;

    /// [`Sink::write_all`] for the rest of a send once [`Sink::write_ready`] has found the
    /// transport full: it waits for room before its first attempt.
    fn write_rest(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
        self.write_all(data)
    }

    /// Half-close: nothing more is sent; the read half keeps working.
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// The read half of a TLS stream (over TCP or a Unix socket).
pub(crate) struct TlsRead(pub BoxRead);

/// The write half of a TLS stream.
pub(crate) struct TlsWrite(pub BoxWrite);

impl Source for TlsRead {
    fn read_ready(&mut self, _: &mut BytesMut, _: bool) -> Option<io::Result<usize>> {
        None
    }

    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self.0.read_buf(buf).await {
            // A TLS peer that closes without close_notify has still closed: most servers do
            // it, and every client treats it as the end of the stream.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

impl Sink for TlsWrite {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data).await?;
        self.0.flush().await
    }

    fn write_ready(&mut self, _: &[u8]) -> Option<io::Result<usize>> {
        None
    }

    /// Sends close_notify, then FIN.
    async fn shutdown(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}

/// A connection's read half, one variant per transport. Each is one pointer (the others
/// boxed), so a connection's halves are 16 bytes each: a scenario may hold ten thousand.
pub(crate) enum ReadIo {
    Plain(Arc<PlainSocket>),
    Tls(Box<TlsRead>),
    Pipe(Box<PipeRead>),
}

/// A connection's write half; a plain socket is shared with the read half.
pub(crate) enum WriteIo {
    Plain(Arc<PlainSocket>),
    Tls(Box<TlsWrite>),
    Pipe(PipeWrite),
}

impl Source for ReadIo {
    fn read_ready(&mut self, buf: &mut BytesMut, spin: bool) -> Option<io::Result<usize>> {
        match self {
            ReadIo::Plain(s) => s.read_ready(buf, spin),
            ReadIo::Tls(s) => s.read_ready(buf, spin),
            ReadIo::Pipe(s) => s.read_ready(buf, spin),
        }
    }

    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ReadIo::Plain(s) => s.read(buf).await,
            ReadIo::Tls(s) => s.read(buf).await,
            ReadIo::Pipe(s) => s.read(buf).await,
        }
    }
}

impl Sink for WriteIo {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            WriteIo::Plain(s) => s.write_all(data).await,
            WriteIo::Tls(s) => s.write_all(data).await,
            WriteIo::Pipe(s) => s.write_all(data).await,
        }
    }

    fn write_ready(&mut self, data: &[u8]) -> Option<io::Result<usize>> {
        match self {
            WriteIo::Plain(s) => s.write_ready(data),
            WriteIo::Tls(s) => s.write_ready(data),
            WriteIo::Pipe(s) => s.write_ready(data),
        }
    }

    async fn write_rest(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            WriteIo::Plain(s) => s.write_rest(data).await,
            WriteIo::Tls(s) => s.write_rest(data).await,
            WriteIo::Pipe(s) => s.write_rest(data).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            WriteIo::Plain(s) => Sink::shutdown(s).await,
            WriteIo::Tls(s) => s.shutdown().await,
            WriteIo::Pipe(s) => s.shutdown().await,
        }
    }
}
