//! Starting the command: fork; in the child set `PR_SET_NO_NEW_PRIVS`, install the filter,
//! hand the listener to the parent over a socketpair (SCM_RIGHTS) and exec the command —
//! whose own exec is already the first notification the parent decides.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use libc::c_int;

use crate::{Error, filter};

/// Message tags on the socketpair, child to parent.
const TAG_LISTENER: u8 = b'L';
const TAG_SETUP_FAILED: u8 = b'S';
const TAG_EXEC_FAILED: u8 = b'X';

#[derive(Debug)]
pub struct Launched {
    pub pid: libc::pid_t,
    pub listener: OwnedFd,
    /// Parent end of the socketpair: end-of-file once the command's exec succeeded (the
    /// child's end is close-on-exec), or the errno if it failed.
    status: OwnedFd,
}

impl Launched {
    /// Blocks until the command's own exec has succeeded (`None`) or failed. Notifications
    /// must be served meanwhile: that exec waits for its decision.
    pub fn exec_result(&self) -> Option<io::Error> {
        let mut msg = [0u8; 5];
        loop {
            // SAFETY: reading into a local buffer of the given length from our own socket.
            let n = unsafe { libc::read(self.status.as_raw_fd(), msg.as_mut_ptr().cast(), 5) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if n == 5 && msg[0] == TAG_EXEC_FAILED {
                let errno = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
                return Some(io::Error::from_raw_os_error(errno));
            }
            return None;
        }
    }
}

fn sys(what: &'static str) -> Error {
    Error::Sys {
        what,
        source: io::Error::last_os_error(),
    }
}

pub fn spawn(command: &[OsString], prepare: &dyn Fn()) -> Result<Launched, Error> {
    // Everything the child needs is prepared here: after fork it must not allocate.
    let words: Vec<CString> = command
        .iter()
        .map(|w| CString::new(w.as_bytes()).map_err(|_| Error::NulByte(w.clone())))
        .collect::<Result<_, _>>()?;
    let Some(program) = words.first() else {
        return Err(Error::NoCommand);
    };
    let mut argv: Vec<*const libc::c_char> = words.iter().map(|w| w.as_ptr()).collect();
    argv.push(std::ptr::null());

    let mut pair = [0 as c_int; 2];
    // SAFETY: `pair` has room for the two descriptors socketpair writes.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(sys("creating the supervisor's socketpair"));
    }
    // SAFETY: socketpair succeeded, so both descriptors are open and owned by nobody else.
    let (parent_end, child_end) =
        unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };

    // SAFETY: fork in a process the caller keeps single-threaded (documented on `run`);
    // the child only makes async-signal-safe calls on data prepared above, then execs or
    // exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(sys("fork"));
    }
    if pid == 0 {
        child(
            child_end.as_raw_fd(),
            program.as_ptr(),
            argv.as_ptr(),
            prepare,
        );
    }
    drop(child_end);

    match receive_listener(parent_end.as_raw_fd()) {
        Ok(listener) => Ok(Launched {
            pid,
            listener,
            status: parent_end,
        }),
        Err(e) => {
            // SAFETY: reaping our own child, which exits right after reporting the failure.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            Err(e)
        }
    }
}

