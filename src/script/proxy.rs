//! The script side of [`crate::net::proxy`]: `proxy(listen, upstream[, opts])`, the `Proxy`
//! type's properties, and `p.fault(kind, opts)` / `p.clear_faults()`, whose kinds and options
//! (Toxiproxy's names and units) are checked here, before `net` sees a typed [`Fault`].

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, ImmutableString, Map, NativeCallContext, INT};

use super::context::call;
use super::error::{raise, script_error, ScriptResult};
use super::net::{count, ok};
use super::value::duration;
use crate::net::proxy::{Direction, Effect};
use crate::net::{ErrorKind, Fault, Proxy, ProxyOptions, Session};

/// Each kind and the options it takes beyond `direction` and `toxicity`.
const KINDS: &[(&str, &[&str])] = &[
    ("latency", &["ms", "jitter"]),
    ("bandwidth", &["rate"]),
    ("slicer", &["size", "variation", "delay"]),
    ("limit_data", &["bytes"]),
    ("timeout", &["ms"]),
    ("reset_peer", &["ms"]),
    ("slow_close", &["ms"]),
    ("down", &[]),
];

fn invalid(op: &str, message: String) -> Box<rhai::EvalAltResult> {
    script_error(ErrorKind::InvalidArgument, op, message)
}

/// A whole number of at least 0 (`size`, `bytes`, `rate`, microseconds).
fn count_opt(kind: &str, key: &str, value: &Dynamic) -> ScriptResult<u64> {
    value
        .as_int()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            invalid(
                "fault",
                format!("fault `{kind}`: `{key}` must be a whole number of at least 0"),
            )
        })
}

/// `p.fault(kind, #{…})` as a typed fault: unknown kinds and options are `invalid_argument`.
pub fn parse_fault(kind: &str, opts: &Map) -> ScriptResult<Fault> {
    let op = "fault";
    let Some((_, known)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        let names: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        return Err(invalid(
            op,
            format!("fault: unknown kind `{kind}` (known: {})", names.join(", ")),
        ));
    };
    let mut direction = Direction::Downstream;
    let mut toxicity = 1.0;
    for (key, value) in opts {
        match key.as_str() {
            "direction" => {
                let text = value.clone().into_string().unwrap_or_default();
                direction = Direction::parse(&text).ok_or_else(|| {
                    invalid(
                        op,
                        format!(
                            "fault `{kind}`: `direction` is \"upstream\", \"downstream\" or \"both\""
                        ),
                    )
                })?;
            }
            "toxicity" => {
                let t = value
                    .as_float()
                    .ok()
                    .or_else(|| value.as_int().ok().map(|n| n as f64));
                toxicity = t.filter(|t| (0.0..=1.0).contains(t)).ok_or_else(|| {
                    invalid(
                        op,
                        format!("fault `{kind}`: `toxicity` is a number from 0.0 to 1.0"),
                    )
                })?;
            }
            k if known.contains(&k) => {}
            k => {
                let mut all: Vec<&str> = known.to_vec();
                all.extend(["direction", "toxicity"]);
                return Err(invalid(
                    op,
                    format!(
                        "fault `{kind}`: unknown option `{k}` (known: {})",
                        all.join(", ")
                    ),
                ));
            }
        }
    }
    let ms = |key: &str| -> ScriptResult<Duration> {
        opts.get(key)
            .map_or(Ok(Duration::ZERO), |v| duration(op, v))
    };
    let num = |key: &str, default: u64| -> ScriptResult<u64> {
        opts.get(key)
            .map_or(Ok(default), |v| count_opt(kind, key, v))
    };
    // A rate or a size: 0 would never relay a byte.
    let positive = |key: &str, unit: &str| -> ScriptResult<u64> {
        match num(key, 0)? {
            0 => Err(invalid(
                op,
                format!("fault `{kind}`: `{key}` ({unit}) must be at least 1"),
            )),
            n => Ok(n),
        }
    };
    let effect = match kind {
        "latency" => Effect::Latency {
            delay: ms("ms")?,
            jitter: ms("jitter")?,
        },
        "bandwidth" => Effect::Bandwidth {
            rate: positive("rate", "KiB/s")?.saturating_mul(1024),
        },
        "slicer" => Effect::Slicer {
            size: positive("size", "bytes")? as usize,
            variation: num("variation", 0)? as usize,
            delay: Duration::from_micros(num("delay", 0)?),
        },
        "limit_data" => Effect::LimitData {
            bytes: num("bytes", 0)?,
        },
        "timeout" => Effect::Timeout { after: ms("ms")? },
        "reset_peer" => Effect::ResetPeer { after: ms("ms")? },
        "slow_close" => Effect::SlowClose { delay: ms("ms")? },
        _ => Effect::Down,
    };
    Ok(Fault {
        effect,
        direction,
        toxicity,
    })
}

/// `proxy(listen, upstream, #{timeout, faults})`: `timeout` bounds the connect to the
/// upstream; `faults` is a list of `#{kind, …}` in force from the start.
fn proxy_options(opts: &Map) -> ScriptResult<ProxyOptions> {
    let mut options = ProxyOptions::default();
    for (key, value) in opts {
        match key.as_str() {
            "timeout" => options.connect_timeout = Some(duration("proxy", value)?),
            "faults" => {
                let list = value.read_lock::<rhai::Array>().ok_or_else(|| {
                    invalid(
                        "proxy",
                        "proxy: `faults` is a list like `[#{kind: \"latency\", ms: 100}]`".into(),
                    )
                })?;
                for f in list.iter() {
                    let mut map = f.read_lock::<Map>().map(|m| m.clone()).ok_or_else(|| {
                        invalid(
                            "proxy",
                            "proxy: each of `faults` is a map with a `kind`".into(),
                        )
                    })?;
                    let kind = map
                        .remove("kind")
                        .and_then(|k| k.into_string().ok())
                        .ok_or_else(|| {
                            invalid("proxy", "proxy: each of `faults` needs a `kind`".into())
                        })?;
                    options.faults.push(parse_fault(&kind, &map)?);
                }
            }
            k => {
                return Err(invalid(
                    "proxy",
                    format!("proxy: unknown option `{k}` (known: timeout, faults)"),
                ))
            }
        }
    }
    Ok(options)
}

