//! The namespaces and the masks (see lib.rs for the picture). Everything the forked
//! processes need is prepared in [`Prepared::new`], before any fork: after it they only
//! make system calls on that data, report a failing step over a pipe and `_exit`.

use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use libc::c_int;

use crate::relay::{self, Role};
use crate::{Error, Plan, explain};

/// The steps, as reported over the pipe (one byte, then the errno).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Step {
    Unshare = 1,
    Maps = 2,
    Propagation = 3,
    Expose = 4,
    SysReadOnly = 5,
    Devices = 6,
    Hide = 7,
    Fork = 8,
    Proc = 9,
    ProcReadOnly = 10,
    Nest = 11,
    NestedMaps = 12,
    Exec = 13,
}

impl Step {
    fn from_byte(b: u8) -> Option<Step> {
        use Step::*;
        [
            Unshare,
            Maps,
            Propagation,
            Expose,
            SysReadOnly,
            Devices,
            Hide,
            Fork,
            Proc,
            ProcReadOnly,
            Nest,
            NestedMaps,
            Exec,
        ]
        .into_iter()
        .find(|s| *s as u8 == b)
    }
}

/// At most this many read-only files (their descriptors live in a fixed array after fork).
const MAX_EXPOSED: usize = 8;

/// One file kept visible read-only.
#[derive(Debug)]
struct Exposed {
    path: CString,
    /// Directories to create inside a hidden tmpfs, outermost first, when the file is in
    /// one; and whether the mount point itself must be created there.
    dirs: Vec<CString>,
    create: bool,
}

/// Everything the setup needs, computed before the fork. Create it in the launcher, then
/// call [`Prepared::enter`] in a freshly forked child (or hand it to [`crate::run`]);
/// afterwards [`Prepared::failure`] says whether and why the setup failed.
#[derive(Debug)]
pub struct Prepared {
    /// CMD runs as uid 0: sysctls obey it, so /proc/sys is made read-only.
    root: bool,
    /// Root with CAP_SYS_ADMIN: no user namespace at the first level, every id mapped.
    privileged: bool,
    launcher: libc::pid_t,
    self_uid_map: CString,
    self_gid_map: CString,
    nested_uid_map: CString,
    nested_gid_map: CString,
    hide: Vec<CString>,
    tmpfs_options: CString,
    exposed: Vec<Exposed>,
    block_devices: Vec<CString>,
    cwd: Option<CString>,
    env: Vec<(CString, CString)>,
    reader: OwnedFd,
    writer: Option<OwnedFd>,
}

fn c_path(path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Sys {
        what: format!("{} contains a NUL byte", path.display()),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })
}

fn c_text(text: String) -> CString {
    // Built from numbers and fixed words only: never contains NUL.
    CString::new(text).unwrap_or_default()
}

/// Block devices in /dev and one level below (not pts, shm, mqueue): a root agent could
/// read the home's files off the raw disk.
fn block_devices() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::from("/dev")];
    let mut depth = 0;
    while depth < 2 && !dirs.is_empty() {
        let mut next = Vec::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let name = entry.file_name();
                if kind.is_block_device() {
                    found.push(entry.path());
                } else if kind.is_dir() && !matches!(name.as_bytes(), b"pts" | b"shm" | b"mqueue") {
                    next.push(entry.path());
                }
            }
        }
        dirs = next;
        depth += 1;
    }
    found.sort();
    found
}

