//! Which file an exec will run, found from the calling task's own point of view.
//!
//! The supervisor is another process: its `/proc/self`, `/dev/fd`, working directory and
//! root are not the task's. Looking a path up as ourselves finds the wrong file or none,
//! and "none" used to mean "let the kernel fail it" — while the kernel, looking as the
//! task, found and ran a denied program. So every lookup starts from the task's own
//! objects, opened through `/proc/<tid>/{root,cwd,fd/N}` (per thread: a thread may have
//! its own cwd, root and descriptor table), and:
//!
//! - when the task's root is ours, one `openat2(RESOLVE_NO_MAGICLINKS)` answers (absolute
//!   paths with `RESOLVE_IN_ROOT` on the task's root, relative ones from its cwd or dirfd);
//! - otherwise (a chroot, another mount namespace), or when that lookup fails, or when it
//!   ended inside procfs, the path is walked one component at a time: `..` stops at the
//!   task's root, absolute symlinks restart there, procfs's `self` and `thread-self` name
//!   the task (not us), and magic links (`/proc/<pid>/cwd`, `fd/N`, `root`, `exe`) are
//!   followed to the object they stand for.
//!
//! A lookup that fails gives the task's errno (the exec fails with it, never runs
//! unchecked); one we are not allowed to make gives [`Fail::Unseeable`] (refused).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

/// The most symlinks one lookup follows (the kernel's MAXSYMLINKS).
const MAX_LINKS: u32 = 40;
/// procfs's root directory inode (PROC_ROOT_INO).
const PROC_ROOT_INO: u64 = 1;

/// Where the lookup of an exec's path starts, from the syscall's arguments alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start<'a> {
    /// `execveat(fd, "", …, AT_EMPTY_PATH)`: the descriptor itself is the program.
    Fd(i32),
    /// An absolute path: from the task's root.
    Root(&'a [u8]),
    /// A relative path with `AT_FDCWD` (or `execve`): from the task's working directory.
    Cwd(&'a [u8]),
    /// A relative path with a directory descriptor.
    Dir(i32, &'a [u8]),
    /// The exec fails with this errno whatever the file system holds (an empty path).
    Fails(i32),
}

/// The start of the lookup for `execve(path)` (`dirfd` `None`) or
/// `execveat(dirfd, path, …, flags)`.
pub fn start(dirfd: Option<i32>, path: &[u8], flags: i32) -> Start<'_> {
    // The kernel refuses such a path before looking (and a long one would cost a long walk).
    if path.len() >= libc::PATH_MAX as usize {
        return Start::Fails(libc::ENAMETOOLONG);
    }
    if path.is_empty() {
        return match dirfd {
            Some(fd) if flags & libc::AT_EMPTY_PATH != 0 => Start::Fd(fd),
            _ => Start::Fails(libc::ENOENT),
        };
    }
    if path.starts_with(b"/") {
        return Start::Root(path);
    }
    match dirfd {
        Some(fd) if fd != libc::AT_FDCWD => Start::Dir(fd, path),
        _ => Start::Cwd(path),
    }
}

/// What procfs's `self` and `thread-self` name for the task `tgid`/`tid`, as a relative
/// symlink target; `None` for every other name.
pub fn proc_self(name: &[u8], tgid: u32, tid: u32) -> Option<Vec<u8>> {
    match name {
        b"self" => Some(tgid.to_string().into_bytes()),
        b"thread-self" => Some(format!("{tgid}/task/{tid}").into_bytes()),
        _ => None,
    }
}

/// The path's components in order; a trailing slash becomes a final `.` (so a file
/// named with one fails with ENOTDIR, as in the kernel).
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect();
    if path.ends_with(b"/") {
        out.push(b".".to_vec());
    }
    out
}

