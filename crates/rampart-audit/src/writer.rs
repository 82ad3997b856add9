//! [`AuditLog`]: the one writer of an audit directory.
//!
//! Durability contract (DESIGN.md §9): [`AuditLog::append`] returns only after the event's
//! line was handed to the OS in a single `write(2)`, so killing the process never loses an
//! event whose decision was returned. A background thread then fsyncs at most every
//! [`SYNC_INTERVAL`] while there are unsynced writes (group commit), so power loss costs
//! at most ~100 ms of events, and appenders never wait for a disk flush.
//!
//! Concurrency: one mutex, held only to assign the id and time order, hash, and write.
//! A lock file (`.lock`, advisory) keeps a second writer process out of the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ulid::Ulid;

use crate::event::{check_line, damage, encode_line, leading_id, trailing_hash};
use crate::files::{DayFile, RevLines, complete_len, day_path, list_day_files};
use crate::time::{day_of, format_ts, to_timestamp};
use crate::{AuditError, AuditEvent, GENESIS_HASH, NewEvent, redact, redact_argv};

/// Longest time between a write and the fsync that covers it, plus one fsync's duration.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(50);

/// One thing [`AuditLog::open`] found at the end of the trail and what it did about it.
/// Each displays as one line naming the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The unterminated last line was a complete event that chains correctly; only its
    /// newline was missing, and has been added.
    Completed { path: PathBuf, line: usize },
    /// The unterminated last line was a fragment and was cut off; `bytes` is what was
    /// removed (also kept in `repairs.jsonl`). No decision was returned for it, because
    /// `append` returns only after a whole line was written.
    Truncated {
        path: PathBuf,
        line: usize,
        bytes: Vec<u8>,
    },
    /// Empty lines at the end of the newest file (never written by the writer; an editor
    /// adds them) were removed. Nothing but newlines was lost.
    BlankLinesRemoved {
        path: PathBuf,
        line: usize,
        count: usize,
    },
    /// A complete line after the newest intact event is damaged (garbage, or changed so
    /// its hash no longer matches). It is left in place for `rampart audit verify` to
    /// report, and the chain continues from the newest intact event before it.
    Skipped {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

impl Recovery {
    /// The file and 1-based line concerned.
    pub fn location(&self) -> (&Path, usize) {
        match self {
            Recovery::Completed { path, line }
            | Recovery::Truncated { path, line, .. }
            | Recovery::BlankLinesRemoved { path, line, .. }
            | Recovery::Skipped { path, line, .. } => (path, *line),
        }
    }

    /// What was found and done, without the location.
    pub fn what(&self) -> String {
        match self {
            Recovery::Completed { .. } => {
                "the last event was missing its newline (a write cut short); added it".into()
            }
            Recovery::Truncated { bytes, .. } => format!(
                "cut off an unterminated partial line of {} bytes (a write cut short); no decision was returned for it; its bytes are kept in {REPAIRS_FILE}",
                bytes.len()
            ),
            Recovery::BlankLinesRemoved { count, .. } => {
                format!("removed {count} empty line(s) at the end of the file")
            }
            Recovery::Skipped { reason, .. } => format!(
                "{reason}; left in place, the chain continues from the last intact event before it (`rampart audit verify` reports this line)"
            ),
        }
    }
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (path, line) = self.location();
        write!(f, "{}:{line}: {}", path.display(), self.what())
    }
}

/// Name of the file in the audit directory where start-up repairs that changed a day
/// file are recorded, one JSON object per line (`ts`, `file`, `line`, `what`, `bytes`).
/// `rampart audit verify` lists them.
pub const REPAIRS_FILE: &str = "repairs.jsonl";

/// At most this many damaged lines are stepped over at the end of the trail; more means
/// the trail is not just damaged at its end, and the writer refuses to start.
const MAX_SKIPPED: usize = 100;

/// Appends hash-chained events to `DIR/YYYY-MM-DD.jsonl`. Share it (`Arc<AuditLog>`)
/// between threads; dropping it fsyncs what is outstanding.
#[derive(Debug)]
pub struct AuditLog {
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
    recovery: Vec<Recovery>,
    /// Held (advisory lock) for the life of the writer.
    _lock: File,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    /// Wakes the syncer when the first unsynced write lands and at shutdown.
    wake: Condvar,
}

