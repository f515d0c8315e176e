//! The `sockscript` binary: everything lives in the library; this only turns its status into
//! the process exit code.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(sockscript::run(std::env::args_os()))
}
