//! The transports against independent implementations: TLS with `openssl s_server`/`s_client`
//! and Python's `ssl`, UDP with Python and `socat`, Unix sockets with Python and `socat`, IPv6
//! with Python, and name resolution. sockscript is only ever one side of a conversation.
//! Loopback only; peers bind port 0 and print their port (or a ready line) before the test goes
//! on; every process runs under a hard deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{python, python_listener, text, Dir, Proc, Test};

/// The deadline of an `openssl` or `socat` peer.
const PEER_WALL: Duration = Duration::from_secs(15);

/// A bounded `program args…` with piped stdio.
fn peer(program: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(program);
    cmd.args(args);
    Proc::start(program, cmd, PEER_WALL)
}

/// A bounded shell command (for `2>&1`); `exec` it so that the deadline kills the peer itself.
fn shell(script: &str) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    Proc::start("sh", cmd, PEER_WALL)
}

/// Run `openssl req …` (with a P-256 key, valid for a day) and return the PEM it wrote.
fn openssl_req(cert: &Path, key: &Path, extra: &[&str]) -> String {
    #[rustfmt::skip]
    let mut args = vec![
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "1", "-keyout", text(key), "-out", text(cert),
    ];
    args.extend_from_slice(extra);
    peer("openssl", &args).wait().code(0);
    let pem = std::fs::read_to_string(cert)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", cert.display()));
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    pem
}

/// A certificate and its key on disk, and the PEM a client trusts to verify it.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
    trust: String,
}

/// The certificate `openssl req -x509` makes by default: self-signed for `localhost` and
/// 127.0.0.1, and marked as a CA (`basicConstraints=critical,CA:TRUE`), with subject `/CN=cn`.
fn self_signed_ca(dir: &Dir, name: &str, cn: &str) -> Cert {
    let cert = dir.join(&format!("{name}-cert.pem"));
    let key = dir.join(&format!("{name}-key.pem"));
    #[rustfmt::skip]
    let trust = openssl_req(&cert, &key, &[
        "-subj", &format!("/CN={cn}"), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]);
    Cert { cert, key, trust }
}

/// A server certificate for `localhost` and 127.0.0.1 signed by a CA of its own (made by
/// [`self_signed_ca`], with a name of its own); clients trust the CA.
fn ca_signed(dir: &Dir, name: &str) -> Cert {
    let ca = self_signed_ca(
        dir,
        &format!("{name}-ca"),
        &format!("sockscript test CA {name}"),
    );
    let cert = dir.join(&format!("{name}-cert.pem"));
    let key = dir.join(&format!("{name}-key.pem"));
    #[rustfmt::skip]
    openssl_req(&cert, &key, &[
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-CA", text(&ca.cert), "-CAkey", text(&ca.key),
    ]);
    Cert {
        cert,
        key,
        trust: ca.trust,
    }
}

/// A self-signed server certificate that is not a CA (`CA:FALSE`): it is its own trust anchor.
fn self_signed_leaf(dir: &Dir, name: &str) -> Cert {
    let cert = dir.join(&format!("{name}-cert.pem"));
    let key = dir.join(&format!("{name}-key.pem"));
    #[rustfmt::skip]
    let trust = openssl_req(&cert, &key, &[
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-addext", "basicConstraints=critical,CA:FALSE",
    ]);
    Cert { cert, key, trust }
}

/// Lines of `proc`'s stdout up to the first one that contains `needle`, which is returned.
#[track_caller]
fn line_with(proc: &mut Proc, needle: &str) -> String {
    loop {
        let line = proc.line();
        if line.contains(needle) {
            return line;
        }
    }
}

/// The port at the end of a line such as `ACCEPT 127.0.0.1:41699`.
#[track_caller]
fn trailing_port(line: &str) -> u16 {
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port at the end of {line:?}"))
}

