//! The audit trail end to end, on real files in temporary directories: writing from many
//! threads, tampering, crashes, day files, queries and stats.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rampart_audit::{
    Approval, AuditError, AuditEvent, AuditLog, BrokenLine, Counts, Follower, GENESIS_HASH,
    NewEvent, Query, Recovery, read_events, stats, tail, verify,
};

/// Fixtures. In a `cfg(test)` module so they may unwrap like the tests they serve
/// (clippy.toml allows it in tests only).
#[cfg(test)]
mod support {
    use super::*;

    pub fn at(rfc3339: &str) -> SystemTime {
        SystemTime::try_from(rfc3339.parse::<jiff::Timestamp>().unwrap()).unwrap()
    }

    pub fn event(agent: &str, tool: &str, decision: &str, command: &str) -> NewEvent {
        NewEvent {
            agent: agent.into(),
            session: format!("{agent}-session"),
            tool: tool.into(),
            command: command.into(),
            decision: decision.into(),
            policy: if decision == "allow" {
                String::new()
            } else {
                format!("{decision}-rule")
            },
            message: format!("{decision}: {command}"),
            eval_us: 4,
            ..NewEvent::default()
        }
    }

    pub fn day_file(dir: &Path, day: &str) -> PathBuf {
        dir.join(format!("{day}.jsonl"))
    }

    pub fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn write_lines(path: &Path, lines: &[String]) {
        fs::write(
            path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    }

    /// Ten events on 2026-11-26, log closed.
    pub fn ten_events(dir: &Path) -> PathBuf {
        let log = AuditLog::open(dir).unwrap();
        for i in 0..10 {
            log.append_at(
                event("a", "exec", "allow", &format!("echo {i}")),
                at("2026-11-26T10:00:00Z") + Duration::from_secs(i),
            )
            .unwrap();
        }
        day_file(dir, "2026-11-26")
    }

    pub fn broken(dir: &Path) -> Option<BrokenLine> {
        let report = verify(dir).unwrap();
        assert_eq!(report.ok, report.first_broken.is_none());
        report.first_broken
    }

    /// A small trail over two days: (agent, tool, decision, command, time).
    pub fn sample_trail(dir: &Path) -> Vec<AuditEvent> {
        let log = AuditLog::open(dir).unwrap();
        let rows = [
            (
                "claude",
                "exec",
                "allow",
                "git status",
                "2026-11-26T09:00:00Z",
            ),
            ("claude", "exec", "deny", "rm -rf /", "2026-11-26T09:01:00Z"),
            (
                "codex",
                "exec",
                "log",
                "curl https://x.example",
                "2026-11-26T09:02:00Z",
            ),
            (
                "codex",
                "read",
                "allow",
                "cat README.md",
                "2026-11-26T09:03:00Z",
            ),
            (
                "claude",
                "exec",
                "ask",
                "sudo apt install jq",
                "2026-11-27T08:00:00Z",
            ),
            (
                "claude",
                "exec",
                "allow",
                "git push",
                "2026-11-27T08:01:00Z",
            ),
            (
                "codex",
                "exec",
                "deny",
                "RM -RF /home",
                "2026-11-27T08:02:00Z",
            ),
        ];
        let mut events: Vec<AuditEvent> = rows
            .iter()
            .map(|(agent, tool, decision, command, ts)| {
                log.append_at(event(agent, tool, decision, command), at(ts))
                    .unwrap()
            })
            .collect();
        // A resolved ask: stored with its final decision and the approval.
        let mut approved = event("claude", "exec", "allow", "sudo systemctl restart nginx");
        approved.approval = Some(Approval {
            id: "01JDQ7Z4M5X0V9K3T2N1B8C6A4".into(),
            approved: true,
            resolved_by: "dashboard".into(),
            message: "ok".into(),
            resolved_at: "2026-11-27T08:03:30.000000Z".into(),
        });
        events.push(log.append_at(approved, at("2026-11-27T08:03:00Z")).unwrap());
        events
    }

    pub fn commands(events: &[AuditEvent]) -> Vec<&str> {
        events.iter().map(|e| e.command.as_str()).collect()
    }
}

use support::*;

#[test]
fn eight_threads_append_one_valid_chain_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..500)
                    .map(|i| {
                        log.append(event(
                            &format!("agent-{t}"),
                            "exec",
                            "allow",
                            &format!("echo {i}"),
                        ))
                        .unwrap()
                        .id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let returned: HashSet<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    log.flush_sync().unwrap();

    let report = verify(dir.path()).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, 4000);
    assert_eq!(report.torn_tail, None);

    let stored: Vec<AuditEvent> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .flat_map(|e| lines(&e.path()))
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    assert_eq!(stored.len(), 4000);
    assert!(
        stored.windows(2).all(|w| w[0].id < w[1].id),
        "ids grow in file order"
    );
    assert_eq!(
        stored.iter().map(|e| e.id.clone()).collect::<HashSet<_>>(),
        returned
    );
}

