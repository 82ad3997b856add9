//! A small blocking HTTP/1.1 client for the local server, over its Unix socket or TCP.
//! Used by the CLI's admin commands and by tests; the async server does not use it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

impl Endpoint {
    /// Parses `http://HOST:PORT[/]` or `unix:/path`. HOST must be on this machine:
    /// `localhost` (taken as 127.0.0.1, no name lookup) or an IPv4 address in
    /// 127.0.0.0/8. The admin token travels in plain HTTP, so any other host is refused
    /// here, exactly as the preload library refuses it (preload/src/config.rs).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        if let Some(path) = url.strip_prefix("unix:") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!(
                "unsupported server URL `{url}`: use http://127.0.0.1:PORT, http://localhost:PORT or unix:/path/to/rampart.sock"
            ));
        };
        let hostport = rest.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') {
            return Err(format!(
                "unsupported server URL `{url}`: use http://127.0.0.1:PORT"
            ));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (hostport, "80"),
        };
        let port: u16 = port.parse().map_err(|_| {
            format!("unsupported server URL `{url}`: `{port}` is not a port number")
        })?;
        let ip = if host.eq_ignore_ascii_case("localhost") {
            std::net::Ipv4Addr::LOCALHOST
        } else {
            match host.parse::<std::net::Ipv4Addr>() {
                Ok(ip) if ip.is_loopback() => ip,
                _ => {
                    return Err(format!(
                        "refusing server URL `{url}`: `{host}` is not a loopback address (the token is sent in plain HTTP, so only 127.0.0.0/8, localhost or a unix: socket are used)"
                    ));
                }
            }
        };
        Ok(Endpoint::Tcp(format!("{ip}:{port}")))
    }

    pub fn url(&self) -> String {
        match self {
            Endpoint::Unix(path) => format!("unix:{}", path.display()),
            Endpoint::Tcp(hostport) => format!("http://{hostport}"),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|_| {
            format!(
                "server answered {} with a body that is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )
        })
    }

    /// The server's `{"error": ...}` text, or the raw body.
    pub fn error_text(&self) -> String {
        self.json()
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_owned())
    }
}

/// A connected socket of either kind.
trait Stream: Read + Write + Send {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()>;
}

impl Stream for UnixStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl Stream for TcpStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

