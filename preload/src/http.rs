//! A small blocking HTTP/1.1 client for exactly one request shape: `POST` with a streamed
//! JSON body, over TCP (IPv4 literal or `localhost`) or a Unix socket. Timeouts use
//! `poll`; sockets are non-blocking and close-on-exec; `send` uses `MSG_NOSIGNAL`.
//!
//! Keep-alive: one idle connection per process is cached in `CONN`, tagged with the pid
//! that opened it. A process only takes the cached connection when the tag equals its own
//! pid from the kernel. That makes the cache safe in both kinds of children:
//! - a `fork` child inherits the parent's tag, sees a different pid and connects afresh
//!   (it must not share the parent's socket);
//! - a `vfork` child shares the parent's memory: it also sees a foreign tag and never
//!   takes the parent's connection. It must not *store* one either (that would write into
//!   the parent's memory), so exec-family wrappers pass `may_cache = false` and close
//!   their fresh connection; only `system`, `popen` and `posix_spawn*`, which run in a
//!   real process, leave a connection behind.
//!
//! Taking is a compare-and-swap, so two threads never use one connection at once.

use core::ffi::c_int;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::config::{Config, Target};
use crate::sink::{BufWriter, Counter, Sink};
use crate::sys;
use crate::syscall;

pub const CONNECT_TIMEOUT_MS: i64 = 1000;
pub const ANSWER_TIMEOUT_MS: i64 = 2000;
/// Largest answer (headers + body) we accept; bigger answers are refused as oversized.
pub const RESPONSE_MAX: usize = 16 * 1024;

/// Why no answer came. Only the first three are "nobody answered" (the one case where
/// fail-open may run the program); everything else refuses in enforce mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fail {
    /// Could not connect (refused, nothing listening, no such socket): nobody answered.
    Unreachable,
    /// Not one answer byte in time: nobody answered.
    Timeout,
    /// Accepted, then closed or reset before any answer byte: nobody answered.
    Closed,
    /// The request cannot be built (`RAMPART_URL` refused, the reason completes
    /// "RAMPART_URL <url> is ..."); no connection is attempted: refused in enforce mode.
    Unusable(&'static [u8]),
    /// Some answer bytes, then the connection closed or the time ran out: refused.
    Cut,
    /// Not HTTP we understand: refused in enforce mode.
    Malformed,
    /// Answer larger than `RESPONSE_MAX`: refused in enforce mode.
    Oversized,
}

impl Fail {
    pub fn describe(self) -> &'static [u8] {
        match self {
            Fail::Unreachable => b"policy server unreachable",
            Fail::Unusable(why) => why,
            Fail::Timeout => b"policy server did not answer in time",
            Fail::Closed => b"policy server closed the connection without an answer",
            Fail::Cut => b"the policy server's answer was cut off",
            Fail::Malformed => b"malformed answer from the policy server",
            Fail::Oversized => b"oversized answer from the policy server",
        }
    }
}

/// Status code and the body's range inside the response buffer.
pub struct Response {
    pub status: u16,
    pub body_start: usize,
    pub body_len: usize,
}

/// This process's idle kept-alive connection: pid in the high half, fd + 1 in the low
/// half (0: none, [`FILLING`]: a thread is storing one).
static CONN: AtomicU64 = AtomicU64::new(0);
const FILLING: u32 = u32::MAX;
static CONN_INO: AtomicU64 = AtomicU64::new(0);

fn pack(pid: i32, fd: c_int) -> u64 {
    (u64::from(pid as u32) << 32) | u64::from((fd as u32).wrapping_add(1))
}

fn inode(fd: c_int) -> Option<u64> {
    let st = syscall::fstat(fd).ok()?;
    if (st.st_mode & libc::S_IFMT) != libc::S_IFSOCK {
        return None;
    }
    Some(st.st_ino)
}

