//! The integration-test harness: a builder that runs the `sockscript` binary on a script, a
//! bounded child-process wrapper shared with the Python peers, and `normalize` for comparing
//! diagnostics as text. Every process started here has a hard wall-clock bound: a test that
//! would hang kills its child and panics instead.
//!
//! ```ignore
//! Test::new().script("print(1 + 1);").run().code(0).stdout("2\n");
//! ```

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use regex::Regex;

/// The longest any child process may run unless a test says otherwise.
pub const WALL: Duration = Duration::from_secs(20);

/// The crate root: `.file()` paths and fixture paths are relative to it.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty directory under the system temp dir, unique to this process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sockscript-it-{}-{n}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create `{}`: {e}", dir.display());
    }
    dir
}

/// A temp directory removed when the test ends.
pub struct Dir(PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        Dir(temp_dir(tag))
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The directory's path as text, for a `--var`.
    pub fn text(&self) -> &str {
        text(&self.0)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A path as text (test paths are ours, so UTF-8).
pub fn text(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", path.display()))
}

/// One run of `sockscript`, being described.
#[must_use]
pub struct Test {
    /// Files to write into a fresh temp directory (which becomes the working directory).
    files: Vec<(String, String)>,
    /// Paths passed after the options.
    paths: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    wall: Duration,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    pub fn new() -> Self {
        Test {
            files: Vec::new(),
            paths: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            wall: WALL,
        }
    }

    /// Run this rhai source, written to `script.rhai` in a fresh temp directory; diagnostics
    /// then name the file `script.rhai`.
    pub fn script(self, source: &str) -> Self {
        self.named("script.rhai", source)
    }

    /// Write `source` to `name` in the temp directory and run it.
    pub fn named(mut self, name: &str, source: &str) -> Self {
        self.files.push((name.to_owned(), source.to_owned()));
        self.paths.push(name.into());
        self
    }

    /// Write `source` to `name` in the temp directory without naming it on the command line
    /// (pass `.path(".")` to run the directory).
    pub fn write(mut self, name: &str, source: &str) -> Self {
        self.files.push((name.to_owned(), source.to_owned()));
        self
    }

    /// Run a file of the repository, e.g. `scenarios/greeting.rhai`: the run's working
    /// directory is the crate root, so diagnostics name the file by this relative path.
    pub fn file(self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        self.path(path.strip_prefix(root()).unwrap_or(path))
    }

    /// Pass this path as it is (relative to the working directory of the run).
    pub fn path(mut self, path: impl Into<OsString>) -> Self {
        self.paths.push(path.into());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(OsString::from));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The hard wall-clock bound of this run (default [`WALL`]).
    pub fn wall(mut self, wall: Duration) -> Self {
        self.wall = wall;
        self
    }

    fn command(&self) -> (Command, Option<PathBuf>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sockscript"));
        cmd.arg("--color").arg("never");
        cmd.args(&self.args);
        cmd.args(&self.paths);
        // The run must not depend on the environment of whoever runs the tests.
        for (k, _) in std::env::vars_os() {
            let k_text = k.to_string_lossy();
            if k_text.starts_with("SOCKSCRIPT_VAR_") || k_text.starts_with("SOCKSCRIPT_SECRET_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let dir = if self.files.is_empty() {
            cmd.current_dir(root());
            None
        } else {
            let dir = temp_dir("run");
            for (name, source) in &self.files {
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                if let Err(e) = std::fs::write(&path, source) {
                    panic!("cannot write `{}`: {e}", path.display());
                }
            }
            cmd.current_dir(&dir);
            Some(dir)
        };
        (cmd, dir)
    }

    /// Run to the end (or to the wall-clock bound, which panics).
    pub fn run(self) -> Output {
        let mut proc = self.spawn();
        proc.close_stdin();
        proc.wait()
    }

    /// Start the run and return at once: read its stdout line by line while it runs.
    pub fn spawn(self) -> Proc {
        let (cmd, dir) = self.command();
        let mut proc = Proc::start("sockscript", cmd, self.wall);
        proc.cleanup = dir;
        proc
    }
}

/// What a finished process said, and how it ended.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// The exit code; `-1` when a signal ended it.
    pub code: i32,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Output {
    fn context(&self) -> String {
        format!(
            "exit code {} after {:?}\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            expected,
            "unexpected exit code\n{}",
            self.context()
        );
        self
    }

    /// stdout, exactly.
    #[track_caller]
    pub fn stdout(&self, expected: &str) -> &Self {
        assert_eq!(
            self.stdout,
            expected,
            "unexpected stdout\n{}",
            self.context()
        );
        self
    }

    /// stderr after [`normalize`], exactly.
    #[track_caller]
    pub fn stderr(&self, expected: &str) -> &Self {
        assert_eq!(
            normalize(&self.stderr),
            expected,
            "unexpected stderr\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.context()
        );
        self
    }

    /// It ended within `limit` of wall time.
    #[track_caller]
    pub fn faster_than(&self, limit: Duration) -> &Self {
        assert!(
            self.elapsed < limit,
            "took {:?}, limit {limit:?}\n{}",
            self.elapsed,
            self.context()
        );
        self
    }
}

/// A running child process with a deadline: stdout arrives line by line, stderr is collected,
/// and every wait ends at the deadline by killing the child and panicking.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// stderr line by line, for programs whose readiness line goes there (`record`).
    err_lines: Receiver<String>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
    deadline: Instant,
    cleanup: Option<PathBuf>,
}

impl Proc {
    /// Start `cmd` with piped stdio; it may run for `wall` at most.
    pub fn start(name: &str, mut cmd: Command, wall: Duration) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start {name} ({cmd:?}): {e}"),
        };
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().map(|out| read_lines(out, tx));
        let (tx, err_lines) = mpsc::channel();
        let stderr = child.stderr.take().map(|err| read_lines(err, tx));
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            err_lines,
            stdout,
            stderr,
            started,
            deadline: started + wall,
            cleanup: None,
        }
    }

    /// The next line of stdout, without its line ending; panics at the deadline or at EOF.
    #[track_caller]
    pub fn line(&mut self) -> String {
        self.next_line(false)
    }

    /// The next line of stderr, as [`Proc::line`] reads stdout.
    #[track_caller]
    pub fn err_line(&mut self) -> String {
        self.next_line(true)
    }

    #[track_caller]
    fn next_line(&mut self, stderr: bool) -> String {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let lines = if stderr { &self.err_lines } else { &self.lines };
        match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                let out = self.kill();
                panic!("{} printed no line in time\n{}", self.name, out.context());
            }
            Err(RecvTimeoutError::Disconnected) => {
                let out = self.wait();
                panic!(
                    "{} closed stdout before the line expected\n{}",
                    self.name,
                    out.context()
                );
            }
        }
    }

    /// The next line of stdout, parsed as a port number.
    #[track_caller]
    pub fn port(&mut self) -> u16 {
        let line = self.line();
        match line.trim().parse() {
            Ok(port) => port,
            Err(_) => panic!("{}: expected a port on stdout, got {line:?}", self.name),
        }
    }

    /// The child's process id: to signal it, or to read `/proc/<pid>` while it runs.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Write `bytes` to the child's stdin (what a user types, under `script`).
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write as _;
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot write to {}: {e}", self.name));
    }

    /// Close the child's stdin: peers that wait for EOF there move on.
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Wait for the exit; at the deadline, kill the child and panic.
    #[track_caller]
    pub fn wait(&mut self) -> Output {
        self.close_stdin();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return self.collect(status.code().unwrap_or(-1)),
                Ok(None) if Instant::now() >= self.deadline => {
                    let out = self.kill();
                    panic!(
                        "{} still running after {:?}: killed\n{}",
                        self.name,
                        self.deadline - self.started,
                        out.context()
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("cannot wait for {}: {e}", self.name),
            }
        }
    }

    /// Kill now and collect what it said.
    fn kill(&mut self) -> Output {
        let _ = self.child.kill();
        let code = self.child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
        self.collect(code)
    }

    fn collect(&mut self, code: i32) -> Output {
        let elapsed = self.started.elapsed();
        let join =
            |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Output {
            // Lines already taken with `line()` are still part of the whole text.
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
            code,
            elapsed,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(dir) = self.cleanup.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Press Ctrl-C: send SIGINT to `proc`, which must exit 130 within 1 s; what it said.
#[track_caller]
pub fn ctrl_c(mut proc: Proc) -> Output {
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-s", "INT", &proc.id().to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -s INT failed");
    let out = proc.wait();
    let took = sent.elapsed();
    out.code(130);
    assert!(took < Duration::from_secs(1), "exit {took:?} after Ctrl-C");
    out
}

/// Read `from` to its end on a thread of its own, handing each line (without its ending) to
/// `tx` as it comes; the thread's result is the whole text.
fn read_lines(from: impl Read + Send + 'static, tx: mpsc::Sender<String>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut reader = BufReader::new(from);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    all.extend_from_slice(&line);
                    let text = String::from_utf8_lossy(&line);
                    let _ = tx.send(text.trim_end_matches(['\n', '\r']).to_owned());
                }
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    })
}