fn connect(endpoint: &Endpoint, timeout: Duration) -> std::io::Result<Box<dyn Stream>> {
    let stream: Box<dyn Stream> = match endpoint {
        Endpoint::Unix(path) => Box::new(UnixStream::connect(path)?),
        Endpoint::Tcp(hostport) => {
            use std::net::ToSocketAddrs;
            let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
            let mut found = None;
            for addr in hostport.to_socket_addrs()? {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    Ok(s) => {
                        s.set_nodelay(true)?;
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            Box::new(found.ok_or(last)?)
        }
    };
    stream.set_timeouts(timeout)?;
    Ok(stream)
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> std::io::Result<Response> {
    let mut reader = BufReader::new(connect(endpoint, timeout)?);
    let message = encode(method, path, token, body, false);
    match reader
        .get_mut()
        .write_all(&message)
        .and_then(|()| reader.get_mut().flush())
    {
        Ok(()) => read_response(&mut reader).map(|(r, _)| r),
        // The server may answer (413) and close before reading a large body: its answer
        // is still there to read.
        Err(e) => read_response(&mut reader).map(|(r, _)| r).map_err(|_| e),
    }
}

/// One connection kept open between requests (HTTP/1.1 keep-alive), for callers that
/// ask many times — the supervisor's workers check every exec of a tree. A fresh
/// connection costs a connect, an accept and a new server-side connection task each time.
#[derive(Debug)]
pub struct KeepAlive {
    endpoint: Endpoint,
    conn: Option<BufReader<Box<dyn Stream>>>,
}

impl std::fmt::Debug for dyn Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream")
    }
}

impl KeepAlive {
    pub fn new(endpoint: Endpoint) -> KeepAlive {
        KeepAlive {
            endpoint,
            conn: None,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one request on the kept connection (opening one if needed). A kept
    /// connection the server has meanwhile closed fails before any answer byte arrives;
    /// then, and only then, the request is sent once more on a fresh connection — so a
    /// request is never evaluated twice.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> std::io::Result<Response> {
        let message = encode(method, path, token, body, true);
        if let Some(mut reader) = self.conn.take() {
            let sent = reader
                .get_ref()
                .set_timeouts(timeout)
                .and_then(|()| reader.get_mut().write_all(&message))
                .and_then(|()| reader.get_mut().flush());
            if sent.is_ok() {
                match read_response(&mut reader) {
                    Ok((response, keep)) => {
                        if keep {
                            self.conn = Some(reader);
                        }
                        return Ok(response);
                    }
                    Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => return Err(e),
                    Err(_) => {} // closed while idle: nothing was read; send it afresh
                }
            }
        }
        let mut reader = BufReader::new(connect(&self.endpoint, timeout)?);
        reader.get_mut().write_all(&message)?;
        reader.get_mut().flush()?;
        let (response, keep) = read_response(&mut reader)?;
        if keep {
            self.conn = Some(reader);
        }
        Ok(response)
    }
}

fn encode(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
    keep_alive: bool,
) -> Vec<u8> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if method != "GET" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(body.as_bytes());
    message
}

/// Reads one answer; the flag says whether the connection may be used again. An answer
/// that had not started when the connection closed is `UnexpectedEof`.
fn read_response(reader: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<(Response, bool)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection without answering",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("malformed HTTP status line"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = true;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                keep = false;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("malformed chunk size"))?;
            if size == 0 {
                // The empty line that ends a chunked body.
                line.clear();
                reader.read_line(&mut line)?;
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        // Delimited by the end of the connection: it cannot be reused.
        reader.read_to_end(&mut body)?;
        keep = false;
    }
    Ok((Response { status, body }, keep))
}

/// True when `/healthz` answers `ok`.
pub fn healthy(endpoint: &Endpoint) -> bool {
    matches!(
        request(endpoint, "GET", "/healthz", None, None, Duration::from_secs(2)),
        Ok(r) if r.status == 200 && r.body == b"ok"
    )
}

/// Asks the server for an agent credential (`POST /v1/agents`, admin token) bound to
/// `agent`, `session` and the running process `pid`: the launcher calls this and hands
/// only the returned token to the agent's tree. The error is one line.
pub fn register_agent(
    endpoint: &Endpoint,
    admin_token: &str,
    agent: &str,
    session: &str,
    pid: u32,
) -> Result<crate::wire::AgentCredential, String> {
    let body = serde_json::json!({ "agent": agent, "session": session, "pid": pid });
    let response = request(
        endpoint,
        "POST",
        "/v1/agents",
        Some(admin_token),
        Some(&body),
        Duration::from_secs(10),
    )
    .map_err(|e| {
        format!(
            "cannot get an agent credential from {}: {e}",
            endpoint.url()
        )
    })?;
    if response.status != 200 {
        return Err(format!(
            "the server at {} refused an agent credential ({}): {}",
            endpoint.url(),
            response.status,
            response.error_text()
        ));
    }
    serde_json::from_slice(&response.body).map_err(|e| {
        format!(
            "unexpected answer to POST /v1/agents from {}: {e}",
            endpoint.url()
        )
    })
}

/// Ends an agent credential: with the admin token, the credential `id`; with an agent
/// credential as `token`, pass `id` = `"self"` to end that credential itself.
pub fn revoke_agent(endpoint: &Endpoint, token: &str, id: &str) -> Result<(), String> {
    let response = request(
        endpoint,
        "DELETE",
        &format!("/v1/agents/{id}"),
        Some(token),
        None,
        Duration::from_secs(10),
    )
    .map_err(|e| {
        format!(
            "cannot revoke agent credential {id} at {}: {e}",
            endpoint.url()
        )
    })?;
    if response.status != 200 {
        return Err(format!(
            "the server at {} did not revoke agent credential {id} ({}): {}",
            endpoint.url(),
            response.status,
            response.error_text()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn only_loopback_urls_are_used() {
        for (url, want) in [
            ("http://127.0.0.1:9090", "127.0.0.1:9090"),
            ("http://127.0.0.1:9090/", "127.0.0.1:9090"),
            ("http://localhost:19090", "127.0.0.1:19090"),
            ("http://LOCALHOST:1", "127.0.0.1:1"),
            ("http://127.8.9.10", "127.8.9.10:80"),
        ] {
            assert_eq!(
                Endpoint::parse(url),
                Ok(Endpoint::Tcp(want.to_owned())),
                "{url}"
            );
        }
        assert_eq!(
            Endpoint::parse("unix:/run/r.sock"),
            Ok(Endpoint::Unix("/run/r.sock".into()))
        );
        for url in [
            "http://10.1.2.3:9090",
            "http://192.0.2.2:9090",
            "http://0.0.0.0:9090",
            "http://example.com:9090",
            "http://localhost.example.com:9090",
            "http://127.0.0.1.example.com:9090",
            "http://127.0.0.1:9090@10.1.2.3:80",
            "http://[::1]:9090",
        ] {
            let err = Endpoint::parse(url).unwrap_err();
            assert!(
                err.starts_with(&format!("refusing server URL `{url}`"))
                    || err.starts_with(&format!("unsupported server URL `{url}`")),
                "{url}: {err}"
            );
        }
        assert!(
            Endpoint::parse("http://10.1.2.3:9090")
                .unwrap_err()
                .contains("not a loopback address")
        );
        assert!(Endpoint::parse("https://127.0.0.1:9090").is_err());
        assert!(Endpoint::parse("http://127.0.0.1:99999").is_err());
    }
}
