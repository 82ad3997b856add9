//! The 13 exported entry points and the load-time constructor.
//!
//! Every wrapper follows the same steps: save errno, resolve the program without asking
//! anyone, ask once, then either fail (`EPERM` and one line), or restore errno and call
//! the real function with a re-injected environment — on exactly the path that was
//! checked. A program that is not there is never handed to the real function: the
//! wrapper fails with the errno the real call would have given (`ENOENT`, `ENOTDIR`,
//! `EACCES`, ...), because a file renamed into place between our look and the real exec
//! would otherwise run unchecked. CPython's subprocess tries every PATH candidate with
//! `execve`, and one spawn must be one check (`repeat`). `execv`, `execvp*` and the
//! `execl*` family end in the real `execve` with an explicit environment; the `execvp*`
//! ones on the path this library found, never a name libc would look up again. The
//! variadic `execl*` live in `shim.c`.
//!
//! A program allowed to run without a decision (`Permit::RunUnchecked`) is counted
//! (`unchecked`), and an environment the library cannot pass itself on in is refused with
//! `E2BIG` (`check::env_fits`).

use core::ffi::{c_char, c_int};

use crate::check::{self, Call, Permit, check};
use crate::config::{self, ExecveFn, environ_ptr, set_environ};
use crate::env::with_env;
use crate::path::{self, PATH_MAX};
use crate::repeat;
use crate::sink::{Sink, SliceWriter};
use crate::sys::{self, CArray, cstr, set_errno};
use crate::unchecked;

type Strs = *const *const c_char;

/// `.init_array` entry: ld.so calls it with `(argc, argv, envp)` before `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static INIT: unsafe extern "C" fn(c_int, Strs, Strs) = rampart_init;

unsafe extern "C" fn rampart_init(_argc: c_int, _argv: Strs, envp: Strs) {
    // SAFETY: called once by ld.so, single-threaded, with the process environment.
    unsafe { config::init(envp) };
    // SAFETY: single-threaded start-up; the shim only reads the pointer later.
    unsafe { rampart_shim_target = Some(shim_exec) };
}

fn enosys() -> c_int {
    set_errno(libc::ENOSYS);
    -1
}

fn fail(e: c_int) -> c_int {
    set_errno(e);
    -1
}

/// `RAMPART_UNCHECKED=N\0` in `buf`.
fn unchecked_entry(n: u64, buf: &mut [u8; 48]) -> *const c_char {
    let mut d = [0u8; 20];
    let mut w = SliceWriter::new(buf);
    w.put(config::UNCHECKED_KEY);
    w.put(b"=");
    w.put(sys::fmt_u64(n, &mut d));
    w.put(b"\0");
    buf.as_ptr().cast()
}

/// Runs an exec-family `real` that was permitted: with the re-injected environment, the
/// caller's errno restored and, for a program that runs unchecked, the count carried on
/// (in the shared page, or in the program's environment: see `unchecked`).
fn exec_permitted(saved: c_int, p: Permit, envp: Strs, real: impl FnOnce(Strs) -> c_int) -> c_int {
    if p != Permit::RunUnchecked {
        return with_env(envp, None, |env, _| {
            set_errno(saved);
            real(env)
        });
    }
    let Some(n) = unchecked::before_exec() else {
        let r = with_env(envp, None, |env, _| {
            set_errno(saved);
            real(env)
        });
        // Only reached when the exec failed: nothing ran.
        let e = sys::errno();
        unchecked::exec_failed();
        set_errno(e);
        return r;
    };
    let mut buf = [0u8; 48];
    let entry = unchecked_entry(n, &mut buf);
    with_env(envp, Some(entry), |env, _| {
        set_errno(saved);
        real(env)
    })
}

/// The common end of the exec family: over the environment limit → `E2BIG`; denied →
/// `-1` with `errno = EPERM`; allowed → `real` (see `exec_permitted`).
fn run_exec(saved: c_int, call: &Call, envp: Strs, real: impl FnOnce(Strs) -> c_int) -> c_int {
    if !check::env_fits(call, envp) {
        return fail(libc::E2BIG);
    }
    match check(call) {
        Permit::Refuse => fail(libc::EPERM),
        p => exec_permitted(saved, p, envp, real),
    }
}

