//! The file a Unix socket is bound to: what is at a path, whether anything is bound behind a
//! socket file, removing a stale one before a bind (`listen(addr, #{unlink: true})`), and
//! removing at close only the file this listener made. The listener owns binding and
//! accepting; this module only looks at and removes directory entries.
//!
//! Nothing here follows a symbolic link, and nothing is removed that was not identified first:
//! a stale socket file by probing it, the listener's own file by the device and inode recorded
//! when it was bound. (`unlink(2)` takes a name, so a file swapped in between the last look and
//! the removal cannot be ruled out; the look is made just before, to keep that window small.)

use std::fs::{FileType, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

/// What a directory entry is, as messages name it: "a regular file", "a FIFO"...
pub fn kind_of(file_type: FileType) -> &'static str {
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// What is at a Unix socket path, as far as binding there goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Occupant {
    /// Nothing: the path is free.
    Nothing,
    /// A socket file that no socket is bound to any more: every kind of connect is refused.
    Stale,
    /// A socket file with a live socket behind it, described ("a server is listening on...").
    Live(&'static str),
    /// Something that is not a socket ("a regular file", "a directory", "a symbolic link"...).
    NotSocket(&'static str),
    /// A socket file that could not be probed (e.g. permission denied), or a path that could
    /// not be looked at: never removed.
    Unknown(String),
}

impl Occupant {
    /// Why a bind at `path` is refused, for an `addr_in_use` message. `unlink` says whether the
    /// script asked for a stale file to be removed (and so why this one was not).
    pub(crate) fn refusal(&self, path: &Path, unlink: bool) -> String {
        let path = path.display();
        let removes_only = if unlink {
            ": sockscript removes only a stale socket file"
        } else {
            ""
        };
        match self {
            // The bind failed all the same: something appeared there meanwhile.
            Occupant::Nothing => format!("`{path}` was taken while sockscript bound it"),
            Occupant::Stale => "a stale socket file is left from a server that is gone; remove \
                 it, or pass `#{unlink: true}` to remove it first"
                .to_owned(),
            Occupant::Live(what) => format!("{what}{removes_only}"),
            Occupant::NotSocket(kind) => format!("`{path}` is {kind}, not a socket{removes_only}"),
            Occupant::Unknown(why) => {
                format!("cannot tell whether `{path}` is a stale socket file: {why}")
            }
        }
    }
}

/// Look at `path` without following a symbolic link, and probe it if it is a socket file.
pub(crate) fn occupant(path: &Path) -> Occupant {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Occupant::Nothing,
        Err(e) => Occupant::Unknown(lower(&e)),
        Ok(meta) if !meta.file_type().is_socket() => Occupant::NotSocket(kind_of(meta.file_type())),
        Ok(_) => probe(path),
    }
}

/// Remove a stale socket file at `path`, and nothing else: a missing file is fine, anything
/// else that is there is the returned refusal.
pub(crate) fn remove_stale(path: &Path) -> Result<(), Occupant> {
    let before = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Occupant::Unknown(lower(&e))),
        Ok(meta) => meta,
    };
    if !before.file_type().is_socket() {
        return Err(Occupant::NotSocket(kind_of(before.file_type())));
    }
    match probe(path) {
        Occupant::Stale => {}
        other => return Err(other),
    }
    // Remove the file that was probed, not one put there while probing.
    match std::fs::symlink_metadata(path) {
        Ok(now) if same_file(&before, &now) => {}
        Ok(_) => {
            return Err(Occupant::Unknown(
                "it was replaced while sockscript looked at it".into(),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Occupant::Unknown(lower(&e))),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Occupant::Unknown(lower(&e))),
        _ => Ok(()),
    }
}

