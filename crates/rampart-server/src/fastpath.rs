//! The Unix socket's fast path: the preload library's and the supervisor's preflight
//! checks served by plain threads, without the general HTTP stack or async scheduling.
//!
//! Why: a checked spawn waits for this answer. Measured on a 2-vCPU VM, the HTTP stack
//! (tokio, hyper, axum, tower) cost the server ~47 µs of CPU per check, against ~8 µs for
//! a server that answers from a blocking read; every microsecond is spent while the
//! agent's program waits (bench/RESULTS.md, "where the time goes").
//!
//! What: `WORKERS` threads share one epoll set holding the listener, every idle
//! connection (one-shot, so exactly one worker handles a connection at a time) and a stop
//! eventfd. A worker reads what a connection sent and, for each complete
//! `POST /v1/preflight/exec` request with a `Content-Length` body of at most
//! [`BODY_LIMIT`], checks the bearer token (`auth::identify_token`), calls the same
//! decision core as the HTTP handler (`decide::decide_body`, which audits before the
//! answer exists) and writes the answer. The wire is the HTTP/1.1 subset the library
//! speaks, so the library needs no second client and a `curl --unix-socket` still works.
//!
//! Everything else is handed over, with the bytes already read, to the HTTP stack on the
//! async runtime, which then serves the connection to its end: any other method, path or
//! HTTP version, chunked bodies, `Expect`, oversized or malformed heads (so every error
//! answer stays the HTTP handler's), an answer the client does not read (the socket
//! buffer is full), and an `ask` that must be held for a person (`decide::Hold`, awaited
//! there). A connection is in exactly one place at a time: this module's table, a worker,
//! or a task.
//!
//! Limits are the HTTP path's: the connection cap is shared (`Connections`), a connection
//! idle (or stalled mid-request) for [`IDLE_TIMEOUT`] is closed.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use rustix::event::epoll::{self, EventData, EventFlags};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;

use crate::api::ApiError;
use crate::decide::{self, Answer, BODY_LIMIT, Decided};
use crate::serve::{Connections, IDLE_TIMEOUT};
use crate::state::AppState;
use crate::wire::ErrorBody;

/// Threads serving the fast path. Two keep a second check moving while one is being
/// written to the audit trail; more would only contend on the trail's lock.
const WORKERS: usize = 2;

/// The longest request head the fast path reads; a longer one goes to the HTTP stack
/// (which answers 431).
const HEAD_MAX: usize = 16 * 1024;

/// The request line the fast path serves; every other goes to the HTTP stack.
const PREFLIGHT_EXEC: &[u8] = b"POST /v1/preflight/exec HTTP/1.1\r\n";

const LISTENER: u64 = 0;
const STOP: u64 = 1;
/// Connection keys start here.
const FIRST_KEY: u64 = 2;

/// A connection between requests: its socket, what it sent that is not answered yet,
/// when it last did something, and its place under the connection cap.
struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    last: Instant,
    permit: OwnedSemaphorePermit,
}

/// What the fast path shares between its workers.
struct Shared {
    epoll: OwnedFd,
    listener: UnixListener,
    stop: OwnedFd,
    /// Idle connections, by their epoll key. A worker takes a connection out while it
    /// serves it and puts it back before re-arming it.
    conns: Mutex<HashMap<u64, Conn>>,
    next_key: AtomicU64,
    state: Arc<AppState>,
    connections: Arc<Connections>,
    /// The HTTP stack that takes over connections the fast path does not serve.
    http: crate::serve::HttpHandoff,
}

/// The running fast path; [`Running::stop`] ends it.
pub(crate) struct Running {
    shared: Arc<Shared>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops the workers (each finishes the connection it is serving) and closes the
    /// idle connections. Handed-over connections are the HTTP stack's to drain.
    pub(crate) fn stop(self) {
        let _ = rustix::io::write(&self.shared.stop, &1u64.to_ne_bytes());
        for worker in self.workers {
            let _ = worker.join();
        }
        if let Ok(mut conns) = self.shared.conns.lock() {
            conns.clear();
        }
    }
}

