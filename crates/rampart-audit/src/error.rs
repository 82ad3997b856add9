//! The one error type of this crate: every variant names the file or value at fault.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot create audit directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },

    #[error("cannot list audit directory {}: {source}", path.display())]
    ListDir { path: PathBuf, source: io::Error },

    #[error("cannot open audit file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },

    #[error("cannot read audit file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    /// The event was not stored; the file was cut back to its last complete line.
    #[error("cannot write audit file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },

    /// Events were written to the OS but may not have reached the disk.
    #[error("cannot sync audit file {} to disk: {source}", path.display())]
    Sync { path: PathBuf, source: io::Error },

    /// The end of the trail is damaged beyond the lines the writer steps over: no intact
    /// event to continue the chain from.
    #[error(
        "{}:{line}: more than 100 damaged lines at the end of the audit trail, no intact event to continue the chain from; run `rampart audit verify`",
        path.display()
    )]
    UnreadableHead { path: PathBuf, line: usize },

    /// Another process (a second server) is writing this audit directory.
    #[error("audit directory is in use by another writer (lock file {}): {source}", path.display())]
    Locked { path: PathBuf, source: io::Error },

    #[error("cannot start the audit fsync thread: {0}")]
    SpawnSyncer(io::Error),

    #[error("cannot serialise audit event: {0}")]
    Serialize(#[from] serde_json::Error),

    #[error("time {0} is outside the range an audit timestamp can hold")]
    TimeOutOfRange(String),

    /// All 80 random bits of the millisecond were used: the id cannot stay monotonic.
    #[error("cannot allocate an audit id after {last}: id space of this millisecond exhausted")]
    IdExhausted { last: String },

    #[error(
        "invalid since value {value:?}: expected a duration such as 30s, 15m, 24h, 7d, a date (2026-11-26) or an RFC 3339 time"
    )]
    InvalidSince { value: String },
}