/// The common end of `posix_spawn*`: the error is the return value, errno untouched.
fn run_spawn(saved: c_int, call: &Call, envp: Strs, real: impl FnOnce(Strs) -> c_int) -> c_int {
    if !check::env_fits(call, envp) {
        set_errno(saved);
        return libc::E2BIG;
    }
    let p = check(call);
    if p == Permit::Refuse {
        set_errno(saved);
        return libc::EPERM;
    }
    let r = with_env(envp, None, |env, _| {
        set_errno(saved);
        real(env)
    });
    if p == Permit::RunUnchecked && r == 0 {
        unchecked::add();
    }
    r
}

/// Shared body of `execve`, `execv`, `execl`, `execle`.
unsafe fn exec_path(via: &[u8], path: *const c_char, argv: Strs, envp: Option<Strs>) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    let Some(real) = cfg.real.execve else {
        return enosys();
    };
    let src = envp.unwrap_or_else(environ_ptr);
    if let Some(e) = path::missing(path) {
        return fail(e);
    }
    let mut abs = [0u8; PATH_MAX];
    // SAFETY: path is non-NULL and NUL-terminated (missing() checked it).
    let exe = path::absolute(unsafe { cstr(path) }, &mut abs);
    // SAFETY: argv is the caller's NULL-terminated vector (exec contract).
    let argv_arr = unsafe { CArray::new(argv) };
    let call = Call {
        via,
        exe,
        argv: argv_arr,
        shell: None,
        may_cache: false,
    };
    // A caller walking PATH itself (CPython, dash) comes back with the next candidate,
    // often the same file: one spawn is one question (see `repeat`).
    let key = repeat::key(path, argv_arr);
    if key.is_some_and(repeat::denied_recently) {
        check::repeat_denied(&call);
        return fail(libc::EPERM);
    }
    if !check::env_fits(&call, src) {
        return fail(libc::E2BIG);
    }
    let p = check(&call);
    if p == Permit::Refuse {
        if let Some(key) = key {
            repeat::remember_denial(key);
        }
        return fail(libc::EPERM);
    }
    exec_permitted(saved, p, src, |env| {
        // SAFETY: caller's path/argv and our NULL-terminated env array, alive for the call.
        unsafe { real(path, argv, env) }
    })
}

/// Resolves `file` like `execvp` would into `buf` (NUL-terminated, absolute); `Err` =
/// nothing would run, with the errno execvp would fail with.
fn resolve(file: *const c_char, buf: &mut [u8; PATH_MAX]) -> Result<usize, c_int> {
    if file.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: file is the caller's NUL-terminated string.
    let f = unsafe { cstr(file) };
    let n = if f.contains(&b'/') {
        if let Some(e) = path::missing(file) {
            return Err(e);
        }
        let mut tmp = [0u8; PATH_MAX];
        let n = path::absolute(f, &mut tmp).len();
        if let (Some(d), Some(s)) = (buf.get_mut(..n), tmp.get(..n)) {
            d.copy_from_slice(s);
        }
        n
    } else {
        let n = path::search(f, buf)?;
        if buf.first() == Some(&b'/') {
            return Ok(n);
        }
        // A relative PATH entry: report the absolute program path.
        let mut tmp = [0u8; PATH_MAX];
        let m = path::absolute(buf.get(..n).unwrap_or(&[]), &mut tmp).len();
        if let (Some(d), Some(s)) = (buf.get_mut(..m), tmp.get(..m)) {
            d.copy_from_slice(s);
        }
        m
    };
    // The real function gets this very path: it must be NUL-terminated and whole.
    match buf.get_mut(n) {
        Some(slot) if n + 1 < PATH_MAX => {
            *slot = 0;
            Ok(n)
        }
        _ => Err(libc::ENAMETOOLONG),
    }
}

