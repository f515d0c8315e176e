//! The sandbox holds at the file system, and nothing hangs before the deadlines start.
//!
//! - `listen("unix:PATH", #{unlink: true})` removes only a stale socket file: a regular file, a
//!   directory, a FIFO, a symbolic link, or a live socket of any type (stream, datagram,
//!   seqpacket) is `addr_in_use` saying what is there, and is left as it was.
//! - A listener removes at close only the socket file it made, not a file put at its path since.
//! - Scenario files and `--vars-file` are read only when they are regular files: a FIFO, a
//!   device or a socket on the command line is a usage error (exit 2) at once.
//! - A test directory is walked once, as it is on disk: symbolic link loops end, links to
//!   directories and out of the tree are not followed, a link to a `.rhai` file inside the tree
//!   runs under its own name, and a FIFO named `.rhai` fails to load instead of blocking.
//!
//! Everything is real: FIFOs made by `mkfifo`, sockets bound by this test process, symbolic
//! links on disk. Each run has a short wall-clock bound, so the old hangs fail quickly.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{symlink, FileTypeExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::harness::{text, Dir, Test};

/// A run that should end at once; an old hang fails the test here instead of after 20 s.
const QUICK: Duration = Duration::from_secs(8);

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run mkfifo: {e}"));
    assert!(status.success(), "mkfifo {} failed", path.display());
}

fn write(path: &Path, content: &str) {
    std::fs::write(path, content)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn link(target: impl AsRef<Path>, at: &Path) {
    symlink(target.as_ref(), at).unwrap_or_else(|e| panic!("cannot link {}: {e}", at.display()));
}

fn file_type(path: &Path) -> std::fs::FileType {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{} is gone: {e}", path.display()))
        .file_type()
}

// ---------------------------------------------------------------------------------------------
// Unix socket files

/// Every kind of entry that is not a stale socket file survives `unlink: true`, and the message
/// says what is there; without `unlink` a regular file is not called a stale socket file.
#[test]
fn unlink_removes_nothing_but_a_stale_socket_file() {
    let dir = Dir::new("unlink-kinds");
    write(&dir.join("file"), "precious data\n");
    std::fs::create_dir(dir.join("dir")).unwrap_or_else(|e| panic!("{e}"));
    mkfifo(&dir.join("fifo"));
    link(dir.join("file"), &dir.join("link"));
    link(dir.join("nowhere"), &dir.join("dangling"));
    // Live sockets of the two other types, held by this test process.
    let dgram = UnixDatagram::bind(dir.join("dgram.sock")).unwrap_or_else(|e| panic!("{e}"));
    let seq = Socket::new(Domain::UNIX, Type::from(libc::SOCK_SEQPACKET), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let seq_addr = SockAddr::unix(dir.join("seq.sock")).unwrap_or_else(|e| panic!("{e}"));
    seq.bind(&seq_addr).unwrap_or_else(|e| panic!("{e}"));
    seq.listen(4).unwrap_or_else(|e| panic!("{e}"));

    let out = Test::new()
        .args(&["--var", &format!("dir={}", dir.text())])
        .script(
            r#"
            for opts in [#{unlink: true}, #{}] {
                for name in ["file", "dir", "fifo", "link", "dangling", "dgram.sock", "seq.sock"] {
                    let e = assert_err(|| listen(`unix:${dir}/${name}`, opts), "addr_in_use");
                    print(`${name}: ${e.message}`);
                }
            }
            "#,
        )
        .wall(QUICK)
        .run();
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 14, "{}", out.stdout);
    let expected = [
        ("file", "is a regular file, not a socket"),
        ("dir", "is a directory, not a socket"),
        ("fifo", "is a FIFO (named pipe), not a socket"),
        ("link", "is a symbolic link, not a socket"),
        ("dangling", "is a symbolic link, not a socket"),
        (
            "dgram.sock",
            "a datagram socket is bound to this socket file",
        ),
        (
            "seq.sock",
            "a seqpacket server is listening on this socket file",
        ),
    ];
    for (i, (name, says)) in expected.iter().enumerate() {
        let with_unlink = lines[i];
        assert!(
            with_unlink.starts_with(&format!("{name}: ")),
            "{with_unlink}"
        );
        assert!(with_unlink.contains(says), "{with_unlink}");
        assert!(
            with_unlink.ends_with("sockscript removes only a stale socket file"),
            "{with_unlink}"
        );
        let without = lines[i + expected.len()];
        assert!(without.contains(says), "{without}");
        assert!(!without.contains("stale"), "{without}");
    }

    // All still there, as they were.
    assert_eq!(read(&dir.join("file")), "precious data\n");
    assert!(file_type(&dir.join("dir")).is_dir());
    assert!(file_type(&dir.join("fifo")).is_fifo());
    assert!(file_type(&dir.join("link")).is_symlink());
    assert!(file_type(&dir.join("dangling")).is_symlink());
    // The datagram socket still gets what is sent to its path.
    let sender = UnixDatagram::unbound().unwrap_or_else(|e| panic!("{e}"));
    sender
        .send_to(b"still mine", dir.join("dgram.sock"))
        .unwrap_or_else(|e| panic!("the datagram socket lost its path: {e}"));
    dgram
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 64];
    let n = dgram.recv(&mut buf).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&buf[..n], b"still mine");
    // The seqpacket server still accepts on its path.
    let client = Socket::new(Domain::UNIX, Type::from(libc::SOCK_SEQPACKET), None)
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .connect(&seq_addr)
        .unwrap_or_else(|e| panic!("the seqpacket server lost its path: {e}"));
}

