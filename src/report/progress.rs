//! Test mode's live view on stderr: a progress bar on a terminal, the finished scenarios' lines
//! whole (so parallel scenarios never interleave) everywhere else. What the lines say is
//! `terminal`'s; this only places them.

use std::sync::Mutex;

use super::console;
use crate::escape;

/// Test mode's live view: a progress bar on a terminal, plain lines everywhere else (CI, pipes).
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    running: Mutex<Vec<String>>,
}

impl Progress {
    /// A bar when stderr is a terminal (and not CI, and not `--trace`); plain lines otherwise.
    pub fn new(total: usize, trace: bool) -> Progress {
        use std::io::IsTerminal;
        let interactive =
            std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() && !trace;
        let bar = interactive.then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{pos}/{len}] {elapsed} {wide_msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            running: Mutex::new(Vec::new()),
        }
    }

    pub fn start(&self, name: &str) {
        if let Some(bar) = &self.bar {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.push(name.to_owned());
            bar.set_message(escape::line(&running.join(", ")).into_owned());
        }
    }

    /// Print a finished scenario's lines whole, so parallel scenarios never interleave.
    pub fn finish(&self, name: &str, text: &str) {
        match &self.bar {
            Some(bar) => {
                let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                running.retain(|n| n != name);
                bar.set_message(escape::line(&running.join(", ")).into_owned());
                bar.println(text.trim_end());
                bar.inc(1);
            }
            None => {
                let _guard = self.running.lock().unwrap_or_else(|p| p.into_inner());
                console::eprint(text);
            }
        }
    }

    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
