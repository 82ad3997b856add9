//! `rampart audit verify`: recompute every hash and every `prev_hash` link, across day
//! files in date order, and name the first line where the chain breaks.
//!
//! A line without its newline at the very end of the newest file is a write cut short by
//! a crash: it is reported as [`VerifyReport::torn_tail`], not as a break, because the
//! writer never returned a decision for it (the next [`crate::AuditLog::open`] repairs it).
//! Anywhere else, a missing newline is a break.
//!
//! Limit: removing events from the end of the newest file leaves a valid, shorter chain;
//! the hash chain proves order and integrity of what is there, not that nothing followed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde::Serialize;

use crate::event::check_line;
use crate::files::list_day_files;
use crate::{AuditError, GENESIS_HASH};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Events whose hash and link were checked and found good.
    pub events: u64,
    /// Day files in the trail.
    pub files: usize,
    /// True when no line is broken (a torn tail alone keeps it true).
    pub ok: bool,
    pub first_broken: Option<BrokenLine>,
    pub torn_tail: Option<TornTail>,
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
        torn_tail: None,
    };
    let mut expected = GENESIS_HASH.to_owned();
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
                return Ok(broken(
                    report,
                    path,
                    line_no,
                    "line has no newline but later day files follow: the file was cut short".into(),
                ));
            };
            match check_line(line, &expected) {
                Ok(event) => {
                    expected = event.hash;
                    report.events += 1;
                }
                Err(reason) => return Ok(broken(report, path, line_no, reason)),
            }
        }
    }
    Ok(report)
}

fn broken(
    mut report: VerifyReport,
    file: &std::path::Path,
    line: usize,
    reason: String,
) -> VerifyReport {
    report.ok = false;
    report.first_broken = Some(BrokenLine {
        file: file.to_path_buf(),
        line,
        reason,
    });
    report
}