/// `execve` of the resolved `path`, and glibc's `execvp` fallback for a file without a
/// `#!` line (`ENOEXEC`): `/bin/sh path args...`. Up to 254 arguments for the fallback;
/// more keep `ENOEXEC`.
///
/// # Safety
/// `path` NUL-terminated, `argv` and `env` NULL-terminated, all alive for the call.
unsafe fn execve_or_sh(real: ExecveFn, path: *const c_char, argv: Strs, env: Strs) -> c_int {
    // SAFETY: function contract.
    let r = unsafe { real(path, argv, env) };
    if sys::errno() != libc::ENOEXEC {
        return r;
    }
    // SAFETY: argv is NULL-terminated (function contract).
    let args = unsafe { CArray::new(argv) };
    let n = args.len();
    let mut sh: [*const c_char; 256] = [core::ptr::null(); 256];
    if n + 2 > sh.len() {
        return fail(libc::ENOEXEC);
    }
    let mut len = 0;
    for p in [c"/bin/sh".as_ptr(), path]
        .into_iter()
        .chain((1..n).map(|i| args.raw(i)))
    {
        if let Some(slot) = sh.get_mut(len) {
            *slot = p;
            len += 1;
        }
    }
    // SAFETY: a NULL-terminated argv of live strings (sh was zero-filled, len < 256).
    unsafe { real(c"/bin/sh".as_ptr(), sh.as_ptr(), env) }
}

