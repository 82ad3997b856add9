//! `--protect` end to end (issue 13 items 2–4): a real `rampart serve`, the real
//! `preload/build/librampart.so`, real bash as the agent, as root and as an ordinary user
//! (uid 1000, through `setpriv`; skipped loudly where this cannot run). Inside, the agent
//! tries what a prompt-injected agent would to switch its guard off; every attempt must
//! fail, and a denied command must still be denied afterwards.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::util::library;
use crate::util::wait_until;

const USER: u32 = 1000;
const POLICY: &str = r#"version: "1"
default_action: allow
policies:
  - name: protect-test
    rules:
      - action: deny
        when:
          command_matches: ["touch *"]
        message: "touch is denied in this test"
"#;
const DENIED: &str = "rampart: [ERROR] Policy denied: touch is denied in this test";

/// The attempts, each printed as `NAME held` or `NAME BROKEN`. Bash builtins where they
/// exist, so the policy (which allows everything but `touch`) is not what stops them.
const ATTACK: &str = r#"
H="$RAMPART_HOME"
attempt() { local name=$1; shift; if ( "$@" ) >/dev/null 2>&1; then echo "$name BROKEN"; else echo "$name held"; fi; }
attempt read-token sh -c 'read -r t < "$RAMPART_HOME/token" && test -n "$t"'
if [ -n "$ONLY_LOOK" ]; then
  attempt see-server test -e /proc/$SERVER_PID
  exit 0
fi
attempt list-home sh -c 'ls -A "$RAMPART_HOME" | grep -q .'
attempt write-token sh -c 'echo forged > "$RAMPART_HOME/token"'
attempt write-policy sh -c 'echo "version: 1" > "$RAMPART_HOME/policies/zz.yaml"'
attempt empty-policy sh -c ': > "$RAMPART_HOME/policies/test.yaml"'
attempt write-audit sh -c 'for f in "$RAMPART_HOME"/audit/*.jsonl; do echo "{}" >> "$f" || exit 1; done; ls "$RAMPART_HOME"/audit/*.jsonl'
attempt see-server test -e /proc/$SERVER_PID
attempt signal-server kill -0 $SERVER_PID
attempt stop-server kill -STOP $SERVER_PID
attempt prlimit-server prlimit --pid $SERVER_PID --fsize=1
attempt write-library sh -c 'echo >> "$LIBRARY"'
attempt chmod-library chmod 0777 "$LIBRARY"
attempt chmod-binary chmod 0777 "$BINARY"
attempt umount-home umount "$RAMPART_HOME"
attempt userns-umount unshare -Urm umount "$RAMPART_HOME"
attempt userns-umount-lazy unshare -Urm umount -l "$RAMPART_HOME"
attempt userns-remount-rw unshare -Urm mount -o remount,bind,rw "$RAMPART_HOME"
attempt userns-bind-root unshare -Urm sh -c 'mount --bind / /mnt && read -r t < "/mnt$RAMPART_HOME/token"'
attempt userns-bind-library unshare -Urm sh -c 'mount -o remount,bind,rw "$LIBRARY" && echo >> "$LIBRARY"'
attempt raw-disk sh -c 'for d in /dev/vda /dev/sda /dev/nvme0n1; do [ -e $d ] && head -c 65536 $d | tr -d "\0" | grep -q . && exit 0; done; exit 1'
attempt core-pattern sh -c 'echo "|/bin/false" > /proc/sys/kernel/core_pattern'
attempt userns-proc-core-pattern unshare -Urpf --mount-proc sh -c 'echo "|/bin/false" > /proc/sys/kernel/core_pattern'
attempt init-environ sh -c 'grep -q . /proc/1/environ'
attempt init-cmdline sh -c 'tr "\0" " " < /proc/1/cmdline | grep -q -- --token'
echo "procs $(ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\n' ' ')"
touch "$SCRATCH/victim"; echo "touch-exit $?"
echo allowed-ran
exit 7
"#;