#[test]
fn stored_line_is_the_returned_event_and_the_first_links_to_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let mut new = event("claude-code", "exec", "deny", "rm -rf /");
    new.argv = vec!["rm".into(), "-rf".into(), "/".into()];
    new.pid = Some(4243);
    new.mode = Some("enforce".into());
    let first = log.append_at(new, at("2026-11-26T06:27:45Z")).unwrap();
    let second = log
        .append_at(
            event("claude-code", "exec", "allow", "ls"),
            at("2026-11-26T06:27:46Z"),
        )
        .unwrap();
    drop(log);

    assert_eq!(first.prev_hash, GENESIS_HASH);
    assert_eq!(second.prev_hash, first.hash);
    assert_eq!(first.ts, "2026-11-26T06:27:45.000000Z");
    assert_eq!(first.id.len(), 26);
    assert!(first.hash.starts_with("sha256:") && first.hash.len() == 71);
    let stored = lines(&day_file(dir.path(), "2026-11-26"));
    assert_eq!(
        stored,
        [
            serde_json::to_string(&first).unwrap(),
            serde_json::to_string(&second).unwrap()
        ]
    );
    assert!(stored[0].starts_with(&format!(
        r#"{{"id":"{}","ts":"2026-11-26T06:27:45.000000Z","agent":"claude-code","session":"claude-code-session","tool":"exec","command":"rm -rf /","argv":["rm","-rf","/"],"pid":4243,"decision":"deny","policy":"deny-rule","message":"deny: rm -rf /","eval_us":4,"mode":"enforce","prev_hash":"{GENESIS_HASH}","hash":"sha256:"#,
        first.id
    )));
}

#[test]
fn editing_any_byte_of_an_event_breaks_verify_at_that_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_events(dir.path());
    let original = lines(&path);
    assert!(verify(dir.path()).unwrap().ok);

    let line = &original[5];
    // The first byte, a byte of the command, a byte of prev_hash, a byte of the hash.
    let positions = [
        0,
        line.find("echo 5").unwrap() + 5,
        line.find("prev_hash").unwrap() + 20,
        line.len() - 3,
    ];
    for position in positions {
        let mut bytes = line.clone().into_bytes();
        bytes[position] = if bytes[position] == b'1' { b'2' } else { b'1' };
        let mut edited = original.clone();
        edited[5] = String::from_utf8(bytes).unwrap();
        write_lines(&path, &edited);

        let report = verify(dir.path()).unwrap();
        assert!(!report.ok);
        assert_eq!(report.damage.first(), report.first_broken.as_ref());
        let first = report.first_broken.unwrap();
        assert_eq!(
            (first.file.as_path(), first.line),
            (path.as_path(), 6),
            "byte {position}: {}",
            first.reason
        );
    }

    // Same JSON meaning, different bytes: still a change.
    let mut edited = original.clone();
    edited[5] = original[5].replacen("\"echo 5\"", "\"ech\\u006f 5\"", 1);
    write_lines(&path, &edited);
    let first = broken(dir.path()).unwrap();
    assert_eq!(first.line, 6);
    assert_eq!(
        first.reason,
        "hash mismatch: the event was changed after it was written"
    );
}