impl Prepared {
    pub fn new(plan: &Plan) -> Result<Prepared, Error> {
        // SAFETY: these only read the process's credentials.
        let (uid, gid, euid, launcher) = unsafe {
            (
                libc::getuid(),
                libc::getgid(),
                libc::geteuid(),
                libc::getpid(),
            )
        };
        let root = euid == 0;
        // Root that holds CAP_SYS_ADMIN sets the masks up without a user namespace of its
        // own and maps every id; root without it (an unprivileged container) goes the way
        // of an ordinary user, mapping itself only.
        let privileged = root && has_cap_sys_admin();
        let sys = |what: String| {
            move |source: io::Error| Error::Sys {
                what: what.clone(),
                source,
            }
        };
        let mut hide = Vec::new();
        let mut hidden_dirs: Vec<PathBuf> = Vec::new();
        for dir in &plan.hide {
            let Ok(real) = dir.canonicalize() else {
                continue;
            };
            if real.is_dir() && !hidden_dirs.contains(&real) {
                hide.push(c_path(&real)?);
                hidden_dirs.push(real);
            }
        }
        let mut exposed = Vec::new();
        let mut seen: Vec<PathBuf> = Vec::new();
        for file in &plan.read_only {
            let real = file
                .canonicalize()
                .map_err(sys(format!("finding {}", file.display())))?;
            if seen.contains(&real) {
                continue;
            }
            seen.push(real.clone());
            let mut dirs = Vec::new();
            let mut create = false;
            if let Some(top) = hidden_dirs.iter().find(|h| real.starts_with(h)) {
                create = true;
                let mut at = top.clone();
                if let Ok(rest) = real.strip_prefix(top)
                    && let Some(parent) = rest.parent()
                {
                    for part in parent.components() {
                        at.push(part);
                        dirs.push(c_path(&at)?);
                    }
                }
            }
            exposed.push(Exposed {
                path: c_path(&real)?,
                dirs,
                create,
            });
        }
        if exposed.len() > MAX_EXPOSED {
            return Err(Error::Sys {
                what: format!("more than {MAX_EXPOSED} read-only files"),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
        let block_devices = block_devices()
            .iter()
            .map(|p| c_path(p))
            .collect::<Result<_, _>>()?;
        let cwd = std::env::current_dir()
            .ok()
            .and_then(|d| CString::new(d.into_os_string().into_vec()).ok());

        let mut pipe = [0 as c_int; 2];
        // SAFETY: `pipe` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(sys("creating the setup pipe".to_owned())(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: pipe2 succeeded: both descriptors are open and ours alone.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };

        // Root maps every id to itself (files keep their owners, root keeps root's
        // powers over them, inside U2 only); a user can map only its own uid and gid.
        let (nested_uid_map, nested_gid_map) = if privileged {
            (
                c_text("0 0 4294967295\n".to_owned()),
                c_text("0 0 4294967295\n".to_owned()),
            )
        } else {
            (
                c_text(format!("{uid} {uid} 1\n")),
                c_text(format!("{gid} {gid} 1\n")),
            )
        };
        Ok(Prepared {
            root,
            privileged,
            launcher,
            self_uid_map: c_text(format!("{uid} {uid} 1\n")),
            self_gid_map: c_text(format!("{gid} {gid} 1\n")),
            nested_uid_map,
            nested_gid_map,
            hide,
            tmpfs_options: c_text(format!(
                "mode=0700,size=64k,nr_inodes=256,uid={uid},gid={gid}"
            )),
            exposed,
            block_devices,
            cwd,
            env: Vec::new(),
            reader,
            writer: Some(writer),
        })
    }

    /// In a child forked from the launcher (single-threaded at the fork): builds the
    /// namespaces and returns only in the agent process, ready to exec CMD. On any
    /// failure it reports the step and exits with 125; [`Prepared::failure`] then says why.
    pub fn enter(&self) {
        let w = self.writer.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        let fail = |step: Step| fail(w, step);

        // --- outer: new mount ns (and user ns unless root), outside the new PID ns.
        // SAFETY: plain prctl/getppid with integer arguments.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != self.launcher {
                libc::_exit(125);
            }
        }
        let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
        if !self.privileged {
            flags |= libc::CLONE_NEWUSER;
        }
        // SAFETY: unshare with constant flags.
        if unsafe { libc::unshare(flags) } != 0 {
            fail(Step::Unshare);
        }
        if !self.privileged
            && (write_file(c"/proc/self/setgroups", b"deny") != 0
                || write_file(c"/proc/self/uid_map", self.self_uid_map.as_bytes()) != 0
                || write_file(c"/proc/self/gid_map", self.self_gid_map.as_bytes()) != 0)
        {
            fail(Step::Maps);
        }
        // Nothing done here may reach the host's mount namespace (a root's new mount
        // namespace shares its peers otherwise).
        if mount(None, c"/", None, libc::MS_REC | libc::MS_SLAVE, None) != 0 {
            fail(Step::Propagation);
        }
        let mut sources = [-1 as c_int; MAX_EXPOSED];
        for (slot, file) in sources.iter_mut().zip(&self.exposed) {
            // SAFETY: opening a prepared NUL-terminated path.
            *slot = unsafe { libc::open(file.path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if *slot < 0 {
                fail(Step::Expose);
            }
        }
        if set_read_only(c"/sys", true) != 0 && !matches!(errno(), libc::ENOENT | libc::EINVAL) {
            fail(Step::SysReadOnly);
        }
        for dev in &self.block_devices {
            if mount(Some(c"/dev/null"), dev, None, libc::MS_BIND, None) != 0 {
                fail(Step::Devices);
            }
        }
        for dir in &self.hide {
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            if mount(
                Some(c"rampart-protect"),
                dir,
                Some(c"tmpfs"),
                flags,
                Some(&self.tmpfs_options),
            ) != 0
            {
                fail(Step::Hide);
            }
        }
        for (fd, file) in sources.iter().zip(&self.exposed) {
            for dir in &file.dirs {
                // SAFETY: mkdir on a prepared path.
                if unsafe { libc::mkdir(dir.as_ptr(), 0o755) } != 0 && errno() != libc::EEXIST {
                    fail(Step::Expose);
                }
            }
            if file.create {
                // SAFETY: creating an empty mount point at a prepared path.
                let made = unsafe {
                    libc::open(
                        file.path.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o444,
                    )
                };
                if made < 0 {
                    fail(Step::Expose);
                }
                // SAFETY: closing the descriptor just opened.
                unsafe { libc::close(made) };
            }
            let mut buf = [0u8; 40];
            let source = fd_path(&mut buf, *fd);
            if mount(Some(source), &file.path, None, libc::MS_BIND, None) != 0
                || set_read_only(&file.path, false) != 0
            {
                fail(Step::Expose);
            }
        }
        for dir in &self.hide {
            if set_read_only(dir, false) != 0 {
                fail(Step::Hide);
            }
        }
        for fd in sources.iter().take(self.exposed.len()) {
            // SAFETY: closing the O_PATH descriptors opened above.
            unsafe { libc::close(*fd) };
        }
        // A working directory inside a hidden one would still be the real directory:
        // look it up again through the masks.
        let moved = self.cwd.as_ref().is_some_and(|cwd| {
            // SAFETY: chdir to a prepared path.
            unsafe { libc::chdir(cwd.as_ptr()) == 0 }
        });
        if !moved {
            // SAFETY: as above.
            unsafe { libc::chdir(c"/".as_ptr()) };
        }

        relay::install(0, Role::Outer);
        // SAFETY: fork in a single-threaded process (this child); both sides only make
        // system calls on prepared data.
        let init = unsafe { libc::fork() };
        if init < 0 {
            fail(Step::Fork);
        }
        if init > 0 {
            relay::become_relay(init, Role::Outer);
        }

        // --- init: pid 1 of the new PID namespace.
        // SAFETY: plain prctl with integer arguments. Non-dumpable: nothing in the tree
        // may trace it or read its memory (it is a copy of the launcher's).
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        if mount(Some(c"proc"), c"/proc", Some(c"proc"), flags, None) != 0 {
            fail(Step::Proc);
        }
        // Sysctls and SysRq answer to uid 0 whatever its namespace: read-only for a root
        // agent. An ordinary user cannot write them anyway, and leaving this /proc without
        // over-mounts lets it mount a /proc of its own (`unshare --mount-proc`, bwrap).
        let sensitive: &[&CStr] = if self.root {
            &[c"/proc/sys", c"/proc/sysrq-trigger"]
        } else {
            &[]
        };
        for path in sensitive.iter().copied() {
            if mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None) != 0 {
                // A kernel without magic SysRq has no /proc/sysrq-trigger to protect.
                if errno() == libc::ENOENT {
                    continue;
                }
                fail(Step::ProcReadOnly);
            }
            if set_read_only(path, true) != 0 {
                fail(Step::ProcReadOnly);
            }
        }
        hide_cmdline();
        let (ready_r, ready_w) = pipe_or(w);
        let (mapped_r, mapped_w) = pipe_or(w);
        relay::install(0, Role::Init);
        // SAFETY: as for the fork above.
        let agent = unsafe { libc::fork() };
        if agent < 0 {
            fail(Step::Fork);
        }
        if agent > 0 {
            relay::set_target(agent);
            // SAFETY: closing our copies of the ends the agent uses.
            unsafe {
                libc::close(ready_w);
                libc::close(mapped_r);
            }
            let mut byte = 0u8;
            // SAFETY: reading one byte into a local.
            let n = unsafe { libc::read(ready_r, (&raw mut byte).cast(), 1) };
            if n == 1 {
                if !self.map_nested(agent) {
                    report(w, Step::NestedMaps, errno());
                    // SAFETY: ending the agent we started; it has not run CMD.
                    unsafe { libc::kill(agent, libc::SIGKILL) };
                }
                // SAFETY: writing one byte from a local.
                unsafe { libc::write(mapped_w, (&raw const byte).cast(), 1) };
            }
            relay::become_relay(agent, Role::Init);
        }

        // --- the agent: nested user + mount namespace, so every mount above is locked.
        // SAFETY: closing the ends init uses; dumpable again (inherited from init), or init
        // could not open our /proc files to write the id maps. CMD's exec sets it anew.
        unsafe {
            libc::close(ready_r);
            libc::close(mapped_w);
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        }
        // SAFETY: unshare with constant flags.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
            fail(Step::Nest);
        }
        let byte = 1u8;
        let mut got = 0u8;
        // SAFETY: one byte each way through our own pipes.
        let ok = unsafe {
            libc::write(ready_w, (&raw const byte).cast(), 1) == 1
                && libc::read(mapped_r, (&raw mut got).cast(), 1) == 1
        };
        if !ok {
            // SAFETY: as above.
            unsafe { libc::_exit(125) };
        }
        // SAFETY: closing the sync pipes; the error pipe closes when CMD is executed.
        unsafe {
            libc::close(ready_w);
            libc::close(mapped_r);
        }
        for (key, value) in &self.env {
            // SAFETY: this child is single-threaded (forked from a single-threaded
            // launcher), so nothing else reads the environment meanwhile.
            unsafe { libc::setenv(key.as_ptr(), value.as_ptr(), 1) };
        }
    }

    /// Variables the agent sets in its own environment before it returns (for callers
    /// that exec CMD with the process's environment, like the supervisor).
    pub fn with_env(mut self, vars: &[(&str, &str)]) -> Prepared {
        self.env = vars
            .iter()
            .filter_map(|(k, v)| Some((CString::new(*k).ok()?, CString::new(*v).ok()?)))
            .collect();
        self
    }

    /// Init writes the agent's id maps (it holds the capabilities the agent lacks).
    fn map_nested(&self, agent: libc::pid_t) -> bool {
        let mut buf = [0u8; 48];
        let deny_ok =
            self.privileged || write_file(proc_file(&mut buf, agent, b"setgroups"), b"deny") == 0;
        deny_ok
            && write_file(
                proc_file(&mut buf, agent, b"uid_map"),
                self.nested_uid_map.as_bytes(),
            ) == 0
            && write_file(
                proc_file(&mut buf, agent, b"gid_map"),
                self.nested_gid_map.as_bytes(),
            ) == 0
    }

    /// The write end of the report pipe is the launcher's no longer (after the fork).
    pub fn close_writer(&mut self) {
        self.writer = None;
    }

    /// After the tree has ended (or CMD was executed): why the setup failed, if it did.
    /// Blocks until every process of the setup has closed the pipe.
    pub fn failure(mut self, program: &str) -> Option<Error> {
        self.close_writer();
        let mut msg = [0u8; 5];
        let mut got = 0;
        while got < msg.len() {
            let Some(rest) = msg.get_mut(got..) else {
                break;
            };
            // SAFETY: reading into the unfilled rest of a local buffer.
            let n = unsafe {
                libc::read(
                    self.reader.as_raw_fd(),
                    rest.as_mut_ptr().cast(),
                    rest.len(),
                )
            };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                break;
            }
            got += usize::try_from(n).unwrap_or(0);
        }
        if got < msg.len() {
            return None;
        }
        let errno = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
        let step = Step::from_byte(msg[0])?;
        if step == Step::Exec {
            return Some(Error::Exec {
                program: program.to_owned(),
                source: io::Error::from_raw_os_error(errno),
            });
        }
        Some(Error::Refused(explain::line(step, errno, self.privileged)))
    }
}

