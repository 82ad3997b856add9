//! Raw Linux system calls for everything the library does that needs no libc state.
//!
//! Why not libc's wrappers: every libc function the library imports is one more symbol
//! the dynamic linker looks up (`BIND_NOW`) in every process that loads the library —
//! every process of the agent's tree, most of which never start a program. Each lookup
//! walks the program, this library and libc by hash; about thirty of them were two
//! thirds of the library's load instructions after its constructor. The calls below
//! need nothing from libc (no buffering, no locks, no errno: they return the error),
//! so they are made directly; `README.md` ("Load cost") has the numbers.
//!
//! What stays with libc: `clock_gettime` (the vDSO makes it a function call, not a
//! system call), `__errno_location` (the wrappers set the caller's errno), `dlsym`,
//! `dladdr`, `environ`, and the memory and string functions the compiler emits.
//!
//! Only x86_64 and aarch64 have the instruction sequences here; anything else goes
//! through libc's `syscall(2)`, which returns -1 and sets errno, translated back.

use core::ffi::{c_char, c_int, c_long, c_void};

/// Result of a system call: the non-negative return value, or the error number.
pub type Sys = Result<usize, c_int>;

#[inline]
fn result(ret: isize) -> Sys {
    // The kernel returns -4095..-1 for errors; anything else is a value.
    if (-4095..0).contains(&ret) {
        Err(-ret as c_int)
    } else {
        Ok(ret as usize)
    }
}

/// # Safety
/// The arguments must be valid for system call `n` (pointers to live memory of the sizes
/// the call expects). Unused arguments are passed as 0.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn raw6(n: c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the Linux x86_64 system call convention: number in rax, arguments in rdi,
    // rsi, rdx, r10, r8, r9; the kernel clobbers rcx and r11 and returns in rax. What the
    // call does with memory is the caller's contract.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// # Safety
/// As for the x86_64 version.
#[cfg(target_arch = "aarch64")]
#[inline]
unsafe fn raw6(n: c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the Linux aarch64 system call convention: number in x8, arguments in x0-x5,
    // result in x0. What the call does with memory is the caller's contract.
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            options(nostack),
        );
    }
    ret
}

/// # Safety
/// As for the x86_64 version.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn raw6(n: c_long, a: [usize; 6]) -> isize {
    // SAFETY: the caller's contract; libc's syscall(2) passes the arguments through.
    let r = unsafe { libc::syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r == -1 {
        -(crate::sys::errno() as isize)
    } else {
        r as isize
    }
}

/// # Safety
/// See [`raw6`].
#[inline]
unsafe fn call(n: c_long, a: [usize; 6]) -> Sys {
    // SAFETY: forwarded contract.
    result(unsafe { raw6(n, a) })
}

pub fn getpid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { raw6(libc::SYS_getpid, [0; 6]) as i32 }
}

pub fn getppid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { raw6(libc::SYS_getppid, [0; 6]) as i32 }
}

pub fn write(fd: c_int, buf: &[u8]) -> Sys {
    // SAFETY: the pointer and length describe the live slice `buf`.
    unsafe {
        call(
            libc::SYS_write,
            [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0],
        )
    }
}

pub fn close(fd: c_int) {
    // SAFETY: closing a descriptor number has no memory effects.
    let _ = unsafe { call(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]) };
}

pub fn socket(domain: c_int, ty: c_int) -> Sys {
    // SAFETY: integer arguments only.
    unsafe { call(libc::SYS_socket, [domain as usize, ty as usize, 0, 0, 0, 0]) }
}

/// `connect(2)` to the socket address `addr` of `len` bytes.
///
/// # Safety
/// `addr` must point to `len` readable bytes.
pub unsafe fn connect(fd: c_int, addr: *const c_void, len: usize) -> Sys {
    // SAFETY: the caller's contract.
    unsafe {
        call(
            libc::SYS_connect,
            [fd as usize, addr as usize, len, 0, 0, 0],
        )
    }
}

/// Sets an integer socket option.
pub fn setsockopt_int(fd: c_int, level: c_int, name: c_int, value: c_int) -> Sys {
    let v = value;
    // SAFETY: `v` is a live c_int and its size is passed.
    unsafe {
        call(
            libc::SYS_setsockopt,
            [
                fd as usize,
                level as usize,
                name as usize,
                (&raw const v) as usize,
                size_of::<c_int>(),
                0,
            ],
        )
    }
}

/// Reads an integer socket option.
pub fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> Result<c_int, c_int> {
    let mut v: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are live and writable; `len` holds the size of `v`.
    unsafe {
        call(
            libc::SYS_getsockopt,
            [
                fd as usize,
                level as usize,
                name as usize,
                (&raw mut v) as usize,
                (&raw mut len) as usize,
                0,
            ],
        )
    }?;
    Ok(v)
}

