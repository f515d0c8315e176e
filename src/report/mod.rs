//! Views of the outcomes. Each format renders `&[Outcome]` to a string and never runs anything;
//! writing a file is the caller's one line.
//!
//! The file formats are [`Format`]s: a name, a flag and a pure render function, one file each
//! ([`junit`], [`tap`], [`json`], [`markdown`], [`pcap`], [`html`]), listed in [`FORMATS`]. A format renders the
//! whole run to one file, or each scenario to a file of its own ([`Render`]). [`Files`] writes
//! the ones asked for, given as plain `(format, path)` pairs: which ones, and where, is
//! `options`' business. A new format is its file with a `FORMAT`, its line here, and its flag
//! (`cli.rs`, resolved in `options.rs`). [`terminal`] and [`progress`] are the views on stderr.
//!
//! [`sequence`] is no format: it turns one outcome's transcript into lanes and steps (a
//! sequence diagram before anything draws it), which the diagram views read.

pub mod console;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod pcap;
pub mod progress;
pub mod sequence;
pub mod tap;
pub mod terminal;

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::outcome::Outcome;

/// A report file format.
#[derive(Clone, Copy)]
pub struct Format {
    /// Its name, as in `--report-NAME`.
    pub name: &'static str,
    /// The flag that asks for it: `--report-NAME`, or `--pcap`.
    pub flag: &'static str,
    pub render: Render,
    /// Whether asking for it runs even one file as a suite, in test mode (JUnit, TAP and JSON
    /// describe a suite); the other formats follow the mode.
    pub suite: bool,
    /// Whether a [`Render::Run`] format reads payloads whole, as the transcript kept them
    /// within `--limit capture` (and the run within [`WHOLE_PAYLOAD_BYTES`]), rather than the
    /// [`crate::transcript::PREVIEW_BYTES`] previews a suite keeps. A [`Render::Scenario`]
    /// format always sees them whole.
    pub whole_payloads: bool,
}

/// How a format renders, and so where its file goes.
#[derive(Clone, Copy)]
pub enum Render {
    /// One file for the run, written once every scenario has finished: the outcomes in the
    /// order they ran, and the suite's wall time.
    Run(fn(&[Outcome], Duration) -> String),
    /// One file per scenario, written as soon as the scenario's outcome is final (so a suite
    /// need not keep its payloads): the file `PATH` in run mode; in test mode, `PATH` is a
    /// directory of `<scenario>.<ext>` files (the scenario's name, without `.rhai`).
    Scenario {
        render: fn(&Outcome) -> Vec<u8>,
        ext: &'static str,
    },
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Every report file format.
pub const FORMATS: [Format; 6] = [
    junit::FORMAT,
    tap::FORMAT,
    json::FORMAT,
    markdown::FORMAT,
    pcap::FORMAT,
    html::FORMAT,
];

/// The payload bytes past their previews that a run keeps for the formats that read them
/// whole, all scenarios together: what the HTML page embeds at most, so a suite of bulk
/// transfers holds megabytes until its reports are written, not a capture per scenario.
pub const WHOLE_PAYLOAD_BYTES: usize = html::REPORT_PAYLOAD_BYTES;

/// The report files of one run: [`Files::scenario`] as each outcome becomes final,
/// [`Files::finish`] once all are in.
pub struct Files {
    wanted: Vec<(Format, PathBuf)>,
    /// Test mode: a per-scenario format's path is a directory.
    suite: bool,
    /// Whether a run format reads whole payloads, so outcomes keep them to the end.
    keep_whole: bool,
    /// What outcomes may still keep whole, past their previews ([`WHOLE_PAYLOAD_BYTES`]).
    whole_left: AtomicUsize,
    /// The per-scenario files written so far, so two scenarios never share one.
    used: Mutex<HashSet<PathBuf>>,
    /// The formats a file of which could not be written (each is said once).
    failed: Mutex<HashSet<&'static str>>,
    any_failed: AtomicBool,
}

impl Files {
    /// The files asked for; `suite` in test mode.
    pub fn new(wanted: &[(Format, PathBuf)], suite: bool) -> Files {
        let keep_whole = wanted
            .iter()
            .any(|(f, _)| f.whole_payloads && matches!(f.render, Render::Run(_)));
        Files {
            wanted: wanted.to_vec(),
            suite,
            keep_whole,
            whole_left: AtomicUsize::new(WHOLE_PAYLOAD_BYTES),
            used: Mutex::new(HashSet::new()),
            failed: Mutex::new(HashSet::new()),
            any_failed: AtomicBool::new(false),
        }
    }