/// Takes this process's cached connection, if it is still ours and still open; with
/// the socket's inode, so that putting it back needs no second `fstat`.
fn take_cached(pid: i32) -> Option<(c_int, u64)> {
    let v = CONN.load(Ordering::Acquire);
    if (v >> 32) as u32 != pid as u32 || v as u32 == 0 || v as u32 == FILLING {
        return None;
    }
    // The inode is read while the slot still holds `v`: a thread storing another
    // connection writes CONN_INO only after it has claimed the emptied slot (see
    // `put_cached`), so this is the inode stored with `v`.
    let ino = CONN_INO.load(Ordering::Acquire);
    CONN.compare_exchange(v, pack(pid, -1), Ordering::AcqRel, Ordering::Relaxed)
        .ok()?;
    let fd = (v as u32).wrapping_sub(1) as c_int;
    // The program may have closed our fd and reused the number: only use it if it is
    // still the very socket we stored.
    if inode(fd)? != ino {
        return None;
    }
    if syscall::poll1(fd, libc::POLLIN, 0) != Ok(0) {
        // Readable while idle means EOF or garbage: the server dropped it.
        close(fd);
        return None;
    }
    Some((fd, ino))
}

/// Leaves `fd` as this process's idle connection. `ino` is its inode when already known
/// (a connection taken from the cache), else it is looked up.
fn put_cached(pid: i32, fd: c_int, ino: Option<u64>) {
    let Some(ino) = ino.or_else(|| inode(fd)) else {
        return close(fd);
    };
    let cur = CONN.load(Ordering::Acquire);
    if (cur >> 32) as u32 == pid as u32 && cur as u32 != 0 {
        // Another thread already left one (or is leaving one); keep theirs.
        return close(fd);
    }
    // Claim the slot first, then write the inode, then publish: a taker never reads an
    // inode that belongs to another connection than the one it takes. (Writing the
    // inode before the claim let a concurrent taker see a mismatch and drop its own
    // socket without closing it.)
    let filling = (u64::from(pid as u32) << 32) | u64::from(FILLING);
    if CONN
        .compare_exchange(cur, filling, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return close(fd);
    }
    CONN_INO.store(ino, Ordering::Release);
    CONN.store(pack(pid, fd), Ordering::Release);
}

fn close(fd: c_int) {
    syscall::close(fd);
}

fn wait_fd(fd: c_int, events: i16, deadline: i64) -> Result<(), Fail> {
    loop {
        let left = deadline - sys::now_ms();
        if left <= 0 {
            return Err(Fail::Timeout);
        }
        match syscall::poll1(fd, events, left) {
            Ok(0) | Err(libc::EINTR) => {}
            Ok(_) => return Ok(()),
            Err(_) => return Err(Fail::Closed),
        }
    }
}

fn connect(cfg: &Config, deadline: i64) -> Result<c_int, Fail> {
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    let (fd, rc) = match cfg.target {
        Target::Invalid(why) => return Err(Fail::Unusable(why.reason().as_bytes())),
        Target::Tcp { ip, port } => {
            let Ok(fd) = syscall::socket(libc::AF_INET, flags) else {
                return Err(Fail::Unreachable);
            };
            let fd = fd as c_int;
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(ip),
                },
                sin_zero: [0; 8],
            };
            // Nagle would delay the body behind the headers on a reused connection.
            let _ = syscall::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
            // SAFETY: addr is a valid sockaddr_in of the given size.
            let rc = unsafe {
                syscall::connect(fd, (&raw const addr).cast(), size_of::<libc::sockaddr_in>())
            };
            (fd, rc)
        }
        Target::Unix => {
            let Ok(fd) = syscall::socket(libc::AF_UNIX, flags) else {
                return Err(Fail::Unreachable);
            };
            let fd = fd as c_int;
            // SAFETY: sockaddr_un is plain data; zeroed is valid.
            let mut addr: libc::sockaddr_un = unsafe { core::mem::zeroed() };
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let path = cfg.s(cfg.unix_path);
            if path.len() >= addr.sun_path.len() {
                close(fd);
                return Err(Fail::Unusable(
                    b"a unix: socket path too long for a socket address (at most 107 bytes)",
                ));
            }
            for (dst, &src) in addr.sun_path.iter_mut().zip(path) {
                *dst = src as libc::c_char;
            }
            // SAFETY: addr is a valid, NUL-terminated sockaddr_un of the given size.
            let rc = unsafe {
                syscall::connect(fd, (&raw const addr).cast(), size_of::<libc::sockaddr_un>())
            };
            (fd, rc)
        }
    };
    match rc {
        Ok(_) => return Ok(fd),
        Err(libc::EINPROGRESS | libc::EAGAIN | libc::EINTR) => {}
        Err(_) => {
            close(fd);
            return Err(Fail::Unreachable);
        }
    }
    if let Err(f) = wait_fd(fd, libc::POLLOUT, deadline) {
        close(fd);
        return Err(f);
    }
    if syscall::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) != Ok(0) {
        close(fd);
        return Err(Fail::Unreachable);
    }
    Ok(fd)
}

