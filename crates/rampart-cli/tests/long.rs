//! The concurrency soak (issue 8, item 4): 32 Python threads, and 32 Node worker_threads,
//! start programs for `RAMPART_LONG_SECS` seconds (default 30) under `rampart preload` and
//! under `rampart supervise`, against a real `rampart serve`. Run by `make test-long`
//! (`cargo test -p rampart-cli --test long`); `make test` leaves this binary out
//! (`test = false` in Cargo.toml keeps it out of `--all-targets`).
//!
//! Each run proves:
//! - no deadlock: the agent ends within a generous bound, or a watchdog lists its process
//!   tree, kills it and fails the test;
//! - no crash: the agent exits 0, every allowed program ran and exited 0 (none killed by a
//!   signal), the server still answers;
//! - every spawn audited exactly once: each spawn carries a unique marker (TAG-t-n) in its
//!   argv, the agent records what it tried and what happened, and the record is joined
//!   with the audit trail — one event per marker with the right decision, no event for a
//!   marker the agent never tried; denied spawns failed with EPERM and left no file,
//!   allowed ones ran (their files exist, their output came back), one denial line each
//!   on stderr; finally `rampart audit verify` passes over the whole trail.
//!
//! The spawn paths covered: CPython's subprocess (a `vfork` child of a 32-thread process;
//! by name, it tries every PATH candidate, /usr/bin/touch then /bin/touch, and one denied
//! spawn must still be one audit event),
//! `os.posix_spawn` (the library checks in the calling thread of the agent itself, with an
//! empty environment), and Node's spawnSync/execFileSync in worker_threads (libuv `fork`s
//! a child of a multi-threaded process, which then execs). Under preload the library runs
//! in those children; under supervise the supervisor's worker pool answers them all.
//!
//! The interpreter itself and `supervise`'s check of the agent's own command are audited
//! too; they carry no marker and are left out of the join.

// Helpers outside #[test] functions may unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod util;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use util::library;
use util::{Home, Server};

const AGENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents");
/// Python threads, and Node workers, per run.
const WORKERS: usize = 32;
const DENIED: &str = "rampart: [ERROR] Policy denied: touch under no/ is blocked";

/// Exact decisions: `touch` into a `no/` directory is denied, everything else allowed.
const POLICY: &str = r#"version: "1"
default_action: allow
policies:
  - name: long-block-no
    match:
      tool: ["exec"]
    rules:
      - action: deny
        when:
          command_matches: ["touch */no/*"]
        message: "touch under no/ is blocked"
"#;

/// `RAMPART_LONG_SECS`, default 30.
fn secs() -> u64 {
    match std::env::var("RAMPART_LONG_SECS") {
        Err(_) => 30,
        Ok(v) => match v.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("RAMPART_LONG_SECS={v:?}: expected a whole number of seconds, at least 1"),
        },
    }
}

/// The real Python binary (a pyenv shim is a bash script that would add execs of its own).
fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 must be installed for the long tests");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn node() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join("node"))
        .find(|p| p.is_file())
        .expect("node must be installed for the long tests");
    found.canonicalize().unwrap().display().to_string()
}

#[derive(Clone, Copy, Debug)]
enum Lang {
    Python,
    Node,
}

#[derive(Clone, Copy, Debug)]
enum Guard {
    Preload,
    Supervise,
}

/// What the agent wrote for one spawn.
struct Attempt {
    expect: String,
    api: String,
    outcome: String,
    detail: String,
}

