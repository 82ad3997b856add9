//! Approvals that reach a person (issue 15): the `[WAIT]` line on the controlling
//! terminal with the approval id to type, whatever the agent does with its stderr.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{Home, Server, events, mask_wait, python};

const POLICY: &str = r#"version: "1"
default_action: allow
policies:
  - name: test-ask
    match:
      tool: ["exec"]
    rules:
      - action: ask
        when:
          command_contains: ["askme"]
        message: "askme needs a person"
"#;

fn library() -> PathBuf {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../preload/build/librampart.so");
    assert!(
        lib.is_file(),
        "{} is missing: run `make -C preload` first (these tests need the real library)",
        lib.display()
    );
    lib.canonicalize().unwrap()
}

fn harness() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/agents/pty_harness.py")
        .display()
        .to_string()
}

struct Setup {
    home: Home,
    server: Server,
}

impl Setup {
    fn new() -> Setup {
        library();
        let home = Home::new();
        home.policy("custom.yaml", POLICY);
        let server = Server::start(&home, &[]);
        Setup { home, server }
    }

    /// Runs `rampart preload … -- CMD` on a pseudo-terminal (`pty_harness.py`), which
    /// answers the first wait line it sees with `answer`; returns the harness's report.
    fn on_terminal(&self, answer: &str, cmd: &[&str]) -> Value {
        self.on_terminal_as(None, answer, cmd)
    }

    fn on_terminal_as(&self, user: Option<&Path>, answer: &str, cmd: &[&str]) -> Value {
        self.on_terminal_with("preload", user, answer, cmd)
    }

