//! Audit export (`rampart serve --export URL`): every event of the audit trail, in order,
//! to a syslog receiver (RFC 5424 over TCP, octet-counting framing of RFC 6587) or an
//! HTTP collector (batches of JSON lines, the events exactly as written).
//!
//! Why it reads the day files instead of taking events from the request path: delivery
//! must survive a crash of the server and an outage of the receiver without ever slowing
//! a decision. Each target has its own thread that follows `audit/*.jsonl` with a cursor
//! (file, offset, last hash) in `$RAMPART_HOME/export/<name>.cursor`; the cursor moves
//! only after the receiver accepted a batch, so a crash between sending and saving sends
//! that batch again (at least once, in order). The backlog is the audit files on disk.
//!
//! "Accepted": an HTTP collector answers 2xx. Syslog over TCP has no acknowledgement, so
//! each batch goes over its own connection, which we then half-close and wait for the
//! receiver to close in turn: a receiver does so only after it has read every frame, so
//! a receiver stopped mid-batch makes us send the batch again instead of losing it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most events sent in one batch.
const BATCH_EVENTS: usize = 500;
/// Most bytes read from a day file for one batch (a longer single line is still sent).
const BATCH_BYTES: usize = 1024 * 1024;
/// Pause when there is nothing new to send.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Pause after a failed delivery grows up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the lag is recounted from the files while there is a backlog.
const LAG_RECOUNT: Duration = Duration::from_secs(5);
/// Connect, write and acknowledge timeout of one batch.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `syslog://host:port[?facility=NAME&app=NAME]`
    Syslog {
        host: String,
        port: u16,
        facility: u8,
        app: String,
        /// `syslog+tls://`: the CA file to check the receiver's certificate with.
        tls: Option<PathBuf>,
    },
    /// `http://host:port/path[?bearer_file=PATH]`
    Http {
        host: String,
        port: u16,
        path: String,
        bearer_file: Option<PathBuf>,
        /// `https://`: the CA file to check the collector's certificate with.
        tls: Option<PathBuf>,
    },
}

/// The CA bundle of Debian and most distributions: the default `ca_file` of TLS URLs.
const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// An `--export` URL as given, and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    pub url: String,
    pub target: Target,
}

const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

fn split_host_port(authority: &str, url: &str) -> Result<(String, u16), String> {
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| format!("export URL `{url}` needs a port (host:port)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("export URL `{url}`: `{port}` is not a port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(format!("export URL `{url}` needs a host and a port"));
    }
    Ok((host.to_owned(), port))
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

impl ExportSpec {
    /// Parses `syslog://host:port` (options `facility`, `app`) or `http://host:port/path`
    /// (option `bearer_file`). TLS schemes are refused with a one-line reason.
    pub fn parse(url: &str) -> Result<ExportSpec, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!(
                "export URL `{url}` has no scheme (syslog://, syslog+tls://, http:// or https://)"
            )
        })?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let tls_scheme = matches!(scheme, "syslog+tls" | "https");
        let mut ca_file = tls_scheme.then(|| PathBuf::from(SYSTEM_CA_FILE));
        let target = match scheme {
            "syslog" | "syslog+tls" => {
                let authority = before_query.trim_end_matches('/');
                let (host, port) = split_host_port(authority, url)?;
                let mut facility = 16;
                let mut app = "rampart".to_owned();
                for (key, value) in query_pairs(query) {
                    match key {
                        "facility" => {
                            facility = FACILITIES
                                .iter()
                                .find(|(n, _)| *n == value)
                                .map(|(_, f)| *f)
                                .ok_or_else(|| {
                                    format!("export URL `{url}`: unknown facility `{value}`")
                                })?;
                        }
                        "ca_file" if tls_scheme => ca_file = Some(PathBuf::from(value)),
                        "app" => {
                            let ok = !value.is_empty()
                                && value.len() <= 48
                                && value.bytes().all(|b| b.is_ascii_graphic());
                            if !ok {
                                return Err(format!(
                                    "export URL `{url}`: app must be 1-48 printable ASCII characters"
                                ));
                            }
                            value.clone_into(&mut app);
                        }
                        other => {
                            return Err(format!("export URL `{url}`: unknown option `{other}`"));
                        }
                    }
                }
                Target::Syslog {
                    host,
                    port,
                    facility,
                    app,
                    tls: ca_file,
                }
            }
            "http" | "https" => {
                let (authority, path) = match before_query.find('/') {
                    Some(i) => (&before_query[..i], &before_query[i..]),
                    None => (before_query, "/"),
                };
                let (host, port) = split_host_port(authority, url)?;
                let mut bearer_file = None;
                for (key, value) in query_pairs(query) {
                    match key {
                        "bearer_file" => bearer_file = Some(PathBuf::from(value)),
                        "ca_file" if tls_scheme => ca_file = Some(PathBuf::from(value)),
                        other => {
                            return Err(format!("export URL `{url}`: unknown option `{other}`"));
                        }
                    }
                }
                Target::Http {
                    host,
                    port,
                    path: path.to_owned(),
                    bearer_file,
                    tls: ca_file,
                }
            }
            other => {
                return Err(format!(
                    "export URL `{url}`: unknown scheme `{other}` (syslog://, syslog+tls://, http:// or https://)"
                ));
            }
        };
        Ok(ExportSpec {
            url: url.to_owned(),
            target,
        })
    }

    /// File-name-safe name of this target's cursor: one cursor per URL.
    fn cursor_name(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.url.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("{hex}.cursor")
    }
}

