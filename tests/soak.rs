//! No leaks: one `sockscript --test -j 2` process runs a small scenario a thousand times
//! (listen, connect, accept, send, recv, spawn, channel, close, and a task left blocked in
//! `accept` for the end of main to stop) while the test samples the process's open file
//! descriptors and threads from `/proc`. Both must stay small all along and must not grow
//! from the first third of the run to the last.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::harness::{Output, Test};

const RUNS: usize = 1000;
/// Far above what two scenarios at a time hold (a few sockets each, the runtime's own), far
/// below what a leak of one per run would reach.
const MAX_FDS: usize = 100;
const MAX_THREADS: usize = 50;

const SCENARIO: &str = r#"
let server = listen("127.0.0.1:0");
let said = channel();
let echo = spawn(|| {
    let conn = server.accept();
    let line = conn.recv_line();
    said.send(line);
    conn.send_line(line);
    conn.close();
});
let client = connect(server.addr);
client.send_line("ping");
assert_eq(client.recv_line(), "ping");
assert_eq(said.recv(), "ping");
assert_eq(client.recv(), "");
client.close();
echo.join();
server.close();
// Left blocked: the end of main must stop it and let its socket go.
let idle = listen("127.0.0.1:0");
spawn(|| idle.accept());
"#;

/// Open descriptors and threads of a process, once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    fds: usize,
    threads: usize,
}

fn count(dir: &PathBuf) -> Option<usize> {
    Some(std::fs::read_dir(dir).ok()?.count())
}

/// Sample `pid` every 25 ms until `stop` is set (or the process is gone).
fn sampler(pid: u32, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Sample>> {
    std::thread::spawn(move || {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let mut samples = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let fds = count(&proc_dir.join("fd"));
            let threads = count(&proc_dir.join("task"));
            match (fds, threads) {
                (Some(fds), Some(threads)) => samples.push(Sample { fds, threads }),
                _ => break,
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        samples
    })
}

#[test]
fn a_thousand_runs_in_one_process_leak_no_descriptors_or_threads() {
    let (out, samples) = runs_sampled(SCENARIO, RUNS, &[]);
    out.code(0).stderr_has(&format!("{RUNS} passed, 0 failed"));
    assert_no_leak(&samples);
}

/// Run `scenario` `runs` times in one `sockscript --test -j 2` process (with `args`), sampling
/// it all along.
pub(crate) fn runs_sampled(scenario: &str, runs: usize, args: &[&str]) -> (Output, Vec<Sample>) {
    let mut test = Test::new().args(&["--test", "-j", "2"]).args(args);
    for i in 0..runs {
        test = test.write(&format!("run{i:04}.rhai"), scenario);
    }
    let mut run = test.path(".").wall(Duration::from_secs(60)).spawn();
    let stop = Arc::new(AtomicBool::new(false));
    let sampling = sampler(run.id(), stop.clone());
    let out = run.wait();
    stop.store(true, Ordering::SeqCst);
    (out, sampling.join().unwrap_or_default())
}

/// Few descriptors and threads all along, and no more late in the run than early.
#[track_caller]
pub(crate) fn assert_no_leak(samples: &[Sample]) {
    assert!(
        samples.len() >= 6,
        "only {} samples: the run was too short to watch",
        samples.len()
    );
    let max = |part: &[Sample]| {
        (
            part.iter().map(|s| s.fds).max().unwrap_or(0),
            part.iter().map(|s| s.threads).max().unwrap_or(0),
        )
    };
    let (fds, threads) = max(samples);
    assert!(fds < MAX_FDS, "{fds} descriptors open at once: {samples:?}");
    assert!(
        threads < MAX_THREADS,
        "{threads} threads at once: {samples:?}"
    );
    // A leak grows with the runs done: the last third may not need more than the first.
    let third = samples.len() / 3;
    let (early_fds, early_threads) = max(&samples[..third]);
    let (late_fds, late_threads) = max(&samples[samples.len() - third..]);
    assert!(
        late_fds <= early_fds + 8,
        "descriptors grew from {early_fds} to {late_fds}: {samples:?}"
    );
    assert!(
        late_threads <= early_threads + 4,
        "threads grew from {early_threads} to {late_threads}: {samples:?}"
    );
}
