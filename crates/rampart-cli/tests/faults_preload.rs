//! Reliability (issue 8, items 1a and 1b): the policy server is killed with SIGKILL under
//! a long-lived preloaded agent that keeps spawning, then restarted in the same
//! `RAMPART_HOME` on the same port and socket. The same agent process — never restarted —
//! must see fail-open (every spawn runs) or fail-closed (every spawn fails with EPERM)
//! while the server is gone, and checked decisions again once it is back: the library
//! reconnects by itself, a denied command is refused again and an allowed one is audited
//! again.
//!
//! Real `rampart serve`, the real `preload/build/librampart.so` (built by
//! `make -C preload`), real Python and Node agents started by `rampart preload`.
//!
//! The agent is steered through a control file holding a phase name. It spawns only in
//! the `up1`, `down` and `up2` phases and tags every command with the phase; between them
//! the test writes a `pause*` phase and waits for the agent to acknowledge it before it
//! kills or restarts the server. So every reported outcome belongs to exactly one server
//! state, and the assertions are exact.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::library;
use crate::util::{Endpoint, Home, Server, events, request, wait_until};

/// Denies any command containing `forbidden-step`, allows the rest.
const POLICY: &str = r#"version: "1"
default_action: allow
policies:
  - name: faults-deny
    match:
      tool: ["exec"]
    rules:
      - action: deny
        when:
          command_contains: ["forbidden-step"]
        message: "Forbidden step blocked"
"#;
const NOT_LOOPBACK: &str = "is not a loopback address (plain HTTP with the token is only sent to 127.0.0.0/8, localhost or a unix: socket)";
const DENIED: &str = "rampart: [ERROR] Policy denied: Forbidden step blocked";
/// Spawns per phase the test waits for (each spawns 4 programs).
const ROUNDS: usize = 5;

/// Loops until the control file says `stop` (or 120 s pass). In a spawning phase P, round
/// i runs `/bin/echo P-i-sub-allow` and `/bin/echo P-i-sub-forbidden-step` with
/// subprocess.run (vfork + exec in the child: no kept-alive connection), then the same
/// with os.posix_spawn (the library keeps its connection alive in this process, so the
/// kill leaves a dead cached socket behind), and prints `P i PID o1 o2 o3 o4` with each
/// outcome `ran`, `eperm` or what else happened. A pause phase is acknowledged once with
/// `P ack`. The denied word is assembled at run time so this file's text never matches.
const PY_AGENT: &str = r#"
import os, subprocess, sys, time

ctl = sys.argv[1]
word = "forbidden" + "-step"


def outcome(fn):
    try:
        code = fn()
    except PermissionError as e:
        return "eperm" if e.errno == 1 else "error:" + repr(e).replace(" ", "_")
    except Exception as e:
        return "error:" + repr(e).replace(" ", "_")
    return "ran" if code == 0 else "exit:%s" % code


def sub(argv):
    return subprocess.run(argv, stdout=subprocess.DEVNULL).returncode


def spawn(argv):
    pid = os.posix_spawn(argv[0], argv, os.environ)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


i = 0
acked = None
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    with open(ctl) as f:
        phase = f.read().strip()
    if phase == "stop":
        break
    if phase.startswith("pause") or not phase:
        if phase and acked != phase:
            print(phase, "ack", flush=True)
            acked = phase
        time.sleep(0.02)
        continue
    i += 1
    tag = "%s-%d" % (phase, i)
    got = [
        outcome(lambda: sub(["/bin/echo", tag + "-sub-allow"])),
        outcome(lambda: sub(["/bin/echo", tag + "-sub-" + word])),
        outcome(lambda: spawn(["/bin/echo", tag + "-spawn-allow"])),
        outcome(lambda: spawn(["/bin/echo", tag + "-spawn-" + word])),
    ]
    print(phase, i, os.getpid(), *got, flush=True)
"#;