/// Sends all of `bytes`: `Err(Timeout)` when the peer stops reading until `deadline`,
/// `Err(Closed)` when the connection is closed or reset.
fn send_all(fd: c_int, mut bytes: &[u8], deadline: i64) -> Result<(), Fail> {
    while !bytes.is_empty() {
        // MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE.
        match syscall::send(fd, bytes, libc::MSG_NOSIGNAL) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
            Err(libc::EINTR) => {}
            Err(libc::EAGAIN) => wait_fd(fd, libc::POLLOUT, deadline)?,
            Err(_) => return Err(Fail::Closed),
        }
    }
    Ok(())
}

/// Sends one `POST` request whose body `body` writes (it is called twice: to count, then
/// to send), and reads the answer into `buf`. `wait_ms` > 0 extends the answer timeout
/// for server-side approval holds; `on_wait` runs once after a second without an answer.
///
/// The whole call, the retry on a dropped kept-alive connection included, ends by one
/// deadline: `CONNECT_TIMEOUT_MS + ANSWER_TIMEOUT_MS + wait_ms` from now. Sending and
/// reading are bounded by that and by the answer timeout from the start of the exchange,
/// never per read, so a server dripping bytes cannot hold a spawn any longer.
///
/// `pid` is the caller's pid from the kernel (`sys::getpid`), which tags the cache.
#[allow(clippy::too_many_arguments)]
pub fn post(
    cfg: &Config,
    pid: i32,
    path: &[u8],
    body: &dyn Fn(&mut dyn Sink),
    wait_ms: u64,
    may_cache: bool,
    buf: &mut [u8; RESPONSE_MAX],
    on_wait: &mut dyn FnMut(),
) -> Result<Response, Fail> {
    let mut counter = Counter(0);
    body(&mut counter);
    let answer_ms = ANSWER_TIMEOUT_MS.saturating_add(wait_ms.min(i64::MAX as u64 / 4) as i64);
    let overall = sys::now_ms()
        .saturating_add(CONNECT_TIMEOUT_MS)
        .saturating_add(answer_ms);
    let mut waited = false;
    for _attempt in 0..2 {
        let (fd, known_ino) = match take_cached(pid) {
            Some((fd, ino)) => (fd, Some(ino)),
            None => {
                let until = sys::now_ms()
                    .saturating_add(CONNECT_TIMEOUT_MS)
                    .min(overall);
                (connect(cfg, until)?, None)
            }
        };
        let reused = known_ino.is_some();
        let limits = (answer_ms, overall);
        // A connection that will not be kept says so: the server closes it right after
        // the answer instead of waking again for our close (every check of a vfork child
        // — CPython, Node — opens one).
        let close_after = !(may_cache || reused);
        let r = exchange(
            cfg,
            fd,
            b"POST ",
            path,
            counter.0,
            body,
            limits,
            close_after,
            buf,
            &mut || {
                if !waited {
                    waited = true;
                    on_wait();
                }
            },
        );
        match r {
            Ok((resp, keep)) => {
                // A fresh connection may be kept only where storing it cannot touch a
                // parent's memory (see the module comment); a taken one was ours already.
                if keep && (may_cache || reused) {
                    put_cached(pid, fd, known_ino);
                } else {
                    close(fd);
                }
                return Ok(resp);
            }
            Err((f, got_any)) => {
                close(fd);
                // A kept-alive connection the server had already dropped: retry once.
                if reused && !got_any && (f == Fail::Closed || f == Fail::Unreachable) {
                    continue;
                }
                // Something answered, then stopped: a cut answer, never "nobody answered".
                if got_any && matches!(f, Fail::Closed | Fail::Timeout) {
                    return Err(Fail::Cut);
                }
                return Err(f);
            }
        }
    }
    Err(Fail::Closed)
}

