//! Views of the outcomes. Each format renders `&[Outcome]` to a string and never runs anything;
//! writing a file is the caller's one line.
//!
//! The file formats are [`Format`]s: a name and a pure render function, one file each
//! ([`junit`], [`tap`], [`json`], [`html`]), listed in [`FORMATS`]. [`write_all`] writes the ones asked
//! for, given as plain `(format, path)` pairs: which ones, and where, is `options`' business.
//! A new format is its file with a `FORMAT`, its line here, and its `--report-NAME` flag
//! (`cli.rs`, resolved in `options.rs`). [`terminal`] and [`progress`] are the views on stderr.
//!
//! [`sequence`] is no format: it turns one outcome's transcript into lanes and steps (a
//! sequence diagram before anything draws it), which the diagram views read.

pub mod console;
pub mod html;
pub mod json;
pub mod junit;
pub mod progress;
pub mod sequence;
pub mod tap;
pub mod terminal;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::outcome::Outcome;

/// A report file format.
#[derive(Clone, Copy)]
pub struct Format {
    /// As in its flag, `--report-NAME`.
    pub name: &'static str,
    /// Asked for with one file, it leaves run mode alone (the page of one run); the others
    /// are a suite's and ask for test mode.
    pub keeps_run_mode: bool,
    /// The whole report: the outcomes in the order they ran, and the suite's wall time.
    pub render: fn(&[Outcome], Duration) -> String,
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Every report file format.
pub const FORMATS: [Format; 4] = [junit::FORMAT, tap::FORMAT, json::FORMAT, html::FORMAT];

/// Write every report asked for, in order. A report that cannot be written is said on stderr,
/// and the result is `false` so the run cannot pass without it.
pub fn write_all(wanted: &[(Format, PathBuf)], outcomes: &[Outcome], elapsed: Duration) -> bool {
    let mut ok = true;
    for (format, path) in wanted {
        if let Err(e) = std::fs::write(path, (format.render)(outcomes, elapsed)) {
            let path = path.display().to_string();
            console::eprintln(&format!(
                "error: cannot write the report `{}`: {e}",
                crate::escape::line(&path)
            ));
            ok = false;
        }
    }
    ok
}