/// The same protocol in Node: `spawnSync` and `execFileSync` (fork + exec in libuv).
const NODE_AGENT: &str = r#"
const fs = require("fs");
const cp = require("child_process");
const ctl = process.argv[2];
const word = "forbidden" + "-step";
const nap = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const viaSpawn = (arg) => {
  const r = cp.spawnSync("/bin/echo", [arg], { stdio: ["ignore", "ignore", "inherit"] });
  if (r.error) return r.error.code === "EPERM" ? "eperm" : "error:" + r.error.code;
  return r.status === 0 ? "ran" : "exit:" + r.status;
};
const viaExecFile = (arg) => {
  try {
    cp.execFileSync("/bin/echo", [arg], { stdio: ["ignore", "ignore", "inherit"] });
    return "ran";
  } catch (e) {
    return e.code === "EPERM" ? "eperm" : "error:" + (e.code || e.status);
  }
};
let i = 0;
let acked = null;
const deadline = Date.now() + 120000;
while (Date.now() < deadline) {
  const phase = fs.readFileSync(ctl, "utf8").trim();
  if (phase === "stop") break;
  if (phase === "" || phase.startsWith("pause")) {
    if (phase && acked !== phase) {
      console.log(phase + " ack");
      acked = phase;
    }
    nap(20);
    continue;
  }
  i += 1;
  const tag = phase + "-" + i;
  const got = [
    viaSpawn(tag + "-sub-allow"),
    viaSpawn(tag + "-sub-" + word),
    viaExecFile(tag + "-spawn-allow"),
    viaExecFile(tag + "-spawn-" + word),
  ];
  console.log([phase, i, process.pid, ...got].join(" "));
}
"#;

/// The first executable `name` on PATH, symlinks resolved (pyenv shims are scripts).
fn program(name: &str, probe: &[&str]) -> String {
    let out = Command::new(name)
        .args(probe)
        .output()
        .unwrap_or_else(|e| panic!("{name} must be installed for these tests: {e}"));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A running agent whose stdout lines are collected as they come.
struct Agent {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: std::thread::JoinHandle<String>,
    ctl: PathBuf,
}

impl Agent {
    fn phase(&self, phase: &str) {
        let tmp = self.ctl.with_extension("tmp");
        std::fs::write(&tmp, phase).unwrap();
        std::fs::rename(&tmp, &self.ctl).unwrap();
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (bounded) until `cond` holds for the collected lines.
    fn wait_for(&mut self, what: &str, cond: impl Fn(&[String]) -> bool) {
        let ok = wait_until(60, || cond(&self.lines()));
        if !ok {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.wait();
            panic!(
                "agent: no {what} within 60 s; stdout so far:\n{}",
                self.lines().join("\n")
            );
        }
    }

    /// Lines of one phase, split into words.
    fn rounds(&self, phase: &str) -> Vec<Vec<String>> {
        self.lines()
            .iter()
            .map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .filter(|w| w[0] == phase && w[1] != "ack")
            .collect()
    }

    /// Moves to `phase` and waits until it has done `ROUNDS` rounds there.
    fn run_phase(&mut self, phase: &str) {
        self.phase(phase);
        self.wait_for(&format!("{ROUNDS} rounds of {phase}"), |lines| {
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("{phase} ")))
                .count()
                >= ROUNDS
        });
    }

    /// Moves to a pause phase and waits until the agent has finished its round.
    fn pause(&mut self, phase: &str) {
        self.phase(phase);
        let ack = format!("{phase} ack");
        self.wait_for(&ack.clone(), |lines| lines.contains(&ack));
    }

    fn finish(mut self) -> (i32, String) {
        self.phase("stop");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the agent did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        (status.code().unwrap_or(-1), self.stderr.join().unwrap())
    }
}

#[derive(Clone, Copy)]
enum Lang {
    Python,
    Node,
}

#[derive(Clone, Copy, PartialEq)]
enum Via {
    Tcp,
    Unix,
}

/// Starts `rampart preload ... -- <agent>` against the server of `home`.
fn start_agent(home: &Home, url: &str, token: &str, fail_open: bool, lang: Lang) -> Agent {
    library();
    let dir = home.path().join("agent");
    std::fs::create_dir_all(&dir).unwrap();
    let ctl = dir.join("phase");
    std::fs::write(&ctl, "").unwrap();
    let (exe, script) = match lang {
        Lang::Python => {
            let script = dir.join("agent.py");
            std::fs::write(&script, PY_AGENT).unwrap();
            (
                program("python3", &["-c", "import sys; print(sys.executable)"]),
                script,
            )
        }
        Lang::Node => {
            let script = dir.join("agent.js");
            std::fs::write(&script, NODE_AGENT).unwrap();
            (
                program("node", &["-e", "console.log(process.execPath)"]),
                script,
            )
        }
    };
    let mut child = crate::util::clean(Command::new(env!("CARGO_BIN_EXE_rampart")))
        .env_clear()
        .env("RAMPART_HOME", home.path())
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir(&dir)
        .args(["preload", "--url", url, "--token", token, "--no-autostart"])
        .arg(format!("--fail-open={fail_open}"))
        .args(["--ask-timeout", "0", "--"])
        .arg(&exe)
        .arg(&script)
        .arg(&ctl)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    Agent {
        child,
        lines,
        stderr,
        ctl,
    }
}

