//! `rampart preload` end to end (issue 4 §6): a real `rampart serve`, the real
//! `preload/build/librampart.so`, and real Python, Node, C, Perl and shell agents from
//! `tests/agents/`. Each test asserts exit codes, the exact lines users see and the audit
//! trail the server wrote. The library is built by `make -C preload`, not by cargo.
//!
//! The seed policy asks about any command containing `nc`, `curl` or `wget`, so every
//! command line the agents run avoids those letters unless a test wants an `ask`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::util::library;
use crate::util::{
    Home, Run, SEED_POLICY, Server, events, mask_wait, python, run, spawn, wait_until,
};

const AGENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents");
const CUSTOM_AGENT_POLICY: &str =
    include_str!("../../rampart-policy/tests/fixtures/custom-agent.yaml");
const DENIED: &str = "rampart: [ERROR] Policy denied: Destructive command blocked";
const PATH: &str = "/usr/bin:/bin";

fn node() -> &'static str {
    static NODE: OnceLock<String> = OnceLock::new();
    NODE.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = std::env::split_paths(&path)
            .map(|d| d.join("node"))
            .find(|p| p.is_file())
            .expect("node must be installed for the preload tests");
        found.canonicalize().unwrap().display().to_string()
    })
}

fn agent(name: &str) -> String {
    format!("{AGENTS}/{name}")
}