    /// `on_terminal`, the launcher (and so the agent) run as `user` (a uid) when given:
    /// through `setpriv`, with a home of its own; the harness stays root so that it can
    /// answer with the admin token, as the person at the terminal would.
    fn on_terminal_with(
        &self,
        how: &str,
        user: Option<&Path>,
        answer: &str,
        cmd: &[&str],
    ) -> Value {
        let mut launcher: Vec<String> = Vec::new();
        if let Some(home) = user {
            launcher.extend(
                [
                    "setpriv",
                    "--reuid",
                    "1000",
                    "--regid",
                    "1000",
                    "--clear-groups",
                    "/usr/bin/env",
                ]
                .map(str::to_owned),
            );
            launcher.push(format!("RAMPART_HOME={}", home.display()));
            launcher.push(format!("HOME={}", home.display()));
        }
        let out = Command::new(python())
            .env_clear()
            .env("RAMPART_HOME", self.home.path())
            .env("HOME", self.home.path())
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("PTY_RAMPART", env!("CARGO_BIN_EXE_rampart"))
            .env("PTY_ANSWER", answer)
            // `who` is "$USER (rampart approve)": fixed whatever the runner's user is.
            .env("USER", "someone")
            .arg(harness())
            .args(&launcher)
            .arg(env!("CARGO_BIN_EXE_rampart"))
            .args([how, "--url"])
            .arg(format!("http://127.0.0.1:{}", self.server.port))
            .args(["--token", &self.server.token, "--no-autostart"])
            .args(["--ask-timeout", "30s", "--"])
            .args(cmd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "harness failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The agent: spawns `/bin/echo askme` (spelled apart so its own command line is not an
/// ask) with the child's stderr discarded, as agents do.
const AGENT: &str = "import subprocess, sys\n\
try:\n    r = subprocess.run(['/bin/echo', 'ask' + 'me'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)\n    print('ran', r.returncode, r.stdout.decode().strip())\n\
except PermissionError as e:\n    print('refused', e.errno)\n";

/// `AGENT` with the child's stderr left alone, so the library's refusal line shows.
const AGENT_STDERR: &str = "import subprocess, sys\n\
try:\n    r = subprocess.run(['/bin/echo', 'ask' + 'me'], stdout=subprocess.PIPE)\n    print('ran', r.returncode, r.stdout.decode().strip())\n\
except PermissionError as e:\n    print('refused', e.errno)\n";

fn tty_lines(report: &Value) -> Vec<String> {
    report["tty"]
        .as_str()
        .unwrap()
        .lines()
        .map(mask_wait)
        .collect()
}

const WAIT_ECHO: &str = "rampart: [WAIT] Waiting for approval of: /bin/echo askme (agent preload, approval ID, Ns left) -- type 'rampart approve ID' or 'rampart deny ID', or see the dashboard";

#[test]
fn wait_line_reaches_the_terminal_while_the_agent_discards_stderr() {
    let s = Setup::new();
    let report = s.on_terminal("approve", &[python(), "-c", AGENT]);
    let id = report["answered"]
        .as_str()
        .expect("no approval id on the terminal");
    assert_eq!(report["stdout"], "ran 0 askme\n", "{report:#}");
    // Nothing on the agent's stderr: the wait went to the terminal only.
    assert_eq!(report["stderr"], "", "{report:#}");
    assert_eq!(
        tty_lines(&report),
        [
            WAIT_ECHO.to_owned(),
            format!(
                "rampart: [WAIT] Approval {id}: approved by someone (rampart approve) (runs): /bin/echo askme"
            ),
        ],
        "{report:#}"
    );
    let raw = report["tty"].as_str().unwrap();
    assert!(raw.contains(&format!("'rampart approve {id}' or 'rampart deny {id}'")));
}

#[test]
fn a_denied_wait_ends_with_one_line_on_the_terminal() {
    let s = Setup::new();
    let report = s.on_terminal("deny", &[python(), "-c", AGENT]);
    let id = report["answered"]
        .as_str()
        .expect("no approval id on the terminal");
    assert_eq!(report["stdout"], "refused 1\n", "{report:#}");
    assert_eq!(
        tty_lines(&report),
        [
            WAIT_ECHO.to_owned(),
            format!(
                "rampart: [WAIT] Approval {id}: denied by someone (rampart deny) (refused): /bin/echo askme"
            ),
        ],
        "{report:#}"
    );
}

#[test]
fn the_launchers_own_check_of_cmd_announces_its_wait_on_the_terminal() {
    let s = Setup::new();
    let report = s.on_terminal("approve", &["/bin/echo", "askme"]);
    let id = report["answered"]
        .as_str()
        .expect("no approval id on the terminal");
    assert_eq!(report["stdout"], "askme\n", "{report:#}");
    assert_eq!(report["stderr"], "", "{report:#}");
    assert_eq!(
        tty_lines(&report),
        [
            WAIT_ECHO.to_owned(),
            format!(
                "rampart: [WAIT] Approval {id}: approved by someone (rampart approve) (runs): /bin/echo askme"
            ),
        ],
        "{report:#}"
    );
}

use crate::util::is_root;

#[test]
fn as_an_ordinary_user_the_wait_line_reaches_the_terminal() {
    if !is_root() {
        println!(
            "SKIPPED as_an_ordinary_user_the_wait_line_reaches_the_terminal: needs root to become uid 1000"
        );
        return;
    }
    let s = Setup::new();
    let user_home = tempfile::Builder::new()
        .prefix("rampart-user-")
        .tempdir()
        .unwrap();
    let status = Command::new("chown")
        .args(["1000:1000"])
        .arg(user_home.path())
        .status()
        .unwrap();
    assert!(status.success());
    // The system Python: the test's own may live under root's home.
    let report = s.on_terminal_as(
        Some(user_home.path()),
        "approve",
        &["/usr/bin/python3", "-c", AGENT],
    );
    let id = report["answered"]
        .as_str()
        .expect("no approval id on the terminal");
    assert_eq!(report["stdout"], "ran 0 askme\n", "{report:#}");
    assert_eq!(report["stderr"], "", "{report:#}");
    assert_eq!(
        tty_lines(&report),
        [
            WAIT_ECHO.to_owned(),
            format!(
                "rampart: [WAIT] Approval {id}: approved by someone (rampart approve) (runs): /bin/echo askme"
            ),
        ],
        "{report:#}"
    );
}

impl Setup {
    /// `rampart LAUNCHER --url … --token … --no-autostart FLAGS -- CMD` with a fixed small
    /// environment plus `env`, stdin closed; its output.
    fn launch(
        &self,
        launcher: &str,
        env: &[(&str, &str)],
        flags: &[&str],
        cmd: &[&str],
    ) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_rampart"))
            .env_clear()
            .env("RAMPART_HOME", self.home.path())
            .env("HOME", self.home.path())
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .envs(env.iter().copied())
            .arg(launcher)
            .arg("--url")
            .arg(format!("http://127.0.0.1:{}", self.server.port))
            .args(["--token", &self.server.token, "--no-autostart"])
            .args(flags)
            .arg("--")
            .args(cmd)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn no_approval_was_ever_created(&self) {
        let r = self.server.call("GET", "/v1/approvals", None);
        assert_eq!(r.json().unwrap()["approvals"], serde_json::json!([]));
        let audit = self.server.call("GET", "/v1/audit/events?limit=100", None);
        let events = audit.json().unwrap();
        for e in events["events"].as_array().unwrap() {
            assert!(e.get("approval").is_none_or(Value::is_null), "{e:#}");
        }
    }
}

const CI_REFUSAL: &str = "rampart: [ERROR] Policy denied: askme needs a person -- an ask, refused at once: no person to ask in CI (CI=true; --ask-timeout or RAMPART_ASK_TIMEOUT makes it wait)";
const ZERO_REFUSAL: &str = "rampart: [ERROR] Policy denied: askme needs a person -- an ask, refused at once: no person to ask (the ask timeout is 0)";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn in_ci_the_library_refuses_an_ask_at_once_and_says_why() {
    let s = Setup::new();
    let started = std::time::Instant::now();
    let out = s.launch(
        "preload",
        &[("CI", "true")],
        &[],
        &[python(), "-c", AGENT_STDERR],
    );
    let took = started.elapsed();
    assert_eq!(text(&out.stdout), "refused 1\n", "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), format!("{CI_REFUSAL}\n"));
    // Loose on purpose: the default would have held it for two minutes.
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    s.no_approval_was_ever_created();
}

#[test]
fn in_ci_the_library_alone_does_not_wait() {
    let s = Setup::new();
    let out = Command::new(python())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CI", "true")
        .env("LD_PRELOAD", library())
        .env("RAMPART_URL", format!("http://127.0.0.1:{}", s.server.port))
        .env("RAMPART_TOKEN", &s.server.token)
        .args(["-c", AGENT_STDERR])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "refused 1\n", "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), format!("{CI_REFUSAL}\n"));
    s.no_approval_was_ever_created();
}

#[test]
fn in_ci_the_launcher_refuses_an_asked_cmd_at_once() {
    let s = Setup::new();
    let out = s.launch("preload", &[("CI", "true")], &[], &["/bin/echo", "askme"]);
    assert_eq!(text(&out.stdout), "");
    assert_eq!(text(&out.stderr), format!("{CI_REFUSAL}\n"));
    assert_eq!(out.status.code(), Some(126));
    s.no_approval_was_ever_created();
}

#[test]
fn ask_timeout_0_refuses_at_once_anywhere() {
    let s = Setup::new();
    // The library, under `preload`.
    let out = s.launch(
        "preload",
        &[],
        &["--ask-timeout", "0"],
        &[python(), "-c", AGENT_STDERR],
    );
    assert_eq!(text(&out.stdout), "refused 1\n", "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), format!("{ZERO_REFUSAL}\n"));
    // The launcher's own check of CMD.
    let out = s.launch(
        "preload",
        &[],
        &["--ask-timeout", "0"],
        &["/bin/echo", "askme"],
    );
    assert_eq!(text(&out.stderr), format!("{ZERO_REFUSAL}\n"));
    assert_eq!(out.status.code(), Some(126));
    // An explicit --ask-timeout wins over CI: this one waits (and times out).
    let out = s.launch(
        "preload",
        &[("CI", "true")],
        &["--ask-timeout", "1ms"],
        &["/bin/echo", "askme"],
    );
    assert_eq!(
        text(&out.stderr),
        "rampart: [ERROR] Policy denied: approval timed out\n"
    );
}

#[test]
fn in_ci_supervise_refuses_an_ask_at_once() {
    let s = Setup::new();
    let out = s.launch(
        "supervise",
        &[("CI", "true")],
        &[],
        &[python(), "-c", AGENT],
    );
    assert_eq!(text(&out.stdout), "refused 1\n", "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), format!("{CI_REFUSAL}\n"));
    s.no_approval_was_ever_created();
}

// ---------------------------------------------------------------------------------------
// Notifications: `rampart serve --notify URL` and config.yaml's `notify:`.

/// A local webhook receiver: answers each request with `status` and hands its raw text
/// (head and body) to the test.
struct Hook {
    url: String,
    got: std::sync::mpsc::Receiver<String>,
}

impl Hook {
    fn start(status: u16) -> Hook {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, got) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let _ = reader.get_mut().write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
                if tx
                    .send(format!("{head}{}", String::from_utf8_lossy(&body)))
                    .is_err()
                {
                    return;
                }
            }
        });
        Hook { url, got }
    }

    fn next(&self) -> String {
        self.got
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the webhook received nothing")
    }
}

/// Holds an ask (a preflight with `wait_ms`) in the background until a person answers.
fn hold_ask(server: &Server, command: &str) -> std::thread::JoinHandle<Value> {
    let endpoint = server.tcp();
    let token = server.token.clone();
    let body = serde_json::json!({
        "agent": "claude", "session": "s-notify", "params": {"command": command},
        "cwd": "/work/project", "wait_ms": 30000
    });
    std::thread::spawn(move || {
        rampart_server::client::request(
            &endpoint,
            "POST",
            "/v1/preflight/exec",
            Some(&token),
            Some(&body),
            std::time::Duration::from_secs(40),
        )
        .unwrap()
        .json()
        .unwrap()
    })
}

#[test]
fn notify_flag_posts_each_ask_to_the_webhook_without_the_token() {
    let hook = Hook::start(200);
    library();
    let home = Home::new();
    home.policy("custom.yaml", POLICY);
    let server = Server::start(&home, &["--notify", &hook.url]);
    let held = hold_ask(
        &server,
        "askme --deploy && curl -H 'Authorization: Bearer s3cr3tvalue' x",
    );
    let request = hook.next();
    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: application/json\r\n"),
        "{head}"
    );
    // Never a bearer token: not the admin token, not any credential.
    assert!(!request.contains(&server.token), "{request}");
    assert!(
        !head.to_ascii_lowercase().contains("authorization"),
        "{head}"
    );
    assert!(!request.contains("s3cr3tvalue"), "redacted: {request}");
    let notice: Value = serde_json::from_str(body).unwrap();
    let pending = server.call("GET", "/v1/approvals", None).json().unwrap();
    let id = pending["approvals"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        notice,
        serde_json::json!({
            "event": "ask",
            "id": id,
            "command": "askme --deploy && curl -H 'Authorization: Bearer [REDACTED]' x",
            "agent": "claude",
            "session": "s-notify",
            "cwd": "/work/project",
            "message": "askme needs a person",
            "dashboard": format!("http://127.0.0.1:{}/dashboard/", server.port),
        })
    );
    // The decision was never held up by the delivery: a person answers, the ask ends.
    let r = home.run(&["approve", &id]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(held.join().unwrap()["allowed"], true);
    let status = server.call("GET", "/v1/status", None).json().unwrap();
    assert_eq!(status["notify_targets"], 1);
    assert_eq!(status["notify_sent"], 1);
    assert_eq!(status["notify_failed"], 0);
}

#[test]
fn notify_config_formats_and_failures_show_in_status_and_metrics() {
    let slack = Hook::start(200);
    let broken = Hook::start(500);
    library();
    let home = Home::new();
    home.policy("custom.yaml", POLICY);
    std::fs::write(
        home.path().join("config.yaml"),
        format!(
            "notify:\n  - url: {}\n    format: slack\n    on: [ask, deny]\n  - url: {}\n    on: [deny]\n",
            slack.url, broken.url
        ),
    )
    .unwrap();
    let server = Server::start(&home, &[]);
    // A deny: the slack target and the broken one both hear of it.
    let answer = server.preflight(serde_json::json!({
        "agent": "claude", "session": "s1", "params": {"command": "askme-not"}, "wait_ms": 0
    }));
    assert_eq!(answer["allowed"], false);
    let request = slack.next();
    let body = request.split_once("\r\n\r\n").unwrap().1;
    let text: Value = serde_json::from_str(body).unwrap();
    let text = text["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Rampart: `askme-not` was denied (agent claude, session s1): askme needs a person"
        ),
        "{text}"
    );
    // The broken target is retried (4 attempts), then counted as failed.
    for _ in 0..4 {
        broken.next();
    }
    assert!(crate::util::wait_until(20, || {
        server.call("GET", "/v1/status", None).json().unwrap()["notify_failed"] == 1
    }));
    let r = home.run(&["serve", "status"]);
    let out = r.stdout();
    assert!(
        out.contains("  notify:   2 target(s): 1 sent, 1 failed, 0 dropped\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  notify:   last error: {}: HTTP 500\n",
            broken.url
        )),
        "{out}"
    );
    let metrics = server.call("GET", "/metrics", None).text();
    assert!(
        metrics.contains("\nrampart_notify_failed_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nrampart_notify_sent_total 1\n"),
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------------------
// One approval per command.

/// A fake program in `dir` that records its argv (one line) in `dir/NAME.log`.
fn fake_program(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$0 $*\" >> '{}'\n",
            dir.join(format!("{name}.log")).display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Waits for the one pending ask and approves it (`extra`: more flags for `approve`).
fn approve_the_ask(s: &Setup, extra: &[&str]) -> String {
    let mut id = None;
    let found = crate::util::wait_until(20, || {
        let v = s.server.call("GET", "/v1/approvals", None).json().unwrap();
        id = v["approvals"][0]["id"].as_str().map(str::to_owned);
        id.is_some()
    });
    assert!(found, "no ask became pending");
    let id = id.unwrap();
    let mut args = vec!["approve", id.as_str()];
    args.extend_from_slice(extra);
    // `who` is "$USER (rampart approve)": fixed here whatever the test runner's user is called.
    let r = crate::util::Run(
        s.home
            .cmd()
            .args(&args)
            .env("USER", "someone")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    id
}

#[test]
fn approving_bash_c_wget_lets_its_wget_run_with_no_second_ask() {
    library();
    let home = Home::new();
    home.policy("seed.yaml", crate::util::SEED_POLICY);
    let server = Server::start(&home, &[]);
    let s = Setup { home, server };
    let bin = tempfile::tempdir().unwrap();
    fake_program(bin.path(), "wget");
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let running = std::thread::spawn({
        let (home, port, token, path) = (
            s.home.path().to_owned(),
            s.server.port,
            s.server.token.clone(),
            path.clone(),
        );
        move || {
            Command::new(env!("CARGO_BIN_EXE_rampart"))
                .env_clear()
                .env("RAMPART_HOME", &home)
                .env("HOME", &home)
                .env("PATH", &path)
                .args(["preload", "--url", &format!("http://127.0.0.1:{port}")])
                .args(["--token", &token, "--no-autostart", "--ask-timeout", "20s"])
                .args([
                    "--",
                    "bash",
                    "-c",
                    "wget http://example.invalid/x; wget http://example.invalid/x",
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        }
    });
    let id = approve_the_ask(&s, &[]);
    let out = running.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    // Both wget runs happened, without a second ask.
    let log = std::fs::read_to_string(bin.path().join("wget.log")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    let events = events(s.home.path());
    let asked: Vec<&Value> = events
        .iter()
        .filter(|e| e["approval"]["id"] == id.as_str())
        .collect();
    // The bash -c itself (approved by the person), then each wget, audited against it.
    assert_eq!(asked.len(), 3, "{events:#?}");
    assert_eq!(
        asked[0]["command"],
        "bash -c 'wget http://example.invalid/x; wget http://example.invalid/x'"
    );
    for wget in &asked[1..] {
        assert_eq!(wget["decision"], "allow", "{wget:#}");
        assert_eq!(wget["command"], "wget http://example.invalid/x");
        assert!(
            wget["message"].as_str().unwrap().starts_with(&format!(
                "covered by approval {id} (this command, approved by "
            )),
            "{wget:#}"
        );
    }
    // No other ask was ever made.
    assert_eq!(
        events.iter().filter(|e| !e["approval"].is_null()).count(),
        3,
        "{events:#?}"
    );
}

#[test]
fn a_path_walk_retrying_the_same_argv_is_not_a_new_ask() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    // Three PATH entries hold `askme-tool`; the first two are not executable, so Python's
    // PATH walk tries (and the library checks) each in turn.
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs[..2] {
        let p = d.path().join("askme-tool");
        std::fs::write(&p, "#!/bin/sh\nexit 9\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    fake_program(dirs[2].path(), "askme-tool");
    let path = dirs
        .iter()
        .map(|d| d.path().display().to_string())
        .chain(["/usr/bin".to_owned(), "/bin".to_owned()])
        .collect::<Vec<_>>()
        .join(":");
    // Spelled apart: the agent's own command line is not an ask.
    let agent = "import subprocess\nprint(subprocess.run(['ask' + 'me-tool', 'go']).returncode)\n";
    let running = std::thread::spawn({
        let (home, port, token, python) = (
            s.home.path().to_owned(),
            s.server.port,
            s.server.token.clone(),
            python().to_owned(),
        );
        move || {
            Command::new(env!("CARGO_BIN_EXE_rampart"))
                .env_clear()
                .env("RAMPART_HOME", &home)
                .env("HOME", &home)
                .env("PATH", &path)
                .args(["preload", "--url", &format!("http://127.0.0.1:{port}")])
                .args(["--token", &token, "--no-autostart", "--ask-timeout", "20s"])
                .args(["--", &python, "-c", agent])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        }
    });
    let id = approve_the_ask(&s, &[]);
    let out = running.join().unwrap();
    assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
    let log = std::fs::read_to_string(dirs[2].path().join("askme-tool.log")).unwrap();
    assert!(log.ends_with("askme-tool go\n"), "{log}");
    let events = events(s.home.path());
    let approvals: Vec<&Value> = events.iter().filter(|e| !e["approval"].is_null()).collect();
    assert!(
        approvals.iter().all(|e| e["approval"]["id"] == id.as_str()),
        "one ask for the whole walk: {approvals:#?}"
    );
    // Three candidates checked: the person's answer, then two retries it covered.
    assert_eq!(approvals.len(), 3, "{approvals:#?}");
}

#[test]
fn approval_for_this_session_covers_the_same_command_later() {
    let s = Setup::new();
    let ask = |pid: i64| {
        serde_json::json!({
            "agent": "claude", "session": "s-sess", "params": {"command": "askme --deploy"},
            "pid": pid, "wait_ms": 20000
        })
    };
    let held = {
        let (endpoint, token, body) = (s.server.tcp(), s.server.token.clone(), ask(999_999));
        std::thread::spawn(move || {
            rampart_server::client::request(
                &endpoint,
                "POST",
                "/v1/preflight/exec",
                Some(&token),
                Some(&body),
                std::time::Duration::from_secs(30),
            )
            .unwrap()
            .json()
            .unwrap()
        })
    };
    let id = approve_the_ask(&s, &["--for-session"]);
    assert_eq!(held.join().unwrap()["allowed"], true);
    // Later, another process of the session: no ask, audited against the approval.
    let again = s.server.preflight(ask(999_998));
    assert_eq!(again["allowed"], true, "{again:#}");
    assert_eq!(again["approval_id"], id.as_str());
    assert!(
        again["message"].as_str().unwrap().starts_with(&format!(
            "covered by approval {id} (this session, approved by "
        )),
        "{again:#}"
    );
    // Another command, or another session, is asked about as ever.
    let mut other = ask(999_998);
    other["params"]["command"] = "askme --other".into();
    other["wait_ms"] = 0.into();
    assert_eq!(s.server.preflight(other)["allowed"], false);
    let mut elsewhere = ask(999_998);
    elsewhere["session"] = "s-other".into();
    elsewhere["wait_ms"] = 0.into();
    assert_eq!(s.server.preflight(elsewhere)["allowed"], false);
    // Deny has no session scope.
    let r = s.server.call(
        "POST",
        "/v1/approvals/01J00000000000000000000000/resolve",
        Some(serde_json::json!({"approved": true, "scope": "forever"})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

// ---------------------------------------------------------------------------------------
// Findable and countable.

/// `(ask ID: pending, 17s left)` → `(ask ID: pending, Ns left)`.
fn mask_left(line: &str) -> String {
    match line.rsplit_once(", ") {
        Some((head, tail)) if tail.ends_with("s left)") => format!("{head}, Ns left)"),
        _ => line.to_owned(),
    }
}

#[test]
fn audit_search_decision_ask_finds_every_ask_and_stats_add_up() {
    let s = Setup::new();
    let body = |command: &str, wait_ms: u64| {
        serde_json::json!({
            "agent": "claude", "session": "s-find", "params": {"command": command},
            "pid": 999_990, "wait_ms": wait_ms
        })
    };
    let hold = |command: &str| {
        let (endpoint, token, body) =
            (s.server.tcp(), s.server.token.clone(), body(command, 20000));
        std::thread::spawn(move || {
            rampart_server::client::request(
                &endpoint,
                "POST",
                "/v1/preflight/exec",
                Some(&token),
                Some(&body),
                std::time::Duration::from_secs(30),
            )
            .unwrap()
            .json()
            .unwrap()
        })
    };
    let held = hold("askme one");
    let approved = approve_the_ask(&s, &[]);
    assert_eq!(held.join().unwrap()["allowed"], true);
    let held = hold("askme two");
    let mut denied = None;
    assert!(crate::util::wait_until(20, || {
        let v = s.server.call("GET", "/v1/approvals", None).json().unwrap();
        denied = v["approvals"][0]["id"].as_str().map(str::to_owned);
        denied.is_some()
    }));
    let denied = denied.unwrap();
    let r = s
        .home
        .cmd()
        .args(["deny", &denied])
        .env("USER", "someone")
        .output()
        .unwrap();
    assert!(r.status.success());
    assert_eq!(held.join().unwrap()["allowed"], false);
    let timed_out = s.server.preflight(body("askme three", 1));
    assert_eq!(timed_out["message"], "approval timed out");
    let timed_out = timed_out["approval_id"].as_str().unwrap().to_owned();
    assert_eq!(s.server.preflight(body("askme four", 0))["allowed"], false);
    assert_eq!(s.server.preflight(body("ls", 0))["allowed"], true);

    // And one still waiting: not in the trail yet, listed by the server.
    let waiting = hold("askme five");
    let mut pending = None;
    assert!(crate::util::wait_until(20, || {
        let v = s.server.call("GET", "/v1/approvals", None).json().unwrap();
        pending = v["approvals"][0]["id"].as_str().map(str::to_owned);
        pending.is_some()
    }));
    let pending = pending.unwrap();

    let r = s.home.run(&["audit", "search", "--decision", "ask"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let tails: Vec<String> = r
        .stdout()
        .lines()
        .map(|l| l.split_once("  claude  s-find  ").unwrap().1.to_owned())
        .map(|l| mask_left(&l))
        .collect();
    assert_eq!(
        tails,
        [
            format!(
                "askme five  — askme needs a person [test-ask] (ask {pending}: pending, Ns left)"
            ),
            "askme four  — askme needs a person [test-ask] (ask: refused at once, nobody asked)"
                .to_owned(),
            format!("askme three  — approval timed out [test-ask] (ask {timed_out}: timed out)"),
            format!(
                "askme two  — denied by someone (rampart deny) [test-ask] (ask {denied}: denied by someone (rampart deny))"
            ),
            format!(
                "askme one  — approved by someone (rampart approve) [test-ask] (ask {approved}: approved by someone (rampart approve))"
            ),
        ],
        "{}",
        r.stdout()
    );
    let r = s
        .home
        .cmd()
        .args(["deny", &pending])
        .env("USER", "someone")
        .output()
        .unwrap();
    assert!(r.status.success());
    assert_eq!(waiting.join().unwrap()["allowed"], false);
    // The seed's lines add up to Total; the asks are counted by outcome, and apart.
    let r = s.home.run(&["audit", "stats"]);
    assert_eq!(
        r.stdout(),
        "Agent: claude\n  Total: 6\n  Allowed: 2\n  Denied: 4\n  Logged: 0\n  Asked: 5\n",
        "{}",
        r.stderr()
    );
}

// ---------------------------------------------------------------------------------------
// `rampart pending --watch`.

#[test]
fn pending_watch_shows_asks_as_they_come_and_answers_them() {
    use std::io::{BufRead, BufReader, Write};
    let s = Setup::new();
    let mut watch = s
        .home
        .cmd()
        .args(["pending", "--watch"])
        .env("USER", "someone")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = watch.stdin.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("pending --watch printed nothing more")
    };
    assert_eq!(
        next(),
        "Watching for asks. Answer with `a N [message]` or `d N [message]`; `q` quits."
    );
    let hold = |command: &str| {
        let (endpoint, token) = (s.server.tcp(), s.server.token.clone());
        let body = serde_json::json!({
            "agent": "claude", "session": "s-watch", "params": {"command": command},
            "wait_ms": 20000
        });
        std::thread::spawn(move || {
            rampart_server::client::request(
                &endpoint,
                "POST",
                "/v1/preflight/exec",
                Some(&token),
                Some(&body),
                std::time::Duration::from_secs(30),
            )
            .unwrap()
            .json()
            .unwrap()
        })
    };
    let first = hold("askme first");
    let line = next();
    let (number, rest) = line.split_once(' ').unwrap();
    assert_eq!(number, "[1]");
    let (id, rest) = rest.split_once("  ").unwrap();
    let rest = rest.split_once("s left  ").unwrap().1;
    assert_eq!(rest, "claude  s-watch  askme first  — askme needs a person");
    // A word is not an answer.
    writeln!(stdin, "approve").unwrap();
    assert_eq!(
        next(),
        "? `a N [message]` approves ask N, `d N [message]` denies it, `q` quits"
    );
    writeln!(stdin, "a 1 looks fine").unwrap();
    assert_eq!(next(), format!("Approved {id}: askme first"));
    let answer = first.join().unwrap();
    assert_eq!(answer["allowed"], true);
    assert_eq!(
        answer["message"],
        "approved by someone (rampart approve): looks fine"
    );
    assert_eq!(next(), format!("[1] {id} is no longer pending"));

    let second = hold("askme second");
    let line = next();
    assert!(line.starts_with("[2] "), "{line}");
    let id2 = line[4..].split_once("  ").unwrap().0.to_owned();
    writeln!(stdin, "d not today").unwrap();
    assert_eq!(next(), format!("Denied {id2}: askme second"));
    let answer = second.join().unwrap();
    assert_eq!(answer["allowed"], false);
    assert_eq!(
        answer["message"],
        "denied by someone (rampart deny): not today"
    );
    writeln!(stdin, "q").unwrap();
    let status = watch.wait().unwrap();
    assert!(status.success());
}

#[test]
fn under_supervise_the_wait_line_reaches_the_terminal() {
    let s = Setup::new();
    let report = s.on_terminal_with("supervise", None, "approve", &[python(), "-c", AGENT]);
    let id = report["answered"]
        .as_str()
        .expect("no approval id on the terminal");
    assert_eq!(report["stdout"], "ran 0 askme\n", "{report:#}");
    assert_eq!(report["stderr"], "", "{report:#}");
    assert_eq!(
        tty_lines(&report),
        [
            WAIT_ECHO.to_owned(),
            format!(
                "rampart: [WAIT] Approval {id}: approved by someone (rampart approve) (runs): /bin/echo askme"
            ),
        ],
        "{report:#}"
    );
}

#[test]
fn desktop_notifications_run_notify_send_where_a_session_bus_exists() {
    library();
    let bin = tempfile::tempdir().unwrap();
    fake_program(bin.path(), "notify-send");
    let home = Home::new();
    home.policy("custom.yaml", POLICY);
    std::fs::write(
        home.path().join("config.yaml"),
        "notify:\n  - format: desktop\n    on: [deny]\n",
    )
    .unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let server = Server::start_with_env(
        &home,
        &[],
        &[
            ("PATH", &path),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent"),
        ],
    );
    let answer = server.preflight(serde_json::json!({
        "agent": "claude", "session": "s-desk", "params": {"command": "askme-now"}, "wait_ms": 0
    }));
    assert_eq!(answer["allowed"], false);
    let log = bin.path().join("notify-send.log");
    assert!(crate::util::wait_until(20, || log.exists()));
    let line = std::fs::read_to_string(&log).unwrap();
    let args = line.split_once(' ').unwrap().1;
    assert!(
        args.starts_with("--app-name=Rampart -- Rampart: deny Rampart: `askme-now` was denied (agent claude, session s-desk): askme needs a person"),
        "{args}"
    );
}