#[test]
fn deleting_or_reordering_lines_breaks_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_events(dir.path());
    let original = lines(&path);

    let mut deleted = original.clone();
    deleted.remove(3);
    write_lines(&path, &deleted);
    let first = broken(dir.path()).unwrap();
    assert_eq!((first.file.as_path(), first.line), (path.as_path(), 4));
    assert!(
        first.reason.starts_with("prev_hash sha256:"),
        "{}",
        first.reason
    );
    assert!(
        first
            .reason
            .ends_with("an event before this line was removed, inserted or changed")
    );

    let mut swapped = original.clone();
    swapped.swap(7, 8);
    write_lines(&path, &swapped);
    assert_eq!(broken(dir.path()).map(|b| b.line), Some(8));

    let mut not_json = original.clone();
    not_json[1] = "not json".into();
    write_lines(&path, &not_json);
    let first = broken(dir.path()).unwrap();
    assert_eq!(first.line, 2);
    assert!(
        first.reason.starts_with("not a valid audit event: "),
        "{}",
        first.reason
    );

    let mut blank = original.clone();
    blank.insert(9, String::new());
    write_lines(&path, &blank);
    assert_eq!(broken(dir.path()).map(|b| b.line), Some(10));
}

#[test]
fn the_chain_continues_across_day_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let mut last_of_day1 = None;
    for i in 0..3 {
        last_of_day1 = Some(
            log.append_at(
                event("a", "exec", "allow", "ls"),
                at("2026-11-26T23:59:57Z") + Duration::from_secs(i),
            )
            .unwrap(),
        );
    }
    let first_of_day2 = log
        .append_at(
            event("a", "exec", "allow", "ls"),
            at("2026-11-27T00:00:00Z"),
        )
        .unwrap();
    log.append_at(
        event("a", "exec", "deny", "rm -rf /"),
        at("2026-11-27T00:00:01Z"),
    )
    .unwrap();
    drop(log);

    assert_eq!(first_of_day2.prev_hash, last_of_day1.unwrap().hash);
    let (day1, day2) = (
        day_file(dir.path(), "2026-11-26"),
        day_file(dir.path(), "2026-11-27"),
    );
    assert_eq!((lines(&day1).len(), lines(&day2).len()), (3, 2));
    let report = verify(dir.path()).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.events, report.files), (5, 2));

    // Losing the whole first day shows at the first line of the second.
    let saved = fs::read(&day1).unwrap();
    fs::remove_file(&day1).unwrap();
    let first = broken(dir.path()).unwrap();
    assert_eq!((first.file, first.line), (day2.clone(), 1));
    fs::write(&day1, saved).unwrap();

    // Tampering in the older file is found there.
    let mut edited = lines(&day1);
    edited[1] = edited[1].replace("\"allow\"", "\"deny\"");
    write_lines(&day1, &edited);
    let first = broken(dir.path()).unwrap();
    assert_eq!((first.file, first.line), (day1, 2));
}

