//! The one line `--protect` prints when the kernel or the container forbids a step: what
//! failed, the likely cause (read from the kernel's own settings) and the fix.

use crate::setup::Step;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn under_seccomp() -> bool {
    read("/proc/self/status").is_some_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Seccomp:") && l.trim_end() != "Seccomp:\t0")
    })
}

fn action(step: Step) -> &'static str {
    match step {
        Step::Unshare => "create the user, mount and PID namespaces",
        Step::Maps => "map the user's ids into the new user namespace",
        Step::Propagation => "make the new mount namespace private",
        Step::Expose => "keep the library and the rampart binary visible read-only",
        Step::SysReadOnly => "make /sys read-only",
        Step::Devices => "mask the block devices in /dev",
        Step::Hide => "hide $RAMPART_HOME behind an empty tmpfs",
        Step::Fork => "start the namespace's init",
        Step::Proc => "mount a fresh /proc for the new PID namespace",
        Step::ProcReadOnly => "make /proc/sys read-only",
        Step::Nest => "create the agent's nested user namespace",
        Step::NestedMaps => "map the user's ids into the agent's user namespace",
        Step::Exec => "run the command",
    }
}

/// `--protect: cannot <step> (<errno>): <cause>; fix: <fix>. Nothing was run.`
pub fn line(step: Step, errno: i32, privileged: bool) -> String {
    let err = std::io::Error::from_raw_os_error(errno).to_string();
    // "No such file or directory (os error 2)" → "No such file or directory".
    let err = err.split(" (os error").next().unwrap_or_default();
    let userns_step = matches!(step, Step::Unshare | Step::Nest);
    let (cause, fix) = if errno == libc::ENOSPC && userns_step {
        (
            "user namespaces are switched off or used up (user.max_user_namespaces is 0 or reached)".to_owned(),
            "`sysctl -w user.max_user_namespaces=15000` as root (on the host, or in the parent of this container)".to_owned(),
        )
    } else if errno == libc::ENOSYS {
        (
            "this kernel lacks a system call --protect needs (mount_setattr, Linux 5.12)"
                .to_owned(),
            "run on Linux 5.12 or newer".to_owned(),
        )
    } else if matches!(errno, libc::EPERM | libc::EACCES) {
        if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
            (
                "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)".to_owned(),
                "allow user namespaces for rampart with an AppArmor profile (a `userns,` rule), or `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`".to_owned(),
            )
        } else if userns_step
            && read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0")
        {
            (
                "unprivileged user namespaces are off (kernel.unprivileged_userns_clone=0)"
                    .to_owned(),
                "`sysctl -w kernel.unprivileged_userns_clone=1` as root".to_owned(),
            )
        } else if under_seccomp() {
            (
                "a seccomp profile forbids it (container runtimes install one by default)".to_owned(),
                "run the container with a profile that allows unshare and mount (docker: --security-opt seccomp=unconfined, or a profile allowing them)".to_owned(),
            )
        } else if step == Step::Proc {
            (
                "the kernel refuses a fresh /proc here (the container masks parts of /proc)".to_owned(),
                "give the container an unmasked /proc (docker: --security-opt systempaths=unconfined), or run the agent as root in it".to_owned(),
            )
        } else if privileged && step == Step::Unshare {
            (
                "the kernel refused new mount and PID namespaces to root".to_owned(),
                "check the security module (SELinux, AppArmor) that confines this root".to_owned(),
            )
        } else {
            (
                "the kernel or a security module refused it".to_owned(),
                "enable unprivileged user namespaces for this user".to_owned(),
            )
        }
    } else {
        (
            "an unexpected failure".to_owned(),
            "report it with `rampart doctor` output".to_owned(),
        )
    };
    format!(
        "--protect: cannot {} ({err}): {cause}; fix: {fix}, or run without --protect. Nothing was run.",
        action(step)
    )
}