/// Sends one `GET` on a fresh connection (never cached: it runs while the caller's own
/// request holds the other one) and reads the answer into `buf`, within the connect and
/// answer timeouts. Used to learn the id of an ask this process is waiting on.
pub fn get(cfg: &Config, path: &[u8], buf: &mut [u8]) -> Result<Response, Fail> {
    let now = sys::now_ms();
    let fd = connect(cfg, now.saturating_add(CONNECT_TIMEOUT_MS))?;
    let overall = now
        .saturating_add(CONNECT_TIMEOUT_MS)
        .saturating_add(ANSWER_TIMEOUT_MS);
    let r = exchange(
        cfg,
        fd,
        b"GET ",
        path,
        0,
        &|_: &mut dyn Sink| {},
        (ANSWER_TIMEOUT_MS, overall),
        true,
        buf,
        &mut || {},
    );
    close(fd);
    r.map(|(resp, _)| resp).map_err(|(f, _)| f)
}

#[allow(clippy::too_many_arguments)]
fn exchange(
    cfg: &Config,
    fd: c_int,
    method: &[u8],
    path: &[u8],
    content_length: usize,
    body: &dyn Fn(&mut dyn Sink),
    (answer_ms, cap): (i64, i64),
    close_after: bool,
    buf: &mut [u8],
    on_wait: &mut dyn FnMut(),
) -> Result<(Response, bool), (Fail, bool)> {
    // `answer_ms` from now, for sending and reading together, and never past `cap`.
    let start = sys::now_ms();
    let deadline = start.saturating_add(answer_ms).min(cap);
    let send_deadline = start.saturating_add(ANSWER_TIMEOUT_MS).min(deadline);
    let mut send_err = None;
    let sent = {
        let mut out = [0u8; 4096];
        let mut w = BufWriter::new(&mut out, |c: &[u8]| match send_all(fd, c, send_deadline) {
            Ok(()) => true,
            Err(f) => {
                send_err = Some(f);
                false
            }
        });
        let mut num = [0u8; 20];
        w.put(method);
        w.put(path);
        w.put(b" HTTP/1.1\r\nHost: ");
        w.put(cfg.s(cfg.host));
        let token = cfg.s(cfg.token);
        if !token.is_empty() {
            w.put(b"\r\nAuthorization: Bearer ");
            w.put(token);
        }
        if close_after {
            w.put(b"\r\nConnection: close");
        }
        w.put(b"\r\nContent-Type: application/json\r\nAccept: application/json\r\nUser-Agent: librampart\r\nContent-Length: ");
        w.put(sys::fmt_u64(content_length as u64, &mut num));
        w.put(b"\r\n\r\n");
        body(&mut w);
        w.flush()
    };
    // The server stopped reading: no answer is coming in time either.
    if send_err == Some(Fail::Timeout) {
        return Err((Fail::Timeout, false));
    }
    // Closed or reset while we were still sending. The server may have answered first —
    // a 413 for a body over its limit does exactly that — so read what is there; an
    // answer counts, the connection is not reused.
    let broken = !sent;
    let mut len = 0usize;
    loop {
        if let Some((resp, keep)) =
            parse(buf.get_mut(..len).unwrap_or(&mut []), false).map_err(|f| (f, len > 0))?
        {
            return Ok((resp, keep && !broken));
        }
        if len == buf.len() {
            return Err((Fail::Oversized, true));
        }
        // Poll in slices of at most a second so the "waiting for approval" line appears
        // after the first second.
        let now = sys::now_ms();
        if now >= deadline {
            return Err((Fail::Timeout, len > 0));
        }
        if now - start >= 1000 {
            on_wait();
        }
        let slice = if now - start < 1000 {
            start + 1000
        } else {
            deadline
        };
        match wait_fd(fd, libc::POLLIN, slice.min(deadline)) {
            Ok(()) => {}
            Err(Fail::Timeout) => continue,
            Err(f) => return Err((f, len > 0)),
        }
        let room = buf.get_mut(len..).unwrap_or(&mut []);
        let n = match syscall::recv(fd, room) {
            Ok(n) => n,
            Err(libc::EINTR | libc::EAGAIN) => continue,
            Err(_) => return Err((Fail::Closed, len > 0)),
        };
        if n == 0 {
            // EOF: complete only if the body is delimited by the close.
            return match parse(buf.get_mut(..len).unwrap_or(&mut []), true) {
                Ok(Some((resp, _))) => Ok((resp, false)),
                Ok(None) => Err((Fail::Closed, len > 0)),
                Err(f) => Err((f, true)),
            };
        }
        len += n;
    }
}

