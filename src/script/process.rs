//! `exec(argv)` and the `Process` it returns: the stream API on its stdin and stdout
//! ([`super::stream`], registered for `Process` too), `.stderr` as a second stream, `.pid`,
//! `.wait()`, `.kill()`. Whether a program may start is decided here, from `--allow-exec`
//! ([`ExecAccess`]); starting it and killing it with its scenario is `net::process`'s.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, ImmutableString, Map, NativeCallContext, INT};

use super::context::call;
use super::error::{raise, script_error, ScriptResult};
use super::stream::{self, Handle, Stream};
use super::value::deadline;
use super::ExecAccess;
use crate::net::process::{resolve, Command, Output};
use crate::net::{Conn, ErrorKind, Process, Session};

impl Handle for Process {
    fn timeout(&self) -> Option<std::time::Duration> {
        self.stdio().timeout()
    }

    fn set_timeout(&self, d: std::time::Duration) {
        self.stdio().set_timeout(d)
    }

    fn is_closed(&self) -> bool {
        self.stdio().is_closed()
    }

    /// Closes its stdin and stdout; the process itself runs on until it ends or is killed.
    fn close(&self, call: &crate::net::Call) {
        self.stdio().close(call)
    }
}

impl Stream for Process {
    fn stream(&self) -> &Conn {
        self.stdio()
    }
}

/// Register `exec` and the `Process` type.
pub(super) fn register(engine: &mut Engine, session: &Arc<Session>, config: &super::Config) {
    let access = &config.exec;
    engine
        .register_type_with_name::<Process>("Process")
        .register_fn("to_string", |p: &mut Process| p.to_string())
        .register_fn("to_debug", |p: &mut Process| p.to_string())
        .register_get("pid", |p: &mut Process| INT::from(p.pid()))
        .register_get("stderr", |p: &mut Process| p.stderr().clone())
        .register_get("exit_code", |p: &mut Process| {
            p.exit_code().map_or(Dynamic::UNIT, |c| INT::from(c).into())
        })
        .register_fn(
            "wait",
            |ctx: NativeCallContext, p: Process| -> ScriptResult<INT> {
                p.wait(&call(&ctx), p.stdio().timeout())
                    .map(INT::from)
                    .map_err(raise)
            },
        )
        .register_fn(
            "wait",
            |ctx: NativeCallContext, p: Process, d: Dynamic| -> ScriptResult<INT> {
                p.wait(&call(&ctx), Some(deadline("wait", &d)?))
                    .map(INT::from)
                    .map_err(raise)
            },
        )
        .register_fn("kill", |ctx: NativeCallContext, p: Process| {
            p.kill(&call(&ctx))
        });
    stream::register::<Process>(engine);
    stream::register_interactive::<Process>(engine, config.run_mode, &config.redactor);

    let (s, allows) = (session.clone(), access.clone());
    engine.register_fn(
        "exec",
        move |ctx: NativeCallContext, argv: Array| -> ScriptResult<Process> {
            start(&s, &allows, &ctx, argv, &Map::new())
        },
    );
    let (s, allows) = (session.clone(), access.clone());
    engine.register_fn(
        "exec",
        move |ctx: NativeCallContext, argv: Array, opts: Map| -> ScriptResult<Process> {
            start(&s, &allows, &ctx, argv, &opts)
        },
    );
    let allows = access.clone();
    engine.register_fn(
        "exec",
        move |line: ImmutableString| -> ScriptResult<Process> {
            if allows == ExecAccess::Denied {
                return Err(denied(line.split_whitespace().next().unwrap_or_default()));
            }
            Err(invalid(format!(
                "exec: give the program and its arguments as an array, e.g. `exec([\"sh\", \
                 \"-c\", {line:?}])`: no shell splits a string here"
            )))
        },
    );
}

/// Without `--allow-exec`, every `exec` is this error.
fn denied(program: &str) -> Box<rhai::EvalAltResult> {
    script_error(
        ErrorKind::PermissionDenied,
        "exec",
        format!(
            "exec: starting `{program}` is not allowed: pass `--allow-exec` (any program) or \
             `--allow-exec={program}`"
        ),
    )
}

