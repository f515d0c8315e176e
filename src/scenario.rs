//! A scenario file, and finding them: a file as given, a directory's `*.rhai` recursively,
//! sorted so every run (and every shard of one) sees the same order.

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// One `.rhai` file, read.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub path: PathBuf,
    /// How reports name it: the path as the user wrote it, or relative to the directory given.
    pub name: String,
    pub source: String,
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
    /// Read the file at `path`; one of more than `max_size` bytes (`--limit script`) is
    /// refused before it is read whole.
    pub fn load(path: &Path, name: String, max_size: usize) -> Result<Scenario, LoadError> {
        let bytes = read_at_most(path, max_size)?;
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
        })
    }
}

fn read_at_most(path: &Path, max_size: usize) -> Result<Vec<u8>, LoadError> {
    let unreadable = |e: std::io::Error| {
        LoadError::Unreadable(format!(
            "cannot read `{}`: {}",
            path.display(),
            lower(&e.to_string())
        ))
    };
    let too_large = |size: String| {
        LoadError::TooLarge(format!(
            "`{}` is {size}, over `--limit script={}`",
            path.display(),
            crate::script::size_text(max_size)
        ))
    };
    let max = u64::try_from(max_size).unwrap_or(u64::MAX);
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let length = file.metadata().map_err(unreadable)?.len();
    if length > max {
        return Err(too_large(format!("{length} bytes")));
    }
    // The length can grow after it was read (or mean nothing, for a pipe): read one byte more
    // than the limit, at most, to tell.
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() > max_size {
        return Err(too_large(format!("more than {max_size} bytes")));
    }
    Ok(bytes)
}

/// Every scenario under `paths`, as (path, display name). A path that does not exist is an error.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            files.sort();
            for file in files {
                let name = file
                    .strip_prefix(path)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                found.push((file, name));
            }
        } else if path.exists() {
            found.push((path.clone(), path.display().to_string()));
        } else {
            return Err(format!("`{}` does not exist", path.display()));
        }
    }
    Ok(found)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read `{}`: {}", dir.display(), lower(&e.to_string())))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read `{}`: {}", dir.display(), lower(&e.to_string())))?
            .path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rhai") {
            out.push(path);
        }
    }
    Ok(())
}

fn lower(text: &str) -> String {
    let text = text.split(" (os error").next().unwrap_or(text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Keep the scenarios whose path contains any of `filters` (all when none), then the
/// `k`-th of `n` round-robin shards of what is left: every scenario lands in exactly one shard.
pub fn select(
    found: Vec<(PathBuf, String)>,
    filters: &[String],
    shard: Option<(usize, usize)>,
) -> Vec<(PathBuf, String)> {
    found
        .into_iter()
        .filter(|(path, _)| {
            filters.is_empty() || {
                let text = path.to_string_lossy();
                filters.iter().any(|f| text.contains(f.as_str()))
            }
        })
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|(k, n)| i % n == k - 1))
        .map(|(_, item)| item)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<(PathBuf, String)> {
        names
            .iter()
            .map(|n| (PathBuf::from(n), n.to_string()))
            .collect()
    }

    #[test]
    fn shards_cover_every_scenario_once() {
        let all = list(&["a", "b", "c", "d", "e"]);
        let mut seen: Vec<String> = (1..=3)
            .flat_map(|k| select(all.clone(), &[], Some((k, 3))))
            .map(|(_, n)| n)
            .collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        let first: Vec<String> = select(all, &[], Some((1, 3)))
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(first, ["a", "d"]);
    }

    #[test]
    fn filters_select_by_path() {
        let all = list(&["smoke/redis.rhai", "echo.rhai", "smoke/http.rhai"]);
        let picked = select(all, &["smoke/".into()], None);
        assert_eq!(picked.len(), 2);
    }
}