/// The `export:` list of `$RAMPART_HOME/config.yaml` (URLs, as for `--export`); no file,
/// or no `export:` key, is an empty list. Other keys are left to whoever reads them.
pub fn config_file_exports(home: &Path) -> Result<Vec<ExportSpec>, String> {
    use saphyr::{LoadableYamlNode, Scalar, Yaml};
    let path = home.join("config.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let docs = Yaml::load_from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(Yaml::Mapping(root)) = docs.first() else {
        return Ok(Vec::new());
    };
    let key = Yaml::Value(Scalar::String("export".into()));
    let list = match root.get(&key) {
        None | Some(Yaml::Value(Scalar::Null)) => return Ok(Vec::new()),
        Some(Yaml::Sequence(items)) => items,
        Some(_) => {
            return Err(format!(
                "{}: `export` must be a list of URLs (syslog://HOST:PORT, http://HOST:PORT/PATH)",
                path.display()
            ));
        }
    };
    list.iter()
        .map(|item| match item {
            Yaml::Value(Scalar::String(url)) => {
                ExportSpec::parse(url).map_err(|e| format!("{}: {e}", path.display()))
            }
            _ => Err(format!(
                "{}: `export` must be a list of URLs (syslog://HOST:PORT, http://HOST:PORT/PATH)",
                path.display()
            )),
        })
        .collect()
}

/// Where the next event to send starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// Day file name (`YYYY-MM-DD.jsonl`); empty before the first delivery.
    pub file: String,
    /// Byte offset in `file` just past the last delivered line.
    pub offset: u64,
    /// `hash` of the last delivered event (checked on resume).
    pub last_hash: String,
}

/// What `serve status`, `/metrics` and the dashboard show per target.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ExportStatus {
    pub url: String,
    /// Events delivered since the server started.
    pub delivered: u64,
    /// Complete events in the audit files not yet accepted by the receiver.
    pub lag: u64,
    /// The last delivery error; cleared by the next successful delivery.
    pub last_error: Option<String>,
}

/// Shared status of every target.
#[derive(Debug, Default)]
pub struct Exports {
    targets: Vec<Arc<Mutex<ExportStatus>>>,
}

impl Exports {
    pub fn status(&self) -> Vec<ExportStatus> {
        self.targets
            .iter()
            .map(|t| match t.lock() {
                Ok(s) => s.clone(),
                Err(p) => p.into_inner().clone(),
            })
            .collect()
    }
}