/// Parses a (possibly partial) response. `Ok(None)` = need more bytes. On success the body
/// has been de-chunked in place and the flag says whether the connection can be reused.
pub fn parse(buf: &mut [u8], eof: bool) -> Result<Option<(Response, bool)>, Fail> {
    let Some(head_end) = sys::find(buf, b"\r\n\r\n") else {
        return if buf.len() >= RESPONSE_MAX {
            Err(Fail::Oversized)
        } else {
            Ok(None)
        };
    };
    let head = buf.get(..head_end).ok_or(Fail::Malformed)?;
    let mut lines = head.split(|&b| b == b'\n');
    let status_line = lines.next().ok_or(Fail::Malformed)?;
    if !status_line.starts_with(b"HTTP/1.") {
        return Err(Fail::Malformed);
    }
    let code = status_line.get(9..12).ok_or(Fail::Malformed)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(Fail::Malformed);
    }
    let status = code.iter().fold(0u16, |n, &b| n * 10 + u16::from(b - b'0'));
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = status_line.starts_with(b"HTTP/1.0");
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Fail::Malformed);
        };
        let name = line.get(..colon).unwrap_or(&[]);
        let value = line.get(colon + 1..).unwrap_or(&[]);
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
                return Err(Fail::Malformed);
            }
            let n = value
                .iter()
                .fold(0usize, |n, &b| n * 10 + usize::from(b - b'0'));
            if content_length.is_some_and(|c| c != n) {
                return Err(Fail::Malformed);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = sys::contains_ci(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            if sys::contains_ci(value, b"close") {
                close = true;
            } else if sys::contains_ci(value, b"keep-alive") {
                close = false;
            }
        }
    }
    let body_start = head_end + 4;
    if chunked {
        return match dechunk(buf.get_mut(body_start..).ok_or(Fail::Malformed)?)? {
            Some((body_len, used)) => {
                let exact = body_start + used == buf.len();
                Ok(Some((
                    Response {
                        status,
                        body_start,
                        body_len,
                    },
                    !close && exact,
                )))
            }
            None if buf.len() >= RESPONSE_MAX => Err(Fail::Oversized),
            None => Ok(None),
        };
    }
    if let Some(cl) = content_length {
        if body_start.saturating_add(cl) > RESPONSE_MAX {
            return Err(Fail::Oversized);
        }
        let have = buf.len() - body_start;
        if have < cl {
            return Ok(None);
        }
        let exact = have == cl;
        return Ok(Some((
            Response {
                status,
                body_start,
                body_len: cl,
            },
            !close && exact,
        )));
    }
    // No length: the body runs until the server closes.
    if eof {
        let body_len = buf.len() - body_start;
        Ok(Some((
            Response {
                status,
                body_start,
                body_len,
            },
            false,
        )))
    } else {
        Ok(None)
    }
}

