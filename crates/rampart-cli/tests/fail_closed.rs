//! Issue 12, the preload library's side: fail closed wherever the guard cannot see.
//!
//! Real `rampart serve`, the real `preload/build/librampart.so` (run directly with
//! `LD_PRELOAD` and `RAMPART_*`, no launcher), real Python and bash. Every program the
//! policy denies is a fake `touch` that records its argv, so "it ran" is a file on disk.
//! Each test here failed on the library before issue 12:
//! - a denied program renamed in and out of existence ran about 20% of the time (the
//!   library handed a path it found missing to the real exec, unchecked);
//! - an environment of more than 8192 entries was passed through without `LD_PRELOAD`,
//!   so the child's own children were not checked;
//! - an unusable `RAMPART_URL` (a relative `unix:` path) failed open, silently;
//! - fail-open said nothing at all.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::util::library;
use crate::util::{Home, Server, events, python, wait_until};

/// Denies `touch` (by any path: the normaliser reduces the program to its basename).
const POLICY: &str = r#"version: "1"
default_action: allow
policies:
  - name: deny-touch
    match:
      tool: ["exec"]
    rules:
      - action: deny
        when:
          command_matches: ["touch", "touch *"]
        message: "touch is not allowed"
"#;
const DENIED: &str = "rampart: [ERROR] Policy denied: touch is not allowed";
const PATH: &str = "/usr/bin:/bin";

use crate::util::is_root;

/// A scratch directory any user can enter, with a fake `touch` that appends its argv to
/// `ran` (created on first run) instead of touching anything.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("rampart-fc-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let touch = dir.path().join("touch");
        std::fs::write(
            &touch,
            format!("#!/bin/sh\necho \"$@\" >> {}/ran\n", dir.path().display()),
        )
        .unwrap();
        std::fs::set_permissions(&touch, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn touch(&self) -> String {
        self.path().join("touch").display().to_string()
    }

    /// What the fake `touch` recorded (empty: it never ran).
    fn ran(&self) -> String {
        std::fs::read_to_string(self.path().join("ran")).unwrap_or_default()
    }
}

