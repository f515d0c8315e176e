//! What the user typed, resolved: durations parsed, variables collected, the mode and the
//! report formats chosen.
//! Every usage error (exit 2) is found here, before anything runs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rhai::Dynamic;

use crate::cli::{Cli, ColorWhen};
use crate::redact::Redactor;
use crate::report::{self, Format};
use crate::script::{parse_var, EnvAccess, ExecAccess};

/// Environment variables named `SOCKSCRIPT_VAR_<name>` become variables too.
pub const ENV_VAR_PREFIX: &str = "SOCKSCRIPT_VAR_";
/// Environment variables named `SOCKSCRIPT_SECRET_<name>` become secret variables.
pub const ENV_SECRET_PREFIX: &str = "SOCKSCRIPT_SECRET_";

#[derive(Debug, Clone)]
pub enum Mode {
    /// One file: its output as it happens, its failure as a diagnostic.
    Run(PathBuf),
    /// Every scenario under these paths, as a suite.
    Test(Vec<PathBuf>),
}

/// `--partition K/N`: the K-th (1-based) of N shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub k: usize,
    pub n: usize,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub jobs: usize,
    pub partition: Option<Partition>,
    pub filters: Vec<String>,
    /// `--exclude`: leave out the scenarios whose path contains one of these.
    pub excludes: Vec<String>,
    pub retry: u32,
    pub timeout: Duration,
    pub max_time: Duration,
    pub vars: Vec<(String, Dynamic)>,
    /// The values of `--secret` and `SOCKSCRIPT_SECRET_*`, masked in every output.
    pub redactor: Redactor,
    /// What the scripts' `env(name)` may read.
    pub env: EnvAccess,
    /// Which programs the scripts' `exec` may start.
    pub exec: ExecAccess,
    pub trace: bool,
    pub color: bool,
    pub check: bool,
    /// The report files to write, in the order of [`report::FORMATS`].
    pub reports: Vec<(Format, PathBuf)>,
    pub net_limits: crate::net::Limits,
    pub script_limits: crate::script::Limits,
    /// `--seed N`, else one chosen at random for this run.
    pub seed: u64,
}

