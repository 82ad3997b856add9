//! The seccomp user-notification supervisor behind `rampart supervise` (DESIGN.md §7).
//!
//! [`run`] starts a command under a seccomp filter that turns every `execve` and `execveat`
//! of the command and of all its descendants into a notification for this process. The
//! filter is installed by the kernel, inherited across `fork`, `clone` and `exec`, and cannot
//! be removed, so it also sees what `LD_PRELOAD` cannot: static binaries, raw syscalls, Go's
//! `os/exec`, and children that cleared their environment. For each notification the
//! supervisor reads the path, argv and working directory from the calling task's memory,
//! asks a [`Decider`] and lets the syscall continue or fails it with `EPERM`.
//!
//! What one exec costs here (Linux 6.18, 2 vCPUs; `strace -c` and the `execgap` loop
//! in the issue 18 notes): the kernel wakes a worker blocked in `SECCOMP_IOCTL_NOTIF_RECV`
//! — on the exec'ing task's CPU (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, Linux 6.6+), since
//! that task only waits, so no idle CPU is woken — and the worker reads, in about 21
//! system calls: `/proc/<pid>/cwd` (one `readlink`); path and argv (one
//! `process_vm_readv` for the pages of the path and the argv array, one more only for
//! strings elsewhere); the program, from the task's own root (open `/proc/<pid>/root`,
//! `statx`, one `openat2`, one `statx`; `fstatfs` only for files on a device-less file
//! system, which procfs is); the parent (`/proc/<pid>/stat`, one `read`); then
//! `NOTIF_ID_VALID`, the decision, and for an allow the same memory read and lookup again
//! before `NOTIF_SEND` (the swap-race check). With an instant decider the notification
//! round trip of a failing exec is about 12 µs when the CPUs were idle (28 µs before these
//! changes) and 10 µs back to back; what remains per spawn is the decision (the server
//! round trip). Workers stay hot: each receives for itself, at most two wait
//! in RECV and the rest park (the kernel wakes every RECV waiter per exec).
//!
//! What this crate is not: a policy engine or an HTTP client. The caller's [`Decider`]
//! turns an [`ExecRequest`] into a [`Verdict`] (the CLI asks the policy server).
//!
//! Linux on x86_64 only; elsewhere [`run`] returns [`Error::Unsupported`].

// The workspace denies unsafe code; this crate is one of the two places that need it
// (seccomp, fork, SCM_RIGHTS, process_vm_readv). Every block says why it holds.
#![allow(unsafe_code)]

mod request;

pub use request::{Decider, ExecRequest, Verdict, text_from_bytes};

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod filter;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod launch;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod memory;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod notify;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod resolve;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod supervisor;

use std::ffi::OsString;
use std::sync::Arc;

/// What went wrong while starting the supervised command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rampart supervise needs Linux on x86_64 (this build is for {0})")]
    Unsupported(&'static str),
    #[error("no command given")]
    NoCommand,
    #[error("the command contains a NUL byte: {0:?}")]
    NulByte(OsString),
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(
        "the kernel refused the seccomp filter ({0}); seccomp user notification needs Linux 5.5+ built with CONFIG_SECCOMP_FILTER, and is often unavailable inside containers that install their own filter"
    )]
    Filter(std::io::Error),
    #[error(
        "this process is already under a seccomp supervisor (rampart supervise cannot be nested: a process can have only one)"
    )]
    Nested,
}

/// How the supervised command ended.
#[derive(Debug)]
pub struct Finished {
    /// The command's exit status, or 128 + the signal that killed it.
    pub code: i32,
    /// Set when the command itself could not be executed (its exit code is then 126 or
    /// 127, like a shell's). `EPERM` here means the [`Decider`] refused it.
    pub exec_error: Option<std::io::Error>,
}

impl Finished {
    /// The command's own exec failed with `EPERM`: refused (the refusal was reported by
    /// the [`Decider`]).
    pub fn refused(&self) -> bool {
        self.exec_error
            .as_ref()
            .and_then(std::io::Error::raw_os_error)
            == Some(libc::EPERM)
    }
}

/// Runs `command` under the supervisor and returns when it and every descendant it still
/// supervises have exited. Each exec in the tree, the command's own included, is decided by
/// `decider`, several at a time (a slow decision never holds up the others).
///
/// The calling process becomes a child subreaper (orphaned descendants are reparented to
/// it) and ignores SIGINT and SIGQUIT while it waits, forwarding SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 to the
/// command: if the supervisor died, every later exec in the tree would fail with `ENOSYS`.
/// Call it from a single-threaded process: it forks.
pub fn run(command: &[OsString], decider: Arc<dyn Decider>) -> Result<Finished, Error> {
    run_prepared(command, decider, &|| {})
}

/// [`run`], with `prepare` called first in the forked child, before the filter is
/// installed (`rampart supervise --protect` moves the child into its namespaces there).
/// `prepare` runs after a fork: it must only make system calls on data prepared before
/// it, and it may fork and never return in the processes that are not to run the command.
pub fn run_prepared(
    command: &[OsString],
    decider: Arc<dyn Decider>,
    prepare: &dyn Fn(),
) -> Result<Finished, Error> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        supervisor::run(command, decider, prepare)
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = (command, decider, prepare);
        Err(Error::Unsupported(std::env::consts::ARCH))
    }
}
