//! Address strings as scripts write them: `127.0.0.1:8080`, `[::1]:0`, `localhost:8080`,
//! `unix:/path/to.sock`. Parsing, name resolution (under the caller's deadline) and the
//! endpoint type handles report.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a stream socket lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Ip(Target),
    Unix(PathBuf),
}

/// `unix:/path` or `host:port`.
pub fn parse_address(op: &'static str, addr: &str) -> Result<Address, NetError> {
    match addr.strip_prefix("unix:") {
        Some("") => Err(NetError::new(
            ErrorKind::InvalidAddress,
            op,
            Some(addr),
            format!(
                "`{addr}` is not an address: the socket path is missing, e.g. `unix:/tmp/app.sock`"
            ),
        )),
        Some(path) => Ok(Address::Unix(PathBuf::from(path))),
        None => parse(op, addr).map(Address::Ip),
    }
}

use super::error::{ErrorKind, NetError};

/// A host and a port, not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// Split `host:port`, `[v6]:port` into a [`Target`]; an IP literal needs no resolution.
pub fn parse(op: &'static str, addr: &str) -> Result<Target, NetError> {
    let bad = |why: &str| {
        NetError::new(
            ErrorKind::InvalidAddress,
            op,
            Some(addr),
            format!("`{addr}` is not an address: {why}"),
        )
    };
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(Target {
            host: sa.ip().to_string(),
            port: sa.port(),
        });
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("expected `host:port`, e.g. `127.0.0.1:8080`"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad(
            "the host is missing (write `127.0.0.1` or `[::1]` for loopback)",
        ));
    }
    if host.contains(':') && (!bracketed || host.parse::<IpAddr>().is_err()) {
        return Err(bad("an IPv6 address goes in brackets, e.g. `[::1]:8080`"));
    }
    Ok(Target {
        host: host.to_owned(),
        port,
    })
}

impl Target {
    /// The literal address when the host is an IP, without asking a resolver.
    pub fn literal(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Try `attempt` on each address the name resolves to, in turn: the first that works, or
    /// the last failure (`AddrNotAvailable` if there was no address to try).
    pub async fn first_working<T, F>(
        &self,
        op: &'static str,
        addr: &str,
        mut attempt: impl FnMut(SocketAddr) -> F,
    ) -> Result<T, NetError>
    where
        F: std::future::Future<Output = std::io::Result<T>>,
    {
        let mut last = None;
        for sa in self.resolve(op, addr).await? {
            match attempt(sa).await {
                Ok(found) => return Ok(found),
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| std::io::ErrorKind::AddrNotAvailable.into());
        Err(NetError::io(op, Some(addr), &e))
    }

    /// Resolve the name; a name that resolves to nothing is kind `dns`.
    pub async fn resolve(&self, op: &'static str, addr: &str) -> Result<Vec<SocketAddr>, NetError> {
        if let Some(sa) = self.literal() {
            return Ok(vec![sa]);
        }
        let dns = |why: String| {
            NetError::new(
                ErrorKind::Dns,
                op,
                Some(addr),
                format!("{op}: cannot resolve `{}`: {why}", self.host),
            )
        };
        let found: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| dns(e.to_string().to_lowercase()))?
            .collect();
        if found.is_empty() {
            return Err(dns("no addresses".to_owned()));
        }
        Ok(found)
    }
}

/// One end of a connection, as handles report it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The IP address and port; `None` for a Unix socket.
    pub addr: Option<SocketAddr>,
    /// `127.0.0.1:41234`, `[::1]:41234`, `unix:/tmp/app.sock`: kept as shared text since the
    /// transcript records it often.
    pub text: Arc<str>,
}

/// `addr` as `SocketAddr`'s `Display` writes it (`127.0.0.1:41234`, `[::1]:80`): an IPv4
/// address's digits are written here, without the formatting machinery, which costs about ten
/// times as much (every connection names two addresses, every datagram one).
pub fn text_of(addr: SocketAddr) -> Arc<str> {
    let SocketAddr::V4(v4) = addr else {
        return Arc::from(addr.to_string());
    };
    // `255.255.255.255:65535` is 21 bytes.
    let mut buf = [0u8; 21];
    let mut len = 0;
    let mut push = |byte: u8| {
        buf[len] = byte;
        len += 1;
    };
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            push(b'.');
        }
        push_decimal(&mut push, u16::from(octet));
    }
    push(b':');
    push_decimal(&mut push, v4.port());
    Arc::from(std::str::from_utf8(&buf[..len]).unwrap_or_default())
}

