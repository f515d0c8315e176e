//! The single place where the scenario engine is built: limits, the sandbox, and every
//! function scripts can call. Functions that need the scenario (its session, its tasks) are
//! closures over [`ScriptCtx`] made here; handle methods live in `net.rs` and `assert.rs`.

use std::sync::Arc;

use rhai::{Dynamic, Engine, FnPtr, ImmutableString, Map, NativeCallContext, INT};

use super::error::{raise, script_error, Abort, ScriptResult};
use super::task::{self, ScriptCtx, Task};
use super::value::{deadline, duration};
use super::{assert, binary, context, net};
use std::time::Duration;

use crate::net::{
    Channel, ClientTls, Conn, ErrorKind, ListenOptions, Listener, ServerCert, ServerTls, Udp,
};

/// How long `wait_for(addr)` waits when the call gives no timeout (at least `--timeout`):
/// services in a pipeline often take a while to start.
const WAIT_FOR_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30);

/// What one array element counts against `--limit data`: the `Dynamic` it is stored in. rhai
/// counts elements, and a Blob's bytes in the same count, so both are bounded by
/// `data / ELEMENT_BYTES`: a Blob may hold a sixteenth of the limit.
pub const ELEMENT_BYTES: usize = std::mem::size_of::<Dynamic>();

/// What one map entry counts against `--limit data`: its value, its key and a share of the
/// tree's nodes. (rhai counts entries, not the length of their keys.)
pub const MAP_ENTRY_BYTES: usize = 4 * ELEMENT_BYTES;

/// The scenario's engine, and its module resolver (for [`super::modules::compile`] to check
/// the script's imports with).
pub fn build(ctx: &Arc<ScriptCtx>, config: &super::Config) -> (Engine, super::modules::Imports) {
    let mut engine = Engine::new();
    set_limits(&mut engine, &config.limits);
    watch_values(&mut engine, config.limits.max_data);
    // Scenarios import only what `modules` serves: the shipped modules, and files of their own
    // tree; rhai has no file or process access otherwise (`exec` starts processes only with
    // `--allow-exec`).
    let imports = super::modules::Imports::new(config.imports.clone(), ctx.session.clone());
    engine.set_module_resolver(imports.clone());
    // A typo in a variable name is a compile error (exit 3), not a failure mid-conversation.
    engine.set_strict_variables(true);
    engine.set_fail_on_invalid_map_property(true);

    // Secrets are masked here, before `Output` sees a line: what it keeps or cuts short never
    // holds one. Output past `--limit output` is dropped here and stops the script at its next
    // progress check: `print` itself cannot fail.
    let (printing, redactor) = (ctx.clone(), config.redactor.clone());
    engine.on_print(move |text| {
        let text = redactor.str(text);
        if let Some(kept) = printing.printed.admit(&text) {
            printing.output.line(kept);
        }
    });
    let (printing, redactor) = (ctx.clone(), config.redactor.clone());
    engine.on_debug(move |text, _, pos| {
        let line = redactor.str(&format!("[debug {pos}] {text}")).into_owned();
        if let Some(kept) = printing.printed.admit(&line) {
            printing.output.line(kept);
        }
    });

    let watched = ctx.clone();
    // Every operation: one call of a built-in function can take long (`to_upper` on a large
    // string), so waiting for the next thousand of them could overrun a deadline by seconds.
    // Each check is a load or two when no `within` is open.
    engine.on_progress(move |_| progress(&watched));

    blob_bytes_as_integers(&mut engine);
    net::register(&mut engine);
    assert::register(&mut engine);
    binary::register(&mut engine);
    register_scenario_fns(&mut engine, ctx, &config.limits);
    super::ws::register_openers(&mut engine, ctx);
    super::proxy::register(&mut engine, &ctx.session);
    register_env(&mut engine, &config.env);
    super::process::register(&mut engine, &ctx.session, config);
    super::stream::register_interactive::<Conn>(&mut engine, config.run_mode, &config.redactor);
    register_spawn(&mut engine, ctx);
    register_var(&mut engine, &config.vars);
    let watched = ctx.clone();
    super::send_ref::register(&mut engine, move || progress(&watched));
    (engine, imports)
}