/// Decodes a chunked body in place. `Ok(Some((body_len, bytes_consumed)))` once the last
/// chunk and trailers are in; `Ok(None)` while incomplete, and then nothing was moved (the
/// buffer is parsed again when more bytes arrive).
fn dechunk(buf: &mut [u8]) -> Result<Option<(usize, usize)>, Fail> {
    if walk_chunks(buf, false)?.is_none() {
        return Ok(None);
    }
    walk_chunks(buf, true)
}

fn walk_chunks(buf: &mut [u8], compact: bool) -> Result<Option<(usize, usize)>, Fail> {
    let mut read = 0usize;
    let mut write = 0usize;
    loop {
        let rest = buf.get(read..).unwrap_or(&[]);
        let Some(eol) = sys::find(rest, b"\r\n") else {
            return Ok(None);
        };
        let size_field = rest.get(..eol).unwrap_or(&[]);
        let hex = size_field
            .split(|&b| b == b';')
            .next()
            .unwrap_or(&[])
            .trim_ascii();
        if hex.is_empty() || hex.len() > 8 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(Fail::Malformed);
        }
        let size = hex.iter().fold(0usize, |n, &b| {
            n * 16 + char::from(b).to_digit(16).unwrap_or(0) as usize
        });
        let data = read + eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            let trailers = buf.get(data..).unwrap_or(&[]);
            if trailers.starts_with(b"\r\n") {
                return Ok(Some((write, data + 2)));
            }
            return match sys::find(trailers, b"\r\n\r\n") {
                Some(i) => Ok(Some((write, data + i + 4))),
                None => Ok(None),
            };
        }
        if buf.len() < data.saturating_add(size).saturating_add(2) {
            return Ok(None);
        }
        if buf.get(data + size..data + size + 2) != Some(b"\r\n") {
            return Err(Fail::Malformed);
        }
        if compact {
            // write <= read < data, so this only overwrites bytes already consumed.
            buf.copy_within(data..data + size, write);
        }
        write += size;
        read = data + size + 2;
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn run(raw: &[u8], eof: bool) -> Result<Option<(u16, Vec<u8>, bool)>, Fail> {
        let mut b = raw.to_vec();
        Ok(parse(&mut b, eof)?.map(|(r, keep)| {
            (
                r.status,
                b[r.body_start..r.body_start + r.body_len].to_vec(),
                keep,
            )
        }))
    }

    #[test]
    fn content_length() {
        let r = run(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false)
            .unwrap()
            .unwrap();
        assert_eq!(r, (200, b"{}".to_vec(), true));
        assert_eq!(
            run(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", false).unwrap(),
            None
        );
        let r = run(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: close\r\n\r\n{}",
            false,
        );
        assert!(!r.unwrap().unwrap().2);
    }

    #[test]
    fn chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n6;x=y\r\n\":1}  \r\n0\r\n\r\n";
        let r = run(raw, false).unwrap().unwrap();
        assert_eq!(r, (200, b"{\"a\":1}  ".to_vec(), true));
        let partial = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n";
        assert_eq!(run(partial, false).unwrap(), None);
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(run(bad, false).unwrap_err(), Fail::Malformed);
    }

    #[test]
    fn close_delimited_and_garbage() {
        let r = run(b"HTTP/1.0 503 x\r\n\r\noops", true).unwrap().unwrap();
        assert_eq!(r, (503, b"oops".to_vec(), false));
        assert_eq!(run(b"SSH-2.0\r\n\r\n", false).unwrap_err(), Fail::Malformed);
        let big = b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n";
        assert_eq!(run(big, false).unwrap_err(), Fail::Oversized);
    }
}

/// Property tests (proptest): hostile input never panics or hangs, well-formed input is
/// read exactly.
#[cfg(test)]
#[path = "props/http.rs"]
mod props;