/// `/metrics` lines per target: events delivered, lag, and whether the last delivery
/// failed (1) or not (0).
pub fn render_metrics(targets: &[ExportStatus]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if targets.is_empty() {
        return out;
    }
    let label = |url: &str| url.replace('\\', "\\\\").replace('"', "\\\"");
    type Metric = (&'static str, &'static str, fn(&ExportStatus) -> u64);
    let metrics: [Metric; 3] = [
        ("rampart_export_delivered_total", "counter", |t| t.delivered),
        ("rampart_export_lag_events", "gauge", |t| t.lag),
        ("rampart_export_failing", "gauge", |t| {
            u64::from(t.last_error.is_some())
        }),
    ];
    for (name, kind, value) in metrics {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for t in targets {
            let _ = writeln!(out, "{name}{{target=\"{}\"}} {}", label(&t.url), value(t));
        }
    }
    out
}

fn update(status: &Mutex<ExportStatus>, f: impl FnOnce(&mut ExportStatus)) {
    match status.lock() {
        Ok(mut s) => f(&mut s),
        Err(p) => f(&mut p.into_inner()),
    }
}

/// Starts one thread per target; returns their shared status.
pub fn start(specs: &[ExportSpec], home: &Path, audit_dir: &Path) -> std::io::Result<Exports> {
    let dir = home.join("export");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
    }
    let mut exports = Exports::default();
    for spec in specs {
        let status = Arc::new(Mutex::new(ExportStatus {
            url: spec.url.clone(),
            ..ExportStatus::default()
        }));
        exports.targets.push(status.clone());
        let worker = Worker {
            spec: spec.clone(),
            cursor_path: dir.join(spec.cursor_name()),
            audit_dir: audit_dir.to_path_buf(),
            status,
            hostname: hostname(),
        };
        std::thread::Builder::new()
            .name("rampart-export".into())
            .spawn(move || worker.run())?;
    }
    Ok(exports)
}

fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if name.is_empty() { "-".into() } else { name }
}

struct Worker {
    spec: ExportSpec,
    cursor_path: PathBuf,
    audit_dir: PathBuf,
    status: Arc<Mutex<ExportStatus>>,
    hostname: String,
}

/// A batch read from one day file: complete lines from `cursor.offset`.
struct Batch {
    file: String,
    end: u64,
    lines: Vec<Vec<u8>>,
}