fn invalid(message: String) -> Box<rhai::EvalAltResult> {
    script_error(ErrorKind::InvalidArgument, "exec", message)
}

/// `exec(argv)` / `exec(argv, #{env, cwd, timeout, stdout, stderr})`: a started `Process`.
///
/// ```rhai
/// // sockscript --allow-exec=python3 scenario.rhai
/// let service = exec(["python3", "-u", "service.py", "--port", "0"]);
/// let port = service.recv_line();
/// wait_for(`127.0.0.1:${port}`);
/// ```
fn start(
    session: &Arc<Session>,
    access: &ExecAccess,
    ctx: &NativeCallContext,
    argv: Array,
    opts: &Map,
) -> ScriptResult<Process> {
    let argv: Vec<String> = argv
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|t| invalid(format!("exec: every argument is a string, not {t}")))
        })
        .collect::<Result<_, _>>()?;
    let Some(first) = argv.first() else {
        return Err(invalid(
            "exec: the array is empty: give the program first, e.g. `exec([\"cat\"])`".into(),
        ));
    };
    let program = allowed(access, first)?;
    let mut command = Command {
        argv,
        program,
        ..Command::default()
    };
    let mut timeout = None;
    for (key, value) in opts {
        match key.as_str() {
            "timeout" => timeout = Some(deadline("exec", value)?),
            "cwd" => {
                let cwd = value
                    .clone()
                    .into_string()
                    .map_err(|t| invalid(format!("exec: `cwd` must be a string, not {t}")))?;
                command.cwd = Some(cwd.into());
            }
            "env" => {
                let Some(vars) = value.read_lock::<Map>() else {
                    return Err(invalid(
                        "exec: `env` is a map of names to values, e.g. `#{PORT: \"0\"}`".into(),
                    ));
                };
                for (name, v) in vars.iter() {
                    // Numbers and bools are written as they print.
                    command.env.push((name.to_string(), v.to_string()));
                }
            }
            "stdout" => command.stdout = output("stdout", value)?,
            "stderr" => command.stderr = output("stderr", value)?,
            other => {
                return Err(invalid(format!(
                    "exec: unknown option `{other}` (known: `env`, `cwd`, `timeout`, `stdout`, \
                     `stderr`)"
                )))
            }
        }
    }
    let process = Process::spawn(session, &call(ctx), &command).map_err(raise)?;
    if let Some(t) = timeout {
        process.stdio().set_timeout(t);
        process.stderr().set_timeout(t);
    }
    Ok(process)
}

/// The `stdout` or `stderr` option: `"pipe"` (the default: the script reads it) or
/// `"discard"`.
fn output(name: &str, value: &Dynamic) -> ScriptResult<Output> {
    match value.clone().into_string().as_deref() {
        Ok("pipe") => Ok(Output::Pipe),
        Ok("discard") => Ok(Output::Discard),
        _ => Err(invalid(format!(
            "exec: `{name}` is \"pipe\" (the default: the scenario reads it) or \"discard\", \
             not {value:?}"
        ))),
    }
}

/// The path `program` runs as, if `--allow-exec` allows it: every program with the bare flag,
/// else one of the listed ones, compared as resolved paths (so `--allow-exec=python3` allows
/// `python3` and `/usr/bin/python3` when that is the one in PATH, and not a `python3`
/// elsewhere).
fn allowed(access: &ExecAccess, program: &str) -> ScriptResult<std::path::PathBuf> {
    if *access == ExecAccess::Denied {
        return Err(denied(program));
    }
    let path = resolve(program).map_err(|why| {
        script_error(
            ErrorKind::Io,
            "exec",
            format!("exec `{program}` failed: {why}"),
        )
    })?;
    match access {
        ExecAccess::Programs(list) if !list.contains(&path) => {
            let list: Vec<String> = list.iter().map(|p| p.display().to_string()).collect();
            Err(script_error(
                ErrorKind::PermissionDenied,
                "exec",
                format!(
                    "exec: `{program}` ({}) is not one of the programs `--allow-exec` allows ({})",
                    path.display(),
                    list.join(", ")
                ),
            ))
        }
        _ => Ok(path),
    }
}