/// A listener removes its socket file when it closes (or when the scenario ends), but not a
/// file someone put at that path meanwhile.
#[test]
fn a_listener_removes_only_the_socket_file_it_made() {
    let dir = Dir::new("unlink-close");
    let mut run = Test::new()
        .args(&["--var", &format!("dir={}", dir.text())])
        .script(
            r#"
            let closed = listen(`unix:${dir}/closed.sock`);
            let dropped = listen(`unix:${dir}/dropped.sock`);
            let gate = listen(`unix:${dir}/gate.sock`);
            print("ready");
            gate.accept().send_line("go");
            closed.close();
            print("closed");
            "#,
        )
        .wall(QUICK)
        .spawn();
    assert_eq!(run.line(), "ready");
    for name in ["closed.sock", "dropped.sock"] {
        let path = dir.join(name);
        assert!(file_type(&path).is_socket());
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        write(&path, &format!("{name} now holds someone else's data\n"));
    }
    // The gate opens only once both files are replaced.
    let gate = UnixStream::connect(dir.join("gate.sock")).unwrap_or_else(|e| panic!("{e}"));
    gate.set_read_timeout(Some(QUICK))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut go = String::new();
    BufReader::new(gate)
        .read_line(&mut go)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(go, "go\n");
    assert_eq!(run.line(), "closed");
    run.wait().code(0);
    for name in ["closed.sock", "dropped.sock"] {
        assert_eq!(
            read(&dir.join(name)),
            format!("{name} now holds someone else's data\n")
        );
    }
    // The file that was still the listener's own is removed as before.
    assert!(!dir.join("gate.sock").exists(), "gate.sock is left behind");
}

