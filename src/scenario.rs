//! A scenario file, and finding them: a file as given, a directory's `*.rhai` recursively,
//! sorted so every run (and every shard of one) sees the same order.
//!
//! Nothing here can block or loop before a scenario's deadlines start. Only regular files are
//! read ([`read_regular`]): a FIFO, a device or a socket is refused before it is opened, and
//! the open itself cannot block. A directory walk does not follow links to directories (no
//! loops, no wandering out of the tree); a link named `*.rhai` is a scenario only when it
//! leads to a regular file inside the directory walked, and it then runs under the link's
//! name. Other links are skipped. Any other `*.rhai` entry that is not a regular file (a FIFO,
//! a socket) is listed, and fails to load saying what it is.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::net::file_kind;

/// One `.rhai` file, read.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub path: PathBuf,
    /// How reports name it: the path as the user wrote it, or relative to the directory given.
    pub name: String,
    pub source: String,
    /// The tree its imports must stay in.
    pub tree: PathBuf,
}

/// Why a scenario could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file cannot be read (usage: exit 2 in run mode).
    Unreadable(String),
    /// The file is not UTF-8 text: a script that cannot compile (exit 3).
    NotText(String),
    /// The file is larger than `--limit script` (usage: exit 2 in run mode).
    TooLarge(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Unreadable(m) | LoadError::NotText(m) | LoadError::TooLarge(m) => {
                f.write_str(m)
            }
        }
    }
}

impl Scenario {
    /// Read the regular file at `path`, found in `tree`; one of more than `max_size` bytes
    /// (`--limit script`) is refused before it is read whole.
    pub fn load(
        path: &Path,
        name: String,
        tree: &Path,
        max_size: usize,
    ) -> Result<Scenario, LoadError> {
        let bytes = read_regular(path, max_size).map_err(|e| match e {
            ReadError::Unreadable(m) => LoadError::Unreadable(m),
            ReadError::TooLarge(m) => LoadError::TooLarge(m),
        })?;
        let source = String::from_utf8(bytes).map_err(|e| {
            LoadError::NotText(format!(
                "`{}` does not compile: it is not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ))
        })?;
        Ok(Scenario {
            path: path.to_owned(),
            name,
            source,
            tree: tree.to_owned(),
        })
    }
}

/// Why [`read_regular`] read nothing.
#[derive(Debug)]
pub enum ReadError {
    /// Missing, unreadable, or not a regular file.
    Unreadable(String),
    /// Longer than the most it may read.
    TooLarge(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Unreadable(m) | ReadError::TooLarge(m) => f.write_str(m),
        }
    }
}

/// The whole of the regular file at `path`, if it holds at most `max_size` bytes. Anything
/// else is refused with a message saying what it is: checked before opening (opening a device
/// may do something), and again on the open file, which `O_NONBLOCK` keeps a FIFO swapped in
/// meanwhile from blocking the open. The length is checked first, and at most one byte past
/// `max_size` is read, so a file growing meanwhile is refused too.
pub fn read_regular(path: &Path, max_size: usize) -> Result<Vec<u8>, ReadError> {
    let cannot = |e: std::io::Error| {
        ReadError::Unreadable(format!(
            "cannot read `{}`: {}",
            path.display(),
            lower(&e.to_string())
        ))
    };
    let not_regular = |kind: &str| {
        ReadError::Unreadable(format!(
            "`{}` is {kind}, not a regular file: sockscript reads only regular files",
            path.display()
        ))
    };
    let too_large = |size: String| {
        ReadError::TooLarge(format!(
            "`{}` is {size}, over `--limit script={}`",
            path.display(),
            crate::script::size_text(max_size)
        ))
    };
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_regular(file_kind(meta.file_type())));
    }
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_regular(file_kind(meta.file_type())));
    }
    let max = u64::try_from(max_size).unwrap_or(u64::MAX);
    if meta.len() > max {
        return Err(too_large(format!("{} bytes", meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > max_size {
        return Err(too_large(format!("more than {max_size} bytes")));
    }
    Ok(bytes)
}

/// A scenario file found on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    /// How reports name it: the path as given, or relative to the directory given.
    pub name: String,
    /// The tree it was found in (the directory given, or a lone file's directory): its imports
    /// must stay inside it.
    pub tree: PathBuf,
}

/// The tree a lone scenario file's imports must stay in: its directory.
pub fn tree_of_file(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Every scenario under `paths`. A path that does not exist is an error.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files = walk(path)?;
            files.sort();
            for file in files {
                let name = file
                    .strip_prefix(path)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                found.push(Found {
                    path: file,
                    name,
                    tree: path.clone(),
                });
            }
        } else if path.exists() {
            // Not a FIFO or a device: `Options::resolve` has checked (`check_regular`).
            found.push(Found {
                path: path.clone(),
                name: path.display().to_string(),
                tree: tree_of_file(path),
            });
        } else {
            return Err(format!("`{}` does not exist", path.display()));
        }
    }
    Ok(found)
}

/// A path given on the command line is a directory or a regular file: anything else (a FIFO, a
/// device, a socket) is a usage error, found before anything is opened. A path that cannot be
/// looked at is left for the read to report.
pub fn check_regular(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => Err(format!(
            "`{}` is {}, not a scenario file or a directory: sockscript reads only regular files",
            path.display(),
            file_kind(meta.file_type())
        )),
        _ => Ok(()),
    }
}