/// A Python peer: `python3 -u -c <source>` under the usual wall-clock bound. `tests/peers` is
/// on its `PYTHONPATH`, so the source can `from peer import ...` the common roles (listen on
/// port 0 and print it, accept one, echo, a TLS server context).
pub fn python(source: &str) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg("-c").arg(source);
    let mut path = std::ffi::OsString::from(root().join("tests/peers"));
    if let Some(theirs) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(theirs);
    }
    cmd.env("PYTHONPATH", path);
    Proc::start("python3", cmd, WALL)
}

/// What every one-connection Python server starts with: listen on a free loopback port and
/// print it (the readiness signal). The rest may use `socket` and `sys`.
const PYTHON_LISTEN: &str = r#"
import socket, sys
from peer import listen
s = listen()
"#;

/// A Python TCP server on `127.0.0.1:0` that prints its port, then runs `rest` (with the
/// listening socket as `s`).
pub fn python_listener(rest: &str) -> Proc {
    python(&format!("{PYTHON_LISTEN}{rest}"))
}

/// A Python program file (a peer service) with arguments, under the usual wall-clock bound.
pub fn python_file(path: &Path, args: &[&str]) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg(path).args(args);
    Proc::start("python3", cmd, WALL)
}

/// Make output comparable across runs: ephemeral ports after an IP become `:PORT`, and the
/// durations of status lines and summaries (`12 ms`, `0.03s`) become `N ms` and `N.NNs`.
/// Durations a script chose (`timed out after 300ms`) stay as they are.
pub fn normalize(text: &str) -> String {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"\b(\d{1,3}(?:\.\d{1,3}){3}):\d{2,5}\b", "$1:PORT"),
            (r"(\[[0-9A-Fa-f:.]+\]):\d{2,5}\b", "$1:PORT"),
            (r"\b\d+ ms\b", "N ms"),
            (r"\b\d+\.\d{2}s\b", "N.NNs"),
        ]
        .into_iter()
        .map(|(re, to)| (Regex::new(re).unwrap_or_else(|e| panic!("{re}: {e}")), to))
        .collect()
    });
    let mut text = text.to_owned();
    for (re, to) in rules {
        text = re.replace_all(&text, *to).into_owned();
    }
    text
}

