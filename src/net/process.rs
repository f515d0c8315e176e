//! A child process as streams (`exec`): its stdin and stdout are one [`Conn`] (the reader,
//! decoders, deadlines and transcript every stream has), its stderr a second, read-only one.
//! The transport is the pipes (`PipeRead`, `PipeWrite`); the transcript says `process`, with
//! the child as the peer, `process:NAME[PID]`, and this side as `pipe:stdio` or `pipe:stderr`.
//!
//! Nothing outlives the run: the child leads a process group of its own (so its children are
//! in it too), the session adopts the group when it is spawned and kills it (`SIGKILL` to the
//! group) when the scenario is stopped for any reason: its main script ended, it failed, it
//! ran past `--max-time`, the run was interrupted, or its thread was left behind (each of
//! these cancels the session first: [`Session::cancel`]). A spawn and the session's ending
//! take one lock, so a process cannot start after its scenario's processes were killed. A
//! task on the runtime waits for the child, so it never stays a zombie.
//!
//! Which programs may run is the caller's policy (the script layer's `--allow-exec`); this
//! module only finds them: [`resolve`] turns `argv[0]` into the path that is checked and then
//! run, the same one.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::ChildStdin;
use tokio::sync::watch;

use super::addr::Endpoint;
use super::bridge::{Opening, Session};
use super::call::Call;
use super::error::{ErrorKind, NetError};
use super::stream::Opened;
use super::transport::{BoxRead, ReadIo, Sink, Source, WriteIo};
use super::Conn;
use crate::transcript::EventKind;

/// What to start: `argv[0]` as given (the program's own name for itself), the resolved path
/// that runs, the other arguments, variables added to the inherited environment, the working
/// directory, and where its stdout and stderr go.
#[derive(Debug, Clone, Default)]
pub struct Command {
    pub argv: Vec<String>,
    pub program: PathBuf,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub stdout: Output,
    pub stderr: Output,
}

/// Where a child's stdout or stderr goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    /// A pipe the script reads; a child that writes more than the pipe holds (about 64 KiB)
    /// waits until it is read.
    #[default]
    Pipe,
    /// `/dev/null`: the child never waits on it, and its stream reads as ended at once.
    Discard,
}

impl Output {
    fn stdio(self) -> std::process::Stdio {
        match self {
            Output::Pipe => std::process::Stdio::piped(),
            Output::Discard => std::process::Stdio::null(),
        }
    }

    /// What reads it: the pipe, or nothing.
    fn reader(
        self,
        pipe: Option<impl tokio::io::AsyncRead + Send + Unpin + 'static>,
    ) -> Option<BoxRead> {
        match (self, pipe) {
            (Output::Discard, _) => Some(Box::new(tokio::io::empty())),
            (Output::Pipe, Some(pipe)) => Some(Box::new(pipe)),
            (Output::Pipe, None) => None,
        }
    }
}

/// A running (or finished) child process; clones share it.
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

struct Inner {
    session: Arc<Session>,
    stdio: Conn,
    stderr: Conn,
    pid: u32,
    /// `process:NAME[PID]`.
    name: Arc<str>,
    /// The exit code once the child has exited (128 + the signal when a signal ended it).
    exited: watch::Receiver<Option<i32>>,
}