#[test]
fn a_clock_stepping_back_never_writes_to_an_older_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let later = log
        .append_at(
            event("a", "exec", "allow", "ls"),
            at("2026-11-27T00:00:05Z"),
        )
        .unwrap();
    let earlier = log
        .append_at(
            event("a", "exec", "allow", "pwd"),
            at("2026-11-26T23:59:00Z"),
        )
        .unwrap();
    drop(log);
    assert!(earlier.id > later.id, "ids stay in file order");
    assert!(!day_file(dir.path(), "2026-11-26").exists());
    assert_eq!(lines(&day_file(dir.path(), "2026-11-27")).len(), 2);
    assert!(verify(dir.path()).unwrap().ok);

    // The same after a restart: the newest file is the floor.
    let log = AuditLog::open(dir.path()).unwrap();
    let again = log
        .append_at(
            event("a", "exec", "allow", "id"),
            at("2026-11-20T00:00:00Z"),
        )
        .unwrap();
    drop(log);
    assert!(again.id > earlier.id);
    assert_eq!(lines(&day_file(dir.path(), "2026-11-27")).len(), 3);
    assert!(verify(dir.path()).unwrap().ok);
}

#[test]
fn reopening_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let mut last = None;
    for _ in 0..3 {
        last = Some(log.append(event("a", "exec", "allow", "ls")).unwrap());
    }
    drop(log);
    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(log.recovery(), &[]);
    let next = log.append(event("a", "exec", "allow", "ls")).unwrap();
    let last = last.unwrap();
    assert_eq!(next.prev_hash, last.hash);
    assert!(next.id > last.id);
    drop(log);
    let report = verify(dir.path()).unwrap();
    assert!(report.ok);
    assert_eq!(report.events, 4);
}

#[test]
fn a_second_writer_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let err = AuditLog::open(dir.path()).unwrap_err();
    assert!(matches!(err, AuditError::Locked { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("audit directory is in use by another writer (lock file "),
        "{err}"
    );
    drop(log);
    AuditLog::open(dir.path()).unwrap();
}

#[test]
fn a_torn_fragment_is_a_warning_for_verify_and_is_cut_off_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_events(dir.path());
    let fragment = br#"{"id":"01JDQ7Z4M5X0V9K3T2N1B8C6A4","ts":"2026-11-26T10:"#;
    let mut content = fs::read(&path).unwrap();
    let complete = content.clone();
    content.extend_from_slice(fragment);
    fs::write(&path, &content).unwrap();

    let report = verify(dir.path()).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, 10);
    let torn = report.torn_tail.unwrap();
    assert_eq!(
        (torn.file.as_path(), torn.line, torn.bytes),
        (path.as_path(), 11, fragment.len())
    );

    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(
        log.recovery(),
        &[Recovery::Truncated {
            path: path.clone(),
            line: 11,
            bytes: fragment.to_vec()
        }]
    );
    assert_eq!(fs::read(&path).unwrap(), complete);
    log.append_at(
        event("a", "exec", "allow", "ls"),
        at("2026-11-26T11:00:00Z"),
    )
    .unwrap();
    drop(log);
    let report = verify(dir.path()).unwrap();
    assert!(report.ok && report.torn_tail.is_none(), "{report:?}");
    assert_eq!(report.events, 11);
}

#[test]
fn a_whole_last_event_missing_only_its_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_events(dir.path());
    let mut content = fs::read(&path).unwrap();
    content.pop();
    fs::write(&path, &content).unwrap();

    let report = verify(dir.path()).unwrap();
    assert!(report.ok);
    assert_eq!(
        (report.events, report.torn_tail.map(|t| t.line)),
        (9, Some(10))
    );

    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(
        log.recovery(),
        &[Recovery::Completed {
            path: path.clone(),
            line: 10
        }]
    );
    log.append_at(
        event("a", "exec", "allow", "ls"),
        at("2026-11-26T11:00:00Z"),
    )
    .unwrap();
    drop(log);
    let report = verify(dir.path()).unwrap();
    assert!(report.ok && report.torn_tail.is_none(), "{report:?}");
    assert_eq!(report.events, 11);
}

