//! Script methods and properties of the socket handles: `Conn` (its stream API is
//! [`super::stream`]'s), `Listener`, `Udp`, `Channel`, `Task`. Each is a thin call into `net`
//! with its error turned into a script error.

use rhai::{Blob, Dynamic, Engine, ImmutableString, Map, NativeCallContext, INT};

use super::context::call;
use super::error::{blob, raise, text, ScriptResult};
use super::task::Task;
use super::value::{deadline, deadline_value, duration};
use crate::net::{Call, Channel, Conn, Listener, NetError, Udp};

pub(super) fn ok<T>(r: Result<T, NetError>) -> ScriptResult<T> {
    r.map_err(raise)
}

/// A value, or `()` where there is none (the port of a Unix socket).
fn opt<T: Into<Dynamic>>(value: Option<T>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Into::into)
}

/// `#{version, cipher, alpn, sni}` for `conn.tls`.
pub(super) fn tls_map(t: &crate::net::TlsInfo) -> Map {
    let mut map = Map::new();
    map.insert("version".into(), t.version.clone().into());
    map.insert("cipher".into(), t.cipher.clone().into());
    map.insert("alpn".into(), opt(t.alpn.clone()));
    map.insert("sni".into(), opt(t.sni.clone()));
    map
}

pub(super) fn count(n: usize) -> INT {
    INT::try_from(n).unwrap_or(INT::MAX)
}

/// `conn.send(blob)`, for the stream API and for `send_ref.rs`, which sends a Blob variable
/// without the copy rhai makes of a method's arguments.
pub(super) fn send_bytes(c: &Conn, call: &Call, data: &[u8]) -> ScriptResult<INT> {
    ok(c.send(call, "send", data)).map(count)
}

pub fn register(engine: &mut Engine) {
    register_conn(engine);
    register_listener(engine);
    register_udp(engine);
    register_channel(engine);
    register_task(engine);
    super::ws::register(engine);
}

fn register_conn(engine: &mut Engine) {
    engine
        .register_type_with_name::<Conn>("Conn")
        .register_fn("to_string", |c: &mut Conn| c.to_string())
        .register_fn("to_debug", |c: &mut Conn| c.to_string())
        .register_get("peer", |c: &mut Conn| c.peer().text.to_string())
        .register_get("local", |c: &mut Conn| c.local().text.to_string())
        .register_get("peer_ip", |c: &mut Conn| opt(c.peer().ip()))
        .register_get("peer_port", |c: &mut Conn| {
            opt(c.peer().port().map(INT::from))
        })
        .register_get("local_ip", |c: &mut Conn| opt(c.local().ip()))
        .register_get("local_port", |c: &mut Conn| {
            opt(c.local().port().map(INT::from))
        })
        .register_get("tls", |c: &mut Conn| opt(c.tls().map(tls_map)));
    super::stream::register::<Conn>(engine);
}

fn register_listener(engine: &mut Engine) {
    engine
        .register_type_with_name::<Listener>("Listener")
        .register_fn("to_string", |l: &mut Listener| l.to_string())
        .register_fn("to_debug", |l: &mut Listener| l.to_string())
        .register_get("addr", |l: &mut Listener| l.local().text.to_string())
        .register_get("port", |l: &mut Listener| {
            opt(l.local().port().map(INT::from))
        })
        .register_get("host", |l: &mut Listener| opt(l.local().ip()))
        .register_get("cert_pem", |l: &mut Listener| {
            opt(l.cert_pem().map(str::to_owned))
        })
        .register_get("closed", |l: &mut Listener| l.is_closed())
        .register_get("timeout", |l: &mut Listener| deadline_value(l.timeout()))
        .register_set(
            "timeout",
            |l: &mut Listener, d: Dynamic| -> ScriptResult<()> {
                l.set_timeout(deadline("timeout", &d)?);
                Ok(())
            },
        )
        .register_fn(
            "accept",
            |ctx: NativeCallContext, l: Listener| -> ScriptResult<Conn> {
                ok(l.accept(&call(&ctx)))
            },
        )
        .register_fn("close", |ctx: NativeCallContext, l: Listener| {
            l.close(&call(&ctx))
        });
}

fn datagram(data: &[u8], from: std::net::SocketAddr, as_text: bool) -> Map {
    let mut map = Map::new();
    let data: Dynamic = if as_text {
        text(data).into()
    } else {
        Dynamic::from_blob(blob(data))
    };
    map.insert("data".into(), data);
    map.insert(
        "from".into(),
        crate::net::addr::Endpoint::new(from)
            .text
            .to_string()
            .into(),
    );
    map
}

