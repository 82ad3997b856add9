//! The 13 exported entry points and the load-time constructor.
//!
//! Every wrapper follows the same steps: save errno, resolve the program without asking
//! anyone (a program that does not exist is handed straight to the real function, which
//! fails exactly as it would without Rampart — CPython's subprocess tries every PATH
//! candidate with `execve`, and one spawn must be one check), ask once, then either fail
//! with EPERM or restore errno and call the real function with a re-injected environment.
//! `execv`, `execvp` and the `execl*` family end in the real `execve`/`execvpe` with an
//! explicit environment. The variadic `execl*` live in `shim.c`.

use core::ffi::{c_char, c_int};

use crate::check::{self, Call, check};
use crate::config::{self, environ_ptr, set_environ};
use crate::env::with_env;
use crate::path::{self, PATH_MAX};
use crate::repeat;
use crate::sys::{self, CArray, cstr, set_errno};

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

/// The common end of the exec family: denied → `-1` with `errno = EPERM`; allowed →
/// `real` with the re-injected environment and the caller's errno restored.
fn run_exec(saved: c_int, call: &Call, envp: Strs, real: impl FnOnce(Strs) -> c_int) -> c_int {
    if !check(call) {
        set_errno(libc::EPERM);
        return -1;
    }
    with_env(envp, |env, _| {
        set_errno(saved);
        real(env)
    })
}

/// The common end of `posix_spawn*`: denied → the `EPERM` return value, errno untouched.
fn run_spawn(saved: c_int, call: &Call, envp: Strs, real: impl FnOnce(Strs) -> c_int) -> c_int {
    if !check(call) {
        set_errno(saved);
        return libc::EPERM;
    }
    with_env(envp, |env, _| {
        set_errno(saved);
        real(env)
    })
}

/// Shared body of `execve`, `execv`, `execl`, `execle`.
unsafe fn exec_path(via: &[u8], path: *const c_char, argv: Strs, envp: Option<Strs>) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    let Some(real) = cfg.real.execve else {
        return enosys();
    };
    let src = envp.unwrap_or_else(environ_ptr);
    if !path::exists(path) {
        set_errno(saved);
        // SAFETY: forwarding the caller's own arguments to the real execve.
        return unsafe { real(path, argv, src) };
    }
    let mut abs = [0u8; PATH_MAX];
    // SAFETY: path is non-NULL and NUL-terminated (exists() checked it).
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
        set_errno(libc::EPERM);
        return -1;
    }
    if !check(&call) {
        if let Some(key) = key {
            repeat::remember_denial(key);
        }
        set_errno(libc::EPERM);
        return -1;
    }
    with_env(src, |env, _| {
        set_errno(saved);
        // SAFETY: caller's path/argv and our NULL-terminated env array, alive for the call.
        unsafe { real(path, argv, env) }
    })
}

/// Resolves `file` like `execvp` would into `buf`; `None` = nothing would run.
fn resolve(file: *const c_char, buf: &mut [u8; PATH_MAX]) -> Option<usize> {
    // SAFETY: file is NULL or the caller's NUL-terminated string.
    let f = unsafe { cstr(file) };
    if f.contains(&b'/') {
        if !path::exists(file) {
            return None;
        }
        let mut tmp = [0u8; PATH_MAX];
        let n = path::absolute(f, &mut tmp).len();
        if let (Some(d), Some(s)) = (buf.get_mut(..n), tmp.get(..n)) {
            d.copy_from_slice(s);
        }
        return Some(n);
    }
    let n = path::search(f, buf)?;
    if buf.first() == Some(&b'/') {
        return Some(n);
    }
    // A relative PATH entry: report the absolute program path.
    let mut tmp = [0u8; PATH_MAX];
    let m = path::absolute(buf.get(..n).unwrap_or(&[]), &mut tmp).len();
    if let (Some(d), Some(s)) = (buf.get_mut(..m), tmp.get(..m)) {
        d.copy_from_slice(s);
    }
    Some(m)
}

/// Shared body of `execvp`, `execvpe`, `execlp`: resolve once, ask once.
unsafe fn exec_search(via: &[u8], file: *const c_char, argv: Strs, envp: Option<Strs>) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    let Some(real) = cfg.real.execvpe else {
        return enosys();
    };
    let src = envp.unwrap_or_else(environ_ptr);
    let mut buf = [0u8; PATH_MAX];
    let Some(n) = resolve(file, &mut buf) else {
        set_errno(saved);
        // SAFETY: forwarding the caller's arguments; it fails with ENOENT/EACCES.
        return unsafe { real(file, argv, src) };
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
    run_exec(saved, &call, src, |env| {
        // SAFETY: caller's file/argv and our env array, alive for the call.
        unsafe { real(file, argv, env) }
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

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Strs, envp: Strs) -> c_int {
    let saved = sys::errno();
    let cfg = config::get();
    let Some(real) = cfg.real.fexecve else {
        return enosys();
    };
    let mut buf = [0u8; PATH_MAX];
    let Some(exe) = path::fd_path(fd, &mut buf) else {
        set_errno(saved);
        // SAFETY: forwarding; with no such descriptor it fails with EBADF.
        return unsafe { real(fd, argv, envp) };
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
            // SAFETY: the raw syscall takes the same arguments (glibc < 2.34 has no wrapper).
            None => unsafe {
                libc::syscall(libc::SYS_execveat, dirfd, path, argv, env, flags) as c_int
            },
        }
    };
    // SAFETY: path is NULL or the caller's NUL-terminated string.
    let p = unsafe { cstr(path) };
    let mut buf = [0u8; PATH_MAX];
    let mut dir = [0u8; PATH_MAX];
    let exe: &[u8] = if p.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        match path::fd_path(dirfd, &mut buf) {
            Some(e) => e,
            None => {
                set_errno(saved);
                return real(envp);
            }
        }
    } else if !path::exists_at(dirfd, path, flags) {
        set_errno(saved);
        return real(envp);
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
    with_env(old, |env, changed| {
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
    if !check(&call) {
        set_errno(libc::EPERM);
        return -1;
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
    if !check(&call) {
        set_errno(libc::EPERM);
        return core::ptr::null_mut();
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
    if !path::exists(path) {
        set_errno(saved);
        // SAFETY: forwarding; it fails with ENOENT.
        return unsafe { real(pid, path, file_actions, attrp, argv, envp) };
    }
    let mut abs = [0u8; PATH_MAX];
    // SAFETY: path is non-NULL and NUL-terminated (exists() checked it).
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
    let Some(real) = cfg.real.posix_spawnp else {
        return libc::ENOSYS;
    };
    let mut buf = [0u8; PATH_MAX];
    let Some(n) = resolve(file, &mut buf) else {
        set_errno(saved);
        // SAFETY: forwarding; it fails with ENOENT/EACCES.
        return unsafe { real(pid, file, file_actions, attrp, argv, envp) };
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
    run_spawn(saved, &call, envp, |env| {
        // SAFETY: caller's arguments with our env array, alive for the call.
        unsafe { real(pid, file, file_actions, attrp, argv, env) }
    })
}