/// Starts serving `listener` (non-blocking) on the fast path.
pub(crate) fn start(
    listener: UnixListener,
    state: Arc<AppState>,
    connections: Arc<Connections>,
    http: crate::serve::HttpHandoff,
) -> io::Result<Running> {
    listener.set_nonblocking(true)?;
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let stop = rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    )?;
    epoll::add(
        &epoll,
        &listener,
        EventData::new_u64(LISTENER),
        EventFlags::IN | EventFlags::ONESHOT,
    )?;
    // Level-triggered and never read: once stopped, every worker sees it.
    epoll::add(&epoll, &stop, EventData::new_u64(STOP), EventFlags::IN)?;
    let shared = Arc::new(Shared {
        epoll,
        listener,
        stop,
        conns: Mutex::new(HashMap::new()),
        next_key: AtomicU64::new(FIRST_KEY),
        state,
        connections,
        http,
    });
    let mut workers = Vec::with_capacity(WORKERS);
    for n in 0..WORKERS {
        let shared = shared.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("rampart-fast-{n}"))
                .spawn(move || worker(&shared))?,
        );
    }
    Ok(Running { shared, workers })
}

fn worker(shared: &Shared) {
    let empty = epoll::Event {
        flags: EventFlags::empty(),
        data: EventData::new_u64(0),
    };
    let mut events = [empty; 16];
    let tick = rustix::fs::Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    let mut last_sweep = Instant::now();
    loop {
        let n = match epoll::wait(&shared.epoll, &mut events[..], Some(&tick)) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => 0,
            Err(e) => {
                eprintln!("rampart: the Unix socket's fast path stopped: epoll_wait: {e}");
                return;
            }
        };
        for event in events.iter().take(n) {
            match event.data.u64() {
                STOP => return,
                LISTENER => accept_all(shared),
                key => serve_key(shared, key),
            }
        }
        if last_sweep.elapsed() >= std::time::Duration::from_secs(1) {
            last_sweep = Instant::now();
            sweep_idle(shared);
        }
    }
}

/// Accepts every waiting connection, registers each, and re-arms the listener.
fn accept_all(shared: &Shared) {
    loop {
        // accept4 with SOCK_NONBLOCK: no second system call per connection (every check
        // of a vfork child — CPython, Node — is a fresh connection).
        let flags = rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC;
        let stream = match rustix::net::accept_with(&shared.listener, flags) {
            Ok(fd) => UnixStream::from(fd),
            Err(rustix::io::Errno::AGAIN) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                // EMFILE and the like: leave the rest queued and try again after a
                // pause, as the HTTP listener does (the connection cap keeps this rare;
                // re-armed at once, the level-triggered listener would spin).
                eprintln!("rampart: accepting on the Unix socket: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                break;
            }
        };
        let Some(permit) = shared.connections.try_slot() else {
            shared.http.refuse(stream);
            continue;
        };
        let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
        let conn = Conn {
            stream,
            buf: Vec::new(),
            last: Instant::now(),
            permit,
        };
        // The request usually follows the connect at once: serve it now rather than
        // after another trip through epoll.
        serve_conn(shared, key, conn, true);
    }
    let _ = epoll::modify(
        &shared.epoll,
        &shared.listener,
        EventData::new_u64(LISTENER),
        EventFlags::IN | EventFlags::ONESHOT,
    );
}

fn serve_key(shared: &Shared, key: u64) {
    let taken = shared.conns.lock().ok().and_then(|mut c| c.remove(&key));
    if let Some(conn) = taken {
        serve_conn(shared, key, conn, false);
    }
}

/// What became of a connection after reading from it.
enum Next {
    /// Waits for its next request in the epoll set.
    Idle(Conn),
    /// Closed (EOF, error, `Connection: close`).
    Closed,
    /// Given to the HTTP stack.
    HandedOver,
}

fn serve_conn(shared: &Shared, key: u64, conn: Conn, fresh: bool) {
    match serve(shared, conn) {
        Next::Idle(conn) => {
            let fd = conn.stream.as_fd();
            let flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT;
            // Registered (or re-armed) only once it is back in the table, so the worker
            // woken for it finds it there.
            let armed = {
                let Ok(mut conns) = shared.conns.lock() else {
                    return;
                };
                let armed = if fresh {
                    epoll::add(&shared.epoll, fd, EventData::new_u64(key), flags)
                } else {
                    epoll::modify(&shared.epoll, fd, EventData::new_u64(key), flags)
                };
                if armed.is_ok() {
                    conns.insert(key, conn);
                }
                armed
            };
            if let Err(e) = armed {
                eprintln!("rampart: the Unix socket's fast path dropped a connection: {e}");
            }
        }
        Next::Closed | Next::HandedOver => {}
    }
}