#[test]
fn a_torn_line_in_an_older_file_is_a_break() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    log.append_at(
        event("a", "exec", "allow", "ls"),
        at("2026-11-26T10:00:00Z"),
    )
    .unwrap();
    log.append_at(
        event("a", "exec", "allow", "ls"),
        at("2026-11-27T10:00:00Z"),
    )
    .unwrap();
    drop(log);
    let day1 = day_file(dir.path(), "2026-11-26");
    let mut content = fs::read(&day1).unwrap();
    content.pop();
    fs::write(&day1, content).unwrap();
    let first = broken(dir.path()).unwrap();
    assert_eq!((first.file, first.line), (day1, 1));
    assert_eq!(
        first.reason,
        "line has no newline but later day files follow: the file was cut short"
    );
}

#[test]
fn a_damaged_last_line_is_stepped_over_left_in_place_and_named_by_verify() {
    let damaged = [
        ("garbage".to_owned(), "not a valid audit event: "),
        (String::new(), "empty line (the writer never writes one)"),
    ];
    for (garbage, reason) in damaged {
        let dir = tempfile::tempdir().unwrap();
        let path = ten_events(dir.path());
        let original = lines(&path);
        let mut edited = original.clone();
        edited.push(garbage.clone());
        edited.push(original[9].replace("echo 9", "echo 99"));
        write_lines(&path, &edited);

        let log = AuditLog::open(dir.path()).unwrap();
        let recovery = log.recovery().to_vec();
        assert_eq!(recovery.len(), 2, "{recovery:?}");
        assert!(
            matches!(&recovery[0], Recovery::Skipped { line: 11, reason: r, .. } if r.starts_with(reason)),
            "{recovery:?}"
        );
        assert!(
            matches!(&recovery[1], Recovery::Skipped { line: 12, reason: r, .. } if r == "hash mismatch: the event was changed after it was written"),
            "{recovery:?}"
        );
        let next = log
            .append_at(
                event("a", "exec", "allow", "ls"),
                at("2026-11-26T11:00:00Z"),
            )
            .unwrap();
        drop(log);
        let tenth: AuditEvent = serde_json::from_str(&original[9]).unwrap();
        assert_eq!(
            next.prev_hash, tenth.hash,
            "continues from the last intact event"
        );
        assert_eq!(lines(&path).len(), 13, "the damaged lines stay");

        let report = verify(dir.path()).unwrap();
        assert!(!report.ok);
        let named: Vec<(usize, bool)> = report
            .damage
            .iter()
            .map(|d| {
                (
                    d.line,
                    d.reason.starts_with(reason) || d.reason.starts_with("hash mismatch"),
                )
            })
            .collect();
        assert_eq!(named, [(11, true), (12, true)], "{report:?}");
        assert_eq!(report.events, 11, "ten before, one after the damage");
        assert!(
            !dir.path().join("repairs.jsonl").exists(),
            "nothing was changed"
        );
    }
}

#[test]
fn empty_lines_at_the_end_are_removed_and_the_repair_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_events(dir.path());
    let complete = fs::read(&path).unwrap();
    let mut content = complete.clone();
    content.extend_from_slice(b"\n\n");
    fs::write(&path, &content).unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(
        report.first_broken.map(|b| (b.line, b.reason)),
        Some((11, "empty line (the writer never writes one)".to_owned()))
    );

    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(
        log.recovery(),
        &[Recovery::BlankLinesRemoved {
            path: path.clone(),
            line: 11,
            count: 2
        }]
    );
    assert_eq!(fs::read(&path).unwrap(), complete);
    log.append(event("a", "exec", "allow", "ls")).unwrap();
    drop(log);
    let report = verify(dir.path()).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.repairs.len(), 1);
    assert_eq!(report.repairs[0].file, "2026-11-26.jsonl");
    assert_eq!(report.repairs[0].line, 11);
    assert_eq!(
        report.repairs[0].what,
        "removed 2 empty line(s) at the end of the file"
    );
}

