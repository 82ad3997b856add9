//! The notification loop and the wait for the supervised tree.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::memory::{ReadError, Task};
use crate::notify::Listener;
use crate::{Decider, Error, ExecRequest, Finished, Verdict, launch, text_from_bytes};

pub fn run(
    command: &[OsString],
    decider: Arc<dyn Decider>,
    prepare: &dyn Fn(),
) -> Result<Finished, Error> {
    // Orphans of the tree are reparented to us: we can wait for them, and we stay their
    // ancestor, which Yama's ptrace scope 1 requires for reading their memory.
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(Error::Sys {
            what: "becoming a child subreaper",
            source: io::Error::last_os_error(),
        });
    }
    let launched = launch::spawn(command, prepare)?;
    forward_signals(launched.pid);

    let listener = Arc::new(Listener::new(launched.listener.try_clone().map_err(
        |source| Error::Sys {
            what: "duplicating the seccomp listener",
            source,
        },
    )?));
    std::thread::Builder::new()
        .name("rampart-notify".to_owned())
        .spawn(move || serve(&listener, &decider))
        .map_err(|source| Error::Sys {
            what: "starting the notification thread",
            source,
        })?;

    let exec_error = launched.exec_result();
    let code = reap(launched.pid);
    Ok(Finished { code, exec_error })
}

/// The last refused exec of each task. CPython's subprocess (and glibc's execvp on some
/// errors) retries the same argv with every PATH candidate; where two candidates are the
/// same file (`/bin` -> `/usr/bin`), the repeat gets the same answer without asking again,
/// so one refused spawn is one decision, one audit event and one line on stderr.
#[derive(Default)]
struct Refusals {
    last: Mutex<HashMap<u32, Refused>>,
}

/// The program file, its argv and the notification id of a refused exec.
type Refused = (PathBuf, Vec<Vec<u8>>, u64);

impl Refusals {
    fn seen(&self, pid: u32, file: &Path, argv: &[Vec<u8>], id: u64) -> bool {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        // Notification ids only grow; an old entry for a recycled pid never matches a
        // different program and argv by accident in practice, and at worst repeats a no.
        matches!(last.get(&pid), Some((f, a, i)) if f == file && a == argv && *i < id)
    }

    fn record(&self, pid: u32, file: PathBuf, argv: Vec<Vec<u8>>, id: u64) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.len() > 4096 {
            last.clear();
        }
        last.insert(pid, (file, argv, id));
    }
}

/// Serves notifications forever. Every worker thread blocks in `SECCOMP_IOCTL_NOTIF_RECV`
/// itself (the kernel hands each notification to exactly one receiver), so an exec costs
/// no hand-over between threads; a worker that takes a notification while no other is
/// waiting starts one more first. A slow `ask` thus occupies one worker and never holds up
/// the rest of a parallel build, and a sequential loop reuses one warm thread.
fn serve(listener: &Arc<Listener>, decider: &Arc<dyn Decider>) {
    let pool = Arc::new(Pool {
        decider: Arc::clone(decider),
        listener: Arc::clone(listener),
        refusals: Refusals::default(),
        receiving: AtomicUsize::new(0),
    });
    pool.work();
}

struct Pool {
    decider: Arc<dyn Decider>,
    listener: Arc<Listener>,
    refusals: Refusals,
    /// Workers currently waiting in RECV.
    receiving: AtomicUsize,
}

impl Pool {
    fn work(self: &Arc<Self>) {
        loop {
            self.receiving.fetch_add(1, Ordering::SeqCst);
            let notif = self.listener.recv();
            let still_waiting = self.receiving.fetch_sub(1, Ordering::SeqCst) - 1;
            let notif = match notif {
                Ok(n) => n,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ENOENT)) => {
                    continue;
                }
                // EBADF and friends: nothing more will ever arrive.
                Err(_) => return,
            };
            if still_waiting == 0 {
                let next = Arc::clone(self);
                // If no thread can be started, this one still decides its exec and goes
                // back to receiving: slower, never stuck.
                let _ = std::thread::Builder::new()
                    .name("rampart-exec".to_owned())
                    .spawn(move || next.work());
            }
            handle(
                &self.listener,
                self.decider.as_ref(),
                &self.refusals,
                &notif,
            );
        }
    }
}

/// What was read for one exec, plus the raw bytes to compare against a second read.
struct Read {
    request: ExecRequest,
    raw: Vec<Vec<u8>>,
    /// The path names no file: the kernel will fail the exec with ENOENT by itself.
    missing: bool,
    /// The program as the supervisor sees it (through `/proc/<pid>/root`).
    seen: PathBuf,
}

