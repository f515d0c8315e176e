//! Writing to the terminal's streams without panicking when they are gone. `eprint!` panics
//! on a closed pipe (`sockscript --test dir 2>&1 >/dev/null | head -1`); what sockscript says
//! on stderr is lost then, but the run goes on and keeps its exit code.

use std::io::Write as _;

/// Write `text` to stderr as it is; a closed or broken stderr is ignored.
pub fn eprint(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Write `text` and a newline to stderr; a closed or broken stderr is ignored.
pub fn eprintln(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
    let _ = err.flush();
}