/// A mistake in how sockscript was called.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Options {
    pub fn resolve(cli: Cli) -> Result<Options, UsageError> {
        let timeout = deadline("--timeout", &cli.timeout)?;
        let max_time = deadline("--max-time", &cli.max_time)?;
        if timeout.is_zero() || max_time.is_zero() {
            return Err(UsageError(
                "`--timeout` and `--max-time` must be more than 0".into(),
            ));
        }
        let reports: Vec<(Format, PathBuf)> = [
            (report::junit::FORMAT, cli.report_junit),
            (report::tap::FORMAT, cli.report_tap),
            (report::json::FORMAT, cli.report_json),
            (report::markdown::FORMAT, cli.report_markdown),
            (report::pcap::FORMAT, cli.pcap),
            (report::html::FORMAT, cli.report_html),
        ]
        .into_iter()
        .filter_map(|(format, path)| Some((format, path?)))
        .collect();
        // JUnit, TAP and JSON describe a suite: asking for one runs even one file as one.
        let wants_reports = reports.iter().any(|(format, _)| format.suite);
        let (net_limits, script_limits) = limits(&cli.limits)?;
        let partition = cli.partition.as_deref().map(partition).transpose()?;
        let selects = partition.is_some()
            || !cli.filter.is_empty()
            || !cli.exclude.is_empty()
            || cli.retry > 0;
        // A FIFO or a device on the command line would block the read, or never end it.
        for path in &cli.paths {
            crate::scenario::check_regular(path).map_err(UsageError)?;
        }
        let single_file = cli.paths.len() == 1 && !cli.paths[0].is_dir();
        let mode = if single_file && !cli.test && !wants_reports && !selects {
            Mode::Run(cli.paths[0].clone())
        } else {
            Mode::Test(cli.paths)
        };
        if matches!(mode, Mode::Test(_))
            && max_time == crate::net::NO_DEADLINE
            && !cli.allow_no_deadline
        {
            return Err(UsageError(
                "`--max-time none` in test mode could hang a CI run: give a deadline, or add \
                 `--allow-no-deadline`"
                    .into(),
            ));
        }
        let jobs = match cli.jobs {
            Some(0) => return Err(UsageError("`--jobs` must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let (vars, secrets) = vars(
            &VarSources {
                flags: &cli.vars,
                files: &cli.vars_file,
                var_files: &cli.var_files,
                secret_flags: &cli.secrets,
                secret_files: &cli.secret_files,
            },
            script_limits.max_script,
        )?;
        Ok(Options {
            mode,
            jobs,
            partition,
            filters: cli.filter,
            excludes: cli.exclude,
            retry: cli.retry,
            timeout,
            max_time,
            vars,
            redactor: Redactor::new(secrets),
            env: env_access(&cli.allow_env)?,
            exec: exec_access(cli.allow_exec.as_deref())?,
            trace: cli.trace,
            color: color(cli.color),
            check: cli.check,
            reports,
            net_limits,
            script_limits,
            seed: cli.seed.unwrap_or_else(random_seed),
        })
    }
}

/// `sockscript record`, resolved.
#[derive(Debug, Clone)]
pub struct Recording {
    pub listen: String,
    pub upstream: String,
    pub out: Option<PathBuf>,
    pub side: crate::record::Side,
    /// Stop once this many connections have closed; `None`: at Ctrl-C.
    pub connections: Option<usize>,
    pub timeout: Duration,
}

impl Recording {
    pub fn resolve(cli: crate::cli::Record) -> Result<Recording, UsageError> {
        let timeout = deadline("--timeout", &cli.timeout)?;
        if cli.connections == Some(0) {
            return Err(UsageError("`--connections` must be at least 1".into()));
        }
        Ok(Recording {
            listen: cli.listen,
            upstream: cli.upstream,
            out: cli.out,
            side: match cli.side {
                crate::cli::Side::Client => crate::record::Side::Client,
                crate::cli::Side::Server => crate::record::Side::Server,
            },
            connections: cli.connections,
            timeout,
        })
    }
}

/// A seed for a run given none: std's hasher keys are random per process, and the clock makes
/// two runs in one process differ.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// `--limit NAME=VALUE`s over the defaults.
fn limits(flags: &[String]) -> Result<(crate::net::Limits, crate::script::Limits), UsageError> {
    let mut net = crate::net::Limits::default();
    let mut script = crate::script::Limits::default();
    for flag in flags {
        let bad = |why: &str| UsageError(format!("--limit `{flag}`: {why}"));
        let (name, value) = flag
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=VALUE"))?;
        let size = || {
            parse_size(value.trim())
                .ok_or_else(|| bad("expected a size like `4096`, `64KiB`, `1MiB`"))
        };
        let count = || {
            value
                .trim()
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| bad("expected a whole number"))
        };
        let positive = |n: usize| {
            if n == 0 {
                Err(bad("must be at least 1"))
            } else {
                Ok(n)
            }
        };
        match name.trim() {
            "line" => net.max_line = positive(size()?)?,
            "buffer" => net.max_buffer = positive(size()?)?,
            "handles" => {
                net.max_handles = positive(usize::try_from(count()?).unwrap_or(usize::MAX))?
            }
            "tasks" => {
                script.max_tasks = positive(usize::try_from(count()?).unwrap_or(usize::MAX))?
            }
            "operations" => script.max_operations = count()?,
            "data" => script.max_data = positive(size()?)?,
            "output" => script.max_output = positive(size()?)?,
            "script" => script.max_script = positive(size()?)?,
            // 0 keeps previews only.
            "capture" => net.capture = size()?,
            other => {
                return Err(bad(&format!(
                    "unknown limit `{other}` (known: line, buffer, handles, tasks, operations, \
                     data, output, script, capture)"
                )))
            }
        }
    }
    Ok((net, script))
}

/// `4096`, `64k`, `64KiB`, `1M`, `1MiB`, `1G`: bytes, with binary multiples.
fn parse_size(text: &str) -> Option<usize> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(digits);
    let n: usize = n.parse().ok()?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

fn partition(text: &str) -> Result<Partition, UsageError> {
    let bad = || {
        UsageError(format!(
            "--partition: `{text}` is not K/N with 1 <= K <= N, e.g. `2/4`"
        ))
    };
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok(Partition { k, n })
}

fn deadline(flag: &str, text: &str) -> Result<Duration, UsageError> {
    crate::script::parse_deadline(text)
        .map_err(|why| UsageError(format!("{flag}: {why} (or `none`)")))
}

