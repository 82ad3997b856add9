//! A small blocking HTTP/1.1 client for the local server, over its Unix socket or TCP.
//! Used by the CLI's admin commands and by tests; the async server does not use it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

impl Endpoint {
    /// Parses a server URL by the contract's rules (`rampart_contract::url`), exactly as
    /// the preload library does: `http://HOST:PORT` with HOST `localhost` (taken as
    /// 127.0.0.1, no name lookup) or an IPv4 address in 127.0.0.0/8 — the admin token
    /// travels in plain HTTP — or `unix:` with an absolute path. The error completes
    /// "<where the URL came from> …": `unix:x.sock is a relative unix: socket path (…)`.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        use rampart_contract::url::{Target, parse};
        match parse(url.as_bytes()) {
            Ok(Target::Unix { path }) => {
                use std::os::unix::ffi::OsStrExt;
                Ok(Endpoint::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(
                    path,
                ))))
            }
            Ok(Target::Tcp {
                ip: [a, b, c, d],
                port,
                ..
            }) => Ok(Endpoint::Tcp(format!("{a}.{b}.{c}.{d}:{port}"))),
            Err(e) => Err(format!("{url} is {}", e.reason())),
        }
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
    /// Sets the socket timeout of the next read (`read`) or write: one `setsockopt`.
    fn set_timeout(&self, read: bool, timeout: Duration) -> std::io::Result<()>;
}

impl Stream for UnixStream {
    fn set_timeout(&self, read: bool, timeout: Duration) -> std::io::Result<()> {
        if read {
            self.set_read_timeout(Some(timeout))
        } else {
            self.set_write_timeout(Some(timeout))
        }
    }
}

impl Stream for TcpStream {
    fn set_timeout(&self, read: bool, timeout: Duration) -> std::io::Result<()> {
        if read {
            self.set_read_timeout(Some(timeout))
        } else {
            self.set_write_timeout(Some(timeout))
        }
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
                let limit = Duration::from_millis(rampart_contract::values::CONNECT_TIMEOUT_MS);
                match TcpStream::connect_timeout(&addr, limit) {
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
    stream.set_timeout(true, timeout)?;
    stream.set_timeout(false, timeout)?;
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
        Ok(()) => read_response(&mut reader, usize::MAX).map(|(r, _)| r),
        // The server may answer (413) and close before reading a large body: its answer
        // is still there to read.
        Err(e) => read_response(&mut reader, usize::MAX)
            .map(|(r, _)| r)
            .map_err(|_| e),
    }
}

/// What a failed request means in the contract's terms (`verdict::Outcome`): an answer
/// that started and then broke off or made no sense is `Malformed`, one larger than the
/// caller's limit `Oversized`, and everything else — refused, no listener, closed before
/// a byte of an answer, no answer in time — is "nobody answered".
pub fn outcome_of(err: &std::io::Error) -> rampart_contract::verdict::Outcome {
    use rampart_contract::verdict::Outcome;
    match err.kind() {
        std::io::ErrorKind::InvalidData => Outcome::Malformed,
        std::io::ErrorKind::FileTooLarge => Outcome::Oversized,
        _ => Outcome::NoAnswer,
    }
}

/// One connection kept open between requests (HTTP/1.1 keep-alive), for callers that
/// ask many times — the supervisor's workers check every exec of a tree. A fresh
/// connection costs a connect, an accept and a new server-side connection task each time.
#[derive(Debug)]
pub struct KeepAlive {
    endpoint: Endpoint,
    conn: Option<BufReader<Timed>>,
    /// Largest answer (status line, headers and body) accepted; larger ones fail with
    /// `ErrorKind::FileTooLarge` ([`outcome_of`]: oversized).
    limit: usize,
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
            limit: usize::MAX,
        }
    }

    /// Refuses answers larger than `bytes` (a decision is small; the preload library
    /// refuses anything over `rampart_contract::values::ANSWER_MAX_BYTES`).
    pub fn with_answer_limit(mut self, bytes: usize) -> KeepAlive {
        self.limit = bytes;
        self
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
        // One deadline for the whole exchange, the retry included, as the library has: a
        // server that drips its answer cannot hold a check past `timeout`.
        let deadline = Instant::now() + timeout;
        if let Some(mut reader) = self.conn.take() {
            reader.get_mut().deadline = Some(deadline);
            let sent = reader
                .get_mut()
                .write_all(&message)
                .and_then(|()| reader.get_mut().flush());
            if sent.is_ok() {
                match read_response(&mut reader, self.limit) {
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
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Timed::expired());
        }
        let mut reader = BufReader::new(Timed {
            inner: connect(&self.endpoint, left)?,
            deadline: Some(deadline),
        });
        let sent = reader
            .get_mut()
            .write_all(&message)
            .and_then(|()| reader.get_mut().flush());
        let (response, keep) = match sent {
            Ok(()) => read_response(&mut reader, self.limit)?,
            // The server may answer (413) and close (or stop reading) before it has read
            // a large body: that answer is the decision, not "nobody answered". It is
            // already here when the write fails, also when the write used up the deadline.
            Err(e) => {
                reader.get_mut().deadline = Some(Instant::now() + ALREADY_HERE);
                match read_response(&mut reader, self.limit) {
                    Ok((response, _)) => (response, false),
                    Err(_) => return Err(e),
                }
            }
        };
        if keep {
            self.conn = Some(reader);
        }
        Ok(response)
    }
}

