//! Reading the trail back, for `rampart audit tail/search/stats` and the server's
//! `/v1/audit/*` endpoints: one implementation for both.
//!
//! Newest-first reads go backwards through the day files from their ends, so a page of
//! recent events costs the same however long the trail is; `since` skips whole files
//! that are older. Lines that do not parse (damage, a torn tail) are skipped here;
//! [`crate::verify`] is where damage is reported.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use serde::Serialize;

use crate::files::{RevLines, complete_len, day_path, list_day_files};
use crate::time::{day_of, parse_ts, to_timestamp};
use crate::{AuditError, AuditEvent};

/// Filters for [`read_events`]; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Exact match.
    pub agent: Option<String>,
    /// Exact match.
    pub session: Option<String>,
    /// Exact match: `allow`, `deny`, `ask` or `log`; `ask` also finds the asks a person
    /// (or the timeout) resolved, stored with their final decision and an `approval`.
    pub decision: Option<String>,
    /// Exact match.
    pub tool: Option<String>,
    /// Substring of `command` or `message`, ignoring ASCII case.
    pub text: Option<String>,
    /// Events at or after this time.
    pub since: Option<SystemTime>,
    /// Events with an id lower than this one (ids grow in file order): the next page
    /// after a page whose oldest event had this id.
    pub before: Option<String>,
    /// At most this many events; `None` for all.
    pub limit: Option<usize>,
    /// Leave out quiet events ([`AuditEvent::quiet`]), as `audit tail` does unless `--all`.
    pub hide_quiet: bool,
}

impl Query {
    fn matches(&self, event: &AuditEvent, since: Option<Timestamp>) -> bool {
        let exact = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        exact(&self.agent, &event.agent)
            && exact(&self.session, &event.session)
            && (exact(&self.decision, &event.decision)
                || (self.decision.as_deref() == Some("ask") && event.approval.is_some()))
            && exact(&self.tool, &event.tool)
            && self
                .before
                .as_deref()
                .is_none_or(|before| event.id.as_str() < before)
            && self.text.as_deref().is_none_or(|text| {
                contains_ignore_case(&event.command, text)
                    || contains_ignore_case(&event.message, text)
            })
            && since.is_none_or(|since| parse_ts(&event.ts).is_some_and(|ts| ts >= since))
            && !(self.hide_quiet && event.quiet)
    }
}

/// Linear in the haystack whatever the input: comparing the needle at every position
/// cost haystack × needle (seconds for a long search text over a 1 MiB command).
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.len() > haystack.len() {
        return false;
    }
    let haystack = haystack.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    memchr::memmem::find(haystack.as_bytes(), needle.as_bytes()).is_some()
}

/// Events matching `query`, newest first.
pub fn read_events(dir: &Path, query: &Query) -> Result<Vec<AuditEvent>, AuditError> {
    read_events_until(dir, query, None)
}