/// `--allow-exec` (every program) or `--allow-exec=PROG,...`: each program resolved now, as
/// `exec` will resolve its `argv[0]`, so the two compare as paths.
fn exec_access(flag: Option<&[String]>) -> Result<ExecAccess, UsageError> {
    let Some(programs) = flag else {
        return Ok(ExecAccess::Denied);
    };
    if programs.is_empty() {
        return Ok(ExecAccess::All);
    }
    programs
        .iter()
        .map(|p| {
            crate::net::process::resolve(p.trim())
                .map_err(|why| UsageError(format!("--allow-exec: {why}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(ExecAccess::Programs)
}

fn color(when: ColorWhen) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal()
        }
    }
}

/// `--allow-env` names, and the variables sockscript defines itself.
fn env_access(flags: &[String]) -> Result<EnvAccess, UsageError> {
    let mut access = EnvAccess {
        prefixes: vec![ENV_VAR_PREFIX.to_owned(), ENV_SECRET_PREFIX.to_owned()],
        ..EnvAccess::default()
    };
    for name in flags {
        match name.as_str() {
            "*" => access.all = true,
            "" => return Err(UsageError("--allow-env: the name is empty".into())),
            n if n.contains('=') || n.contains('\0') => {
                return Err(UsageError(format!(
                    "--allow-env: `{n}` is not an environment variable name"
                )))
            }
            n => access.names.push(n.to_owned()),
        }
    }
    Ok(access)
}

/// The environment variables whose names start with `prefix`, without it, sorted by name.
/// A variable that is not Unicode cannot be a script string and is passed over.
fn env_with_prefix(prefix: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let name = k.to_str()?.strip_prefix(prefix)?.to_owned();
            Some((name, v.into_string().ok()?))
        })
        .collect();
    found.sort();
    found
}

/// The variables by name, and the secret values among them.
type Vars = (Vec<(String, Dynamic)>, Vec<String>);

/// Where variables come from, as the command line gives them.
struct VarSources<'a> {
    /// `--var NAME=VALUE`.
    flags: &'a [String],
    /// `--vars-file FILE`, in order.
    files: &'a [PathBuf],
    /// `--var-file NAME=PATH`.
    var_files: &'a [String],
    /// `--secret NAME=VALUE`.
    secret_flags: &'a [String],
    /// `--secret-file NAME=PATH`.
    secret_files: &'a [String],
}

/// A variable's value before it becomes a script value: text from a flag or a `NAME=VALUE`
/// line (an integer or bool where it parses as one), or a file's contents as they are.
enum Raw {
    Text(String),
    File(Vec<u8>),
}

/// Variables from the environment (`SOCKSCRIPT_VAR_*`, then `SOCKSCRIPT_SECRET_*`), then the
/// vars files in order, then `--var-file`, `--var`, `--secret-file` and `--secret`: later ones
/// win. Also every secret value, including those a later definition overrides: a value given
/// as secret stays masked.
fn vars(from: &VarSources<'_>, max_size: usize) -> Result<Vars, UsageError> {
    let mut found: Vec<(String, Raw)> = Vec::new();
    let text = |(name, value): (String, String)| (name, Raw::Text(value));
    found.extend(env_with_prefix(ENV_VAR_PREFIX).into_iter().map(text));
    let env_secrets = env_with_prefix(ENV_SECRET_PREFIX);
    let mut secrets: Vec<String> = env_secrets.iter().map(|(_, v)| v.clone()).collect();
    found.extend(env_secrets.into_iter().map(text));
    for path in from.files {
        found.extend(vars_file(path, max_size)?.into_iter().map(text));
    }
    for flag in from.var_files {
        let (name, contents) = var_file("--var-file", flag, max_size)?;
        found.push((name, Raw::File(contents)));
    }
    for flag in from.flags {
        found.push(text(
            split_var(flag).map_err(|why| UsageError(format!("--var: {why}")))?,
        ));
    }
    for flag in from.secret_files {
        let (name, contents) = var_file("--secret-file", flag, max_size)?;
        let shown = String::from_utf8_lossy(&contents);
        // A key is as secret line by line: a script printing one line of it shows `***`.
        secrets.extend(
            shown
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= MASKED_LINE_MIN)
                .map(str::to_owned),
        );
        secrets.push(shown.trim().to_owned());
        found.push((name, Raw::File(contents)));
    }
    for flag in from.secret_flags {
        // The value is the secret: a usage error quotes only the name.
        let (name, value) = split_var(flag).map_err(|why| match flag.split_once('=') {
            Some(_) => UsageError(format!("--secret: {why}")),
            None => UsageError("--secret: expected NAME=VALUE (the value is not shown)".into()),
        })?;
        secrets.push(value.clone());
        found.push((name, Raw::Text(value)));
    }
    let mut vars: Vec<(String, Dynamic)> = Vec::new();
    for (name, value) in found {
        vars.retain(|(n, _)| *n != name);
        let value = match value {
            Raw::Text(text) => parse_var(&text),
            Raw::File(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text.into(),
                Err(e) => Dynamic::from_blob(e.into_bytes()),
            },
        };
        vars.push((name, value));
    }
    Ok((vars, secrets))
}