/// The progress hook: what stops a script at its next operation (cancellation, the output
/// limit, an expired `within`), as the token of rhai's `ErrorTerminated`. `send_ref.rs` calls
/// it too, for the operations it counts itself.
fn progress(ctx: &ScriptCtx) -> Option<Dynamic> {
    if ctx.session.is_cancelled() {
        return Some(Dynamic::from(Abort::Cancelled));
    }
    if ctx.printed.is_over() {
        return Some(Dynamic::from(Abort::Limit(ctx.printed.message())));
    }
    context::within_expired().map(|depth| Dynamic::from(Abort::WithinExpired(depth)))
}

/// `for b in blob` yields integers, like `blob[i]` does: rhai's own iterator yields bytes of a
/// type that arithmetic does not accept (`sum += b` would fail).
fn blob_bytes_as_integers(engine: &mut Engine) {
    let mut module = rhai::Module::new();
    module.set_iter(std::any::TypeId::of::<rhai::Blob>(), |blob: Dynamic| {
        let bytes = blob.cast::<rhai::Blob>();
        Box::new(bytes.into_iter().map(|b| Dynamic::from(INT::from(b))))
    });
    engine.register_global_module(module.into());
}

pub(super) fn set_limits(engine: &mut Engine, limits: &super::Limits) {
    // Debug builds default to a call depth of 8; scripts recurse more than that.
    engine.set_max_call_levels(64);
    engine.set_max_expr_depths(128, 64);
    // `data` is bytes; rhai counts string bytes, array elements (with a Blob's bytes) and map
    // entries, nested values included, each against its own limit. An element counts as the
    // `Dynamic` holding it, so an array of integers cannot be 16 times the limit.
    engine.set_max_string_size(limits.max_data);
    engine.set_max_array_size((limits.max_data / ELEMENT_BYTES).max(1));
    engine.set_max_map_size((limits.max_data / MAP_ENTRY_BYTES).max(1));
    engine.set_max_operations(limits.max_operations);
}

thread_local! {
    /// Variable reads this thread makes before it looks at one again (see [`watch_values`]).
    static READS_BEFORE_MEASURE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// A xorshift state: the reads between looks vary, so a loop cannot always read its map
    /// where no look falls.
    static LOOK_JITTER: std::cell::Cell<u32> = const { std::cell::Cell::new(0x9e37_79b9) };
}

/// The most reads between two looks at a variable, when the last one read was not a map or
/// an array.
const READS_BETWEEN_LOOKS: u32 = 8;

/// Values nested at most this deep are looked at every 16 reads at the most often.
const SHALLOW: usize = 4;

/// Counts one variable read towards the next look; true when this read is due one.
fn read_is_due() -> bool {
    READS_BEFORE_MEASURE.with(|left| match left.get() {
        0 => true,
        n => {
            left.set(n - 1);
            false
        }
    })
}

/// A look fell on a value that is neither a map nor an array: the next one comes after a few
/// reads.
fn look_again_soon() {
    READS_BEFORE_MEASURE.with(|left| left.set(reads_between_looks()));
}

/// What [`watch_values`]'s hook does for a read of a variable that holds neither a map nor an
/// array, for a read that rhai's own evaluation would have made and a rewrite skips
/// (`send_ref.rs`): the looks at the reads that follow fall where they would have.
pub(super) fn count_flat_read() {
    if read_is_due() {
        look_again_soon();
    }
}

fn reads_between_looks() -> usize {
    LOOK_JITTER.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        state.set(x);
        (x % READS_BETWEEN_LOOKS) as usize
    })
}