#[derive(Debug)]
struct State {
    prev_hash: String,
    last_id: Option<Ulid>,
    /// The newest day that has a file; events never go to an older file, even when the
    /// clock steps back, so file order stays chain order.
    floor_day: Option<String>,
    current: Option<Current>,
    dirty: bool,
    /// A background fsync failure, reported by the next `append` or `flush_sync`.
    sync_error: Option<AuditError>,
    shutdown: bool,
    /// Reused line buffer: one allocation for the life of the writer.
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Current {
    day: String,
    path: PathBuf,
    file: Arc<File>,
    /// Length after the last complete write: where a failed write is cut back to.
    len: u64,
    /// A failed write could not be cut back: the file may end in a fragment, so the next
    /// write must first cut it back to `len`.
    torn: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock (the workspace denies panics), and every
        // field is valid between statements, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AuditLog {
    /// Opens (creating it, mode 0700) the audit directory and continues the chain from
    /// its newest event. A torn last line left by a crash is repaired, see [`Recovery`].
    pub fn open(dir: &Path) -> Result<AuditLog, AuditError> {
        create_dir(dir)?;
        let lock_path = dir.join(".lock");
        let lock = create_file(&lock_path)?;
        lock.try_lock().map_err(|e| AuditError::Locked {
            path: lock_path.clone(),
            source: match e {
                fs::TryLockError::Error(e) => e,
                fs::TryLockError::WouldBlock => io::ErrorKind::WouldBlock.into(),
            },
        })?;

        let files = list_day_files(dir)?;
        let mut recovery = Vec::new();
        let fragment = match files.last() {
            Some(newest) => repair_tail(newest, &mut recovery)?,
            None => None,
        };
        let mut head = find_head(&files, &mut recovery)?;
        if let (Some(newest), Some(fragment)) = (files.last(), fragment) {
            complete_or_cut(newest, fragment, &mut head, &mut recovery)?;
        }
        record_repairs(dir, &recovery)?;

        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                prev_hash: head.prev_hash,
                last_id: head.last_id,
                floor_day: files.last().map(|f| f.day.clone()),
                current: None,
                dirty: false,
                sync_error: None,
                shutdown: false,
                buf: Vec::with_capacity(1024),
            }),
            wake: Condvar::new(),
        });
        let syncer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("rampart-audit-sync".into())
                .spawn(move || run_syncer(&shared))
                .map_err(AuditError::SpawnSyncer)?
        };
        Ok(AuditLog {
            shared,
            syncer: Some(syncer),
            recovery,
            _lock: lock,
        })
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// What `open` found and repaired at the end of the trail, in file order; empty when
    /// the trail ended cleanly. The server prints each on stderr.
    pub fn recovery(&self) -> &[Recovery] {
        &self.recovery
    }

    /// Redacts, stamps (id, `ts` = now), chains and writes one event; returns it as stored.
    pub fn append(&self, event: NewEvent) -> Result<AuditEvent, AuditError> {
        self.append_at(event, SystemTime::now())
    }

    /// [`append`](Self::append) with the event time given: the clock seam for tests and
    /// for callers that measured the decision time themselves.
    pub fn append_at(&self, new: NewEvent, at: SystemTime) -> Result<AuditEvent, AuditError> {
        self.append_event(new, at, None)
    }

    /// [`append`](Self::append) for an event that is part of the decision `part_of`
    /// (see [`AuditEvent::part_of`]).
    pub fn append_part_of(&self, new: NewEvent, part_of: &str) -> Result<AuditEvent, AuditError> {
        self.append_event(new, SystemTime::now(), Some(part_of.to_owned()))
    }

    fn append_event(
        &self,
        new: NewEvent,
        at: SystemTime,
        part_of: Option<String>,
    ) -> Result<AuditEvent, AuditError> {
        let ts = to_timestamp(at)?;
        let event_day = day_of(ts);
        // Redaction is pure and the slowest step: keep it outside the lock.
        let command = redact(&new.command).into_owned();
        let argv = redact_argv(&new.argv);
        // Messages can quote the command (an approver's note, a custom rule message).
        let message = redact(&new.message).into_owned();
        let mut event = AuditEvent {
            id: String::new(),
            ts: format_ts(ts),
            agent: new.agent,
            session: new.session,
            tool: new.tool,
            command,
            argv,
            exe: new.exe,
            cwd: new.cwd,
            pid: new.pid,
            ppid: new.ppid,
            via: new.via,
            decision: new.decision,
            policy: new.policy,
            message,
            eval_us: new.eval_us,
            approval: new.approval,
            mode: new.mode,
            unchecked: new.unchecked,
            part_of,
            quiet: new.quiet,
            prev_hash: String::new(),
            hash: String::new(),
        };

        let mut state = self.shared.lock();
        if let Some(err) = state.sync_error.take() {
            return Err(err);
        }
        let day = match &state.floor_day {
            Some(floor) if *floor > event_day => floor.clone(),
            _ => event_day,
        };
        if state.current.as_ref().is_none_or(|c| c.day != day) {
            self.switch_day(&mut state, day)?;
        }
        let id = next_id(state.last_id, at)?;
        event.id = id.to_string();
        event.prev_hash.clone_from(&state.prev_hash);

        let mut buf = std::mem::take(&mut state.buf);
        let written = encode_line(&mut event, &mut buf).and_then(|()| write_line(&mut state, &buf));
        state.buf = buf;
        written?;

        state.prev_hash.clone_from(&event.hash);
        state.last_id = Some(id);
        if !state.dirty {
            state.dirty = true;
            self.shared.wake.notify_all();
        }
        Ok(event)
    }

    /// Fsyncs now whatever was written (shutdown, tests). Also reports a background
    /// fsync failure not yet reported.
    pub fn flush_sync(&self) -> Result<(), AuditError> {
        let target = {
            let mut state = self.shared.lock();
            if let Some(err) = state.sync_error.take() {
                return Err(err);
            }
            state.dirty = false;
            state
                .current
                .as_ref()
                .map(|c| (Arc::clone(&c.file), c.path.clone()))
        };
        if let Some((file, path)) = target
            && let Err(source) = file.sync_data()
        {
            self.shared.lock().dirty = true;
            return Err(AuditError::Sync { path, source });
        }
        Ok(())
    }

    /// Makes `day`'s file current. The previous file is fsynced first, so the syncer only
    /// ever has to care about the current one.
    fn switch_day(&self, state: &mut State, day: String) -> Result<(), AuditError> {
        if let Some(old) = state.current.take() {
            old.file.sync_data().map_err(|source| AuditError::Sync {
                path: old.path.clone(),
                source,
            })?;
        }
        let path = day_path(&self.shared.dir, &day);
        let existed = path.exists();
        let file = open_append(&path)?;
        let len = file
            .metadata()
            .map_err(|source| AuditError::Read {
                path: path.clone(),
                source,
            })?
            .len();
        if !existed {
            sync_dir(&self.shared.dir)?;
        }
        state.floor_day = Some(day.clone());
        state.current = Some(Current {
            day,
            path,
            file: Arc::new(file),
            len,
            torn: false,
        });
        Ok(())
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        // The syncer's last act is the final fsync of outstanding writes.
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
    }
}