/// Reads what the connection sent and answers every complete request in it.
fn serve(shared: &Shared, mut conn: Conn) -> Next {
    let mut chunk = [0u8; 8192];
    let mut eof = false;
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => {
                conn.buf.extend_from_slice(&chunk[..n]);
                if conn.buf.len() > HEAD_MAX + BODY_LIMIT {
                    // More than any request the fast path serves: the HTTP stack's.
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Next::Closed,
        }
    }
    conn.last = Instant::now();
    let mut out = Vec::new();
    loop {
        match parse_head(&conn.buf) {
            Head::Incomplete if eof => return Next::Closed,
            Head::Incomplete => break,
            Head::Other => {
                shared
                    .http
                    .take_over(conn.stream, out, None, conn.buf, conn.permit);
                return Next::HandedOver;
            }
            Head::Preflight {
                head_len,
                body_len,
                token,
                close,
            } => {
                let end = head_len + body_len;
                if conn.buf.len() < end {
                    if eof {
                        return Next::Closed;
                    }
                    break;
                }
                let body = conn.buf.get(head_len..end).unwrap_or_default();
                let token = token.map(|(a, b)| conn.buf.get(a..b).unwrap_or_default());
                let decided = match crate::auth::identify_token(&shared.state, token) {
                    Ok(caller) => decide::decide_body(&shared.state, caller.agent(), "exec", body),
                    Err(e) => Decided::Now(Answer::Refused(e)),
                };
                conn.buf.drain(..end);
                match decided {
                    Decided::Now(answer) => render(&answer, close, &mut out),
                    Decided::Hold(hold) => {
                        let rest = std::mem::take(&mut conn.buf);
                        shared.http.take_over(
                            conn.stream,
                            out,
                            Some((hold, close)),
                            rest,
                            conn.permit,
                        );
                        return Next::HandedOver;
                    }
                }
                if close {
                    // Nothing after `Connection: close` is served.
                    conn.buf.clear();
                    return match write_or_hand_over(shared, conn, out) {
                        Some(_) => Next::Closed,
                        None => Next::HandedOver,
                    };
                }
            }
        }
    }
    if !out.is_empty() {
        match write_or_hand_over(shared, conn, out) {
            Some(kept) => conn = kept,
            None => return Next::HandedOver,
        }
    }
    if eof {
        return Next::Closed;
    }
    Next::Idle(conn)
}

/// Writes the answers in `out`; the connection back when the socket took them all. When
/// it did not (the client does not read its answers), the rest is written, and the
/// connection served from its unread bytes on, by the HTTP stack — never by blocking a
/// worker here, and never as a cut answer.
fn write_or_hand_over(shared: &Shared, mut conn: Conn, mut out: Vec<u8>) -> Option<Conn> {
    let written = write_now(&mut conn.stream, &out);
    if written == out.len() {
        return Some(conn);
    }
    out.drain(..written);
    shared
        .http
        .take_over(conn.stream, out, None, conn.buf, conn.permit);
    None
}

