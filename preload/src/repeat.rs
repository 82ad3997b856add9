//! One spawn, one question: remembers the last denial of this process so that a caller
//! walking PATH itself asks once. CPython's subprocess and dash try `execve` on every PATH
//! candidate; with `/bin -> usr/bin` both `/usr/bin/rm` and `/bin/rm` exist, are the same
//! file, and without this the user saw two denials — or was asked twice for one `ask`,
//! the second time after having said no.
//!
//! Only denials are remembered (an allowed exec does not come back), keyed by pid, the
//! program's device and inode, and argv, and only for a short window. The state is a
//! table of atomics indexed by pid: no heap, no lock. In a `vfork` child it lives in the
//! parent's memory, shared with the vfork children of the parent's other threads; each
//! child uses the slot of its own pid, so children denied at the same moment do not
//! overwrite each other's memory (with one process-wide slot they did, and a child whose
//! memory was overwritten between `/usr/bin/X` and `/bin/X` asked twice: two audit events
//! for one spawn, seen once in 28 699 spawns by `make test-long`). The child's pid is part
//! of the key, so the parent never matches it (a later process would need the same
//! recycled pid, file and argv within the window, and would then be denied what was just
//! denied).

use core::ffi::c_char;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::sys::{self, CArray};

const WINDOW_MS: i64 = 2000;

/// Slots, indexed by pid modulo their number. Two processes share a slot only when their
/// pids differ by a multiple of this and both are denied within the same PATH walk.
/// Zero-initialised (`.bss`): a process that is never denied never touches these pages.
const SLOTS: usize = 512;

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise the arrays
const NO_KEY: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const LONG_AGO: AtomicI64 = AtomicI64::new(0);
static LAST_KEY: [AtomicU64; SLOTS] = [NO_KEY; SLOTS];
/// When the slot's denial happened, in `sys::now_ms` time (0: never).
static LAST_AT_MS: [AtomicI64; SLOTS] = [LONG_AGO; SLOTS];

fn slot(pid: i32) -> usize {
    (pid as u32 as usize) % SLOTS
}

struct Fnv(u64);

impl Fnv {
    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// "This process starts this file with these arguments": the pid picks the slot, the
/// hash (of pid, file and argv) is what the slot remembers.
#[derive(Clone, Copy)]
pub struct Key {
    pid: i32,
    hash: u64,
}

/// The key of this call; `None` when the file cannot be examined (then nothing is
/// remembered).
pub fn key(path: *const c_char, argv: CArray) -> Option<Key> {
    // SAFETY: `path` is the caller's NUL-terminated path (checked to exist).
    let st = unsafe { crate::syscall::stat(path) }.ok()?;
    let pid = sys::getpid();
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.put(&pid.to_le_bytes());
    h.put(&st.st_dev.to_le_bytes());
    h.put(&st.st_ino.to_le_bytes());
    for i in 0..argv.len() {
        h.put(argv.get(i));
        h.put(&[0]);
    }
    Some(Key { pid, hash: h.0 })
}

/// Whether the same key was denied within the window, in its process's slot.
pub fn denied_recently(key: Key) -> bool {
    let i = slot(key.pid);
    let (Some(k), Some(at)) = (LAST_KEY.get(i), LAST_AT_MS.get(i)) else {
        return false;
    };
    let at = at.load(Ordering::Acquire);
    k.load(Ordering::Acquire) == key.hash && at != 0 && sys::now_ms().saturating_sub(at) < WINDOW_MS
}

pub fn remember_denial(key: Key) {
    let i = slot(key.pid);
    if let (Some(k), Some(at)) = (LAST_KEY.get(i), LAST_AT_MS.get(i)) {
        at.store(sys::now_ms().max(1), Ordering::Release);
        k.store(key.hash, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two vfork children (different pids, one shared memory) denied at the same time:
    /// each still remembers its own denial for the rest of its PATH walk.
    #[test]
    fn children_denied_at_once_keep_their_own_memory() {
        let key = |pid, hash| Key { pid, hash };
        remember_denial(key(40_001, 0xaaaa));
        remember_denial(key(40_002, 0xbbbb));
        assert!(denied_recently(key(40_001, 0xaaaa)));
        assert!(denied_recently(key(40_002, 0xbbbb)));
        assert!(!denied_recently(key(40_001, 0xbbbb)));
        // A pid whose slot was never used remembers nothing.
        assert!(!denied_recently(key(40_003, 0)));
    }
}