/// One `write(2)` of a whole line (a regular file takes it whole; `write_all` only
/// loops on the rare short write, as when the disk fills up in the middle of a line). A
/// failed write is cut back so no fragment stays for the next line to be glued to; if
/// even that fails (the file system went read-only), the cut is retried before the next
/// write and nothing is written until it succeeds.
fn write_line(state: &mut State, line: &[u8]) -> Result<(), AuditError> {
    let Some(current) = state.current.as_mut() else {
        return Err(AuditError::Write {
            path: PathBuf::new(),
            source: io::Error::other("no current audit file"),
        });
    };
    if current.torn {
        current
            .file
            .set_len(current.len)
            .map_err(|source| AuditError::Write {
                path: current.path.clone(),
                source,
            })?;
        current.torn = false;
    }
    if let Err(source) = (&*current.file).write_all(line) {
        current.torn = current.file.set_len(current.len).is_err();
        return Err(AuditError::Write {
            path: current.path.clone(),
            source,
        });
    }
    current.len += line.len() as u64;
    Ok(())
}

/// A ULID for time `at`, strictly greater than `last` (also when the clock stepped back
/// or several events share a millisecond), so ids sort in file order.
fn next_id(last: Option<Ulid>, at: SystemTime) -> Result<Ulid, AuditError> {
    let id = Ulid::from_datetime(at);
    match last {
        Some(last) if id <= last => last.increment().map_err(|_| AuditError::IdExhausted {
            last: last.to_string(),
        }),
        _ => Ok(id),
    }
}

