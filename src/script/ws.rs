//! Script bindings of WebSockets ([`crate::net::ws`]): `ws_connect`, `ws_listen`, the
//! `WebSocket` and `WsListener` types. A WebSocket reads whole messages, so its `send`,
//! `recv`, `recv_message`, `expect` and `ping` are its own; `timeout`, `closed` and `close()`
//! are the ones every handle shares ([`super::stream::register_handle`]).

use std::sync::Arc;
use std::time::Duration;

use rhai::{Blob, Dynamic, Engine, ImmutableString, Map, NativeCallContext, FLOAT, INT};

use super::context::call;
use super::engine::{client_tls, list_opt, server_tls, unknown_option};
use super::error::{blob, script_error, text, ScriptResult};
use super::net::{count, ok};
use super::stream::{cached_regex, match_map, register_handle, Handle};
use super::task::ScriptCtx;
use super::value::deadline;
use crate::net::ws::{self, Handshake, Kind, Received};
use crate::net::{Call, ErrorKind, WebSocket, WsListener};

impl Handle for WebSocket {
    fn timeout(&self) -> Option<Duration> {
        WebSocket::timeout(self)
    }

    fn set_timeout(&self, d: Duration) {
        WebSocket::set_timeout(self, d)
    }

    fn is_closed(&self) -> bool {
        WebSocket::is_closed(self)
    }

    fn close(&self, call: &Call) {
        WebSocket::close(self, call, 1000, "")
    }
}

impl Handle for WsListener {
    fn timeout(&self) -> Option<Duration> {
        WsListener::timeout(self)
    }

    fn set_timeout(&self, d: Duration) {
        WsListener::set_timeout(self, d)
    }

    fn is_closed(&self) -> bool {
        WsListener::is_closed(self)
    }

    fn close(&self, call: &Call) {
        WsListener::close(self, call)
    }
}

/// A round trip in milliseconds, with its fraction: loopback takes well under one.
fn millis(d: Duration) -> FLOAT {
    d.as_secs_f64() * 1000.0
}

fn opt<T: Into<Dynamic>>(value: Option<T>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Into::into)
}

fn headers_map(h: &Handshake) -> Map {
    let mut map = Map::new();
    for (k, v) in &h.headers {
        // A repeated header reads as its values joined, as HTTP allows.
        let value = match map
            .get(k.as_str())
            .and_then(|d| d.clone().into_string().ok())
        {
            Some(before) => format!("{before}, {v}"),
            None => v.clone(),
        };
        map.insert(k.as_str().into(), value.into());
    }
    map
}

/// A text message as a string, a binary one as a Blob; `()` after the close.
fn data_of(m: Option<Received>) -> Dynamic {
    match m {
        Some(m) if m.kind == Kind::Text => text(m.data).into(),
        Some(m) => Dynamic::from_blob(blob(m.data)),
        None => Dynamic::UNIT,
    }
}

/// `#{type, data}` (and `code` for a close); `()` after the close.
fn message_map(m: Option<Received>) -> Dynamic {
    let Some(m) = m else {
        return Dynamic::UNIT;
    };
    let mut map = Map::new();
    map.insert("type".into(), m.kind.as_str().into());
    if m.kind == Kind::Close {
        map.insert("code".into(), opt(m.code.map(INT::from)));
    }
    let data = match m.kind {
        Kind::Binary => Dynamic::from_blob(blob(m.data)),
        _ => text(m.data).into(),
    };
    map.insert("data".into(), data);
    map.into()
}

/// `ws.close(code, reason)`: a code a close frame may carry (RFC 6455 §7.4), a reason that fits.
fn close_args(code: INT, reason: &str) -> ScriptResult<u16> {
    let bad = |why: String| script_error(ErrorKind::InvalidArgument, "close", why);
    let code = u16::try_from(code)
        .ok()
        .filter(|c| (1000..=4999).contains(c) && !matches!(c, 1004..=1006 | 1015))
        .ok_or_else(|| {
            bad(format!(
                "close: {code} is not a close code to send (1000–4999, not 1004–1006 or 1015)"
            ))
        })?;
    if reason.len() > 123 {
        return Err(bad(format!(
            "close: the reason is {} bytes; a close frame holds at most 123",
            reason.len()
        )));
    }
    Ok(code)
}

