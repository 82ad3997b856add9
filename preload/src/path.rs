//! Program resolution without allocation: PATH search with glibc's `execvp` rules,
//! `/proc/self/fd/N` for descriptor-based execs, and the current directory.

use core::ffi::{c_char, c_int};

use crate::sink::{Sink, SliceWriter};
use crate::sys::{self, CArray};
use crate::syscall;

pub const PATH_MAX: usize = 4096;

/// Fills `buf` with the NUL-terminated current directory.
pub fn getcwd(buf: &mut [u8; PATH_MAX]) -> Option<&[u8]> {
    let len = syscall::getcwd(buf)?;
    buf.get(..len)
}

/// `None` when `path` (NUL-terminated) names an existing file, else the errno the real
/// exec would fail with (`ENOENT`, `ENOTDIR`, `EACCES`, `ELOOP`, `ENAMETOOLONG`,
/// `EFAULT` for NULL). A wrapper returns that errno itself: it never hands the real
/// function a path it did not check (the file could appear in between).
pub fn missing(path: *const c_char) -> Option<c_int> {
    if path.is_null() {
        return Some(libc::EFAULT);
    }
    // SAFETY: path is a NUL-terminated string supplied by the exec caller.
    unsafe { syscall::access(path, libc::F_OK) }.err()
}

/// [`missing`] relative to `dirfd` (for `execveat`).
pub fn missing_at(dirfd: c_int, path: *const c_char, flags: c_int) -> Option<c_int> {
    if path.is_null() {
        return Some(libc::EFAULT);
    }
    // Existence (`F_OK`) is what `fstatat` tells, with or without following a final
    // symbolic link; glibc's `faccessat` falls back to exactly this for the flag.
    let f = flags & libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: path is a NUL-terminated string supplied by the exec caller.
    unsafe { syscall::fstatat(dirfd, path, f) }.err()
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
    // SAFETY: `link` is NUL-terminated.
    let n = unsafe { syscall::readlink(link.as_ptr().cast(), out) }.ok()?;
    out.get(..n)
}

/// The caller's `PATH` as `getenv` finds it (the first entry of that name in `environ`),
/// empty when unset.
fn getenv_path() -> &'static [u8] {
    // SAFETY: `environ` is NULL or libc's NULL-terminated environment, which lives until
    // the exec this lookup is for.
    let env = unsafe { CArray::new(crate::config::environ_ptr()) };
    for i in 0..env.len() {
        if sys::has_prefix(env.raw(i), b"PATH=") {
            return env.get(i).get(5..).unwrap_or(&[]);
        }
    }
    &[]
}

/// Resolves `file` the way glibc's `execvp` does: the caller's `PATH` (default
/// `/bin:/usr/bin`, empty entries mean the current directory); candidates that do not
/// exist (`ENOENT`, `ENOTDIR`, `ESTALE`, `ENODEV`, `ETIMEDOUT`) are skipped, one that
/// exists but cannot be run is remembered as `EACCES` and skipped, any other error ends
/// the walk with that error. Returns the NUL-terminated path's length in `out`, or the
/// errno execvp would fail with (`EACCES` if any candidate was not runnable, else the
/// last error): the caller returns it without running anything.
pub fn search(file: &[u8], out: &mut [u8; PATH_MAX]) -> Result<usize, c_int> {
    if file.is_empty() {
        return Err(libc::ENOENT);
    }
    let path = getenv_path();
    let path: &[u8] = if path.is_empty() {
        b"/bin:/usr/bin"
    } else {
        path
    };
    let mut err = libc::ENOENT;
    let mut eacces = false;
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
            err = libc::ENAMETOOLONG;
            continue;
        }
        let len = w.len - 1;
        match runnable(out.as_ptr().cast()) {
            Ok(()) => return Ok(len),
            Err(libc::EACCES) => eacces = true,
            Err(
                e @ (libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT),
            ) => err = e,
            Err(e) => return Err(e),
        }
    }
    Err(if eacces { libc::EACCES } else { err })
}

/// Whether the real exec could run `p`: `EACCES` for a directory, a special file or
/// no execute permission, the `stat` error when it cannot be looked at.
fn runnable(p: *const c_char) -> Result<(), c_int> {
    // SAFETY: p is NUL-terminated (built by `search`).
    let st = unsafe { syscall::stat(p) }?;
    if (st.st_mode & libc::S_IFMT) == libc::S_IFREG
        // SAFETY: p is NUL-terminated.
        && unsafe { syscall::access(p, libc::X_OK) }.is_ok()
    {
        Ok(())
    } else {
        Err(libc::EACCES)
    }
}