#[test]
fn a_cut_fragment_is_kept_in_the_repairs_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_events(dir.path());
    let mut content = fs::read(&path).unwrap();
    content.extend_from_slice(b"{\"id\":\"01J");
    fs::write(&path, &content).unwrap();
    drop(AuditLog::open(dir.path()).unwrap());
    let report = verify(dir.path()).unwrap();
    assert!(report.ok && report.torn_tail.is_none(), "{report:?}");
    assert_eq!(report.repairs.len(), 1);
    let repair = &report.repairs[0];
    assert_eq!(
        (repair.file.as_str(), repair.line),
        ("2026-11-26.jsonl", 11)
    );
    assert_eq!(repair.bytes, "{\"id\":\"01J");
    assert!(
        repair
            .what
            .starts_with("cut off an unterminated partial line of 10 bytes"),
        "{}",
        repair.what
    );
}

#[test]
fn a_trail_damaged_beyond_its_end_stops_open_with_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_events(dir.path());
    let mut edited = lines(&path);
    edited.extend((0..101).map(|i| format!("garbage {i}")));
    write_lines(&path, &edited);
    let err = AuditLog::open(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:11: more than 100 damaged lines at the end of the audit trail, no intact event to continue the chain from; run `rampart audit verify`",
            path.display()
        )
    );
}

#[test]
fn secrets_are_redacted_before_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let mut new = event(
        "a",
        "exec",
        "allow",
        "mysql -u root -pS3cret db && curl -H 'Authorization: Bearer tok123' x",
    );
    new.argv = vec![
        "mysql".into(),
        "-u".into(),
        "root".into(),
        "-pS3cret".into(),
        "db".into(),
    ];
    let stored = log.append(new).unwrap();
    drop(log);

    assert_eq!(
        stored.command,
        "mysql -u root -p[REDACTED] db && curl -H 'Authorization: Bearer [REDACTED]' x"
    );
    assert_eq!(stored.argv, ["mysql", "-u", "root", "-p[REDACTED]", "db"]);
    let content = fs::read_to_string(
        dir.path().join(
            fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .find(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .unwrap()
                .file_name(),
        ),
    )
    .unwrap();
    assert!(
        !content.contains("S3cret") && !content.contains("tok123"),
        "{content}"
    );
    assert!(verify(dir.path()).unwrap().ok);
}

#[test]
fn queries_filter_and_return_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let all = sample_trail(dir.path());
    let q = |query: Query| read_events(dir.path(), &query).unwrap();

    let everything = q(Query::default());
    assert_eq!(everything.len(), 8);
    assert_eq!(everything.iter().rev().cloned().collect::<Vec<_>>(), all);

    assert_eq!(
        commands(&q(Query {
            agent: Some("codex".into()),
            ..Query::default()
        })),
        ["RM -RF /home", "cat README.md", "curl https://x.example"]
    );
    assert_eq!(
        commands(&q(Query {
            decision: Some("deny".into()),
            ..Query::default()
        })),
        ["RM -RF /home", "rm -rf /"]
    );
    assert_eq!(
        commands(&q(Query {
            tool: Some("read".into()),
            ..Query::default()
        })),
        ["cat README.md"]
    );
    assert_eq!(
        commands(&q(Query {
            session: Some("codex-session".into()),
            decision: Some("log".into()),
            ..Query::default()
        })),
        ["curl https://x.example"]
    );
    // Text is a substring of command or message, ignoring ASCII case.
    assert_eq!(
        commands(&q(Query {
            text: Some("rm -rf".into()),
            ..Query::default()
        })),
        ["RM -RF /home", "rm -rf /"]
    );
    assert_eq!(
        commands(&q(Query {
            text: Some("ASK:".into()),
            ..Query::default()
        })),
        ["sudo apt install jq"]
    );
    assert_eq!(
        commands(&q(Query {
            since: Some(at("2026-11-27T08:01:00Z")),
            ..Query::default()
        })),
        ["sudo systemctl restart nginx", "RM -RF /home", "git push"]
    );
    assert_eq!(
        q(Query {
            since: Some(at("2026-11-28T00:00:00Z")),
            ..Query::default()
        }),
        vec![]
    );
    assert_eq!(
        q(Query {
            agent: Some("nobody".into()),
            ..Query::default()
        }),
        vec![]
    );
}

