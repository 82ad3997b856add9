//! One spawn, one question: remembers the last denial of this process so that a caller
//! walking PATH itself asks once. CPython's subprocess and dash try `execve` on every PATH
//! candidate; with `/bin -> usr/bin` both `/usr/bin/rm` and `/bin/rm` exist, are the same
//! file, and without this the user saw two denials — or was asked twice for one `ask`,
//! the second time after having said no.
//!
//! Only denials are remembered (an allowed exec does not come back), keyed by pid, the
//! program's device and inode, and argv, and only for a short window. The state is two
//! atomics: no heap, no lock. In a `vfork` child they live in the parent's memory; the
//! child's pid is part of the key, so the parent never matches it (a later process would
//! need the same recycled pid, file and argv within the window, and would then be denied
//! what was just denied).

use core::ffi::c_char;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::sys::{self, CArray};

const WINDOW_MS: i64 = 2000;

static LAST_KEY: AtomicU64 = AtomicU64::new(0);
static LAST_AT_MS: AtomicI64 = AtomicI64::new(i64::MIN);

struct Fnv(u64);

impl Fnv {
    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The key of "this process starts this file with these arguments"; `None` when the file
/// cannot be examined (then nothing is remembered).
pub fn key(path: *const c_char, argv: CArray) -> Option<u64> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `path` is the caller's NUL-terminated path (checked to exist), `st` is
    // writable.
    if unsafe { libc::stat(path, &mut st) } != 0 {
        return None;
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.put(&sys::getpid().to_le_bytes());
    h.put(&st.st_dev.to_le_bytes());
    h.put(&st.st_ino.to_le_bytes());
    for i in 0..argv.len() {
        h.put(argv.get(i));
        h.put(&[0]);
    }
    Some(h.0)
}

/// Whether the same key was denied within the window.
pub fn denied_recently(key: u64) -> bool {
    LAST_KEY.load(Ordering::Acquire) == key
        && sys::now_ms().saturating_sub(LAST_AT_MS.load(Ordering::Acquire)) < WINDOW_MS
}

pub fn remember_denial(key: u64) {
    LAST_AT_MS.store(sys::now_ms(), Ordering::Release);
    LAST_KEY.store(key, Ordering::Release);
}