/// The program an exec will run.
#[derive(Debug)]
pub struct Target {
    /// The name shown to the policy: the path as the task gave it, made absolute against
    /// its cwd or dirfd; where the lookup went through a magic link (`/proc/self/cwd`,
    /// `/dev/fd/N`), the link's target takes the place of everything before it.
    pub name: Vec<u8>,
    /// The file, to tell whether a second lookup found the same one.
    pub id: FileId,
}

/// A file's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// The mount (statx `STATX_MNT_ID`), when the kernel says.
    pub mnt: Option<u64>,
}

/// Why no target was found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fail {
    /// The task's own lookup fails with this errno: so must its exec.
    Errno(i32),
    /// We may not look (a task we cannot inspect, a /proc of a pid namespace it is not in).
    Unseeable(String),
    /// The task's /proc entry is gone.
    Gone,
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `openat(dir, name, flags | O_CLOEXEC)`.
fn open_at(dir: RawFd, name: &[u8], flags: i32) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
    // SAFETY: `name` is NUL-terminated; openat returns a new descriptor or -1.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat just returned this descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_path(path: &str, flags: i32) -> io::Result<OwnedFd> {
    open_at(libc::AT_FDCWD, path.as_bytes(), libc::O_PATH | flags)
}

fn stat(fd: RawFd) -> Result<libc::stat, Fail> {
    // SAFETY: an all-zero stat is valid plain data; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open; fstat writes one struct stat.
    if unsafe { libc::fstat(fd, &raw mut st) } != 0 {
        return Err(Fail::Errno(errno_of(&io::Error::last_os_error())));
    }
    Ok(st)
}

/// The identity of the file `fd` names ([`file_status`]'s: one `statx`).
fn file_id(fd: RawFd) -> Result<FileId, Fail> {
    file_status(fd).map(|s| s.id)
}

fn same(a: FileId, b: FileId) -> bool {
    a.dev == b.dev && a.ino == b.ino && (a.mnt.is_none() || b.mnt.is_none() || a.mnt == b.mnt)
}

fn on_procfs(fd: RawFd) -> bool {
    // SAFETY: an all-zero statfs is valid plain data; fstatfs fills it.
    let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open; fstatfs writes one struct statfs.
    unsafe { libc::fstatfs(fd, &raw mut sf) == 0 && sf.f_type == libc::PROC_SUPER_MAGIC }
}

/// `readlinkat(fd, "")`: the target of the symlink `fd` was opened on (O_PATH|O_NOFOLLOW),
/// or, for a magic link, the path of what it stands for.
fn read_link(fd: RawFd) -> Result<Vec<u8>, Fail> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `buf` has room for the given length; readlinkat writes at most that much.
    let n = unsafe { libc::readlinkat(fd, c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Fail::Errno(errno_of(&io::Error::last_os_error())));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Our own root and /proc, to tell whether the task's are the same.
struct Ours {
    root: Option<FileId>,
    proc_dev: Option<u64>,
}

fn ours() -> &'static Ours {
    static OURS: OnceLock<Ours> = OnceLock::new();
    OURS.get_or_init(|| Ours {
        root: open_path("/", libc::O_DIRECTORY)
            .ok()
            .and_then(|fd| file_id(fd.as_raw_fd()).ok()),
        proc_dev: open_path("/proc", libc::O_DIRECTORY)
            .ok()
            .and_then(|fd| stat(fd.as_raw_fd()).ok())
            .map(|st| st.st_dev),
    })
}

/// Opens one of the task's own objects, `/proc/<tid>/<what>`.
fn task_object(tid: u32, what: &str, flags: i32) -> Result<OwnedFd, Fail> {
    let path = format!("/proc/{tid}/{what}");
    open_path(&path, flags).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) if what.starts_with("fd/") && task_exists(tid) => {
            Fail::Errno(libc::EBADF)
        }
        Some(libc::ENOENT | libc::ESRCH) => Fail::Gone,
        Some(libc::ENOTDIR) => Fail::Errno(libc::ENOTDIR),
        _ => Fail::Unseeable(format!("{path}: {e}")),
    })
}

