//! The HTTP response reader under hostile and well-formed input: `parse` on its own, and
//! `exchange` (the real read loop, with its deadline) over a socket pair.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::testgen::{Resp, resp};

/// Parses a copy of `raw`; on success returns status, de-chunked body and keep flag.
fn parsed(raw: &[u8], eof: bool) -> Result<Option<(u16, Vec<u8>, bool)>, Fail> {
    let mut b = raw.to_vec();
    let r = parse(&mut b, eof)?;
    Ok(r.map(|(r, keep)| {
        assert!(
            r.body_start + r.body_len <= b.len(),
            "body {}+{} outside a buffer of {}",
            r.body_start,
            r.body_len,
            b.len()
        );
        (
            r.status,
            b[r.body_start..r.body_start + r.body_len].to_vec(),
            keep,
        )
    }))
}

/// Header lines built from the pieces the parser looks at, in any order and combination.
fn header_soup() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        "[Cc]ontent-[Ll]ength: ?[0-9]{0,14}",
        "Content-Length: [0-9a-f -]{0,6}",
        "[Tt]ransfer-[Ee]ncoding: ?(chunked|gzip|identity|chunked, gzip)",
        "Connection: (close|keep-alive|Close|x)",
        "[ -~]{0,30}",
        "X-[a-z]{1,5}:[ -~]{0,10}",
    ];
    vec(line, 0..6).prop_map(|lines| {
        let mut out = Vec::new();
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    })
}

/// Bodies that look like chunked encoding, broken in every way.
fn chunk_soup() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        "[0-9a-fA-F]{0,10}(;[a-z=]{0,5})?\r\n",
        "[ -~]{0,20}\r\n",
        Just("0\r\n\r\n".to_owned()),
        Just("\r\n".to_owned()),
        "[\r\n0-9a-f]{0,6}",
    ];
    vec(piece, 0..12).prop_map(|p| p.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Any bytes at all: an answer, "need more", or an error; never a panic, never a body
    /// range outside the buffer.
    #[test]
    fn arbitrary_bytes_never_panic(raw in vec(any::<u8>(), 0..3000), eof in any::<bool>()) {
        let _ = parsed(&raw, eof);
    }

    /// A valid status line, then headers and bodies made of the parser's own keywords.
    #[test]
    fn hostile_headers_and_chunks_never_panic(
        minor in 0u8..2,
        status in "[0-9 a-z]{3}",
        headers in header_soup(),
        body in chunk_soup(),
        eof in any::<bool>(),
    ) {
        let mut raw = format!("HTTP/1.{minor} {status} X\r\n").into_bytes();
        raw.extend_from_slice(&headers);
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&body);
        let r = parsed(&raw, eof);
        // A status that is not three digits is never accepted.
        if !status.bytes().all(|b| b.is_ascii_digit()) {
            prop_assert_eq!(r, Err(Fail::Malformed));
        }
    }

    /// Well-formed responses are read exactly: status, body (de-chunked), reuse flag.
    /// Every strict prefix is "need more" (never an error, never a wrong answer); bytes
    /// after a complete answer make the connection not reusable.
    #[test]
    fn well_formed_responses_are_read_exactly(
        r in resp(),
        cuts in vec(any::<prop::sample::Index>(), 12),
        junk in vec(any::<u8>(), 1..20),
    ) {
        let raw = r.bytes();
        prop_assert!(raw.len() < RESPONSE_MAX);
        let want = (r.status, r.body.clone(), r.keep());
        prop_assert_eq!(parsed(&raw, r.close_delimited()), Ok(Some(want.clone())));
        let mut cut_points: Vec<usize> = cuts.iter().map(|c| c.index(raw.len())).collect();
        cut_points.push(raw.len() - 1);
        for cut in cut_points {
            prop_assert_eq!(parsed(&raw[..cut], false), Ok(None), "cut at {}", cut);
        }
        if !r.close_delimited() {
            let mut more = raw.clone();
            more.extend_from_slice(&junk);
            let got = parsed(&more, false);
            prop_assert_eq!(got, Ok(Some((want.0, want.1, false))));
        }
    }
}

/// A connected pair: the library's end (non-blocking, as `connect` leaves it) and ours.
fn pair() -> (c_int, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    (ours.into_raw_fd(), theirs)
}

/// Runs the real `exchange` on `fd` with a small request and the given answer timeout.
/// Status, body and reuse flag of an answer.
type Read = Result<(u16, Vec<u8>, bool), Fail>;

fn run_exchange(fd: c_int, answer_ms: i64) -> (Read, Duration) {
    let cfg = crate::config::Config::for_tests();
    let mut buf = Box::new([0u8; RESPONSE_MAX]);
    let start = Instant::now();
    let r = exchange(
        &cfg,
        fd,
        b"POST ",
        b"/v1/preflight/exec",
        2,
        &|s: &mut dyn Sink| s.put(b"{}"),
        (answer_ms, i64::MAX),
        false,
        &mut buf[..],
        &mut || {},
    );
    let took = start.elapsed();
    close(fd);
    let r = r
        .map(|(resp, keep)| {
            let body = buf[resp.body_start..resp.body_start + resp.body_len].to_vec();
            (resp.status, body, keep)
        })
        .map_err(|(f, _)| f);
    (r, took)
}

