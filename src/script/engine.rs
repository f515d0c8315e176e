//! The single place where the scenario engine is built: limits, the sandbox, and every
//! function scripts can call. Functions that need the scenario (its session, its tasks) are
//! closures over [`ScriptCtx`] made here; handle methods live in `net.rs` and `assert.rs`.

use std::sync::Arc;

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Dynamic, Engine, FnPtr, ImmutableString, Map, NativeCallContext, INT};

use super::error::{raise, script_error, Abort, ScriptResult};
use super::task::{self, ScriptCtx, Task};
use super::value::duration;
use super::{assert, net};
use crate::net::{bridge, Channel, Conn, Listener};

/// How long `wait_for(addr)` waits when the call gives no timeout (at least `--timeout`):
/// services in a pipeline often take a while to start.
const WAIT_FOR_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30);

/// How often (in rhai operations) a script checks for cancellation and `within` deadlines.
const PROGRESS_EVERY: u64 = 1024;

pub fn build(ctx: &Arc<ScriptCtx>) -> Engine {
    let mut engine = Engine::new();
    set_limits(&mut engine);
    // Scenarios cannot load modules; rhai has no file or process access to begin with.
    engine.set_module_resolver(DummyModuleResolver::new());
    // A typo in a variable name is a compile error (exit 3), not a failure mid-conversation.
    engine.set_strict_variables(true);
    engine.set_fail_on_invalid_map_property(true);

    let output = ctx.output.clone();
    engine.on_print(move |text| output.line(text));
    let output = ctx.output.clone();
    engine.on_debug(move |text, _, pos| {
        output.line(&format!("[debug {pos}] {text}"));
    });

    let session = ctx.session.clone();
    engine.on_progress(move |ops| {
        if ops % PROGRESS_EVERY != 0 {
            return None;
        }
        if session.is_cancelled() {
            return Some(Dynamic::from(Abort::Cancelled));
        }
        bridge::within_expired().map(|depth| Dynamic::from(Abort::WithinExpired(depth)))
    });

    net::register(&mut engine);
    assert::register(&mut engine);
    register_scenario_fns(&mut engine, ctx);
    register_spawn(&mut engine, ctx);
    engine
}

fn set_limits(engine: &mut Engine) {
    // Debug builds default to a call depth of 8; scripts recurse more than that.
    engine.set_max_call_levels(64);
    engine.set_max_expr_depths(128, 64);
    engine.set_max_string_size(64 * 1024 * 1024);
    engine.set_max_array_size(1_000_000);
    engine.set_max_map_size(100_000);
}

/// `timeout` is the one option TCP handles take; later transports add their own.
fn handle_timeout(op: &str, opts: &Map) -> ScriptResult<Option<std::time::Duration>> {
    for key in opts.keys() {
        if key.as_str() != "timeout" {
            return Err(script_error(
                "invalid_argument",
                op,
                format!("{op}: unknown option `{key}` (known: `timeout`)"),
            ));
        }
    }
    opts.get("timeout").map(|d| duration(op, d)).transpose()
}

fn register_scenario_fns(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    let s = ctx.session.clone();
    engine.register_fn("listen", move |addr: ImmutableString| -> ScriptResult<Listener> {
        Listener::bind(&s, &addr).map_err(raise)
    });
    let s = ctx.session.clone();
    engine.register_fn(
        "listen",
        move |addr: ImmutableString, opts: Map| -> ScriptResult<Listener> {
            let timeout = handle_timeout("listen", &opts)?;
            let l = Listener::bind(&s, &addr).map_err(raise)?;
            if let Some(t) = timeout {
                l.set_timeout(t);
            }
            Ok(l)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn("connect", move |addr: ImmutableString| -> ScriptResult<Conn> {
        Conn::connect(&s, &addr, None).map_err(raise)
    });
    let s = ctx.session.clone();
    engine.register_fn(
        "connect",
        move |addr: ImmutableString, opts: Map| -> ScriptResult<Conn> {
            let timeout = handle_timeout("connect", &opts)?;
            let c = Conn::connect(&s, &addr, timeout).map_err(raise)?;
            if let Some(t) = timeout {
                c.set_timeout(t);
            }
            Ok(c)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn("wait_for", move |addr: ImmutableString| -> ScriptResult<INT> {
        let timeout = s.default_timeout().max(WAIT_FOR_DEFAULT);
        Conn::wait_for(&s, &addr, timeout).map(INT::from).map_err(raise)
    });
    let s = ctx.session.clone();
    engine.register_fn(
        "wait_for",
        move |addr: ImmutableString, timeout: Dynamic| -> ScriptResult<INT> {
            let timeout = duration("wait_for", &timeout)?;
            Conn::wait_for(&s, &addr, timeout).map(INT::from).map_err(raise)
        },
    );
    engine.register_fn("env", |name: ImmutableString| {
        std::env::var(name.as_str()).map_or(Dynamic::UNIT, Dynamic::from)
    });
    let s = ctx.session.clone();
    engine.register_fn("sleep", move |d: Dynamic| -> ScriptResult<()> {
        s.sleep(duration("sleep", &d)?).map_err(raise)
    });
    let s = ctx.session.clone();
    engine.register_fn("channel", move || Channel::<Dynamic>::new(&s));
    let s = ctx.session.clone();
    engine.register_fn("join", move |t: Task| t.join(&s));
    engine.register_fn(
        "within",
        |ctx: NativeCallContext, d: Dynamic, f: FnPtr| -> ScriptResult<Dynamic> {
            within(&ctx, duration("within", &d)?, &f)
        },
    );
}

/// Run `f` with every blocking call (and CPU loop) in it bounded by `length`. Running out is a
/// catchable `timeout` error at the `within` call.
fn within(ctx: &NativeCallContext, length: std::time::Duration, f: &FnPtr) -> ScriptResult<Dynamic> {
    let guard = bridge::enter_within(length);
    let result = f.call_within_context::<Dynamic>(ctx, ());
    let depth = guard.depth();
    drop(guard);
    match result {
        Err(err) => match super::error::abort_of(&err) {
            Some(Abort::WithinExpired(d)) if d == depth => Err(raise(crate::net::NetError::timeout(
                "within",
                None,
                length,
                true,
            ))),
            _ => Err(err),
        },
        ok => ok,
    }
}

/// `spawn` is a reserved word in rhai, so it is custom syntax: `spawn(<closure>)`.
fn register_spawn(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    let ctx = ctx.clone();
    let registered = engine.register_custom_syntax(
        ["spawn", "(", "$expr$", ")"],
        false,
        move |ectx, inputs| {
            let at = inputs[0].position();
            let value = ectx.eval_expression_tree(&inputs[0])?;
            let closure = value.try_cast::<FnPtr>().ok_or_else(|| {
                script_error(
                    "invalid_argument",
                    "spawn",
                    "spawn: the argument must be a closure, e.g. `spawn(|| server.accept())`",
                )
            })?;
            task::spawn(&ctx, closure, at).map(Dynamic::from)
        },
    );
    if let Err(e) = registered {
        // The syntax is a constant: failing to register it is a bug in this file.
        unreachable!("spawn syntax: {e}");
    }
}