/// A Unix listener whose TLS setup fails does not leave its socket file behind: the path is
/// free again for the next `listen`, without `unlink`.
#[test]
fn a_listener_that_fails_to_start_leaves_no_socket_file() {
    let dir = Dir::new("unlink-tls");
    Test::new()
        .args(&["--var", &format!("dir={}", dir.text())])
        .script(
            r#"
            let path = `unix:${dir}/tls.sock`;
            assert_err(|| listen(path, #{tls: #{cert: "not pem", key: "not pem"}}), "tls");
            listen(path).close();
            print("free");
            "#,
        )
        .wall(QUICK)
        .run()
        .code(0)
        .stdout("free\n");
    assert!(!dir.join("tls.sock").exists(), "tls.sock is left behind");
}

// ---------------------------------------------------------------------------------------------
// Files read before anything runs

/// A FIFO as the scenario (run mode, `--test`) or as `--vars-file` is a usage error at once:
/// opening it would block until a writer came, before any deadline or signal handler.
#[test]
fn a_fifo_is_never_opened_as_a_scenario_or_vars_file() {
    let dir = Dir::new("fifo-args");
    let fifo = dir.join("scenario.rhai");
    mkfifo(&fifo);
    for args in [&[][..], &["--test"][..]] {
        Test::new()
            .args(args)
            .path(&fifo)
            .wall(QUICK)
            .run()
            .code(2)
            .stderr_has(&format!("`{}` is a FIFO (named pipe)", text(&fifo)))
            .stderr_has("sockscript reads only regular files")
            .faster_than(Duration::from_secs(3));
    }
    Test::new()
        .args(&["--vars-file", text(&fifo)])
        .script("print(1);")
        .wall(QUICK)
        .run()
        .code(2)
        .stderr_has(&format!(
            "--vars-file: `{}` is a FIFO (named pipe), not a regular file",
            text(&fifo)
        ))
        .faster_than(Duration::from_secs(3));
    assert!(file_type(&fifo).is_fifo());
}

/// A device or a socket on the command line is a usage error, never read: `/dev/zero` would be
/// read until memory ran out, `/dev/null` ran as an empty scenario that passed.
#[test]
fn devices_and_sockets_are_not_scenarios_or_vars_files() {
    let dir = Dir::new("device-args");
    let sock = dir.join("socket.rhai");
    let _held = UnixListener::bind(&sock).unwrap_or_else(|e| panic!("{e}"));
    for (path, kind) in [
        (Path::new("/dev/null"), "a character device"),
        (sock.as_path(), "a socket"),
    ] {
        Test::new()
            .path(path)
            .wall(QUICK)
            .run()
            .code(2)
            .stderr_has(&format!("`{}` is {kind}", text(path)));
        Test::new()
            .args(&["--vars-file", text(path)])
            .script("print(1);")
            .wall(QUICK)
            .run()
            .code(2)
            .stderr_has(&format!("`{}` is {kind}, not a regular file", text(path)));
    }
}

/// Two links to `.` make the tree infinite for a walk that follows links (2^40 paths before
/// the kernel's link limit); a link to itself and a pair of links to each other never resolve.
/// The walk sees each real file once, and ends at once.
#[test]
fn symbolic_link_loops_in_a_test_directory_end_at_once() {
    let dir = Dir::new("link-loops");
    write(&dir.join("ok.rhai"), "print(\"ok\");\n");
    link(".", &dir.join("a"));
    link(".", &dir.join("b"));
    link("self.rhai", &dir.join("self.rhai"));
    link("pong.rhai", &dir.join("ping.rhai"));
    link("ping.rhai", &dir.join("pong.rhai"));
    Test::new()
        .path(dir.path())
        .wall(QUICK)
        .run()
        .code(0)
        .stderr_has("ok.rhai: ok")
        .stderr_has("1 passed, 0 failed")
        .faster_than(Duration::from_secs(5));
}

/// A link to a `.rhai` file inside the tree runs under the link's name (it is the tree's own
/// scenario); a link out of the tree, or to a directory, is not followed.
#[test]
fn links_are_followed_only_to_files_inside_the_tree() {
    let dir = Dir::new("link-scope");
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap_or_else(|e| panic!("{e}"));
    write(&tree.join("sub/inner.rhai"), "print(\"inner\");\n");
    link("sub/inner.rhai", &tree.join("alias.rhai"));
    write(
        &dir.join("outside.rhai"),
        "fail(\"read from outside the tree\");\n",
    );
    link("../outside.rhai", &tree.join("out.rhai"));
    write(
        &dir.join("elsewhere/far.rhai"),
        "fail(\"walked out of the tree\");\n",
    );
    link("../elsewhere", &tree.join("far"));
    let out = Test::new().path(&tree).wall(QUICK).run();
    out.code(0)
        .stderr_has("alias.rhai: ok")
        .stderr_has("sub/inner.rhai: ok")
        .stderr_has("2 passed, 0 failed");
    for name in ["out.rhai", "far.rhai"] {
        assert!(!out.stderr.contains(name), "{name} was run\n{}", out.stderr);
    }
}

/// A FIFO named `.rhai` inside a test directory fails to load, saying what it is; the other
/// scenarios run.
#[test]
fn a_fifo_in_a_test_directory_is_reported_not_read() {
    let dir = Dir::new("fifo-walk");
    write(&dir.join("ok.rhai"), "print(\"ok\");\n");
    mkfifo(&dir.join("pipe.rhai"));
    Test::new()
        .path(dir.path())
        .wall(QUICK)
        .run()
        .code(4)
        .stderr_has("ok.rhai: ok")
        .stderr_has("is a FIFO (named pipe), not a regular file")
        .stderr_has("1 passed, 1 failed")
        .faster_than(Duration::from_secs(5));
}