fn run_syncer(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        while !state.dirty && !state.shutdown {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !state.dirty {
            return;
        }
        state.dirty = false;
        let target = state
            .current
            .as_ref()
            .map(|c| (Arc::clone(&c.file), c.path.clone()));
        drop(state);

        let started = Instant::now();
        let result = match target {
            Some((file, path)) => file
                .sync_data()
                .map_err(|source| AuditError::Sync { path, source }),
            None => Ok(()),
        };

        state = shared.lock();
        if let Err(err) = result {
            state.sync_error = Some(err);
        }
        // Group commit: writes arriving now wait for the next round, at most one interval.
        while !state.shutdown {
            let elapsed = started.elapsed();
            if elapsed >= SYNC_INTERVAL {
                break;
            }
            state = shared
                .wake
                .wait_timeout(state, SYNC_INTERVAL - elapsed)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Where the chain continues: the hash and id of the newest complete event on disk.
#[derive(Debug)]
struct Head {
    prev_hash: String,
    last_id: Option<Ulid>,
}

fn open_read(path: &Path) -> Result<File, AuditError> {
    File::open(path).map_err(|source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// The newest intact event over the complete lines of `files`. Damaged lines after it
/// (at most [`MAX_SKIPPED`]) are stepped over and recorded as [`Recovery::Skipped`].
fn find_head(files: &[DayFile], recovery: &mut Vec<Recovery>) -> Result<Head, AuditError> {
    let mut skipped = Vec::new();
    let mut head = None;
    'files: for day_file in files.iter().rev() {
        let read_err = |source| AuditError::Read {
            path: day_file.path.clone(),
            source,
        };
        let mut file = open_read(&day_file.path)?;
        let len = file.metadata().map_err(read_err)?.len();
        let end = complete_len(&mut file, len).map_err(read_err)?;
        let mut lines = RevLines::new(file, end);
        while let Some((offset, line)) = lines.next_line().map_err(read_err)? {
            let Some(reason) = damage(&line) else {
                head = Some(Head {
                    prev_hash: trailing_hash(&line).unwrap_or(GENESIS_HASH).to_owned(),
                    last_id: leading_id(&line),
                });
                break 'files;
            };
            let line_no = line_number(&day_file.path, offset)?;
            if skipped.len() == MAX_SKIPPED {
                return Err(AuditError::UnreadableHead {
                    path: day_file.path.clone(),
                    line: line_no,
                });
            }
            skipped.push(Recovery::Skipped {
                path: day_file.path.clone(),
                line: line_no,
                reason,
            });
        }
    }
    skipped.reverse();
    recovery.extend(skipped);
    Ok(head.unwrap_or_else(|| Head {
        prev_hash: GENESIS_HASH.to_owned(),
        last_id: None,
    }))
}

/// 1-based number of the line starting at byte `offset`.
pub(crate) fn line_number(path: &Path, offset: u64) -> Result<usize, AuditError> {
    let read_err = |source| AuditError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut prefix = Vec::new();
    open_read(path)?
        .take(offset)
        .read_to_end(&mut prefix)
        .map_err(read_err)?;
    Ok(memchr::memchr_iter(b'\n', &prefix).count() + 1)
}

fn open_rw(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// First half of the tail repair of the newest file, before the chain head is known:
/// cuts off an unterminated last line that is not an intact event ([`Recovery::Truncated`]),
/// then removes empty lines at the end ([`Recovery::BlankLinesRemoved`]). Returns an
/// unterminated last line that is an intact event, for [`complete_or_cut`] to decide.
fn repair_tail(
    newest: &DayFile,
    recovery: &mut Vec<Recovery>,
) -> Result<Option<Vec<u8>>, AuditError> {
    let path = &newest.path;
    let io_err = |source| AuditError::Write {
        path: path.clone(),
        source,
    };
    let mut file = open_rw(path)?;
    let len = file.metadata().map_err(io_err)?.len();
    let end = complete_len(&mut file, len).map_err(io_err)?;
    if end < len {
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(end)).map_err(io_err)?;
        file.read_to_end(&mut tail).map_err(io_err)?;
        if damage(&tail).is_none() {
            return Ok(Some(tail));
        }
        let line = line_number(path, end)?;
        file.set_len(end).map_err(io_err)?;
        sync_file(&file, path)?;
        recovery.push(Recovery::Truncated {
            path: path.clone(),
            line,
            bytes: tail,
        });
    }
    // Empty lines at the end: the file ends in two or more newlines.
    let mut cut = end;
    while cut >= 2 {
        let mut two = [0u8; 2];
        file.seek(SeekFrom::Start(cut - 2)).map_err(io_err)?;
        file.read_exact(&mut two).map_err(io_err)?;
        if two != *b"\n\n" {
            break;
        }
        cut -= 1;
    }
    if cut == 1 && end >= 1 {
        // The whole file is newlines.
        let mut one = [0u8; 1];
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        file.read_exact(&mut one).map_err(io_err)?;
        if one == *b"\n" {
            cut = 0;
        }
    }
    if cut < end {
        let line = line_number(path, cut)?;
        let count = usize::try_from(end - cut).unwrap_or(usize::MAX);
        file.set_len(cut).map_err(io_err)?;
        sync_file(&file, path)?;
        recovery.push(Recovery::BlankLinesRemoved {
            path: path.clone(),
            line,
            count,
        });
    }
    Ok(None)
}

/// Second half of the tail repair: an unterminated last line that is an intact event is
/// completed (its newline added) when it chains to `head`, which then moves to it;
/// otherwise it is cut off.
fn complete_or_cut(
    newest: &DayFile,
    tail: Vec<u8>,
    head: &mut Head,
    recovery: &mut Vec<Recovery>,
) -> Result<(), AuditError> {
    let path = &newest.path;
    let io_err = |source| AuditError::Write {
        path: path.clone(),
        source,
    };
    let mut file = open_rw(path)?;
    let len = file.metadata().map_err(io_err)?.len();
    let end = len.saturating_sub(tail.len() as u64);
    let line = line_number(path, end)?;
    match check_line(&tail, &head.prev_hash) {
        Ok(event) => {
            file.seek(SeekFrom::End(0)).map_err(io_err)?;
            file.write_all(b"\n").map_err(io_err)?;
            head.prev_hash = event.hash;
            head.last_id = leading_id(&tail);
            recovery.push(Recovery::Completed {
                path: path.clone(),
                line,
            });
        }
        Err(_) => {
            file.set_len(end).map_err(io_err)?;
            recovery.push(Recovery::Truncated {
                path: path.clone(),
                line,
                bytes: tail,
            });
        }
    }
    sync_file(&file, path)
}

fn sync_file(file: &File, path: &Path) -> Result<(), AuditError> {
    file.sync_all().map_err(|source| AuditError::Sync {
        path: path.to_path_buf(),
        source,
    })
}

/// One line of [`REPAIRS_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepairRecord {
    /// When the repair was made (RFC 3339 UTC).
    pub ts: String,
    /// Day file name, e.g. `2026-11-26.jsonl`.
    pub file: String,
    /// 1-based line of that file.
    pub line: usize,
    /// What was done, in words.
    pub what: String,
    /// The bytes removed (lossy UTF-8), when any besides newlines.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bytes: String,
}

/// Appends the repairs that changed a day file to [`REPAIRS_FILE`] (fsynced), so they
/// stay visible to `rampart audit verify` after the day file itself verifies again.
fn record_repairs(dir: &Path, recovery: &[Recovery]) -> Result<(), AuditError> {
    let ts = format_ts(to_timestamp(SystemTime::now())?);
    let mut out = Vec::new();
    for item in recovery {
        let bytes = match item {
            Recovery::Truncated { bytes, .. } => String::from_utf8_lossy(bytes).into_owned(),
            Recovery::Skipped { .. } => continue,
            Recovery::Completed { .. } | Recovery::BlankLinesRemoved { .. } => String::new(),
        };
        let (path, line) = item.location();
        let record = RepairRecord {
            ts: ts.clone(),
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            line,
            what: item.what(),
            bytes,
        };
        serde_json::to_writer(&mut out, &record)?;
        out.push(b'\n');
    }
    if out.is_empty() {
        return Ok(());
    }
    let path = dir.join(REPAIRS_FILE);
    let mut file = open_append(&path)?;
    file.write_all(&out).map_err(|source| AuditError::Write {
        path: path.clone(),
        source,
    })?;
    sync_file(&file, &path)
}

fn create_dir(dir: &Path) -> Result<(), AuditError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| AuditError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}

fn create_file(path: &Path) -> Result<File, AuditError> {
    owner_only(OpenOptions::new().create(true).truncate(false).write(true))
        .open(path)
        .map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    owner_only(OpenOptions::new().create(true).append(true))
        .open(path)
        .map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// Makes a new day file's directory entry durable, not only its contents.
fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| AuditError::Sync {
            path: dir.to_path_buf(),
            source,
        })?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