/// The directory name whose files are modules, not scenarios.
pub const LIB: &str = "lib";

/// The `*.rhai` entries under `root` that are not directories and not under a [`LIB`]
/// directory; see the module's doc for links.
fn walk(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    // Resolved once, at the first link met: most trees have none.
    let mut resolved_root: Option<PathBuf> = None;
    // Directories named `lib` (below the root) hold modules that scenarios import.
    let scenarios = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| !(e.depth() > 0 && e.file_type().is_dir() && e.file_name() == LIB));
    for entry in scenarios {
        let entry = entry.map_err(|e| {
            let at = e.path().unwrap_or(root).display().to_string();
            match e.into_io_error() {
                Some(io) => format!("cannot read `{at}`: {}", lower(&io.to_string())),
                None => format!("cannot read `{at}`"),
            }
        })?;
        let path = entry.path();
        if entry.file_type().is_dir() || path.extension().is_none_or(|e| e != "rhai") {
            continue;
        }
        if entry.file_type().is_symlink() {
            let root = match &resolved_root {
                Some(r) => r,
                None => resolved_root.insert(std::fs::canonicalize(root).map_err(|e| {
                    format!(
                        "cannot read `{}`: {}",
                        root.display(),
                        lower(&e.to_string())
                    )
                })?),
            };
            if !leads_to_a_file_inside(path, root) {
                continue;
            }
        }
        out.push(entry.into_path());
    }
    Ok(out)
}

/// The link at `link` resolves (without looping) to a regular file under `root` (resolved).
fn leads_to_a_file_inside(link: &Path, root: &Path) -> bool {
    std::fs::canonicalize(link).is_ok_and(|target| {
        target.starts_with(root) && std::fs::metadata(&target).is_ok_and(|m| m.is_file())
    })
}

fn lower(text: &str) -> String {
    let text = text.split(" (os error").next().unwrap_or(text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Keep the scenarios whose path contains any of `filters` (all when none) and none of
/// `excludes`, then the `k`-th of `n` round-robin shards of what is left: every scenario lands
/// in exactly one shard.
pub fn select(
    found: Vec<Found>,
    filters: &[String],
    excludes: &[String],
    shard: Option<(usize, usize)>,
) -> Vec<Found> {
    found
        .into_iter()
        .filter(|found| {
            let text = found.path.to_string_lossy();
            let has = |f: &String| text.contains(f.as_str());
            (filters.is_empty() || filters.iter().any(has)) && !excludes.iter().any(has)
        })
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|(k, n)| i % n == k - 1))
        .map(|(_, item)| item)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<Found> {
        names
            .iter()
            .map(|n| Found {
                path: PathBuf::from(n),
                name: n.to_string(),
                tree: PathBuf::from("."),
            })
            .collect()
    }

    #[test]
    fn shards_cover_every_scenario_once() {
        let all = list(&["a", "b", "c", "d", "e"]);
        let mut seen: Vec<String> = (1..=3)
            .flat_map(|k| select(all.clone(), &[], &[], Some((k, 3))))
            .map(|f| f.name)
            .collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        let first: Vec<String> = select(all, &[], &[], Some((1, 3)))
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(first, ["a", "d"]);
    }

    /// Loops end, links to directories and out of the tree are not followed, a link to a file
    /// inside the tree is listed under its own name, and a FIFO is listed (its load refuses it).
    #[test]
    fn walks_see_the_tree_once_as_it_is_on_disk() {
        use std::os::unix::fs::symlink;
        let base =
            std::env::temp_dir().join(format!("sockscript-unit-{}-walk", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let tree = base.join("tree");
        let ok = |r: std::io::Result<()>| r.unwrap_or_else(|e| panic!("{e}"));
        ok(std::fs::create_dir_all(tree.join("sub")));
        ok(std::fs::write(tree.join("sub/a.rhai"), "1"));
        ok(std::fs::write(base.join("out.rhai"), "1"));
        ok(symlink("sub/a.rhai", tree.join("alias.rhai")));
        ok(symlink("../out.rhai", tree.join("escape.rhai")));
        ok(symlink(".", tree.join("loop")));
        ok(symlink("..", tree.join("up")));
        ok(symlink("self.rhai", tree.join("self.rhai")));
        let fifo = std::process::Command::new("mkfifo")
            .arg(tree.join("pipe.rhai"))
            .status();
        assert!(fifo.is_ok_and(|s| s.success()));
        let found: Vec<String> = discover(std::slice::from_ref(&tree))
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(found, ["alias.rhai", "pipe.rhai", "sub/a.rhai"]);
        let refused = Scenario::load(&tree.join("pipe.rhai"), "pipe.rhai".into(), &tree, 1024);
        assert!(
            matches!(&refused, Err(LoadError::Unreadable(m)) if m.contains("is a FIFO")),
            "{refused:?}"
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn filters_select_by_path() {
        let all = list(&["smoke/redis.rhai", "echo.rhai", "smoke/http.rhai"]);
        let picked = select(all.clone(), &["smoke/".into()], &[], None);
        assert_eq!(picked.len(), 2);
        let picked = select(all.clone(), &[], &["redis".into(), "echo".into()], None);
        assert_eq!(picked, list(&["smoke/http.rhai"]));
        let picked = select(all, &["smoke/".into()], &["http".into()], None);
        assert_eq!(picked, list(&["smoke/redis.rhai"]));
    }
}