    /// A scenario's outcome is final: write its per-scenario files, then cut its payloads to
    /// previews unless a run format reads them whole (a suite keeps every outcome until its
    /// reports are written: kilobytes a scenario, not its whole capture).
    pub fn scenario(&self, outcome: &mut Outcome) {
        for (format, path) in &self.wanted {
            let Render::Scenario { render, ext } = format.render else {
                continue;
            };
            let path = if self.suite {
                let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
                let file = scenario_file(path, &outcome.name, ext, &used);
                used.insert(file.clone());
                file
            } else {
                path.clone()
            };
            let made = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() && self.suite => {
                    std::fs::create_dir_all(dir)
                }
                _ => Ok(()),
            };
            if let Err(e) = made.and_then(|()| write_file(&path, render(outcome))) {
                self.cannot_write(format, &path, &e);
            }
        }
        if self.keep_whole {
            crate::transcript::keep_within(&mut outcome.transcript, &self.whole_left);
        } else {
            crate::transcript::keep_previews(&mut outcome.transcript);
        }
    }

    /// Every outcome is in: write the run's files. `false` when any report file (now or
    /// earlier) could not be written, so the run cannot pass without it.
    pub fn finish(&self, outcomes: &[Outcome], elapsed: Duration) -> bool {
        for (format, path) in &self.wanted {
            let Render::Run(render) = format.render else {
                continue;
            };
            if let Err(e) = write_file(path, render(outcomes, elapsed)) {
                self.cannot_write(format, path, &e);
            }
        }
        !self.any_failed.load(Ordering::SeqCst)
    }

    /// Said on stderr once per format: a suite's directory that cannot be made would
    /// otherwise be said for every scenario.
    fn cannot_write(&self, format: &Format, path: &Path, e: &std::io::Error) {
        self.any_failed.store(true, Ordering::SeqCst);
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.insert(format.name) {
            let path = path.display().to_string();
            console::eprintln(&format!(
                "error: cannot write the report `{}`: {e}",
                crate::escape::line(&path)
            ));
        }
    }
}

/// Write `bytes` to `path` whole or not at all: into a new file beside it, then renamed over
/// it, so a run stopped while writing (a CI job's time limit) leaves the report it had before,
/// or none, never half of one for a CI to misread (a run killed mid-write may leave the
/// hidden `.NAME.*.tmp` beside it). The new file is created, never opened if something is
/// there (a link planted at its name is not followed), and takes the old file's permissions.
/// A path that is no regular file (`/dev/stdout`, a pipe) or is a link is written in place,
/// as asked; so is one whose directory takes no new file.
pub(crate) fn write_file(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    let bytes = bytes.as_ref();
    let old = std::fs::symlink_metadata(path).ok();
    let in_place = old.as_ref().is_some_and(|m| !m.file_type().is_file());
    let (Some(dir), Some(name), false) = (path.parent(), path.file_name(), in_place) else {
        return std::fs::write(path, bytes);
    };
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    temp_name.push(format!(".{}.{n}.{nanos}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
    {
        Ok(file) => file,
        Err(_) => return std::fs::write(path, bytes),
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| match &old {
            Some(old) => file.set_permissions(old.permissions()),
            None => Ok(()),
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Where a scenario's file goes under `dir`: its name's plain components (no `..`, no root:
/// a name given as `../x.rhai` stays inside), without `.rhai`, with `.ext`; `-2`, `-3`, … when
/// another scenario took that name.
fn scenario_file(dir: &Path, name: &str, ext: &str, used: &HashSet<PathBuf>) -> PathBuf {
    let mut rel: PathBuf = Path::new(name)
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect();
    let stem = rel
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".rhai").unwrap_or(&stem).to_owned();
    let stem = if stem.is_empty() {
        "scenario".to_owned()
    } else {
        stem
    };
    rel.set_file_name(format!("{stem}.{ext}"));
    let mut file = dir.join(&rel);
    let mut n = 1;
    while used.contains(&file) {
        n += 1;
        rel.set_file_name(format!("{stem}-{n}.{ext}"));
        file = dir.join(&rel);
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_stay_inside_and_apart() {
        let dir = Path::new("out");
        let mut used = HashSet::new();
        let mut file = |name: &str| {
            let f = scenario_file(dir, name, "pcapng", &used);
            used.insert(f.clone());
            f.display().to_string()
        };
        assert_eq!(file("greeting.rhai"), "out/greeting.pcapng");
        assert_eq!(file("smoke/redis.rhai"), "out/smoke/redis.pcapng");
        assert_eq!(file("../../etc/greeting.rhai"), "out/etc/greeting.pcapng");
        assert_eq!(file("/abs/greeting.rhai"), "out/abs/greeting.pcapng");
        assert_eq!(file("greeting"), "out/greeting-2.pcapng");
        assert_eq!(file(".."), "out/scenario.pcapng");
    }
}