/// The decision audited for the command whose last argument is `arg`, if any.
fn audited(events: &[Value], arg: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["argv"].as_array().and_then(|a| a.last()) == Some(&Value::from(arg)))
        .map(|e| e["decision"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The whole scenario; returns nothing, asserts everything.
fn kill_and_restart_under_a_running_agent(lang: Lang, via: Via, fail_open: bool) {
    let home = Home::new();
    home.policy("faults.yaml", POLICY);
    let server = Server::start(&home, &[]);
    let port = server.port;
    let token = std::fs::read_to_string(home.path().join("token"))
        .unwrap()
        .trim()
        .to_owned();
    let socket = home.path().join("rampart.sock");
    let url = match via {
        Via::Tcp => format!("http://127.0.0.1:{port}"),
        Via::Unix => format!("unix:{}", socket.display()),
    };
    let mut agent = start_agent(&home, &url, &token, fail_open, lang);
    // `rampart preload` execs the agent in place: this pid is the agent's.
    let agent_pid = agent.child.id().to_string();

    agent.run_phase("up1");
    agent.pause("pause1");
    server.kill9();
    agent.run_phase("down");
    agent.pause("pause2");
    // Same home, same port, same socket path; the stale socket file is still there.
    assert!(socket.exists(), "a SIGKILLed server leaves its socket file");
    let server2 = Server::start_on(&home, port, &[]);
    assert_eq!(server2.port, port);
    agent.run_phase("up2");
    agent.pause("pause3");
    let rounds = |p: &str| agent.rounds(p);
    let (up1, down, up2) = (rounds("up1"), rounds("down"), rounds("up2"));
    let (code, stderr) = agent.finish();
    drop(server2);

    let checked = ["ran", "eperm", "ran", "eperm"];
    let outage = if fail_open { ["ran"; 4] } else { ["eperm"; 4] };
    // One agent process throughout: every round reports the same pid.
    let pid = &agent_pid;
    for (phase, rs, want) in [
        ("up1", &up1, checked),
        ("down", &down, outage),
        ("up2", &up2, checked),
    ] {
        assert!(rs.len() >= ROUNDS, "{phase}: {rs:?}");
        for r in rs.iter() {
            assert_eq!(&r[2], pid, "{phase}: the agent was restarted: {r:?}");
            assert_eq!(
                r[3..],
                want,
                "{phase} round {}: {r:?}\nstderr:\n{stderr}",
                r[1]
            );
        }
    }
    assert_eq!(code, 0, "stderr:\n{stderr}");

    // The audit: every command of a round with the server up has exactly one event with
    // the decision the agent saw; nothing from the outage.
    let events = events(home.path());
    for (phase, rs) in [("up1", &up1), ("up2", &up2)] {
        for r in rs.iter() {
            for (what, decision) in [
                ("sub-allow", "allow"),
                ("sub-forbidden-step", "deny"),
                ("spawn-allow", "allow"),
                ("spawn-forbidden-step", "deny"),
            ] {
                let arg = format!("{phase}-{}-{what}", r[1]);
                assert_eq!(audited(&events, &arg), [decision], "{arg}");
            }
        }
    }
    for r in &down {
        let arg = format!("down-{}-sub-allow", r[1]);
        assert!(audited(&events, &arg).is_empty(), "{arg} was audited");
    }

    // stderr: one deny line per refused spawn, nothing else.
    let policy_denials = 2 * (up1.len() + up2.len());
    let mut want: Vec<String> = vec![DENIED.to_owned(); policy_denials];
    if !fail_open {
        let line = format!(
            "rampart: [ERROR] Policy denied: policy server unreachable at {url} and fail-open is off"
        );
        want.extend(std::iter::repeat_n(line, 4 * down.len()));
    }
    let mut got: Vec<String> = stderr.lines().map(str::to_owned).collect();
    if fail_open {
        // Fail-open is never silent (issue 12): one [WARN] line for the agent and all its
        // children (they share the library's page), naming the first program of the
        // outage.
        let warn_prefix =
            format!("rampart: [WARN] policy server unreachable at {url}: /bin/echo down-");
        let warns: Vec<String> = got
            .iter()
            .filter(|l| l.starts_with("rampart: [WARN]"))
            .cloned()
            .collect();
        assert_eq!(warns.len(), 1, "{warns:?}");
        assert!(
            warns[0].starts_with(&warn_prefix)
                && warns[0].ends_with(" runs unchecked (fail-open; said once; --fail-open=false or RAMPART_FAIL_OPEN=false fails closed)"),
            "{warns:?}"
        );
        got.retain(|l| !l.starts_with("rampart: [WARN]"));
    }
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn python_agent_fails_open_through_a_server_kill_and_checks_again_after_restart() {
    kill_and_restart_under_a_running_agent(Lang::Python, Via::Tcp, true);
}

#[test]
fn python_agent_fails_closed_through_a_server_kill_and_checks_again_after_restart() {
    kill_and_restart_under_a_running_agent(Lang::Python, Via::Tcp, false);
}

#[test]
fn python_agent_over_the_unix_socket_reconnects_after_restart() {
    kill_and_restart_under_a_running_agent(Lang::Python, Via::Unix, false);
}

#[test]
fn node_agent_fails_closed_through_a_server_kill_and_checks_again_after_restart() {
    kill_and_restart_under_a_running_agent(Lang::Node, Via::Tcp, false);
}

#[test]
fn node_agent_over_the_unix_socket_fails_open_and_reconnects_after_restart() {
    kill_and_restart_under_a_running_agent(Lang::Node, Via::Unix, true);
}

// ---------------------------------------------------------------------------------------
// The token never leaves the machine (issue 8, item 4).

/// This machine's first IPv4 address outside 127.0.0.0/8, if it has one.
fn own_address() -> Option<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let addr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    Some(addr.split('/').next()?.to_owned())
}

/// A Python agent with the library preloaded directly (no `rampart preload`, whose own
/// check is not the library's) runs one `subprocess.run(["/bin/echo", "reached"])`.
fn python_spawn_with(url: &str, token: &str, fail_open: bool) -> (String, String) {
    let py = program("python3", &["-c", "import sys; print(sys.executable)"]);
    let out = Command::new(py)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LD_PRELOAD", library())
        .env("RAMPART_URL", url)
        .env("RAMPART_TOKEN", token)
        .env("RAMPART_FAIL_OPEN", fail_open.to_string())
        .args([
            "-c",
            "import subprocess\ntry:\n    subprocess.run(['/bin/echo', 'reached'])\nexcept PermissionError as e:\n    print('eperm', e.errno)",
        ])
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn library_never_sends_the_token_to_a_non_loopback_address() {
    let home = Home::new();
    home.policy("faults.yaml", POLICY);
    let token = |h: &Home| {
        std::fs::read_to_string(h.path().join("token"))
            .unwrap()
            .trim()
            .to_owned()
    };
    match own_address() {
        Some(ip) => {
            // A real server listening on every address, this machine's non-loopback one
            // included; a plain client with the token does reach it there.
            let server = Server::start(&home, &["--addr", "0.0.0.0"]);
            let t = token(&home);
            let remote = Endpoint::Tcp(format!("{ip}:{}", server.port));
            let status = request(
                &remote,
                "GET",
                "/v1/status",
                Some(&t),
                None,
                Duration::from_secs(10),
            )
            .unwrap()
            .status;
            assert_eq!(status, 200, "the server must be reachable at {ip}");
            let url = format!("http://{ip}:{}", server.port);
            // A request that cannot be built is refused whatever fail-open says (issue
            // 12): before, fail-open ran the program unchecked and silently.
            for fail_open in [false, true] {
                let (out, err) = python_spawn_with(&url, &t, fail_open);
                assert_eq!(out, "eperm 1\n");
                assert_eq!(
                    err,
                    format!("rampart: [ERROR] Policy denied: RAMPART_URL {url} {NOT_LOOPBACK}\n")
                );
            }
            // Nothing reached the server: no preflight, so no audit event at all.
            assert_eq!(events(home.path()), Vec::<Value>::new());
            // Control: over loopback the same agent is checked and audited.
            let (out, _) =
                python_spawn_with(&format!("http://127.0.0.1:{}", server.port), &t, false);
            assert_eq!(out, "reached\n");
            assert_eq!(audited(&events(home.path()), "reached"), ["allow"]);
        }
        None => {
            // No address of our own: a literal one elsewhere is refused just the same.
            let url = "http://10.1.2.3:9090";
            for fail_open in [false, true] {
                let (out, err) = python_spawn_with(url, "secret", fail_open);
                assert_eq!(out, "eperm 1\n");
                assert_eq!(
                    err,
                    format!("rampart: [ERROR] Policy denied: RAMPART_URL {url} {NOT_LOOPBACK}\n")
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A request over the server's 1 MiB body limit (issue 8, item 2, found here).

/// An argv of 1.2 MB makes a request body of about 2.4 MB (the command and the argv
/// both carry it). `rampart serve` answers 413 as soon as it sees the Content-Length and
/// closes, while the library is still sending. Before the fix the failed send counted as
/// "closed without an answer", so with fail-open (the default) the command ran unchecked
/// and unaudited about half the time. Now the 413 is read every time and denies.
#[test]
fn an_over_limit_request_is_denied_every_time_even_with_fail_open() {
    let home = Home::new();
    home.policy("faults.yaml", POLICY);
    let server = Server::start(&home, &[]);
    let token = std::fs::read_to_string(home.path().join("token"))
        .unwrap()
        .trim()
        .to_owned();
    let py = program("python3", &["-c", "import sys; print(sys.executable)"]);
    let out = Command::new(py)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LD_PRELOAD", library())
        .env("RAMPART_URL", format!("http://127.0.0.1:{}", server.port))
        .env("RAMPART_TOKEN", &token)
        .env("RAMPART_FAIL_OPEN", "true")
        .args([
            "-c",
            "import subprocess\nfor _ in range(8):\n    try:\n        print('ran', subprocess.run(['/bin/true'] + ['y' * 100000] * 12).returncode)\n    except PermissionError as e:\n        print('eperm', e.errno)",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "eperm 1\n".repeat(8), "stderr:\n{stderr}");
    assert_eq!(
        stderr,
        "rampart: [ERROR] Policy denied: unexpected answer from the policy server (HTTP 413)\n"
            .repeat(8)
    );
    // The server is fine afterwards: an ordinary command is checked and audited.
    let out = Command::new(program(
        "python3",
        &["-c", "import sys; print(sys.executable)"],
    ))
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .env("LD_PRELOAD", library())
    .env("RAMPART_URL", format!("http://127.0.0.1:{}", server.port))
    .env("RAMPART_TOKEN", &token)
    .args([
        "-c",
        "import subprocess; subprocess.run(['/bin/echo', 'after-413'])",
    ])
    .output()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "after-413\n");
    assert_eq!(audited(&events(home.path()), "after-413"), ["allow"]);
}

// ---------------------------------------------------------------------------------------
// The server dies while it holds an `ask` for a person.

/// A spawn whose command the policy asks a person about; the server holds the answer
/// (`RAMPART_ASK_TIMEOUT=60s`) and is killed with SIGKILL while it does. The library must
/// not wait out the 60 s: the connection closes, fail-open decides at once, and after a
/// restart the same agent's next spawn is checked again.
fn server_killed_during_an_ask(fail_open: bool) {
    let home = Home::new();
    home.policy(
        "faults.yaml",
        &format!(
            "{POLICY}      - action: ask\n        when:\n          command_contains: [\"askme-step\"]\n        message: \"Needs a person\"\n"
        ),
    );
    let server = Server::start(&home, &[]);
    let port = server.port;
    let token = std::fs::read_to_string(home.path().join("token"))
        .unwrap()
        .trim()
        .to_owned();
    let ctl = home.path().join("go");
    let script = r#"
import os, subprocess, sys, time

def run(argv):
    t = time.monotonic()
    try:
        what = "ran %d" % subprocess.run(argv, stdout=subprocess.DEVNULL).returncode
    except PermissionError as e:
        what = "eperm %d" % e.errno
    return what, time.monotonic() - t

what, secs = run(["/bin/echo", "askme" + "-step"])
print(what, "fast" if secs < 30 else "slow:%.1f" % secs, flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
print(run(["/bin/echo", "forbidden" + "-step"])[0], flush=True)
"#;
    let mut child = Command::new(program(
        "python3",
        &["-c", "import sys; print(sys.executable)"],
    ))
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .env("LD_PRELOAD", library())
    .env("RAMPART_URL", format!("http://127.0.0.1:{port}"))
    .env("RAMPART_TOKEN", &token)
    .env("RAMPART_FAIL_OPEN", fail_open.to_string())
    .env("RAMPART_ASK_TIMEOUT", "60s")
    .args(["-c", script])
    .arg(&ctl)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .spawn()
    .unwrap();
    // The server holds the ask once it lists it as pending.
    let socket = Endpoint::Unix(home.path().join("rampart.sock"));
    let pending = || {
        request(
            &socket,
            "GET",
            "/v1/approvals",
            Some(&token),
            None,
            Duration::from_secs(5),
        )
        .map(|r| r.text().contains("askme-step"))
        .unwrap_or(false)
    };
    assert!(wait_until(30, pending), "the ask never became pending");
    server.kill9();
    let _server2 = Server::start_on(&home, port, &[]);
    std::fs::write(&ctl, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            panic!("the agent hung after the server died during an ask");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let during = if fail_open { "ran 0" } else { "eperm 1" };
    assert_eq!(
        stdout,
        format!("{during} fast\neperm 1\n"),
        "stderr:\n{stderr}"
    );
    // The [WAIT] line comes after the first second, so it is there only when the kill
    // came later; once at most.
    // Its approval id is looked up while the server still runs, so it is masked.
    let wait = "rampart: [WAIT] Waiting for approval of: /bin/echo askme-step (agent preload, approval ID, Ns left) -- type 'rampart approve ID' or 'rampart deny ID', or see the dashboard";
    let old_wait = "rampart: [WAIT] Waiting for approval of: /bin/echo askme-step -- see 'rampart pending', then 'rampart approve <id>' or 'rampart deny <id>', or the dashboard";
    let masked: Vec<String> = stderr.lines().map(crate::util::mask_wait).collect();
    let lines: Vec<&str> = masked
        .iter()
        .map(String::as_str)
        .filter(|l| *l != old_wait)
        .collect();
    assert!(
        lines.iter().filter(|l| **l == wait).count() <= 1,
        "{stderr}"
    );
    let mut want = Vec::new();
    if fail_open {
        // Accepted, then closed before any answer byte: nobody answered. Never silent.
        want.push(format!(
            "rampart: [WARN] policy server closed the connection without an answer at http://127.0.0.1:{port}: /bin/echo askme-step runs unchecked (fail-open; said once; --fail-open=false or RAMPART_FAIL_OPEN=false fails closed)"
        ));
    } else {
        want.push(format!(
            "rampart: [ERROR] Policy denied: policy server closed the connection without an answer at http://127.0.0.1:{port} and fail-open is off"
        ));
    }
    want.push(DENIED.to_owned());
    let rest: Vec<&str> = lines.into_iter().filter(|l| *l != wait).collect();
    assert_eq!(rest, want);
}

#[test]
fn server_killed_while_holding_an_ask_fail_closed_denies_at_once() {
    server_killed_during_an_ask(false);
}

#[test]
fn server_killed_while_holding_an_ask_fail_open_runs_at_once() {
    server_killed_during_an_ask(true);
}

/// The CLI's own client follows the library's rule: `rampart preload --url` (its own
/// first check) and the admin commands never send the token to a non-loopback host.
/// A listener on every address of this machine proves nothing even connected.
#[test]
fn the_cli_never_sends_the_token_to_a_non_loopback_address() {
    let home = Home::new();
    home.policy("faults.yaml", POLICY);
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let ip = own_address().unwrap_or_else(|| "192.0.2.2".to_owned());
    let url = format!("http://{ip}:{port}");
    // The library's own reason (rampart-contract), from the launcher and the admin commands.
    let refusal = format!("{url} {NOT_LOOPBACK}");

    let out = home
        .cmd()
        .args(["preload", "--url", &url, "--token", "secret-token"])
        .args(["--fail-open=false", "--", "/bin/echo", "reached"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("reached"));
    assert_eq!(
        stderr,
        format!("rampart: [ERROR] Not started: --url {refusal}\n")
    );

    for args in [
        &["serve", "status"][..],
        &["pending"],
        &["approve", "01ARZ3NDEKTSV4RRFFQ69G5FAV"],
    ] {
        let out = home
            .cmd()
            .env("RAMPART_URL", &url)
            .env("RAMPART_TOKEN", "secret-token")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.contains(&refusal), "{args:?}: {stderr}");
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected to {url}: {other:?}"),
    }
}