fn read_events_until(
    dir: &Path,
    query: &Query,
    bound: Option<&Position>,
) -> Result<Vec<AuditEvent>, AuditError> {
    let limit = query.limit.unwrap_or(usize::MAX);
    let mut events = Vec::new();
    if limit == 0 {
        return Ok(events);
    }
    let since = query.since.map(to_timestamp).transpose()?;
    // ULIDs are case-insensitive but stored upper-case; compare like with like.
    let normalised;
    let query = match &query.before {
        Some(before) if before.bytes().any(|b| b.is_ascii_lowercase()) => {
            normalised = Query {
                before: Some(before.to_ascii_uppercase()),
                ..query.clone()
            };
            &normalised
        }
        _ => query,
    };
    scan_newest_first(dir, since, bound, |event| {
        if query.matches(&event, since) {
            events.push(event);
            if events.len() >= limit {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    Ok(events)
}

/// The last `n` events, oldest first (the order `tail` prints them in).
pub fn tail(dir: &Path, n: usize) -> Result<Vec<AuditEvent>, AuditError> {
    let mut events = read_events(
        dir,
        &Query {
            limit: Some(n),
            ..Query::default()
        },
    )?;
    events.reverse();
    Ok(events)
}

/// A place in the trail: just past the complete lines of one day file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    day: String,
    offset: u64,
}

/// Calls `visit` on every parseable event, newest first, stopping when it breaks.
/// Files older than `since`'s day cannot hold later events (events never go to a file
/// older than their own day) and are not opened.
fn scan_newest_first(
    dir: &Path,
    since: Option<Timestamp>,
    bound: Option<&Position>,
    mut visit: impl FnMut(AuditEvent) -> ControlFlow<()>,
) -> Result<(), AuditError> {
    let since_day = since.map(day_of);
    for day_file in list_day_files(dir)?.iter().rev() {
        if since_day.as_ref().is_some_and(|d| day_file.day < *d) {
            break;
        }
        if bound.is_some_and(|b| day_file.day > b.day) {
            continue;
        }
        let read_err = |source| AuditError::Read {
            path: day_file.path.clone(),
            source,
        };
        let mut file = match File::open(&day_file.path) {
            Ok(file) => file,
            // Removed since we listed the directory (rotation by hand): nothing to read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(AuditError::Open {
                    path: day_file.path.clone(),
                    source,
                });
            }
        };
        let len = file.metadata().map_err(read_err)?.len();
        let mut end = complete_len(&mut file, len).map_err(read_err)?;
        if let Some(b) = bound.filter(|b| b.day == day_file.day) {
            end = end.min(b.offset);
        }
        let mut lines = RevLines::new(file, end);
        while let Some((_, line)) = lines.next_line().map_err(read_err)? {
            if let Ok(event) = serde_json::from_slice::<AuditEvent>(&line)
                && visit(event).is_break()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Events by outcome: allowed + denied + logged = total. An `ask` that a person resolved
/// is stored with its final decision and an `approval`: it counts as asked *and* as
/// allowed or denied. One refused at once (no person to ask) keeps decision `ask`: it
/// counts as asked and as denied (allowed in monitor mode, where nothing is refused).
/// A report of execs
/// that ran unchecked (decision `unchecked`) is no decision: it is not in `total`, and
/// `unchecked` adds up the execs it reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub allowed: u64,
    pub denied: u64,
    pub logged: u64,
    pub asked: u64,
    /// Execs that ran without being checked (reported later by the library).
    pub unchecked: u64,
}

/// The `decision` of an event that reports execs which ran unchecked.
pub const UNCHECKED: &str = "unchecked";

impl Counts {
    fn add(&mut self, event: &AuditEvent) {
        // The shell's exec of a system()/popen() command is part of that decision.
        if event.part_of.is_some() {
            return;
        }
        if event.decision == UNCHECKED {
            self.unchecked = self.unchecked.saturating_add(event.unchecked.unwrap_or(1));
            return;
        }
        self.total += 1;
        match event.decision.as_str() {
            "allow" => self.allowed += 1,
            "deny" => self.denied += 1,
            "log" | "watch" => self.logged += 1,
            "ask" if event.mode.as_deref() == Some("monitor") => self.allowed += 1,
            "ask" => self.denied += 1,
            _ => {}
        }
        if event.decision == "ask" || event.approval.is_some() {
            self.asked += 1;
        }
    }
}

/// Totals overall, per agent and per tool (maps sorted by name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub totals: Counts,
    pub agents: BTreeMap<String, Counts>,
    pub tools: BTreeMap<String, Counts>,
}

/// Counts events at or after `since`, of `agent` only when given.
pub fn stats(
    dir: &Path,
    since: Option<SystemTime>,
    agent: Option<&str>,
) -> Result<Stats, AuditError> {
    let query = Query {
        agent: agent.map(str::to_owned),
        since,
        ..Query::default()
    };
    let since = since.map(to_timestamp).transpose()?;
    let mut stats = Stats::default();
    scan_newest_first(dir, since, None, |event| {
        if query.matches(&event, since) {
            stats.totals.add(&event);
            stats
                .agents
                .entry(event.agent.clone())
                .or_default()
                .add(&event);
            stats
                .tools
                .entry(event.tool.clone())
                .or_default()
                .add(&event);
        }
        ControlFlow::Continue(())
    })?;
    Ok(stats)
}

/// Follows the trail as it grows (`rampart audit tail --follow`), by polling: the writer
/// may be another process, so there is nothing to be notified by.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    /// Read up to here; `None` while the trail has no file yet.
    position: Option<Position>,
    interval: Duration,
}