#[test]
fn before_and_limit_page_through_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let all = sample_trail(dir.path());
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = read_events(
            dir.path(),
            &Query {
                before: before.clone(),
                limit: Some(3),
                ..Query::default()
            },
        )
        .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.id.clone());
        pages.push(page);
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
    let flat: Vec<AuditEvent> = pages.into_iter().flatten().collect();
    assert_eq!(flat, all.into_iter().rev().collect::<Vec<_>>());
    let lower = read_events(
        dir.path(),
        &Query {
            before: Some(flat[2].id.to_ascii_lowercase()),
            ..Query::default()
        },
    )
    .unwrap();
    assert_eq!(lower, flat[3..].to_vec());
    assert_eq!(
        read_events(
            dir.path(),
            &Query {
                limit: Some(0),
                ..Query::default()
            }
        )
        .unwrap(),
        vec![]
    );
}

#[test]
fn tail_returns_the_last_events_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let all = sample_trail(dir.path());
    assert_eq!(tail(dir.path(), 3).unwrap(), all[5..].to_vec());
    assert_eq!(tail(dir.path(), 100).unwrap(), all);
    assert_eq!(tail(&dir.path().join("missing"), 5).unwrap(), vec![]);
}

#[test]
fn stats_count_exactly() {
    let dir = tempfile::tempdir().unwrap();
    sample_trail(dir.path());
    let counts = |total, allowed, denied, logged, asked| Counts {
        total,
        allowed,
        denied,
        logged,
        asked,
        unchecked: 0,
    };

    // Allowed + denied + logged = total: the unresolved ask counts as denied (issue 15).
    let all = stats(dir.path(), None, None).unwrap();
    assert_eq!(all.totals, counts(8, 4, 3, 1, 2));
    assert_eq!(all.agents.len(), 2);
    assert_eq!(all.agents["claude"], counts(5, 3, 2, 0, 2));
    assert_eq!(all.agents["codex"], counts(3, 1, 1, 1, 0));
    assert_eq!(all.tools["exec"], counts(7, 3, 3, 1, 2));
    assert_eq!(all.tools["read"], counts(1, 1, 0, 0, 0));

    let codex_day2 = stats(dir.path(), Some(at("2026-11-27T00:00:00Z")), Some("codex")).unwrap();
    assert_eq!(codex_day2.totals, counts(1, 0, 1, 0, 0));
    assert_eq!(codex_day2.agents.keys().collect::<Vec<_>>(), ["codex"]);

    assert_eq!(
        serde_json::to_string(&codex_day2).unwrap(),
        r#"{"totals":{"total":1,"allowed":0,"denied":1,"logged":0,"asked":0,"unchecked":0},"agents":{"codex":{"total":1,"allowed":0,"denied":1,"logged":0,"asked":0,"unchecked":0}},"tools":{"exec":{"total":1,"allowed":0,"denied":1,"logged":0,"asked":0,"unchecked":0}}}"#
    );
}