/// `ws_connect(url, #{headers, protocols, tls, timeout})`.
fn connect_options(url: &str, opts: &Map) -> ScriptResult<ws::ConnectOptions> {
    let op = "ws_connect";
    let mut o = ws::ConnectOptions::default();
    for (key, value) in opts {
        match key.as_str() {
            "timeout" => o.timeout = Some(deadline(op, value)?),
            "protocols" => o.protocols = list_opt(op, "protocols", value)?,
            "tls" => {
                if !url.starts_with("wss:") {
                    return Err(script_error(
                        ErrorKind::InvalidArgument,
                        op,
                        format!("{op}: `tls` is for `wss://` URLs, not `{url}`"),
                    ));
                }
                o.tls = client_tls(op, value)?;
            }
            "headers" => {
                let Some(map) = value.read_lock::<Map>() else {
                    return Err(script_error(
                        ErrorKind::InvalidArgument,
                        op,
                        format!("{op}: `headers` is a map like `#{{authorization: \"Bearer x\"}}`"),
                    ));
                };
                for (k, v) in map.iter() {
                    let v = match v.clone().into_string() {
                        Ok(s) => s,
                        Err(_) => v.to_string(),
                    };
                    o.headers.push((k.to_string(), v));
                }
            }
            other => {
                return Err(unknown_option(
                    op,
                    other,
                    "`headers`, `protocols`, `tls`, `timeout`",
                ))
            }
        }
    }
    Ok(o)
}

/// `ws_listen(addr, #{tls, protocols, timeout})`.
fn listen_options(opts: &Map) -> ScriptResult<(Option<Duration>, ws::ListenOptions)> {
    let op = "ws_listen";
    let mut o = ws::ListenOptions::default();
    let mut timeout = None;
    for (key, value) in opts {
        match key.as_str() {
            "timeout" => timeout = Some(deadline(op, value)?),
            "protocols" => o.protocols = list_opt(op, "protocols", value)?,
            "tls" => o.tls = Some(server_tls(op, value)?),
            other => return Err(unknown_option(op, other, "`tls`, `protocols`, `timeout`")),
        }
    }
    Ok((timeout, o))
}

