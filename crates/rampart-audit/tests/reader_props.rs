//! Hostile audit files (issue 8 §2): the readers (`verify`, `read_events`, `tail`,
//! `stats`, `Follower`) and the writer's `open` over arbitrary and mutated JSONL — torn
//! lines, invalid UTF-8, huge lines, lines deleted, duplicated, inserted or edited. None
//! of them panics; `verify` names exactly the first line that was changed; the query
//! side returns every event that is still intact and nothing that was never written.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use rampart_audit::{
    AuditEvent, AuditLog, Follower, NewEvent, Query, read_events, stats, tail, verify,
};

/// The day every hand-written trail uses.
const DAY: &str = "2026-11-26";

fn day_file(dir: &Path) -> PathBuf {
    dir.join(format!("{DAY}.jsonl"))
}

/// Commands with the characters that make JSON escaping work: quotes, backslashes,
/// control characters, NUL, escape sequences, non-BMP text, U+2028.
const COMMANDS: &[&str] = &[
    "ls -la",
    "rm -rf /tmp/x",
    "echo \"quoted\" 'single' \\back\\slash",
    "printf 'a\\nb' \n second line\r\n",
    "x\u{0}y\u{1b}[31mred\u{1b}[0m",
    "עברית \u{202e}txt.exe\u{202c} 😀 \u{2028}",
    "\u{7f}\u{85}\u{feff}",
    "",
];

/// Twenty valid chained lines (with their newlines), written by the real writer once.
fn pool() -> &'static Vec<Vec<u8>> {
    static POOL: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        // 2026-11-26T08:00:00Z, so the file is DAY's.
        let at = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_680_000);
        for i in 0..20u64 {
            log.append_at(
                NewEvent {
                    agent: format!("agent{}", i % 3),
                    session: "s".into(),
                    tool: "exec".into(),
                    command: COMMANDS[i as usize % COMMANDS.len()].to_owned(),
                    argv: vec![
                        "a".into(),
                        COMMANDS[(i as usize + 1) % COMMANDS.len()].into(),
                    ],
                    decision: ["allow", "deny", "ask", "log"][i as usize % 4].into(),
                    message: format!("message {i}"),
                    ..NewEvent::default()
                },
                at + Duration::from_millis(i),
            )
            .unwrap();
        }
        drop(log);
        let text = fs::read(day_file(dir.path())).unwrap();
        let lines: Vec<Vec<u8>> = text
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(lines.len(), 20);
        lines
    })
}

fn parsed(line: &[u8]) -> AuditEvent {
    serde_json::from_slice(line.strip_suffix(b"\n").unwrap_or(line)).unwrap()
}

/// One change to a trail of `n` lines. Line numbers are 0-based here.
#[derive(Debug, Clone)]
enum Damage {
    /// XOR one byte of a line's body (never its newline) with a non-zero value.
    Flip {
        line: usize,
        at: usize,
        xor: u8,
    },
    /// Replace a byte range of a line's body with invalid UTF-8.
    InvalidUtf8 {
        line: usize,
        at: usize,
    },
    Delete {
        line: usize,
    },
    Duplicate {
        line: usize,
    },
    /// Insert a line of garbage (possibly huge, possibly empty) before `line`.
    Insert {
        line: usize,
        garbage: Vec<u8>,
        repeat: usize,
    },
    /// Cut the last line short, `keep` bytes of it remaining (no newline).
    Torn {
        keep: usize,
    },
    /// Remove the newline between two lines, joining them.
    Join {
        line: usize,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 1u8..=255).prop_map(|(line, at, xor)| Damage::Flip {
            line,
            at,
            xor
        }),
        (any::<usize>(), any::<usize>()).prop_map(|(line, at)| Damage::InvalidUtf8 { line, at }),
        any::<usize>().prop_map(|line| Damage::Delete { line }),
        any::<usize>().prop_map(|line| Damage::Duplicate { line }),
        (
            any::<usize>(),
            prop::collection::vec(any::<u8>(), 0..64)
                .prop_map(|v| v.into_iter().filter(|b| *b != b'\n').collect()),
            prop_oneof![Just(1usize), Just(4096), Just(40_000)],
        )
            .prop_map(|(line, garbage, repeat)| Damage::Insert {
                line,
                garbage,
                repeat
            }),
        any::<usize>().prop_map(|keep| Damage::Torn { keep }),
        any::<usize>().prop_map(|line| Damage::Join { line }),
    ]
}