fn register_udp(engine: &mut Engine) {
    engine
        .register_type_with_name::<Udp>("Udp")
        .register_fn("to_string", |u: &mut Udp| u.to_string())
        .register_fn("to_debug", |u: &mut Udp| u.to_string())
        .register_get("addr", |u: &mut Udp| u.local().text.to_string())
        .register_get("port", |u: &mut Udp| opt(u.local().port().map(INT::from)))
        .register_get("host", |u: &mut Udp| opt(u.local().ip()))
        .register_get("peer", |u: &mut Udp| {
            opt(u.peer().map(|p| p.text.to_string()))
        })
        .register_get("closed", |u: &mut Udp| u.is_closed())
        .register_get("timeout", |u: &mut Udp| deadline_value(u.timeout()))
        .register_set("timeout", |u: &mut Udp, d: Dynamic| -> ScriptResult<()> {
            u.set_timeout(deadline("timeout", &d)?);
            Ok(())
        })
        .register_fn(
            "send_to",
            |ctx: NativeCallContext,
             u: Udp,
             data: ImmutableString,
             addr: ImmutableString|
             -> ScriptResult<INT> {
                ok(u.send_to(&call(&ctx), data.as_bytes(), &addr)).map(count)
            },
        )
        .register_fn(
            "send_to",
            |ctx: NativeCallContext,
             u: Udp,
             data: Blob,
             addr: ImmutableString|
             -> ScriptResult<INT> {
                ok(u.send_to(&call(&ctx), &data, &addr)).map(count)
            },
        )
        .register_fn(
            "recv_from",
            |ctx: NativeCallContext, u: Udp| -> ScriptResult<Map> {
                ok(u.recv_from(&call(&ctx), "recv_from")).map(|(d, from)| datagram(&d, from, true))
            },
        )
        .register_fn(
            "recv_from_bytes",
            |ctx: NativeCallContext, u: Udp| -> ScriptResult<Map> {
                ok(u.recv_from(&call(&ctx), "recv_from_bytes"))
                    .map(|(d, from)| datagram(&d, from, false))
            },
        )
        .register_fn(
            "send",
            |ctx: NativeCallContext, u: Udp, data: ImmutableString| -> ScriptResult<INT> {
                ok(u.send(&call(&ctx), data.as_bytes())).map(count)
            },
        )
        .register_fn(
            "send",
            |ctx: NativeCallContext, u: Udp, data: Blob| -> ScriptResult<INT> {
                ok(u.send(&call(&ctx), &data)).map(count)
            },
        )
        .register_fn(
            "recv",
            |ctx: NativeCallContext, u: Udp| -> ScriptResult<String> {
                ok(u.recv(&call(&ctx), "recv")).map(text)
            },
        )
        .register_fn(
            "recv_bytes",
            |ctx: NativeCallContext, u: Udp| -> ScriptResult<Blob> {
                ok(u.recv(&call(&ctx), "recv_bytes")).map(blob)
            },
        )
        .register_fn("close", |ctx: NativeCallContext, u: Udp| {
            u.close(&call(&ctx))
        });
}

fn register_channel(engine: &mut Engine) {
    engine
        .register_type_with_name::<Channel<Dynamic>>("Channel")
        .register_fn("to_string", |_: &mut Channel<Dynamic>| {
            "Channel".to_string()
        })
        .register_fn("to_debug", |_: &mut Channel<Dynamic>| "Channel".to_string())
        // A full channel makes `send` wait for a `recv`, like a bounded queue in Go or Python;
        // its size is estimated as `--limit data` counts it.
        .register_fn(
            "send",
            |ctx: NativeCallContext, ch: Channel<Dynamic>, value: Dynamic| -> ScriptResult<()> {
                let value = value.flatten_clone();
                let size = super::limits::estimated_size(&value);
                ok(ch.send(&call(&ctx), value, size, None))
            },
        )
        .register_fn(
            "recv",
            |ctx: NativeCallContext, ch: Channel<Dynamic>| -> ScriptResult<Dynamic> {
                ok(ch.recv(&call(&ctx), None))
            },
        )
        .register_fn(
            "recv",
            |ctx: NativeCallContext,
             ch: Channel<Dynamic>,
             timeout: Dynamic|
             -> ScriptResult<Dynamic> {
                ok(ch.recv(&call(&ctx), Some(duration("recv", &timeout)?)))
            },
        );
}

fn register_task(engine: &mut Engine) {
    engine
        .register_type_with_name::<Task>("Task")
        .register_fn("to_string", |t: &mut Task| t.to_string())
        .register_fn("to_debug", |t: &mut Task| t.to_string())
        .register_get("name", |t: &mut Task| t.name().to_string())
        .register_get("done", |t: &mut Task| t.is_done());
}
