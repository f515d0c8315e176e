//! The socket lesson of `scenarios/lesson/`, as a learner runs it in four terminals: the
//! server; a client; the same server again, which cannot bind the port; a client against a
//! port where nothing listens. Each terminal's output is checked whole. Then `http.rhai`
//! against `python3 -m http.server`. The README's "The socket lesson" shows these outputs.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{ctrl_c, normalize, temp_dir, Proc, Test};

const WALL: Duration = Duration::from_secs(30);

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `text` with `port` written as `PORT`, and other ports after an IP as `PORT` too.
fn ports(text: &str, port: u16) -> String {
    normalize(&text.replace(&port.to_string(), "PORT"))
}

#[test]
fn the_four_terminals_of_the_socket_lesson() {
    let port = free_port();
    let var = format!("port={port}");
    let server = |extra: &[&str]| {
        let mut args = vec!["--var", &var];
        args.extend_from_slice(extra);
        Test::new()
            .args(&args)
            .file("scenarios/lesson/server.rhai")
            .wall(WALL)
    };
    let client = |var: &str| {
        Test::new()
            .args(&["--var", var])
            .file("scenarios/lesson/client.rhai")
            .wall(WALL)
            .run()
    };

    // Terminal 1: the server, until Ctrl-C.
    let mut first = server(&["--max-time", "none"]).spawn();
    assert_eq!(first.line(), format!("Listening on 127.0.0.1:{port}"));

    // Terminal 2: a client.
    let out = client(&var);
    out.code(0).stdout("Thank you for connecting\n").stderr("");
    let got = first.line();
    assert_eq!(normalize(&got), "Got connection from 127.0.0.1:PORT");

    // Terminal 3: the same server again.
    let again = server(&[]).run();
    again.code(4).stdout("");
    assert_eq!(
        ports(&again.stderr, port),
        "  × listen on `127.0.0.1:PORT` failed: the address is already in use\n\
         \x20   ╭─[scenarios/lesson/server.rhai:15:14]\n\
         \x2014 │ // listen on an IP and port at a time: start this twice and the second fails with `addr_in_use`.\n\
         \x2015 │ let server = listen(`127.0.0.1:${var(\"port\", 12345)}`);\n\
         \x20   ·              ───┬──\n\
         \x20   ·                 ╰── `addr_in_use`\n\
         \x2016 │ print(`Listening on ${server.addr}`);\n\
         \x20   ╰────\n"
    );

    // Terminal 4: a client where nothing listens.
    let nobody = free_port();
    let refused = client(&format!("port={nobody}"));
    refused.code(4).stdout("");
    assert_eq!(
        ports(&refused.stderr, nobody),
        "  × connect to `127.0.0.1:PORT` failed: connection refused\n\
         \x20   ╭─[scenarios/lesson/client.rhai:12:12]\n\
         \x2011 │ // The client names the server's address; its own port is picked by the OS.\n\
         \x2012 │ let conn = connect(`127.0.0.1:${var(\"port\", 12345)}`);\n\
         \x20   ·            ───┬───\n\
         \x20   ·               ╰── `connection_refused`\n\
         \x2013 │ print(conn.recv_line());\n\
         \x20   ╰────\n"
    );

    // Back to terminal 1: Ctrl-C stops the server at once.
    let out = ctrl_c(first);
    out.stderr("interrupted\n");
    assert_eq!(
        ports(&out.stdout, port),
        "Listening on 127.0.0.1:PORT\nGot connection from 127.0.0.1:PORT\n"
    );
}

#[test]
fn http_is_bytes_on_a_socket() {
    let dir = temp_dir("http");
    std::fs::write(dir.join("index.html"), "<h1>Hello from a socket</h1>\n").expect("write");
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
    ])
    .arg("--directory")
    .arg(&dir);
    let _web = Proc::start("python3 -m http.server", cmd, WALL);
    let var = format!("port={port}");
    // The server prints nothing on stdout until a request comes: wait for its port instead.
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "http.server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Test::new()
        .args(&["--var", &var])
        .file("scenarios/lesson/http.rhai")
        .wall(WALL)
        .run()
        .code(0)
        .stderr("")
        .stdout(
            "HTTP/1.0 200 OK\n\
             Content-type: text/html\n\
             Content-Length: 29\n\
             \n\
             <h1>Hello from a socket</h1>\n\n",
        );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn addresses_are_an_ip_and_a_port() {
    let out = Test::new().file("scenarios/lesson/addresses.rhai").run();
    out.code(0).stderr("");
    let lines: Vec<String> = out.stdout.lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    // The port printed as part of the address is the one printed alone.
    let port = lines[0].rsplit("port ").next().unwrap_or_default();
    assert_eq!(
        lines[0],
        format!("the server listens on 127.0.0.1:{port}: IP 127.0.0.1, port {port}")
    );
    let client = lines[2].rsplit(": ").next().unwrap_or_default();
    assert_eq!(
        lines[1],
        format!("the server sees a client at IP 127.0.0.1, port {client}")
    );
}