/// The forked child. Never returns.
fn child(
    sock: RawFd,
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    prepare: &dyn Fn(),
) -> ! {
    let report = |tag: u8, errno: c_int| {
        let b = errno.to_ne_bytes();
        let msg = [tag, b[0], b[1], b[2], b[3]];
        // SAFETY: writing a local buffer to our socket; the result does not matter, we exit.
        unsafe { libc::write(sock, msg.as_ptr().cast(), msg.len()) };
    };
    let errno = || {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // The supervisor is non-dumpable and fork copied that; the command's own exec is read
    // from this process's memory before the exec resets it, which a supervisor without
    // CAP_SYS_PTRACE may only do if this copy is dumpable. Nothing of the command runs
    // yet; the listener created below is closed before the exec.
    // Dumpable again before `prepare` too: `--protect` writes this process's (and its
    // children's) uid_map/gid_map, which a non-dumpable process's /proc files refuse.
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) } != 0 {
        report(TAG_SETUP_FAILED, errno());
        // SAFETY: _exit is async-signal-safe and ends the child without running atexit.
        unsafe { libc::_exit(125) };
    }
    prepare();
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        report(TAG_SETUP_FAILED, errno());
        // SAFETY: _exit is async-signal-safe and ends the child without running atexit.
        unsafe { libc::_exit(125) };
    }
    let listener = match filter::install() {
        Ok(fd) => fd,
        Err(e) => {
            report(TAG_SETUP_FAILED, e);
            // SAFETY: as above.
            unsafe { libc::_exit(125) };
        }
    };
    if send_fd(sock, listener).is_err() {
        // SAFETY: as above.
        unsafe { libc::_exit(125) };
    }
    // The command must never hold its own listener: it could answer its own execs.
    // SAFETY: closing a descriptor this child owns.
    unsafe { libc::close(listener) };
    // Nor a credential: the supervisor asks the server for the tree, which needs none, so
    // a token in the launcher's environment (the admin token a user exported) is not
    // handed to the agent. The process is single-threaded here (`run`'s contract), so
    // glibc's environment lock is free.
    // SAFETY: a NUL-terminated literal; unsetenv does not allocate.
    unsafe { libc::unsetenv(c"RAMPART_TOKEN".as_ptr()) };
    // SAFETY: program and argv are NUL-terminated strings and a NULL-terminated array
    // built before fork and still alive in this copy of the address space.
    unsafe { libc::execvp(program, argv) };
    let e = errno();
    report(TAG_EXEC_FAILED, e);
    // SAFETY: as above.
    unsafe { libc::_exit(if e == libc::ENOENT { 127 } else { 126 }) }
}

/// SCM_RIGHTS control buffer, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct ControlBuffer([u8; 64]);

fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), ()> {
    let mut tag = [TAG_LISTENER, 0, 0, 0, 0];
    let mut iov = libc::iovec {
        iov_base: tag.as_mut_ptr().cast(),
        iov_len: tag.len(),
    };
    let mut control = ControlBuffer([0; 64]);
    // SAFETY: an all-zero msghdr is a valid empty message; fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<c_int>() as u32) } as usize;
    // SAFETY: msg_control points at 64 aligned bytes, more than CMSG_SPACE(4), so the
    // first header and its data are inside the buffer.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if cmsg.is_null() {
            return Err(());
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), fd);
    }
    // SAFETY: msg describes valid local buffers.
    let n = unsafe { libc::sendmsg(sock, &raw const msg, libc::MSG_NOSIGNAL) };
    if n < 0 { Err(()) } else { Ok(()) }
}

fn receive_listener(sock: RawFd) -> Result<OwnedFd, Error> {
    let mut data = [0u8; 5];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = ControlBuffer([0; 64]);
    // SAFETY: an all-zero msghdr is a valid empty message; fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len();
    let n = loop {
        // SAFETY: msg describes valid local buffers; MSG_CMSG_CLOEXEC keeps the listener
        // out of anything this process might start.
        let n = unsafe { libc::recvmsg(sock, &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break n;
    };
    if n < 0 {
        return Err(sys("receiving the seccomp listener from the child"));
    }
    let errno = i32::from_ne_bytes([data[1], data[2], data[3], data[4]]);
    match data[0] {
        TAG_LISTENER if n == 5 => {}
        TAG_SETUP_FAILED if n == 5 && errno == libc::EBUSY => return Err(Error::Nested),
        TAG_SETUP_FAILED if n == 5 => {
            return Err(Error::Filter(io::Error::from_raw_os_error(errno)));
        }
        _ => {
            return Err(Error::Sys {
                what: "receiving the seccomp listener from the child",
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "the child exited early"),
            });
        }
    }
    // SAFETY: the control buffer was filled by recvmsg; CMSG_FIRSTHDR/CMSG_DATA stay
    // within msg_controllen, and an SCM_RIGHTS message carries one int here.
    let fd = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            -1
        } else {
            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>())
        }
    };
    if fd < 0 {
        return Err(Error::Sys {
            what: "receiving the seccomp listener from the child",
            source: io::Error::new(io::ErrorKind::InvalidData, "no descriptor attached"),
        });
    }
    // SAFETY: the kernel installed this descriptor in our table for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