/// The preload launcher's path: fork, set up, exec CMD; relay and wait outside.
pub fn run(
    mut prepared: Prepared,
    command: &[OsString],
    env: &[(String, OsString)],
) -> Result<i32, Error> {
    let words: Vec<CString> = command
        .iter()
        .map(|w| {
            CString::new(w.as_bytes()).map_err(|_| Error::Sys {
                what: format!("the command contains a NUL byte: {}", w.to_string_lossy()),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            })
        })
        .collect::<Result<_, _>>()?;
    let Some(program) = words.first() else {
        return Err(Error::Sys {
            what: "no command given".to_owned(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        });
    };
    let mut argv: Vec<*const libc::c_char> = words.iter().map(|w| w.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !env.iter().any(|(name, _)| k.as_bytes() == name.as_bytes()))
        .collect();
    vars.extend(env.iter().map(|(k, v)| (OsString::from(k), v.clone())));
    let entries: Vec<CString> = vars
        .into_iter()
        .filter_map(|(k, v)| {
            let mut entry = k.into_vec();
            entry.push(b'=');
            entry.extend(v.into_vec());
            CString::new(entry).ok()
        })
        .collect();
    let mut envp: Vec<*const libc::c_char> = entries.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let name = command
        .first()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();

    relay::install(0, Role::Launcher);
    // SAFETY: fork in the single-threaded launcher (documented on crate::run); the child
    // only makes system calls on data prepared above, then execs or _exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(Error::Sys {
            what: "fork".to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    if child == 0 {
        prepared.enter();
        // SAFETY: NUL-terminated strings and NULL-terminated arrays built before the fork.
        unsafe { libc::execvpe(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let e = errno();
        report(
            prepared.writer.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            Step::Exec,
            e,
        );
        // SAFETY: as in enter.
        unsafe { libc::_exit(if e == libc::ENOENT { 127 } else { 126 }) };
    }
    prepared.close_writer();
    relay::set_target(child);
    let code = relay::wait_for(child);
    match prepared.failure(&name) {
        Some(e) => Err(e),
        None => Ok(code),
    }
}

/// `CAP_SYS_ADMIN` from linux/capability.h.
const CAP_SYS_ADMIN: u32 = 21;

/// CAP_SYS_ADMIN in the effective set, from `/proc/self/status`.
fn has_cap_sys_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

fn errno() -> c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn report(fd: RawFd, step: Step, errno: c_int) {
    let b = errno.to_ne_bytes();
    let msg = [step as u8, b[0], b[1], b[2], b[3]];
    // SAFETY: writing a local buffer; if it fails the exit status still says 125.
    unsafe { libc::write(fd, msg.as_ptr().cast(), msg.len()) };
}

fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> c_int {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: NUL-terminated strings or NULL, as mount(2) takes them.
    unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    }
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: c_int = 0x8000;

/// Makes the mount at `path` (and, with `recursive`, all below it) read-only, changing
/// nothing else about it (a locked nosuid or noexec stays as it is).
fn set_read_only(path: &CStr, recursive: bool) -> c_int {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: a valid path and a struct of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &raw const attr,
            size_of::<MountAttr>(),
        )
    };
    c_int::try_from(rc).unwrap_or(-1)
}

fn write_file(path: &CStr, data: &[u8]) -> c_int {
    // SAFETY: open/write/close on a valid path and buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return -1;
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = errno();
        libc::close(fd);
        if usize::try_from(n).ok() == Some(data.len()) {
            0
        } else {
            *libc::__errno_location() = e;
            -1
        }
    }
}