/// What `verify` must say about a damaged trail of `n` good lines.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// The chain breaks at this 1-based line.
    Broken(usize),
    /// Valid, with this many events (deleting the last line is invisible: a documented
    /// limit of hash chains).
    Ok(u64),
    /// Valid up to a torn last line.
    Torn(u64),
}

/// Applies `damage` to the first `n` pool lines; the file bytes and the expectation.
fn apply(n: usize, damage: &Damage) -> (Vec<u8>, Expect) {
    let mut lines: Vec<Vec<u8>> = pool()[..n].to_vec();
    let pick = |i: usize| i % n;
    let expect = match damage {
        Damage::Flip { line, at, xor } => {
            let l = pick(*line);
            let body = lines[l].len() - 1;
            lines[l][at % body] ^= xor;
            if lines[l][at % body] == b'\n' {
                // The flip made a newline: the line is now two, the first one broken.
            }
            Expect::Broken(l + 1)
        }
        Damage::InvalidUtf8 { line, at } => {
            let l = pick(*line);
            let body = lines[l].len() - 1;
            let at = at % body;
            let end = (at + 2).min(body);
            lines[l].splice(at..end, [0xff, 0xc3]);
            Expect::Broken(l + 1)
        }
        Damage::Delete { line } => {
            let l = pick(*line);
            lines.remove(l);
            if l == n - 1 {
                Expect::Ok(n as u64 - 1)
            } else {
                Expect::Broken(l + 1)
            }
        }
        Damage::Duplicate { line } => {
            let l = pick(*line);
            lines.insert(l, lines[l].clone());
            Expect::Broken(l + 2)
        }
        Damage::Insert {
            line,
            garbage,
            repeat,
        } => {
            let l = line % (n + 1);
            let mut g = garbage.repeat(*repeat);
            g.push(b'\n');
            lines.insert(l, g);
            Expect::Broken(l + 1)
        }
        Damage::Torn { keep } => {
            let last = lines.last_mut().unwrap();
            let keep = keep % last.len();
            last.truncate(keep);
            if keep == 0 {
                Expect::Ok(n as u64 - 1)
            } else {
                Expect::Torn(n as u64 - 1)
            }
        }
        Damage::Join { line } => {
            let l = pick(*line);
            lines[l].pop();
            if l == n - 1 {
                Expect::Torn(n as u64 - 1)
            } else {
                Expect::Broken(l + 1)
            }
        }
    };
    (lines.concat(), expect)
}