/// Whether anything is bound to the socket file at `path`. A connect of each socket type tells:
/// the kernel refuses one (`ECONNREFUSED`) only when nothing is bound there (or a stream socket
/// is bound but not listening, which the other types then see as `EPROTOTYPE`), and answers a
/// socket of another type with `EPROTOTYPE`. The connects do not block: a listener whose queue
/// is full answers `EAGAIN`, and is live.
fn probe(path: &Path) -> Occupant {
    let addr = match SockAddr::unix(path) {
        Ok(a) => a,
        Err(e) => return Occupant::Unknown(lower(&e)),
    };
    let kinds = [
        (Type::STREAM, "a server is listening on this socket file"),
        (
            Type::DGRAM,
            "a datagram socket is bound to this socket file",
        ),
        (
            Type::from(libc::SOCK_SEQPACKET),
            "a seqpacket server is listening on this socket file",
        ),
    ];
    let mut other_type = false;
    for (ty, live) in kinds {
        // A type this system has no Unix sockets of cannot be bound there either.
        let Ok(socket) = Socket::new(Domain::UNIX, ty, None) else {
            continue;
        };
        if let Err(e) = socket.set_nonblocking(true) {
            return Occupant::Unknown(lower(&e));
        }
        match socket.connect(&addr) {
            Ok(()) => return Occupant::Live(live),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => other_type = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Occupant::Live(live),
            // A connected datagram socket refuses other senders (`EPERM`): still live.
            Err(e) if ty == Type::DGRAM && e.raw_os_error() == Some(libc::EPERM) => {
                return Occupant::Live(live)
            }
            Err(e) => return Occupant::Unknown(lower(&e)),
        }
    }
    if other_type {
        Occupant::Live("a socket is bound to this socket file (it accepts no connections yet)")
    } else {
        Occupant::Stale
    }
}

/// The socket file a listener made: removed when the listener closes, unless someone has put
/// another file at its path since.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// Remember the socket file just bound at `path` (`None` if it is not there to see).
    pub(crate) fn bound(path: &Path) -> Option<SocketFile> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        meta.file_type().is_socket().then(|| SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Remove the file if it is still the socket this listener bound.
    pub(crate) fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino() && a.file_type() == b.file_type()
}

/// `permission denied`, without the `(os error 13)`.
fn lower(err: &io::Error) -> String {
    super::error::strip_os_error(&err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sockscript-unit-{}-socket-file-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn each_kind_of_occupant_is_told_apart() {
        use std::os::unix::net::{UnixDatagram, UnixListener};
        let dir = temp("kinds");
        assert_eq!(occupant(&dir.join("none")), Occupant::Nothing);
        let file = dir.join("file");
        std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(occupant(&file), Occupant::NotSocket("a regular file"));
        assert_eq!(occupant(&dir), Occupant::NotSocket("a directory"));
        let stream = dir.join("stream.sock");
        let listener = UnixListener::bind(&stream).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(occupant(&stream), Occupant::Live(w) if w.contains("server")));
        let dgram = dir.join("dgram.sock");
        let datagram = UnixDatagram::bind(&dgram).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(occupant(&dgram), Occupant::Live(w) if w.contains("datagram")));
        let bind = |name: &str, ty: Type| {
            let path = dir.join(name);
            let socket = Socket::new(Domain::UNIX, ty, None).unwrap_or_else(|e| panic!("{e}"));
            let addr = SockAddr::unix(&path).unwrap_or_else(|e| panic!("{e}"));
            socket.bind(&addr).unwrap_or_else(|e| panic!("{e}"));
            (path, socket)
        };
        let (seq, seqpacket) = bind("seq.sock", Type::from(libc::SOCK_SEQPACKET));
        seqpacket.listen(1).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(occupant(&seq), Occupant::Live(w) if w.contains("seqpacket")));
        // Bound, not yet listening: a stream connect is refused, yet the file is not stale.
        let (quiet, not_listening) = bind("quiet.sock", Type::STREAM);
        assert!(matches!(occupant(&quiet), Occupant::Live(w) if w.contains("no connections yet")));
        assert!(remove_stale(&quiet).is_err());
        drop((listener, datagram, seqpacket, not_listening));
        assert_eq!(occupant(&stream), Occupant::Stale);
        assert_eq!(occupant(&dgram), Occupant::Stale);
        assert_eq!(remove_stale(&seq), Ok(()));
        assert_eq!(occupant(&seq), Occupant::Nothing);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_socket_file_replaced_by_another_file_is_left_alone() {
        use std::os::unix::net::UnixListener;
        let dir = temp("replaced");
        let path = dir.join("a.sock");
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let file = SocketFile::bound(&path).unwrap_or_else(|| panic!("no socket file"));
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, "keep").unwrap_or_else(|e| panic!("{e}"));
        file.remove();
        assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some("keep"));
        drop(listener);
        let _ = std::fs::remove_dir_all(dir);
    }
}