fn euid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rampart"))
        .canonicalize()
        .unwrap()
}

/// A throw-away directory owned by `uid` (home, scripts, scratch), a server running as
/// `uid` with the test policy, and a fake `touch` that records it ever ran.
struct Fixture {
    uid: u32,
    dir: tempfile::TempDir,
    server: Child,
    port: u16,
    token: String,
}

impl Fixture {
    /// `None` (after saying so) when the test cannot act as `uid` here.
    fn new(uid: u32) -> Option<Fixture> {
        Fixture::start(uid, false)
    }

    /// With `outside`, the server keeps its policies and audit trail in `outside/policies`
    /// and `outside/audit` (`serve --policies --audit-dir`), not in the home.
    fn start(uid: u32, outside: bool) -> Option<Fixture> {
        if uid != euid() && euid() != 0 {
            println!(
                "SKIPPED: acting as uid {uid} needs a root test run (running as {})",
                euid()
            );
            return None;
        }
        if uid != euid() && Command::new("setpriv").arg("--version").output().is_err() {
            println!("SKIPPED: setpriv is not installed, cannot act as uid {uid}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rampart-protect-")
            .tempdir()
            .unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("policies")).unwrap();
        std::fs::write(home.join("policies/test.yaml"), POLICY).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("scratch")).unwrap();
        let fake = dir.path().join("bin/touch");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$@\" >> {}/scratch/fake-touch-ran\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("attack.sh"), ATTACK).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        if uid != euid() {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{uid}"))
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }

        let mut cmd = as_uid(uid, &binary());
        if outside {
            let out = dir.path().join("outside");
            std::fs::create_dir_all(out.join("policies")).unwrap();
            std::fs::create_dir_all(out.join("audit")).unwrap();
            std::fs::rename(
                home.join("policies/test.yaml"),
                out.join("policies/test.yaml"),
            )
            .unwrap();
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{uid}"))
                .arg(&out)
                .status()
                .unwrap();
            assert!(status.success());
            cmd.arg("serve")
                .arg("--policies")
                .arg(out.join("policies"))
                .arg("--audit-dir")
                .arg(out.join("audit"));
        } else {
            cmd.arg("serve");
        }
        let mut server = cmd
            .args(["--port", "0"])
            .env("RAMPART_HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        let token = std::fs::read_to_string(home.join("token"))
            .unwrap()
            .trim()
            .to_owned();
        Some(Fixture {
            uid,
            dir,
            server,
            port,
            token,
        })
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `rampart <how> --protect … -- CMD` as the fixture's user, with the variables the
    /// attack script reads.
    fn launcher(&self, how: &str, protect: bool, command: &[&str]) -> Command {
        let mut cmd = as_uid(self.uid, &binary());
        cmd.arg(how)
            .args(["--port", &self.port.to_string(), "--no-autostart"])
            .args(["--token", &self.token]);
        if protect {
            cmd.arg("--protect");
        }
        cmd.arg("--")
            .args(command)
            .env("RAMPART_HOME", self.home())
            .env(
                "PATH",
                format!(
                    "{}/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    self.dir.path().display()
                ),
            )
            .env("SERVER_PID", self.server.id().to_string())
            .env("LIBRARY", library())
            .env("BINARY", binary())
            .env("SCRATCH", self.dir.path().join("scratch"))
            .env_remove("RAMPART_URL")
            .env_remove("RAMPART_TOKEN")
            .env_remove("RAMPART_PROTECT")
            .env_remove("LD_PRELOAD")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, how: &str, protect: bool, command: &[&str]) -> Output {
        self.launcher(how, protect, command).output().unwrap()
    }

    fn attack(&self, how: &str) {
        self.attack_through(how, &[]);
    }

    /// The attack, with the launcher started through `prefix` (e.g. `setpriv …`).
    fn attack_through(&self, how: &str, prefix: &[&str]) {
        let script = self.dir.path().join("attack.sh");
        let inner = self.launcher(how, true, &["bash", script.to_str().unwrap()]);
        let out = wrap(inner, prefix).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let ctx = format!("{how} as uid {}:\n{stdout}\n{stderr}", self.uid);
        assert_eq!(out.status.code(), Some(7), "{ctx}");
        let attempts: Vec<&str> = stdout
            .lines()
            .filter(|l| l.ends_with(" held") || l.ends_with(" BROKEN"))
            .collect();
        assert_eq!(attempts.len(), 24, "{ctx}");
        for line in &attempts {
            assert!(line.ends_with(" held"), "{line}: {ctx}");
        }
        // /proc shows the tree only: init (1), the shell (2) and the few processes of the
        // pipeline that lists it; never the server's (or any host) pid.
        let procs = stdout
            .lines()
            .find_map(|l| l.strip_prefix("procs "))
            .unwrap_or_else(|| panic!("no procs line: {ctx}"));
        let pids: Vec<u32> = procs
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(pids.first(), Some(&1), "{ctx}");
        assert!(pids.len() <= 8 && pids.iter().all(|p| *p < 100), "{ctx}");
        // A denied command is still denied after all that, and an allowed one runs.
        assert!(
            stdout.contains("touch-exit 1\n") || stdout.contains("touch-exit 126\n"),
            "{ctx}"
        );
        assert!(stderr.contains(DENIED), "{ctx}");
        assert!(stdout.contains("allowed-ran\n"), "{ctx}");
        assert!(
            !self.dir.path().join("scratch/fake-touch-ran").exists(),
            "{ctx}"
        );
        // Outside, nothing changed: the token, the policy, a live server, an intact trail
        // that recorded the refusal.
        assert_eq!(
            std::fs::read_to_string(self.home().join("token"))
                .unwrap()
                .trim(),
            self.token
        );
        assert_eq!(
            std::fs::read_to_string(self.home().join("policies/test.yaml")).unwrap(),
            POLICY
        );
        assert!(!self.home().join("policies/zz.yaml").exists());
        assert!(
            std::fs::metadata(format!("/proc/{}", self.server.id())).is_ok(),
            "the server died: {ctx}"
        );
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.id())).unwrap();
        assert!(
            !status.contains("State:\tT"),
            "the server was stopped: {ctx}"
        );
        let verify = as_uid(self.uid, &binary())
            .args(["audit", "verify"])
            .env("RAMPART_HOME", self.home())
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
        let trail = std::fs::read_dir(self.home().join("audit"))
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect::<String>();
        assert!(trail.contains("touch is denied in this test"), "{trail}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// `cmd` started through `prefix` (same arguments, environment and directory).
fn wrap(cmd: Command, prefix: &[&str]) -> Command {
    let Some((first, rest)) = prefix.split_first() else {
        return cmd;
    };
    let mut wrapped = Command::new(first);
    wrapped
        .args(rest)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped.stdin(Stdio::null());
    wrapped
}

fn as_uid(uid: u32, program: &Path) -> Command {
    if uid == euid() {
        return Command::new(program);
    }
    let mut cmd = crate::util::clean(Command::new("setpriv"));
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(program);
    cmd
}

#[test]
fn without_protect_the_probes_do_reach_the_server_and_token() {
    // The attack script's probes are real: without --protect (as the same user) the
    // token is readable and the server visible. Only looks, changes nothing.
    let Some(f) = Fixture::new(euid()) else {
        return;
    };
    let script = f.dir.path().join("attack.sh");
    let out = f
        .launcher("preload", false, &["bash", script.to_str().unwrap()])
        .env("ONLY_LOOK", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "read-token BROKEN\nsee-server BROKEN\n", "{out:?}");
}

#[test]
fn preload_protect_holds_against_the_agent_as_root() {
    if euid() != 0 {
        println!("SKIPPED: the root case needs a root test run");
        return;
    }
    let Some(f) = Fixture::new(0) else { return };
    f.attack("preload");
}

#[test]
fn preload_protect_holds_against_root_without_cap_sys_admin() {
    // Root in an unprivileged container: no CAP_SYS_ADMIN, so the setup goes through a
    // user namespace of its own, like an ordinary user's.
    if euid() != 0 {
        println!("SKIPPED: the root case needs a root test run");
        return;
    }
    let Some(f) = Fixture::new(0) else { return };
    f.attack_through("preload", &["setpriv", "--bounding-set", "-sys_admin"]);
}

#[test]
fn preload_protect_holds_against_the_agent_as_an_ordinary_user() {
    let Some(f) = Fixture::new(USER) else { return };
    f.attack("preload");
}

#[test]
fn supervise_protect_holds_against_the_agent_as_root() {
    if euid() != 0 {
        println!("SKIPPED: the root case needs a root test run");
        return;
    }
    let Some(f) = Fixture::new(0) else { return };
    f.attack("supervise");
}

#[test]
fn supervise_protect_holds_against_the_agent_as_an_ordinary_user() {
    let Some(f) = Fixture::new(USER) else { return };
    f.attack("supervise");
}

#[test]
fn exit_status_and_signals_pass_through() {
    let uid = if euid() == 0 { USER } else { euid() };
    let Some(f) = Fixture::new(uid) else {
        return;
    };
    for how in ["preload", "supervise"] {
        let out = f.run(how, true, &["sh", "-c", "exit 7"]);
        assert_eq!(out.status.code(), Some(7), "{how}: {out:?}");
        // Death by a signal is reported as a shell does: 128 + the signal.
        let out = f.run(how, true, &["sh", "-c", "kill -TERM $$"]);
        assert_eq!(out.status.code(), Some(143), "{how}: {out:?}");
        let out = f.run(how, true, &["sh", "-c", "kill -KILL $$"]);
        assert_eq!(out.status.code(), Some(137), "{how}: {out:?}");

        // A signal sent to the launcher reaches CMD (USR1, then TERM for a second CMD).
        for (sig, code) in [("USR1", 42), ("TERM", 43), ("HUP", 44)] {
            let ready = f.dir.path().join("scratch/ready");
            let _ = std::fs::remove_file(&ready);
            let script = format!(
                "trap 'echo got-{sig}; exit {code}' {sig}; echo > {}; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; exit 3",
                ready.display()
            );
            let child = f
                .launcher(how, true, &["bash", "-c", &script])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            assert!(
                wait_until(30, || ready.exists()),
                "{how}: CMD never started"
            );
            crate::util::signal(child.id(), sig);
            let out = child.wait_with_output().unwrap();
            if how == "supervise" && sig == "USR1" {
                // The supervisor passes TERM and HUP on (its own rule); USR1 ends it.
                continue;
            }
            assert_eq!(out.status.code(), Some(code), "{how} {sig}: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("got-{sig}\n"));
        }
    }
}

#[test]
fn protect_refuses_in_one_line_where_user_namespaces_are_forbidden() {
    // user.max_user_namespaces is per user namespace: set to 0 inside a throw-away one
    // (no host setting touched), the launcher there cannot create its own.
    let Some(f) = Fixture::new(euid()) else {
        return;
    };
    let marker = f.dir.path().join("scratch/ran");
    for how in ["preload", "supervise"] {
        let inner = f.launcher(
            how,
            true,
            &["sh", "-c", &format!("echo > {}", marker.display())],
        );
        let mut words: Vec<String> = vec![inner.get_program().to_string_lossy().into_owned()];
        words.extend(inner.get_args().map(|a| a.to_string_lossy().into_owned()));
        let quoted: Vec<String> = words
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
            .collect();
        let mut cmd = crate::util::clean(Command::new("unshare"));
        cmd.args(["-U", "-r", "sh", "-c"]).arg(format!(
            "echo 0 > /proc/sys/user/max_user_namespaces && exec {}",
            quoted.join(" ")
        ));
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.current_dir(f.dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("unshare: ") {
            println!("SKIPPED: cannot create a throw-away user namespace here: {stderr}");
            return;
        }
        assert_eq!(out.status.code(), Some(126), "{how}: {out:?}");
        assert_eq!(
            stderr,
            "rampart: [ERROR] --protect: cannot create the agent's nested user namespace (No space left on device): user namespaces are switched off or used up (user.max_user_namespaces is 0 or reached); fix: `sysctl -w user.max_user_namespaces=15000` as root (on the host, or in the parent of this container), or run without --protect. Nothing was run.\n",
            "{how}"
        );
        assert!(!marker.exists(), "{how}: CMD ran without protection");
    }
}

#[test]
fn rampart_protect_in_the_environment_turns_protection_on() {
    let Some(f) = Fixture::new(euid()) else {
        return;
    };
    let out = f
        .launcher(
            "preload",
            false,
            &[
                "sh",
                "-c",
                "test -e $RAMPART_HOME/token; echo $? $RAMPART_PROTECT $RAMPART_FAIL_OPEN",
            ],
        )
        .env("RAMPART_PROTECT", "1")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 1 false\n",
        "{out:?}"
    );
    let out = f
        .launcher(
            "preload",
            false,
            &["sh", "-c", "test -e $RAMPART_HOME/token; echo $?"],
        )
        .env("RAMPART_PROTECT", "0")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n", "{out:?}");
}

#[test]
fn an_unreachable_server_refuses_under_protect_whatever_fail_open_says() {
    let Some(f) = Fixture::new(euid()) else {
        return;
    };
    // A port nobody listens on: the launcher's own check of CMD refuses.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let marker = f.dir.path().join("scratch/ran-unchecked");
    let out = as_uid(euid(), &binary())
        .args([
            "preload",
            "--port",
            &port.to_string(),
            "--no-autostart",
            "--fail-open=true",
            "--protect",
            "--",
        ])
        .args(["sh", "-c", &format!("echo > {}", marker.display())])
        .env("RAMPART_HOME", f.home())
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "rampart: [ERROR] Not started: no policy server answered at http://127.0.0.1:{port} "
        )) && stderr.contains("and RAMPART_PROTECT is set"),
        "{stderr}"
    );
    assert!(!marker.exists());
}