/// The four runs share two cores: one at a time, whatever `--test-threads` says.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn soak(lang: Lang, guard: Guard) {
    let _turn = one_at_a_time();
    let secs = secs();
    let home = Home::new();
    home.policy("custom.yaml", POLICY);
    let server = Server::start(&home, &[]);
    let scratch = home.path().join("spawns");
    std::fs::create_dir_all(scratch.join("ok")).unwrap();
    std::fs::create_dir_all(scratch.join("no")).unwrap();
    let record = home.path().join("record.jsonl");
    let (lang_name, interpreter, script) = match lang {
        Lang::Python => ("python", python(), "long_spawn.py"),
        Lang::Node => ("node", node(), "long_spawn.js"),
    };
    let guard_name = match guard {
        Guard::Preload => "preload",
        Guard::Supervise => "supervise",
    };
    // Markers are TAG-t-n; the agent's own command line holds TAG but never "TAG-".
    let tag = format!("mark{lang_name}{guard_name}");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.env_clear()
        .env("RAMPART_HOME", home.path())
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir(home.path())
        .arg(guard_name)
        .args(["--url", &format!("http://127.0.0.1:{}", server.port)])
        .args(["--token", &server.token, "--no-autostart"])
        // An unanswered check refuses the spawn (and the join below reports it) instead of
        // letting it run unaudited.
        .arg("--fail-open=false")
        .arg("--")
        .arg(&interpreter)
        .arg(format!("{AGENTS}/{script}"))
        .arg(&tag)
        .arg(WORKERS.to_string())
        .arg(secs.to_string())
        .arg(&scratch)
        .arg(&record);
    if let Guard::Preload = guard {
        // `rampart preload` looks in $RAMPART_HOME/lib first: the library just built, not
        // one installed in /usr/local/lib.
        std::fs::create_dir_all(home.path().join("lib")).unwrap();
        std::fs::copy(library(), home.path().join("lib/librampart.so")).unwrap();
    }

    let started = Instant::now();
    let bound = Duration::from_secs(secs * 2 + 120);
    let (status, stdout, stderr) = run_watched(cmd, bound);
    let elapsed = started.elapsed();

    // No crash: the agent (and under supervise, the supervisor) exited 0.
    assert_eq!(
        status.code(),
        Some(0),
        "{lang_name} under {guard_name} did not exit 0: {status:?} (signal {:?})\nstdout:\n{stdout}\nstderr:\n{}",
        status.signal(),
        stderr_tail(&stderr)
    );

    let attempts = read_record(&record);
    let total = attempts.len();
    let denied: BTreeSet<&String> = attempts
        .iter()
        .filter(|(_, a)| a.expect == "eperm")
        .map(|(m, _)| m)
        .collect();
    let summary = match lang {
        Lang::Python => format!("python: {WORKERS} threads, {total} spawns in "),
        Lang::Node => format!("node: {WORKERS} workers, {total} spawns in "),
    };
    assert!(
        stdout.starts_with(&summary) && stdout.lines().count() == 1,
        "stdout: {stdout}"
    );
    if let Lang::Python = lang {
        // "..., open fds A -> B": the library keeps at most one connection (posix_spawn
        // runs it in the agent itself, from 32 threads at once), and nothing leaks.
        let (before, after) = stdout
            .trim_end()
            .rsplit_once(", open fds ")
            .and_then(|(_, fds)| fds.split_once(" -> "))
            .map(|(a, b)| (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap()))
            .unwrap_or_else(|| panic!("stdout: {stdout}"));
        let kept = match guard {
            Guard::Preload => 1,
            Guard::Supervise => 0,
        };
        assert!(
            after >= before && after <= before + kept,
            "open descriptors {before} before, {after} after: {stdout}"
        );
    }

    // Every worker spawned, and every spawn did what the policy says.
    let workers: BTreeSet<&str> = attempts
        .keys()
        .map(|m| m.rsplit('-').nth(1).unwrap())
        .collect();
    assert_eq!(workers.len(), WORKERS, "workers that spawned: {workers:?}");
    assert!(
        !denied.is_empty() && denied.len() < total,
        "{total} spawns, {} denied",
        denied.len()
    );
    let wrong: Vec<String> = attempts
        .iter()
        .filter(|(_, a)| a.outcome != a.expect)
        .map(|(m, a)| {
            format!(
                "{m} ({}): expected {}, got {} {}",
                a.api, a.expect, a.outcome, a.detail
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {total} spawns went wrong, e.g.:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );

    // The join: exactly one audit event per marker, with the matching decision.
    let events = events(home.path());
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "duplicate audit ids");
    let mut audited: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let needle = format!("{tag}-");
    for e in &events {
        let argv: Vec<&str> = e["argv"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let command = e["command"].as_str().unwrap_or_default();
        if !command.contains(&needle) && !argv.iter().any(|a| a.contains(&needle)) {
            continue;
        }
        let last = argv.last().copied().unwrap_or(command);
        let marker = last.rsplit('/').next().unwrap().to_owned();
        audited.entry(marker).or_default().push(e);
    }
    // Under preload, the library's entry point; os.posix_spawn is checked in the agent
    // itself, by whichever of its 32 threads called it.
    let want_via = |api: &str, via: &str| match guard {
        Guard::Preload if api == "posix_spawn" => via == "posix_spawn",
        Guard::Preload => via != "seccomp" && via != "rampart-preload" && via != "posix_spawn",
        Guard::Supervise => via == "seccomp",
    };
    let mut problems = Vec::new();
    for (marker, attempt) in &attempts {
        let want = if attempt.expect == "eperm" {
            "deny"
        } else {
            "allow"
        };
        match audited.get(marker).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("{marker} ({}): no audit event", attempt.api)),
            Some([e]) => {
                if e["decision"] != want
                    || !want_via(&attempt.api, e["via"].as_str().unwrap_or_default())
                {
                    problems.push(format!(
                        "{marker} ({}): want {want}, audited {} via {}",
                        attempt.api, e["decision"], e["via"]
                    ));
                }
            }
            Some(many) => problems.push(format!(
                "{marker} ({}): {} audit events: {:?}",
                attempt.api,
                many.len(),
                many.iter()
                    .map(|e| (&e["decision"], &e["via"], &e["pid"]))
                    .collect::<Vec<_>>()
            )),
        }
    }
    for marker in audited.keys().filter(|m| !attempts.contains_key(*m)) {
        problems.push(format!(
            "{marker}: audited but never attempted: {:?}",
            audited[marker]
        ));
    }
    assert!(
        problems.is_empty(),
        "{} of {total} spawns not audited exactly once, e.g.:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );

    // Denied programs did not run; allowed `touch`es did, exactly those.
    let no: Vec<String> = dir_names(&scratch.join("no"));
    assert!(no.is_empty(), "denied touches created files: {no:?}");
    let made: BTreeSet<String> = dir_names(&scratch.join("ok")).into_iter().collect();
    let touched: BTreeSet<String> = attempts
        .iter()
        .filter(|(_, a)| {
            a.expect == "ran" && a.api != "subprocess-capture" && a.api != "execFileSync"
        })
        .map(|(m, _)| m.clone())
        .collect();
    let extra: Vec<&String> = made.difference(&touched).take(10).collect();
    let missing: Vec<&String> = touched.difference(&made).take(10).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "files in ok/ differ from the allowed touches: unexpected {extra:?}, missing {missing:?}"
    );

    // One denial line per denied spawn, and nothing else, on stderr.
    let bad_lines: Vec<&str> = stderr.lines().filter(|l| *l != DENIED).take(20).collect();
    assert!(
        bad_lines.is_empty(),
        "unexpected stderr lines: {bad_lines:#?}"
    );
    assert_eq!(
        stderr.lines().count(),
        denied.len(),
        "denial lines on stderr"
    );

    // The server's own query sees the same marker events (newest first, paged).
    let marker_ids: BTreeSet<&str> = audited
        .values()
        .flatten()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let mut api_ids = BTreeSet::new();
    let mut before = String::new();
    for _ in 0..1000 {
        let page = server.call(
            "GET",
            &format!("/v1/audit/events?q={needle}&limit=10000{before}"),
            None,
        );
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json().unwrap();
        let page = page["events"].as_array().unwrap();
        let Some(last) = page.last() else { break };
        before = format!("&before={}", last["id"].as_str().unwrap());
        api_ids.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
    }
    assert!(
        api_ids
            .iter()
            .map(String::as_str)
            .eq(marker_ids.iter().copied()),
        "/v1/audit/events?q={needle} found {} events, the files {}",
        api_ids.len(),
        marker_ids.len()
    );

    // The server survived, and the whole trail's hash chain is intact.
    let status = server.call("GET", "/v1/status", None);
    assert_eq!(status.status, 200, "{}", status.text());
    let files = audit_files(home.path()).len();
    let verify = home.run(&["audit", "verify"]);
    assert_eq!(verify.code(), 0, "{}", verify.stdout());
    assert_eq!(
        verify.stdout(),
        format!(
            "ok: {} events in {files} file(s), hash chain intact\n",
            thousands(events.len())
        )
    );

    let mut by_api: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (marker, attempt) in &attempts {
        let via = audited[marker][0]["via"].as_str().unwrap();
        *by_api.entry((attempt.api.as_str(), via)).or_default() += 1;
    }
    eprintln!(
        "{lang_name} x {guard_name}: {total} spawns ({} denied) by {WORKERS} workers in {:.1} s \
         ({:.0} spawns/s), {} audit events; (api, via): {by_api:?}",
        denied.len(),
        elapsed.as_secs_f64(),
        total as f64 / secs.max(1) as f64,
        events.len()
    );
}

