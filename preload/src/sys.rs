//! Thin wrappers over the few syscalls the library makes. All of them are async-signal-safe
//! and allocation-free, so they may run in a `vfork` child.

use core::ffi::{c_char, c_int};

use crate::syscall;

pub fn errno() -> c_int {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

pub fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e }
}

/// The caller's pid from the kernel, never from a cache: in a `vfork` child this is the
/// child's pid although memory is shared with the parent.
pub fn getpid() -> i32 {
    syscall::getpid()
}

pub fn getppid() -> i32 {
    syscall::getppid()
}

/// Monotonic clock in milliseconds.
pub fn now_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec / 1_000_000)
}

/// Writes all of `bytes` to `fd` with write(2), retrying on EINTR and short writes.
/// Used for stderr; errors are ignored because there is nowhere to report them.
pub fn write_all(fd: c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match syscall::write(fd, bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
            Err(libc::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// The bytes of a NUL-terminated C string (empty for NULL).
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that outlives `'a`.
pub unsafe fn cstr<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: the caller guarantees a NUL-terminated string; strlen finds its length.
    unsafe { core::slice::from_raw_parts(p.cast::<u8>(), libc::strlen(p)) }
}

/// Whether the C string at `p` starts with `prefix`, reading no further than the first
/// byte that differs (so never past its NUL) and without measuring it.
pub fn has_prefix(p: *const c_char, prefix: &[u8]) -> bool {
    if p.is_null() {
        return false;
    }
    for (k, &want) in prefix.iter().enumerate() {
        // SAFETY: bytes 0..k matched `prefix`, which holds no NUL, so the string is at
        // least k + 1 bytes long including its terminator: byte k is readable.
        if unsafe { *p.cast::<u8>().add(k) } != want {
            return false;
        }
    }
    true
}

/// Iterates a NULL-terminated array of C strings (argv or envp). NULL means empty.
#[derive(Clone, Copy)]
pub struct CArray {
    ptr: *const *const c_char,
}

impl CArray {
    /// # Safety
    /// `ptr` must be NULL or a NULL-terminated array of NUL-terminated strings that stays
    /// valid while the `CArray` is used.
    pub unsafe fn new(ptr: *const *const c_char) -> Self {
        CArray { ptr }
    }

    pub fn len(self) -> usize {
        let mut n = 0usize;
        if self.ptr.is_null() {
            return 0;
        }
        // SAFETY: the array is NULL-terminated (constructor contract); we stop at NULL.
        while unsafe { !(*self.ptr.add(n)).is_null() } {
            n += 1;
        }
        n
    }

    /// The raw pointer of entry `i`; `i` must be below `len()`.
    pub fn raw(self, i: usize) -> *const c_char {
        // SAFETY: callers only pass indices below `len()` (all loops are bounded by it).
        unsafe { *self.ptr.add(i) }
    }

    pub fn get(self, i: usize) -> &'static [u8] {
        // SAFETY: see `raw`; the strings outlive the call by the constructor contract. The
        // 'static lifetime is a local fiction: no caller keeps the slice past the call.
        unsafe { cstr(self.raw(i)) }
    }
}

/// Decimal digits of `n` in `buf`, returned as a slice of it.
pub fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or(&[])
}

pub fn fmt_i64(n: i64, buf: &mut [u8; 21]) -> &[u8] {
    let mut tmp = [0u8; 20];
    let digits = fmt_u64(n.unsigned_abs(), &mut tmp);
    let end = 1 + digits.len();
    if let Some(dst) = buf.get_mut(1..end) {
        dst.copy_from_slice(digits);
    }
    if let Some(b) = buf.get_mut(0) {
        *b = b'-';
    }
    let start = if n < 0 { 0 } else { 1 };
    buf.get(start..end).unwrap_or(&[])
}

pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The controlling terminal, opened for writing, or -1 when there is none (`ENXIO`): the
/// `[WAIT]` line goes there so the person who started the agent sees it even when the
/// agent discards or captures its stderr. `O_NOCTTY` never acquires one; `O_CLOEXEC`
/// keeps it out of the program about to start. The caller closes it.
pub fn open_tty() -> c_int {
    // SAFETY: the path is a NUL-terminated literal.
    match unsafe {
        syscall::open(
            c"/dev/tty".as_ptr(),
            libc::O_WRONLY | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    } {
        Ok(fd) => fd as c_int,
        Err(_) => -1,
    }
}

/// Closes a descriptor this library opened (errors ignored: nothing to report them to).
pub fn close(fd: c_int) {
    syscall::close(fd);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        let mut b = [0u8; 20];
        assert_eq!(fmt_u64(0, &mut b), b"0");
        assert_eq!(fmt_u64(120000, &mut b), b"120000");
        assert_eq!(fmt_u64(u64::MAX, &mut b), b"18446744073709551615");
        let mut c = [0u8; 21];
        assert_eq!(fmt_i64(-42, &mut c), b"-42");
        assert_eq!(fmt_i64(7, &mut c), b"7");
    }
}
