//! The raw tokio baseline of `bench/run`: each role of the benchmark workloads, written directly
//! against tokio, with nothing between the program and its sockets.
//!
//! ```text
//! raw <role> [--port N] [--n N] [--size N] [--bytes N] [--chunk N]
//! ```
//!
//! Servers bind `127.0.0.1:0`, print their port on stdout (the readiness signal) and serve
//! until their stdin closes (or they are killed). Clients connect to `127.0.0.1:<port>`, do their
//! work, check it, and exit 0; anything unexpected is a message on stderr and exit code 1.
//!
//! | role | does |
//! |---|---|
//! | `echo-server` | echoes every byte back on each connection |
//! | `sink-server` | reads each connection to EOF, then answers `"<bytes read>\n"` and closes |
//! | `source-server --bytes N --chunk C` | sends N bytes in C-byte writes on each connection, then closes |
//! | `greeting-server` | sends the 24-byte greeting on each connection, then waits for the client to close |
//! | `pingpong --port P --n N --size S` | N round trips of an S-byte message against an echo server |
//! | `pingpong-local --n N --size S` | the same with both ends in this process |
//! | `rtt --port P --n N --size S` | N round trips as `pingpong`, each timed; prints the median in ns |
//! | `bulk-send --port P --bytes N --chunk C` | N bytes to a sink in C-byte writes; checks the sink's count |
//! | `bulk-recv --port P --bytes N --chunk C` | N bytes from a source in C-byte `read_exact`s; then EOF |
//! | `connrate --port P --n N` | N sequential connect + greeting + close |
//! | `fanout --port P --n N` | N spawned tasks, each connect + greeting + close |
//! | `hold --port P --n N` | N connections, each greeted, all held open at once |
//! | `ws-echo-server` | a WebSocket server (tokio-tungstenite) echoing every text and binary message |
//! | `ws-pingpong --port P --n N --size S` | N round trips of an S-byte text message against a WebSocket echo server |
//! | `trivial` | start the runtime and exit (the start-up floor) |

use std::collections::HashMap;
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// What the greeting server says; the same text as `scenarios/greeting.rhai`.
const GREETING: &[u8] = b"Thank you for connecting";
/// Backlog of the servers' listen queue: fan-out connects a thousand clients at once.
const BACKLOG: u32 = 4096;

type Result<T = ()> = std::result::Result<T, String>;

struct Args {
    values: HashMap<String, u64>,
}

impl Args {
    fn parse(rest: &[String]) -> Result<Args> {
        let mut values = HashMap::new();
        let mut it = rest.iter();
        while let Some(key) = it.next() {
            let name = key
                .strip_prefix("--")
                .ok_or_else(|| format!("expected an option `--name value`, got `{key}`"))?;
            let value = it.next().ok_or_else(|| format!("`{key}` needs a value"))?;
            let value = value
                .parse()
                .map_err(|_| format!("`{key}`: `{value}` is not a non-negative integer"))?;
            values.insert(name.to_string(), value);
        }
        Ok(Args { values })
    }

    fn get(&self, name: &str) -> Result<u64> {
        self.values
            .get(name)
            .copied()
            .ok_or_else(|| format!("missing `--{name} N`"))
    }

    fn usize(&self, name: &str) -> Result<usize> {
        usize::try_from(self.get(name)?).map_err(|_| format!("`--{name}` is too large"))
    }