/// rhai checks a value's size when a call gets it, but not when `m[key] = v` or `m.key = v`
/// adds a map entry; it never counts map keys, nor what function pointers and closures hold
/// (their curried values, a closure's captures), nor how deep values nest. So now and then the
/// variable being read is looked at: a map is measured whole (keys and closures included), an
/// array for what its function pointers hold, and both for their depth. The next look waits
/// for as many reads as the last one walked values (up to 8 after any other value, or a value
/// already 64 levels deep), which keeps the cost at O(1) a read; growing a value reads it, so
/// between two looks its size can at most double. Depth is caught this way for values grown a
/// level or a few at a time; a value already large that gets 128 levels of brackets around it
/// at each read can still outrun the looks.
#[allow(deprecated)] // `on_var` is not deprecated, only marked volatile.
fn watch_values(engine: &mut Engine, max_data: usize) {
    use super::limits::{measure, MAX_NESTING};
    engine.on_var(move |name, _, ctx| {
        if !read_is_due() {
            return Ok(None);
        }
        let value = ctx.scope().get(name).filter(|v| v.is_map() || v.is_array());
        let Some(value) = value else {
            look_again_soon();
            return Ok(None);
        };
        let m = measure(value);
        // A deep value is looked at often: one read can nest it 128 levels deeper.
        // A small, shallow value (the everyday array or map of a protocol helper) is looked at
        // every 16 reads at most: looking at it on nearly every read cost scripts' loops a
        // tenth of their time, and 16 reads can add at most 16 entries, each checked by rhai.
        let skip = if m.depth > MAX_NESTING / 4 {
            m.values.min(READS_BETWEEN_LOOKS as usize)
        } else if m.depth <= SHALLOW {
            m.values.max(2 * READS_BETWEEN_LOOKS as usize)
        } else {
            m.values
        };
        READS_BEFORE_MEASURE.with(|left| left.set(skip));
        if m.depth > MAX_NESTING {
            let message = format!(
                "`{name}` nests arrays, maps or closures more than {MAX_NESTING} levels deep: \
                 deeper values would overflow the stack"
            );
            return Err(super::error::abort(
                Abort::Limit(message),
                rhai::Position::NONE,
            ));
        }
        let (over, what) = if value.is_map() {
            (m.bytes > max_data, "Size of object map")
        } else {
            (m.hidden > max_data, "Size of array/BLOB")
        };
        if over {
            return Err(
                rhai::EvalAltResult::ErrorDataTooLarge(what.into(), rhai::Position::NONE).into(),
            );
        }
        Ok(None)
    });
}

pub(super) fn unknown_option(op: &str, key: &str, known: &str) -> Box<rhai::EvalAltResult> {
    script_error(
        ErrorKind::InvalidArgument,
        op,
        format!("{op}: unknown option `{key}` (known: {known})"),
    )
}

pub(super) fn string_opt(op: &str, key: &str, value: &Dynamic) -> ScriptResult<String> {
    value.clone().into_string().map_err(|t| {
        script_error(
            ErrorKind::InvalidArgument,
            op,
            format!("{op}: `{key}` must be a string, not {t}"),
        )
    })
}

fn bool_opt(op: &str, key: &str, value: &Dynamic) -> ScriptResult<bool> {
    value.as_bool().map_err(|t| {
        script_error(
            ErrorKind::InvalidArgument,
            op,
            format!("{op}: `{key}` must be true or false, not {t}"),
        )
    })
}

fn alpn_opt(op: &str, value: &Dynamic) -> ScriptResult<Vec<String>> {
    list_opt(op, "alpn", value)
}

/// An option that is a string or an array of strings (`alpn`, `protocols`).
pub(super) fn list_opt(op: &str, key: &str, value: &Dynamic) -> ScriptResult<Vec<String>> {
    match value.read_lock::<rhai::Array>() {
        Some(list) => list.iter().map(|p| string_opt(op, key, p)).collect(),
        None => Ok(vec![string_opt(op, key, value)?]),
    }
}

/// A `tls` option as `connect` takes it: `true`, `false` or `#{ca, sni, alpn, insecure}`.
pub(super) fn client_tls(op: &'static str, value: &Dynamic) -> ScriptResult<Option<ClientTls>> {
    if let Ok(on) = value.as_bool() {
        return Ok(on.then(ClientTls::default));
    }
    let Some(map) = value.read_lock::<Map>() else {
        return Err(script_error(
            ErrorKind::InvalidArgument,
            op,
            format!("{op}: `tls` is `true` or a map like `#{{ca: pem, sni: \"name\"}}`"),
        ));
    };
    let mut t = ClientTls::default();
    for (k, v) in map.iter() {
        match k.as_str() {
            "ca" => t.ca = Some(string_opt(op, "ca", v)?),
            "sni" => t.sni = Some(string_opt(op, "sni", v)?),
            "alpn" => t.alpn = alpn_opt(op, v)?,
            "insecure" => t.insecure = bool_opt(op, "insecure", v)?,
            other => {
                return Err(unknown_option(
                    op,
                    &format!("tls.{other}"),
                    "`ca`, `sni`, `alpn`, `insecure`",
                ))
            }
        }
    }
    Ok(Some(t))
}

