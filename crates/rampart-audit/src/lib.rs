//! Rampart's audit trail (DESIGN.md §9): one JSON event per line in UTC day files
//! `audit/YYYY-MM-DD.jsonl`, each event hash-chained to the one before it, across files.
//!
//! - [`AuditLog`] appends events (redacting secrets first) and group-commits fsyncs.
//! - [`read_events`], [`tail`], [`Follower`] and [`stats`] read the trail back for the CLI
//!   and the server; [`verify`] recomputes the chain and names the first broken line.
//!
//! Synchronous on purpose (std threads, no async runtime), so the tokio server and the
//! plain CLI share it. It does not fan events out to listeners: [`AuditLog::append`]
//! returns the stored event and the server broadcasts it.

pub mod error;
pub mod event;
mod files;
pub mod query;
pub mod redact;
mod time;
pub mod verify;
pub mod writer;

pub use error::AuditError;
pub use event::{Approval, AuditEvent, GENESIS_HASH, NewEvent};
pub use query::{Counts, Follower, Query, Stats, UNCHECKED, read_events, stats, tail};
pub use redact::{redact, redact_argv};
pub use time::parse_since;
pub use verify::{BrokenLine, TornTail, VerifyReport, verify};
/// The day files of an audit directory (`YYYY-MM-DD.jsonl`), oldest first: chain order.
/// Used by readers that follow the files themselves (the server's audit export).
pub fn day_files(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, AuditError> {
    Ok(files::list_day_files(dir)?
        .into_iter()
        .map(|f| f.path)
        .collect())
}
pub use writer::{AuditLog, REPAIRS_FILE, Recovery, RepairRecord};