/// The shortest line of a `--secret-file` that is masked on its own: shorter ones (a blank
/// line, a brace) are too common to mask everywhere.
const MASKED_LINE_MIN: usize = 8;

/// The `NAME=VALUE` lines of a `--vars-file`.
fn vars_file(path: &Path, max_size: usize) -> Result<Vec<(String, String)>, UsageError> {
    // A vars file is small; the bound of a script file is more than enough for it.
    let bytes = crate::scenario::read_regular(path, max_size)
        .map_err(|why| UsageError(format!("--vars-file: {why}")))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        UsageError(format!(
            "--vars-file: `{}` is not UTF-8 text",
            path.display()
        ))
    })?;
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // In a file, `name = value` reads naturally: spaces around the `=` are layout.
        let (k, v) = split_var(line)
            .map(|(k, v)| (k, v.trim().to_owned()))
            .map_err(|why| {
                UsageError(format!(
                    "--vars-file `{}` line {}: {why}",
                    path.display(),
                    n + 1
                ))
            })?;
        found.push((k, v));
    }
    Ok(found)
}

/// The name and the file's contents of a `--var-file`/`--secret-file` `NAME=PATH`. Only a
/// regular file is read, and at most the script size limit of it.
fn var_file(flag: &str, arg: &str, max_size: usize) -> Result<(String, Vec<u8>), UsageError> {
    let (name, path) = split_var(arg).map_err(|why| UsageError(format!("{flag}: {why}")))?;
    if path.is_empty() {
        return Err(UsageError(format!("{flag}: `{name}` names no file")));
    }
    let contents = crate::scenario::read_regular(Path::new(&path), max_size)
        .map_err(|why| UsageError(format!("{flag} {name}: {why}")))?;
    Ok((name, contents))
}

