//! Program resolution without allocation: PATH search with glibc's `execvp` rules,
//! `/proc/self/fd/N` for descriptor-based execs, and the current directory.

use core::ffi::{c_char, c_int};

use crate::sink::{Sink, SliceWriter};
use crate::sys;

pub const PATH_MAX: usize = 4096;

/// Fills `buf` with the NUL-terminated current directory.
pub fn getcwd(buf: &mut [u8; PATH_MAX]) -> Option<&[u8]> {
    // SAFETY: buf is writable for its whole length; glibc does not allocate when given one.
    let p = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
    if p.is_null() {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    buf.get(..len)
}

/// Whether `path` (NUL-terminated) names an existing file. Changes errno.
pub fn exists(path: *const c_char) -> bool {
    // SAFETY: path is a NUL-terminated string supplied by the exec caller.
    !path.is_null() && unsafe { libc::access(path, libc::F_OK) } == 0
}

/// Whether `path` exists relative to `dirfd` (for `execveat`). Changes errno.
pub fn exists_at(dirfd: c_int, path: *const c_char, flags: c_int) -> bool {
    let f = flags & libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: path is a NUL-terminated string supplied by the exec caller.
    !path.is_null() && unsafe { libc::faccessat(dirfd, path, libc::F_OK, f) } == 0
}

/// Makes `path` absolute against the current directory (no normalisation), into `out`.
pub fn absolute<'a>(path: &[u8], out: &'a mut [u8; PATH_MAX]) -> &'a [u8] {
    let mut cwd = [0u8; PATH_MAX];
    let mut w = SliceWriter::new(out);
    // Only a relative path needs the directory: no getcwd(2) on the common absolute path.
    if let Some(dir) = (!path.starts_with(b"/"))
        .then(|| getcwd(&mut cwd))
        .flatten()
    {
        w.put(dir);
        if dir != b"/" {
            w.put(b"/");
        }
    }
    w.put(path.strip_prefix(b"./").unwrap_or(path));
    let n = w.len;
    out.get(..n).unwrap_or(&[])
}

/// The target of `/proc/self/fd/<fd>` (for `fexecve` and `execveat(AT_EMPTY_PATH)`).
pub fn fd_path(fd: c_int, out: &mut [u8; PATH_MAX]) -> Option<&[u8]> {
    let mut link = [0u8; 40];
    let mut w = SliceWriter::new(&mut link);
    w.put(b"/proc/self/fd/");
    let mut d = [0u8; 20];
    w.put(sys::fmt_u64(u64::try_from(fd).ok()?, &mut d));
    w.put(b"\0");
    // SAFETY: `link` is NUL-terminated and `out` is writable for its length.
    let n = unsafe { libc::readlink(link.as_ptr().cast(), out.as_mut_ptr().cast(), out.len()) };
    let n = usize::try_from(n).ok()?;
    out.get(..n)
}

/// Resolves `file` the way glibc's `execvp` will: the caller's `PATH` (default
/// `/bin:/usr/bin`, empty entries mean the current directory); candidates that do not
/// exist or are not executable are skipped. Returns the NUL-terminated path's length in
/// `out`, or `None` when nothing would run (then the real function fails on its own with
/// ENOENT or EACCES, and nobody is asked).
pub fn search(file: &[u8], out: &mut [u8; PATH_MAX]) -> Option<usize> {
    if file.is_empty() {
        return None;
    }
    // SAFETY: getenv does not allocate or lock in glibc; the name is NUL-terminated.
    let path = unsafe { sys::cstr(libc::getenv(c"PATH".as_ptr())) };
    let path: &[u8] = if path.is_empty() {
        b"/bin:/usr/bin"
    } else {
        path
    };
    for dir in path.split(|&b| b == b':') {
        let mut w = SliceWriter::new(out);
        if dir.is_empty() {
            w.put(b".");
        } else {
            w.put(dir);
        }
        w.put(b"/");
        w.put(file);
        w.put(b"\0");
        if w.truncated {
            continue;
        }
        let len = w.len - 1;
        if runnable(out.as_ptr().cast()) {
            return Some(len);
        }
    }
    None
}

fn runnable(p: *const c_char) -> bool {
    // SAFETY: stat is plain data; zeroed is valid.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: p is NUL-terminated (built by `search`), st is writable.
    if unsafe { libc::stat(p, &mut st) } != 0 {
        return false;
    }
    // SAFETY: p is NUL-terminated.
    (st.st_mode & libc::S_IFMT) == libc::S_IFREG && unsafe { libc::access(p, libc::X_OK) } == 0
}
