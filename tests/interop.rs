//! Python's `socket` module as an independent peer: what sockscript sends and receives must be
//! what another implementation sees, byte for byte. Loopback only, port 0; every peer prints its
//! port on stdout as its readiness signal, and the test reads that line before going on.

use std::time::Duration;

use crate::harness::{normalize, python, python_listener, Test};

/// What a `python_listener` does with its one client: thank it and close.
const PY_GREETING_SERVER: &str = r#"
c, addr = s.accept()
c.sendall(b"Thank you for connecting")
c.close()
s.close()
"#;

#[test]
fn a_python_server_greets_a_sockscript_client() {
    let mut peer = python_listener(PY_GREETING_SERVER);
    let port = peer.port();
    let out = Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let conn = connect(`127.0.0.1:${port}`);
            let msg = conn.recv_all();
            print(msg);
            "#,
        )
        .run();
    out.code(0).stdout("Thank you for connecting\n");
    peer.wait().code(0);
}

#[test]
fn a_sockscript_server_greets_a_python_client() {
    let mut server = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            print(server.port);
            let client = server.accept();
            print(`Got connection from ${client.peer}`);
            client.send("Thank you for connecting");
            client.close();
            "#,
        )
        .spawn();
    let port = server.port();
    let mut client = python(&format!(
        r#"
from peer import connect, read_to_end
c = connect({port}, announce=True)
print(repr(read_to_end(c)))
"#
    ));
    let client_port = client.port();
    let received = client.line();
    assert_eq!(received, "b'Thank you for connecting'");
    client.wait().code(0);
    server.wait().code(0).stdout(&format!(
        "{port}\nGot connection from 127.0.0.1:{client_port}\n"
    ));
}

#[test]
fn a_port_held_by_python_is_addr_in_use() {
    let mut holder = python(
        r#"
from peer import hold, listen
s = listen(timeout=None)
hold()
"#,
    );
    let port = holder.port();
    let out = Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let err = assert_err(|| listen(`127.0.0.1:${port}`), "addr_in_use");
            print(err.kind);
            print(err.message);
            "#,
        )
        .run();
    out.code(0);
    assert_eq!(
        normalize(&out.stdout),
        "addr_in_use\nlisten on `127.0.0.1:PORT` failed: the address is already in use\n"
    );
    holder.close_stdin();
    holder.wait().code(0);
}

#[test]
fn every_byte_value_arrives_intact() {
    let mut peer = python_listener(
        r#"
c, addr = s.accept()
c.sendall(bytes(range(256)))
c.close()
"#,
    );
    let port = peer.port();
    Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let conn = connect(`127.0.0.1:${port}`);
            let b = conn.recv_exact_bytes(256);
            assert_eq(b.len(), 256);
            for i in 0..256 {
                assert_eq(b[i], i, `byte ${i}`);
            }
            assert_eq(conn.recv_all_bytes().len(), 0);
            print("ok");
            "#,
        )
        .run()
        .code(0)
        .stdout("ok\n");
    peer.wait().code(0);
}

#[test]
fn bytes_sockscript_sends_arrive_exactly() {
    let mut server = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            print(server.port);
            let c = server.accept();
            let b = blob();
            for i in 0..256 { b.push(255 - i); }
            c.send(b);
            c.send("é\r\n");
            c.close();
            "#,
        )
        .spawn();
    let port = server.port();
    let mut client = python(&format!(
        r#"
from peer import connect, read_to_end
c = connect({port})
data = read_to_end(c)
assert data == bytes(reversed(range(256))) + "é\r\n".encode(), repr(data)
print(len(data))
"#
    ));
    assert_eq!(client.line(), "260");
    client.wait().code(0);
    server.wait().code(0);
}