#[test]
fn unchecked_reports_are_counted_as_execs_not_as_decisions_and_found_by_search() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    log.append(event("claude", "exec", "allow", "ls")).unwrap();
    let report = log
        .append(NewEvent {
            agent: "claude".into(),
            session: "claude-session".into(),
            tool: "exec".into(),
            decision: "unchecked".into(),
            message: "3 exec(s) ran unchecked in pid 42".into(),
            pid: Some(42),
            unchecked: Some(3),
            ..NewEvent::default()
        })
        .unwrap();
    log.append(NewEvent {
        unchecked: Some(2),
        ..report_like("codex")
    })
    .unwrap();
    drop(log);
    // On disk: one more optional field, just before prev_hash; the line reads back.
    let line = lines(&day_file(dir.path(), &report.ts[..10]))[1].clone();
    assert!(
        line.contains(r#""decision":"unchecked","policy":"","message":"3 exec(s) ran unchecked in pid 42","eval_us":0,"unchecked":3,"prev_hash":"#),
        "{line}"
    );
    let all = stats(dir.path(), None, None).unwrap();
    assert_eq!(
        all.agents["claude"],
        Counts {
            total: 1,
            allowed: 1,
            unchecked: 3,
            ..Counts::default()
        }
    );
    assert_eq!(all.totals.unchecked, 5);
    assert_eq!(all.totals.total, 1);
    let found = read_events(
        dir.path(),
        &Query {
            decision: Some("unchecked".into()),
            ..Query::default()
        },
    )
    .unwrap();
    assert_eq!(found.len(), 2);
    let by_text = read_events(
        dir.path(),
        &Query {
            text: Some("RAN UNCHECKED".into()),
            agent: Some("claude".into()),
            ..Query::default()
        },
    )
    .unwrap();
    assert_eq!(by_text, vec![report]);
    assert!(rampart_audit::verify(dir.path()).unwrap().ok);
}

fn report_like(agent: &str) -> NewEvent {
    NewEvent {
        agent: agent.into(),
        tool: "exec".into(),
        decision: "unchecked".into(),
        message: "ran unchecked".into(),
        ..NewEvent::default()
    }
}

#[test]
fn the_follower_sees_new_events_across_a_day_change_and_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let mut follower = Follower::new(dir.path())
        .unwrap()
        .with_interval(Duration::from_millis(1));
    assert_eq!(follower.poll().unwrap(), vec![]);
    assert_eq!(follower.backlog(5).unwrap(), vec![]);

    let log = AuditLog::open(dir.path()).unwrap();
    let a = log
        .append_at(
            event("a", "exec", "allow", "one"),
            at("2026-11-26T23:59:59Z"),
        )
        .unwrap();
    let b = log
        .append_at(
            event("a", "exec", "allow", "two"),
            at("2026-11-27T00:00:01Z"),
        )
        .unwrap();
    assert_eq!(follower.wait().unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(follower.poll().unwrap(), vec![]);

    // A torn fragment is not shown until its line is complete.
    let c = log
        .append_at(
            event("a", "exec", "deny", "three"),
            at("2026-11-27T00:00:02Z"),
        )
        .unwrap();
    assert_eq!(follower.poll().unwrap(), vec![c.clone()]);
    drop(log);

    // A new follower starts at the end; its backlog is what came before, oldest first.
    let late = Follower::new(dir.path()).unwrap();
    assert_eq!(late.backlog(2).unwrap(), vec![b, c]);
    assert_eq!(late.backlog(10).unwrap().first(), Some(&a));
}

#[test]
fn a_follower_does_not_return_half_written_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_events(dir.path());
    let mut follower = Follower::new(dir.path()).unwrap();
    let next_line = {
        let log = AuditLog::open(dir.path()).unwrap();
        log.append_at(
            event("a", "exec", "allow", "later"),
            at("2026-11-26T12:00:00Z"),
        )
        .unwrap();
        drop(log);
        let all = lines(&path);
        all[10].clone()
    };
    // Rewrite the file as if the last write had only half landed.
    let mut content: Vec<u8> = lines(&path)[..10]
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let half = next_line.len() / 2;
    content.extend_from_slice(&next_line.as_bytes()[..half]);
    fs::write(&path, &content).unwrap();
    assert_eq!(follower.poll().unwrap(), vec![]);
    content.extend_from_slice(&next_line.as_bytes()[half..]);
    content.push(b'\n');
    fs::write(&path, &content).unwrap();
    assert_eq!(commands(&follower.poll().unwrap()), ["later"]);
}