impl Worker {
    fn run(self) {
        let mut cursor = load_cursor(&self.cursor_path);
        if let Err(why) = check_cursor(&self.audit_dir, &cursor) {
            // The trail changed under the cursor (rewritten or cut): send that day file
            // again from its start rather than skip or misplace events. The receiver may
            // get duplicates; `audit verify --against` then shows what changed.
            eprintln!(
                "rampart: export to {}: {why}; sending {} again from its start",
                self.spec.url, cursor.file
            );
            update(&self.status, |s| s.last_error = Some(why));
            cursor.offset = 0;
            cursor.last_hash.clear();
        }
        let mut backoff = Duration::from_millis(250);
        let mut counted: Option<std::time::Instant> = None;
        loop {
            let day_files = rampart_audit::day_files(&self.audit_dir).unwrap_or_default();
            let next = next_batch(&self.audit_dir, &day_files, &mut cursor);
            // Counting reads the whole backlog: done when idle-ish (at most every few
            // seconds), not per batch, so a large backlog is not read once per batch.
            if counted.is_none_or(|at: std::time::Instant| at.elapsed() >= LAG_RECOUNT) {
                let lag = count_lag(&self.audit_dir, &day_files, &cursor);
                update(&self.status, |s| s.lag = lag);
                counted = Some(std::time::Instant::now());
            }
            let batch = match next {
                Ok(Some(batch)) => batch,
                Ok(None) => {
                    // Caught up: the next pass recounts (new events may have come).
                    counted = None;
                    std::thread::sleep(IDLE_POLL);
                    continue;
                }
                Err(e) => {
                    update(&self.status, |s| s.last_error = Some(e));
                    std::thread::sleep(MAX_BACKOFF);
                    continue;
                }
            };
            match self.deliver(&batch.lines) {
                Ok(()) => {
                    backoff = Duration::from_millis(250);
                    let last_hash = batch
                        .lines
                        .last()
                        .and_then(|l| event_hash(l))
                        .unwrap_or_default();
                    cursor = Cursor {
                        file: batch.file,
                        offset: batch.end,
                        last_hash,
                    };
                    if let Err(e) = save_cursor(&self.cursor_path, &cursor) {
                        update(&self.status, |s| {
                            s.last_error = Some(format!("saving the export cursor: {e}"));
                        });
                    }
                    let n = batch.lines.len() as u64;
                    update(&self.status, |s| {
                        s.delivered += n;
                        s.lag = s.lag.saturating_sub(n);
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    let first = match self.status.lock() {
                        Ok(s) => s.last_error.is_none(),
                        Err(_) => true,
                    };
                    if first {
                        eprintln!(
                            "rampart: export to {}: {e} (retrying; nothing is lost)",
                            self.spec.url
                        );
                    }
                    update(&self.status, |s| s.last_error = Some(e));
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn deliver(&self, lines: &[Vec<u8>]) -> Result<(), String> {
        match &self.spec.target {
            Target::Syslog {
                host,
                port,
                facility,
                app,
                tls,
            } => {
                let mut payload = Vec::new();
                for line in lines {
                    let msg = syslog_message(line, *facility, &self.hostname, app);
                    payload.extend_from_slice(format!("{} ", msg.len()).as_bytes());
                    payload.extend_from_slice(msg.as_bytes());
                }
                send_syslog(host, *port, tls.as_deref(), &payload)
            }
            Target::Http {
                host,
                port,
                path,
                bearer_file,
                tls,
            } => {
                let bearer = match bearer_file {
                    Some(file) => Some(
                        std::fs::read_to_string(file)
                            .map_err(|e| format!("bearer file {}: {e}", file.display()))?
                            .trim()
                            .to_owned(),
                    ),
                    None => None,
                };
                let mut body = Vec::new();
                for line in lines {
                    body.extend_from_slice(line);
                    body.push(b'\n');
                }
                send_http(host, *port, tls.as_deref(), path, bearer.as_deref(), &body)
            }
        }
    }
}

fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}:{port}: {e}"))?;
    let mut last = format!("{host}:{port}: no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(stream) => {
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                return Ok(stream);
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    Err(last)
}

/// A connection to a receiver, plain or TLS (rustls, checked against the CA file).
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn open(host: &str, port: u16, ca_file: Option<&Path>) -> Result<Conn, String> {
        let tcp = connect(host, port)?;
        let Some(ca_file) = ca_file else {
            return Ok(Conn::Plain(tcp));
        };
        let config = tls_config(ca_file)?;
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("`{host}` cannot be checked against a certificate: {e}"))?;
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| format!("TLS to {host}:{port}: {e}"))?;
        Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }

    /// Says we are done sending: TLS close_notify, then the TCP half-close.
    fn finish_writing(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.shutdown(std::net::Shutdown::Write),
            Conn::Tls(tls) => {
                tls.conn.send_close_notify();
                tls.flush()?;
                tls.sock.shutdown(std::net::Shutdown::Write)
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.read(buf),
            Conn::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.write(buf),
            Conn::Tls(tls) => tls.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.flush(),
            Conn::Tls(tls) => tls.flush(),
        }
    }
}

/// A client configuration trusting exactly the certificates of `ca_file` (PEM).
fn tls_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let shown = ca_file.display();
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("CA file {shown}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("CA file {shown}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {shown}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("CA file {shown} holds no certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends the frames, half-closes, and waits for the receiver to close: it has then read
/// everything we sent.
fn send_syslog(
    host: &str,
    port: u16,
    ca_file: Option<&Path>,
    payload: &[u8],
) -> Result<(), String> {
    let mut stream = Conn::open(host, port, ca_file)?;
    stream
        .write_all(payload)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending to {host}:{port}: {e}"))?;
    stream
        .finish_writing()
        .map_err(|e| format!("closing to {host}:{port}: {e}"))?;
    let mut sink = [0u8; 512];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            // A TLS receiver may close the connection without its own close_notify once
            // it has read ours: it has read everything before it.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("waiting for {host}:{port} to accept: {e}")),
        }
    }
}

fn send_http(
    host: &str,
    port: u16,
    ca_file: Option<&Path>,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let mut stream = Conn::open(host, port, ca_file)?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(token) = bearer {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending to {host}:{port}: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // The status line is all we need.
    while !answer.contains(&b'\n') && answer.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("reading the answer of {host}:{port}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    let line = line.lines().next().unwrap_or("").trim();
    let code = line.split(' ').nth(1).unwrap_or("");
    if code.starts_with('2') && code.len() == 3 {
        Ok(())
    } else if line.is_empty() {
        Err(format!("{host}:{port} closed without an answer"))
    } else {
        Err(format!(
            "{host}:{port} answered `{}`",
            rampart_contract::printable::printable_string(line.as_bytes())
        ))
    }
}

fn load_cursor(path: &Path) -> Cursor {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Written to a temporary file and renamed, so a crash leaves the old or the new cursor.
fn save_cursor(path: &Path, cursor: &Cursor) -> std::io::Result<()> {
    let tmp = path.with_extension("cursor.tmp");
    let json = serde_json::to_vec(cursor).map_err(std::io::Error::other)?;
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Is the line just before the cursor the event it says was delivered last?
fn check_cursor(audit_dir: &Path, cursor: &Cursor) -> Result<(), String> {
    use std::io::{Seek, SeekFrom};
    if cursor.offset == 0 || cursor.file.is_empty() {
        return Ok(());
    }
    let path = audit_dir.join(&cursor.file);
    let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len < cursor.offset {
        return Err(format!(
            "{} is shorter than the export cursor ({len} < {} bytes)",
            cursor.file, cursor.offset
        ));
    }
    let start = cursor.offset.saturating_sub(BATCH_BYTES as u64);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(start))
        .and_then(|_| {
            (&mut file)
                .take(cursor.offset - start)
                .read_to_end(&mut tail)
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let body = tail.strip_suffix(b"\n").unwrap_or_default();
    let line = match memchr::memrchr(b'\n', body) {
        Some(i) => body.get(i + 1..).unwrap_or_default(),
        None => body,
    };
    if event_hash(line).as_deref() == Some(cursor.last_hash.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "the event before the export cursor in {} is not the one exported last (the file was changed)",
            cursor.file
        ))
    }
}

fn event_hash(line: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    value.get("hash")?.as_str().map(str::to_owned)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The next batch after `cursor`, moving the cursor to the next day file when the
/// current one is finished. `Ok(None)`: nothing new.
fn next_batch(
    audit_dir: &Path,
    day_files: &[PathBuf],
    cursor: &mut Cursor,
) -> Result<Option<Batch>, String> {
    if cursor.file.is_empty() {
        match day_files.first() {
            Some(first) => {
                *cursor = Cursor {
                    file: file_name(first),
                    offset: 0,
                    last_hash: String::new(),
                };
            }
            None => return Ok(None),
        }
    }
    loop {
        let path = audit_dir.join(&cursor.file);
        let data = match read_from(&path, cursor.offset) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let mut lines = Vec::new();
        let mut used = 0usize;
        let mut rest = data.as_slice();
        while lines.len() < BATCH_EVENTS {
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                break;
            };
            let (line, tail) = rest.split_at(nl);
            if !line.is_empty() {
                lines.push(line.to_vec());
            }
            used += nl + 1;
            rest = tail.get(1..).unwrap_or_default();
        }
        if used > 0 {
            return Ok(Some(Batch {
                file: cursor.file.clone(),
                end: cursor.offset + used as u64,
                lines,
            }));
        }
        // Nothing complete here: go on to a later day file if there is one. (A torn
        // last line of an older file is repaired by the writer before it moves on.)
        let later = day_files
            .iter()
            .map(|p| file_name(p))
            .find(|name| name.as_str() > cursor.file.as_str());
        match later {
            Some(name) => {
                cursor.file = name;
                cursor.offset = 0;
            }
            None => return Ok(None),
        }
    }
}

fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::new();
    (&mut file)
        .take(BATCH_BYTES as u64)
        .read_to_end(&mut data)?;
    // A single line longer than the batch limit: read on to its end.
    if !data.contains(&b'\n') && data.len() == BATCH_BYTES {
        let mut more = Vec::new();
        let mut reader = std::io::BufReader::new(file);
        std::io::BufRead::read_until(&mut reader, b'\n', &mut more)?;
        data.extend_from_slice(&more);
    }
    Ok(data)
}

/// Complete events after the cursor, over every day file (memchr over the backlog; the
/// export thread does this, never a request).
fn count_lag(audit_dir: &Path, day_files: &[PathBuf], cursor: &Cursor) -> u64 {
    let mut lag = 0u64;
    for path in day_files {
        let name = file_name(path);
        let offset = if cursor.file.is_empty() || name.as_str() > cursor.file.as_str() {
            0
        } else if name == cursor.file {
            cursor.offset
        } else {
            continue;
        };
        let Ok(mut file) = std::fs::File::open(audit_dir.join(&name)) else {
            continue;
        };
        use std::io::{Seek, SeekFrom};
        if file.seek(SeekFrom::Start(offset)).is_err() {
            continue;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    lag +=
                        memchr::memchr_iter(b'\n', buf.get(..n).unwrap_or_default()).count() as u64;
                }
            }
        }
    }
    lag
}

/// RFC 5424 `PARAM-VALUE` escaping: `"`, `\` and `]` get a backslash.
fn sd_escape(value: &str, out: &mut String) {
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Our structured-data id: `rampart@32473` (32473 is the private enterprise number
/// RFC 5612 reserves for documentation and examples; no number is registered for us).
pub const SD_ID: &str = "rampart@32473";

/// One RFC 5424 message for one audit line: severity from the decision, the event's
/// scalar fields as structured data, the one-line summary as the message.
pub fn syslog_message(line: &[u8], facility: u8, hostname: &str, app: &str) -> String {
    let value: serde_json::Value = serde_json::from_slice(line).unwrap_or(serde_json::Value::Null);
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).unwrap_or("");
    let decision = field("decision");
    let severity: u8 = match decision {
        "deny" => 4,
        "ask" | "unchecked" => 5,
        _ => 6,
    };
    let pri = u16::from(facility) * 8 + u16::from(severity);
    let ts = match field("ts") {
        "" => "-",
        ts => ts,
    };
    let msgid = match decision {
        "" => "-".to_owned(),
        d => d
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(32)
            .collect(),
    };
    let mut sd = String::new();
    sd.push('[');
    sd.push_str(SD_ID);
    if let Some(object) = value.as_object() {
        for (key, v) in object {
            let name: String = key
                .chars()
                .filter(|c| c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"'))
                .take(32)
                .collect();
            if name.is_empty() {
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            sd.push(' ');
            sd.push_str(&name);
            sd.push_str("=\"");
            // One line per message even for receivers that do not frame: control
            // characters are escaped as everywhere Rampart shows a command.
            let text = rampart_contract::printable::printable_string(text.as_bytes());
            sd_escape(&text, &mut sd);
            sd.push('"');
        }
    }
    sd.push(']');
    // The summary is one line: control characters of the command are escaped.
    let summary = format!(
        "{decision} {} (agent {}, policy {})",
        field("command"),
        field("agent"),
        match field("policy") {
            "" => "none",
            p => p,
        }
    );
    let summary = rampart_contract::printable::printable_string(summary.as_bytes());
    format!("<{pri}>1 {ts} {hostname} {app} - {msgid} {sd} {summary}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_are_refused_with_one_line() {
        let spec = ExportSpec::parse("syslog://127.0.0.1:5514?facility=auth&app=rp").unwrap();
        assert_eq!(
            spec.target,
            Target::Syslog {
                host: "127.0.0.1".into(),
                port: 5514,
                facility: 4,
                app: "rp".into(),
                tls: None
            }
        );
        let spec = ExportSpec::parse("http://localhost:8080/ingest?bearer_file=/t").unwrap();
        assert_eq!(
            spec.target,
            Target::Http {
                host: "localhost".into(),
                port: 8080,
                path: "/ingest".into(),
                bearer_file: Some("/t".into()),
                tls: None
            }
        );
        assert_eq!(
            ExportSpec::parse("syslog://h").unwrap_err(),
            "export URL `syslog://h` needs a port (host:port)"
        );
        assert_eq!(
            ExportSpec::parse("ftp://h:1").unwrap_err(),
            "export URL `ftp://h:1`: unknown scheme `ftp` (syslog://, syslog+tls://, http:// or https://)"
        );
        let spec = ExportSpec::parse("syslog+tls://h:6514?ca_file=/ca.pem").unwrap();
        assert_eq!(
            spec.target,
            Target::Syslog {
                host: "h".into(),
                port: 6514,
                facility: 16,
                app: "rampart".into(),
                tls: Some("/ca.pem".into())
            }
        );
        let spec = ExportSpec::parse("https://h:443/in").unwrap();
        assert!(
            matches!(spec.target, Target::Http { tls: Some(ca), .. } if ca == Path::new(SYSTEM_CA_FILE))
        );
        assert_eq!(
            ExportSpec::parse("syslog://h:1?ca_file=/x").unwrap_err(),
            "export URL `syslog://h:1?ca_file=/x`: unknown option `ca_file`"
        );
        assert_eq!(
            ExportSpec::parse("syslog://h:1?facility=nope").unwrap_err(),
            "export URL `syslog://h:1?facility=nope`: unknown facility `nope`"
        );
    }

    #[test]
    fn config_yaml_lists_exports() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(config_file_exports(home.path()), Ok(vec![]));
        std::fs::write(
            home.path().join("config.yaml"),
            "other: 1\nexport:\n  - syslog://127.0.0.1:6514\n  - http://127.0.0.1:8080/in\n",
        )
        .unwrap();
        let urls: Vec<String> = config_file_exports(home.path())
            .unwrap()
            .into_iter()
            .map(|s| s.url)
            .collect();
        assert_eq!(
            urls,
            ["syslog://127.0.0.1:6514", "http://127.0.0.1:8080/in"]
        );
        std::fs::write(home.path().join("config.yaml"), "export: syslog://h:1\n").unwrap();
        assert_eq!(
            config_file_exports(home.path()),
            Err(format!(
                "{}: `export` must be a list of URLs (syslog://HOST:PORT, http://HOST:PORT/PATH)",
                home.path().join("config.yaml").display()
            ))
        );
    }

    #[test]
    fn a_cursor_is_checked_against_the_event_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = r#"{"id":"1","hash":"sha256:a"}"#;
        let b = r#"{"id":"2","hash":"sha256:b"}"#;
        std::fs::write(dir.path().join("2026-12-03.jsonl"), format!("{a}\n{b}\n")).unwrap();
        let cursor = |offset: usize, hash: &str| Cursor {
            file: "2026-12-03.jsonl".into(),
            offset: offset as u64,
            last_hash: hash.into(),
        };
        assert_eq!(
            check_cursor(dir.path(), &cursor(a.len() + 1, "sha256:a")),
            Ok(())
        );
        assert_eq!(
            check_cursor(dir.path(), &cursor(a.len() + b.len() + 2, "sha256:b")),
            Ok(())
        );
        assert_eq!(
            check_cursor(dir.path(), &cursor(a.len() + 1, "sha256:x")),
            Err("the event before the export cursor in 2026-12-03.jsonl is not the one exported last (the file was changed)".into())
        );
        assert_eq!(
            check_cursor(dir.path(), &cursor(999, "sha256:b")),
            Err("2026-12-03.jsonl is shorter than the export cursor (58 < 999 bytes)".into())
        );
    }

    #[test]
    fn a_syslog_message_is_rfc5424_with_the_fields_as_structured_data() {
        let line = br#"{"id":"01J","ts":"2026-11-26T06:27:45.123456Z","agent":"a","session":"s","tool":"exec","command":"rm -rf ]\"x\n","decision":"deny","policy":"p","message":"m","eval_us":3,"prev_hash":"sha256:0","hash":"sha256:1"}"#;
        assert_eq!(
            syslog_message(line, 16, "host", "rampart"),
            r#"<132>1 2026-11-26T06:27:45.123456Z host rampart - deny [rampart@32473 agent="a" command="rm -rf \]\"x\\n" decision="deny" eval_us="3" hash="sha256:1" id="01J" message="m" policy="p" prev_hash="sha256:0" session="s" tool="exec" ts="2026-11-26T06:27:45.123456Z"] deny rm -rf ]"x\n (agent a, policy p)"#
        );
    }
}
