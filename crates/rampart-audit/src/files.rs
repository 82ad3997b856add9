//! Day files on disk: naming, listing in chain order, and reading lines from the end.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::AuditError;

/// One `YYYY-MM-DD.jsonl` file. Names sort in date order, which is chain order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DayFile {
    pub day: String,
    pub path: PathBuf,
}

pub(crate) fn day_path(dir: &Path, day: &str) -> PathBuf {
    dir.join(format!("{day}.jsonl"))
}

fn is_day_name(name: &str) -> Option<&str> {
    let day = name.strip_suffix(".jsonl")?;
    let bytes = day.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    shape_ok.then_some(day)
}

/// Day files of `dir`, oldest first. A missing directory is an empty trail.
pub(crate) fn list_day_files(dir: &Path) -> Result<Vec<DayFile>, AuditError> {
    let list_err = |source| AuditError::ListDir {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(list_err(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(list_err)?;
        let name = entry.file_name();
        if let Some(day) = name.to_str().and_then(is_day_name) {
            files.push(DayFile {
                day: day.to_owned(),
                path: entry.path(),
            });
        }
    }
    files.sort();
    Ok(files)
}

const CHUNK: u64 = 64 * 1024;

fn read_at(file: &mut File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

/// Length of the prefix of the first `len` bytes that ends in a newline: everything after
/// it is a torn (unterminated) last line.
pub(crate) fn complete_len(file: &mut File, len: u64) -> io::Result<u64> {
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = read_at(file, start, usize::try_from(end - start).unwrap_or(0))?;
        if let Some(i) = memchr::memrchr(b'\n', &chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Complete lines of `[0, end)` from last to first, without their newlines. `end` must be
/// 0 or just past a newline (see [`complete_len`]).
#[derive(Debug)]
pub(crate) struct RevLines {
    file: File,
    /// File bytes `[buf_start, buf_start + buf.len())`.
    buf: Vec<u8>,
    buf_start: u64,
    /// Within `buf`: the not-yet-returned bytes are `buf[..pending]`.
    pending: usize,
}

impl RevLines {
    pub(crate) fn new(file: File, end: u64) -> Self {
        RevLines {
            file,
            buf: Vec::new(),
            buf_start: end,
            pending: 0,
        }
    }

    /// The next line towards the start of the file, with its 0-based byte offset.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        if self.pending == 0 && self.buf_start == 0 {
            return Ok(None);
        }
        loop {
            // `buf[pending - 1]` is the newline ending the line we are after.
            let body_end = self.pending.saturating_sub(1);
            if self.pending > 0 {
                if let Some(i) = memchr::memrchr(b'\n', &self.buf[..body_end]) {
                    let line = self.buf[i + 1..body_end].to_vec();
                    self.pending = i + 1;
                    return Ok(Some((self.buf_start + i as u64 + 1, line)));
                }
                if self.buf_start == 0 {
                    let line = self.buf[..body_end].to_vec();
                    self.pending = 0;
                    return Ok(Some((0, line)));
                }
            }
            let start = self.buf_start.saturating_sub(CHUNK);
            let len = usize::try_from(self.buf_start - start).unwrap_or(0);
            let mut chunk = read_at(&mut self.file, start, len)?;
            chunk.extend_from_slice(&self.buf[..self.pending]);
            self.pending = chunk.len();
            self.buf = chunk;
            self.buf_start = start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rev_lines(content: &[u8]) -> io::Result<Vec<(u64, String)>> {
        let mut file = tempfile::tempfile()?;
        file.write_all(content)?;
        let len = content.len() as u64;
        let end = complete_len(&mut file, len)?;
        let mut lines = RevLines::new(file, end);
        let mut out = Vec::new();
        while let Some((offset, line)) = lines.next_line()? {
            out.push((offset, String::from_utf8_lossy(&line).into_owned()));
        }
        Ok(out)
    }

    #[test]
    fn reads_complete_lines_backwards_and_skips_a_torn_tail() -> io::Result<()> {
        assert_eq!(
            rev_lines(b"a\nbb\n\nccc\ntorn")?,
            vec![
                (6, "ccc".into()),
                (5, String::new()),
                (2, "bb".into()),
                (0, "a".into())
            ]
        );
        assert_eq!(rev_lines(b"")?, vec![]);
        assert_eq!(rev_lines(b"only torn")?, vec![]);
        Ok(())
    }

    #[test]
    fn lines_longer_than_a_chunk_come_back_whole() -> io::Result<()> {
        let long = "x".repeat(3 * CHUNK as usize + 7);
        let content = format!("first\n{long}\nlast\n");
        assert_eq!(
            rev_lines(content.as_bytes())?,
            vec![
                (long.len() as u64 + 7, "last".into()),
                (6, long.clone()),
                (0, "first".into())
            ]
        );
        Ok(())
    }

    #[test]
    fn only_day_files_are_listed_in_date_order() -> Result<(), AuditError> {
        let dir = tempfile::tempdir().map_err(|source| AuditError::CreateDir {
            path: PathBuf::new(),
            source,
        })?;
        for name in [
            "2026-11-27.jsonl",
            "2026-11-26.jsonl",
            "notes.txt",
            "2026-1-26.jsonl",
            "2026-11-26.jsonl.bak",
        ] {
            fs::write(dir.path().join(name), b"").map_err(|source| AuditError::Open {
                path: dir.path().join(name),
                source,
            })?;
        }
        let days: Vec<String> = list_day_files(dir.path())?
            .into_iter()
            .map(|f| f.day)
            .collect();
        assert_eq!(days, ["2026-11-26", "2026-11-27"]);
        assert_eq!(list_day_files(&dir.path().join("missing"))?, vec![]);
        Ok(())
    }
}