fn task_exists(tid: u32) -> bool {
    std::fs::metadata(format!("/proc/{tid}")).is_ok()
}

fn task_link_name(tid: u32, what: &str) -> Vec<u8> {
    std::fs::read_link(format!("/proc/{tid}/{what}"))
        .map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec())
        .unwrap_or_default()
}

/// The thread group of `tid` (`Tgid:` in its status).
fn tgid_of(tid: u32) -> Result<u32, Fail> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).map_err(|_| Fail::Gone)?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(Fail::Gone)
}

/// The numbers (tgid, tid) the task `tid` has in the pid namespace of the procfs whose root
/// is `proc_root`, a procfs other than ours (`unshare -p --mount-proc`). Its `NStgid`/`NSpid`
/// list them for every level from ours inward; a level is taken only when that procfs's
/// entry under those numbers is the task itself: same pid namespace and same start time.
fn numbered_in(proc_root: RawFd, tid: u32) -> Result<(u32, u32), Fail> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).map_err(|_| Fail::Gone)?;
    let list = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (tgids, tids) = (list("NStgid:"), list("NSpid:"));
    let ns_of = |dir: RawFd| {
        open_at(dir, b"ns/pid", libc::O_PATH)
            .ok()
            .and_then(|f| file_id(f.as_raw_fd()).ok())
    };
    let ours_dir = task_object(tid, "", libc::O_DIRECTORY)?;
    let want = (
        ns_of(ours_dir.as_raw_fd()),
        start_time(ours_dir.as_raw_fd()),
    );
    for (&tg, &t) in tgids.iter().zip(tids.iter()).rev() {
        let Ok(dir) = open_at(
            proc_root,
            format!("{tg}/task/{t}").as_bytes(),
            libc::O_PATH | libc::O_DIRECTORY,
        ) else {
            continue;
        };
        let seen = (ns_of(dir.as_raw_fd()), start_time(dir.as_raw_fd()));
        if want.0.is_some() && want.1.is_some() && seen == want {
            return Ok((tg, t));
        }
    }
    Err(Fail::Unseeable(
        "its path goes through a /proc of a pid namespace it is not in".to_owned(),
    ))
}

/// Field 22 of `stat` in the /proc directory `dir` (ticks since boot).
fn start_time(dir: RawFd) -> Option<u64> {
    let f = open_at(dir, b"stat", libc::O_RDONLY).ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(f), &mut text).ok()?;
    // "pid (comm) state ppid …": comm may contain anything, so count after the last ')'.
    text.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

fn push_name(name: &mut Vec<u8>, component: &[u8]) {
    if name.last() != Some(&b'/') {
        name.push(b'/');
    }
    name.extend_from_slice(component);
}

