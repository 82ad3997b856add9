//! `rampart audit verify`: recompute every hash and every `prev_hash` link, across day
//! files in date order, and name the first line where the chain breaks.
//!
//! A line without its newline at the very end of the newest file is a write cut short by
//! a crash: it is reported as [`VerifyReport::torn_tail`], not as a break, because the
//! writer never returned a decision for it (the next [`crate::AuditLog::open`] repairs it).
//! Anywhere else, a missing newline is a break.
//!
//! After a broken line, checking goes on: a later line that links to the last intact
//! event before the damage (a server restarted past a damaged tail), or to the stored
//! hash of the damaged line (its content was changed, its hash kept), continues the chain;
//! a line that links to neither is a break of its own and the chain is followed from it.
//! So every damaged line is named, not only the first (at most [`MAX_DAMAGE`] of them).
//!
//! Start-up repairs that changed a day file (a cut fragment, removed empty lines) are
//! recorded by the writer in `repairs.jsonl` and listed in [`VerifyReport::repairs`].
//!
//! Limit: removing events from the end of the newest file leaves a valid, shorter chain;
//! the hash chain proves order and integrity of what is there, not that nothing followed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde::Serialize;

use crate::event::{check_line, damage, trailing_hash};
use crate::files::list_day_files;
use crate::{AuditError, GENESIS_HASH, REPAIRS_FILE, RepairRecord};

/// At most this many broken lines are listed in [`VerifyReport::damage`].
pub const MAX_DAMAGE: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Events whose hash and link were checked and found good.
    pub events: u64,
    /// Day files in the trail.
    pub files: usize,
    /// True when no line is broken (a torn tail alone keeps it true).
    pub ok: bool,
    pub first_broken: Option<BrokenLine>,
    /// Every broken line, in file order (the first is `first_broken`), at most
    /// [`MAX_DAMAGE`]; `damaged_lines` counts them all.
    pub damage: Vec<BrokenLine>,
    pub damaged_lines: u64,
    pub torn_tail: Option<TornTail>,
    /// Start-up repairs recorded by the writer in `repairs.jsonl`, oldest first.
    pub repairs: Vec<RepairRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLine {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTail {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// Length of the unterminated fragment.
    pub bytes: usize,
}

/// Checks the whole trail in `dir`. I/O problems are errors; a broken chain is a report.
pub fn verify(dir: &std::path::Path) -> Result<VerifyReport, AuditError> {
    let files = list_day_files(dir)?;
    let mut report = VerifyReport {
        events: 0,
        files: files.len(),
        ok: true,
        first_broken: None,
        damage: Vec::new(),
        damaged_lines: 0,
        torn_tail: None,
        repairs: read_repairs(dir)?,
    };
    // The hash the next line must link to, and the stored hash of a damaged line just
    // before it (a line whose content changed but whose hash was kept).
    let mut expected = GENESIS_HASH.to_owned();
    let mut damaged_hash: Option<String> = None;
    let mut buf = Vec::new();
    for (index, day_file) in files.iter().enumerate() {
        let path = &day_file.path;
        let file = File::open(path).map_err(|source| AuditError::Open {
            path: path.clone(),
            source,
        })?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut line_no = 0;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| AuditError::Read {
                    path: path.clone(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            line_no += 1;
            let Some(line) = buf.strip_suffix(b"\n") else {
                if index + 1 == files.len() {
                    report.torn_tail = Some(TornTail {
                        file: path.clone(),
                        line: line_no,
                        bytes: buf.len(),
                    });
                    break;
                }
                broken(
                    &mut report,
                    path,
                    line_no,
                    "line has no newline but later day files follow: the file was cut short".into(),
                );
                damaged_hash = None;
                break;
            };
            let checked = check_line(line, &expected).or_else(|reason| {
                match damaged_hash.as_deref().map(|h| check_line(line, h)) {
                    Some(Ok(event)) => Ok(event),
                    _ => Err(reason),
                }
            });
            match checked {
                Ok(event) => {
                    expected = event.hash;
                    damaged_hash = None;
                    report.events += 1;
                }
                Err(reason) => {
                    broken(&mut report, path, line_no, reason);
                    if damage(line).is_none() {
                        // Intact but linked elsewhere: follow the chain from here.
                        expected = trailing_hash(line).unwrap_or_default().to_owned();
                        damaged_hash = None;
                    } else {
                        damaged_hash = trailing_hash(line).map(str::to_owned);
                    }
                }
            }
        }
    }
    Ok(report)
}

fn broken(report: &mut VerifyReport, file: &std::path::Path, line: usize, reason: String) {
    let entry = BrokenLine {
        file: file.to_path_buf(),
        line,
        reason,
    };
    report.ok = false;
    report.damaged_lines += 1;
    if report.first_broken.is_none() {
        report.first_broken = Some(entry.clone());
    }
    if report.damage.len() < MAX_DAMAGE {
        report.damage.push(entry);
    }
}

/// The records of `repairs.jsonl`; a line this version cannot read is shown as such
/// rather than hidden.
fn read_repairs(dir: &std::path::Path) -> Result<Vec<RepairRecord>, AuditError> {
    let path = dir.join(REPAIRS_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(AuditError::Read { path, source }),
    };
    Ok(text
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| {
            serde_json::from_slice(line).unwrap_or_else(|e| RepairRecord {
                ts: String::new(),
                file: REPAIRS_FILE.to_owned(),
                line: i + 1,
                what: format!("unreadable repair record: {e}"),
                bytes: String::new(),
            })
        })
        .collect())
}
