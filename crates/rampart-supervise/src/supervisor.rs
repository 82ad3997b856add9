//! The notification loop and the wait for the supervised tree.

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::memory::{ReadError, Task};
use crate::notify::Listener;
use crate::resolve::{self, Fail, FileId};
use crate::{Decider, Error, ExecRequest, Finished, Verdict, launch, text_from_bytes};

pub fn run(
    command: &[OsString],
    decider: Arc<dyn Decider>,
    prepare: &dyn Fn(),
) -> Result<Finished, Error> {
    // Before the child (and anything it starts) exists: a non-dumpable process's
    // /proc/<pid>/{fd,mem,environ} belong to root and ptrace access to it needs
    // CAP_SYS_PTRACE, so a task of the same user cannot list our descriptors, copy the
    // seccomp listener with pidfd_getfd and answer its own execs, or read the token from
    // our memory. (Reading the tree's memory is unaffected: that depends on *their*
    // dumpability; the child makes itself dumpable again before its exec is decided.)
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(Error::Sys {
            what: "making the supervisor non-dumpable",
            source: io::Error::last_os_error(),
        });
    }
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
    // Best effort: without it (kernels before 6.6) every exec just costs more wake-ups.
    listener.wake_on_the_task_s_cpu();
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
type Refused = (FileId, Vec<Vec<u8>>, u64);

impl Refusals {
    fn seen(&self, pid: u32, file: FileId, argv: &[Vec<u8>], id: u64) -> bool {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        // Notification ids only grow; an old entry for a recycled pid never matches a
        // different program and argv by accident in practice, and at worst repeats a no.
        matches!(last.get(&pid), Some((f, a, i)) if *f == file && a == argv && *i < id)
    }

