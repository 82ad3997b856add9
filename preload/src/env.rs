//! Re-injection of the library and its configuration into a child's environment.
//!
//! A new `envp` array is built on the stack: the caller's entries minus our keys, plus the
//! snapshot's `RAMPART_*` strings and an `LD_PRELOAD` that contains this library. Small
//! environments use a 256-slot array; up to 8192 slots use a 64 KiB one (a `vfork`
//! child runs on its parent's stack, so we do not grow further, and `mmap` would leak into
//! the parent's address space). A bigger environment is never passed through without us:
//! the wrappers refuse that exec with `E2BIG` and one line (`check::env_fits`) before
//! anything is asked or started.
//!
//! `RAMPART_UNCHECKED` is removed from every child's environment; only a program that
//! runs unchecked receives it, with its count (`extra`, see `unchecked`).

use core::ffi::c_char;

use crate::config::{self, INJECTED_KEYS, UNCHECKED_KEY};
use crate::sink::{Sink, SliceWriter};
use crate::sys::CArray;

const SMALL: usize = 256;
const LARGE: usize = 8192;
/// Our entries: the injected keys, LD_PRELOAD, RAMPART_UNCHECKED, the terminating NULL.
const EXTRA: usize = INJECTED_KEYS.len() + 3;
/// The most entries a caller's environment may have: more are refused (`E2BIG`).
pub const MAX_ENTRIES: usize = LARGE - EXTRA;

/// The number of entries of `envp` (NULL = none).
pub fn entries(envp: *const *const c_char) -> usize {
    // SAFETY: `envp` comes from an exec caller or `environ`: NULL or NULL-terminated.
    unsafe { CArray::new(envp) }.len()
}

/// Calls `f` with a re-injected copy of `src` (NULL = empty) plus `extra` (a
/// NUL-terminated `RAMPART_UNCHECKED=N`), and whether it differs from `src`. `f` runs
/// while the array is alive; it must not keep the pointer. The caller has checked
/// `entries(src) <= MAX_ENTRIES` (`check::env_fits`); should it not have, `f` gets NULL
/// (an empty environment, without the caller's variables, never one without us).
pub fn with_env<R>(
    src: *const *const c_char,
    extra: Option<*const c_char>,
    f: impl FnOnce(*const *const c_char, bool) -> R,
) -> R {
    // SAFETY: `src` comes from an exec caller or `environ`: NULL or NULL-terminated.
    let arr = unsafe { CArray::new(src) };
    let n = arr.len();
    if n + EXTRA <= SMALL {
        doctor::<SMALL, R>(arr, n, extra, f)
    } else if n + EXTRA <= LARGE {
        doctor::<LARGE, R>(arr, n, extra, f)
    } else {
        let mut ours: [*const c_char; EXTRA] = [core::ptr::null(); EXTRA];
        // SAFETY: NULL is the empty array.
        let none = unsafe { CArray::new(core::ptr::null()) };
        doctor_into(&mut ours, none, 0, extra, f)
    }
}

fn key_of(entry: &[u8]) -> &[u8] {
    let eq = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
    entry.get(..eq).unwrap_or(entry)
}

/// Whether the colon/space separated `list` contains `lib`.
fn preload_has(list: &[u8], lib: &[u8]) -> bool {
    !lib.is_empty() && list.split(|&b| b == b':' || b == b' ').any(|p| p == lib)
}

#[inline(never)]
fn doctor<const N: usize, R>(
    src: CArray,
    n: usize,
    extra: Option<*const c_char>,
    f: impl FnOnce(*const *const c_char, bool) -> R,
) -> R {
    let mut out: [*const c_char; N] = [core::ptr::null(); N];
    doctor_into(&mut out, src, n, extra, f)
}

/// Builds the environment into `out` (all NULL, at least `n + EXTRA` long) and calls `f`.
fn doctor_into<R>(
    out: &mut [*const c_char],
    src: CArray,
    n: usize,
    extra: Option<*const c_char>,
    f: impl FnOnce(*const *const c_char, bool) -> R,
) -> R {
    let cfg = config::get();
    let ours = cfg.env_entries();
    let lib = cfg.s(cfg.lib_path);
    let mut len = 0usize;
    let mut changed = false;
    let mut same = 0usize;
    let mut preload_ok = lib.is_empty();
    let mut old_preload: &[u8] = &[];
    for i in 0..n {
        let raw = src.raw(i);
        let entry = src.get(i);
        let key = key_of(entry);
        if key == b"LD_PRELOAD" {
            let val = entry.get(11..).unwrap_or(&[]);
            if !preload_ok && preload_has(val, lib) {
                preload_ok = true;
            } else {
                // Either a second LD_PRELOAD or one without us: rebuilt below.
                old_preload = val;
                changed = true;
                continue;
            }
        } else if key == UNCHECKED_KEY {
            changed = true;
            continue;
        } else if INJECTED_KEYS.contains(&key) {
            let is_ours = |&p: &*const c_char| {
                // SAFETY: our entries are NUL-terminated strings in the config arena.
                unsafe { crate::sys::cstr(p) == entry }
            };
            if ours.iter().any(is_ours) {
                same += 1;
            } else {
                changed = true;
            }
            continue;
        }
        if let Some(slot) = out.get_mut(len) {
            *slot = raw;
            len += 1;
        }
    }
    if same != ours.len() {
        changed = true;
    }
    for &p in ours.iter().chain(extra.as_ref()) {
        if let Some(slot) = out.get_mut(len) {
            *slot = p;
            len += 1;
        }
    }
    if extra.is_some() {
        changed = true;
    }
    let mut preload = [0u8; 4096];
    if !preload_ok {
        let mut w = SliceWriter::new(&mut preload);
        w.put(b"LD_PRELOAD=");
        w.put(lib);
        if !old_preload.is_empty() {
            w.put(b":");
            w.put(old_preload);
        }
        if w.truncated {
            w = SliceWriter::new(&mut preload);
            w.put(b"LD_PRELOAD=");
            w.put(lib);
        }
        w.put(b"\0");
        if let (false, Some(slot)) = (w.truncated, out.get_mut(len)) {
            *slot = preload.as_ptr().cast();
        }
    }
    // `out` was zero-filled, so out[len] is already the terminating NULL (len < N).
    f(out.as_ptr(), changed)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn preload_lists() {
        assert!(preload_has(b"/a/librampart.so", b"/a/librampart.so"));
        assert!(preload_has(
            b"x.so:/a/librampart.so y.so",
            b"/a/librampart.so"
        ));
        assert!(!preload_has(b"/a/librampart.so.bak", b"/a/librampart.so"));
        assert_eq!(key_of(b"A=b=c"), b"A");
        assert_eq!(key_of(b"NOEQ"), b"NOEQ");
    }
}