    fn port(&self) -> Result<u16> {
        u16::try_from(self.get("port")?).map_err(|_| "`--port` is not a port".to_string())
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(role) = argv.first().cloned() else {
        eprintln!("usage: raw <role> [--name value]...  (see bench/raw/src/main.rs)");
        return ExitCode::from(2);
    };
    let args = match Args::parse(&argv[1..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("raw {role}: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raw {role}: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(&role, &args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raw {role}: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(role: &str, args: &Args) -> Result {
    match role {
        "echo-server" => serve(Server::Echo).await,
        "sink-server" => serve(Server::Sink).await,
        "source-server" => {
            serve(Server::Source {
                bytes: args.get("bytes")?,
                chunk: args.usize("chunk")?,
            })
            .await
        }
        "greeting-server" => serve(Server::Greeting).await,
        "pingpong" => pingpong(args.port()?, args.get("n")?, args.usize("size")?).await,
        "rtt" => rtt(args.port()?, args.get("n")?, args.usize("size")?).await,
        "pingpong-local" => pingpong_local(args.get("n")?, args.usize("size")?).await,
        "bulk-send" => bulk_send(args.port()?, args.get("bytes")?, args.usize("chunk")?).await,
        "bulk-recv" => bulk_recv(args.port()?, args.get("bytes")?, args.usize("chunk")?).await,
        "connrate" => connrate(args.port()?, args.get("n")?).await,
        "fanout" => fanout(args.port()?, args.get("n")?).await,
        "hold" => hold(args.port()?, args.usize("n")?).await,
        "ws-echo-server" => serve(Server::WsEcho).await,
        "ws-pingpong" => ws_pingpong(args.port()?, args.get("n")?, args.usize("size")?).await,
        "trivial" => Ok(()),
        other => Err(format!("unknown role `{other}`")),
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

async fn connect(port: u16) -> Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(io("connect"))?;
    // As sockscript does for every connection.
    stream.set_nodelay(true).map_err(io("set_nodelay"))?;
    Ok(stream)
}

async fn bind() -> Result<TcpListener> {
    let socket = TcpSocket::new_v4().map_err(io("socket"))?;
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .map_err(io("bind"))?;
    socket.listen(BACKLOG).map_err(io("listen"))
}

#[derive(Clone, Copy)]
enum Server {
    Echo,
    Sink,
    Source { bytes: u64, chunk: usize },
    Greeting,
    WsEcho,
}

/// Accept forever; print the port first. Exits when stdin closes, so a server never outlives
/// the driver that started it.
async fn serve(kind: Server) -> Result {
    let listener = bind().await?;
    let port = listener.local_addr().map_err(io("local_addr"))?.port();
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{port}").map_err(io("stdout"))?;
        out.flush().map_err(io("stdout"))?;
    }
    // A plain thread: a blocking stdin read inside the runtime would hold up its shutdown.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    loop {
        let (stream, _) = listener.accept().await.map_err(io("accept"))?;
        tokio::spawn(async move {
            // A client going away mid-conversation is not the server's failure.
            let _ = handle(kind, stream).await;
        });
    }
}

async fn handle(kind: Server, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    match kind {
        Server::Echo => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                stream.write_all(&buf[..n]).await?;
            }
        }
        Server::Sink => {
            let mut buf = vec![0u8; 64 * 1024];
            let mut total: u64 = 0;
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            stream.write_all(format!("{total}\n").as_bytes()).await?;
            stream.shutdown().await
        }
        Server::Source { bytes, chunk } => {
            let data = vec![b'x'; chunk];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk as u64) as usize;
                stream.write_all(&data[..n]).await?;
                left -= n as u64;
            }
            stream.shutdown().await
        }
        Server::WsEcho => {
            use futures_util::{SinkExt, StreamExt};
            let mut ws = tokio_tungstenite::accept_async(stream)
                .await
                .map_err(std::io::Error::other)?;
            while let Some(msg) = ws.next().await {
                let msg = msg.map_err(std::io::Error::other)?;
                if msg.is_text() || msg.is_binary() {
                    ws.send(msg).await.map_err(std::io::Error::other)?;
                }
            }
            Ok(())
        }
        Server::Greeting => {
            stream.write_all(GREETING).await?;
            // Hold the connection until the client closes it.
            let mut buf = [0u8; 256];
            while stream.read(&mut buf).await? > 0 {}
            Ok(())
        }
    }
}

async fn round_trips(stream: &mut TcpStream, n: u64, size: usize) -> Result {
    let msg = vec![b'p'; size];
    let mut back = vec![0u8; size];
    for _ in 0..n {
        stream.write_all(&msg).await.map_err(io("send"))?;
        stream.read_exact(&mut back).await.map_err(io("recv"))?;
    }
    if n > 0 && back != msg {
        return Err("the echo differs from the message".into());
    }
    Ok(())
}

async fn pingpong(port: u16, n: u64, size: usize) -> Result {
    let mut stream = connect(port).await?;
    round_trips(&mut stream, n, size).await
}