/// A scenario printed its port, then a PEM certificate: read both.
#[track_caller]
pub(crate) fn port_and_pem(proc: &mut Proc) -> (u16, String) {
    let port = proc.port();
    let mut pem = String::new();
    loop {
        let line = proc.line();
        pem.push_str(&line);
        pem.push('\n');
        if line == "-----END CERTIFICATE-----" {
            break;
        }
    }
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    (port, pem)
}

// ---------------------------------------------------------------------------------------------
// TLS

/// sockscript's client against `openssl s_server -rev` (which answers each line reversed),
/// serving `cert`, which the scenario trusts with `#{tls: #{ca: …}}`.
fn client_against_openssl_server(cert: &Cert, extra: &[&str], version: &str) {
    let Cert { cert, key, trust } = cert;
    let mut args = vec![
        "s_server",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        text(cert),
        "-key",
        text(key),
        "-rev",
        "-naccept",
        "1",
    ];
    args.extend_from_slice(extra);
    let mut server = peer("openssl", &args);
    let port = trailing_port(&line_with(&mut server, "ACCEPT"));
    // The PEM goes in as one argv element, newlines and all.
    let out = Test::new()
        .args(&[
            "--var",
            &format!("port={port}"),
            "--var",
            &format!("ca={trust}"),
        ])
        .script(
            r#"
            assert(ca.contains("\n"), "--var kept the PEM's newlines");
            let conn = connect(`localhost:${port}`, #{tls: #{ca: ca}});
            conn.send_line("hello openssl");
            assert_eq(conn.recv_line(), "lssnepo olleh");
            assert_eq(conn.tls.alpn, ());
            print(conn.tls.version);
            conn.close();
            "#,
        )
        .run();
    out.code(0).stdout(&format!("{version}\n"));
    server.wait().code(0);
}

#[test]
fn tls_client_talks_to_openssl_s_server() {
    let dir = Dir::new("tls-s-server");
    let cert = ca_signed(&dir, "server");
    client_against_openssl_server(&cert, &[], "TLSv1_3");
}

#[test]
fn tls_client_talks_to_openssl_s_server_over_tls_1_2() {
    let dir = Dir::new("tls-s-server-12");
    let cert = ca_signed(&dir, "server");
    client_against_openssl_server(&cert, &["-tls1_2"], "TLSv1_2");
}

#[test]
fn a_self_signed_leaf_certificate_is_its_own_ca() {
    let dir = Dir::new("tls-leaf");
    let cert = self_signed_leaf(&dir, "server");
    client_against_openssl_server(&cert, &[], "TLSv1_3");
}

/// `openssl req -x509` marks the certificate as a CA (`basicConstraints=critical,CA:TRUE`):
/// Python's `ssl`, `openssl s_client` and curl accept it as the server's own certificate when
/// told to trust it; rustls/webpki refuses a CA as an end entity.
#[test]
fn the_default_openssl_req_certificate_is_trusted_as_its_own_ca() {
    let dir = Dir::new("tls-req-default");
    let cert = self_signed_ca(&dir, "server", "localhost");
    client_against_openssl_server(&cert, &[], "TLSv1_3");
}

#[test]
fn openssl_s_client_verifies_a_self_signed_listener() {
    let dir = Dir::new("tls-s-client");
    let mut server = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed"});
            print(server.port);
            print(server.cert_pem);
            let c = server.accept();
            c.send_line("Hello from sockscript over TLS");
            c.close();
            print(`sni=${c.tls.sni} ${c.tls.version}`);
            "#,
        )
        .spawn();
    let (port, pem) = port_and_pem(&mut server);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pem).unwrap_or_else(|e| panic!("cannot write the CA file: {e}"));
    // -ign_eof: run until the server closes, whatever happens to stdin.
    #[rustfmt::skip]
    let mut client = peer("openssl", &[
        "s_client", "-connect", &format!("127.0.0.1:{port}"), "-CAfile", text(&ca),
        "-servername", "localhost", "-verify_hostname", "localhost", "-verify_return_error",
        "-ign_eof",
    ]);
    line_with(&mut client, "Hello from sockscript over TLS");
    let out = client.wait();
    out.code(0).stdout_has("Verify return code: 0 (ok)");
    assert!(
        out.stdout.contains("Hello from sockscript over TLS\n"),
        "{}",
        out.stdout
    );
    server.wait().code(0).stdout_has("sni=localhost TLSv1_3\n");
}

