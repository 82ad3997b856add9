//! The count of programs that ran unchecked (fail-open, or monitor mode without an
//! answer), kept until the server can be told: the next check that gets a well-formed
//! answer carries it as `"ran_unchecked": N` in the preflight body and the count drops
//! by what was reported.
//!
//! Where a count lives depends on whose memory survives the program start:
//! - `posix_spawn*`, `system`, `popen` run the program in a child while this process goes
//!   on: the count stays in this process's memory ([`add`]).
//! - the `exec*` family replaces the calling process. In a `vfork` child (Python's
//!   subprocess, `posix_spawn` inside glibc) the memory is the parent's, which goes on:
//!   the count is added there ([`add_to_parent`], undone if the exec fails). Otherwise
//!   this process's memory ends with the exec, so its pending count plus one travels to
//!   the new program as `RAMPART_UNCHECKED=N` ([`carried`]), which reads it at load
//!   (`config::init`); a child never receives the variable otherwise.
//!
//! The count is tagged with the pid whose memory it describes, as the keep-alive
//! connection is (`http`): a `fork` child inherits its parent's count but must not report
//! it (the parent will), and sees a foreign tag. Atomics only: no locks in a `vfork` child.

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::sys;

/// The pid whose count `COUNT` is (0: nobody's yet).
static OWNER: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicU64 = AtomicU64::new(0);

/// At load: the count handed down by the exec that started this program.
pub fn init(pid: i32, n: u64) {
    OWNER.store(pid, Ordering::Relaxed);
    COUNT.store(n, Ordering::Release);
}

/// This process's count not yet reported (0 in a child whose memory is a copy of its
/// parent's).
pub fn pending(pid: i32) -> u64 {
    if OWNER.load(Ordering::Acquire) == pid {
        COUNT.load(Ordering::Acquire)
    } else {
        0
    }
}

/// What a check by process `pid` reports, and whose count that is: its own, or — in a
/// `vfork` child, whose memory is its parent's — the parent's. Python's subprocess checks
/// every program in a `vfork` child, so an agent's count is reported by the first of its
/// children that reaches the server. `kcmp` only runs when there is a parent's count.
pub fn to_report(pid: i32) -> (i32, u64) {
    let owner = OWNER.load(Ordering::Acquire);
    if owner == pid {
        return (pid, COUNT.load(Ordering::Acquire));
    }
    let n = COUNT.load(Ordering::Acquire);
    if n > 0 && owner == sys::getppid() && shares_parent_memory() {
        return (owner, n);
    }
    (pid, 0)
}

/// `n` of the count of `owner` (see [`to_report`]) were reported to the server.
pub fn reported(owner: i32, n: u64) {
    if OWNER.load(Ordering::Acquire) == owner {
        // Only what was reported: another thread may have added one meanwhile.
        let _ = COUNT.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            Some(c.saturating_sub(n))
        });
    }
}

/// One more program ran unchecked from this (real, not `vfork`) process.
pub fn add(pid: i32) {
    if OWNER.load(Ordering::Acquire) != pid {
        // A fork child's copy of its parent's count: the parent reports that one.
        COUNT.store(0, Ordering::Release);
        OWNER.store(pid, Ordering::Release);
    }
    COUNT.fetch_add(1, Ordering::AcqRel);
}

/// The count the program about to replace this process inherits: what this process had
/// pending, plus the program itself.
pub fn carried(pid: i32) -> u64 {
    pending(pid).saturating_add(1)
}

/// Whether this process shares its parent's memory (a `vfork` child): `kcmp(2)`
/// `KCMP_VM`. Where `kcmp` is not available the answer is no, and the count travels in
/// the environment instead (never lost, never counted twice).
pub fn shares_parent_memory() -> bool {
    const KCMP_VM: libc::c_long = 1;
    let pid = sys::getpid();
    let ppid = sys::getppid();
    // SAFETY: kcmp takes plain integers and touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            libc::c_long::from(pid),
            libc::c_long::from(ppid),
            KCMP_VM,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    r == 0
}

/// One program runs unchecked from a `vfork` child: count it in the parent's memory,
/// which survives the exec. Returns what [`undo_parent`] needs if the exec fails.
pub fn add_to_parent() -> i32 {
    let ppid = sys::getppid();
    if OWNER.load(Ordering::Acquire) != ppid {
        COUNT.store(0, Ordering::Release);
        OWNER.store(ppid, Ordering::Release);
    }
    COUNT.fetch_add(1, Ordering::AcqRel);
    ppid
}

/// The exec after [`add_to_parent`] failed: nothing ran.
pub fn undo_parent(ppid: i32) {
    reported(ppid, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_belong_to_one_pid() {
        init(50_001, 2);
        assert_eq!(pending(50_001), 2);
        assert_eq!(
            pending(50_002),
            0,
            "a fork child does not report its parent's"
        );
        add(50_001);
        assert_eq!(carried(50_001), 4);
        reported(50_001, 3);
        assert_eq!(pending(50_001), 0);
        add(50_002);
        assert_eq!(pending(50_002), 1, "a fork child starts its own count");
        assert_eq!(pending(50_001), 0);
    }
}