    fn record(&self, pid: u32, file: FileId, argv: Vec<Vec<u8>>, id: u64) {
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
/// waiting wakes a parked one or starts one more first. A slow `ask` thus occupies one
/// worker and never holds up the rest of a parallel build, and a sequential loop reuses
/// two warm threads.
///
/// At most [`RECEIVERS`] workers wait in RECV; the others park on a condition variable.
/// The kernel wakes *every* thread waiting in RECV for each notification (one gets it,
/// the rest go back to sleep), so after a burst of parallel execs had grown the pool, each
/// later exec would otherwise cost one wasted wake-up per idle worker.
fn serve(listener: &Arc<Listener>, decider: &Arc<dyn Decider>) {
    let pool = Arc::new(Pool {
        decider: Arc::clone(decider),
        listener: Arc::clone(listener),
        refusals: Refusals::default(),
        receiving: AtomicUsize::new(0),
        parked: Mutex::new(Parked::default()),
        wake: Condvar::new(),
    });
    pool.work();
}

/// Workers waiting in RECV at most, when idle: two, so that in a sequential loop the one
/// that takes an exec always leaves another receiving without waking anyone.
const RECEIVERS: usize = 2;

struct Pool {
    decider: Arc<dyn Decider>,
    listener: Arc<Listener>,
    refusals: Refusals,
    /// Workers currently waiting in RECV.
    receiving: AtomicUsize,
    parked: Mutex<Parked>,
    wake: Condvar,
}

/// Workers parked, and how many of them have been called back to receiving.
#[derive(Default)]
struct Parked {
    idle: usize,
    called: usize,
}

impl Pool {
    fn work(self: &Arc<Self>) {
        loop {
            self.park();
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
                self.another();
            }
            handle(
                &self.listener,
                self.decider.as_ref(),
                &self.refusals,
                &notif,
            );
        }
    }

    /// Waits while [`RECEIVERS`] others are receiving, until [`Pool::another`] calls.
    /// Checked without the lock: a worker that parks just as the receivers all got busy
    /// is not lost, because the last of them, seeing nobody receiving, then finds no
    /// parked worker and starts a new one.
    fn park(&self) {
        if self.receiving.load(Ordering::SeqCst) < RECEIVERS {
            return;
        }
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        parked.idle += 1;
        while parked.called == 0 {
            parked = self
                .wake
                .wait(parked)
                .unwrap_or_else(PoisonError::into_inner);
        }
        parked.called -= 1;
        parked.idle -= 1;
    }

    /// Gets one more worker receiving: a parked one, else a new thread.
    fn another(self: &Arc<Self>) {
        {
            let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
            if parked.idle > parked.called {
                parked.called += 1;
                self.wake.notify_one();
                return;
            }
        }
        let next = Arc::clone(self);
        // If no thread can be started, this one still decides its exec and goes back to
        // receiving: slower, never stuck.
        let _ = std::thread::Builder::new()
            .name("rampart-exec".to_owned())
            .spawn(move || next.work());
    }
}

/// What was read for one exec: the path and argv as bytes (compared with a second read
/// before an allow), and the program they name.
struct Read {
    syscall: &'static str,
    raw: Vec<Vec<u8>>,
    /// The name the policy sees for the program (see [`resolve::Target::name`]).
    name: Vec<u8>,
    /// The program the task's exec will run, found from the task's own view.
    file: FileId,
}

fn handle(
    listener: &Listener,
    decider: &dyn Decider,
    refusals: &Refusals,
    notif: &libc::seccomp_notif,
) {
    let id = notif.id;
    let pid = notif.pid;
    let cwd = read_link(pid, "cwd");
    let read = read_exec(notif);
    // Only for an exec that will be asked about (a failing PATH candidate costs no more).
    let ppid = read.as_ref().ok().and_then(|_| parent_of(pid));
    // Only now is it certain that the pid was not recycled while we read /proc/<pid>.
    if !listener.is_live(id) {
        return;
    }
    let read = match read {
        Ok(read) => read,
        Err(ReadError::Fault) => return listener.fail(id, libc::EFAULT),
        Err(ReadError::BadFd) => return listener.fail(id, libc::EBADF),
        // What would not run is not asked about (CPython tries every PATH candidate; one
        // spawn must be one decision), and it is failed here, never continued: the kernel
        // would look again, and a file renamed into place meanwhile would run unchecked.
        Err(ReadError::Exec(errno)) => return listener.fail(id, errno),
        // Live but its /proc entries vanished mid-read: nothing was checked.
        Err(ReadError::Gone) => {
            let why = format!("pid {pid} disappeared while its exec was read");
            return answer(listener, id, &decider.unchecked(pid, &why));
        }
        Err(ReadError::Unseeable(why)) => {
            let why = format!("cannot look at the program pid {pid} would run: {why}");
            return answer(listener, id, &decider.unchecked(pid, &why));
        }
        Err(ReadError::Unreadable(why)) => {
            let why = format!("cannot read the exec's arguments from pid {pid}: {why}");
            return answer(listener, id, &decider.unchecked(pid, &why));
        }
    };
    let argv = read.raw.get(1..).unwrap_or_default();
    if refusals.seen(pid, read.file, argv, id) {
        return listener.fail(id, libc::EPERM);
    }
    let request = ExecRequest {
        pid,
        ppid,
        syscall: read.syscall,
        exe: text_from_bytes(&read.name),
        argv: argv.iter().map(|a| text_from_bytes(a)).collect(),
        cwd: cwd.map(|c| text_from_bytes(&c)),
    };
    let verdict = decider.decide(&request);
    if verdict != Verdict::Allow {
        refusals.record(pid, read.file, argv.to_vec(), id);
    }
    if verdict == Verdict::Allow {
        // Narrow the race inherent in SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel reads
        // the arguments and looks the path up again after we answer, so another thread
        // could have swapped them (or another process renamed a file into place) while
        // the decision was made. Compare a fresh read and lookup just before answering;
        // what remains is the window between this read and the kernel's.
        let again = read_exec(notif);
        let same = matches!(&again, Ok(a) if a.raw == read.raw && a.file == read.file);
        if !same {
            if !listener.is_live(id) {
                return;
            }
            let why =
                format!("the arguments of pid {pid}'s exec changed while it was being decided");
            return answer(listener, id, &decider.unchecked(pid, &why));
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

/// Reads the exec's path and argv from the task's memory and finds the program it names.
/// Only what the second read before an allow compares is read here.
fn read_exec(notif: &libc::seccomp_notif) -> Result<Read, ReadError> {
    let pid = notif.pid;
    let args = notif.data.args;
    let execveat = notif.data.nr == libc::SYS_execveat as i32;
    let (syscall, path, argv_addr) = if execveat {
        ("execveat", args[1], args[2])
    } else {
        ("execve", args[0], args[1])
    };
    let (path_bytes, argv) = Task::new(pid).exec_args(path, argv_addr)?;

    let (dirfd, flags) = if execveat {
        (Some(args[0] as i32), args[4] as i32)
    } else {
        (None, 0)
    };
    let start = resolve::start(dirfd, &path_bytes, flags);
    let target =
        resolve::resolve(pid, &start, flags & libc::AT_SYMLINK_NOFOLLOW != 0).map_err(|fail| {
            match fail {
                Fail::Errno(libc::EBADF) => ReadError::BadFd,
                Fail::Errno(errno) => ReadError::Exec(errno),
                Fail::Unseeable(why) => ReadError::Unseeable(why),
                Fail::Gone => ReadError::Gone,
            }
        })?;

    let mut raw = Vec::with_capacity(argv.len() + 1);
    raw.push(path_bytes);
    raw.extend(argv);
    Ok(Read {
        syscall,
        raw,
        name: target.name,
        file: target.id,
    })
}

/// The target of the symlink `/proc/<pid>/<what>`, read with one `readlink` into a
/// buffer on the stack.
fn read_link(pid: u32, what: &str) -> Option<Vec<u8>> {
    let path = CString::new(format!("/proc/{pid}/{what}")).ok()?;
    let mut buf = [0u8; libc::PATH_MAX as usize];
    // SAFETY: `path` is NUL-terminated; readlink writes at most `buf.len()` bytes.
    let n = unsafe { libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).ok()?;
    // A target that fills the buffer may have been cut: no name rather than a wrong one.
    if n >= buf.len() {
        return None;
    }
    buf.get(..n).map(<[u8]>::to_vec)
}

/// The parent of `pid`, from `/proc/<pid>/stat` read with one `read` into a buffer on the
/// stack (the line is far shorter than the buffer: a 16-byte name and 52 numbers).
fn parent_of(pid: u32) -> Option<u32> {
    let path = CString::new(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: `path` is NUL-terminated; open returns a new descriptor or -1.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: open just returned this descriptor to us alone.
    let file = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut buf = [0u8; 2048];
    // SAFETY: read writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::read(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    let stat = buf.get(..usize::try_from(n).ok()?)?;
    // "pid (comm) state ppid ...": comm may contain anything, so split after the last ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
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
/// supervisor must outlive them or every later exec in the tree fails with ENOSYS. SIGTERM,
/// SIGHUP, SIGUSR1 and SIGUSR2 aimed at the supervisor are passed on to the command, as a
/// transparent wrapper would (a program that signals its parent — "ready", "reload" —
/// used to kill the supervisor with USR1).
fn forward_signals(command: libc::pid_t) {
    COMMAND_PID.store(command, Ordering::Relaxed);
    // SAFETY: installing SIG_IGN or an async-signal-safe handler (it only calls kill).
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        let handler = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGHUP, handler);
        libc::signal(libc::SIGUSR1, handler);
        libc::signal(libc::SIGUSR2, handler);
    }
}