/// `proxy(…)` (it needs the scenario's session) and the `Proxy` type.
pub fn register(engine: &mut Engine, session: &Arc<Session>) {
    let s = session.clone();
    engine.register_fn(
        "proxy",
        move |ctx: NativeCallContext,
              listen: ImmutableString,
              upstream: ImmutableString|
              -> ScriptResult<Proxy> {
            ok(Proxy::start(
                &s,
                &call(&ctx),
                &listen,
                &upstream,
                ProxyOptions::default(),
            ))
        },
    );
    let s = session.clone();
    engine.register_fn(
        "proxy",
        move |ctx: NativeCallContext,
              listen: ImmutableString,
              upstream: ImmutableString,
              opts: Map|
              -> ScriptResult<Proxy> {
            let options = proxy_options(&opts)?;
            Proxy::start(&s, &call(&ctx), &listen, &upstream, options).map_err(raise)
        },
    );
    let (s, s1, s2, s3) = (
        session.clone(),
        session.clone(),
        session.clone(),
        session.clone(),
    );
    engine
        .register_type_with_name::<Proxy>("Proxy")
        .register_fn("to_string", |p: &mut Proxy| p.to_string())
        .register_fn("to_debug", |p: &mut Proxy| p.to_string())
        .register_get("addr", |p: &mut Proxy| p.local().text.to_string())
        .register_get("port", |p: &mut Proxy| {
            p.local()
                .port()
                .map_or(Dynamic::UNIT, |n| INT::from(n).into())
        })
        .register_get("host", |p: &mut Proxy| {
            p.local().ip().map_or(Dynamic::UNIT, Into::into)
        })
        .register_get("upstream", |p: &mut Proxy| p.upstream().to_string())
        .register_get("connections", |p: &mut Proxy| count(p.connections()))
        .register_get("closed", |p: &mut Proxy| p.is_closed())
        .register_fn(
            "fault",
            move |ctx: NativeCallContext,
                  p: Proxy,
                  kind: ImmutableString,
                  opts: Map|
                  -> ScriptResult<()> {
                let fault = parse_fault(&kind, &opts)?;
                ok(p.add_fault(&call(&ctx), &s1, fault))
            },
        )
        .register_fn(
            "fault",
            move |ctx: NativeCallContext, p: Proxy, kind: ImmutableString| -> ScriptResult<()> {
                let fault = parse_fault(&kind, &Map::new())?;
                ok(p.add_fault(&call(&ctx), &s2, fault))
            },
        )
        .register_fn(
            "clear_faults",
            move |ctx: NativeCallContext, p: Proxy| -> ScriptResult<()> {
                ok(p.clear_faults(&call(&ctx), &s3))
            },
        )
        .register_fn("close", move |ctx: NativeCallContext, p: Proxy| {
            p.close(&call(&ctx), &s)
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Dynamic)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn faults_take_toxiproxys_names_and_units() {
        let f = parse_fault(
            "slicer",
            &map(&[
                ("size", 10.into()),
                ("variation", 2.into()),
                ("delay", 500.into()),
                ("direction", "both".into()),
                ("toxicity", Dynamic::from_float(0.5)),
            ]),
        )
        .map_err(|e| e.to_string());
        assert_eq!(
            f,
            Ok(Fault {
                effect: Effect::Slicer {
                    size: 10,
                    variation: 2,
                    delay: Duration::from_micros(500)
                },
                direction: Direction::Both,
                toxicity: 0.5,
            })
        );
        let f = parse_fault("bandwidth", &map(&[("rate", 4.into())])).map_err(|e| e.to_string());
        assert_eq!(
            f.map(|f| (f.effect, f.direction)),
            Ok((Effect::Bandwidth { rate: 4096 }, Direction::Downstream))
        );
    }

    #[test]
    fn unknown_kinds_options_and_bad_values_are_invalid_arguments() {
        let kind = |r: ScriptResult<Fault>| {
            r.err()
                .and_then(|e| super::super::error::catchable_kind(&e))
        };
        assert_eq!(
            kind(parse_fault("jitter", &Map::new())),
            Some(ErrorKind::InvalidArgument)
        );
        assert_eq!(
            kind(parse_fault("latency", &map(&[("delay", 5.into())]))),
            Some(ErrorKind::InvalidArgument)
        );
        assert_eq!(
            kind(parse_fault(
                "latency",
                &map(&[("toxicity", Dynamic::from_float(1.5))])
            )),
            Some(ErrorKind::InvalidArgument)
        );
        assert_eq!(
            kind(parse_fault(
                "down",
                &map(&[("direction", "sideways".into())])
            )),
            Some(ErrorKind::InvalidArgument)
        );
        assert_eq!(
            kind(parse_fault("limit_data", &map(&[("bytes", (-1).into())]))),
            Some(ErrorKind::InvalidArgument)
        );
    }
}
