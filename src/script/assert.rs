//! `assert`, `assert_eq`, `assert_ne`, `assert_match`, `assert_err` and `fail`. A failed
//! assertion stops the scenario (a script cannot catch it) and carries the position of the call,
//! which rhai would otherwise move to the call of the enclosing closure.

use rhai::{Dynamic, Engine, FnPtr, ImmutableString, Map, NativeCallContext};

use super::error::{abort, catchable_map, Abort, AssertionFailure, ScriptResult};
use crate::net::ErrorKind;

fn failed(
    ctx: &NativeCallContext,
    message: impl Into<String>,
    values: Vec<(String, String)>,
) -> Box<rhai::EvalAltResult> {
    abort(
        Abort::Assertion(AssertionFailure {
            message: message.into(),
            values,
            position: ctx.call_position(),
            file: ctx.call_source().map(str::to_owned),
            function: ctx.fn_name().to_owned(),
            label: "this assertion failed",
        }),
        ctx.call_position(),
    )
}

/// How a value reads in a failure: strings quoted, handles by their `to_debug`.
fn show(ctx: &NativeCallContext, value: &Dynamic) -> String {
    ctx.call_native_fn::<ImmutableString>("to_debug", (value.clone(),))
        .map(|s| s.to_string())
        .unwrap_or_else(|_| format!("{value:?}"))
}

fn equal(ctx: &NativeCallContext, a: &Dynamic, b: &Dynamic) -> bool {
    if a.type_id() != b.type_id() {
        // 1 and 1.0 compare equal in rhai; other mixed types never do.
        return ctx
            .call_native_fn::<bool>("==", (a.clone(), b.clone()))
            .unwrap_or(false);
    }
    ctx.call_native_fn::<bool>("==", (a.clone(), b.clone()))
        .unwrap_or_else(|_| show(ctx, a) == show(ctx, b))
}

fn values(ctx: &NativeCallContext, left: &Dynamic, right: &Dynamic) -> Vec<(String, String)> {
    vec![
        ("left".to_owned(), show(ctx, left)),
        ("right".to_owned(), show(ctx, right)),
    ]
}

pub fn register(engine: &mut Engine) {
    engine
        .register_fn(
            "assert",
            |ctx: NativeCallContext, cond: bool| -> ScriptResult<()> {
                if cond {
                    Ok(())
                } else {
                    Err(failed(&ctx, "assertion failed", vec![]))
                }
            },
        )
        .register_fn(
            "assert",
            |ctx: NativeCallContext, cond: bool, msg: ImmutableString| -> ScriptResult<()> {
                if cond {
                    Ok(())
                } else {
                    Err(failed(&ctx, format!("assertion failed: {msg}"), vec![]))
                }
            },
        )
        .register_fn(
            "assert_eq",
            |ctx: NativeCallContext, a: Dynamic, b: Dynamic| -> ScriptResult<()> {
                if equal(&ctx, &a, &b) {
                    return Ok(());
                }
                Err(failed(
                    &ctx,
                    "assert_eq failed: the values differ",
                    values(&ctx, &a, &b),
                ))
            },
        )
        .register_fn(
            "assert_eq",
            |ctx: NativeCallContext,
             a: Dynamic,
             b: Dynamic,
             msg: ImmutableString|
             -> ScriptResult<()> {
                if equal(&ctx, &a, &b) {
                    return Ok(());
                }
                Err(failed(
                    &ctx,
                    format!("assert_eq failed: {msg}"),
                    values(&ctx, &a, &b),
                ))
            },
        )
        .register_fn(
            "assert_ne",
            |ctx: NativeCallContext, a: Dynamic, b: Dynamic| -> ScriptResult<()> {
                if !equal(&ctx, &a, &b) {
                    return Ok(());
                }
                Err(failed(
                    &ctx,
                    "assert_ne failed: the values are equal",
                    values(&ctx, &a, &b),
                ))
            },
        )
        .register_fn(
            "assert_match",
            |ctx: NativeCallContext,
             text: ImmutableString,
             pattern: ImmutableString|
             -> ScriptResult<()> {
                let re = regex::Regex::new(&pattern).map_err(|e| {
                    super::error::script_error(
                        ErrorKind::InvalidArgument,
                        "assert_match",
                        format!("assert_match: invalid regex: {e}"),
                    )
                })?;
                if re.is_match(&text) {
                    return Ok(());
                }
                Err(failed(
                    &ctx,
                    "assert_match failed: the text does not match",
                    vec![
                        ("text".to_owned(), format!("{:?}", text.as_str())),
                        ("regex".to_owned(), format!("/{pattern}/")),
                    ],
                ))
            },
        )
        .register_fn(
            "assert_err",
            |ctx: NativeCallContext, f: FnPtr| -> ScriptResult<Map> {
                expect_error(&ctx, &f, None)
            },
        )
        .register_fn(
            "assert_err",
            |ctx: NativeCallContext, f: FnPtr, kind: ImmutableString| -> ScriptResult<Map> {
                expect_error(&ctx, &f, Some(&kind))
            },
        )
        .register_fn(
            "fail",
            |ctx: NativeCallContext, msg: ImmutableString| -> ScriptResult<()> {
                Err(abort(
                    Abort::Assertion(AssertionFailure {
                        message: msg.to_string(),
                        values: vec![],
                        position: ctx.call_position(),
                        file: ctx.call_source().map(str::to_owned),
                        function: ctx.fn_name().to_owned(),
                        label: "failed here",
                    }),
                    ctx.call_position(),
                ))
            },
        );
}

/// Run `f`; it must raise a catchable error (of `kind`, when given). Returns the error map.
fn expect_error(ctx: &NativeCallContext, f: &FnPtr, kind: Option<&str>) -> ScriptResult<Map> {
    let wanted = kind.map_or(String::new(), |k| format!(" with kind `{k}`"));
    match f.call_within_context::<Dynamic>(ctx, ()) {
        Ok(value) => Err(failed(
            ctx,
            format!("assert_err failed: expected an error{wanted}, but the closure returned"),
            vec![("returned".to_owned(), show(ctx, &value))],
        )),
        Err(err) if !err.is_catchable() || super::error::abort_of(&err).is_some() => Err(err),
        Err(err) => {
            let map = catchable_map(&err);
            let got = map.get("kind").map(|k| k.to_string()).unwrap_or_default();
            match kind {
                Some(k) if k != got => {
                    let message = map
                        .get("message")
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    Err(failed(
                        ctx,
                        format!("assert_err failed: expected an error{wanted}, got kind `{got}`"),
                        vec![("error".to_owned(), message)],
                    ))
                }
                _ => Ok(map),
            }
        }
    }
}