/// Finds the program the task `tid` would run for an exec starting at `start`;
/// `nofollow` is `AT_SYMLINK_NOFOLLOW`.
pub fn resolve(tid: u32, start: &Start<'_>, nofollow: bool) -> Result<Target, Fail> {
    let (fd, name, known) = match *start {
        Start::Fails(errno) => return Err(Fail::Errno(errno)),
        Start::Fd(fd) => {
            let what = format!("fd/{fd}");
            let object = task_object(tid, &what, 0)?;
            (object, task_link_name(tid, &what), None)
        }
        Start::Root(path) | Start::Cwd(path) | Start::Dir(_, path) => {
            let root = task_object(tid, "root", libc::O_DIRECTORY)?;
            let root_id = file_id(root.as_raw_fd())?;
            // An absolute path starts at the root itself (`None`), opened once.
            let (base, mut name) = match *start {
                Start::Cwd(_) => (
                    Some(task_object(tid, "cwd", libc::O_DIRECTORY)?),
                    task_link_name(tid, "cwd"),
                ),
                Start::Dir(dirfd, _) => {
                    let what = format!("fd/{dirfd}");
                    (
                        Some(task_object(tid, &what, 0)?),
                        task_link_name(tid, &what),
                    )
                }
                _ => (None, Vec::new()),
            };
            let fast = ours().root.is_some_and(|r| same(r, root_id));
            let found = if fast {
                quick(base.as_ref().unwrap_or(&root), start, path, nofollow)
            } else {
                None
            };
            match found {
                Some((fd, file)) => {
                    for c in components(path) {
                        push_name(&mut name, &c);
                    }
                    (fd, name, Some(file))
                }
                None => {
                    let base = match base {
                        Some(base) => base,
                        None => root.try_clone().map_err(|e| Fail::Errno(errno_of(&e)))?,
                    };
                    let walk = Walk {
                        tid,
                        tgid: None,
                        root,
                        root_id,
                        links: MAX_LINKS,
                    };
                    let (fd, name) = walk.run(base, path, name, nofollow)?;
                    (fd, name, None)
                }
            }
        }
    };
    let file = match known {
        Some(file) => file,
        None => file_status(fd.as_raw_fd())?,
    };
    // AT_SYMLINK_NOFOLLOW on a symlink: ELOOP. The kernel runs regular files only (a
    // directory, a pipe, a socket: EACCES).
    if file.kind == libc::S_IFLNK {
        return Err(Fail::Errno(libc::ELOOP));
    }
    if file.kind != libc::S_IFREG {
        return Err(Fail::Errno(libc::EACCES));
    }
    Ok(Target { name, id: file.id })
}

/// A file's type (`S_IFMT` bits) and identity, from one `statx`.
struct Status {
    kind: u32,
    id: FileId,
    /// Major number of its device: procfs, like every other file system without a
    /// block device, has major 0.
    major: u32,
}

fn file_status(fd: RawFd) -> Result<Status, Fail> {
    // SAFETY: an all-zero statx is valid plain data; statx fills it.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH names `fd` itself.
    let rc = unsafe {
        libc::statx(
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_TYPE | libc::STATX_INO | libc::STATX_MNT_ID,
            &raw mut stx,
        )
    };
    if rc != 0 {
        return Err(Fail::Errno(errno_of(&io::Error::last_os_error())));
    }
    Ok(Status {
        kind: u32::from(stx.stx_mode) & libc::S_IFMT,
        id: FileId {
            dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
            ino: stx.stx_ino,
            mnt: (stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id),
        },
        major: stx.stx_dev_major,
    })
}

/// One `openat2` for a task whose root is ours, from `dir` (the task's root for an
/// absolute path, else its cwd or dirfd): magic links refused (they mean the walk), `..`
/// and absolute symlinks kept inside the root. `None` whenever the answer might differ
/// from the task's: any failure, or a result inside procfs (reached through our own
/// `self`).
fn quick(
    dir: &OwnedFd,
    start: &Start<'_>,
    path: &[u8],
    nofollow: bool,
) -> Option<(OwnedFd, Status)> {
    let resolve = match start {
        Start::Root(_) => libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        _ => libc::RESOLVE_NO_MAGICLINKS,
    };
    let path = CString::new(path).ok()?;
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: `path` is NUL-terminated and `how` is a valid open_how of the given size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &raw const how,
            size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: openat2 just returned this descriptor to us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let status = file_status(fd.as_raw_fd()).ok()?;
    // Only a file system without a device can be procfs; the rest need not be asked.
    if status.major == 0 && on_procfs(fd.as_raw_fd()) {
        return None;
    }
    Some((fd, status))
}

/// `struct open_how` (libc's is non-exhaustive, so it cannot be built here).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// A component-by-component lookup as the task would make it.
struct Walk {
    tid: u32,
    tgid: Option<u32>,
    root: OwnedFd,
    root_id: FileId,
    links: u32,
}

