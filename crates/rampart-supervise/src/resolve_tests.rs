//! The lookup from a task's view: the mapping of the syscall's arguments to a starting
//! point, procfs's `self` names, and real lookups for a child process whose cwd and
//! descriptors differ from ours (so resolving as ourselves would find nothing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command};

#[test]
fn the_syscall_arguments_say_where_the_lookup_starts() {
    let empty = libc::AT_EMPTY_PATH;
    let table: [(Option<i32>, &[u8], i32, Start<'_>); 10] = [
        (None, b"/usr/bin/touch", 0, Start::Root(b"/usr/bin/touch")),
        (None, b"touch", 0, Start::Cwd(b"touch")),
        (None, b"./touch", 0, Start::Cwd(b"./touch")),
        (None, b"", 0, Start::Fails(libc::ENOENT)),
        (None, b"", empty, Start::Fails(libc::ENOENT)),
        (Some(libc::AT_FDCWD), b"touch", 0, Start::Cwd(b"touch")),
        (Some(7), b"touch", 0, Start::Dir(7, b"touch")),
        (
            Some(7),
            b"/usr/bin/touch",
            0,
            Start::Root(b"/usr/bin/touch"),
        ),
        (Some(7), b"", empty, Start::Fd(7)),
        (Some(7), b"", 0, Start::Fails(libc::ENOENT)),
    ];
    for (dirfd, path, flags, want) in table {
        assert_eq!(
            start(dirfd, path, flags),
            want,
            "{dirfd:?} {path:?} {flags}"
        );
    }
}

#[test]
fn procfs_self_names_the_task_not_the_reader() {
    assert_eq!(proc_self(b"self", 40, 41), Some(b"40".to_vec()));
    assert_eq!(
        proc_self(b"thread-self", 40, 41),
        Some(b"40/task/41".to_vec())
    );
    assert_eq!(proc_self(b"mounts", 40, 41), None);
    assert_eq!(proc_self(b"40", 40, 41), None);
}

#[test]
fn components_keep_a_trailing_slash() {
    assert_eq!(
        components(b"/usr//bin/./touch"),
        [b"usr".to_vec(), b"bin".to_vec(), b"touch".to_vec()]
    );
    assert_eq!(components(b"touch/"), [b"touch".to_vec(), b".".to_vec()]);
    assert_eq!(components(b"../x"), [b"..".to_vec(), b"x".to_vec()]);
}

/// A `sleep` whose cwd is `cwd` and which holds `dir` open as descriptor `.1`, and a file
/// open as descriptor `.2`; killed on drop.
struct Task {
    child: Child,
    dirfd: i32,
    filefd: i32,
}

impl Drop for Task {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn open_inheritable(path: &Path) -> i32 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; the descriptor is closed by the caller.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0, "open {path:?}");
    fd
}

fn task(cwd: &Path, dir: &Path, file: &Path) -> Task {
    let dirfd = open_inheritable(dir);
    let filefd = open_inheritable(file);
    let child = Command::new("sleep")
        .arg("60")
        .current_dir(cwd)
        .spawn()
        .unwrap();
    // SAFETY: closing our copies; the child has its own.
    unsafe {
        libc::close(dirfd);
        libc::close(filefd);
    }
    Task {
        child,
        dirfd,
        filefd,
    }
}

fn program(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, "#!/bin/sh\n").unwrap();
    path
}

fn id_of(path: &Path) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

fn found(tid: u32, start: Start<'_>) -> (String, (u64, u64)) {
    match resolve(tid, &start, false) {
        Ok(t) => (String::from_utf8(t.name).unwrap(), (t.id.dev, t.id.ino)),
        Err(e) => panic!("{start:?}: {e:?}"),
    }
}