/// Writes what the socket takes now; how much that was.
fn write_now(stream: &mut UnixStream, bytes: &[u8]) -> usize {
    let mut done = 0;
    while done < bytes.len() {
        match stream.write(bytes.get(done..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

/// Closes connections that sent nothing (or stalled mid-request) for [`IDLE_TIMEOUT`].
fn sweep_idle(shared: &Shared) {
    let now = Instant::now();
    let stale: Vec<Conn> = match shared.conns.lock() {
        Ok(mut conns) => {
            let keys: Vec<u64> = conns
                .iter()
                .filter(|(_, c)| now.duration_since(c.last) >= IDLE_TIMEOUT)
                .map(|(k, _)| *k)
                .collect();
            keys.iter().filter_map(|k| conns.remove(k)).collect()
        }
        Err(_) => return,
    };
    for conn in stale {
        let _ = epoll::delete(&shared.epoll, &conn.stream);
        drop(conn.permit);
    }
}

/// The answer as HTTP/1.1 bytes, appended to `out`.
fn render(answer: &Answer, close: bool, out: &mut Vec<u8>) {
    let (status, body) = match answer {
        Answer::Decided(body) => (StatusCode::OK, serde_json::to_vec(body)),
        Answer::Refused(ApiError { status, message }) => (
            *status,
            serde_json::to_vec(&ErrorBody {
                error: message.clone(),
            }),
        ),
    };
    let body = body.unwrap_or_else(|_| b"{\"error\":\"answer could not be encoded\"}".to_vec());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        if close { "connection: close\r\n" } else { "" }
    );
    out.extend_from_slice(&body);
}

/// The answer of a held ask, written by the HTTP stack's task (see `serve.rs`).
pub(crate) async fn write_answer<W: tokio::io::AsyncWrite + Unpin>(
    io: &mut W,
    answer: &Answer,
    close: bool,
) -> io::Result<()> {
    let mut out = Vec::new();
    render(answer, close, &mut out);
    io.write_all(&out).await
}

/// What the start of a connection's unread bytes is.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// Not a whole head yet.
    Incomplete,
    /// A preflight the fast path serves: the head's length (through the blank line), the
    /// body's, where the bearer token is in the buffer, and whether the client asked to
    /// close after the answer.
    Preflight {
        head_len: usize,
        body_len: usize,
        token: Option<(usize, usize)>,
        close: bool,
    },
    /// Anything else: the HTTP stack's.
    Other,
}

fn parse_head(buf: &[u8]) -> Head {
    let prefix = buf.len().min(PREFLIGHT_EXEC.len());
    if buf.get(..prefix) != PREFLIGHT_EXEC.get(..prefix) {
        return Head::Other;
    }
    let window = buf.get(..buf.len().min(HEAD_MAX)).unwrap_or_default();
    let Some(end) = memchr::memmem::find(window, b"\r\n\r\n") else {
        return if buf.len() >= HEAD_MAX {
            Head::Other
        } else {
            Head::Incomplete
        };
    };
    let mut body_len = None;
    let mut token = None;
    let mut close = false;
    let mut at = PREFLIGHT_EXEC.len();
    while at < end {
        let line_end = memchr::memmem::find(buf.get(at..end + 2).unwrap_or_default(), b"\r\n")
            .map_or(end, |i| at + i);
        let line = buf.get(at..line_end).unwrap_or_default();
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Head::Other;
        };
        let name = line.get(..colon).unwrap_or_default();
        let raw = line.get(colon + 1..).unwrap_or_default();
        let value = raw.trim_ascii();
        if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
            return Head::Other;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if body_len.is_some()
                || value.is_empty()
                || value.len() > 8
                || !value.iter().all(u8::is_ascii_digit)
            {
                return Head::Other;
            }
            let n = value
                .iter()
                .fold(0usize, |n, &b| n * 10 + usize::from(b - b'0'));
            if n > BODY_LIMIT {
                return Head::Other;
            }
            body_len = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Head::Other;
        } else if name.eq_ignore_ascii_case(b"authorization") {
            if token.is_some() {
                return Head::Other;
            }
            // `Bearer <token>`, the scheme case-insensitive (RFC 7235 §2.1).
            let start = at + colon + 1 + (raw.len() - raw.trim_ascii_start().len());
            let Some(space) = value.iter().position(|&b| b == b' ') else {
                return Head::Other;
            };
            if !value
                .get(..space)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer"))
            {
                return Head::Other;
            }
            let rest = value.get(space..).unwrap_or_default();
            let lead = rest.len() - rest.trim_ascii_start().len();
            let t_start = start + space + lead;
            let t_end = start + value.len();
            token = Some((t_start, t_end));
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value
                .split(|&b| b == b',')
                .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        at = line_end + 2;
    }
    match body_len {
        Some(body_len) => Head::Preflight {
            head_len: end + 4,
            body_len,
            token,
            close,
        },
        None => Head::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::{Head, parse_head};

    #[test]
    fn heads() {
        let req = b"POST /v1/preflight/exec HTTP/1.1\r\nHost: x\r\nauthorization:  bearer  tok \r\nContent-Length: 2\r\n\r\n{}";
        let Head::Preflight {
            head_len,
            body_len,
            token: Some((a, b)),
            close: false,
        } = parse_head(req)
        else {
            panic!("{:?}", parse_head(req));
        };
        assert_eq!(
            (&req[a..b], body_len, &req[head_len..]),
            (&b"tok"[..], 2, &b"{}"[..])
        );
        assert_eq!(parse_head(b"POST /v1/pre"), Head::Incomplete);
        assert_eq!(
            parse_head(b"POST /v1/preflight/exec HTTP/1.1\r\nHost: x\r\n"),
            Head::Incomplete
        );
        for other in [
            &b"GET /v1/status HTTP/1.1\r\n\r\n"[..],
            b"POST /v1/preflight/exec HTTP/1.0\r\n",
            b"POST /v1/preflight/exec2 HTTP/1.1\r\n",
            b"POST /v1/preflight/exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /v1/preflight/exec HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST /v1/preflight/exec HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
            b"POST /v1/preflight/exec HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"POST /v1/preflight/exec HTTP/1.1\r\nno colon\r\nContent-Length: 1\r\n\r\n",
            b"POST /v1/preflight/exec HTTP/1.1\r\nAuthorization: Basic abc\r\nContent-Length: 1\r\n\r\n",
            b"POST /v1/preflight/exec HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(parse_head(other), Head::Other, "{}", String::from_utf8_lossy(other));
        }
        let close = b"POST /v1/preflight/exec HTTP/1.1\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_head(close),
            Head::Preflight {
                close: true,
                token: None,
                ..
            }
        ));
    }
}