/// How long reading an answer that arrived while we were still sending may take.
const ALREADY_HERE: Duration = Duration::from_millis(200);

/// A connection whose reads and writes all end by one deadline (each gets the time left
/// as its socket timeout). Running out is `TimedOut`, "no answer in time".
#[derive(Debug)]
struct Timed {
    inner: Box<dyn Stream>,
    deadline: Option<Instant>,
}

impl Timed {
    fn expired() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time")
    }

    /// Gives the next read (`read`) or write the time left as its socket timeout.
    fn arm(&self, read: bool) -> std::io::Result<()> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Timed::expired());
            }
            self.inner.set_timeout(read, left)?;
        }
        Ok(())
    }

    /// A socket timeout is the deadline passing.
    fn timed_out(e: std::io::Error) -> std::io::Error {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Timed::expired()
        } else {
            e
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.arm(true)?;
        self.inner.read(buf).map_err(Timed::timed_out)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm(false)?;
        self.inner.write(buf).map_err(Timed::timed_out)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
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

/// Reads one answer of at most `limit` bytes; the flag says whether the connection may
/// be used again. An answer that had not started when the connection closed is
/// `UnexpectedEof`; one that started and then broke off (closed, reset, garbled) is
/// `InvalidData`; one over `limit` is `FileTooLarge` (see [`outcome_of`]). A timeout
/// stays a timeout: no answer in time.
fn read_response(reader: &mut impl BufRead, limit: usize) -> std::io::Result<(Response, bool)> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection without answering",
        ));
    }
    read_rest(reader, line, limit).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock
        | std::io::ErrorKind::TimedOut
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::FileTooLarge => e,
        _ => std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the answer broke off: {e}"),
        ),
    })
}

/// The rest of an answer whose first line is `line`.
fn read_rest(
    reader: &mut impl BufRead,
    mut line: String,
    limit: usize,
) -> std::io::Result<(Response, bool)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("the answer is larger than {limit} bytes"),
        )
    };
    let mut seen = line.len();
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
        let n = reader.read_line(&mut line)?;
        seen = seen.saturating_add(n);
        if seen > limit {
            return Err(too_large());
        }
        if n == 0 {
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
    let room = limit.saturating_sub(seen);
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
            if size > room.saturating_sub(body.len()) {
                return Err(too_large());
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = length {
        if length > room {
            return Err(too_large());
        }
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        // Delimited by the end of the connection: it cannot be reused.
        reader
            .by_ref()
            .take(u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut body)?;
        if body.len() > room {
            return Err(too_large());
        }
        keep = false;
    }
    Ok((Response { status, body }, keep))
}

/// True when `/healthz` answers `ok`.
/// The pid of the process listening on the Unix socket at `path` (SO_PEERCRED), when one
/// accepts a connection: `rampart serve` names it instead of failing on the audit lock.
pub fn socket_peer_pid(path: &std::path::Path) -> Option<i32> {
    let stream = UnixStream::connect(path).ok()?;
    let cred = rustix::net::sockopt::socket_peercred(&stream).ok()?;
    Some(cred.pid.as_raw_nonzero().get())
}

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
        let not_loopback = "is not a loopback address (plain HTTP with the token is only sent to 127.0.0.0/8, localhost or a unix: socket)";
        for url in [
            "http://10.1.2.3:9090",
            "http://192.0.2.2:9090",
            "http://0.0.0.0:9090",
        ] {
            assert_eq!(
                Endpoint::parse(url),
                Err(format!("{url} {not_loopback}")),
                "{url}"
            );
        }
        for url in [
            "http://example.com:9090",
            "http://localhost.example.com:9090",
            "http://127.0.0.1.example.com:9090",
            "http://127.0.0.1:9090@10.1.2.3:80",
            "http://[::1]:9090",
            "https://127.0.0.1:9090",
            "http://127.0.0.1:99999",
        ] {
            assert_eq!(
                Endpoint::parse(url),
                Err(format!(
                    "{url} is not a supported URL (use http://127.0.0.1:PORT, http://localhost:PORT or unix:/path; no https, no host names)"
                )),
                "{url}"
            );
        }
    }

    /// The CLI used to accept `unix:rampart.sock` while the library refused it, so the
    /// launcher checked CMD and every later exec failed open.
    #[test]
    fn a_relative_socket_is_refused_with_the_library_s_reason() {
        assert_eq!(
            Endpoint::parse("unix:rampart.sock"),
            Err("unix:rampart.sock is a relative unix: socket path (give an absolute path: the library runs in every working directory)".to_owned())
        );
    }
}
