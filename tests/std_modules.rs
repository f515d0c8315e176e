//! The protocol modules shipped in the binary (`std/resp`, `std/http`, `std/lines`) against a
//! Python peer that sends tricky replies a few bytes at a time (`peers/scripted.py`): nested
//! arrays, nil, error replies, bulk strings holding CRLF and bytes that are no UTF-8, chunked
//! bodies with extensions and trailers, keep-alive, FTP-style multi-line replies, and replies
//! that break their protocol. The peer checks the requests byte for byte. (The same modules
//! against real servers: the smoke suite in `tests/services/`, run by `scripts/services`.)

use crate::harness::{python, Proc, Test};

/// A `scripted.py` peer serving `connections` (a Python list of lists of steps).
fn scripted(connections: &str) -> Proc {
    python(&format!(
        "from scripted import serve\nserve({connections})\n"
    ))
}

/// Run `script` with `port` set to the peer's port, expect exit 0, and let the peer finish.
fn passes_against(mut peer: Proc, script: &str) {
    let port = peer.port();
    Test::new()
        .args(&["--var", &format!("port={port}")])
        .script(script)
        .run()
        .code(0);
    peer.wait().code(0).stdout_has("served\n");
}

/// Each of `cases` (a Python bytes literal a peer sends on a connection of its own, and words
/// the error must say) makes `module::call(c)` raise kind `protocol` with `op` set to
/// `module::call`, starting its message with that name.
fn each_reply_breaks_the_protocol(module: &str, call: &str, cases: &[(&str, &str)]) {
    let connections: Vec<String> = cases
        .iter()
        .map(|(reply, _)| format!("[(None, {reply}, False)]"))
        .collect();
    let expected: Vec<String> = cases.iter().map(|(_, m)| format!("{m:?}")).collect();
    let peer = scripted(&format!("[{}]", connections.join(", ")));
    let script = r#"
        import "std/MODULE" as MODULE;
        for message in [EXPECTED] {
            let c = connect(`127.0.0.1:${port}`);
            let e = assert_err(|| MODULE::CALL(c), "protocol");
            assert(e.message.starts_with("MODULE::CALL: "), e.message);
            assert(e.message.contains(message), `${e.message} does not say ${message}`);
            assert_eq(e.op, "MODULE::CALL");
            assert_eq(e.addr, `127.0.0.1:${port}`);
            c.close();
        }
        "#
    .replace("MODULE", module)
    .replace("CALL", call)
    .replace("EXPECTED", &expected.join(", "));
    passes_against(peer, &script);
}

#[test]
fn resp_encodes_commands_in_bytes_and_reads_every_kind_of_reply() {
    let peer = scripted(
        r#"[[(
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\nh\xc3\xa9llo\r\n$1\r\n7\r\n$3\r\n\x00\xff\n\r\n",
        b"+OK\r\n-ERR wrong type\r\n:-42\r\n:0\r\n$-1\r\n*-1\r\n$0\r\n\r\n"
        b"$7\r\nh\xc3\xa9\r\nx\xff\r\n$7\r\nh\xc3\xa9\r\nx\xff\r\n"
        b"*3\r\n*2\r\n:1\r\n$1\r\na\r\n*0\r\n$-1\r\n+after\r\n",
        False,
    )]]"#,
    );
    passes_against(
        peer,
        r#"
        import "std/resp" as resp;
        let c = connect(`127.0.0.1:${port}`);
        let raw = blob();
        raw.push(0); raw.push(255); raw.push(10);
        c.send(resp::command(["SET", "k", "héllo", 7, raw]));
        assert_eq(resp::read(c), "OK");
        assert_eq(resp::read(c), #{error: "ERR wrong type"});
        assert_eq(resp::read(c), -42);
        assert_eq(resp::read(c), 0);
        assert_eq(resp::read(c), ());
        assert_eq(resp::read(c), ());
        assert_eq(resp::read(c), "");
        // Seven bytes: a CRLF inside, and 0xff (no UTF-8): text is lossy, a Blob exact.
        let text = resp::read(c);
        assert_eq(text, "hé\r\nx\uFFFD");
        let bytes = resp::read_bytes(c);
        let expected = "hé\r\nx".to_blob();
        expected.push(0xff);
        assert_eq(bytes, expected);
        assert_eq(resp::read(c), [[1, "a"], [], ()]);
        assert_eq(resp::read(c), "after");
        "#,
    );
}

