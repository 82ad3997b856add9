//! The seccomp listener: receive notifications, check they are still live, answer them.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (not in the libc crate).
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;

#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    pub fn new(fd: OwnedFd) -> Listener {
        Listener { fd }
    }

    /// Asks the kernel (Linux 6.6+) to wake the receiving worker on the CPU of the task
    /// that execs, and the task, once answered, on the worker's: the task waits for the
    /// answer anyway, so its CPU is free, and a wake-up there costs a few microseconds
    /// where waking another, idle CPU costs tens (most of what the supervisor adds to an
    /// exec on a small VM). Only placement changes; older kernels refuse it (EINVAL) and
    /// the supervisor works as before.
    pub fn wake_on_the_task_s_cpu(&self) {
        // SAFETY: the ioctl takes its flags by value and touches no memory of ours.
        unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        };
    }

    /// Blocks for the next notification. `ENOENT` (the task died before it was received)
    /// and `EINTR` are the caller's to retry.
    pub fn recv(&self) -> io::Result<libc::seccomp_notif> {
        // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed on input.
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl writes one seccomp_notif into `notif`, whose size is encoded
        // in the request number.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &raw mut notif,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(notif)
    }

    /// Whether the notification still belongs to a waiting task: after this returns true,
    /// what was read from `/proc/<pid>` belonged to that task, not to a recycled pid.
    pub fn is_live(&self, id: u64) -> bool {
        // SAFETY: the ioctl reads one u64 from `id`.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &raw const id,
            )
        };
        rc == 0
    }

    /// Lets the syscall run as issued.
    pub fn allow(&self, id: u64) {
        self.send(id, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32);
    }

    /// Fails the syscall with `errno`.
    pub fn fail(&self, id: u64, errno: i32) {
        self.send(id, -errno, 0);
    }

    fn send(&self, id: u64, error: i32, flags: u32) {
        let resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error,
            flags,
        };
        // SAFETY: the ioctl reads one seccomp_notif_resp. Its only failure that matters,
        // ENOENT, means the task is gone (killed while waiting): nothing left to answer.
        unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &raw const resp,
            )
        };
    }
}