/// `pingpong` with each round trip timed: prints the median in nanoseconds on stdout.
async fn rtt(port: u16, n: u64, size: usize) -> Result {
    let mut stream = connect(port).await?;
    let msg = vec![b'p'; size];
    let mut back = vec![0u8; size];
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = std::time::Instant::now();
        stream.write_all(&msg).await.map_err(io("send"))?;
        stream.read_exact(&mut back).await.map_err(io("recv"))?;
        times.push(t.elapsed().as_nanos());
    }
    if n == 0 || back != msg {
        return Err("no round trips, or the echo differs from the message".into());
    }
    times.sort_unstable();
    println!("{}", times[times.len() / 2]);
    Ok(())
}

/// Both ends in one program: a server task echoing exactly `n` messages, and the client.
async fn pingpong_local(n: u64, size: usize) -> Result {
    let listener = bind().await?;
    let port = listener.local_addr().map_err(io("local_addr"))?.port();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.map_err(io("accept"))?;
        stream.set_nodelay(true).map_err(io("set_nodelay"))?;
        let mut buf = vec![0u8; size];
        for _ in 0..n {
            stream
                .read_exact(&mut buf)
                .await
                .map_err(io("server recv"))?;
            stream.write_all(&buf).await.map_err(io("server send"))?;
        }
        Ok::<(), String>(())
    });
    let mut stream = connect(port).await?;
    round_trips(&mut stream, n, size).await?;
    server.await.map_err(|e| format!("server task: {e}"))?
}

async fn bulk_send(port: u16, bytes: u64, chunk: usize) -> Result {
    let mut stream = connect(port).await?;
    let data = vec![b'x'; chunk];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        stream.write_all(&data[..n]).await.map_err(io("send"))?;
        left -= n as u64;
    }
    stream.shutdown().await.map_err(io("shutdown"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(io("recv"))?;
    if answer.trim_end() != bytes.to_string() {
        return Err(format!("the sink counted {answer:?}, not {bytes}"));
    }
    Ok(())
}

async fn bulk_recv(port: u16, bytes: u64, chunk: usize) -> Result {
    let mut stream = connect(port).await?;
    let mut buf = vec![0u8; chunk];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        stream.read_exact(&mut buf[..n]).await.map_err(io("recv"))?;
        left -= n as u64;
    }
    let mut rest = [0u8; 1];
    if stream.read(&mut rest).await.map_err(io("recv"))? != 0 {
        return Err(format!("the source sent more than {bytes} bytes"));
    }
    Ok(())
}

async fn greet(port: u16) -> Result<TcpStream> {
    let mut stream = connect(port).await?;
    let mut got = [0u8; GREETING.len()];
    stream
        .read_exact(&mut got)
        .await
        .map_err(io("recv greeting"))?;
    if got != GREETING {
        return Err(format!(
            "unexpected greeting {:?}",
            String::from_utf8_lossy(&got)
        ));
    }
    Ok(stream)
}

async fn connrate(port: u16, n: u64) -> Result {
    for _ in 0..n {
        drop(greet(port).await?);
    }
    Ok(())
}

async fn fanout(port: u16, n: u64) -> Result {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(async move { greet(port).await.map(drop) }))
        .collect();
    for task in tasks {
        task.await.map_err(|e| format!("task: {e}"))??;
    }
    Ok(())
}

async fn hold(port: u16, n: usize) -> Result {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(greet(port).await?);
    }
    if held.len() != n {
        return Err("lost a connection".into());
    }
    Ok(())
}

/// `n` round trips of a `size`-byte text message over a WebSocket, as a tokio-tungstenite
/// client does it: send, then wait for the echo.
async fn ws_pingpong(port: u16, n: u64, size: usize) -> Result {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let stream = connect(port).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/"), stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let msg = "p".repeat(size);
    let mut back = String::new();
    for _ in 0..n {
        ws.send(Message::text(msg.as_str()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        match ws.next().await {
            Some(Ok(Message::Text(t))) => back = t.as_str().to_owned(),
            other => return Err(format!("expected the echo, got {other:?}")),
        }
    }
    if n > 0 && back != msg {
        return Err("the echo differs from the message".into());
    }
    ws.close(None).await.map_err(|e| format!("close: {e}"))
}