/// Appends the decimal digits of `n` to `buf` at `at`; returns the new end.
fn put_number(buf: &mut [u8], mut at: usize, n: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut len = 0;
    let mut n = n;
    loop {
        if let Some(d) = digits.get_mut(len) {
            *d = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 || len == digits.len() {
            break;
        }
    }
    for i in (0..len).rev() {
        if let (Some(slot), Some(d)) = (buf.get_mut(at), digits.get(i)) {
            *slot = *d;
        }
        at += 1;
    }
    at
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> usize {
    for (i, b) in bytes.iter().enumerate() {
        if let Some(slot) = buf.get_mut(at + i) {
            *slot = *b;
        }
    }
    at + bytes.len()
}

/// `/proc/self/fd/N` in `buf`, without allocating.
fn fd_path(buf: &mut [u8; 40], fd: c_int) -> &CStr {
    let end = put(buf, 0, b"/proc/self/fd/");
    let end = put_number(buf, end, u32::try_from(fd).unwrap_or(0));
    let end = put(buf, end, b"\0");
    CStr::from_bytes_with_nul(buf.get(..end).unwrap_or(b"\0")).unwrap_or(c"/dev/null")
}

/// `/proc/PID/NAME` in `buf`, without allocating.
fn proc_file<'a>(buf: &'a mut [u8; 48], pid: libc::pid_t, name: &[u8]) -> &'a CStr {
    let end = put(buf, 0, b"/proc/");
    let end = put_number(buf, end, u32::try_from(pid).unwrap_or(0));
    let end = put(buf, end, b"/");
    let end = put(buf, end, name);
    let end = put(buf, end, b"\0");
    CStr::from_bytes_with_nul(buf.get(..end).unwrap_or(b"\0")).unwrap_or(c"/dev/null")
}