/// Runs every reader over `dir`: none may panic or fail on damaged content, and the
/// events they return were all written (by the writer) or come from damaged lines.
fn read_everything(dir: &Path) -> Result<Vec<AuditEvent>, TestCaseError> {
    let all = read_events(dir, &Query::default()).unwrap();
    let limited = read_events(
        dir,
        &Query {
            limit: Some(3),
            text: Some("RM".into()),
            ..Query::default()
        },
    )
    .unwrap();
    prop_assert!(limited.len() <= 3);
    let last = tail(dir, 5).unwrap();
    prop_assert!(last.len() <= 5);
    // tail is the newest events, oldest first.
    let mut newest: Vec<&AuditEvent> = all.iter().take(5).collect();
    newest.reverse();
    prop_assert_eq!(last.iter().collect::<Vec<_>>(), newest);
    let s = stats(dir, None, None).unwrap();
    prop_assert_eq!(s.totals.total, all.len() as u64);
    let follower = Follower::new(dir).unwrap();
    let backlog = follower.backlog(1000).unwrap();
    let mut oldest_first = all.clone();
    oldest_first.reverse();
    prop_assert_eq!(&backlog, &oldest_first);
    Ok(all)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// One change anywhere: `verify` names exactly the first changed line (or reports
    /// the torn tail), and the query side still returns every untouched event.
    #[test]
    fn verify_names_the_first_damaged_line(n in 1usize..=20, damage in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, expect) = apply(n, &damage);
        fs::write(day_file(dir.path()), &bytes).unwrap();
        let report = verify(dir.path()).unwrap();
        let got = match (&report.first_broken, &report.torn_tail) {
            (Some(b), _) => Expect::Broken(b.line),
            (None, Some(_)) => Expect::Torn(report.events),
            (None, None) => Expect::Ok(report.events),
        };
        prop_assert_eq!(report.ok, report.first_broken.is_none());
        if let Some(b) = &report.first_broken {
            prop_assert!(!b.reason.is_empty() && !b.reason.contains('\n'));
        }
        prop_assert_eq!(got, expect, "{:?}", report);

        let all = read_everything(dir.path())?;
        let originals: Vec<AuditEvent> = pool()[..n].iter().map(|l| parsed(l)).collect();
        let intact = all.iter().filter(|e| originals.contains(e)).count();
        // At most two original events are hidden by one change (a join hides two).
        prop_assert!(intact + 2 >= n, "{} of {} intact events returned", intact, n);
        // Nothing is invented: an event that is not an original was parsed from the
        // damaged bytes (a flip inside a string can leave valid JSON).
        prop_assert!(all.len() <= n + 1);
    }

    /// Arbitrary bytes, split over up to two day files: every reader answers.
    #[test]
    fn arbitrary_files_never_panic(
        files in prop::collection::vec(prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                Just(b"\n".to_vec()),
                Just(b"{\"id\":\"01JDQ7Z4M5X0V9K3T2N1B8C6A4\"}\n".to_vec()),
                (0usize..20).prop_map(|i| pool()[i].clone()),
                (0usize..20, 0usize..200).prop_map(|(i, cut)| pool()[i][..cut.min(pool()[i].len())].to_vec()),
            ],
            0..12,
        ), 1..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (i, parts) in files.iter().enumerate() {
            fs::write(dir.path().join(format!("2026-11-{:02}.jsonl", 20 + i)), parts.concat()).unwrap();
        }
        let report = verify(dir.path()).unwrap();
        let total_lines: usize = files.iter().map(|p| p.concat().split(|b| *b == b'\n').count()).sum();
        if let Some(b) = &report.first_broken {
            prop_assert!(b.line >= 1 && b.line <= total_lines);
        }
        read_everything(dir.path())?;
        // The writer either continues the chain or refuses with an error: no panic.
        if let Ok(log) = AuditLog::open(dir.path()) {
            let appended = log.append(NewEvent { command: "after".into(), ..NewEvent::default() });
            prop_assert!(appended.is_ok());
            drop(log);
            let after = verify(dir.path()).unwrap();
            // A trail that verified (perhaps with a torn tail, which open repairs) still
            // verifies with the new event chained on.
            if report.ok {
                prop_assert!(after.ok && after.torn_tail.is_none(), "{:?} then {:?}", report, after);
                prop_assert!(after.events > report.events);
            }
        }
    }

    /// A follower sees exactly the complete, parseable lines appended after it started,
    /// in order, however the writes are split: torn halves wait for their other half,
    /// garbage lines are skipped.
    #[test]
    fn the_follower_sees_each_complete_event_once(
        start in 0usize..5,
        writes in prop::collection::vec((0usize..20, 1usize..4, any::<bool>()), 1..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = day_file(dir.path());
        fs::write(&path, pool()[..start].concat()).unwrap();
        let mut follower = Follower::new(dir.path()).unwrap();
        let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
        let mut expected: Vec<AuditEvent> = Vec::new();
        let mut seen: Vec<AuditEvent> = Vec::new();
        for (i, pieces, garbage) in writes {
            if garbage {
                file.write_all(b"not json \xff\xfe\n").unwrap();
            }
            let line = &pool()[i];
            // The line in `pieces` writes, polling in between: no half line is returned.
            let step = line.len().div_ceil(pieces);
            for chunk in line.chunks(step) {
                file.write_all(chunk).unwrap();
                seen.extend(follower.poll().unwrap());
            }
            expected.push(parsed(line));
        }
        seen.extend(follower.poll().unwrap());
        prop_assert_eq!(seen, expected);
    }
}

