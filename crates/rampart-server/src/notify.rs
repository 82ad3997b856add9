//! Notifications (issue 15): an `ask` (and, if asked for, a deny or a fail-open report) is
//! posted to webhooks so that a person away from the terminal hears of it.
//!
//! Targets come from `rampart serve --notify URL` (repeatable; JSON, on asks) and the
//! `notify:` list of `$RAMPART_HOME/config.yaml` (`url`, `format: json|slack|discord|
//! ntfy`, `on: [ask, deny, fail-open]`). Delivery never touches the decision path: the
//! handler only `try_send`s into a bounded queue; a worker task posts each notice to each
//! target in its own task, retrying with backoff. No request ever carries the admin
//! token or an agent credential. What failed is counted for `serve status` and `/metrics`.
//!
//! `http://` is posted directly; `https://` (Slack, Discord, ntfy.sh) through `curl`,
//! because the server links no TLS stack. `format: desktop` (no `url`) runs `notify-send`
//! where a session bus exists.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How a notice is encoded for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The [`Notice`] itself as JSON.
    Json,
    /// `{"text": …}` (Slack incoming webhook).
    Slack,
    /// `{"content": …}` (Discord webhook).
    Discord,
    /// The text as a plain body with a `Title` header (ntfy topic URL).
    Ntfy,
    /// A desktop notification (`notify-send`) where a session bus exists; no `url`.
    Desktop,
}

impl Format {
    fn parse(word: &str) -> Option<Format> {
        match word {
            "json" => Some(Format::Json),
            "slack" => Some(Format::Slack),
            "discord" => Some(Format::Discord),
            "ntfy" => Some(Format::Ntfy),
            "desktop" => Some(Format::Desktop),
            _ => None,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ask,
    Deny,
    FailOpen,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ask => "ask",
            Kind::Deny => "deny",
            Kind::FailOpen => "fail-open",
        }
    }

    fn parse(word: &str) -> Option<Kind> {
        [Kind::Ask, Kind::Deny, Kind::FailOpen]
            .into_iter()
            .find(|k| k.as_str() == word)
    }
}

/// One place notices go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub format: Format,
    pub on: Vec<Kind>,
}