/// A scratch directory directly under /tmp (so the seed's `rm -rf /*` rule covers it)
/// with a name of digits only (so no `nc` sneaks into a command): `victim/file`, which
/// agents try to delete, and `dir/listed-file`, which they list.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!("/tmp/rampart-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("victim")).unwrap();
        std::fs::write(path.join("victim/file"), "precious").unwrap();
        std::fs::create_dir_all(path.join("dir")).unwrap();
        std::fs::write(path.join("dir/listed-file"), "").unwrap();
        Scratch(path)
    }

    fn victim(&self) -> String {
        self.0.join("victim").display().to_string()
    }

    fn victim_intact(&self) -> bool {
        self.0.join("victim/file").is_file()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A home with a policy, its running server and a scratch directory.
struct Setup {
    home: Home,
    server: Server,
    scratch: Scratch,
}

impl Setup {
    fn new(policy: &str) -> Setup {
        library();
        let home = Home::new();
        home.policy("custom.yaml", policy);
        let server = Server::start(&home, &[]);
        Setup {
            home,
            server,
            scratch: Scratch::new(),
        }
    }

    fn seed() -> Setup {
        Setup::new(SEED_POLICY)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// `rampart preload --url <this server> --token T --no-autostart FLAGS -- CMD`.
    fn preload(&self, flags: &[&str], cmd: &[&str]) -> Command {
        preload_cmd(
            &self.home,
            &self.scratch,
            &self.url(),
            Some(&self.server.token),
            flags,
            cmd,
        )
    }

    fn events(&self) -> Vec<Value> {
        events(self.home.path())
    }
}

/// `rampart preload` with a small, fixed environment: PATH=/usr/bin:/bin, C locale, cwd in
/// the scratch directory, and `--ask-timeout 10s` unless the test sets its own (a stray
/// `ask` must fail the test quickly, not hang it for two minutes).
fn preload_cmd(
    home: &Home,
    scratch: &Scratch,
    url: &str,
    token: Option<&str>,
    flags: &[&str],
    cmd: &[&str],
) -> Command {
    let mut c = crate::util::clean(Command::new(env!("CARGO_BIN_EXE_rampart")));
    c.env_clear()
        .env("RAMPART_HOME", home.path())
        .env("HOME", home.path())
        .env("PATH", PATH)
        .env("LC_ALL", "C")
        .current_dir(&scratch.0)
        .args(["preload", "--url", url, "--no-autostart"]);
    if let Some(token) = token {
        c.args(["--token", token]);
    }
    if !flags.contains(&"--ask-timeout") {
        c.args(["--ask-timeout", "10s"]);
    }
    c.args(flags).arg("--").args(cmd);
    c
}

fn argv_is(event: &Value, argv: &[&str]) -> bool {
    event["argv"] == serde_json::json!(argv)
}

/// The one event `rampart preload` wrote for CMD itself.
fn agent_event(events: &[Value]) -> &Value {
    let own: Vec<&Value> = events
        .iter()
        .filter(|e| e["via"] == "rampart-preload")
        .collect();
    assert_eq!(own.len(), 1, "{own:#?}");
    own[0]
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// `n` copies of the deny line, as stderr shows them.
fn denied_lines(n: usize) -> Vec<&'static str> {
    vec![DENIED; n]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------
// 1. The seed's Python example.

#[test]
fn seed_python_example_raises_permission_error_and_deletes_nothing() {
    let s = Setup::seed();
    let victim = s.scratch.victim();
    let script = agent("agent.py");
    let r = run(s.preload(&[], &[python(), &script, "seed", &victim]), 20);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert_eq!(r.stdout(), "");
    let err = r.stderr();
    let err_lines = lines(&err);
    assert_eq!(err_lines[0], DENIED, "{err}");
    assert_eq!(err_lines[1], "Traceback (most recent call last):", "{err}");
    assert_eq!(
        *err_lines.last().unwrap(),
        "PermissionError: [Errno 1] Operation not permitted: 'rm'"
    );
    assert!(s.scratch.victim_intact(), "the victim was deleted");

    // The audit trail: the agent itself (checked by `rampart preload`), then one denial
    // for the one spawn, with the context the library sends.
    let events = s.events();
    let own = agent_event(&events);
    assert_eq!(own["decision"], "allow");
    assert_eq!(own["exe"], python());
    assert!(argv_is(own, &[python(), &script, "seed", &victim]));
    let agent_pid = own["pid"].as_i64().unwrap();
    let session = format!("preload-{agent_pid}");
    assert_eq!(own["session"], session.as_str());
    let denials: Vec<&Value> = events.iter().filter(|e| e["decision"] == "deny").collect();
    assert_eq!(denials.len(), 1, "one spawn, one check: {denials:#?}");
    let d = denials[0];
    assert_eq!(d["command"], format!("rm -rf {victim}"));
    assert!(argv_is(d, &["rm", "-rf", &victim]));
    assert_eq!(d["exe"], "/usr/bin/rm");
    assert_eq!(d["via"], "execv");
    assert_eq!(d["cwd"], s.scratch.0.display().to_string());
    assert_eq!(d["agent"], "preload");
    assert_eq!(d["session"], session.as_str());
    assert_eq!(d["policy"], "preload-block-destructive");
    assert_eq!(d["message"], "Destructive command blocked");
    assert_eq!(
        d["ppid"].as_i64(),
        Some(agent_pid),
        "the spawn's parent is the agent"
    );
    assert_ne!(d["pid"].as_i64(), Some(agent_pid));
    assert_eq!(events.len(), 2, "{events:#?}");
}

#[test]
fn seed_literal_rm_rf_tmp_star_over_the_unix_socket() {
    let s = Setup::seed();
    let url = format!("unix:{}", s.server.socket.display());
    let script = agent("agent.py");
    let cmd = preload_cmd(
        &s.home,
        &s.scratch,
        &url,
        Some(&s.server.token),
        &[],
        &[python(), &script, "seed", "/tmp/*"],
    );
    let r = run(cmd, 20);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert_eq!(lines(&r.stderr())[0], DENIED);
    assert!(
        r.stderr()
            .ends_with("\nPermissionError: [Errno 1] Operation not permitted: 'rm'\n")
    );
    let events = s.events();
    let d = events.iter().find(|e| e["decision"] == "deny").unwrap();
    assert_eq!(d["command"], "rm -rf /tmp/*");
}

// ---------------------------------------------------------------------------------------
// 2. Every Python way to start a program.

#[test]
fn python_spawns_allowed_and_denied_every_way() {
    let s = Setup::seed();
    let victim = s.scratch.victim();
    let r = run(
        s.preload(&[], &[python(), &agent("agent.py"), "spawns", &victim]),
        30,
    );
    let expected = [
        "subprocess ran",
        "subprocess allow ok",
        "subprocess deny ok",
        "subprocess-env ran",
        "subprocess-env allow ok",
        "subprocess-env deny ok",
        "subprocess-empty-env ran",
        "subprocess-empty-env allow ok",
        "subprocess-empty-env deny ok",
        "subprocess-shell ran",
        "subprocess-shell allow ok",
        "subprocess-shell deny ok",
        "os.system ran",
        "os.system allow ok",
        "os.system deny ok",
        "os.execv ran",
        "os.execv allow ok",
        "os.execv deny ok",
        "os.posix_spawn ran",
        "os.posix_spawn allow ok",
        "os.posix_spawn deny ok",
        "victim kept ok",
    ];
    assert_eq!(lines(&r.stdout()), expected, "stderr: {}", r.stderr());
    assert_eq!(r.code(), 0);
    assert_eq!(lines(&r.stderr()), denied_lines(7));
    assert!(s.scratch.victim_intact());

    // One denial per attempt, each tagged with the entry point the library saw.
    let events = s.events();
    let mut vias: Vec<&str> = events
        .iter()
        .filter(|e| e["decision"] == "deny")
        .map(|e| e["via"].as_str().unwrap())
        .collect();
    vias.sort_unstable();
    assert_eq!(
        vias,
        [
            "execv",
            "execv",
            "execv",
            "execve",
            "execve",
            "posix_spawn",
            "system"
        ]
    );
    // The allowed `echo` runs were audited as allowed (os.system's via its `sh -c`).
    let allowed_echo = events
        .iter()
        .filter(|e| e["decision"] == "allow" && e["exe"].as_str().unwrap().ends_with("/echo"))
        .count();
    assert_eq!(allowed_echo, 5, "{events:#?}");
}

#[test]
fn os_system_ls_la_runs_and_prints() {
    let s = Setup::seed();
    let r = run(
        s.preload(
            &[],
            &[
                python(),
                "-c",
                "import os; print('status', os.system('ls -la dir'))",
            ],
        ),
        20,
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let out = r.stdout();
    assert!(out.contains(" listed-file\n"), "{out}");
    assert!(out.ends_with("status 0\n"), "{out}");
    assert_eq!(r.stderr(), "");
    let events = s.events();
    let sys = events.iter().find(|e| e["via"] == "system").unwrap();
    assert_eq!(sys["command"], "ls -la dir");
    assert!(argv_is(sys, &["sh", "-c", "ls -la dir"]));
    assert_eq!(sys["exe"], "/bin/sh");
    assert_eq!(sys["policy"], "preload-safe-dev");
}

/// Issue 16: `os.system("ls -la dir")` is one decision. The shell's exec of exactly that
/// command is audited as part of it (`part_of`: the system() event's id) and left out of
/// the counts; a shell line that runs other commands (`ls dir; ls -la dir`) gets
/// decisions of its own for each, even for a command an earlier system() call allowed.
#[test]
fn os_system_is_one_decision_and_the_shells_exec_is_part_of_it() {
    let s = Setup::seed();
    let r = run(
        s.preload(
            &[],
            &[
                python(),
                "-c",
                "import os; os.system('ls -la dir'); os.system('ls dir; ls -la dir')",
            ],
        ),
        20,
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let events = s.events();
    let sys: Vec<&Value> = events.iter().filter(|e| e["via"] == "system").collect();
    assert_eq!(sys.len(), 2, "{events:#?}");
    let first = sys[0]["id"].as_str().unwrap();
    let execs: Vec<(&str, Option<&str>)> = events
        .iter()
        .filter(|e| e["via"] != "system" && e["exe"].as_str().is_some_and(|x| x.ends_with("/ls")))
        .map(|e| (e["command"].as_str().unwrap(), e["part_of"].as_str()))
        .collect();
    assert_eq!(
        execs,
        [
            ("ls -la dir", Some(first)),
            ("ls dir", None),
            ("ls -la dir", None)
        ]
    );
    // Counted once: `audit stats` leaves the linked exec out.
    let counted = events
        .iter()
        .filter(|e| e.get("part_of").is_none() && e["decision"] != "unchecked")
        .count();
    let stats = s.home.run(&["audit", "stats"]).stdout();
    assert!(
        stats.contains(&format!("  Total: {counted}\n")),
        "{counted}: {stats}"
    );
    assert_eq!(counted + 1, events.len());
}

// ---------------------------------------------------------------------------------------
// 3. Node.

#[test]
fn node_spawn_sync_exec_sync_and_spawn_allowed_and_denied() {
    let s = Setup::seed();
    let victim = s.scratch.victim();
    let r = run(
        s.preload(&[], &[node(), &agent("agent.js"), "spawns", &victim]),
        30,
    );
    assert_eq!(
        lines(&r.stdout()),
        [
            "spawnS ran",
            "spawnSync allow ok",
            "spawnSync deny ok",
            "spawnS-env ran",
            "spawnSync-env allow ok",
            "spawnSync-env deny ok",
            "execSync allow ok",
            "execSync deny ok",
            "exec allow ok",
            "spawn deny ok",
            "victim kept ok",
        ],
        "stderr: {}",
        r.stderr()
    );
    assert_eq!(r.code(), 0);
    // The async spawn's child had its stderr piped to Node, so three lines reach us.
    assert_eq!(lines(&r.stderr()), denied_lines(3));
    let denials = s
        .events()
        .into_iter()
        .filter(|e| e["decision"] == "deny")
        .count();
    assert_eq!(denials, 4);
}

// ---------------------------------------------------------------------------------------
// 4 + 5. Shells, Perl, find -exec, xargs, env -i and env -u LD_PRELOAD.

#[test]
fn shell_chains_perl_find_xargs_and_env_wrappers_are_checked() {
    let s = Setup::seed();
    let victim = s.scratch.victim();
    let dir = s.scratch.0.join("dir").display().to_string();
    let script = agent("shells.sh");
    let r = run(s.preload(&[], &["/bin/sh", &script, &dir, &victim]), 30);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let expected = format!(
        "== bash -c chain (refused whole: the policy reads -c bodies)
{DENIED}
{script}: 15: bash: Operation not permitted
exit 126
== bash chain on stdin (ls runs, rm is refused)
listed-file
{DENIED}
bash: line 1: /usr/bin/rm: Operation not permitted
exit 126
== perl system
perl ran
system(echo) = 0
{DENIED}
Can't exec \"rm\": Operation not permitted at {AGENTS}/agent.pl line 11.
system(rm) = -1, $! = Operation not permitted
{DENIED}
Can't exec \"/bin/sh\": Operation not permitted at {AGENTS}/agent.pl line 13.
system(shell string) = -1
exit 0
== find -exec
{DENIED}
find: 'rm': Operation not permitted
exit 1
== xargs
{DENIED}
xargs: rm: Operation not permitted
exit 126
== env -i grandchild
LD_PRELOAD set: yes, RAMPART_AGENT=preload
{DENIED}
{AGENTS}/rm_victim.sh: 5: rm: Operation not permitted
exit 126
== env -u LD_PRELOAD grandchild
LD_PRELOAD set: yes, RAMPART_AGENT=preload
{DENIED}
{AGENTS}/rm_victim.sh: 5: rm: Operation not permitted
exit 126
victim kept
"
    );
    assert_eq!(r.stdout(), expected);
    assert!(s.scratch.victim_intact());

    // The grandchildren behind `env -i` / `env -u` reported the same session.
    let events = s.events();
    let session = agent_event(&events)["session"].clone();
    assert!(
        events.iter().all(|e| e["session"] == session),
        "{events:#?}"
    );
    let rm_denials = events
        .iter()
        .filter(|e| e["decision"] == "deny" && e["exe"] == "/usr/bin/rm")
        .count();
    // bash chain, perl, find, xargs, env -i, env -u.
    assert_eq!(rm_denials, 6, "{events:#?}");
}

// ---------------------------------------------------------------------------------------
// 6. Every C entry point.

#[test]
fn every_c_entry_point_allowed_and_denied_including_vfork_and_threaded_fork() {
    let s = Setup::seed();
    let bin = s.scratch.0.join("entry_points");
    let cc = Command::new("cc")
        .args(["-O1", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
        .arg(&bin)
        .arg(agent("entry_points.c"))
        .output()
        .expect("a C compiler (cc) is needed for the entry point test");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let victim = s.scratch.victim();
    let bin = bin.display().to_string();
    let r = run(s.preload(&[], &[&bin, &victim]), 30);
    let mut expected = Vec::new();
    let entries = [
        "execve", "execv", "execvp", "execvpe", "execl", "execlp", "execle", "fexecve", "execveat",
    ];
    for e in entries {
        expected.push(format!("{e} ran"));
        expected.push(format!("{e} allow ok"));
        expected.push(format!("{e} deny ok"));
    }
    expected.push("system ran".into());
    expected.extend(["system allow ok".into(), "system deny ok".into()]);
    expected.extend(["popen allow ok".into(), "popen deny ok".into()]);
    for e in ["posix_spawn", "posix_spawnp", "vfork+execv"] {
        expected.push(format!("{e} ran"));
        expected.push(format!("{e} allow ok"));
        expected.push(format!("{e} deny ok"));
    }
    for _ in 0..5 {
        expected.push("threaded-fork+execv deny ok".into());
    }
    expected.push("execv ran".into());
    expected.push("threaded-fork+execv allow ok".into());
    assert_eq!(lines(&r.stdout()), expected, "stderr: {}", r.stderr());
    assert_eq!(r.code(), 0);
    assert_eq!(lines(&r.stderr()), denied_lines(19));
    assert!(s.scratch.victim_intact());

    let events = s.events();
    let mut by_via: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for e in &events {
        let slot = by_via
            .entry(e["via"].as_str().unwrap().to_owned())
            .or_default();
        match e["decision"].as_str().unwrap() {
            "allow" => slot.0 += 1,
            "deny" => slot.1 += 1,
            other => panic!("unexpected decision {other}"),
        }
    }
    let want: BTreeMap<String, (usize, usize)> = [
        ("rampart-preload", (1, 0)),
        ("execve", (1, 1)),
        // execv itself, vfork+execv, threaded fork: 1 + 1 + 1 allowed, 1 + 1 + 5 denied.
        ("execv", (3, 7)),
        ("execvp", (1, 1)),
        ("execvpe", (1, 1)),
        ("execl", (1, 1)),
        ("execlp", (1, 1)),
        ("execle", (1, 1)),
        ("fexecve", (1, 1)),
        ("execveat", (1, 1)),
        ("system", (1, 1)),
        ("popen", (1, 1)),
        ("posix_spawn", (1, 1)),
        ("posix_spawnp", (1, 1)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(by_via, want);
    // The PATH-searching and fd-based variants report the program they resolved.
    for e in events.iter().filter(|e| e["decision"] == "deny") {
        let exe = e["exe"].as_str().unwrap();
        if e["via"] == "system" || e["via"] == "popen" {
            assert_eq!(exe, "/bin/sh");
            assert_eq!(e["command"], format!("rm -rf {victim}"));
        } else {
            assert_eq!(exe, "/usr/bin/rm", "{e}");
            assert!(argv_is(e, &["rm", "-rf", &victim]), "{e}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 7. Many threads spawning at once.

fn assert_trues(s: &Setup, want: usize) {
    let events = s.events();
    let trues: Vec<&Value> = events.iter().filter(|e| argv_is(e, &["true"])).collect();
    assert_eq!(trues.len(), want);
    assert!(trues.iter().all(|e| e["decision"] == "allow"));
    assert_eq!(events.len(), want + 1, "only the agent itself besides");
}

#[test]
fn python_sixteen_threads_spawning_twenty_five_times_each() {
    let s = Setup::seed();
    let r = run(
        s.preload(&[], &[python(), &agent("agent.py"), "threads", "16", "25"]),
        40,
    );
    assert_eq!(r.stdout(), "400 spawns, 0 errors []\n", "{}", r.stderr());
    assert_eq!(r.code(), 0);
    assert_eq!(r.stderr(), "");
    assert_trues(&s, 400);
}

#[test]
fn node_sixteen_parallel_spawn_chains_of_twenty_five() {
    let s = Setup::seed();
    let r = run(
        s.preload(&[], &[node(), &agent("agent.js"), "parallel", "16", "25"]),
        40,
    );
    assert_eq!(r.stdout(), "400 spawns, 0 errors []\n", "{}", r.stderr());
    assert_eq!(r.code(), 0);
    assert_eq!(r.stderr(), "");
    assert_trues(&s, 400);
}

// ---------------------------------------------------------------------------------------
// 8. Server down: fail-open and fail-closed.

#[test]
fn server_down_fail_open_runs_and_fail_closed_refuses_cmd() {
    let home = Home::new();
    let scratch = Scratch::new();
    let url = format!("http://127.0.0.1:{}", free_port());
    let r = run(
        preload_cmd(
            &home,
            &scratch,
            &url,
            None,
            &["--fail-open=true"],
            &["ls", "dir"],
        ),
        20,
    );
    // Runs, and says so: nobody checked it.
    assert_eq!(
        (r.code(), r.stdout(), r.stderr()),
        (
            0,
            "listed-file\n".into(),
            format!(
                "rampart: [WARN] no policy server answered at {url} (Connection refused (os error 111)): fail-open runs ls dir UNCHECKED and unaudited; start the server (rampart serve --background) or use --fail-open=false to refuse instead\n"
            )
        )
    );

    let r = run(
        preload_cmd(
            &home,
            &scratch,
            &url,
            None,
            &["--fail-open=false"],
            &["echo", "test"],
        ),
        20,
    );
    assert_eq!(
        (r.code(), r.stdout(), r.stderr()),
        (
            126,
            String::new(),
            format!(
                "rampart: [ERROR] Not started: no policy server answered at {url} (Connection refused (os error 111)) and fail-open is off; start it (rampart serve --background), or drop --no-autostart to let rampart start it\n"
            )
        )
    );
}

/// The agent starts while the server is up; the server dies; the agent then spawns.
/// Returns the agent's output and the URL the dead server had.
fn spawn_after_server_dies(fail_open: &str, expect: &str) -> (Run, String) {
    let s = Setup::seed();
    let flag = s.scratch.0.join("go");
    let flag_str = flag.display().to_string();
    let running = spawn(s.preload(
        &[&format!("--fail-open={fail_open}")],
        &[
            python(),
            &agent("agent.py"),
            "wait-then-spawn",
            &flag_str,
            expect,
        ],
    ));
    // `rampart preload` has checked the agent once the agent's event is on disk.
    assert!(wait_until(10, || !s.events().is_empty()));
    let url = s.url();
    s.server.kill9();
    std::fs::write(&flag, "").unwrap();
    (running.wait(20), url)
}

#[test]
fn library_fails_closed_when_the_server_dies_under_a_running_agent() {
    let (r, url) = spawn_after_server_dies("false", "deny");
    assert_eq!(
        r.stdout(),
        "waiting\nafter-server-died deny ok\n",
        "{}",
        r.stderr()
    );
    assert_eq!(r.code(), 0);
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    let reason = err
        .strip_prefix("rampart: [ERROR] Policy denied: ")
        .and_then(|e| e.strip_suffix(" and fail-open is off\n"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(reason.ends_with(&format!(" at {url}")), "{err}");
}

#[test]
fn library_fails_open_when_the_server_dies_under_a_running_agent() {
    let (r, url) = spawn_after_server_dies("true", "allow");
    assert_eq!(
        r.stdout(),
        "waiting\nafter-server-died allow ok\n",
        "{}",
        r.stderr()
    );
    // Fail-open is never silent (issue 12): one line, naming the URL and the way out.
    assert_eq!(
        (r.code(), r.stderr()),
        (
            0,
            format!(
                "rampart: [WARN] policy server unreachable at {url}: true runs unchecked (fail-open; said once; --fail-open=false or RAMPART_FAIL_OPEN=false fails closed)\n"
            )
        )
    );
}

// ---------------------------------------------------------------------------------------
// 9. Custom agent names and sessions.

#[test]
fn custom_agent_and_session_follow_the_seed_policy() {
    let s = Setup::new(CUSTOM_AGENT_POLICY);
    let victim = s.scratch.victim();
    let flags = ["--agent", "my-agent", "--session", "prod-deploy"];
    let production =
        "rampart: [ERROR] Policy denied: Production agent: destructive commands blocked";

    // CMD itself mentions rm: refused before anything runs.
    let r = run(s.preload(&flags, &["rm", "-rf", &victim]), 20);
    assert_eq!((r.code(), r.stdout()), (126, String::new()));
    assert_eq!(lines(&r.stderr()), [production]);

    // Inside the agent.
    let r = run(
        s.preload(&flags, &[python(), &agent("agent.py"), "seed", &victim]),
        20,
    );
    assert_eq!(r.code(), 1);
    assert_eq!(lines(&r.stderr())[0], production);
    assert!(
        r.stderr()
            .ends_with("PermissionError: [Errno 1] Operation not permitted: 'rm'\n")
    );
    assert!(s.scratch.victim_intact());
    let events = s.events();
    assert_eq!(events.len(), 3, "{events:#?}");
    for e in &events {
        assert_eq!(e["agent"], "my-agent");
        assert_eq!(e["session"], "prod-deploy");
    }
    assert_eq!(events[2]["decision"], "deny");
    assert_eq!(events[2]["policy"], "my-agent-rules");

    // Another session is not production: the same agent may delete its scratch file.
    let r = run(
        s.preload(
            &["--agent", "my-agent", "--session", "dev-1"],
            &[python(), &agent("agent.py"), "seed", &victim],
        ),
        20,
    );
    assert_eq!((r.code(), r.stderr()), (0, String::new()));
    assert!(!s.scratch.victim_intact());
}

// ---------------------------------------------------------------------------------------
// 10. ask: approve, deny, time out.

/// Without a controlling terminal the wait line goes to stderr, with the approval id to
/// type (masked here by `mask_wait`).
const WAIT_LINE: &str = "rampart: [WAIT] Waiting for approval of: curl --version (agent preload, approval ID, Ns left) -- type 'rampart approve ID' or 'rampart deny ID', or see the dashboard";

fn pending_id(s: &Setup) -> String {
    let mut id = None;
    let found = wait_until(10, || {
        let r = s.server.call("GET", "/v1/approvals", None);
        let v = r.json().unwrap();
        if let Some(a) = v["approvals"].as_array().and_then(|a| a.first()) {
            assert_eq!(a["command"], "curl --version");
            id = a["id"].as_str().map(str::to_owned);
        }
        id.is_some()
    });
    assert!(found, "no pending approval appeared");
    id.unwrap()
}

fn no_pending(s: &Setup) -> bool {
    let r = s.server.call("GET", "/v1/approvals", None);
    r.json().unwrap()["approvals"]
        .as_array()
        .unwrap()
        .is_empty()
}

#[test]
fn ask_approved_runs_the_command() {
    let s = Setup::seed();
    let running = spawn(s.preload(&[], &[python(), &agent("agent.py"), "fetch"]));
    let id = pending_id(&s);
    // The library's one wait line is out before anybody decides.
    std::thread::sleep(Duration::from_millis(1200));
    let r = s.home.run(&["approve", &id]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let r = running.wait(20);
    assert_eq!(r.stdout(), "exit status 0\n", "{}", r.stderr());
    let err: Vec<String> = lines(&r.stderr()).into_iter().map(mask_wait).collect();
    assert_eq!(err, [WAIT_LINE]);
    assert!(no_pending(&s));
    let events = s.events();
    let curl: Vec<&Value> = events
        .iter()
        .filter(|e| argv_is(e, &["curl", "--version"]))
        .collect();
    assert_eq!(curl.len(), 1, "{curl:#?}");
    assert_eq!(curl[0]["decision"], "allow");
}

#[test]
fn ask_denied_by_a_person_is_eperm_and_asked_once() {
    let s = Setup::seed();
    let running = spawn(s.preload(&[], &[python(), &agent("agent.py"), "fetch"]));
    let id = pending_id(&s);
    std::thread::sleep(Duration::from_millis(1200));
    let r = s.home.run(&["deny", &id]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let r = running.wait(20);
    assert_eq!(r.stdout(), "PermissionError errno 1\n", "{}", r.stderr());
    let err = r.stderr();
    let err_lines = lines(&err);
    assert_eq!(err_lines.len(), 2, "asked once for one spawn: {err}");
    assert_eq!(mask_wait(err_lines[0]), WAIT_LINE);
    assert!(
        err_lines[1].starts_with("rampart: [ERROR] Policy denied: denied by "),
        "{err}"
    );
    assert!(no_pending(&s));
}

#[test]
fn ask_times_out_into_eperm() {
    let s = Setup::seed();
    let r = run(
        s.preload(
            &["--ask-timeout", "2s"],
            &[python(), &agent("agent.py"), "fetch"],
        ),
        20,
    );
    assert_eq!(r.stdout(), "PermissionError errno 1\n", "{}", r.stderr());
    let err: Vec<String> = lines(&r.stderr()).into_iter().map(mask_wait).collect();
    assert_eq!(
        err,
        [
            WAIT_LINE,
            "rampart: [ERROR] Policy denied: approval timed out"
        ]
    );
    assert!(no_pending(&s));
}

// ---------------------------------------------------------------------------------------
// 11. CMD itself, and the seed's debug output.

#[test]
fn preload_rm_rf_root_is_refused_before_anything_runs() {
    let s = Setup::seed();
    let r = run(s.preload(&[], &["rm", "-rf", "/"]), 20);
    assert_eq!(r.code(), 126);
    assert_eq!(r.stdout(), "");
    assert_eq!(r.stderr(), format!("{DENIED}\n"));
    let events = s.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["command"], "rm -rf /");
    assert_eq!(events[0]["exe"], "/usr/bin/rm");
    assert_eq!(events[0]["decision"], "deny");
}

#[test]
fn debug_prints_the_seed_lines_in_order() {
    let s = Setup::seed();
    let r = run(
        s.preload(
            &["--debug"],
            &[python(), &agent("agent.py"), "seed", "/tmp/*"],
        ),
        20,
    );
    assert_eq!(r.code(), 1);
    let err = r.stderr();
    let url = format!("rampart: [DEBUG] URL: {}", s.url());
    let head = [
        "rampart: [DEBUG] Library loaded",
        url.as_str(),
        "rampart: [DEBUG] Mode: enforce",
        "rampart: [DEBUG] Fail-open: true",
        "rampart: [DEBUG] Intercepted execv: /usr/bin/rm -rf /tmp/*",
        "rampart: [DEBUG] Policy check: POST /v1/preflight/exec",
        "rampart: [DEBUG] Decision: deny",
        DENIED,
    ];
    let err_lines = lines(&err);
    assert_eq!(err_lines[..head.len()], head, "{err}");
    let traceback = err_lines
        .iter()
        .position(|l| *l == "Traceback (most recent call last):")
        .unwrap();
    // CPython then tries /bin/rm (the same file through the /bin symlink): the library
    // says so but neither asks again nor prints a second denial.
    for line in &err_lines[head.len()..traceback] {
        assert!(line.starts_with("rampart: [DEBUG] "), "{err}");
    }
    assert_eq!(err.matches("[ERROR]").count(), 1, "{err}");
    assert!(err.ends_with("PermissionError: [Errno 1] Operation not permitted: 'rm'\n"));
}

// ---------------------------------------------------------------------------------------
// 12. Autostart.

/// Stops the background server of a home, even when the test fails.
struct StopServer<'a>(&'a Home);

impl Drop for StopServer<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["serve", "stop"]);
    }
}

#[test]
fn autostart_starts_a_background_server_and_says_so() {
    library();
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);
    let scratch = Scratch::new();
    let port = free_port().to_string();
    let _stop = StopServer(&home);
    let mut cmd = crate::util::clean(Command::new(env!("CARGO_BIN_EXE_rampart")));
    cmd.env_clear()
        .env("RAMPART_HOME", home.path())
        .env("PATH", PATH)
        .current_dir(&scratch.0)
        .args(["preload", "--port", &port, "--", "true"]);
    let r = run(cmd, 30);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.stdout(), "");
    assert_eq!(
        r.stderr(),
        format!(
            "rampart: no policy server answered at http://127.0.0.1:{port}; started one in the background (log: {}, stop: rampart serve stop)\n",
            home.path().join("serve.log").display()
        )
    );
    assert!(wait_until(5, || !events(home.path()).is_empty()));
    let events = events(home.path());
    assert_eq!(events.len(), 1);
    assert!(argv_is(&events[0], &["true"]));
    assert_eq!(events[0]["decision"], "allow");
    assert_eq!(events[0]["via"], "rampart-preload");
}

/// The first thing a newcomer runs: `rampart preload -- CMD` with no flags and no server.
/// The launcher starts this home's server on the default address and then hands CMD the
/// server's Unix socket (its fast path), not the TCP port. In a network namespace of its
/// own, so the default port 9090 is free whatever this machine runs (root only; skipped
/// loudly otherwise).
#[test]
fn with_no_flags_and_no_server_the_started_server_is_used_on_its_socket() {
    library();
    let netns = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !crate::util::is_root() || !netns {
        eprintln!(
            "SKIPPED with_no_flags_and_no_server_…: needs root and `unshare -n` (a network namespace of its own)"
        );
        return;
    }
    let home = Home::new();
    let scratch = Scratch::new();
    let _stop = StopServer(&home);
    let script = format!(
        "ip link set lo up && exec {} preload -- /usr/bin/printenv RAMPART_URL",
        env!("CARGO_BIN_EXE_rampart")
    );
    let mut cmd = crate::util::clean(Command::new("unshare"));
    cmd.env_clear()
        .env("RAMPART_HOME", home.path())
        .env("PATH", "/usr/sbin:/usr/bin:/bin")
        .current_dir(&scratch.0)
        .args(["-n", "sh", "-c", &script]);
    let r = run(cmd, 30);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(
        r.stdout(),
        format!("unix:{}\n", home.path().join("rampart.sock").display())
    );
    assert!(
        r.stderr()
            .starts_with("rampart: no policy server answered at http://127.0.0.1:9090; started one in the background"),
        "{}",
        r.stderr()
    );
    assert!(wait_until(5, || !events(home.path()).is_empty()));
}