/// Runs `cmd` in its own process group with stdout and stderr collected; if it has not
/// finished after `bound`, lists the group's processes, kills the group and fails.
fn run_watched(mut cmd: Command, bound: Duration) -> (std::process::ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, out.join().unwrap(), err.join().unwrap());
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pgid = child.id().to_string();
    let ps = Command::new("ps")
        .args(["-eo", "pgid,pid,ppid,stat,wchan:32,args"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let ps: String = ps
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.split_whitespace().next() == Some(pgid.as_str()))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status();
    let _ = child.wait();
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    panic!(
        "no exit within {} s (deadlock?); the process group was:\n{ps}\nstdout:\n{stdout}\nstderr:\n{}",
        bound.as_secs(),
        stderr_tail(&stderr)
    );
}

/// The last lines of stderr other than the expected denial lines, and how many of those
/// there were.
fn stderr_tail(stderr: &str) -> String {
    let denials = stderr.lines().filter(|l| *l == DENIED).count();
    let other: Vec<&str> = stderr.lines().filter(|l| *l != DENIED).collect();
    let from = other.len().saturating_sub(40);
    format!(
        "({denials} denial lines left out)\n{}",
        other[from..].join("\n")
    )
}

fn read_record(path: &Path) -> BTreeMap<String, Attempt> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the agent wrote no record {}: {e}", path.display()));
    let mut attempts = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let field = |k: &str| v[k].as_str().unwrap().to_owned();
        let attempt = Attempt {
            expect: field("expect"),
            api: field("api"),
            outcome: field("outcome"),
            detail: field("detail"),
        };
        let marker = field("marker");
        assert!(
            attempts.insert(marker.clone(), attempt).is_none(),
            "marker {marker} recorded twice"
        );
    }
    attempts
}

fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The home's audit day files, oldest first.
fn audit_files(home: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(home.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
}

/// Every audit event of the home, oldest first.
fn events(home: &Path) -> Vec<Value> {
    audit_files(home)
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn python_threads_under_preload_every_spawn_audited_once() {
    soak(Lang::Python, Guard::Preload);
}

#[test]
fn node_workers_under_preload_every_spawn_audited_once() {
    soak(Lang::Node, Guard::Preload);
}

#[test]
fn python_threads_under_supervise_every_spawn_audited_once() {
    soak(Lang::Python, Guard::Supervise);
}

#[test]
fn node_workers_under_supervise_every_spawn_audited_once() {
    soak(Lang::Node, Guard::Supervise);
}