#[test]
fn python_ssl_server_with_alpn_is_read_byte_exact() {
    let dir = Dir::new("tls-py-server");
    let Cert { cert, key, trust } = ca_signed(&dir, "server");
    let mut server = python(&format!(
        r#"
from peer import listen, tls_server_context
ctx = tls_server_context("{cert}", "{key}", alpn=["h2", "http/1.1"])
s = listen()
c, _ = s.accept()
t = ctx.wrap_socket(c, server_side=True)
t.sendall(bytes(range(256)) + b"alpn=" + t.selected_alpn_protocol().encode() + b"\r\n")
print(t.version(), t.selected_alpn_protocol())
t.close()
s.close()
"#,
        cert = text(&cert),
        key = text(&key),
    ));
    let port = server.port();
    Test::new()
        .args(&[
            "--var",
            &format!("port={port}"),
            "--var",
            &format!("ca={trust}"),
        ])
        .script(
            r#"
            let conn = connect(`127.0.0.1:${port}`, #{tls: #{ca: ca, alpn: ["http/1.1"]}});
            assert_eq(conn.tls.alpn, "http/1.1");
            let b = conn.recv_exact_bytes(256);
            for i in 0..256 { assert_eq(b[i], i, `byte ${i}`); }
            assert_eq(conn.recv_line(), "alpn=http/1.1");
            assert_eq(conn.recv_all_bytes().len(), 0);
            print(`${conn.tls.version} ${conn.tls.alpn}`);
            "#,
        )
        .run()
        .code(0)
        .stdout("TLSv1_3 http/1.1\n");
    assert_eq!(server.line(), "TLSv1.3 http/1.1");
    server.wait().code(0);
}

#[test]
fn python_ssl_client_verifies_a_self_signed_listener() {
    let mut server = Test::new()
        .script(
            r#"
            let server = listen("127.0.0.1:0", #{tls: "self-signed"});
            print(server.port);
            print(server.cert_pem);
            let greeting = "Greetings, ".to_blob() + hex("00 ff 0d 0a 7f 80") + "é\n".to_blob();
            for n in 0..3 {
                let c = server.accept();
                c.send(greeting);
                c.close();
                print(`${c.tls.version} sni=${c.tls.sni}`);
            }
            "#,
        )
        .spawn();
    let (port, pem) = port_and_pem(&mut server);
    let mut client = python(&format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context(cadata="""{pem}""")
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
old = ssl.create_default_context(cadata="""{pem}""")
old.maximum_version = ssl.TLSVersion.TLSv1_2
expected = b"Greetings, \x00\xff\r\n\x7f\x80" + "é\n".encode()
for name, c in [("localhost", ctx), ("127.0.0.1", ctx), ("localhost", old)]:
    raw = socket.create_connection(("127.0.0.1", {port}), timeout=10)
    t = c.wrap_socket(raw, server_hostname=name)
    data = b""
    while True:
        chunk = t.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data == expected, repr(data)
    print(name, t.version(), len(data))
    t.close()
"#
    ));
    assert_eq!(client.line(), "localhost TLSv1.3 20");
    assert_eq!(client.line(), "127.0.0.1 TLSv1.3 20");
    assert_eq!(client.line(), "localhost TLSv1.2 20");
    client.wait().code(0);
    // No SNI for an IP address.
    server
        .wait()
        .code(0)
        .stdout_has("TLSv1_3 sni=localhost\nTLSv1_3 sni=\nTLSv1_2 sni=localhost\n");
}

/// A plain-text service where TLS was expected (an SMTP greeting, an HTTP error page): the
/// handshake fails with `tls`, saying the peer does not speak TLS.
#[test]
fn a_peer_that_answers_in_plain_text_does_not_speak_tls() {
    let mut server = python(
        r#"
from peer import listen
s = listen(backlog=2)
for greeting in [b"220 smtp.example ESMTP ready\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n"]:
    c, _ = s.accept()
    c.sendall(greeting)
    c.recv(4096)
    c.close()
"#,
    );
    let port = server.port();
    let out = Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            for i in 0..2 {
                let e = assert_err(|| connect(`127.0.0.1:${port}`, #{tls: true}), "tls");
                print(e.message);
            }
            "#,
        )
        .run();
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    for line in lines {
        assert!(line.contains("the peer does not speak TLS"), "{line}");
    }
    server.wait().code(0);
}

#[test]
fn a_wrong_ca_the_system_roots_and_a_wrong_name_fail_with_tls_and_insecure_succeeds() {
    let dir = Dir::new("tls-wrong-ca");
    let Cert { cert, key, trust } = ca_signed(&dir, "server");
    let other = ca_signed(&dir, "other").trust;
    assert_ne!(trust, other);
    let mut server = python(&format!(
        r#"
import ssl
from peer import listen, tls_server_context
ctx = tls_server_context("{cert}", "{key}")
s = listen(backlog=4)
for n in range(4):
    c, _ = s.accept()
    c.settimeout(10)
    try:
        t = ctx.wrap_socket(c, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print("refused")
        c.close()
        continue
    t.sendall(b"welcome\n")
    print("served")
    t.close()
"#,
        cert = text(&cert),
        key = text(&key),
    ));
    let port = server.port();
    let out = Test::new()
        .args(&[
            "--var",
            &format!("port={port}"),
            "--var",
            &format!("ca={trust}"),
            "--var",
            &format!("other={other}"),
        ])
        .script(
            r#"
            let addr = `127.0.0.1:${port}`;
            let e = assert_err(|| connect(addr, #{tls: #{ca: other}}), "tls");
            print(e.message);
            let e = assert_err(|| connect(addr, #{tls: true}), "tls");
            print(e.message);
            let e = assert_err(|| connect(addr, #{tls: #{ca: ca, sni: "example.com"}}), "tls");
            print(e.message);
            let conn = connect(addr, #{tls: #{insecure: true}});
            assert_eq(conn.recv_line(), "welcome");
            print("insecure ok");
            "#,
        )
        .run();
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].contains("unknown issuer"), "{}", lines[0]);
    assert!(lines[1].contains("unknown issuer"), "{}", lines[1]);
    // The name asked for, and the names the certificate holds.
    assert!(
        lines[2].contains("not valid for `example.com`: it names `localhost`"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "insecure ok");
    for expected in ["refused", "refused", "refused", "served"] {
        assert_eq!(server.line(), expected);
    }
    server.wait().code(0);
}

// ---------------------------------------------------------------------------------------------
// UDP

#[test]
fn udp_datagram_boundaries_survive_a_python_echo_server() {
    let mut server = python(
        r#"
from peer import udp
s = udp()
sizes = []
for n in range(3):
    data, peer = s.recvfrom(65536)
    sizes.append(len(data))
    s.sendto(data, peer)
big = bytes((i * 7) % 256 for i in range(1200))
print(sizes, data == big)
"#,
    );
    let port = server.port();
    Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let u = udp_connect(`127.0.0.1:${port}`);
            u.timeout = "3s";
            let big = blob();
            for i in 0..1200 { big.push((i * 7) % 256); }
            let sent = [blob(), "hello".to_blob(), big];
            for d in sent { u.send(d); }
            for d in sent {
                let got = u.recv_bytes();
                assert_eq(got.len(), d.len());
                assert_eq(got, d);
            }
            print("ok");
            "#,
        )
        .run()
        .code(0)
        .stdout("ok\n");
    assert_eq!(server.line(), "[0, 5, 1200] True");
    server.wait().code(0);
}

#[test]
fn udp_server_answers_a_python_client_at_its_address() {
    let mut server = Test::new()
        .script(
            r#"
            let s = udp("127.0.0.1:0");
            s.timeout = "10s";
            print(s.port);
            let d = s.recv_from_bytes();
            print(`from ${d.from}: ${d.data.to_hex()}`);
            s.send_to("pong:".to_blob() + d.data, d.from);
            "#,
        )
        .spawn();
    let port = server.port();
    let mut client = python(&format!(
        r#"
from peer import udp
c = udp()
c.sendto(b"\x00\x01ping\xff", ("127.0.0.1", {port}))
data, peer = c.recvfrom(65536)
assert peer == ("127.0.0.1", {port}), peer
assert data == b"pong:\x00\x01ping\xff", repr(data)
print("ok")
"#
    ));
    let client_port = client.port();
    assert_eq!(client.line(), "ok");
    client.wait().code(0);
    server.wait().code(0).stdout(&format!(
        "{port}\nfrom 127.0.0.1:{client_port}: 000170696e67ff\n"
    ));
}

#[test]
fn udp_client_talks_to_socat() {
    // socat logs the port it bound (on stderr, hence 2>&1); an empty datagram is EOF to it, and
    // it exits when `cat` has echoed everything.
    let mut socat = shell("exec socat -d -d -T5 UDP-LISTEN:0,bind=127.0.0.1 EXEC:cat 2>&1");
    let port = trailing_port(&line_with(&mut socat, "listening on"));
    Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let u = udp_connect(`127.0.0.1:${port}`);
            u.timeout = "3s";
            for w in ["one", "two words", "x"] {
                u.send(w);
                assert_eq(u.recv(), w);
            }
            let big = blob();
            for i in 0..1200 { big.push((i * 13) % 256); }
            u.send(big);
            assert_eq(u.recv_bytes(), big);
            u.send(blob());
            print("ok");
            "#,
        )
        .run()
        .code(0)
        .stdout("ok\n");
    socat.wait().code(0);
}

#[test]
fn udp_to_a_closed_port_is_connection_refused() {
    let port = {
        let spare = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a UDP socket: {e}"));
        spare.local_addr().map(|a| a.port()).unwrap_or_default()
    };
    Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let u = udp_connect(`127.0.0.1:${port}`);
            u.timeout = "2s";
            let e = assert_err(|| { u.send("anyone?"); u.recv() }, "connection_refused");
            print(e.kind);
            "#,
        )
        .run()
        .code(0)
        .stdout("connection_refused\n")
        .faster_than(Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------------
// Unix sockets

#[test]
fn unix_client_talks_to_a_python_echo_server() {
    let dir = Dir::new("unix-py");
    let path = dir.join("echo.sock");
    let mut server = python(&format!(
        r#"
import os, socket
from peer import echo
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.bind("{path}")
s.listen(1)
print("ready")
c, _ = s.accept()
total = echo(c, 4096)
c.close()
s.close()
os.unlink("{path}")
print(total)
"#,
        path = text(&path)
    ));
    assert_eq!(server.line(), "ready");
    Test::new()
        .args(&["--var", &format!("path={}", text(&path))])
        .script(
            r#"
            let conn = connect(`unix:${path}`);
            for w in ["hello", "unix", "sockets"] {
                conn.send_line(w);
                assert_eq(conn.recv_line(), w);
            }
            let b = blob();
            for i in 0..256 { b.push(255 - i); }
            conn.send(b);
            assert_eq(conn.recv_exact_bytes(256), b);
            conn.shutdown();
            assert_eq(conn.recv_all(), "");
            print(conn.peer);
            "#,
        )
        .run()
        .code(0)
        .stdout(&format!("unix:{}\n", text(&path)));
    assert_eq!(server.line(), "275");
    server.wait().code(0);
}

#[test]
fn socat_reads_a_unix_listener_which_removes_its_file_at_the_end() {
    let dir = Dir::new("unix-socat");
    let path = dir.join("greet.sock");
    let mut server = Test::new()
        .args(&["--var", &format!("path={}", text(&path))])
        .script(
            r#"
            let server = listen(`unix:${path}`);
            print("ready");
            let c = server.accept();
            c.send("hello over unix\n");
            c.close();
            "#,
        )
        .spawn();
    assert_eq!(server.line(), "ready");
    assert!(path.exists());
    let mut client = peer(
        "socat",
        &["-u", &format!("UNIX-CONNECT:{}", text(&path)), "STDOUT"],
    );
    client.wait().code(0).stdout("hello over unix\n");
    server.wait().code(0);
    assert!(!path.exists(), "{} is left behind", path.display());
}

#[test]
fn a_stale_unix_socket_file_is_addr_in_use_until_unlinked() {
    let dir = Dir::new("unix-stale");
    let path = dir.join("stale.sock");
    // Python binds and exits without removing the file.
    let mut gone = python(&format!(
        r#"
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("{path}")
s.listen(1)
print("bound")
"#,
        path = text(&path)
    ));
    assert_eq!(gone.line(), "bound");
    gone.wait().code(0);
    assert!(path.exists());
    let mut server = Test::new()
        .args(&["--var", &format!("path={}", text(&path))])
        .script(
            r#"
            let e = assert_err(|| listen(`unix:${path}`), "addr_in_use");
            print(e.message);
            let server = listen(`unix:${path}`, #{unlink: true});
            print("ready");
            server.accept().send_line("fresh");
            "#,
        )
        .spawn();
    let message = server.line();
    assert!(message.contains("stale"), "{message}");
    assert!(message.contains("unlink: true"), "{message}");
    assert_eq!(server.line(), "ready");
    let mut client = python(&format!(
        r#"
import socket
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.settimeout(10)
c.connect("{path}")
print(c.makefile("rb").readline())
"#,
        path = text(&path)
    ));
    assert_eq!(client.line(), r"b'fresh\n'");
    client.wait().code(0);
    server.wait().code(0);
    assert!(!path.exists(), "{} is left behind", path.display());
}

/// A Python server listening on a Unix socket at `path` until its stdin closes; it prints
/// `bound`, then `served` for each connection it could greet.
fn python_unix_holder(path: &Path) -> Proc {
    let mut holder = python(&format!(
        r#"
import socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("{path}")
s.listen(8)
def serve():
    while True:
        c, _ = s.accept()
        try:
            c.sendall(b"python holder\n")
            print("served")
        except OSError:
            pass  # sockscript's probe of whether a server is listening: closed at once
        c.close()
threading.Thread(target=serve, daemon=True).start()
print("bound")
sys.stdin.read()
"#,
        path = text(path)
    ));
    assert_eq!(holder.line(), "bound");
    holder
}

#[test]
fn a_live_unix_server_is_addr_in_use_and_not_called_stale() {
    let dir = Dir::new("unix-live");
    let path = dir.join("live.sock");
    let mut holder = python_unix_holder(&path);
    let out = Test::new()
        .args(&["--var", &format!("path={}", text(&path))])
        .script(
            r#"
            let e = assert_err(|| listen(`unix:${path}`), "addr_in_use");
            print(e.message);
            assert_eq(connect(`unix:${path}`).recv_line(), "python holder");
            "#,
        )
        .run();
    out.code(0)
        .stdout_has("a server is listening on this socket file");
    assert!(!out.stdout.contains("stale"), "{}", out.stdout);
    assert_eq!(line_with(&mut holder, "served"), "served");
    assert!(path.exists());
    holder.close_stdin();
    holder.wait().code(0);
}

/// README: `unlink` removes "a stale socket file"; a Unix socket file is "never silently
/// replaced". With a live server there, `unlink: true` is still `addr_in_use`, and the server
/// keeps its path.
#[test]
fn unlink_leaves_a_live_servers_socket_file_alone() {
    let dir = Dir::new("unix-live-unlink");
    let path = dir.join("live.sock");
    let mut holder = python_unix_holder(&path);
    Test::new()
        .args(&["--var", &format!("path={}", text(&path))])
        .script(
            r#"
            let e = assert_err(|| listen(`unix:${path}`, #{unlink: true}), "addr_in_use");
            print(e.message);
            "#,
        )
        .run()
        .code(0)
        .stdout_has("a server is listening on this socket file");
    // The Python server still owns the path.
    let mut client = peer(
        "socat",
        &["-u", &format!("UNIX-CONNECT:{}", text(&path)), "STDOUT"],
    );
    client.wait().code(0).stdout("python holder\n");
    assert_eq!(line_with(&mut holder, "served"), "served");
    holder.close_stdin();
    holder.wait().code(0);
}

// ---------------------------------------------------------------------------------------------
// IPv6 and names

fn has_ipv6_loopback() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            println!("note: no IPv6 loopback here ({e}); skipping");
            false
        }
    }
}

#[test]
fn ipv6_client_reads_a_python_server_byte_exact() {
    if !has_ipv6_loopback() {
        return;
    }
    let mut server = python(
        r#"
from peer import listen
s = listen("::1")
c, peer = s.accept()
c.sendall(bytes(range(256)) + b"over v6")
c.close()
print(peer[0])
"#,
    );
    let port = server.port();
    Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let conn = connect(`[::1]:${port}`);
            let b = conn.recv_exact_bytes(256);
            for i in 0..256 { assert_eq(b[i], i, `byte ${i}`); }
            assert_eq(conn.recv_all(), "over v6");
            print(`${conn.peer_ip} ${conn.peer} ${conn.local_ip}`);
            "#,
        )
        .run()
        .code(0)
        .stdout(&format!("::1 [::1]:{port} ::1\n"));
    assert_eq!(server.line(), "::1");
    server.wait().code(0);
}

#[test]
fn ipv6_listener_greets_a_python_client() {
    if !has_ipv6_loopback() {
        return;
    }
    let mut server = Test::new()
        .script(
            r#"
            let server = listen("[::1]:0");
            print(server.port);
            let c = server.accept();
            print(`${c.peer_ip} ${c.peer}`);
            c.send("hello v6\n");
            c.close();
            "#,
        )
        .spawn();
    let port = server.port();
    let mut client = python(&format!(
        r#"
from peer import connect, read_to_end
c = connect({port}, "::1", announce=True)
print(repr(read_to_end(c)))
"#
    ));
    let client_port = client.port();
    assert_eq!(client.line(), r"b'hello v6\n'");
    client.wait().code(0);
    server
        .wait()
        .code(0)
        .stdout(&format!("{port}\n::1 [::1]:{client_port}\n"));
}

#[test]
fn localhost_resolves_to_a_python_server() {
    let mut server = python_listener(
        r#"
c, _ = s.accept()
c.sendall(b"by name\n")
c.close()
"#,
    );
    let port = server.port();
    Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(
            r#"
            let conn = connect(`localhost:${port}`);
            assert_eq(conn.recv_line(), "by name");
            print(conn.peer);
            "#,
        )
        .run()
        .code(0)
        .stdout(&format!("127.0.0.1:{port}\n"));
    server.wait().code(0);
}

#[test]
fn an_unresolvable_name_is_dns_within_its_timeout() {
    let out = Test::new()
        .script(
            r#"
            let e = assert_err(|| connect("no-such-host.invalid:80", #{timeout: "5s"}), "dns");
            print(e.message);
            "#,
        )
        .run();
    out.code(0)
        .stdout_has("no-such-host.invalid")
        .faster_than(Duration::from_secs(6));
}