/// `send(2)` with `flags`.
pub fn send(fd: c_int, buf: &[u8], flags: c_int) -> Sys {
    // SAFETY: the pointer and length describe the live slice `buf`; no address.
    unsafe {
        call(
            libc::SYS_sendto,
            [
                fd as usize,
                buf.as_ptr() as usize,
                buf.len(),
                flags as usize,
                0,
                0,
            ],
        )
    }
}

/// `recv(2)` into `buf`.
pub fn recv(fd: c_int, buf: &mut [u8]) -> Sys {
    // SAFETY: the pointer and length describe the live, writable slice `buf`.
    unsafe {
        call(
            libc::SYS_recvfrom,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )
    }
}

/// Waits up to `timeout_ms` (0: do not wait) for `events` on `fd`; the `revents`.
/// `ppoll`, which every architecture has (aarch64 has no `poll`).
pub fn poll1(fd: c_int, events: i16, timeout_ms: i64) -> Result<i16, c_int> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout_ms.max(0);
    // Mutable: the kernel writes the time left back into it.
    let mut ts = libc::timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    // SAFETY: one live pollfd and a live, writable timespec; no signal mask (NULL), so the
    // size argument is not read.
    let n = unsafe {
        call(
            libc::SYS_ppoll,
            [
                (&raw mut pfd) as usize,
                1,
                (&raw mut ts) as usize,
                0,
                8, // the kernel's sigset size (unread: no mask)
                0,
            ],
        )
    }?;
    Ok(if n == 0 { 0 } else { pfd.revents })
}