/// `connect(addr, #{timeout, tls})`: `tls` is `true` or `#{ca, sni, alpn, insecure}`.
fn connect_options(opts: &Map) -> ScriptResult<(Option<Duration>, Option<ClientTls>)> {
    let op = "connect";
    let mut timeout = None;
    let mut tls = None;
    for (key, value) in opts {
        match key.as_str() {
            "timeout" => timeout = Some(deadline(op, value)?),
            "tls" => tls = client_tls(op, value)?,
            other => return Err(unknown_option(op, other, "`timeout`, `tls`")),
        }
    }
    Ok((timeout, tls))
}

/// A `tls` option as `listen` takes it: `"self-signed"` or `#{cert, key, alpn, self_signed}`.
pub(super) fn server_tls(op: &'static str, value: &Dynamic) -> ScriptResult<ServerTls> {
    if value
        .read_lock::<ImmutableString>()
        .is_some_and(|s| s.as_str() == "self-signed")
    {
        return Ok(ServerTls {
            cert: ServerCert::SelfSigned,
            alpn: Vec::new(),
        });
    }
    let Some(map) = value.read_lock::<Map>() else {
        return Err(script_error(
            ErrorKind::InvalidArgument,
            op,
            format!("{op}: `tls` is `\"self-signed\"` or a map like `#{{cert: pem, key: pem}}`"),
        ));
    };
    let (mut cert, mut key, mut alpn, mut self_signed) = (None, None, Vec::new(), false);
    for (k, v) in map.iter() {
        match k.as_str() {
            "cert" => cert = Some(string_opt(op, "cert", v)?),
            "key" => key = Some(string_opt(op, "key", v)?),
            "alpn" => alpn = alpn_opt(op, v)?,
            "self_signed" => self_signed = bool_opt(op, "self_signed", v)?,
            other => {
                return Err(unknown_option(
                    op,
                    &format!("tls.{other}"),
                    "`cert`, `key`, `alpn`, `self_signed`",
                ))
            }
        }
    }
    let cert = match (cert, key, self_signed) {
        (Some(cert), Some(key), _) => ServerCert::Pem { cert, key },
        (None, None, true) => ServerCert::SelfSigned,
        _ => {
            return Err(script_error(
                ErrorKind::InvalidArgument,
                op,
                format!(
                    "{op}: `tls` needs both `cert` and `key` (PEM text), or `self_signed: true`"
                ),
            ))
        }
    };
    Ok(ServerTls { cert, alpn })
}

/// `listen(addr, #{timeout, unlink, tls})`: `tls` is `"self-signed"` or `#{cert, key, alpn}`.
fn listen_options(opts: &Map) -> ScriptResult<(Option<Duration>, ListenOptions)> {
    let op = "listen";
    let mut timeout = None;
    let mut listen = ListenOptions::default();
    for (key, value) in opts {
        match key.as_str() {
            "timeout" => timeout = Some(deadline(op, value)?),
            "unlink" => listen.unlink = bool_opt(op, "unlink", value)?,
            "tls" => listen.tls = Some(server_tls(op, value)?),
            other => return Err(unknown_option(op, other, "`timeout`, `unlink`, `tls`")),
        }
    }
    Ok((timeout, listen))
}