impl Target {
    /// `--notify URL`: JSON, on asks.
    pub fn from_flag(url: &str) -> Result<Target, String> {
        check_url(url)?;
        Ok(Target {
            url: url.to_owned(),
            format: Format::Json,
            on: vec![Kind::Ask],
        })
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("notify URL `{url}` must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace) {
        return Err(format!("notify URL `{url}` has no host"));
    }
    Ok(())
}

/// The `notify:` section of `config.yaml` (a missing file or section is no targets).
pub fn load_config(path: &Path) -> Result<Vec<Target>, String> {
    use saphyr::{LoadableYamlNode, Yaml};
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let at = |what: String| format!("{}: {what}", path.display());
    let docs = Yaml::load_from_str(&text).map_err(|e| at(e.to_string()))?;
    let Some(doc) = docs.first() else {
        return Ok(Vec::new());
    };
    let Some(list) = doc.as_mapping_get("notify") else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_sequence() else {
        return Err(at("`notify` must be a list".into()));
    };
    let mut targets = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let n = i + 1;
        let format = match entry.as_mapping_get("format") {
            None => Format::Json,
            Some(f) => f.as_str().and_then(Format::parse).ok_or_else(|| {
                at(format!(
                    "notify entry {n}: `format` must be json, slack, discord, ntfy or desktop"
                ))
            })?,
        };
        let url = match entry.as_mapping_get("url").and_then(Yaml::as_str) {
            Some(url) => {
                check_url(url).map_err(at)?;
                url
            }
            None if format == Format::Desktop => "",
            None => return Err(at(format!("notify entry {n} has no `url`"))),
        };
        let on = match entry.as_mapping_get("on") {
            None => vec![Kind::Ask],
            Some(on) => on
                .as_sequence()
                .ok_or_else(|| at(format!("notify entry {n}: `on` must be a list")))?
                .iter()
                .map(|k| {
                    k.as_str().and_then(Kind::parse).ok_or_else(|| {
                        at(format!(
                            "notify entry {n}: `on` takes ask, deny and fail-open"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        targets.push(Target {
            url: url.to_owned(),
            format,
            on,
        });
    }
    Ok(targets)
}

/// What a notification says (the `json` format's body, field for field).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Notice {
    /// `ask`, `deny` or `fail-open`.
    pub event: &'static str,
    /// The approval id of an ask; the audit id otherwise.
    pub id: String,
    /// Redacted, as in the audit trail.
    pub command: String,
    pub agent: String,
    pub session: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    pub message: String,
    /// The dashboard page (this machine only).
    pub dashboard: String,
}

impl Notice {
    fn text(&self) -> String {
        let cwd = self
            .cwd
            .as_deref()
            .map(|c| format!(", cwd {c}"))
            .unwrap_or_default();
        let what = match self.event {
            "ask" => format!(
                "waits for approval: rampart approve {} / rampart deny {}",
                self.id, self.id
            ),
            "deny" => "was denied".to_owned(),
            _ => "ran unchecked (fail-open)".to_owned(),
        };
        format!(
            "Rampart: `{}` {what} (agent {}, session {}{cwd}): {} {}",
            self.command, self.agent, self.session, self.message, self.dashboard
        )
    }

    fn body(&self, format: Format) -> (&'static str, Vec<u8>) {
        let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap_or_default();
        match format {
            Format::Json => (
                "application/json",
                serde_json::to_vec(self).unwrap_or_default(),
            ),
            Format::Slack => (
                "application/json",
                json(serde_json::json!({ "text": self.text() })),
            ),
            Format::Discord => (
                "application/json",
                json(serde_json::json!({ "content": self.text() })),
            ),
            Format::Ntfy | Format::Desktop => {
                ("text/plain; charset=utf-8", self.text().into_bytes())
            }
        }
    }
}

/// Delivery counters (for `serve status` and `/metrics`).
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    /// Deliveries given up after every retry.
    pub failed: AtomicU64,
    /// Notices dropped because the queue was full.
    pub dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_last_error(&self, e: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
    }
}

/// Notices waiting for the worker at most; beyond, they are dropped and counted.
const QUEUE: usize = 1024;
/// Attempts per delivery; the waits between them double from [`FIRST_BACKOFF`].
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// One attempt, connect to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Notifier {
    tx: Option<mpsc::Sender<(Kind, Notice)>>,
    /// The kinds some target wants: others are never queued (a flood of denies cannot
    /// crowd out the asks).
    wanted: Vec<Kind>,
    pub targets: usize,
    pub stats: Arc<Stats>,
    /// `http://127.0.0.1:PORT/dashboard/`, known once the listener is bound.
    dashboard: OnceLock<String>,
}

impl Notifier {
    /// Starts the worker (inside the runtime); with no targets it does nothing at all.
    pub fn start(targets: Vec<Target>) -> Notifier {
        let stats = Arc::new(Stats::default());
        let n = targets.len();
        let mut wanted: Vec<Kind> = targets.iter().flat_map(|t| t.on.iter().copied()).collect();
        wanted.dedup();
        let tx = (!targets.is_empty()).then(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(worker(Arc::new(targets), rx, stats.clone()));
            tx
        });
        Notifier {
            tx,
            wanted,
            targets: n,
            stats,
            dashboard: OnceLock::new(),
        }
    }

    pub fn set_dashboard(&self, url: String) {
        let _ = self.dashboard.set(url);
    }

    pub fn dashboard(&self) -> String {
        self.dashboard.get().cloned().unwrap_or_default()
    }

    /// Whether some target wants this kind (callers skip building the notice if not).
    pub fn wants(&self, kind: Kind) -> bool {
        self.tx.is_some() && self.wanted.contains(&kind)
    }

    /// Queues a notice; never waits.
    pub fn notify(&self, kind: Kind, notice: Notice) {
        if let Some(tx) = &self.tx
            && self.wanted.contains(&kind)
            && tx.try_send((kind, notice)).is_err()
        {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn worker(
    targets: Arc<Vec<Target>>,
    mut rx: mpsc::Receiver<(Kind, Notice)>,
    stats: Arc<Stats>,
) {
    while let Some((kind, notice)) = rx.recv().await {
        for target in targets.iter().filter(|t| t.on.contains(&kind)) {
            let (content_type, body) = notice.body(target.format);
            let (url, stats, format) = (target.url.clone(), stats.clone(), target.format);
            let title = format!("Rampart: {}", kind.as_str());
            tokio::spawn(async move {
                let mut wait = FIRST_BACKOFF;
                let url = if format == Format::Desktop {
                    "desktop".to_owned()
                } else {
                    url
                };
                for attempt in 1..=ATTEMPTS {
                    let sent = if format == Format::Desktop {
                        desktop(&title, &body).await
                    } else {
                        post(&url, content_type, &title, &body).await
                    };
                    match sent {
                        Ok(()) => {
                            stats.sent.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Err(e) => {
                            stats.set_last_error(format!("{url}: {e}"));
                            if attempt < ATTEMPTS {
                                tokio::time::sleep(wait).await;
                                wait *= 2;
                            }
                        }
                    }
                }
                stats.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "rampart: notify: gave up on {url} after {ATTEMPTS} attempts: {}",
                    stats.last_error().unwrap_or_default()
                );
            });
        }
    }
}

/// One POST; `Ok` on a 2xx answer.
async fn post(url: &str, content_type: &str, title: &str, body: &[u8]) -> Result<(), String> {
    if url.starts_with("https://") {
        return post_with_curl(url, content_type, title, body).await;
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let host_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']')
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(&host_port)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: rampart-notify\r\nContent-Type: {content_type}\r\nTitle: {title}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        stream
            .write_all(body)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        // The status line is all we need; read until it is complete (bounded).
        while !answer.contains(&b'\n') && answer.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(buf.get(..n).unwrap_or(&[]));
        }
        let line = String::from_utf8_lossy(&answer);
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| "no HTTP answer".to_owned())?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
        .await
        .map_err(|_| "no answer in time".to_owned())?
}

/// `notify-send TITLE TEXT` where a session bus exists (`DBUS_SESSION_BUS_ADDRESS`).
async fn desktop(title: &str, body: &[u8]) -> Result<(), String> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|v| v.is_empty()) {
        return Err("no session bus (DBUS_SESSION_BUS_ADDRESS is not set)".to_owned());
    }
    let (title, text) = (title.to_owned(), String::from_utf8_lossy(body).into_owned());
    let run = move || -> Result<(), String> {
        let out = std::process::Command::new("notify-send")
            .args(["--app-name=Rampart", "--", &title, &text])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run notify-send ({e})"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "notify-send failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    tokio::task::spawn_blocking(run)
        .await
        .map_err(|e| e.to_string())?
}

async fn post_with_curl(
    url: &str,
    content_type: &str,
    title: &str,
    body: &[u8],
) -> Result<(), String> {
    let (url, content_type, title, body) = (
        url.to_owned(),
        content_type.to_owned(),
        title.to_owned(),
        body.to_vec(),
    );
    let run = move || -> Result<(), String> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5"])
            .args(["-H", &format!("Content-Type: {content_type}")])
            .args(["-H", &format!("Title: {title}")])
            .args(["--data-binary", "@-", "--", &url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .spawn()
            .map_err(|e| format!("cannot run curl for https ({e})"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&body);
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if code.starts_with('2') {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            Err(format!("HTTP {code} {err}").trim().to_owned())
        }
    };
    tokio::task::spawn_blocking(run)
        .await
        .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_section_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        assert_eq!(load_config(&path), Ok(vec![]));
        std::fs::write(
            &path,
            "notify:\n  - url: http://127.0.0.1:1/hook\n  - url: https://hooks.slack.com/x\n    format: slack\n    on: [ask, deny, fail-open]\n",
        )
        .unwrap();
        assert_eq!(
            load_config(&path),
            Ok(vec![
                Target {
                    url: "http://127.0.0.1:1/hook".into(),
                    format: Format::Json,
                    on: vec![Kind::Ask]
                },
                Target {
                    url: "https://hooks.slack.com/x".into(),
                    format: Format::Slack,
                    on: vec![Kind::Ask, Kind::Deny, Kind::FailOpen]
                },
            ])
        );
        std::fs::write(&path, "notify:\n  - url: http://x\n    format: teams\n").unwrap();
        assert_eq!(
            load_config(&path),
            Err(format!(
                "{}: notify entry 1: `format` must be json, slack, discord, ntfy or desktop",
                path.display()
            ))
        );
        assert_eq!(
            Target::from_flag("ftp://x"),
            Err("notify URL `ftp://x` must start with http:// or https://".into())
        );
    }
}