/// A component still to look up, and whether the task's path named it (its name then
/// extends [`Target::name`]) or a symlink did.
struct Pending {
    name: Vec<u8>,
    given: bool,
}

impl Walk {
    fn run(
        mut self,
        base: OwnedFd,
        path: &[u8],
        mut name: Vec<u8>,
        nofollow: bool,
    ) -> Result<(OwnedFd, Vec<u8>), Fail> {
        let mut cur = base;
        // Reversed: the next component is at the end.
        let mut todo: Vec<Pending> = components(path)
            .into_iter()
            .rev()
            .map(|name| Pending { name, given: true })
            .collect();
        while let Some(next) = todo.pop() {
            let last = todo.is_empty();
            if next.given && next.name != b"." {
                push_name(&mut name, &next.name);
            }
            if next.name == b"." {
                // Only a trailing slash gets here: the current object must be a directory.
                cur = open_at(cur.as_raw_fd(), b".", libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|e| Fail::Errno(errno_of(&e)))?;
                continue;
            }
            if next.name == b".." {
                if !same(file_id(cur.as_raw_fd())?, self.root_id) {
                    cur = open_at(cur.as_raw_fd(), b"..", libc::O_PATH | libc::O_DIRECTORY)
                        .map_err(|e| Fail::Errno(errno_of(&e)))?;
                }
                continue;
            }
            let fd = open_at(cur.as_raw_fd(), &next.name, libc::O_PATH | libc::O_NOFOLLOW)
                .map_err(|e| Fail::Errno(errno_of(&e)))?;
            let st = stat(fd.as_raw_fd())?;
            if st.st_mode & libc::S_IFMT != libc::S_IFLNK || (last && nofollow) {
                if last && nofollow && st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    return Err(Fail::Errno(libc::ELOOP));
                }
                cur = fd;
                continue;
            }
            self.links = self.links.checked_sub(1).ok_or(Fail::Errno(libc::ELOOP))?;
            if on_procfs(fd.as_raw_fd()) {
                let parent = stat(cur.as_raw_fd())?;
                if parent.st_ino == PROC_ROOT_INO && proc_self(&next.name, 0, 0).is_some() {
                    // `self` names the reader: substitute the task, numbered as this
                    // procfs numbers it (another instance belongs to another pid namespace).
                    let (tgid, tid) = if ours().proc_dev == Some(parent.st_dev) {
                        let tgid = match self.tgid {
                            Some(t) => t,
                            None => *self.tgid.insert(tgid_of(self.tid)?),
                        };
                        (tgid, self.tid)
                    } else {
                        numbered_in(cur.as_raw_fd(), self.tid)?
                    };
                    let target = proc_self(&next.name, tgid, tid).unwrap_or_default();
                    for c in components(&target).into_iter().rev() {
                        todo.push(Pending {
                            name: c,
                            given: false,
                        });
                    }
                    continue;
                }
                // A magic link (`cwd`, `root`, `exe`, `fd/N`): the object it stands for,
                // which is the same whoever follows it.
                let object =
                    open_at(cur.as_raw_fd(), &next.name, libc::O_PATH).map_err(|e| {
                        match e.raw_os_error() {
                            Some(libc::EACCES | libc::EPERM) => Fail::Unseeable(format!(
                                "following {}: {e}",
                                String::from_utf8_lossy(&name)
                            )),
                            _ => Fail::Errno(errno_of(&e)),
                        }
                    })?;
                name = read_link(fd.as_raw_fd())?;
                cur = object;
                continue;
            }
            let target = read_link(fd.as_raw_fd())?;
            if target.starts_with(b"/") {
                cur = self
                    .root
                    .try_clone()
                    .map_err(|e| Fail::Errno(errno_of(&e)))?;
            }
            for c in components(&target).into_iter().rev() {
                todo.push(Pending {
                    name: c,
                    given: false,
                });
            }
        }
        Ok((cur, name))
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