/// `n` in decimal: at most five digits, as a `u16` has.
fn push_decimal(push: &mut impl FnMut(u8), n: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut n = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[start..].iter().for_each(|&d| push(d));
}

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Self {
        Endpoint {
            addr: Some(addr),
            text: text_of(addr),
        }
    }

    /// A Unix socket end: its path, or `unix:` alone for an unnamed client socket.
    pub fn unix(path: Option<&std::path::Path>) -> Self {
        let text = match path {
            Some(p) if !p.as_os_str().is_empty() => format!("unix:{}", p.display()),
            _ => "unix:".to_owned(),
        };
        Endpoint {
            addr: None,
            text: Arc::from(text),
        }
    }

    /// An end with a name and no address: a process (`process:cat[1234]`) or this side of
    /// its pipes.
    pub fn named(text: &str) -> Self {
        Endpoint {
            addr: None,
            text: Arc::from(text),
        }
    }

    /// An unnamed Unix client socket (`unix:` alone) is named for the transcript after the
    /// socket it is connected to and its connection id: `unix:/tmp/app.sock#client-3`,
    /// stable within a scenario and the same from both ends.
    pub fn name_unix_client(&mut self, server: &Endpoint, conn: u32) {
        if self.addr.is_none() && &*self.text == "unix:" {
            self.text = Arc::from(format!("{}#client-{conn}", server.text));
        }
    }

    pub fn ip(&self) -> Option<String> {
        self.addr.map(|a| a.ip().to_string())
    }

    pub fn port(&self) -> Option<u16> {
        self.addr.map(|a| a.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_scripts_use() {
        assert_eq!(
            parse("connect", "127.0.0.1:80").map(|t| t.port).ok(),
            Some(80)
        );
        assert_eq!(
            parse("connect", "[::1]:0").map(|t| t.host).ok().as_deref(),
            Some("::1")
        );
        assert_eq!(
            parse("connect", "localhost:8080")
                .map(|t| t.host)
                .ok()
                .as_deref(),
            Some("localhost")
        );
    }

    #[test]
    fn addresses_are_written_as_socket_addr_writes_them() {
        let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut addrs: Vec<SocketAddr> = vec![
            "0.0.0.0:0".parse().unwrap_or_else(|e| panic!("{e}")),
            "255.255.255.255:65535"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            "10.0.100.9:10".parse().unwrap_or_else(|e| panic!("{e}")),
            "[::1]:8080".parse().unwrap_or_else(|e| panic!("{e}")),
            "[fe80::1%2]:9".parse().unwrap_or_else(|e| panic!("{e}")),
        ];
        for _ in 0..10_000 {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            let ip = std::net::Ipv4Addr::from((n >> 16) as u32);
            addrs.push(SocketAddr::from((ip, n as u16)));
        }
        for addr in addrs {
            assert_eq!(&*text_of(addr), addr.to_string());
        }
    }

    #[test]
    fn unix_addresses_are_paths() {
        assert_eq!(
            parse_address("connect", "unix:/tmp/a.sock").ok(),
            Some(Address::Unix(PathBuf::from("/tmp/a.sock")))
        );
        assert!(parse_address("connect", "unix:").is_err());
    }

    #[test]
    fn unix_clients_are_named_after_their_server_and_connection() {
        let server = Endpoint::unix(Some(std::path::Path::new("/tmp/app.sock")));
        let mut client = Endpoint::unix(None);
        assert_eq!(&*client.text, "unix:");
        client.name_unix_client(&server, 3);
        assert_eq!(&*client.text, "unix:/tmp/app.sock#client-3");
        // A named end keeps its name.
        let mut named = server.clone();
        named.name_unix_client(&client, 4);
        assert_eq!(&*named.text, "unix:/tmp/app.sock");
        let mut ip = Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 9)));
        ip.name_unix_client(&server, 5);
        assert_eq!(&*ip.text, "127.0.0.1:9");
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        for bad in ["127.0.0.1", "localhost:http", ":80", "::1:80", "host:70000"] {
            let err = parse("connect", bad).err().map(|e| e.kind);
            assert_eq!(err, Some(ErrorKind::InvalidAddress), "{bad}");
        }
    }
}