/// Shared body of `execvp`, `execvpe`, `execlp`: resolve once, ask once, exec what was
/// asked about.
unsafe fn exec_search(via: &[u8], file: *const c_char, argv: Strs, envp: Option<Strs>) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    let Some(real) = cfg.real.execve else {
        return enosys();
    };
    let src = envp.unwrap_or_else(environ_ptr);
    let mut buf = [0u8; PATH_MAX];
    let n = match resolve(file, &mut buf) {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    // SAFETY: argv is the caller's NULL-terminated vector.
    let argv_arr = unsafe { CArray::new(argv) };
    let exe = buf.get(..n).unwrap_or(&[]);
    let call = Call {
        via,
        exe,
        argv: argv_arr,
        shell: None,
        may_cache: false,
    };
    let resolved: *const c_char = buf.as_ptr().cast();
    run_exec(saved, &call, src, |env| {
        // SAFETY: the resolved NUL-terminated path, caller's argv and our env array.
        unsafe { execve_or_sh(real, resolved, argv, env) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execve(path: *const c_char, argv: Strs, envp: Strs) -> c_int {
    // SAFETY: exec contract passed through.
    unsafe { exec_path(b"execve", path, argv, Some(envp)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execv(path: *const c_char, argv: Strs) -> c_int {
    // SAFETY: exec contract passed through.
    unsafe { exec_path(b"execv", path, argv, None) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Strs) -> c_int {
    // SAFETY: exec contract passed through.
    unsafe { exec_search(b"execvp", file, argv, None) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Strs, envp: Strs) -> c_int {
    // SAFETY: exec contract passed through.
    unsafe { exec_search(b"execvpe", file, argv, Some(envp)) }
}

type ShimFn = unsafe extern "C" fn(c_int, *const c_char, Strs, Strs) -> c_int;

unsafe extern "C" {
    /// Hidden pointer in `shim.c` that the variadic wrappers call.
    static mut rampart_shim_target: Option<ShimFn>;
}

/// Called by the variadic wrappers in `shim.c` with the collected argv:
/// kind 0 = `execl`, 1 = `execle`, 2 = `execlp`.
unsafe extern "C" fn shim_exec(kind: c_int, path: *const c_char, argv: Strs, envp: Strs) -> c_int {
    // SAFETY: the shim passes the caller's path and a NULL-terminated argv it built.
    unsafe {
        match kind {
            0 => exec_path(b"execl", path, argv, None),
            1 => exec_path(b"execle", path, argv, Some(envp)),
            _ => exec_search(b"execlp", path, argv, None),
        }
    }
}

/// `fexecve`/`execveat(AT_EMPTY_PATH)` on a descriptor we cannot name: `EBADF` if it is
/// not open (as the real call), else refused — we never run what we could not look at.
fn unseen_fd(fd: c_int) -> c_int {
    if !crate::syscall::fd_is_open(fd) {
        return fail(libc::EBADF);
    }
    check::refuse_unseen(fd);
    fail(libc::EPERM)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Strs, envp: Strs) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    let Some(real) = cfg.real.fexecve else {
        return enosys();
    };
    let mut buf = [0u8; PATH_MAX];
    let Some(exe) = path::fd_path(fd, &mut buf) else {
        return unseen_fd(fd);
    };
    // SAFETY: argv is the caller's NULL-terminated vector.
    let argv_arr = unsafe { CArray::new(argv) };
    let call = Call {
        via: b"fexecve",
        exe,
        argv: argv_arr,
        shell: None,
        may_cache: false,
    };
    run_exec(saved, &call, envp, |env| {
        // SAFETY: caller's fd/argv and our env array.
        unsafe { real(fd, argv, env) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: Strs,
    envp: Strs,
    flags: c_int,
) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    let real = |env: Strs| -> c_int {
        match cfg.real.execveat {
            // SAFETY: forwarding the caller's arguments with `env`.
            Some(f) => unsafe { f(dirfd, path, argv, env, flags) },
            // The raw syscall takes the same arguments (glibc < 2.34 has no wrapper); it
            // only returns on failure.
            None => {
                // SAFETY: forwarding the caller's arguments with `env`.
                let e = unsafe { crate::syscall::execveat(dirfd, path, argv, env, flags) };
                fail(e)
            }
        }
    };
    // SAFETY: path is NULL or the caller's NUL-terminated string.
    let p = unsafe { cstr(path) };
    let mut buf = [0u8; PATH_MAX];
    let mut dir = [0u8; PATH_MAX];
    let exe: &[u8] = if p.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        match path::fd_path(dirfd, &mut buf) {
            Some(e) => e,
            None => return unseen_fd(dirfd),
        }
    } else if let Some(e) = path::missing_at(dirfd, path, flags) {
        return fail(e);
    } else if p.starts_with(b"/") {
        p
    } else if dirfd == libc::AT_FDCWD {
        path::absolute(p, &mut buf)
    } else {
        let d = path::fd_path(dirfd, &mut dir).unwrap_or(b".");
        let mut w = crate::sink::SliceWriter::new(&mut buf);
        crate::sink::Sink::put(&mut w, d);
        crate::sink::Sink::put(&mut w, b"/");
        crate::sink::Sink::put(&mut w, p);
        let n = w.len;
        buf.get(..n).unwrap_or(&[])
    };
    // SAFETY: argv is the caller's NULL-terminated vector.
    let argv_arr = unsafe { CArray::new(argv) };
    let call = Call {
        via: b"execveat",
        exe,
        argv: argv_arr,
        shell: None,
        may_cache: false,
    };
    run_exec(saved, &call, envp, real)
}

/// Runs `f` with `environ` replaced by the re-injected environment when it differs.
/// `system` and `popen` read `environ` themselves (glibc spawns internally, not through
/// our `posix_spawn`), so this is the only way to hand them our environment. Another
/// thread calling `setenv` during the call would have its change undone; the window is
/// the spawn for `popen` and the child's lifetime for `system`.
fn with_environ<R>(f: impl FnOnce() -> R) -> R {
    let old = environ_ptr();
    with_env(old, None, |env, changed| {
        if !changed {
            return f();
        }
        // SAFETY: env is a valid NULL-terminated array alive until with_env returns,
        // and we restore the old pointer before that.
        unsafe { set_environ(env) };
        let r = f();
        let e = sys::errno();
        // SAFETY: restoring the pointer we read above.
        unsafe { set_environ(old) };
        set_errno(e);
        r
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn system(command: *const c_char) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    let Some(real) = cfg.real.system else {
        return enosys();
    };
    if command.is_null() {
        // SAFETY: system(NULL) only asks whether a shell exists.
        return unsafe { real(command) };
    }
    // SAFETY: command is the caller's NUL-terminated string.
    let cmd = unsafe { cstr(command) };
    // SAFETY: NULL is a valid empty argv (shell calls do not read it).
    let none = unsafe { CArray::new(core::ptr::null()) };
    let call = Call {
        via: b"system",
        exe: b"/bin/sh",
        argv: none,
        shell: Some(cmd),
        may_cache: true,
    };
    if !check::env_fits(&call, environ_ptr()) {
        return fail(libc::E2BIG);
    }
    match check(&call) {
        Permit::Refuse => return fail(libc::EPERM),
        Permit::RunUnchecked => unchecked::add(),
        Permit::Run => {}
    }
    with_environ(|| {
        set_errno(saved);
        // SAFETY: forwarding the caller's command.
        unsafe { real(command) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn popen(command: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    let saved = sys::errno();
    let cfg = config::get();
    let Some(real) = cfg.real.popen else {
        set_errno(libc::ENOSYS);
        return core::ptr::null_mut();
    };
    if command.is_null() {
        // SAFETY: forwarding; glibc handles NULL.
        return unsafe { real(command, mode) };
    }
    // SAFETY: command is the caller's NUL-terminated string.
    let cmd = unsafe { cstr(command) };
    // SAFETY: NULL is a valid empty argv.
    let none = unsafe { CArray::new(core::ptr::null()) };
    let call = Call {
        via: b"popen",
        exe: b"/bin/sh",
        argv: none,
        shell: Some(cmd),
        may_cache: true,
    };
    if !check::env_fits(&call, environ_ptr()) {
        set_errno(libc::E2BIG);
        return core::ptr::null_mut();
    }
    match check(&call) {
        Permit::Refuse => {
            set_errno(libc::EPERM);
            return core::ptr::null_mut();
        }
        Permit::RunUnchecked => unchecked::add(),
        Permit::Run => {}
    }
    with_environ(|| {
        set_errno(saved);
        // SAFETY: forwarding the caller's arguments.
        unsafe { real(command, mode) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut libc::pid_t,
    path: *const c_char,
    file_actions: *const libc::posix_spawn_file_actions_t,
    attrp: *const libc::posix_spawnattr_t,
    argv: Strs,
    envp: Strs,
) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    let Some(real) = cfg.real.posix_spawn else {
        return libc::ENOSYS;
    };
    if let Some(e) = path::missing(path) {
        set_errno(saved);
        return e;
    }
    let mut abs = [0u8; PATH_MAX];
    // SAFETY: path is non-NULL and NUL-terminated (missing() checked it).
    let exe = path::absolute(unsafe { cstr(path) }, &mut abs);
    // SAFETY: argv is the caller's NULL-terminated vector.
    let argv_arr = unsafe { CArray::new(argv) };
    let call = Call {
        via: b"posix_spawn",
        exe,
        argv: argv_arr,
        shell: None,
        may_cache: true,
    };
    run_spawn(saved, &call, envp, |env| {
        // SAFETY: caller's arguments with our env array, alive for the call.
        unsafe { real(pid, path, file_actions, attrp, argv, env) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut libc::pid_t,
    file: *const c_char,
    file_actions: *const libc::posix_spawn_file_actions_t,
    attrp: *const libc::posix_spawnattr_t,
    argv: Strs,
    envp: Strs,
) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    // The resolved path goes to the real `posix_spawn`: `posix_spawnp` would walk PATH
    // again and could find another file than the one checked.
    let Some(real) = cfg.real.posix_spawn else {
        return libc::ENOSYS;
    };
    let mut buf = [0u8; PATH_MAX];
    let n = match resolve(file, &mut buf) {
        Ok(n) => n,
        Err(e) => {
            set_errno(saved);
            return e;
        }
    };
    // SAFETY: argv is the caller's NULL-terminated vector.
    let argv_arr = unsafe { CArray::new(argv) };
    let exe = buf.get(..n).unwrap_or(&[]);
    let call = Call {
        via: b"posix_spawnp",
        exe,
        argv: argv_arr,
        shell: None,
        may_cache: true,
    };
    let resolved: *const c_char = buf.as_ptr().cast();
    run_spawn(saved, &call, envp, |env| {
        // SAFETY: the resolved NUL-terminated path, caller's other arguments, our env.
        unsafe { real(pid, resolved, file_actions, attrp, argv, env) }
    })
}