/// `faccessat(AT_FDCWD, path, mode)`: `Ok` when accessible.
///
/// # Safety
/// `path` must be a NUL-terminated string.
pub unsafe fn access(path: *const c_char, mode: c_int) -> Sys {
    // SAFETY: the caller's contract.
    unsafe {
        call(
            libc::SYS_faccessat,
            [
                libc::AT_FDCWD as usize,
                path as usize,
                mode as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// `fstatat(dirfd, path, flags)`: the file's status.
///
/// # Safety
/// `path` must be a NUL-terminated string.
pub unsafe fn fstatat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
) -> Result<libc::stat, c_int> {
    // SAFETY: stat is plain data; zeroed is valid.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is live and writable and, on x86_64 and aarch64, laid out as the
    // kernel's `struct stat`; `path` per the caller's contract.
    unsafe {
        call(
            libc::SYS_newfstatat,
            [
                dirfd as usize,
                path as usize,
                (&raw mut st) as usize,
                flags as usize,
                0,
                0,
            ],
        )
    }?;
    Ok(st)
}

/// `fstat(fd)`.
pub fn fstat(fd: c_int) -> Result<libc::stat, c_int> {
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH names `fd` itself.
    unsafe { fstatat(fd, c"".as_ptr(), libc::AT_EMPTY_PATH) }
}

/// `stat(path)` (following symbolic links).
///
/// # Safety
/// `path` must be a NUL-terminated string.
pub unsafe fn stat(path: *const c_char) -> Result<libc::stat, c_int> {
    // SAFETY: forwarded contract.
    unsafe { fstatat(libc::AT_FDCWD, path, 0) }
}

/// `readlink(path)` into `buf`: the number of bytes written (no NUL added).
///
/// # Safety
/// `path` must be a NUL-terminated string.
pub unsafe fn readlink(path: *const c_char, buf: &mut [u8]) -> Sys {
    // SAFETY: `path` per the caller's contract; `buf` is live and writable.
    unsafe {
        call(
            libc::SYS_readlinkat,
            [
                libc::AT_FDCWD as usize,
                path as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
                0,
                0,
            ],
        )
    }
}

/// `open(path, flags)` (no `O_CREAT`, so no mode).
///
/// # Safety
/// `path` must be a NUL-terminated string.
pub unsafe fn open(path: *const c_char, flags: c_int) -> Sys {
    // SAFETY: `path` per the caller's contract.
    unsafe {
        call(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as usize,
                path as usize,
                flags as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// The current directory into `buf`, NUL-terminated; its length without the NUL. `None`
/// when it cannot be named, or is not reachable from this process's root (the kernel
/// then returns a path that does not start with `/`; glibc says `ENOENT`).
pub fn getcwd(buf: &mut [u8]) -> Option<usize> {
    // SAFETY: `buf` is live and writable for its length.
    let n = unsafe {
        call(
            libc::SYS_getcwd,
            [buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0, 0],
        )
    }
    .ok()?;
    if buf.first() != Some(&b'/') {
        return None;
    }
    // The kernel's count includes the NUL.
    n.checked_sub(1)
}

/// One page (or more) of anonymous memory shared with every child forked from now on.
pub fn map_shared_anon(len: usize) -> Option<*mut c_void> {
    // SAFETY: a fresh anonymous mapping touches no existing memory.
    let p = unsafe {
        call(
            libc::SYS_mmap,
            [
                0,
                len,
                (libc::PROT_READ | libc::PROT_WRITE) as usize,
                (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as usize,
                usize::MAX, // fd -1
                0,
            ],
        )
    }
    .ok()?;
    Some(p as *mut c_void)
}

/// `fcntl(fd, F_GETFD)`: whether `fd` is an open descriptor.
pub fn fd_is_open(fd: c_int) -> bool {
    // SAFETY: integer arguments only.
    unsafe {
        call(
            libc::SYS_fcntl,
            [fd as usize, libc::F_GETFD as usize, 0, 0, 0, 0],
        )
    }
    .is_ok()
}

/// `execveat(2)`: returns only on failure.
///
/// # Safety
/// `path` must be NUL-terminated; `argv` and `envp` NULL-terminated arrays of
/// NUL-terminated strings.
pub unsafe fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's contract.
    match unsafe {
        call(
            libc::SYS_execveat,
            [
                dirfd as usize,
                path as usize,
                argv as usize,
                envp as usize,
                flags as usize,
                0,
            ],
        )
    } {
        Ok(_) => 0,
        Err(e) => e,
    }
}

/// Ends the process with SIGABRT (the panic handler; nothing reaches it in practice):
/// the signal unblocked and at its default action first, as `abort(3)` does, then
/// `exit_group` should it still be alive.
pub fn abort() -> ! {
    let sig = libc::SIGABRT as usize;
    let set: u64 = 1 << (sig - 1);
    let dfl = [0usize; 4]; // kernel sigaction: SIG_DFL, no flags, no restorer, no mask
    // SAFETY: a live sigaction of the kernel's layout and a live signal set; then plain
    // integer calls.
    unsafe {
        let _ = call(
            libc::SYS_rt_sigaction,
            [sig, (&raw const dfl) as usize, 0, 8, 0, 0],
        );
        let _ = call(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_UNBLOCK as usize,
                (&raw const set) as usize,
                0,
                8,
                0,
                0,
            ],
        );
        let tid = raw6(libc::SYS_gettid, [0; 6]) as usize;
        let _ = call(libc::SYS_tgkill, [getpid() as usize, tid, sig, 0, 0, 0]);
        raw6(libc::SYS_exit_group, [127, 0, 0, 0, 0, 0]);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The raw calls give what libc's and std's give, and errors as error numbers.
    #[test]
    fn agree_with_libc() {
        assert_eq!(getpid(), std::process::id() as i32);
        // SAFETY: no arguments.
        assert_eq!(getppid(), unsafe { libc::getppid() });
        let mut buf = [0u8; 4096];
        let n = getcwd(&mut buf).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(&buf[..n], cwd.as_os_str().as_encoded_bytes());
        assert_eq!(buf[n], 0);
        // SAFETY: NUL-terminated literals.
        unsafe {
            assert_eq!(access(c"/".as_ptr(), libc::F_OK), Ok(0));
            assert_eq!(
                access(c"/nonexistent/x".as_ptr(), libc::F_OK),
                Err(libc::ENOENT)
            );
            assert_eq!(
                access(c"/etc/passwd/x".as_ptr(), libc::F_OK),
                Err(libc::ENOTDIR)
            );
            let st = stat(c"/".as_ptr()).unwrap();
            assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFDIR);
            assert_eq!(stat(c"/nonexistent".as_ptr()).err(), Some(libc::ENOENT));
            let mut link = [0u8; 64];
            let n = readlink(c"/proc/self/cwd".as_ptr(), &mut link).unwrap();
            assert_eq!(&link[..n], cwd.as_os_str().as_encoded_bytes());
        }
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(
            fstat(a.as_raw_fd()).unwrap().st_mode & libc::S_IFMT,
            libc::S_IFSOCK
        );
        assert!(fd_is_open(a.as_raw_fd()));
        assert_eq!(poll1(a.as_raw_fd(), libc::POLLIN, 0), Ok(0));
        assert_eq!(send(b.as_raw_fd(), b"x", libc::MSG_NOSIGNAL), Ok(1));
        assert_eq!(
            poll1(a.as_raw_fd(), libc::POLLIN, 1000),
            Ok(libc::POLLIN),
            "readable within the timeout"
        );
        assert_eq!(write(-1, b"x"), Err(libc::EBADF));
        assert!(!fd_is_open(-1));
    }
}