/// `ws_connect` and `ws_listen`, which need the scenario's session.
pub(super) fn register_openers(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    let s = ctx.session.clone();
    engine.register_fn(
        "ws_connect",
        move |ctx: NativeCallContext, url: ImmutableString| -> ScriptResult<WebSocket> {
            ok(WebSocket::connect(
                &s,
                &call(&ctx),
                &url,
                &ws::ConnectOptions::default(),
            ))
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "ws_connect",
        move |ctx: NativeCallContext, url: ImmutableString, opts: Map| -> ScriptResult<WebSocket> {
            let o = connect_options(&url, &opts)?;
            let w = ok(WebSocket::connect(&s, &call(&ctx), &url, &o))?;
            if let Some(t) = o.timeout {
                w.set_timeout(t);
            }
            Ok(w)
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "ws_listen",
        move |ctx: NativeCallContext, addr: ImmutableString| -> ScriptResult<WsListener> {
            ok(WsListener::bind(
                &s,
                &call(&ctx),
                &addr,
                &ws::ListenOptions::default(),
            ))
        },
    );
    let s = ctx.session.clone();
    engine.register_fn(
        "ws_listen",
        move |ctx: NativeCallContext,
              addr: ImmutableString,
              opts: Map|
              -> ScriptResult<WsListener> {
            let (timeout, o) = listen_options(&opts)?;
            let l = ok(WsListener::bind(&s, &call(&ctx), &addr, &o))?;
            if let Some(t) = timeout {
                l.set_timeout(t);
            }
            Ok(l)
        },
    );
}

/// The `WebSocket` and `WsListener` types.
pub(super) fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<WsListener>("WsListener")
        .register_fn("to_string", |l: &mut WsListener| l.to_string())
        .register_fn("to_debug", |l: &mut WsListener| l.to_string())
        .register_get("addr", |l: &mut WsListener| l.local().text.to_string())
        .register_get("port", |l: &mut WsListener| {
            opt(l.local().port().map(INT::from))
        })
        .register_get("host", |l: &mut WsListener| opt(l.local().ip()))
        .register_get("url", |l: &mut WsListener| {
            let scheme = if l.cert_pem().is_some() { "wss" } else { "ws" };
            format!("{scheme}://{}", l.local().text)
        })
        .register_get("cert_pem", |l: &mut WsListener| {
            opt(l.cert_pem().map(str::to_owned))
        })
        .register_fn(
            "accept",
            |ctx: NativeCallContext, l: WsListener| -> ScriptResult<WebSocket> {
                ok(l.accept(&call(&ctx)))
            },
        );
    register_handle::<WsListener>(engine);

    engine
        .register_type_with_name::<WebSocket>("WebSocket")
        .register_fn("to_string", |w: &mut WebSocket| w.to_string())
        .register_fn("to_debug", |w: &mut WebSocket| w.to_string())
        .register_get("peer", |w: &mut WebSocket| w.peer().text.to_string())
        .register_get("local", |w: &mut WebSocket| w.local().text.to_string())
        .register_get("tls", |w: &mut WebSocket| {
            opt(w.handshake().tls.as_ref().map(super::net::tls_map))
        })
        .register_get("response", |w: &mut WebSocket| {
            let h = w.handshake();
            if h.status == 101 && !h.path.is_empty() {
                return Dynamic::UNIT;
            }
            let mut map = Map::new();
            map.insert("status".into(), INT::from(h.status).into());
            map.insert("headers".into(), headers_map(h).into());
            map.insert("protocol".into(), opt(h.protocol.clone()));
            map.into()
        })
        .register_get("request", |w: &mut WebSocket| {
            let h = w.handshake();
            if h.path.is_empty() {
                return Dynamic::UNIT;
            }
            let mut map = Map::new();
            map.insert("path".into(), h.path.clone().into());
            map.insert("query".into(), opt(h.query.clone()));
            map.insert("headers".into(), headers_map(h).into());
            map.insert("protocol".into(), opt(h.protocol.clone()));
            map.into()
        })
        .register_get("close_code", |w: &mut WebSocket| {
            opt(w.peer_close().and_then(|(code, _)| code.map(INT::from)))
        })
        .register_get("close_reason", |w: &mut WebSocket| {
            opt(w.peer_close().map(|(_, reason)| reason))
        })
        .register_fn(
            "send",
            |ctx: NativeCallContext, w: WebSocket, data: ImmutableString| -> ScriptResult<INT> {
                ok(w.send(&call(&ctx), data.as_bytes(), true)).map(count)
            },
        )
        .register_fn(
            "send",
            |ctx: NativeCallContext, w: WebSocket, data: Blob| -> ScriptResult<INT> {
                ok(w.send(&call(&ctx), &data, false)).map(count)
            },
        )
        .register_fn(
            "recv",
            |ctx: NativeCallContext, w: WebSocket| -> ScriptResult<Dynamic> {
                ok(w.recv(&call(&ctx), "recv")).map(data_of)
            },
        )
        .register_fn(
            "recv_message",
            |ctx: NativeCallContext, w: WebSocket| -> ScriptResult<Dynamic> {
                ok(w.recv_message(&call(&ctx), "recv_message")).map(message_map)
            },
        )
        .register_fn(
            "expect",
            |ctx: NativeCallContext, w: WebSocket, pattern: ImmutableString| -> ScriptResult<Map> {
                let re = cached_regex("expect", &pattern)?;
                let (matched, groups) = ok(w.expect(&call(&ctx), "expect", &re))?;
                Ok(match_map(matched, groups))
            },
        )
        .register_fn(
            "ping",
            |ctx: NativeCallContext, w: WebSocket| -> ScriptResult<FLOAT> {
                ok(w.ping(&call(&ctx), None)).map(millis)
            },
        )
        .register_fn(
            "ping",
            |ctx: NativeCallContext, w: WebSocket, data: ImmutableString| -> ScriptResult<FLOAT> {
                ok(w.ping(&call(&ctx), Some(data.as_bytes()))).map(millis)
            },
        )
        .register_fn(
            "close",
            |ctx: NativeCallContext,
             w: WebSocket,
             code: INT,
             reason: ImmutableString|
             -> ScriptResult<()> {
                let code = close_args(code, &reason)?;
                w.close(&call(&ctx), code, &reason);
                Ok(())
            },
        );
    register_handle::<WebSocket>(engine);
}