#[test]
fn policies_and_audit_outside_the_home_are_hidden_too() {
    // `serve --policies DIR --audit-dir DIR` elsewhere: the launcher asks the server
    // where they are and hides them like the home.
    let Some(f) = Fixture::start(euid(), true) else {
        return;
    };
    let out = f.dir.path().join("outside");
    let script = r#"
attempt() { local name=$1; shift; if ( "$@" ) >/dev/null 2>&1; then echo "$name BROKEN"; else echo "$name held"; fi; }
attempt read-policy sh -c 'read -r l < "$OUT/policies/test.yaml"'
attempt plant-policy sh -c 'echo "version: 1" > "$OUT/policies/zz.yaml"'
attempt write-audit sh -c 'ls "$OUT"/audit/*.jsonl && for f in "$OUT"/audit/*.jsonl; do echo "{}" >> "$f"; done'
touch "$SCRATCH/victim"; echo "touch-exit $?"
"#;
    let file = f.dir.path().join("outside.sh");
    std::fs::write(&file, script).unwrap();
    let run = f
        .launcher("preload", true, &["bash", file.to_str().unwrap()])
        .env("OUT", &out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        stdout, "read-policy held\nplant-policy held\nwrite-audit held\ntouch-exit 126\n",
        "{run:?}"
    );
    assert!(!out.join("policies/zz.yaml").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("policies/test.yaml")).unwrap(),
        POLICY
    );
}