#[test]
fn paths_are_looked_up_from_the_task_s_cwd_descriptors_and_proc_self() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let a_dir = a.path().canonicalize().unwrap();
    let b_dir = b.path().canonicalize().unwrap();
    let prog = program(&a_dir, "prog");
    let other = program(&b_dir, "other");
    std::os::unix::fs::symlink("prog", a_dir.join("link")).unwrap();
    std::os::unix::fs::symlink("loop", a_dir.join("loop")).unwrap();
    let t = task(&a_dir, &b_dir, &other);
    let pid = t.child.id();
    let prog_name = prog.to_str().unwrap().to_owned();
    let other_name = other.to_str().unwrap().to_owned();
    // Our own cwd is the crate's: none of these exist from our point of view.
    assert!(!Path::new("prog").exists());

    let link_name = format!("{}/link", a_dir.display());
    let fd_path = format!("/dev/fd/{}/other", t.dirfd);
    let dir_alias = format!("/proc/{pid}/fd/{}/other", t.dirfd);
    let cases: [(Start<'_>, &str, &Path); 9] = [
        (Start::Cwd(b"prog"), &prog_name, &prog),
        (Start::Cwd(b"./prog"), &prog_name, &prog),
        (Start::Root(b"/proc/self/cwd/prog"), &prog_name, &prog),
        (
            Start::Root(b"/proc/thread-self/cwd/prog"),
            &prog_name,
            &prog,
        ),
        (Start::Root(fd_path.as_bytes()), &other_name, &other),
        (Start::Root(dir_alias.as_bytes()), &other_name, &other),
        (Start::Dir(t.dirfd, b"other"), &other_name, &other),
        (Start::Fd(t.filefd), &other_name, &other),
        // A symlink keeps the name the task gave (policies match what was typed).
        (Start::Cwd(b"link"), &link_name, &prog),
    ];
    for (start, name, file) in cases {
        assert_eq!(found(pid, start), (name.to_owned(), id_of(file)));
    }
    // A symlink into /proc/self means the task too; `..` after a magic link goes up from
    // the object it stands for.
    std::os::unix::fs::symlink("/proc/self/cwd", b_dir.join("selfcwd")).unwrap();
    let via_link = format!("{}/selfcwd/prog", b_dir.display());
    let up = format!(
        "/proc/self/cwd/../{}/prog",
        a_dir.file_name().unwrap().to_str().unwrap()
    );
    // Plain directories that happen to be called proc/self/cwd are just directories.
    std::fs::create_dir_all(a_dir.join("proc/self/cwd")).unwrap();
    let plain = program(&a_dir.join("proc/self/cwd"), "plain");
    for (start, file) in [
        (Start::Root(via_link.as_bytes()), &prog),
        (Start::Root(up.as_bytes()), &prog),
        (Start::Cwd(b"proc/self/cwd/plain"), &plain),
    ] {
        assert_eq!(found(pid, start).1, id_of(file));
    }

    let stdin = resolve(pid, &Start::Root(b"/dev/stdin"), false);
    assert!(matches!(stdin, Err(Fail::Errno(libc::EACCES))), "{stdin:?}");

    let failing: [(Start<'_>, bool, i32); 7] = [
        (Start::Cwd(b"missing"), false, libc::ENOENT),
        (Start::Cwd(b"prog/"), false, libc::ENOTDIR),
        (Start::Cwd(b"prog/x"), false, libc::ENOTDIR),
        (Start::Root(b"/proc/self/cwd"), false, libc::EACCES),
        (Start::Cwd(b"loop"), false, libc::ELOOP),
        (Start::Cwd(b"link"), true, libc::ELOOP),
        (Start::Dir(999, b"x"), false, libc::EBADF),
    ];
    for (start, nofollow, errno) in failing {
        assert_eq!(
            resolve(pid, &start, nofollow).map(|t| t.name),
            Err(Fail::Errno(errno)),
            "{start:?}"
        );
    }
}

#[test]
fn a_gone_task_is_gone() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert_eq!(
        resolve(pid, &Start::Cwd(b"x"), false).map(|t| t.name),
        Err(Fail::Gone)
    );
}

#[test]
fn proc_self_in_a_pid_namespace_s_own_proc_is_the_task_there() {
    // `unshare -p --mount-proc`: the task's /proc numbers pids of its own namespace (it is
    // pid 1 there) and its mount namespace is a copy, so the whole walk is exercised.
    let a = tempfile::tempdir().unwrap();
    let a_dir = a.path().canonicalize().unwrap();
    let prog = program(&a_dir, "prog");
    let mut unshare = Command::new("unshare")
        .args(["-Urpf", "--mount-proc", "sleep", "60"])
        .current_dir(&a_dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let children = format!("/proc/{0}/task/{0}/children", unshare.id());
    let mut pid = None;
    for _ in 0..500 {
        let text = std::fs::read_to_string(&children).unwrap_or_default();
        if let Some(p) = text.split_whitespace().next() {
            // Wait until the child has exec'd sleep (it shows in its own /proc then).
            let p: u32 = p.parse().unwrap();
            if std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e.ends_with("sleep")) {
                pid = Some(p);
                break;
            }
        }
        if unshare.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let Some(pid) = pid else {
        let _ = unshare.kill();
        let out = unshare.wait_with_output().unwrap();
        println!(
            "SKIPPED proc_self_in_a_pid_namespace_s_own_proc_is_the_task_there: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    };
    for path in [
        &b"/proc/self/cwd/prog"[..],
        b"/proc/thread-self/cwd/prog",
        b"/proc/1/cwd/prog",
    ] {
        let got = resolve(pid, &Start::Root(path), false);
        assert_eq!(
            got.map(|t| (t.id.dev, t.id.ino)),
            Ok(id_of(&prog)),
            "{}",
            String::from_utf8_lossy(path)
        );
    }
    let _ = unshare.kill();
    let _ = unshare.wait();
}
