//! Passing signals on and waiting: the launcher, the outer process and init each stand
//! between a sender and CMD, so each passes what it gets to the next one down.
//!
//! A signal the kernel generated (`SI_KERNEL`: Ctrl-C, Ctrl-\, Ctrl-Z, a window resize, a
//! hang-up) already went to the whole foreground process group — CMD and its children
//! included, whatever their PID namespace — so it is not passed on again (a program must
//! not see one Ctrl-C twice). A signal a process sent to the launcher alone (`kill`,
//! `timeout`, a CI runner) is passed on. On SIGTSTP the launcher also stops itself, so the
//! shell's job control sees the job stop.

use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

/// The signals passed on.
pub const RELAYED: [libc::c_int; 10] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGALRM,
];

/// Who is relaying: only the launcher stops itself on SIGTSTP.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Launcher = 1,
    Outer = 2,
    Init = 3,
}

static TARGET: AtomicI32 = AtomicI32::new(0);
static ROLE: AtomicU8 = AtomicU8::new(0);

extern "C" fn relay(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let code = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_code }
    };
    let target = TARGET.load(Ordering::Relaxed);
    if code != libc::SI_KERNEL && target > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(target, sig) };
    }
    if sig == libc::SIGTSTP && ROLE.load(Ordering::Relaxed) == Role::Launcher as u8 {
        // SAFETY: stopping ourselves, as SIGTSTP's default action would have.
        unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
    }
}

/// Aims the installed handler at `target` (0: passes nothing on yet).
pub fn set_target(target: libc::pid_t) {
    TARGET.store(target, Ordering::Relaxed);
}

/// Installs the relaying handler for [`RELAYED`], aimed at `target`. Called before the
/// fork that creates the target (with 0, then [`set_target`]): a signal that arrives
/// while the child starts must not find the default action (which for init means
/// "dropped", and for the others "die").
pub fn install(target: libc::pid_t, role: Role) {
    TARGET.store(target, Ordering::Relaxed);
    ROLE.store(role as u8, Ordering::Relaxed);
    for sig in RELAYED {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler only calls
        // async-signal-safe functions and reads atomics.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = relay
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(sig, &raw const action, std::ptr::null_mut());
        }
    }
}

/// The shell's number for a wait status: the exit code, or 128 + the killing signal.
pub fn code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    }
}

/// Waits for `child` (retrying on EINTR) and returns its shell status.
pub fn wait_for(child: libc::pid_t) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local.
        let pid = unsafe { libc::waitpid(child, &raw mut status, 0) };
        if pid == child {
            return code(status);
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 125;
        }
    }
}

/// The outer process and init end here: relay to `child`, reap, and exit with `child`'s
/// status. Init reaps every orphan of the tree too; when CMD ends, init exits and the
/// kernel ends whatever is left in the PID namespace (like `docker run --init`).
pub fn become_relay(child: libc::pid_t, role: Role) -> ! {
    set_target(child);
    // Nothing these processes hold is for the tree: the pipes of the setup, the
    // supervisor's socket, the launcher's connection. (CMD got its own copies.)
    // SAFETY: closing descriptors this process owns; none is used below.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let any = if role == Role::Init { -1 } else { child };
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local.
        let pid = unsafe { libc::waitpid(any, &raw mut status, 0) };
        if pid == child {
            // SAFETY: _exit ends this process without running anything of the launcher's.
            unsafe { libc::_exit(code(status)) };
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // SAFETY: as above.
            unsafe { libc::_exit(125) };
        }
    }
}