/// A 4 MiB command goes through the writer, and every reader returns it whole.
#[test]
fn huge_events_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let huge = format!("echo {}", "é\u{0}\"\\x".repeat(800_000));
    let log = AuditLog::open(dir.path()).unwrap();
    log.append(NewEvent {
        command: "small".into(),
        ..NewEvent::default()
    })
    .unwrap();
    let stored = log
        .append(NewEvent {
            command: huge.clone(),
            argv: vec![huge.clone()],
            ..NewEvent::default()
        })
        .unwrap();
    log.append(NewEvent {
        command: "after".into(),
        ..NewEvent::default()
    })
    .unwrap();
    drop(log);
    assert_eq!(stored.command, huge);
    let report = verify(dir.path()).unwrap();
    assert!(report.ok && report.events == 3, "{report:?}");
    let events = read_events(dir.path(), &Query::default()).unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1], stored);
    let follower = Follower::new(dir.path()).unwrap();
    assert_eq!(follower.backlog(2).unwrap()[0], stored);
}

/// Writes events (unchained: the query side does not check hashes) as a day file.
fn write_events(dir: &Path, commands: &[String]) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    let mut text = Vec::new();
    for (i, command) in commands.iter().enumerate() {
        let mut event = parsed(&pool()[0]);
        event.id = format!("01JDQ7Z4M5X0V9K3T2N1B8C6{:02}", i % 100);
        event.command.clone_from(command);
        serde_json::to_writer(&mut text, &event).unwrap();
        text.push(b'\n');
        events.push(event);
    }
    fs::write(day_file(dir), text).unwrap();
    events
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Text search finds any piece of a command in any ASCII case, and only commands
    /// (or messages) that contain it.
    #[test]
    fn text_search_ignores_ascii_case(
        command in any::<String>(),
        start in any::<usize>(),
        len in 0usize..16,
        flips in any::<u64>(),
        other in "[a-z]{1,8}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let chars: Vec<char> = command.chars().collect();
        let start = if chars.is_empty() { 0 } else { start % chars.len() };
        let piece: String = chars[start..(start + len).min(chars.len())]
            .iter()
            .enumerate()
            .map(|(i, c)| if flips >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        write_events(dir.path(), std::slice::from_ref(&command));
        let found = |text: &str| read_events(dir.path(), &Query { text: Some(text.to_owned()), ..Query::default() }).unwrap().len();
        prop_assert_eq!(found(&piece), 1, "{:?} in {:?}", piece, command);
        let expected = usize::from(
            command.to_ascii_lowercase().contains(&other) || "message 0".contains(&other),
        );
        prop_assert_eq!(found(&other), expected);
    }
}

/// Searching a 1 MiB command for a long text that almost matches everywhere takes
/// linear time (it took haystack × needle steps: 16 s for this one in a release build).
#[test]
fn long_search_texts_cost_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), &["a".repeat(1 << 20), "b".repeat(10)]);
    let needle = format!("{}b", "A".repeat(200_000));
    let started = std::time::Instant::now();
    let found = read_events(
        dir.path(),
        &Query {
            text: Some(needle),
            ..Query::default()
        },
    )
    .unwrap();
    assert!(found.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
