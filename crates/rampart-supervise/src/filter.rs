//! The seccomp filter: `execve` and `execveat` of the native ABI go to the supervisor; the
//! same calls from other ABIs (i386 via `int 0x80`, x32) fail with `EPERM`, because the
//! supervisor decodes native arguments only. Everything else is allowed untouched.

use libc::{c_int, sock_filter, sock_fprog};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `execve`/`execveat` in the x32 table (the compat entry points) and the native numbers
/// with the x32 bit set.
const X32_EXECVE: u32 = 520;
const X32_EXECVEAT: u32 = 545;
const I386_EXECVE: u32 = 11;
const I386_EXECVEAT: u32 = 358;

// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

const RET_NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA);

const fn load(offset: u32) -> sock_filter {
    sock_filter {
        code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

/// Jumps are relative to the next instruction.
const fn jump(op: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: (libc::BPF_JMP | op | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

const fn ret(k: u32) -> sock_filter {
    sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const JEQ: u32 = libc::BPF_JEQ;
const JGE: u32 = libc::BPF_JGE;
const NR_EXECVE: u32 = libc::SYS_execve as u32;
const NR_EXECVEAT: u32 = libc::SYS_execveat as u32;

/// The program. Indices in comments; every jump offset is `target - (index + 1)`.
pub const PROGRAM: [sock_filter; 18] = [
    /* 0 */ load(OFFSET_ARCH),
    /* 1 */ jump(JEQ, AUDIT_ARCH_X86_64, 0, 9), // not x86_64 -> 11
    /* 2 */ load(OFFSET_NR),
    /* 3 */ jump(JEQ, NR_EXECVE, 12, 0), // -> 16 notify
    /* 4 */ jump(JEQ, NR_EXECVEAT, 11, 0), // -> 16 notify
    /* 5 */ jump(JGE, X32_SYSCALL_BIT, 0, 4), // native, not exec -> 10 allow
    /* 6 */ jump(JEQ, X32_SYSCALL_BIT | NR_EXECVE, 10, 0), // -> 17 EPERM
    /* 7 */ jump(JEQ, X32_SYSCALL_BIT | NR_EXECVEAT, 9, 0), // -> 17
    /* 8 */ jump(JEQ, X32_SYSCALL_BIT | X32_EXECVE, 8, 0), // -> 17
    /* 9 */ jump(JEQ, X32_SYSCALL_BIT | X32_EXECVEAT, 7, 0), // -> 17
    /* 10 */ ret(RET_ALLOW),
    /* 11 */ jump(JEQ, AUDIT_ARCH_I386, 0, 5), // unknown ABI -> 17 EPERM
    /* 12 */ load(OFFSET_NR),
    /* 13 */ jump(JEQ, I386_EXECVE, 3, 0), // -> 17
    /* 14 */ jump(JEQ, I386_EXECVEAT, 2, 0), // -> 17
    /* 15 */ ret(RET_ALLOW),
    /* 16 */ ret(RET_NOTIFY),
    /* 17 */ ret(RET_EPERM),
];

/// Installs [`PROGRAM`] on the calling thread and returns the listener descriptor, or the
/// errno. Async-signal-safe (no allocation): it runs in the forked child. The caller must
/// have set `PR_SET_NO_NEW_PRIVS` (or hold CAP_SYS_ADMIN).
///
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (Linux 6.0) is asked for first: without it a
/// signal that interrupts the waiting exec (Go's runtime preempts with SIGURG all the
/// time) withdraws the notification and restarts the syscall, so one exec can arrive many
/// times. Older kernels reject the flag with EINVAL; then the filter is installed without it
/// (still correct, occasionally asking twice).
pub fn install() -> Result<c_int, c_int> {
    let prog = sock_fprog {
        len: PROGRAM.len() as u16,
        filter: PROGRAM.as_ptr().cast_mut(),
    };
    let mut flags =
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    loop {
        // SAFETY: `prog` points at a valid, 'static BPF program for the duration of the call;
        // seccomp(2) copies it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &raw const prog,
            )
        };
        if fd >= 0 {
            return Ok(fd as c_int);
        }
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
        if errno == libc::EINVAL && flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
            flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
            continue;
        }
        return Err(errno);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Follows the program for one (arch, nr) pair like the kernel would.
    fn verdict(arch: u32, nr: u32) -> u32 {
        let mut acc = 0;
        let mut pc = 0usize;
        loop {
            let ins = PROGRAM[pc];
            let code = u32::from(ins.code);
            if code == (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) {
                acc = if ins.k == OFFSET_ARCH { arch } else { nr };
                pc += 1;
            } else if code == (libc::BPF_RET | libc::BPF_K) {
                return ins.k;
            } else {
                let taken = if code & 0xf0 == JGE {
                    acc >= ins.k
                } else {
                    acc == ins.k
                };
                pc += 1 + usize::from(if taken { ins.jt } else { ins.jf });
            }
        }
    }

    #[test]
    fn exec_calls_of_the_native_abi_are_notified() {
        assert_eq!(verdict(AUDIT_ARCH_X86_64, 59), RET_NOTIFY);
        assert_eq!(verdict(AUDIT_ARCH_X86_64, 322), RET_NOTIFY);
        assert_eq!(verdict(AUDIT_ARCH_X86_64, 0), RET_ALLOW);
        assert_eq!(verdict(AUDIT_ARCH_X86_64, 57), RET_ALLOW);
    }

    #[test]
    fn other_abis_cannot_exec() {
        for nr in [59, 322, 520, 545] {
            assert_eq!(verdict(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | nr), RET_EPERM);
        }
        assert_eq!(verdict(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1), RET_ALLOW);
        assert_eq!(verdict(AUDIT_ARCH_I386, 11), RET_EPERM);
        assert_eq!(verdict(AUDIT_ARCH_I386, 358), RET_EPERM);
        assert_eq!(verdict(AUDIT_ARCH_I386, 4), RET_ALLOW);
        assert_eq!(verdict(0xc000_00b7, 221), RET_EPERM);
    }
}