/// A command with the library preloaded against `url`, nothing else from our environment.
fn preloaded(program: &str, url: &str, token: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", PATH)
        .env("LC_ALL", "C")
        .env("LD_PRELOAD", library())
        .env("RAMPART_URL", url)
        .env("RAMPART_TOKEN", token)
        .env("RAMPART_ASK_TIMEOUT", "0")
        .stdin(Stdio::null());
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn started(home: &Home) -> Server {
    home.policy("deny-touch.yaml", POLICY);
    Server::start(home, &[])
}

/// A second process renames the denied program out of and back into existence in a tight
/// loop while a Python agent tries to start it 2000 times. Every attempt must end in
/// ENOENT (we found it missing: the library now returns that itself instead of handing
/// the path to the real exec, where the file could have come back) or EPERM (it was
/// there and the policy denied it). It never runs.
#[test]
fn a_denied_program_renamed_in_and_out_of_existence_never_runs() {
    let home = Home::new();
    let server = started(&home);
    let s = Scratch::new();
    let stop = s.path().join("stop");
    let mut renamer = Command::new(python())
        .env_clear()
        .env("PATH", PATH)
        .args([
            "-c",
            "import os, sys\n\
             on, off, stop = sys.argv[1], sys.argv[1] + '.off', sys.argv[2]\n\
             for i in range(50_000_000):\n\
             \x20   os.rename(on, off)\n\
             \x20   os.rename(off, on)\n\
             \x20   if i % 256 == 0 and os.path.exists(stop):\n\
             \x20       break\n",
        ])
        .arg(s.touch())
        .arg(&stop)
        .spawn()
        .unwrap();
    let out = preloaded(
        python(),
        &format!("http://127.0.0.1:{}", server.port),
        &server.token,
    )
    .args([
        "-c",
        "import collections, json, subprocess, sys\n\
         seen = collections.Counter()\n\
         for i in range(2000):\n\
         \x20   try:\n\
         \x20       subprocess.run([sys.argv[1], 'F'], stderr=subprocess.DEVNULL)\n\
         \x20       seen['ran'] += 1\n\
         \x20   except FileNotFoundError:\n\
         \x20       seen['enoent'] += 1\n\
         \x20   except PermissionError:\n\
         \x20       seen['eperm'] += 1\n\
         \x20   except OSError as e:\n\
         \x20       seen['errno %d' % e.errno] += 1\n\
         print(json.dumps(seen))\n",
    ])
    .arg(s.touch())
    .output()
    .unwrap();
    std::fs::write(&stop, "").unwrap();
    renamer.wait().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    let count = |k: &str| seen[k].as_u64().unwrap_or(0);
    assert_eq!(s.ran(), "", "the denied program ran: {seen}");
    assert_eq!(count("ran"), 0, "{seen}");
    assert_eq!(count("enoent") + count("eperm"), 2000, "{seen}");
    assert!(count("eperm") > 0, "the program was never there: {seen}");
    // Every line on stderr is the policy's refusal.
    for line in stderr.lines() {
        assert_eq!(line, DENIED);
    }
}

/// `/dev/fd/N/touch` and `/proc/self/cwd/touch` are the same denied program: the library
/// resolves them in the calling process itself, and the policy sees `touch`. Run as an
/// ordinary user when the tests run as root.
#[test]
fn fd_and_proc_self_spellings_of_a_denied_program_are_denied() {
    let home = Home::new();
    let server = started(&home);
    let s = Scratch::new();
    let script = format!(
        "exec 77<{dir}; /dev/fd/77/touch {dir}/F1; echo rc=$?; cd {dir} && /proc/self/cwd/touch F2; echo rc=$?",
        dir = s.path().display()
    );
    let mut cmd = preloaded(
        "/bin/bash",
        &format!("http://127.0.0.1:{}", server.port),
        &server.token,
    );
    if is_root() {
        // setpriv itself runs without the library (its command line names touch, in the
        // script); `env` hands it to bash.
        cmd = {
            let mut c = preloaded(
                "/usr/bin/setpriv",
                &format!("http://127.0.0.1:{}", server.port),
                &server.token,
            );
            c.env_remove("LD_PRELOAD")
                .args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
                .arg("/usr/bin/env")
                .arg(format!("LD_PRELOAD={}", library().display()))
                .arg("/bin/bash");
            c
        };
    } else {
        println!("SKIPPED running as uid 1000 (not root): running as ourselves");
    }
    let out = cmd.args(["-c", &script]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(stdout, "rc=126\nrc=126\n", "stderr:\n{stderr}");
    assert_eq!(s.ran(), "", "a spelling of touch ran");
    assert!(!s.path().join("F1").exists() && !s.path().join("F2").exists());
    assert_eq!(
        stderr.lines().filter(|l| *l == DENIED).count(),
        2,
        "stderr:\n{stderr}"
    );
    let denied: Vec<String> = events(home.path())
        .iter()
        .filter(|e| e["decision"] == "deny")
        .map(|e| e["command"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
}

/// A child environment the library cannot re-inject itself into (more than 8179 entries)
/// is refused with E2BIG and one line, by `os.execve` and by `subprocess`; a smaller one
/// gets the library back even though the caller dropped `LD_PRELOAD`, so the denied
/// grandchild stays denied.
#[test]
fn a_huge_environment_never_drops_the_library() {
    let home = Home::new();
    let server = started(&home);
    let s = Scratch::new();
    let agent = "import os, subprocess, sys\n\
        touch, n = sys.argv[1], int(sys.argv[2])\n\
        env = {'V%d' % i: '' for i in range(n)}\n\
        env['PATH'] = '/usr/bin:/bin'\n\
        grandchild = 'import subprocess\\ntry:\\n    subprocess.run([%r, \"F\"])\\n    print(\"grandchild ran\")\\nexcept PermissionError:\\n    print(\"grandchild eperm\")\\n' % touch\n\
        child = [sys.executable, '-c', grandchild]\n\
        try:\n\
        \x20   r = subprocess.run(child, env=env, stdout=subprocess.PIPE, text=True)\n\
        \x20   print('subprocess', r.stdout.strip())\n\
        except OSError as e:\n\
        \x20   print('subprocess errno', e.errno)\n\
        sys.stdout.flush()\n\
        try:\n\
        \x20   os.execve(sys.executable, child, env)\n\
        except OSError as e:\n\
        \x20   print('execve errno', e.errno)\n";
    let url = format!("http://127.0.0.1:{}", server.port);
    for (n, want) in [
        (
            8000,
            "subprocess grandchild eperm\ngrandchild eperm\n".to_owned(),
        ),
        (9000, "subprocess errno 7\nexecve errno 7\n".to_owned()),
        (100_000, "subprocess errno 7\nexecve errno 7\n".to_owned()),
    ] {
        let out = preloaded(python(), &url, &server.token)
            .args(["-c", agent])
            .arg(s.touch())
            .arg(n.to_string())
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(stdout, want, "{n} entries; stderr:\n{stderr}");
        assert_eq!(s.ran(), "", "{n} entries: the grandchild ran unchecked");
        if n > 8179 {
            let line = format!(
                "rampart: [ERROR] Policy denied: the environment has {} entries, more than the 8179 the library can pass on with LD_PRELOAD (E2BIG); not starting {} -c ",
                n + 1,
                python()
            );
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 2, "{stderr}");
            assert!(lines.iter().all(|l| l.starts_with(&line)), "{stderr}");
        } else {
            assert_eq!(stderr, format!("{DENIED}\n{DENIED}\n"));
        }
    }
}

/// One Python agent spawn through `subprocess`, as `(stdout, stderr)`.
fn python_spawn(url: &str, extra: &[(&str, &str)]) -> (String, String) {
    let mut cmd = preloaded(python(), url, "secret");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd
        .args([
            "-c",
            "import subprocess\ntry:\n    subprocess.run(['/bin/echo', 'reached'])\nexcept PermissionError as e:\n    print('eperm', e.errno)",
        ])
        .output()
        .unwrap();
    text(&out)
}

/// A request the library cannot build is not "nobody answered": with a relative `unix:`
/// path (which the launcher once accepted) every exec is refused, fail-open or not.
/// `RAMPART_PROTECT` refuses even when nobody answered. Monitor never blocks.
#[test]
fn an_unusable_url_or_protect_refuses_whatever_fail_open_says() {
    let dir = tempfile::tempdir().unwrap();
    let url = "unix:rampart.sock";
    let refused = format!(
        "rampart: [ERROR] Policy denied: RAMPART_URL {url} is a relative unix: socket path (give an absolute path: the library runs in every working directory)\n"
    );
    for fail_open in ["true", "false"] {
        let got = python_spawn(url, &[("RAMPART_FAIL_OPEN", fail_open)]);
        assert_eq!(
            got,
            ("eperm 1\n".to_owned(), refused.clone()),
            "{fail_open}"
        );
    }
    let (out, err) = python_spawn(url, &[("RAMPART_MODE", "monitor")]);
    assert_eq!(out, "reached\n");
    assert!(
        err.starts_with(
            "rampart: [WARN] RAMPART_URL unix:rampart.sock is a relative unix: socket path"
        ),
        "{err}"
    );

    let missing = format!("unix:{}/none.sock", dir.path().display());
    let got = python_spawn(&missing, &[("RAMPART_PROTECT", "1")]);
    assert_eq!(
        got,
        (
            "eperm 1\n".to_owned(),
            format!(
                "rampart: [ERROR] Policy denied: policy server unreachable at {missing} and RAMPART_PROTECT is on\n"
            )
        )
    );
}

/// Fail-open is never silent: a Python agent whose server is not there yet runs its
/// programs unchecked with one `[WARN]` line, then checks again once the server is up
/// (the first answered preflight carries `"ran_unchecked": 3`, which the server accepts).
#[test]
fn fail_open_is_announced_once_and_checks_resume_when_the_server_is_back() {
    let home = Home::new();
    home.policy("deny-touch.yaml", POLICY);
    let s = Scratch::new();
    let go = s.path().join("go");
    let url = format!("unix:{}", home.path().join("rampart.sock").display());
    // The token the server will use (it keeps an existing one): the library reads its
    // configuration once, at load, before any server exists.
    let token = format!("rampart_{}", "5a".repeat(32));
    let token_file = home.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut agent = preloaded(python(), &url, &token)
        .args([
            "-c",
            "import os, subprocess, sys, time\n\
             touch, go = sys.argv[1], sys.argv[2]\n\
             subprocess.run(['/bin/echo', 'one'])\n\
             subprocess.run(['/bin/echo', 'two'])\n\
             os.waitpid(os.posix_spawn('/bin/echo', ['/bin/echo', 'three'], dict(os.environ)), 0)\n\
             print('waiting', flush=True)\n\
             for _ in range(6000):\n\
             \x20   if os.path.exists(go):\n\
             \x20       break\n\
             \x20   time.sleep(0.01)\n\
             subprocess.run(['/bin/echo', 'after'])\n\
             try:\n\
             \x20   subprocess.run([touch, 'F'])\n\
             except PermissionError:\n\
             \x20   print('eperm')\n",
        ])
        .arg(s.touch())
        .arg(&go)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The agent has run its three programs unchecked when it says `waiting`.
    let mut stdout = agent.stdout.take().unwrap();
    let mut seen = String::new();
    assert!(wait_until(60, || {
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut stdout, &mut buf).unwrap_or(0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.contains("waiting") || n == 0
    }));
    assert_eq!(seen, "one\ntwo\nthree\nwaiting\n");
    let server = Server::start(&home, &[]);
    assert_eq!(server.token, token);
    std::fs::write(&go, "").unwrap();
    let out = agent.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(rest, "after\neperm\n");
    assert_eq!(
        stderr,
        format!(
            "rampart: [WARN] policy server unreachable at {url}: /bin/echo one runs unchecked (fail-open; said once; --fail-open=false or RAMPART_FAIL_OPEN=false fails closed)\n{DENIED}\n"
        )
    );
    assert_eq!(s.ran(), "");
    let decided: Vec<(String, String)> = events(home.path())
        .iter()
        .filter(|e| e["command"].is_string())
        .map(|e| {
            (
                e["command"].as_str().unwrap().to_owned(),
                e["decision"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    // The three unchecked programs are reported with the first answered check, and the
    // server records that report before the check's own event.
    assert_eq!(
        decided,
        [
            (String::new(), "unchecked".to_owned()),
            ("/bin/echo after".to_owned(), "allow".to_owned()),
            (format!("{} F", s.touch()), "deny".to_owned()),
        ]
    );
    let report = events(home.path())
        .into_iter()
        .find(|e| e["decision"] == "unchecked")
        .unwrap();
    assert_eq!(report["unchecked"], 3, "{report}");
}

/// Issue 16: the library used by hand (the seed's troubleshooting) without `RAMPART_TOKEN`
/// says which variable is missing and how to set it, not a bare "refused our token";
/// a wrong token still gets the plain refusal.
#[test]
fn by_hand_without_a_token_the_refusal_names_rampart_token() {
    let home = Home::new();
    home.policy("p.yaml", POLICY);
    let server = Server::start(&home, &[]);
    let run = |token: Option<&str>| {
        let mut cmd = Command::new("/bin/sh");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("RAMPART_") {
                cmd.env_remove(name);
            }
        }
        cmd.args(["-c", "/bin/true"])
            .env("LD_PRELOAD", library())
            .env("RAMPART_URL", format!("unix:{}", server.socket.display()))
            .env("PATH", PATH);
        if let Some(token) = token {
            cmd.env("RAMPART_TOKEN", token);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.code(),
            err.lines().next().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(
        run(None),
        (
            Some(126),
            "rampart: [ERROR] Policy denied: RAMPART_TOKEN is not set (`rampart preload` sets it; by hand: export RAMPART_TOKEN=\"$(rampart token show)\"), and the policy server refused the request without it (HTTP 401)".to_owned()
        )
    );
    assert_eq!(
        run(Some("rampart_wrong")),
        (
            Some(126),
            "rampart: [ERROR] Policy denied: the policy server refused our token (HTTP 401)"
                .to_owned()
        )
    );
    assert_eq!(run(Some(&server.token)), (Some(0), String::new()));
}