fn handle(
    listener: &Listener,
    decider: &dyn Decider,
    refusals: &Refusals,
    notif: &libc::seccomp_notif,
) {
    let id = notif.id;
    let read = read_exec(notif);
    // Only now is it certain that the pid was not recycled while we read /proc/<pid>.
    if !listener.is_live(id) {
        return;
    }
    let read = match read {
        Ok(read) => read,
        Err(ReadError::Fault) => return listener.fail(id, libc::EFAULT),
        Err(ReadError::BadFd) => return listener.fail(id, libc::EBADF),
        // Live but its /proc entries vanished mid-read: nothing was checked.
        Err(ReadError::Gone) => {
            let why = format!("pid {} disappeared while its exec was read", notif.pid);
            return answer(listener, id, &decider.unchecked(notif.pid, &why));
        }
        Err(ReadError::Unreadable(why)) => {
            let why = format!(
                "cannot read the exec's arguments from pid {}: {why}",
                notif.pid
            );
            return answer(listener, id, &decider.unchecked(notif.pid, &why));
        }
    };
    // Same rule as the preload library: what would not run is not asked about (CPython
    // tries every PATH candidate with execve; one spawn must be one decision).
    if read.missing {
        return listener.allow(id);
    }
    let file = std::fs::canonicalize(&read.seen).unwrap_or_else(|_| read.seen.clone());
    let argv = read.raw.get(1..).unwrap_or_default();
    if refusals.seen(notif.pid, &file, argv, id) {
        return listener.fail(id, libc::EPERM);
    }
    let verdict = decider.decide(&read.request);
    if verdict != Verdict::Allow {
        refusals.record(notif.pid, file, argv.to_vec(), id);
    }
    if verdict == Verdict::Allow {
        // Narrow the race inherent in SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel reads
        // the arguments again after we answer, so another thread of the task could have
        // swapped them while the decision was made. Compare a fresh read just before
        // answering; what remains is the window between this read and the kernel's.
        let again = read_exec(notif);
        let same = matches!(&again, Ok(a) if a.raw == read.raw);
        if !same {
            if !listener.is_live(id) {
                return;
            }
            let why = format!(
                "the arguments of pid {}'s exec changed while it was being decided",
                notif.pid
            );
            return answer(listener, id, &decider.unchecked(notif.pid, &why));
        }
    }
    answer(listener, id, &verdict);
}

fn answer(listener: &Listener, id: u64, verdict: &Verdict) {
    match verdict {
        Verdict::Allow => listener.allow(id),
        Verdict::Deny(_) => listener.fail(id, libc::EPERM),
    }
}

fn read_exec(notif: &libc::seccomp_notif) -> Result<Read, ReadError> {
    let pid = notif.pid;
    let args = notif.data.args;
    let mut task = Task::new(pid);
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .ok()
        .map(|p| p.into_os_string());
    let cwd_bytes = cwd
        .as_ref()
        .map(|c| std::os::unix::ffi::OsStrExt::as_bytes(c.as_os_str()).to_vec());
    let (syscall, path, argv_addr) = if notif.data.nr == libc::SYS_execveat as i32 {
        ("execveat", args[1], args[2])
    } else {
        ("execve", args[0], args[1])
    };
    let path_bytes = task.string(path)?;
    let argv = task.strings(argv_addr)?;

    let mut missing = false;
    let mut seen = PathBuf::from(format!("/proc/{pid}/fd/{}", args[0] as i32));
    let exe: Vec<u8> = if syscall == "execveat" {
        let dirfd = args[0] as i32;
        let flags = args[4] as i32;
        if path_bytes.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
            fd_target(pid, dirfd)?
        } else if path_bytes.starts_with(b"/") {
            path_bytes.clone()
        } else if dirfd == libc::AT_FDCWD {
            join(cwd_bytes.as_deref(), &path_bytes)
        } else {
            let dir = fd_target(pid, dirfd)?;
            join(Some(&dir), &path_bytes)
        }
    } else if path_bytes.starts_with(b"/") {
        path_bytes.clone()
    } else {
        join(cwd_bytes.as_deref(), &path_bytes)
    };
    if !(syscall == "execveat" && path_bytes.is_empty()) {
        // Look through the task's root, so a chroot sees its own files.
        let mut through_root = format!("/proc/{pid}/root").into_bytes();
        through_root.extend_from_slice(&exe);
        seen = PathBuf::from(OsString::from_vec(through_root));
        missing = std::fs::metadata(&seen).is_err_and(|e| {
            e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
        });
    }

    let mut raw = Vec::with_capacity(argv.len() + 1);
    raw.push(path_bytes);
    raw.extend(argv.iter().cloned());
    Ok(Read {
        request: ExecRequest {
            pid,
            ppid: parent_of(pid),
            syscall,
            exe: text_from_bytes(&exe),
            argv: argv.iter().map(|a| text_from_bytes(a)).collect(),
            cwd: cwd_bytes.map(|c| text_from_bytes(&c)),
        },
        raw,
        missing,
        seen,
    })
}

/// `dir/path` without normalisation, `./` dropped (the preload library's rule).
fn join(dir: Option<&[u8]>, path: &[u8]) -> Vec<u8> {
    let path = path.strip_prefix(b"./").unwrap_or(path);
    let mut out = Vec::new();
    if let Some(dir) = dir {
        out.extend_from_slice(dir);
        if dir != b"/" {
            out.push(b'/');
        }
    }
    out.extend_from_slice(path);
    out
}

fn fd_target(pid: u32, fd: i32) -> Result<Vec<u8>, ReadError> {
    match std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) {
        Ok(p) => Ok(p.into_os_string().into_vec()),
        // The descriptor is not open (or the task is gone, which the caller notices). It is
        // refused here rather than let through: another thread could open it meanwhile.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ReadError::BadFd),
        Err(e) => Err(ReadError::Unreadable(format!("/proc/{pid}/fd/{fd}: {e}"))),
    }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain anything, so split after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for every process in the tree (they are all our children or reparented to us)
/// and returns the command's status.
fn reap(command: libc::pid_t) -> i32 {
    let mut code = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local.
        let pid = unsafe { libc::waitpid(-1, &raw mut status, 0) };
        if pid < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => return code,
            }
        }
        if pid == command {
            code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                code
            };
        }
    }
}

static COMMAND_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = COMMAND_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Ctrl-C and Ctrl-\ reach the whole foreground process group, the command included; the
/// supervisor must outlive them or every later exec in the tree fails with ENOSYS. SIGTERM
/// and SIGHUP aimed at the supervisor are passed on to the command.
fn forward_signals(command: libc::pid_t) {
    COMMAND_PID.store(command, Ordering::Relaxed);
    // SAFETY: installing SIG_IGN or an async-signal-safe handler (it only calls kill).
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        let handler = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGHUP, handler);
    }
}