/// Reports `step` with the current errno and ends this (forked) process.
fn fail(w: RawFd, step: Step) -> ! {
    report(w, step, errno());
    // SAFETY: _exit is async-signal-safe and runs nothing of the launcher's.
    unsafe { libc::_exit(125) }
}

fn pipe_or(w: RawFd) -> (c_int, c_int) {
    let mut pipe = [0 as c_int; 2];
    // SAFETY: `pipe` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail(w, Step::Fork);
    }
    (pipe[0], pipe[1])
}

/// Init is a copy of the launcher, and `/proc/1/cmdline` is readable by the whole tree:
/// the launcher's arguments (a `--token`, say) must not be. Blank them in place.
fn hide_cmdline() {
    let mut stat = [0u8; 4096];
    // SAFETY: reading our own stat file into a local buffer.
    let len = unsafe {
        let fd = libc::open(
            c"/proc/self/stat".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let n = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
        libc::close(fd);
        usize::try_from(n).unwrap_or(0)
    };
    let text = stat.get(..len).unwrap_or_default();
    let Some(close) = text.iter().rposition(|b| *b == b')') else {
        return;
    };
    // Fields after "(comm)" start at field 3; arg_start and arg_end are fields 48 and 49.
    let mut fields = text
        .get(close + 1..)
        .unwrap_or_default()
        .split(|b| *b == b' ')
        .filter(|f| !f.is_empty());
    let number =
        |f: Option<&[u8]>| -> Option<usize> { std::str::from_utf8(f?).ok()?.trim().parse().ok() };
    let start = number(fields.nth(45));
    let end = number(fields.next());
    let (Some(start), Some(end)) = (start, end) else {
        return;
    };
    if start == 0 || end <= start {
        return;
    }
    let name = b"rampart-protect-init";
    // SAFETY: [arg_start, arg_end) is this process's own argument area on its stack,
    // mapped and writable; nothing in this process reads the arguments any more.
    unsafe {
        let area = start as *mut u8;
        std::ptr::write_bytes(area, 0, end - start);
        if end - start > name.len() {
            std::ptr::copy_nonoverlapping(name.as_ptr(), area, name.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths_are_built_without_allocating() {
        let mut buf = [0u8; 48];
        assert_eq!(proc_file(&mut buf, 2, b"uid_map"), c"/proc/2/uid_map");
        let mut buf = [0u8; 48];
        assert_eq!(
            proc_file(&mut buf, 4_194_304, b"setgroups"),
            c"/proc/4194304/setgroups"
        );
        let mut buf = [0u8; 40];
        assert_eq!(fd_path(&mut buf, 0), c"/proc/self/fd/0");
        let mut buf = [0u8; 40];
        assert_eq!(fd_path(&mut buf, 1023), c"/proc/self/fd/1023");
    }

    #[test]
    fn every_step_round_trips_through_its_byte() {
        for b in 0..=u8::MAX {
            if let Some(step) = Step::from_byte(b) {
                assert_eq!(step as u8, b);
            }
        }
        assert_eq!(Step::from_byte(13), Some(Step::Exec));
        assert_eq!(Step::from_byte(0), None);
    }

    #[test]
    fn refusals_are_one_line_with_cause_and_fix() {
        let line = explain::line(Step::Nest, libc::ENOSPC, false);
        assert_eq!(
            line,
            "--protect: cannot create the agent's nested user namespace (No space left on device): user namespaces are switched off or used up (user.max_user_namespaces is 0 or reached); fix: `sysctl -w user.max_user_namespaces=15000` as root (on the host, or in the parent of this container), or run without --protect. Nothing was run."
        );
        for step in 1..=12 {
            let step = Step::from_byte(step).unwrap_or(Step::Fork);
            for errno in [
                libc::EPERM,
                libc::EACCES,
                libc::ENOSPC,
                libc::ENOSYS,
                libc::EINVAL,
            ] {
                let line = explain::line(step, errno, errno == libc::EPERM);
                assert!(!line.contains('\n'), "{line}");
                assert!(line.contains("; fix: "), "{line}");
                assert!(line.ends_with("Nothing was run."), "{line}");
            }
        }
    }

    #[test]
    fn wait_statuses_read_as_a_shell_reports_them() {
        assert_eq!(relay::code(7 << 8), 7);
        assert_eq!(relay::code(libc::SIGTERM), 143);
        assert_eq!(relay::code(libc::SIGKILL), 137);
    }
}