fn split_var(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let name = name.trim();
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`{name}` is not a variable name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each report format has its flag, and the flag asks for that format.
    #[test]
    fn every_report_format_is_asked_for_by_its_flag() {
        for format in report::FORMATS {
            let flag = format.flag;
            let cli = <Cli as clap::Parser>::try_parse_from(["sockscript", flag, "out", "."])
                .unwrap_or_else(|e| panic!("{flag}: {e}"));
            let options = Options::resolve(cli).unwrap_or_else(|e| panic!("{flag}: {e}"));
            let asked: Vec<_> = options.reports.iter().map(|(f, p)| (f.name, p)).collect();
            assert_eq!(asked, [(format.name, &PathBuf::from("out"))], "{flag}");
        }
    }

    /// JUnit, TAP and JSON describe a suite: one file with one of them runs in test mode; the
    /// Markdown summary follows the mode.
    #[test]
    fn only_suite_reports_make_one_file_a_suite() {
        let mode = |flag: &str| {
            let cli = <Cli as clap::Parser>::try_parse_from(["sockscript", flag, "out", "x.rhai"])
                .unwrap_or_else(|e| panic!("{flag}: {e}"));
            let options = Options::resolve(cli).unwrap_or_else(|e| panic!("{flag}: {e}"));
            matches!(options.mode, Mode::Run(_))
        };
        for format in report::FORMATS {
            assert_eq!(mode(format.flag), !format.suite, "{}", format.flag);
        }
        assert!(mode("--report-markdown"));
        assert!(mode("--report-html"));
        assert!(!mode("--report-junit"));
    }

    #[test]
    fn limits_parse_sizes_and_counts() {
        let (net, script) = limits(&[
            "line=64KiB".into(),
            "tasks=5".into(),
            "operations=0".into(),
            "output=1MiB".into(),
            "script=4KiB".into(),
            "capture=1KiB".into(),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(net.capture, 1024);
        assert_eq!(
            limits(&[]).map(|(net, _)| net.capture).unwrap_or_default(),
            16 << 20
        );
        assert_eq!(script.max_output, 1 << 20);
        assert_eq!(script.max_script, 4096);
        assert_eq!(net.max_line, 64 * 1024);
        assert_eq!(script.max_tasks, 5);
        assert_eq!(script.max_operations, 0);
        for bad in [
            "line=0",
            "lines=5",
            "buffer=lots",
            "tasks",
            "output=0",
            "script=big",
            "capture=lots",
        ] {
            assert!(limits(&[bad.into()]).is_err(), "{bad}");
        }
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
    }

    #[test]
    fn partitions_are_k_of_n() {
        assert_eq!(partition("2/4").ok(), Some(Partition { k: 2, n: 4 }));
        for bad in ["0/4", "5/4", "2", "a/b", "1/0"] {
            assert!(partition(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_variables_whose_values_are_kept_apart() {
        let sources = VarSources {
            flags: &["token=plain".into(), "port=1".into()],
            files: &[],
            var_files: &[],
            secret_flags: &["token=s3cr3t".into(), "pin=6379".into(), "empty=".into()],
            secret_files: &[],
        };
        let (found, secrets) = vars(&sources, 1024).unwrap_or_else(|e| panic!("{e}"));
        let value = |name: &str| {
            found
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_string())
        };
        assert_eq!(value("token").as_deref(), Some("s3cr3t"));
        assert_eq!(value("pin").as_deref(), Some("6379"));
        assert_eq!(value("port").as_deref(), Some("1"));
        for s in ["s3cr3t", "6379", ""] {
            assert!(secrets.iter().any(|v| v == s), "{s}");
        }
        assert!(!secrets.iter().any(|v| v == "plain"));
        let nameless = VarSources {
            secret_flags: &["s3cr3t".into()],
            ..NONE
        };
        let Err(err) = vars(&nameless, 1024) else {
            panic!("a --secret without a name was accepted")
        };
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    const NONE: VarSources<'static> = VarSources {
        flags: &[],
        files: &[],
        var_files: &[],
        secret_flags: &[],
        secret_files: &[],
    };

    /// Files as variables: contents as they are (a string, or a Blob when not UTF-8), vars
    /// files in order with later ones winning, a secret file masked whole and line by line.
    #[test]
    fn files_become_variables() {
        let dir = std::env::temp_dir().join(format!("sockscript-vars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
            path
        };
        let pem = "-----BEGIN KEY-----\nc2VjcmV0IGtleSBsaW5l\n-----END KEY-----\n";
        let key = write("key.pem", pem.as_bytes());
        let ca = write("ca.pem", b"CA TEXT\n");
        let raw = write("raw.bin", &[0xff, 0x00, 0x41]);
        let first = write("a.vars", b"host = a\nport = 1\n");
        let second = write("b.vars", b"port = 2\n");
        let arg = |name: &str, path: &Path| format!("{name}={}", path.display());
        let var_files = [arg("ca", &ca), arg("raw", &raw)];
        let secret_files = [arg("key", &key)];
        let sources = VarSources {
            files: &[first, second],
            var_files: &var_files,
            secret_files: &secret_files,
            ..NONE
        };
        let (found, secrets) = vars(&sources, 1024).unwrap_or_else(|e| panic!("{e}"));
        let value = |name: &str| {
            found
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        assert_eq!(value("host").to_string(), "a");
        assert_eq!(value("port").as_int().ok(), Some(2));
        assert_eq!(value("ca").to_string(), "CA TEXT\n");
        assert_eq!(value("key").to_string(), pem);
        assert_eq!(
            value("raw").read_lock::<rhai::Blob>().map(|b| b.clone()),
            Some(vec![0xff, 0x00, 0x41])
        );
        for masked in [pem.trim(), "c2VjcmV0IGtleSBsaW5l", "-----BEGIN KEY-----"] {
            assert!(secrets.iter().any(|s| s == masked), "{masked}");
        }
        assert!(!secrets.iter().any(|s| s.contains("CA TEXT")));
        let missing = [format!("x={}", dir.join("nope").display())];
        let bad = [
            VarSources {
                var_files: &["novalue".into()],
                ..NONE
            },
            VarSources {
                var_files: &missing,
                ..NONE
            },
            VarSources {
                secret_files: &["k=".into()],
                ..NONE
            },
        ];
        for sources in bad {
            assert!(vars(&sources, 1024).is_err());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn allow_env_takes_names_or_a_star() {
        let access = env_access(&["HOME".into()]).unwrap_or_else(|e| panic!("{e}"));
        assert!(access.allows("HOME"));
        assert!(access.allows("SOCKSCRIPT_SECRET_x") && access.allows("SOCKSCRIPT_VAR_y"));
        assert!(!access.allows("CI_JOB_TOKEN") && !access.allows("HOMEX"));
        assert!(env_access(&["*".into()]).is_ok_and(|a| a.allows("CI_JOB_TOKEN")));
        assert!(env_access(&["".into()]).is_err());
        assert!(env_access(&["A=B".into()]).is_err());
    }

    #[test]
    fn var_names_are_identifiers() {
        assert!(split_var("host=127.0.0.1").is_ok());
        assert_eq!(
            split_var("a=b=c").ok().map(|(_, v)| v).as_deref(),
            Some("b=c")
        );
        assert!(split_var("1x=2").is_err());
        assert!(split_var("no-dash=2").is_err());
        assert!(split_var("novalue").is_err());
    }
}
