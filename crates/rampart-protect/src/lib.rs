//! `--protect` (issue 13): run the agent's tree where it cannot switch its own guard off.
//!
//! Without protection the agent runs as the same user as `rampart serve`: it can read the
//! token, rewrite policies and the audit trail, and signal, trace or `prlimit` the server
//! and the supervisor. With it, the launcher (which stays outside as the parent) builds
//! three processes before CMD starts:
//!
//! ```text
//! launcher (outside)                      relays signals, returns CMD's status
//! └─ outer  new mount ns M1 (+ user ns U1 unless root with CAP_SYS_ADMIN), outside the PID ns:
//!    │      sets up the masks in M1, then waits and relays
//!    └─ init  pid 1 of the new PID ns: mounts a fresh /proc, reaps, relays
//!       └─ agent  nested user ns U2 + mount ns M2, then exec CMD
//! ```
//!
//! The masks are made in M1 by a process that holds the capabilities to make them; the
//! agent runs in M2, which belongs to a less privileged user namespace, so the kernel
//! locks every mount it inherits (`MNT_LOCKED`: no umount, no moving, no remount rw, no
//! non-recursive bind that would reveal what lies underneath) — even when the agent is
//! root in U2. The masks: every hidden directory (`$RAMPART_HOME`) is an empty read-only
//! tmpfs; the files the tree needs (the library, the `rampart` binary, a Unix socket) are
//! bind-mounted read-only at their own paths; `/sys`, `/proc/sys` and
//! `/proc/sysrq-trigger` are read-only and block devices read as `/dev/null`, so a root
//! agent cannot reach the home through the raw disk, `core_pattern` or `uevent_helper`.
//! Same uid and gid (mapped to themselves), same files, network, terminal and
//! environment.
//!
//! Linux only; every step that fails ends in one [`Error::Refused`] line naming the cause
//! and the fix, and nothing runs.

// The workspace denies unsafe code; this crate needs it for unshare, mount, fork, prctl and
// signal handlers, which std does not wrap. Every block says why it holds.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;

#[cfg(target_os = "linux")]
mod explain;
#[cfg(target_os = "linux")]
mod relay;
#[cfg(target_os = "linux")]
mod setup;

#[cfg(target_os = "linux")]
pub use setup::Prepared;

/// What to hide and what to keep visible, read-only, inside the tree.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Directories replaced by an empty read-only tmpfs (`$RAMPART_HOME`, and the
    /// server's policy and audit directories where they live elsewhere). Missing ones are
    /// skipped.
    pub hide: Vec<PathBuf>,
    /// Files that stay visible but read-only at their own paths, also where they are
    /// inside a hidden directory (the library, the `rampart` binary, the Unix socket).
    pub read_only: Vec<PathBuf>,
}

/// Why the tree could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel or the container forbids a step: one line with the cause and the fix.
    #[error("{0}")]
    Refused(String),
    /// CMD itself could not be executed (after the namespaces were set up).
    #[error("cannot run {program}: {source}")]
    Exec {
        program: String,
        source: std::io::Error,
    },
    /// Preparing in the launcher failed (a path, a pipe).
    #[error("--protect: {what}: {source}")]
    Sys {
        what: String,
        source: std::io::Error,
    },
}

/// `--protect` given, or `RAMPART_PROTECT` set to anything but empty or a false value
/// (`0`, `false`, `no`, `off`: the contract's rule for booleans).
pub fn requested(flag: bool) -> bool {
    use std::os::unix::ffi::OsStrExt;
    flag || rampart_contract::values::protect(
        std::env::var_os("RAMPART_PROTECT")
            .as_deref()
            .map(|v| v.as_bytes()),
    )
}

/// Runs `command` (PATH-searched like `execvp`) with `env` added to this process's
/// environment, in the protected namespaces, and returns its exit status: the status it
/// exited with, or 128 + the signal that killed it (what a shell reports). The calling
/// process stays outside, passes on the signals it gets (see `relay`) and must be
/// single-threaded: it forks.
#[cfg(target_os = "linux")]
pub fn run(
    prepared: Prepared,
    command: &[OsString],
    env: &[(String, OsString)],
) -> Result<i32, Error> {
    setup::run(prepared, command, env)
}

/// Outside Linux there are no namespaces: `--protect` refuses, never runs unprotected.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub struct Prepared;

#[cfg(not(target_os = "linux"))]
impl Prepared {
    pub fn new(_plan: &Plan) -> Result<Prepared, Error> {
        Err(Error::Refused(
            "--protect: this system has no Linux namespaces; fix: run the agent on Linux, or run without --protect. Nothing was run."
                .to_owned(),
        ))
    }
    pub fn with_env(self, _vars: &[(&str, &str)]) -> Prepared {
        self
    }
    pub fn enter(&self) {}
    pub fn failure(self, _program: &str) -> Option<Error> {
        None
    }
}

#[cfg(not(target_os = "linux"))]
pub fn run(
    _prepared: Prepared,
    _command: &[OsString],
    _env: &[(String, OsString)],
) -> Result<i32, Error> {
    Err(Error::Refused(
        "--protect needs Linux namespaces".to_owned(),
    ))
}