#[test]
fn resp_replies_that_break_the_protocol_raise_kind_protocol() {
    let cases = [
        (r#"b"?what\r\n""#, "not `?what`"),
        (r#"b"\r\n""#, "an empty line"),
        (
            r#"b"$abc\r\n""#,
            "expected an integer after `$`, got `$abc`",
        ),
        (
            r#"b":12a\r\n""#,
            "expected an integer after `:`, got `:12a`",
        ),
        (
            r#"b":99999999999999999999\r\n""#,
            "expected an integer after `:`",
        ),
        (r#"b"*-2\r\n""#, "a length is -1 (nil) or more, not -2"),
        (
            r#"b"$3\r\nabcd\r\n""#,
            "a bulk string of 3 bytes is not followed by CRLF but by `d\r`",
        ),
        (
            r#"b"*1\r\n" * 40 + b":1\r\n""#,
            "arrays nested more than 32 deep",
        ),
    ];
    each_reply_breaks_the_protocol("resp", "read", &cases);
}

#[test]
fn resp_command_refuses_what_it_cannot_encode() {
    Test::new()
        .script(
            r#"
            import "std/resp" as resp;
            let e = assert_err(|| resp::command("GET k"), "invalid_argument");
            assert_eq(e.message, "resp::command: a command is an array like [\"GET\", \"key\"], not string");
            let e = assert_err(|| resp::command(["GET", #{}]), "invalid_argument");
            assert_eq(e.message, "resp::command: an argument is a string, an integer or a Blob, not map");
            // Bytes, not characters: `é` is two.
            assert_eq(resp::command(["é"]).len, 12);
            "#,
        )
        .run()
        .code(0);
}

#[test]
fn http_keeps_alive_and_reads_bodies_by_length_chunks_and_close() {
    let peer = scripted(
        r#"[[
        (b"POST /items?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Test: \xc3\xbc\r\nContent-Length: 6\r\n\r\nh\xc3\xa9llo",
         b"HTTP/1.1 201 Created\r\ncontent-length: 7\r\nSet-Cookie: a=1\r\nSet-Cookie:b=2  \r\n\r\nh\xc3\xa9llo!", False),
        (b"GET /chunked HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"5;name=value\r\nh\xc3\xa9ll\r\n3\r\no\r\n\r\nA ; x=\"y\"\r\n0123456789\r\n0\r\nX-Trailer: done\r\n\r\n", False),
        (b"GET /binary HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
         b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\x00\xff\r", False),
        (b"DELETE /empty HTTP/1.1\r\nhost: h\r\n\r\n",
         b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n", False),
        (b"HEAD /head HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
         b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", False),
        (b"GET /close HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
         b"HTTP/1.1 200\r\nConnection: close\r\n\r\nuntil the end", True),
    ]]"#,
    );
    passes_against(
        peer,
        r#"
        import "std/http" as http;
        let c = connect(`127.0.0.1:${port}`);
        // Content-Length counts bytes: "héllo" is 6.
        http::send(c, "POST", "/items?x=1", #{"X-Test": "ü"}, "héllo");
        let r = http::read_response(c);
        assert_eq(r.status, 201);
        assert_eq(r.reason, "Created");
        assert_eq(r.body, "héllo!");
        assert_eq(r.headers["content-length"], "7");
        assert_eq(r.headers["set-cookie"], "a=1, b=2");
        // The same connection: chunks with extensions, a CRLF inside a chunk, trailers.
        let r = http::get(c, "/chunked");
        assert_eq(r.body, "héllo\r\n0123456789");
        assert_eq(r.headers["x-trailer"], "done");
        assert_eq(r.headers["transfer-encoding"], "chunked");
        http::send(c, "GET", "/binary", #{});
        let r = http::read_response_bytes(c);
        assert_eq(r.body.len, 3);
        assert_eq([r.body[0], r.body[1], r.body[2]], [0, 255, 13]);
        // A `Host` of the script's own, in the spelling it gave.
        http::send(c, "DELETE", "/empty", #{host: "h"});
        let r = http::read_response(c);
        assert_eq([r.status, r.reason, r.body, r.headers], [204, "No Content", "", #{x: "y"}]);
        http::send(c, "HEAD", "/head", #{});
        let head = http::read_head(c);
        assert_eq(head.headers["content-length"], "100");
        // No length: the body runs until the server closes. No reason phrase is "".
        let r = http::get(c, "/close");
        assert_eq([r.status, r.reason, r.body], [200, "", "until the end"]);
        "#,
    );
}

#[test]
fn http_responses_that_break_the_protocol_raise_kind_protocol() {
    let cases = [
        (
            r#"b"SSH-2.0-OpenSSH_9.2\r\n""#,
            "a response starts with a status line like `HTTP/1.1 200 OK`, not `SSH-2.0-OpenSSH_9.2`",
        ),
        (r#"b"HTTP/1.1 2000 OK\r\n""#, "not `HTTP/1.1 2000 OK`"),
        (
            r#"b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n""#,
            "a header line is `Name: value`, not `No colon here`",
        ),
        (
            r#"b"HTTP/1.1 200 OK\r\nA: b\r\n  folded\r\n\r\n""#,
            "not `  folded`",
        ),
        (
            r#"b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n""#,
            "Content-Length is a number of bytes, not `-5`",
        ),
        (
            r#"b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n""#,
            "a chunk starts with its size in hex, not `zz`",
        ),
        (
            r#"b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n""#,
            "a chunk of 3 bytes is not followed by CRLF but by `X\r`",
        ),
    ];
    each_reply_breaks_the_protocol("http", "read_response", &cases);
}

#[test]
fn http_requests_refuse_line_breaks_that_would_inject_headers() {
    Test::new()
        .script(
            r#"
            import "std/http" as http;
            let e = assert_err(|| http::request("GET", "/", #{"X": "a\r\nEvil: 1"}), "invalid_argument");
            assert_eq(e.message, "http::request: the value of header `X` holds a line break");
            assert_err(|| http::request("GET", "/ HTTP/1.0\r\n", #{}), "invalid_argument");
            assert_err(|| http::request("GET", "/", #{"X Y": "1"}), "invalid_argument");
            assert_err(|| http::request("GET", "/", #{}, 5), "invalid_argument");
            let r = http::request("PUT", "/k", #{Host: "h"}).as_string();
            assert_eq(r, "PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
            "#,
        )
        .run()
        .code(0);
}

#[test]
fn lines_reads_smtp_and_ftp_multi_line_replies() {
    let peer = scripted(
        r#"[
        [(None, b"220-smtp.example ESMTP\r\n220-second line\r\n220 ready\r\n", False),
         (b"EHLO x\r\n", b"250-one\r\n250-SIZE 1000\r\n250 PIPELINING\r\n", False),
         (b"NOOP\r\n", b"250\r\n", False),
         (None, b"123-First line\r\nSecond line\r\n  234 A line beginning with numbers\r\n123 The last line\n", False)],
        [(None, b"hello\r\n", False)],
        [(None, b"25 short\r\n", False)],
    ]"#,
    );
    passes_against(
        peer,
        r#"
        import "std/lines" as lines;
        let c = connect(`127.0.0.1:${port}`);
        assert_eq(lines::read(c), #{code: 220, lines: ["smtp.example ESMTP", "second line", "ready"]});
        assert_eq(lines::query(c, "EHLO x"), #{code: 250, lines: ["one", "SIZE 1000", "PIPELINING"]});
        assert_eq(lines::query(c, "NOOP"), #{code: 250, lines: [""]});
        // FTP: lines inside a reply need not start with the code.
        assert_eq(lines::read(c), #{code: 123, lines: [
            "First line", "Second line", "  234 A line beginning with numbers", "The last line"]});
        c.close();
        for bad in ["hello", "25 short"] {
            let c = connect(`127.0.0.1:${port}`);
            let e = assert_err(|| lines::read(c), "protocol");
            assert_eq(e.message, `lines::read: a reply starts with a three-digit code like ``250 `` or ``250-``, not ``${bad}```);
            c.close();
        }
        "#,
    );
}

/// A spawned task sees the modules imported where it was spawned; `within` does too.
#[test]
fn tasks_and_within_use_the_modules_of_the_scenario() {
    Test::new()
        .script(
            r#"
            import "std/resp" as resp;
            let l = listen("127.0.0.1:0");
            let server = spawn(|| {
                let s = l.accept();
                let got = resp::read(s);
                s.send("+DONE\r\n");
                got
            });
            let c = connect(l.addr);
            let reply = within("2s", || resp::query(c, ["SET", "k", "v"]));
            assert_eq(reply, "DONE");
            assert_eq(server.join(), ["SET", "k", "v"]);
            "#,
        )
        .run()
        .code(0);
}
