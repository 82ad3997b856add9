//! The launchers prove the configuration before CMD runs (issue 12 item 5, issue 16):
//! `rampart preload` and `rampart supervise` use the contract's URL rules and decision
//! matrix, refuse to start (126, one line) on a configuration the library would not use,
//! warn loudly when nobody answered and fail-open runs CMD, claim an autostart only when a
//! server answers where the library looks, and reject mistyped flags.
//!
//! Destructive commands only ever reach a fake `touch` that records its argv. Where a
//! test needs no real server it runs the launcher as the ordinary user uid 1000 (when the
//! tests run as root), as a user would.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::library;
use crate::util::{Home, Run, SEED_POLICY, Server, events, python, run, wait_until};

const PATH: &str = "/usr/bin:/bin";
const FAIL_OPEN_ADVICE: &str =
    "start the server (rampart serve --background) or use --fail-open=false to refuse instead";

use crate::util::is_root;

/// A scratch directory with a fake `touch` that appends its argv to `touched` (so a test
/// sees whether it ran), owned by uid 1000 when we are root. Its name is digits only: the
/// seed policy asks about any command containing `nc`, and the path is in the command.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("rampart-")
            .rand_bytes(0)
            .suffix(&format!("{}-{}", std::process::id(), next()))
            .tempdir()
            .unwrap();
        let touch = dir.path().join("touch");
        std::fs::write(
            &touch,
            format!(
                "#!/bin/sh\necho \"touch $*\" >> {}\n",
                dir.path().join("touched").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&touch, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Scratch { dir };
        s.give_to_user(s.path());
        s.give_to_user(&touch);
        s
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn touch(&self) -> String {
        self.path().join("touch").display().to_string()
    }

    /// What the fake `touch` recorded ("" when it never ran).
    fn touched(&self) -> String {
        std::fs::read_to_string(self.path().join("touched")).unwrap_or_default()
    }

    /// A bash script in the scratch directory.
    fn script(&self, name: &str, body: &str) -> String {
        let path = self.path().join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn give_to_user(&self, path: &Path) {
        if is_root() {
            let status = Command::new("chown").arg("1000:1000").arg(path).status();
            assert!(status.unwrap().success());
        }
    }
}

/// `rampart ARGS` with a small fixed environment in `home`, cwd in the scratch directory.
/// As uid 1000 (`setpriv`) when we are root and `as_user`; the home is then given to it.
fn rampart(home: &Home, scratch: &Scratch, as_user: bool, args: &[&str]) -> Command {
    let exe = env!("CARGO_BIN_EXE_rampart");
    let mut cmd = if as_user && is_root() {
        let status = Command::new("chown")
            .args(["-R", "1000:1000"])
            .arg(home.path())
            .status();
        assert!(status.unwrap().success());
        let mut c = crate::util::clean(Command::new("setpriv"));
        c.args(["--reuid", "1000", "--regid", "1000", "--clear-groups", exe]);
        c
    } else {
        if as_user {
            println!("NOTE: not root, so this runs as the current user instead of uid 1000");
        }
        Command::new(exe)
    };
    cmd.env_clear()
        .env("RAMPART_HOME", home.path())
        .env("HOME", home.path())
        .env("PATH", PATH)
        .env("LC_ALL", "C")
        .current_dir(scratch.path())
        .args(args);
    cmd
}

/// A number unique within this test run.
fn next() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `preload/tests/fake_server.py`: a server that misbehaves on purpose (its mode file
/// switches it at any time: `normal`, `503`, `close`, …). Killed when dropped.
struct Fake {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Fake {
    fn start(mode: &str) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mode"), mode).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(
            dir.path().join("mode"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../preload/tests/fake_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg("--log")
            .arg(dir.path().join("log"))
            .arg("--mode-file")
            .arg(dir.path().join("mode"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap();
        Fake { child, port, dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn mode_file(&self) -> PathBuf {
        self.dir.path().join("mode")
    }

    /// The bodies of the requests it received, in order.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"].clone())
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const RELATIVE: &str = "a relative unix: socket path (give an absolute path: the library runs in every working directory)";

/// Before: the launcher's client accepted `unix:rampart.sock` (resolved against its own
/// working directory), checked CMD and ran it, and the library — which refuses relative
/// socket paths — then failed open on every later exec, silently. Now the launcher
/// refuses with the library's reason, and runs nothing. As an ordinary user.
#[test]
fn a_relative_unix_url_is_refused_with_the_library_s_reason_and_nothing_runs() {
    library();
    let home = Home::new();
    let scratch = Scratch::new();
    let touch = scratch.touch();
    for sub in ["preload", "supervise"] {
        let r = run(
            rampart(
                &home,
                &scratch,
                true,
                &[
                    sub,
                    "--url",
                    "unix:rampart.sock",
                    "--no-autostart",
                    "--",
                    &touch,
                    "f",
                ],
            ),
            20,
        );
        assert_eq!(
            (r.code(), r.stdout(), r.stderr()),
            (
                126,
                String::new(),
                format!("rampart: [ERROR] Not started: --url unix:rampart.sock is {RELATIVE}\n")
            ),
            "{sub}"
        );
    }
    // The same from the environment, with a server answering on that relative path in
    // the working directory (the old client's check then succeeded).
    let mut cmd = rampart(&home, &scratch, true, &["preload", "--", &touch, "g"]);
    cmd.env("RAMPART_URL", "unix:rampart.sock");
    let r = run(cmd, 20);
    assert_eq!(
        (r.code(), r.stderr()),
        (
            126,
            format!("rampart: [ERROR] Not started: RAMPART_URL unix:rampart.sock is {RELATIVE}\n")
        )
    );
    assert_eq!(scratch.touched(), "");
}

/// Before: `--port Q` while this home's server listened elsewhere printed "started one in
/// the background" (the background start only found the running server), nothing
/// answered on Q, and every exec ran unchecked. Now: refused, naming what answers where.
#[test]
fn a_port_that_is_not_this_home_s_server_is_refused_without_a_false_started_line() {
    library();
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);
    let server = Server::start(&home, &[]);
    let scratch = Scratch::new();
    let touch = scratch.touch();
    let q = free_port().to_string();
    let listens = format!(
        "127.0.0.1:{} and unix:{}",
        server.port,
        server.socket.display()
    );
    let r = run(
        rampart(
            &home,
            &scratch,
            false,
            &["preload", "--port", &q, "--", &touch, "f"],
        ),
        30,
    );
    assert_eq!(
        (r.code(), r.stdout(), r.stderr()),
        (
            126,
            String::new(),
            format!(
                "rampart: [ERROR] Not started: no policy server answers at http://127.0.0.1:{q}, and this home's server ({}) listens on {listens}, not there; use --port {} or stop it (it runs in the foreground where it was started)\n",
                home.path().display(),
                server.port
            )
        )
    );
    let other = scratch.path().join("other.sock");
    let url = format!("unix:{}", other.display());
    let r = run(
        rampart(
            &home,
            &scratch,
            false,
            &["supervise", "--url", &url, "--", &touch, "g"],
        ),
        30,
    );
    assert_eq!(
        (r.code(), r.stderr()),
        (
            126,
            format!(
                "rampart: [ERROR] Not started: no policy server answers at {url}, and this home's server ({}) listens on {listens}, not there; use --url unix:{} or stop it (it runs in the foreground where it was started)\n",
                home.path().display(),
                server.socket.display()
            )
        )
    );
    assert!(!other.exists());
    assert_eq!(scratch.touched(), "");
    assert!(events(home.path()).is_empty());

    // At the right port the same command is checked and runs.
    let port = server.port.to_string();
    let r = run(
        rampart(
            &home,
            &scratch,
            false,
            &["preload", "--port", &port, "--", &touch, "h"],
        ),
        30,
    );
    assert_eq!((r.code(), r.stderr()), (0, String::new()));
    assert_eq!(scratch.touched(), "touch h\n");
}

/// Before: a 5xx was "the server cannot be asked" and fail-open ran CMD unchecked; an
/// agent can make a live server answer 503 (fill the audit disk, exhaust connections).
/// Now any answer that is not a well-formed allow refuses the configuration, and under
/// `rampart supervise` an exec answered 503 fails with EPERM.
#[test]
fn a_server_answering_503_refuses_cmd_and_supervised_execs_get_eperm() {
    library();
    let home = Home::new();
    let scratch = Scratch::new();
    let touch = scratch.touch();
    let fake = Fake::start("503");
    let r = run(
        rampart(
            &home,
            &scratch,
            true,
            &[
                "preload",
                "--url",
                &fake.url(),
                "--no-autostart",
                "--",
                &touch,
                "f",
            ],
        ),
        20,
    );
    assert_eq!(
        (r.code(), r.stdout(), r.stderr()),
        (
            126,
            String::new(),
            format!(
                "rampart: [ERROR] Not started: policy server error (HTTP 503) at {}: fake 503; see `rampart serve status` and the server's log\n",
                fake.url()
            )
        )
    );
    assert_eq!(scratch.touched(), "");
    // Monitor mode would never block, but with this server it would audit nothing
    // either: the launcher refuses that configuration too.
    let r = run(
        rampart(
            &home,
            &scratch,
            true,
            &[
                "preload",
                "--url",
                &fake.url(),
                "--mode",
                "monitor",
                "--no-autostart",
                "--",
                &touch,
                "f",
            ],
        ),
        20,
    );
    assert_eq!(r.code(), 126, "{}", r.stderr());
    assert_eq!(scratch.touched(), "");

    // The tree starts while the server answers; then it answers 503.
    std::fs::write(fake.mode_file(), "normal").unwrap();
    let script = scratch.script(
        "agent.sh",
        &format!(
            "echo 503 > {}\n{touch} g\necho \"rc=$?\"\n",
            fake.mode_file().display()
        ),
    );
    let r = run(
        rampart(
            &home,
            &scratch,
            false,
            &[
                "supervise",
                "--url",
                &fake.url(),
                "--no-autostart",
                "--",
                &script,
            ],
        ),
        20,
    );
    assert_eq!(
        (r.code(), r.stdout()),
        (0, "rc=126\n".to_owned()),
        "{}",
        r.stderr()
    );
    assert_eq!(
        r.stderr(),
        format!(
            "rampart: [ERROR] Policy denied: policy server error (HTTP 503) at {}: fake 503\n{script}: {touch}: /bin/sh: bad interpreter: Operation not permitted\n",
            fake.url()
        )
    );
    assert_eq!(scratch.touched(), "");
}

/// Nobody answers and fail-open is on: CMD runs, after one loud line that says so. As an
/// ordinary user.
#[test]
fn nobody_answering_with_fail_open_warns_loudly_once_and_runs() {
    library();
    let home = Home::new();
    let scratch = Scratch::new();
    let touch = scratch.touch();
    let port = free_port();
    let r = run(
        rampart(
            &home,
            &scratch,
            true,
            &[
                "preload",
                "--port",
                &port.to_string(),
                "--no-autostart",
                "--",
                &touch,
                "f",
            ],
        ),
        20,
    );
    assert_eq!(
        (r.code(), r.stdout(), r.stderr()),
        (
            0,
            String::new(),
            format!(
                "rampart: [WARN] no policy server answered at http://127.0.0.1:{port} (Connection refused (os error 111)): fail-open runs {touch} f UNCHECKED and unaudited; {FAIL_OPEN_ADVICE}\n"
            )
        )
    );
    assert_eq!(scratch.touched(), "touch f\n");
}

/// supervise's fail-open is never silent either: one `[WARN]` line per run, a count of
/// the execs that ran unchecked, and that count sent as `ran_unchecked` with the next
/// preflight that gets an answer.
#[test]
fn supervise_counts_unchecked_execs_and_reports_them_with_the_next_answered_check() {
    library();
    let home = Home::new();
    let scratch = Scratch::new();
    let touch = scratch.touch();
    // "close": the server reads each request and closes without a byte of answer.
    let fake = Fake::start("close");
    let script = scratch.script(
        "agent.sh",
        &format!(
            "{touch} one\n{touch} two\necho normal > {}\n{touch} three\n",
            fake.mode_file().display()
        ),
    );
    let r = run(
        rampart(
            &home,
            &scratch,
            false,
            &[
                "supervise",
                "--url",
                &fake.url(),
                "--no-autostart",
                "--",
                &script,
            ],
        ),
        30,
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(
        r.stderr(),
        format!(
            "rampart: [WARN] no policy server answered at {} (the server closed the connection without answering): fail-open runs {script} UNCHECKED and unaudited; {FAIL_OPEN_ADVICE}; later unchecked execs are counted and reported to the server when it answers\n",
            fake.url()
        )
    );
    assert_eq!(scratch.touched(), "touch one\ntouch two\ntouch three\n");
    let requests = fake.requests();
    let last = requests.last().unwrap();
    assert_eq!(
        last["argv"],
        serde_json::json!([touch, "three"]),
        "{requests:#?}"
    );
    assert_eq!(last["ran_unchecked"], 3, "{requests:#?}");
    // Nothing reported twice: counts sent with unanswered checks were carried forward.
    assert_eq!(requests[0].get("ran_unchecked"), None, "{requests:#?}");
}

/// `--fail-open=false --no-autostart` with no server: refused, saying why and what to do.
#[test]
fn fail_closed_without_autostart_and_no_server_is_refused_with_the_reason() {
    library();
    let home = Home::new();
    let scratch = Scratch::new();
    let touch = scratch.touch();
    let port = free_port();
    let r = run(
        rampart(
            &home,
            &scratch,
            true,
            &[
                "preload",
                "--port",
                &port.to_string(),
                "--fail-open=false",
                "--no-autostart",
                "--",
                &touch,
                "f",
            ],
        ),
        20,
    );
    assert_eq!(
        (r.code(), r.stdout(), r.stderr()),
        (
            126,
            String::new(),
            format!(
                "rampart: [ERROR] Not started: no policy server answered at http://127.0.0.1:{port} (Connection refused (os error 111)) and fail-open is off; start it (rampart serve --background), or drop --no-autostart to let rampart start it\n"
            )
        )
    );
    assert_eq!(scratch.touched(), "");
    // RAMPART_FAIL_OPEN=false in the environment is honoured when no flag overrides it
    // (before: the launcher handed the library RAMPART_FAIL_OPEN=true).
    let mut cmd = rampart(
        &home,
        &scratch,
        true,
        &[
            "preload",
            "--port",
            &port.to_string(),
            "--no-autostart",
            "--",
            &touch,
            "f",
        ],
    );
    cmd.env("RAMPART_FAIL_OPEN", "false");
    let r = run(cmd, 20);
    assert_eq!(r.code(), 126, "{}", r.stderr());
    assert!(
        r.stderr().contains(" and fail-open is off; "),
        "{}",
        r.stderr()
    );
    assert_eq!(scratch.touched(), "");
    // RAMPART_PROTECT (handed down to the library unchanged): silence refuses even with
    // fail-open on.
    let mut cmd = rampart(
        &home,
        &scratch,
        true,
        &[
            "preload",
            "--port",
            &port.to_string(),
            "--no-autostart",
            "--",
            &touch,
            "f",
        ],
    );
    cmd.env("RAMPART_PROTECT", "1");
    let r = run(cmd, 20);
    assert_eq!(
        (r.code(), r.stderr()),
        (
            126,
            format!(
                "rampart: [ERROR] Not started: no policy server answered at http://127.0.0.1:{port} (Connection refused (os error 111)) and RAMPART_PROTECT is set; start it (rampart serve --background), or drop --no-autostart to let rampart start it\n"
            )
        )
    );
    assert_eq!(scratch.touched(), "");
}

/// Before: clap took the first unknown flag as CMD, so `--agnet x -- ls` ran `--agnet`
/// (and the audit recorded it as allowed). A flag of ours after CMD without `--` is
/// ambiguous and refused; CMD's own flags without `--` still work.
#[test]
fn a_mistyped_flag_is_a_usage_error_and_a_missing_separator_only_where_unambiguous() {
    let home = Home::new();
    let scratch = Scratch::new();
    let touch = scratch.touch();
    let r = run(
        rampart(
            &home,
            &scratch,
            true,
            &[
                "preload",
                "--agnet",
                "x",
                "--no-autostart",
                "--",
                &touch,
                "f",
            ],
        ),
        20,
    );
    assert_eq!(r.code(), 2);
    assert_eq!(
        r.stderr().lines().next(),
        Some("error: unexpected argument '--agnet' found")
    );
    let r = run(
        rampart(
            &home,
            &scratch,
            true,
            &["supervise", "--mode", "enforcing", "--", &touch],
        ),
        20,
    );
    assert_eq!(r.code(), 2);
    assert_eq!(
        r.stderr().lines().next(),
        Some("error: invalid value 'enforcing' for '--mode <MODE>'")
    );
    let r = run(
        rampart(
            &home,
            &scratch,
            true,
            &["preload", "--no-autostart", &touch, "--mode", "monitor"],
        ),
        20,
    );
    assert_eq!(
        (r.code(), r.stderr()),
        (
            2,
            format!(
                "rampart: error: `--mode` after `{touch}` is ambiguous without `--`: write rampart preload [FLAGS] -- {touch} [ARGS...] (flags for rampart before `--`, {touch}'s after it)\n"
            )
        )
    );
    assert_eq!(scratch.touched(), "");
    // Not ambiguous: runs (unchecked here, nobody answers) with its own flags.
    let port = free_port().to_string();
    let r = run(
        rampart(
            &home,
            &scratch,
            true,
            &[
                "preload",
                "--port",
                &port,
                "--no-autostart",
                &touch,
                "-x",
                "--y",
            ],
        ),
        20,
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(scratch.touched(), "touch -x --y\n");
}

/// Before: the launcher set `RAMPART_DEBUG=0` for CMD unless `--debug` was given, so the
/// seed's troubleshooting step `RAMPART_DEBUG=1 rampart preload -- CMD` printed nothing.
#[test]
fn rampart_debug_from_the_environment_is_honoured() {
    library();
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);
    let server = Server::start(&home, &[]);
    let scratch = Scratch::new();
    let port = server.port.to_string();
    let mut cmd = rampart(
        &home,
        &scratch,
        false,
        &["preload", "--port", &port, "--", "/bin/true"],
    );
    cmd.env("RAMPART_DEBUG", "1");
    let r = run(cmd, 20);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(
        r.stderr().lines().take(4).collect::<Vec<_>>(),
        [
            "rampart: [DEBUG] Library loaded".to_owned(),
            format!("rampart: [DEBUG] URL: http://127.0.0.1:{port}"),
            "rampart: [DEBUG] Mode: enforce".to_owned(),
            "rampart: [DEBUG] Fail-open: true".to_owned(),
        ]
    );
    // And `RAMPART_DEBUG=0` still means off.
    let mut cmd = rampart(
        &home,
        &scratch,
        false,
        &["preload", "--port", &port, "--", "/bin/true"],
    );
    cmd.env("RAMPART_DEBUG", "0");
    let r = run(cmd, 20);
    assert_eq!((r.code(), r.stderr()), (0, String::new()));
}

/// `rampart doctor` runs the launcher's probe: what `rampart preload -- true` would find.
#[test]
fn doctor_runs_the_launcher_s_probe() {
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);
    let server = Server::start(&home, &[]);
    let scratch = Scratch::new();
    let url = format!("http://127.0.0.1:{}", server.port);
    let mut cmd = rampart(&home, &scratch, false, &["doctor"]);
    cmd.env("RAMPART_URL", &url);
    let r = run(cmd, 30);
    let probe: Vec<String> = r
        .stdout()
        .lines()
        .filter(|l| l.contains(" probe "))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        probe,
        [format!(
            "  ok    probe     `rampart preload` checks with {url}: `true` allowed (No rule matched; default action is allow)"
        )],
        "{}",
        r.stdout()
    );
    assert!(wait_until(5, || events(home.path())
        .iter()
        .any(|e| e["via"] == "rampart-doctor")));
    // Doctor says why the launcher is better than the library by hand with the admin token.
    assert!(
        r.stdout().contains(
            "they hand the agent a per-run credential that can only ask, never the admin token.\n"
        ),
        "{}",
        r.stdout()
    );
    let mut cmd = rampart(&home, &scratch, false, &["doctor"]);
    cmd.env("RAMPART_URL", &url)
        .env("RAMPART_TOKEN", &server.token);
    let r = run(cmd, 30);
    assert!(
        r.stdout().contains(
            "RAMPART_TOKEN here is the admin token: a library preloaded by hand with it gives\n"
        ),
        "{}",
        r.stdout()
    );

    // The library would refuse this URL: doctor says `rampart preload` would not start.
    let mut cmd = rampart(&home, &scratch, false, &["doctor"]);
    cmd.env("RAMPART_URL", "unix:rampart.sock");
    let r = run(cmd, 30);
    assert_eq!(r.code(), 1);
    assert!(
        r.stdout().contains(&format!(
            "  FAIL  probe     `rampart preload` would not start: RAMPART_URL unix:rampart.sock is {RELATIVE}\n"
        )),
        "{}",
        r.stdout()
    );
}

/// Without `--url`, `--port` or `RAMPART_URL` the launcher checks with this home's
/// running server where it listens (its port need not be the default), and never with
/// whatever answers on the default port.
#[test]
fn without_flags_the_launcher_checks_with_this_home_s_server() {
    library();
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);
    let server = Server::start(&home, &[]);
    let scratch = Scratch::new();
    let touch = scratch.touch();
    let r = run(
        rampart(&home, &scratch, false, &["preload", "--", &touch, "f"]),
        30,
    );
    assert_eq!((r.code(), r.stderr()), (0, String::new()));
    assert_eq!(scratch.touched(), "touch f\n");
    let checked: Vec<Value> = events(home.path())
        .into_iter()
        .filter(|e| e["via"] == "rampart-preload")
        .collect();
    assert_eq!(checked.len(), 1, "{checked:#?}");
    assert_eq!(checked[0]["argv"], serde_json::json!([touch, "f"]));
    assert_eq!(checked[0]["agent"], "preload");

    // Agent and session come from the environment when no flag sets them (before: the
    // launcher replaced them with `preload` and `preload-<pid>`, so agent-specific
    // policies did not apply to CMD or anything below it).
    let mut cmd = rampart(&home, &scratch, false, &["preload", "--", &touch, "g"]);
    cmd.env("RAMPART_AGENT", "my-agent")
        .env("RAMPART_SESSION", "prod-7");
    let r = run(cmd, 30);
    assert_eq!((r.code(), r.stderr()), (0, String::new()));
    let last = events(home.path())
        .into_iter()
        .filter(|e| e["via"] == "rampart-preload")
        .find(|e| e["argv"] == serde_json::json!([touch, "g"]))
        .unwrap();
    assert_eq!(
        (&last["agent"], &last["session"]),
        (&serde_json::json!("my-agent"), &serde_json::json!("prod-7"))
    );

    // Where it checks: the home's Unix socket (the server's fast path), not its port.
    let r = run(
        rampart(
            &home,
            &scratch,
            false,
            &["preload", "--", "/usr/bin/printenv", "RAMPART_URL"],
        ),
        30,
    );
    assert_eq!(
        (r.code(), r.stdout()),
        (0, format!("unix:{}\n", server.socket.display()))
    );
    drop(server);
}

/// A server that answers 413 as soon as it has a request's headers and then stops
/// reading (its answer sent and its side shut, the connection held open): the client's
/// body write stalls and fails. The supervisor's kept-alive client used to take that
/// failed write for "nobody answered" — so fail-open ran a 1.2 MB command unchecked.
/// The answer already there is the decision: refused. (A server of our own on a Unix
/// socket, whose small buffers make the write stall for sure, and which never resets the
/// connection, which would make the test depend on timing.)
#[test]
fn supervise_reads_an_early_413_instead_of_failing_open() {
    use std::io::Write;
    library();
    let home = Home::new();
    let scratch = Scratch::new();
    let touch = scratch.touch();
    let socket = scratch.path().join("early.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let url = format!("unix:{}", socket.display());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut stream = reader.into_inner();
                let answer = if first.starts_with("GET /healthz") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_owned()
                } else {
                    let body = r#"{"error": "request body too large"}"#;
                    format!(
                        "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(answer.as_bytes());
                let _ = stream.shutdown(std::net::Shutdown::Write);
                // Hold the connection without reading: the client's write stalls.
                std::thread::sleep(Duration::from_secs(20));
            });
        }
    });
    let big = "x".repeat(100_000);
    let mut args = vec![
        "supervise",
        "--url",
        &url,
        "--no-autostart",
        "--ask-timeout",
        "0",
        "--",
        &touch,
    ];
    for _ in 0..12 {
        args.push(&big);
    }
    let r = run(rampart(&home, &scratch, false, &args), 30);
    assert_eq!(
        (r.code(), r.stdout(), r.stderr()),
        (
            126,
            String::new(),
            format!(
                "rampart: [ERROR] Not started: unexpected answer from the policy server (HTTP 413) at {url}: request body too large\n"
            )
        )
    );
    assert_eq!(scratch.touched(), "");
}

/// The contract's matrix under `rampart supervise`, answer by answer: the tree starts
/// while the server answers, then the server misbehaves in one way and the script execs
/// the fake `touch`. Only a well-formed allow runs it; nobody answering runs it with the
/// `[WARN]` line (fail-open); every other answer is `EPERM` with the reason.
#[test]
fn supervise_follows_the_contract_for_every_kind_of_bad_answer() {
    library();
    let home = Home::new();
    let fake = Fake::start("normal");
    let url = fake.url();
    let eperm = |reason: &str| format!("rampart: [ERROR] Policy denied: {reason}\n");
    let cases: Vec<(&str, Option<String>)> = vec![
        ("chunked", None),
        (
            "401",
            Some(eperm(&format!(
                "the policy server refused our token (HTTP 401) at {url}: fake 401"
            ))),
        ),
        (
            "403",
            Some(eperm(&format!(
                "the policy server refused our token (HTTP 403) at {url}: fake 403"
            ))),
        ),
        (
            "500",
            Some(eperm(&format!(
                "policy server error (HTTP 500) at {url}: fake 500"
            ))),
        ),
        (
            "502",
            Some(eperm(&format!(
                "policy server error (HTTP 502) at {url}: fake 502"
            ))),
        ),
        (
            "malformed",
            Some(eperm(&format!(
                "malformed answer from the policy server at {url} (no boolean `allowed` in its JSON)"
            ))),
        ),
        (
            "stringbool",
            Some(eperm(&format!(
                "malformed answer from the policy server at {url} (no boolean `allowed` in its JSON)"
            ))),
        ),
        (
            "instring",
            Some(eperm(&format!(
                "malformed answer from the policy server at {url} (no boolean `allowed` in its JSON)"
            ))),
        ),
        (
            "oversized",
            Some(eperm(&format!(
                "oversized answer from the policy server at {url} (the answer is larger than 16384 bytes)"
            ))),
        ),
        (
            "huge",
            Some(eperm(&format!(
                "oversized answer from the policy server at {url} (the answer is larger than 16384 bytes)"
            ))),
        ),
        (
            "huge-close",
            Some(eperm(&format!(
                "oversized answer from the policy server at {url} (the answer is larger than 16384 bytes)"
            ))),
        ),
        (
            "cut-body",
            Some(eperm(&format!(
                "malformed answer from the policy server at {url} (the answer broke off: failed to fill whole buffer)"
            ))),
        ),
        (
            "cut-headers",
            Some(eperm(&format!(
                "malformed answer from the policy server at {url} (no boolean `allowed` in its JSON)"
            ))),
        ),
    ];
    for (mode, refusal) in &cases {
        std::fs::write(fake.mode_file(), "normal").unwrap();
        let scratch = Scratch::new();
        let touch = scratch.touch();
        let script = scratch.script(
            "agent.sh",
            &format!("echo {mode} > {}\n{touch} f\n", fake.mode_file().display()),
        );
        let r = run(
            rampart(
                &home,
                &scratch,
                false,
                &["supervise", "--url", &url, "--no-autostart", "--", &script],
            ),
            30,
        );
        let (touched, stderr) = match refusal {
            None => ("touch f\n".to_owned(), String::new()),
            Some(line) => (
                String::new(),
                format!(
                    "{line}{script}: {touch}: /bin/sh: bad interpreter: Operation not permitted\n"
                ),
            ),
        };
        assert_eq!(
            (mode, scratch.touched(), r.stderr()),
            (mode, touched, stderr)
        );
    }
}

/// One deadline covers a whole check, as in the library: a server that drips a
/// (well-formed) answer a byte at a time is "no answer in time" after 2 s (before: each
/// read had its own 2 s, so the check waited out the whole ~10 s drip).
#[test]
fn a_dripping_answer_is_no_answer_in_time() {
    library();
    let home = Home::new();
    let scratch = Scratch::new();
    let touch = scratch.touch();
    let fake = Fake::start("drip-slow");
    let url = fake.url();
    let r = run(
        rampart(
            &home,
            &scratch,
            true,
            &[
                "preload",
                "--url",
                &url,
                "--no-autostart",
                "--ask-timeout",
                "0",
                "--fail-open=false",
                "--",
                &touch,
                "f",
            ],
        ),
        30,
    );
    assert_eq!(
        (r.code(), r.stderr()),
        (
            126,
            format!(
                "rampart: [ERROR] Not started: no policy server answered at {url} (no answer in time) and fail-open is off; start it (rampart serve --background), or drop --no-autostart to let rampart start it\n"
            )
        )
    );
    assert_eq!(scratch.touched(), "");
}

/// Issue 16: a throw-away `RAMPART_HOME` (the README's tip) still finds the installed
/// library — beside the installed binary (`<prefix>/lib/rampart/`), else in the real
/// `~/.rampart/lib` — and an installed binary looks in no build tree and no
/// `/usr/local/lib` it was never installed to.
#[test]
fn a_throw_away_home_finds_the_installed_library() {
    let lib = library();
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().join("prefix");
    let user = root.path().join("user");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(&user).unwrap();
    let rampart = prefix.join("bin/rampart");
    std::fs::copy(env!("CARGO_BIN_EXE_rampart"), &rampart).unwrap();
    let home = Home::new();
    let run = |args: &[&str]| {
        Run(home
            .cmd_of(&rampart)
            .env("HOME", &user)
            .args(args)
            .output()
            .unwrap())
    };
    let r = run(&["preload", "--no-autostart", "--", "true"]);
    assert_eq!(
        (r.code(), r.stderr()),
        (
            2,
            format!(
                "rampart: error: librampart.so not found (looked in {}/lib/librampart.so, {}/lib/rampart/librampart.so, {}/.rampart/lib/librampart.so); build and install it with `make install`\n",
                home.path().display(),
                prefix.display(),
                user.display()
            )
        )
    );
    let library_line = |r: Run| {
        r.stdout()
            .lines()
            .find(|l| l.starts_with("  ok    library "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{}", r.stdout()))
    };
    let in_user = user.join(".rampart/lib/librampart.so");
    std::fs::create_dir_all(in_user.parent().unwrap()).unwrap();
    std::fs::copy(&lib, &in_user).unwrap();
    assert_eq!(
        library_line(run(&["doctor"])),
        format!(
            "  ok    library   {} loads (LD_PRELOAD=… /bin/true)",
            in_user.display()
        )
    );
    let in_prefix = prefix.join("lib/rampart/librampart.so");
    std::fs::create_dir_all(in_prefix.parent().unwrap()).unwrap();
    std::fs::copy(&lib, &in_prefix).unwrap();
    assert_eq!(
        library_line(run(&["doctor"])),
        format!(
            "  ok    library   {} loads (LD_PRELOAD=… /bin/true)",
            in_prefix.display()
        )
    );
}

/// Issue 16: a program that never started is not in the audit trail as an "allow".
/// `rampart preload` says it cannot run a CMD that does not exist as a shell would (127,
/// the same line as `rampart supervise`) before asking the server anything.
#[test]
fn a_program_that_does_not_exist_is_not_audited_as_allowed() {
    library();
    let home = Home::new();
    let server = Server::start(&home, &[]);
    for program in ["no-such-program-xyz", "/no/such/program"] {
        let r = Run(home
            .cmd()
            .args(["preload", "--", program, "arg"])
            .output()
            .unwrap());
        assert_eq!(
            (r.code(), r.stderr()),
            (
                127,
                format!("rampart: cannot run {program}: No such file or directory (os error 2)\n")
            )
        );
    }
    // Found on PATH but not executable: "Permission denied", 126, as a shell says it.
    let bin = tempfile::tempdir().unwrap();
    let plain = bin.path().join("plain-file");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = Run(home
        .cmd()
        .env("PATH", bin.path())
        .args(["preload", "--", "plain-file"])
        .output()
        .unwrap());
    assert_eq!(
        (r.code(), r.stderr()),
        (
            126,
            "rampart: cannot run plain-file: Permission denied (os error 13)\n".to_owned()
        )
    );
    // The server answered nothing for them: its trail holds no event at all.
    let r = home.run(&["audit", "search"]);
    assert_eq!(r.stdout(), "No matching audit events.\n");
    drop(server);
}