/// The path `program` runs as: a name without a `/` is looked up in `PATH`, as a shell does; a
/// path is taken relative to sockscript's working directory. The result is absolute and has no
/// `.` or `..` in it (removed by their spelling, not by following links), and it is what runs:
/// an allow-list compares these paths, so what was checked is what starts.
pub fn resolve(program: &str) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("the program name is empty".to_owned());
    }
    let here = std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
    if program.contains('/') {
        return Ok(normalize(&here.join(program)));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| normalize(&here.join(dir).join(program)))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("`{program}` is not found in PATH"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `path` without `.` and `..` components, by their spelling.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Kill a process group, whatever is left of it; a group already gone is no error.
pub(crate) fn kill_group(pgid: u32) {
    let pid = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

impl Process {
    /// Start `command` with its stdio piped, in a process group of its own, adopted by the
    /// session (killed when the scenario ends).
    pub fn spawn(
        session: &Arc<Session>,
        call: &Call,
        command: &Command,
    ) -> Result<Process, NetError> {
        let op = "exec";
        let shown = command.argv.first().map_or("", String::as_str);
        let base = Path::new(shown)
            .file_name()
            .map_or_else(|| shown.to_owned(), |n| n.to_string_lossy().into_owned());
        let stdio_slot = session.open_handle(op, shown)?;
        let stderr_slot = session.open_handle(op, shown)?;
        let mut cmd = tokio::process::Command::new(&command.program);
        cmd.arg0(shown)
            .args(command.argv.iter().skip(1))
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::piped())
            .stdout(command.stdout.stdio())
            .stderr(command.stderr.stdio())
            .process_group(0);
        if let Some(cwd) = &command.cwd {
            cmd.current_dir(cwd);
        }
        let failed = |e: io::Error| {
            let why = match e.kind() {
                io::ErrorKind::NotFound => "no such file".to_owned(),
                io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => super::error::strip_os_error(&e.to_string()),
            };
            let kind = match e.kind() {
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Io,
            };
            NetError::new(
                kind,
                op,
                Some(shown),
                format!(
                    "exec `{shown}` ({}) failed: {why}",
                    command.program.display()
                ),
            )
        };
        let _runtime = session.handle().enter();
        let mut child = session
            .adopt_process(|| {
                let child = cmd.spawn()?;
                let pid = child
                    .id()
                    .ok_or_else(|| io::Error::other("no process id"))?;
                Ok((child, pid))
            })
            .ok_or_else(|| NetError::cancelled(op))?
            .map_err(failed)?;
        let pid = child.id().unwrap_or(0);
        let name: Arc<str> = Arc::from(format!("process:{base}[{pid}]"));
        let stdout = command.stdout.reader(child.stdout.take());
        let stderr = command.stderr.reader(child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), stdout, stderr) else {
            kill_group(pid);
            return Err(failed(io::Error::other("its pipes were not opened")));
        };
        let (tx, exited) = watch::channel(None);
        session.handle().spawn(async move {
            let code = match child.wait().await {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    status
                        .code()
                        .or_else(|| status.signal().map(|s| 128 + s))
                        .unwrap_or(-1)
                }
                Err(_) => -1,
            };
            let _ = tx.send(Some(code));
        });
        let opened = |r: ReadIo, w: WriteIo, local: &str| Opened {
            r,
            w,
            local: Endpoint::named(local),
            peer: Endpoint::named(&name),
            tls: None,
            same_process: false,
            unix_client: None,
        };
        let stdio = Conn::from_opened(
            session,
            opened(
                ReadIo::Pipe(Box::new(PipeRead(stdout))),
                WriteIo::Pipe(PipeWrite(Some(Box::new(stdin)))),
                "pipe:stdio",
            ),
            Opening::Process,
            stdio_slot,
        );
        let stderr = Conn::from_opened(
            session,
            opened(
                ReadIo::Pipe(Box::new(PipeRead(stderr))),
                WriteIo::Pipe(PipeWrite(None)),
                "pipe:stderr",
            ),
            Opening::Process,
            stderr_slot,
        );
        let discarded = |o: Output| (o == Output::Discard).then(|| "discarded".to_owned());
        let mut note = format!("exec {}", command.argv.join(" "));
        if command.stdout == Output::Discard {
            note.push_str(" (stdout discarded)");
        }
        stdio.record(call, EventKind::Connect, b"", Some(note));
        stderr.record(call, EventKind::Connect, b"", discarded(command.stderr));
        Ok(Process {
            inner: Arc::new(Inner {
                session: session.clone(),
                stdio,
                stderr,
                pid,
                name,
                exited,
            }),
        })
    }

    /// Its stdin and stdout.
    pub fn stdio(&self) -> &Conn {
        &self.inner.stdio
    }

    /// Its stderr: a stream to read.
    pub fn stderr(&self) -> &Conn {
        &self.inner.stderr
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The exit code, if it has exited.
    pub fn exit_code(&self) -> Option<i32> {
        *self.inner.exited.borrow()
    }

    /// Wait for it to exit; its exit code (128 + the signal when a signal ended it).
    pub fn wait(&self, call: &Call, timeout: Option<Duration>) -> Result<i32, NetError> {
        let mut exited = self.inner.exited.clone();
        let name = &*self.inner.name;
        let code = self
            .inner
            .session
            .block_on(call, "wait", Some(name), timeout, async {
                match exited.wait_for(Option::is_some).await {
                    Ok(code) => Ok(code.unwrap_or(-1)),
                    Err(_) => Err(NetError::new(
                        ErrorKind::Io,
                        "wait",
                        Some(name),
                        format!("wait for `{name}`: its exit was not seen"),
                    )),
                }
            });
        let code = code.inspect_err(|e| {
            if e.kind != ErrorKind::Cancelled {
                self.inner
                    .stdio
                    .record(call, EventKind::Error, b"", Some(e.message.clone()));
            }
        })?;
        self.inner.stdio.record(
            call,
            EventKind::Close,
            b"",
            Some(format!("exit code {code}")),
        );
        Ok(code)
    }

    /// Kill it and its process group now (`SIGKILL`); killing what has exited is harmless.
    pub fn kill(&self, call: &Call) {
        kill_group(self.inner.pid);
        self.inner
            .stdio
            .record(call, EventKind::Close, b"", Some("killed".to_owned()));
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.exit_code() {
            Some(code) => write!(f, "Process({}, exit code {code})", self.inner.name),
            None => write!(f, "Process({})", self.inner.name),
        }
    }
}

/// A child's stdout or stderr.
pub(crate) struct PipeRead(BoxRead);

/// A child's stdin (boxed: a connection's write half stays the size of a socket's); `None`
/// for the stderr stream, which has nothing to write to, and once shut.
pub(crate) struct PipeWrite(Option<Box<ChildStdin>>);

impl Source for PipeRead {
    fn read_ready(&mut self, _: &mut BytesMut, _: bool) -> Option<io::Result<usize>> {
        None
    }

    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.0.read_buf(buf).await
    }
}

impl Sink for PipeWrite {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.0 {
            Some(stdin) => {
                stdin.write_all(data).await?;
                stdin.flush().await
            }
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a process's stderr is only read; send to the process itself",
            )),
        }
    }

    fn write_ready(&mut self, _: &[u8]) -> Option<io::Result<usize>> {
        None
    }

    /// Closes the child's stdin: it reads the end of its input.
    async fn shutdown(&mut self) -> io::Result<()> {
        self.0 = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_absolute_without_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert!(resolve("").is_err());
        assert!(resolve("no-such-program-sockscript").is_err());
        let sh = resolve("sh").unwrap_or_else(|e| panic!("{e}"));
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        let here = std::env::current_dir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resolve("./x/../y").ok(), Some(here.join("y")));
    }
}