impl Follower {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);
    pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
    pub const MAX_INTERVAL: Duration = Duration::from_secs(1);

    /// A follower positioned after the last complete event now in `dir`.
    pub fn new(dir: &Path) -> Result<Follower, AuditError> {
        let position = match list_day_files(dir)?.pop() {
            Some(newest) => {
                let read_err = |source| AuditError::Read {
                    path: newest.path.clone(),
                    source,
                };
                let offset = match File::open(&newest.path) {
                    Ok(mut file) => {
                        let len = file.metadata().map_err(read_err)?.len();
                        complete_len(&mut file, len).map_err(read_err)?
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                    Err(source) => return Err(read_err(source)),
                };
                Some(Position {
                    day: newest.day,
                    offset,
                })
            }
            None => None,
        };
        Ok(Follower {
            dir: dir.to_path_buf(),
            position,
            interval: Self::DEFAULT_INTERVAL,
        })
    }

    /// Sets the poll interval of [`wait`](Self::wait), kept within
    /// [`MIN_INTERVAL`](Self::MIN_INTERVAL)..=[`MAX_INTERVAL`](Self::MAX_INTERVAL).
    pub fn with_interval(mut self, interval: Duration) -> Follower {
        self.interval = interval.clamp(Self::MIN_INTERVAL, Self::MAX_INTERVAL);
        self
    }

    /// The `n` events just before the follower's position, oldest first: print these,
    /// then what [`poll`](Self::poll) returns, and nothing is missed or shown twice.
    pub fn backlog(&self, n: usize) -> Result<Vec<AuditEvent>, AuditError> {
        self.backlog_matching(Query {
            limit: Some(n),
            ..Query::default()
        })
    }

    /// [`backlog`](Self::backlog) of the events `query` matches (`query.limit` of them).
    pub fn backlog_matching(&self, query: Query) -> Result<Vec<AuditEvent>, AuditError> {
        let Some(position) = &self.position else {
            return Ok(Vec::new());
        };
        let mut events = read_events_until(&self.dir, &query, Some(position))?;
        events.reverse();
        Ok(events)
    }

    /// Complete events written since the last call, oldest first; empty when none.
    pub fn poll(&mut self) -> Result<Vec<AuditEvent>, AuditError> {
        let files = list_day_files(&self.dir)?;
        let mut events = Vec::new();
        loop {
            if let Some(position) = &mut self.position {
                read_forward(&self.dir, position, &mut events)?;
            }
            // Once the writer has moved to a newer day it never writes the older file
            // again, so after draining it we can move on for good.
            let current = self.position.as_ref().map(|p| p.day.as_str());
            let Some(next) = files
                .iter()
                .find(|f| current.is_none_or(|day| f.day.as_str() > day))
            else {
                break;
            };
            self.position = Some(Position {
                day: next.day.clone(),
                offset: 0,
            });
        }
        Ok(events)
    }

    /// Blocks until at least one new event arrives, polling every interval.
    pub fn wait(&mut self) -> Result<Vec<AuditEvent>, AuditError> {
        loop {
            let events = self.poll()?;
            if !events.is_empty() {
                return Ok(events);
            }
            std::thread::sleep(self.interval);
        }
    }
}

/// Appends the complete events after `position` in its file and moves past them.
fn read_forward(
    dir: &Path,
    position: &mut Position,
    events: &mut Vec<AuditEvent>,
) -> Result<(), AuditError> {
    let path = day_path(dir, &position.day);
    let read_err = |source| AuditError::Read {
        path: path.clone(),
        source,
    };
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(read_err(source)),
    };
    let len = file.metadata().map_err(read_err)?.len();
    // The file got shorter (a torn tail cut off on restart): continue from its end.
    position.offset = position.offset.min(len);
    file.seek(SeekFrom::Start(position.offset))
        .map_err(read_err)?;
    let mut fresh = Vec::new();
    file.read_to_end(&mut fresh).map_err(read_err)?;
    let Some(last_newline) = memchr::memrchr(b'\n', &fresh) else {
        return Ok(());
    };
    for line in fresh[..last_newline].split(|b| *b == b'\n') {
        if let Ok(event) = serde_json::from_slice::<AuditEvent>(line) {
            events.push(event);
        }
    }
    position.offset += last_newline as u64 + 1;
    Ok(())
}