/// Sends larger than the socket's buffer go in parts; two tasks sending on one connection at
/// once must still put each send on the wire whole, one after the other. 16 MiB a send is more
/// than loopback's buffers hold, so each finds them full part-way.
#[test]
fn two_tasks_sending_large_blobs_on_one_connection_do_not_interleave() {
    let mut peer = python(
        r#"
from peer import accept_one
c = accept_one(timeout=30)
data = bytearray()
while chunk := c.recv(4096):
    data += chunk
n = 16 * 1024 * 1024
a, b = bytes([0x61]) * n, bytes([0x62]) * n
if data in (a + b, b + a):
    c.sendall(b"whole\n")
else:
    first = data[:1]
    cut = next((i for i, x in enumerate(data) if data[i:i + 1] != first), len(data))
    c.sendall(f"{len(data)} bytes, the first send cut at {cut}\n".encode())
c.close()
"#,
    );
    let port = peer.port();
    Test::new()
        .args(&["--var", &format!("port={port}"), "--timeout", "20s"])
        .args(&["--limit", "data=1GiB"])
        .script(
            r#"
            let c = connect(`127.0.0.1:${port}`);
            let a = blob(16777216, 0x61);
            let b = blob(16777216, 0x62);
            let other = spawn(|| c.send(b));
            c.send(a);
            other.join();
            c.shutdown();
            print(c.recv_line());
            "#,
        )
        .wall(Duration::from_secs(60))
        .run()
        .code(0)
        .stdout("whole\n");
    peer.wait().code(0);
}

#[test]
fn recv_line_strips_crlf_from_lines_sent_in_small_chunks() {
    let mut server = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            print(server.port);
            let c = server.accept();
            let lines = [];
            for i in 0..5 { lines.push(c.recv_line()); }
            assert_eq(lines, ["first line", "second line", "", "third", "bare lf"]);
            assert_eq(c.recv_all(), "no ending");
            for line in lines { print(`[${line}]`); }
            "#,
        )
        .spawn();
    let port = server.port();
    // The pauses only split the stream into separate segments; nothing waits on them.
    let mut client = python(&format!(
        r#"
import socket, time
from peer import connect
c = connect({port})
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for chunk in [b"fir", b"st line\r", b"\nsecond", b" line\r\n\r", b"\nthird\r\nbare lf\n", b"no ", b"ending"]:
    c.sendall(chunk)
    time.sleep(0.02)
c.close()
print("sent")
"#
    ));
    assert_eq!(client.line(), "sent");
    client.wait().code(0);
    server.wait().code(0).stdout(&format!(
        "{port}\n[first line]\n[second line]\n[]\n[third]\n[bare lf]\n"
    ));
}

#[test]
fn utf8_split_across_segments_decodes_whole() {
    let mut server = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            print(server.port);
            let c = server.accept();
            let text = "";
            loop {
                let part = c.recv();
                if part == "" { break; }
                text += part;
            }
            print(text);
            "#,
        )
        .spawn();
    let port = server.port();
    let mut client = python(&format!(
        r#"
import socket, time
from peer import connect
c = connect({port})
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
data = "héllo €uro".encode()
for i in range(len(data)):
    c.sendall(data[i:i+1])
    time.sleep(0.005)
c.close()
print("sent")
"#
    ));
    assert_eq!(client.line(), "sent");
    client.wait().code(0);
    server
        .wait()
        .code(0)
        .stdout(&format!("{port}\nhéllo €uro\n"));
}

/// A client that connects and resets before the script accepts it (a port scan, a health
/// check) is passed over, recorded: `accept` returns the next client. (It used to fail with
/// "transport endpoint is not connected".) A second listener orders the steps: the script
/// accepts only once the Python peer says the reset is done.
#[test]
fn a_client_that_resets_before_it_is_accepted_is_passed_over() {
    let mut server = Test::new()
        .args(&["--trace"])
        .script(
            r#"
            let server = listen("127.0.0.1:0");
            let ctl = listen("127.0.0.1:0");
            print(server.port);
            print(ctl.port);
            ctl.accept().recv_line();
            let c = server.accept();
            print(c.recv_line());
            "#,
        )
        .spawn();
    let port = server.port();
    let ctl = server.port();
    let mut client = python(&format!(
        r#"
import socket, struct
from peer import connect
gone = connect({port})
# An abortive close: RST, not FIN.
gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
gone.close()
c = connect({port})
c.sendall(b"still here\n")
connect({ctl}).sendall(b"go\n")
c.recv(1)
"#
    ));
    let out = server.wait();
    out.code(0)
        .stdout(&format!("{port}\n{ctl}\nstill here\n"))
        .stderr_has("a client reset its connection before it was accepted: passed over");
    client.wait().code(0);
}