fn register_scenario_fns(engine: &mut Engine, ctx: &Arc<ScriptCtx>, limits: &super::Limits) {
    let s = ctx.session.clone();
    engine.register_fn(
        "listen",
        move |ctx: NativeCallContext, addr: ImmutableString| -> ScriptResult<Listener> {
            Listener::bind(&s, &context::call(&ctx), &addr, &ListenOptions::default())
                .map_err(raise)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "listen",
        move |ctx: NativeCallContext, addr: ImmutableString, opts: Map| -> ScriptResult<Listener> {
            let (timeout, options) = listen_options(&opts)?;
            let l = Listener::bind(&s, &context::call(&ctx), &addr, &options).map_err(raise)?;
            if let Some(t) = timeout {
                l.set_timeout(t);
            }
            Ok(l)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "connect",
        move |ctx: NativeCallContext, addr: ImmutableString| -> ScriptResult<Conn> {
            Conn::connect(&s, &context::call(&ctx), &addr, None, None).map_err(raise)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "connect",
        move |ctx: NativeCallContext, addr: ImmutableString, opts: Map| -> ScriptResult<Conn> {
            let (timeout, tls) = connect_options(&opts)?;
            let c = Conn::connect(&s, &context::call(&ctx), &addr, timeout, tls.as_ref())
                .map_err(raise)?;
            if let Some(t) = timeout {
                c.set_timeout(t);
            }
            Ok(c)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "udp",
        move |ctx: NativeCallContext, addr: ImmutableString| -> ScriptResult<Udp> {
            Udp::bind(&s, &context::call(&ctx), &addr).map_err(raise)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "udp_connect",
        move |ctx: NativeCallContext, addr: ImmutableString| -> ScriptResult<Udp> {
            Udp::connect(&s, &context::call(&ctx), &addr).map_err(raise)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "wait_for",
        move |ctx: NativeCallContext, addr: ImmutableString| -> ScriptResult<INT> {
            let timeout = s.default_timeout().max(WAIT_FOR_DEFAULT);
            Conn::wait_for(&s, &context::call(&ctx), &addr, timeout)
                .map(INT::from)
                .map_err(raise)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "wait_for",
        move |ctx: NativeCallContext,
              addr: ImmutableString,
              timeout: Dynamic|
              -> ScriptResult<INT> {
            let timeout = duration("wait_for", &timeout)?;
            Conn::wait_for(&s, &context::call(&ctx), &addr, timeout)
                .map(INT::from)
                .map_err(raise)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "sleep",
        move |ctx: NativeCallContext, d: Dynamic| -> ScriptResult<()> {
            s.sleep(&context::call(&ctx), duration("sleep", &d)?)
                .map_err(raise)
        },
    );
    // rhai's own `sleep(seconds)` would win for a number; this one means milliseconds and
    // stops when the scenario is cancelled.
    let s = ctx.session.clone();
    engine.register_fn(
        "sleep",
        move |ctx: NativeCallContext, ms: INT| -> ScriptResult<()> {
            s.sleep(
                &context::call(&ctx),
                super::value::duration_ms("sleep", ms)?,
            )
            .map_err(raise)
        },
    );
    engine.register_fn("sleep", |_: rhai::FLOAT| -> ScriptResult<()> {
        Err(script_error(
            ErrorKind::InvalidArgument,
            "sleep",
            "sleep: a duration is integer milliseconds (`250`) or a string with a unit (`\"0.5s\"`)",
        ))
    });
    let s = ctx.session.clone();
    let queued = limits.max_data;
    engine.register_fn("channel", move || Channel::<Dynamic>::new(&s, queued));
    let c = ctx.clone();
    engine.register_fn("join", move |ctx: NativeCallContext, t: Task| {
        t.join(&c, &context::call(&ctx), None)
    });
    let c = ctx.clone();
    engine.register_fn(
        "join",
        move |ctx: NativeCallContext, t: Task, deadline: Dynamic| -> ScriptResult<Dynamic> {
            t.join(&c, &context::call(&ctx), Some(duration("join", &deadline)?))
        },
    );
    let c = ctx.clone();
    engine.register_fn(
        "within",
        move |ctx: NativeCallContext, d: Dynamic, f: FnPtr| -> ScriptResult<Dynamic> {
            within(&c, &ctx, duration("within", &d)?, &f)
        },
    );
}

/// `env(name)`: an environment variable the command line allows, as a string, or `()` when it
/// is not set. Any other name is a `permission_denied` error, so a script cannot put a CI
/// token into a report unless the pipeline says so.
///
/// ```rhai
/// // sockscript --allow-env REDIS_HOST scenario.rhai
/// let host = env("REDIS_HOST") ?? "127.0.0.1";
/// ```
fn register_env(engine: &mut Engine, access: &super::EnvAccess) {
    let access = access.clone();
    engine.register_fn(
        "env",
        move |name: ImmutableString| -> ScriptResult<Dynamic> {
            if !access.allows(&name) {
                return Err(script_error(
                    ErrorKind::PermissionDenied,
                    "env",
                    format!("env: `{name}` is not allowed: pass `--allow-env {name}`"),
                ));
            }
            Ok(std::env::var(name.as_str()).map_or(Dynamic::UNIT, Dynamic::from))
        },
    );
}

/// Run `f` with every blocking call (and CPU loop) in it bounded by `length`. Running out is a
/// catchable `timeout` error at the `within` call.
fn within(
    scenario: &Arc<ScriptCtx>,
    ctx: &NativeCallContext,
    length: std::time::Duration,
    f: &FnPtr,
) -> ScriptResult<Dynamic> {
    let guard = context::enter_within(length);
    let watch = task::watch_within(scenario, length, ctx.call_position());
    let result = f.call_within_context::<Dynamic>(ctx, ());
    drop(watch);
    let depth = guard.depth();
    drop(guard);
    match result {
        Err(err) => match super::error::abort_of(&err) {
            Some(Abort::WithinExpired(d)) if d == depth => Err(raise(
                crate::net::NetError::timeout("within", None, length, crate::net::Deadline::Within),
            )),
            _ => Err(err),
        },
        ok => ok,
    }
}

/// `var(name)` and `var(name, default)`: a variable of the command line (`--var`, `--var-file`,
/// `--vars-file`, `--secret`, the environment's `SOCKSCRIPT_VAR_*`) looked up when the call
/// runs, so a scenario that reads one this way compiles without it. `var` is a reserved word
/// in rhai, so this is custom syntax, with the default optional (and evaluated only when it is
/// used). A missing variable without a default is `invalid_argument`, naming the flag to give.
fn register_var(engine: &mut Engine, vars: &[(String, Dynamic)]) {
    let vars: std::collections::HashMap<String, Dynamic> = vars.iter().cloned().collect();
    engine.register_custom_syntax_with_state_raw(
        "var",
        |symbols, look_ahead, _| {
            // var ( $expr$ [ , $expr$ ] )
            let last = symbols.last().map_or("", |s| s.as_str());
            Ok(match last {
                "var" => Some("(".into()),
                "(" | "," => Some("$expr$".into()),
                "$expr$" if symbols.len() == 3 && look_ahead == "," => Some(",".into()),
                "$expr$" => Some(")".into()),
                _ => None,
            })
        },
        false,
        move |ectx, inputs, _| {
            // Errors point at the name: the custom syntax's own position is not given here.
            let at = inputs[0].position();
            let error = |message: String| {
                let mut err = script_error(ErrorKind::InvalidArgument, "var", message);
                err.set_position(at);
                err
            };
            let name = ectx.eval_expression_tree(&inputs[0])?;
            let Some(name) = name.read_lock::<ImmutableString>().map(|n| n.clone()) else {
                return Err(error(format!(
                    "var: the name must be a string, e.g. `var(\"port\", 8080)`, not {}",
                    name.type_name()
                )));
            };
            match (vars.get(name.as_str()), inputs.get(1)) {
                (Some(value), _) => Ok(value.clone()),
                (None, Some(default)) => ectx.eval_expression_tree(default),
                (None, None) => Err(error(format!(
                    "var: no variable `{name}`: give it with `--var {name}=VALUE` (or \
                         `--var-file`, `--vars-file`), or a default: `var(\"{name}\", …)`"
                ))),
            }
        },
    );
}

/// `spawn` is a reserved word in rhai, so it is custom syntax: `spawn(<closure>)`.
fn register_spawn(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    let ctx = ctx.clone();
    let registered =
        engine.register_custom_syntax(["spawn", "(", "$expr$", ")"], false, move |ectx, inputs| {
            let at = inputs[0].position();
            let value = ectx.eval_expression_tree(&inputs[0])?;
            let closure = value.try_cast::<FnPtr>().ok_or_else(|| {
                script_error(
                    ErrorKind::InvalidArgument,
                    "spawn",
                    "spawn: the argument must be a closure, e.g. `spawn(|| server.accept())`",
                )
            })?;
            let imports = super::modules::Imported::of(ectx.global_runtime_state());
            task::spawn(&ctx, closure, at, imports).map(Dynamic::from)
        });
    if let Err(e) = registered {
        // The syntax is a constant: failing to register it is a bug in this file.
        unreachable!("spawn syntax: {e}");
    }
}