/// The first `// key: value` line of a script's leading comment block, e.g. `// exit: 4`.
pub fn header(source: &str, key: &str) -> Option<String> {
    headers(source, key).into_iter().next()
}

/// Every `// key: value` line of a script's leading comment block, in order (`// stdout:`
/// lines, one per line printed).
pub fn headers(source: &str, key: &str) -> Vec<String> {
    source
        .lines()
        .take_while(|l| l.trim_start().starts_with("//"))
        .filter_map(|l| {
            l.trim_start()
                .trim_start_matches('/')
                .trim()
                .strip_prefix(key)?
                .strip_prefix(':')
                .map(|v| v.trim().to_owned())
        })
        .collect()
}

/// The exit code a script's header asks for (`// exit: N`), else 0.
pub fn expected_exit(source: &str, path: &Path) -> i32 {
    match header(source, "exit") {
        None => 0,
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{}: `// exit: {v}` is not a number", path.display())),
    }
}

/// Every `*.rhai` under `dir`, recursively, sorted.
pub fn rhai_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rhai") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_hides_ports_and_timings() {
        assert_eq!(
            normalize("connect to `127.0.0.1:41234` failed; [::1]:8080 ok (2 connections, 12 ms) in 0.03s"),
            "connect to `127.0.0.1:PORT` failed; [::1]:PORT ok (2 connections, N ms) in N.NNs"
        );
        assert_eq!(
            normalize("timed out after 300ms; line 2:14"),
            "timed out after 300ms; line 2:14"
        );
    }

    #[test]
    fn headers_come_from_the_leading_comment() {
        let src = "// a scenario\n// exit: 4\n// args: --timeout 1s\nlet a = 1;\n// exit: 9\n";
        assert_eq!(header(src, "exit").as_deref(), Some("4"));
        assert_eq!(header(src, "args").as_deref(), Some("--timeout 1s"));
        assert_eq!(expected_exit("let a = 1;", Path::new("x")), 0);
        let printed = "// stdout: one\n// stdout: two\nprint(1);\n// stdout: three\n";
        assert_eq!(headers(printed, "stdout"), ["one", "two"]);
    }
}