/// Writes `raw` in pieces of the given sizes with short pauses (so the reader sees them
/// separately), then closes if `close`.
fn feed(mut peer: UnixStream, raw: Vec<u8>, sizes: Vec<usize>, close: bool) {
    std::thread::spawn(move || {
        read_request(&mut peer);
        let mut rest = &raw[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].clamp(1, rest.len());
            i += 1;
            if peer.write_all(&rest[..n]).is_err() {
                return;
            }
            rest = &rest[n..];
            std::thread::sleep(Duration::from_micros(50));
        }
        if close {
            let _ = peer.shutdown(std::net::Shutdown::Both);
        } else {
            hold_open(peer);
        }
    });
}

/// Reads the library's request (it ends in the two-byte body `{}`), as a server would
/// before answering.
fn read_request(peer: &mut UnixStream) {
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.ends_with(b"\r\n\r\n{}") {
        match std::io::Read::read(peer, &mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
}

/// Keeps our end open (reading the request) until the library closes its end.
fn hold_open(mut peer: UnixStream) {
    let _ = std::io::Read::read_to_end(&mut peer, &mut Vec::new());
}

fn split_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..64, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The real read loop, fed in random pieces: the same exact result as `parse` on the
    /// whole answer.
    #[test]
    fn exchange_reads_split_answers_exactly(r in resp(), sizes in split_sizes()) {
        let (fd, peer) = pair();
        let close_after = r.close_delimited();
        feed(peer, r.bytes(), sizes, close_after);
        let (got, _) = run_exchange(fd, 10_000);
        prop_assert_eq!(got, Ok((r.status, r.body.clone(), r.keep())));
    }

    /// The server closes part-way through a length-delimited or chunked answer (in the
    /// headers or in the body): "closed without an answer", which fail-open decides.
    #[test]
    fn exchange_truncated_answers_are_closed(
        r in resp().prop_filter("needs a delimited body", |r: &Resp| !r.close_delimited()),
        cut in any::<prop::sample::Index>(),
        sizes in split_sizes(),
    ) {
        let raw = r.bytes();
        let cut = cut.index(raw.len());
        let (fd, peer) = pair();
        feed(peer, raw[..cut].to_vec(), sizes, true);
        let (got, _) = run_exchange(fd, 10_000);
        prop_assert_eq!(got, Err(Fail::Closed));
    }
}

/// A server that never answers: the answer timeout ends the wait.
#[test]
fn exchange_times_out_on_a_silent_server() {
    let (fd, peer) = pair();
    let (got, took) = run_exchange(fd, 300);
    drop(peer);
    assert_eq!(got, Err(Fail::Timeout));
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(took < Duration::from_millis(2300), "{took:?}");
}

/// A server that drips a never-ending answer one byte at a time: every read succeeds,
/// so only a deadline for the whole answer stops it — and it does, at the timeout.
#[test]
fn exchange_total_deadline_stops_an_endless_drip() {
    let (fd, mut peer) = pair();
    std::thread::spawn(move || {
        let head = b"HTTP/1.1 200 OK\r\nX-Drip: ";
        for &b in head.iter().chain(std::iter::repeat(&b'x')).take(2000) {
            if peer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let (got, took) = run_exchange(fd, 400);
    assert_eq!(got, Err(Fail::Timeout));
    assert!(took >= Duration::from_millis(390), "{took:?}");
    assert!(took < Duration::from_millis(2400), "{took:?}");
}

/// A drip that completes within the timeout is an answer like any other.
#[test]
fn exchange_accepts_a_fast_drip() {
    let (fd, mut peer) = pair();
    let body = br#"{"allowed":false,"decision":"deny","message":"no"}"#;
    let mut raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(body);
    std::thread::spawn(move || {
        for b in raw {
            if peer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        hold_open(peer);
    });
    let (got, _) = run_exchange(fd, 10_000);
    assert_eq!(got, Ok((200, body.to_vec(), true)));
}

/// More than `RESPONSE_MAX` without a complete answer: refused as oversized, not read on.
#[test]
fn exchange_refuses_an_endless_header() {
    let (fd, mut peer) = pair();
    std::thread::spawn(move || {
        let _ = peer.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = [b'x'; 1024];
        for _ in 0..1024 {
            if peer.write_all(&line).is_err() {
                return;
            }
        }
    });
    let (got, _) = run_exchange(fd, 10_000);
    assert_eq!(got, Err(Fail::Oversized));
}

/// Reads one request (ending in the two-byte body `{}`) from a blocking stream.
fn read_tcp_request(conn: &mut std::net::TcpStream) -> bool {
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.ends_with(b"\r\n\r\n{}") {
        match std::io::Read::read(conn, &mut b) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    true
}

/// One deadline covers the whole call, retry included. The server answers once and keeps
/// the connection; on the next request it holds that connection 4.5 s and closes it
/// without an answer (just inside the 5 s answer timeout of `wait_ms` = 3 s, so the
/// library retries on a fresh connection), then never answers there. Per-attempt
/// timeouts alone would wait 4.5 + 5 = 9.5 s; the call must end at 1 + 2 + 3 = 6 s.
#[test]
fn post_one_deadline_covers_the_retry() {
    use core::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let retried = Arc::new(AtomicBool::new(false));
    let seen = retried.clone();
    std::thread::spawn(move || {
        let (mut first, _) = listener.accept().unwrap();
        assert!(read_tcp_request(&mut first));
        first
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            .unwrap();
        if !read_tcp_request(&mut first) {
            return;
        }
        std::thread::sleep(Duration::from_millis(4500));
        drop(first);
        let (mut second, _) = listener.accept().unwrap();
        if read_tcp_request(&mut second) {
            seen.store(true, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_secs(20));
    });
    let mut cfg = crate::config::Config::for_tests();
    cfg.target = crate::config::Target::Tcp {
        ip: [127, 0, 0, 1],
        port,
    };
    let pid = crate::sys::getpid();
    let mut buf = Box::new([0u8; RESPONSE_MAX]);
    let body = |s: &mut dyn Sink| s.put(b"{}");
    let first = post(
        &cfg,
        pid,
        b"/v1/preflight/exec",
        &body,
        3000,
        true,
        &mut buf,
        &mut || {},
    );
    assert_eq!(first.map(|r| r.status).map_err(|f| f.describe()), Ok(200));

    let start = Instant::now();
    let second = post(
        &cfg,
        pid,
        b"/v1/preflight/exec",
        &body,
        3000,
        true,
        &mut buf,
        &mut || {},
    );
    let took = start.elapsed();
    assert_eq!(second.map(|r| r.status), Err(Fail::Timeout));
    assert!(
        retried.load(Ordering::SeqCst),
        "the retry never reached the server"
    );
    assert!(took >= Duration::from_millis(5900), "{took:?}");
    assert!(took < Duration::from_millis(7500), "{took:?}");
}

/// The server answers before it has read the whole request (a 413 for a body over its
/// limit) and closes: the library's send fails half-way, and the answer that is already
/// there must still be read — it decides, not "closed without an answer".
#[test]
fn exchange_reads_an_answer_sent_before_the_request_was_read() {
    let (fd, mut peer) = pair();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut b = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match std::io::Read::read(&mut peer, &mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
        let body = br#"{"error":"request body too large"}"#;
        let head = format!(
            "HTTP/1.1 413 Payload Too Large\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = peer.write_all(head.as_bytes());
        let _ = peer.write_all(body);
        // Dropping our end with the rest of the request unread.
    });
    let cfg = crate::config::Config::for_tests();
    let mut buf = Box::new([0u8; RESPONSE_MAX]);
    let big = vec![b'x'; 4 << 20];
    let r = exchange(
        &cfg,
        fd,
        b"POST ",
        b"/v1/preflight/exec",
        big.len(),
        &|s: &mut dyn Sink| s.put(&big),
        (10_000, i64::MAX),
        false,
        &mut buf[..],
        &mut || {},
    );
    close(fd);
    let (resp, keep) = r.map_err(|(f, _)| f).unwrap();
    assert_eq!((resp.status, keep), (413, false));
}

/// Many threads taking and leaving the process's one cached connection at once: every
/// socket ends up either cached or closed, never dropped open (the inode used to be
/// written before the slot was claimed, so a taker could see another connection's inode
/// and abandon its own socket).
#[test]
fn the_connection_cache_loses_no_socket_under_contention() {
    let pid = crate::sys::getpid();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut inodes = Vec::new();
                for _ in 0..2000 {
                    match take_cached(pid) {
                        Some((fd, ino)) => put_cached(pid, fd, Some(ino)),
                        None => {
                            let (a, _b) = UnixStream::pair().unwrap();
                            let fd = a.into_raw_fd();
                            inodes.push(inode(fd).unwrap());
                            put_cached(pid, fd, None);
                        }
                    }
                }
                inodes
            })
        })
        .collect();
    let mut made = Vec::new();
    for t in threads {
        made.extend(t.join().unwrap());
    }
    // Drain the cache, closing what it holds.
    if let Some((fd, _)) = take_cached(pid) {
        close(fd);
    }
    // Only sockets this test made are looked for (by inode) among the open descriptors:
    // other tests in the binary open and close their own at the same time.
    let leaked: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let fd: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            inode(fd)
        })
        .filter(|ino| made.contains(ino))
        .collect();
    assert!(!made.is_empty());
    assert_eq!(leaked, Vec::<u64>::new(), "sockets left open by the cache");
}
