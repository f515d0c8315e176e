//! Views of the outcomes. Each format renders `&[Outcome]` to a string and never runs anything;
//! writing a file is the caller's one line.

pub mod console;
pub mod json;
pub mod junit;
pub mod progress;
pub mod tap;
pub mod terminal;

use std::time::Duration;

use crate::options::Reports;
use crate::outcome::Outcome;

/// Write every report the user asked for. A report that cannot be written is said on stderr,
/// and the result is `false` so the run cannot pass without it.
pub fn write_all(reports: &Reports, outcomes: &[Outcome], elapsed: Duration) -> bool {
    type Render = fn(&[Outcome], Duration) -> String;
    let wanted: [(&Option<std::path::PathBuf>, Render); 3] = [
        (&reports.junit, junit::render),
        (&reports.tap, tap::render),
        (&reports.json, json::render),
    ];
    let mut ok = true;
    for (path, render) in wanted {
        let Some(path) = path else { continue };
        if let Err(e) = std::fs::write(path, render(outcomes, elapsed)) {
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
