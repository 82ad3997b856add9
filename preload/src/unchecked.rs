//! Programs that ran unchecked (fail-open, or monitor mode without an answer): said once,
//! counted until the server can be told. The next check that gets a well-formed answer
//! carries the count as `"ran_unchecked": N` in the preflight body, and the count drops
//! by what was reported.
//!
//! The state lives in one page mapped `MAP_SHARED | MAP_ANONYMOUS` when the library
//! loads, so every process forked or vforked from this one (until it execs) shares it
//! with us: Node's and bash's `fork` children and Python's `vfork` children all count into
//! the agent's page and say the `[WARN]` line once between them, and whichever of them
//! reaches the server next reports the lot. Atomics only: no locks in a `vfork` child.
//!
//! An exec replaces the mapping. When the process that mapped the page starts a program
//! unchecked by exec (a shell's `exec`, a launcher), the count so far plus that program
//! travels in the program's environment as `RAMPART_UNCHECKED=N`, which it reads at load;
//! a child never receives the variable otherwise. Any other process (a child sharing the
//! page) adds the program to the page, and takes it back if the exec fails.
//!
//! If the page cannot be mapped, the same state lives in this process's memory: `vfork`
//! children still share it, `fork` children get a copy (and may then report their
//! parent's count a second time: a count is a report, never a permission).

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};

use crate::sys;

#[repr(C)]
struct State {
    warned: AtomicBool,
    count: AtomicU64,
}

static PRIVATE: State = State {
    warned: AtomicBool::new(false),
    count: AtomicU64::new(0),
};
static SHARED: AtomicPtr<State> = AtomicPtr::new(core::ptr::null_mut());
/// The pid that mapped the page: the process whose exec replaces it.
static CREATOR: AtomicI32 = AtomicI32::new(0);

fn state() -> &'static State {
    let p = SHARED.load(Ordering::Acquire);
    if p.is_null() {
        return &PRIVATE;
    }
    // SAFETY: `p` is the page mapped by `init`, never unmapped, zero-initialised by the
    // kernel (a valid `State`: atomics of zero) and only accessed through atomics.
    unsafe { &*p }
}

/// At load: map the shared page, with the count handed down by the exec that started
/// this program (a program started unchecked has had its `[WARN]` line said for it).
pub fn init(pid: i32, handed_down: u64) {
    if let Some(p) = crate::syscall::map_shared_anon(4096) {
        SHARED.store(p.cast(), Ordering::Release);
    }
    CREATOR.store(pid, Ordering::Release);
    if handed_down > 0 {
        let s = state();
        s.count.store(handed_down, Ordering::Release);
        s.warned.store(true, Ordering::Release);
    }
}

/// Whether this is the first program run unchecked in this tree of processes (then the
/// caller says so).
pub fn first_warning() -> bool {
    !state().warned.swap(true, Ordering::AcqRel)
}

/// The count a check reports now.
pub fn pending() -> u64 {
    state().count.load(Ordering::Acquire)
}

/// `n` were reported to the server.
pub fn reported(n: u64) {
    // Only what was reported: another process or thread may have added one meanwhile.
    let _ = state()
        .count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            Some(c.saturating_sub(n))
        });
}

/// One more program ran unchecked (spawned, or exec'd by a process sharing the page).
pub fn add() {
    state().count.fetch_add(1, Ordering::AcqRel);
}

/// A program is about to replace this process unchecked: `Some(N)` to hand it as
/// `RAMPART_UNCHECKED=N` when the page dies with this exec, else `None` (the program was
/// added to the page; call [`exec_failed`] if the exec returns).
pub fn before_exec() -> Option<u64> {
    if sys::getpid() == CREATOR.load(Ordering::Acquire) || SHARED.load(Ordering::Acquire).is_null()
    {
        Some(pending().saturating_add(1))
    } else {
        add();
        None
    }
}

/// The exec after `before_exec` returned `None` failed: nothing ran.
pub fn exec_failed() {
    reported(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_warns_once() {
        init(sys::getpid(), 2);
        assert!(
            !first_warning(),
            "a program started unchecked was warned for"
        );
        assert_eq!(pending(), 2);
        add();
        reported(2);
        assert_eq!(pending(), 1);
        // The creator's own exec hands the count on.
        assert_eq!(before_exec(), Some(2));
        reported(1);
        assert_eq!(pending(), 0);
    }
}
