//! Test fixture: a throw-away `RAMPART_HOME` and a way to run the real `rampart` binary
//! in it. Tests never touch the real `~/.rampart`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SEED_POLICY: &str = include_str!("../../../examples/seed-policy.yaml");

pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::Builder::new()
                .prefix("rampart-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn policies(&self) -> PathBuf {
        self.path().join("policies")
    }

    /// Writes `policies/<name>` and returns its path.
    pub fn policy(&self, name: &str, yaml: &str) -> PathBuf {
        std::fs::create_dir_all(self.policies()).unwrap();
        let path = self.policies().join(name);
        std::fs::write(&path, yaml).unwrap();
        path
    }

    pub fn cmd(&self) -> Command {
        self.cmd_of(Path::new(env!("CARGO_BIN_EXE_rampart")))
    }

    /// Like [`Home::cmd`] with another copy of the binary (an "installed" one).
    pub fn cmd_of(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        // Nothing from the caller's environment: a developer's exported RAMPART_URL,
        // RAMPART_TOKEN, RAMPART_MODE, RAMPART_FAIL_OPEN… must not change what a test sees.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("RAMPART_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("RAMPART_HOME", self.path())
            .env_remove("LD_PRELOAD")
            // CI=true makes asks refuse at once (issue 15); tests that want that set it.
            .env_remove("CI");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.cmd().args(args).output().unwrap())
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
}

/// A real `rampart serve` on a free loopback port and the home's Unix socket; killed
/// when dropped.
pub struct Server {
    child: Option<std::process::Child>,
    pub port: u16,
    pub token: String,
    pub socket: PathBuf,
    /// Lines the server wrote to stderr (reload messages etc.), collected in the background.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    pub fn start(home: &Home, extra: &[&str]) -> Server {
        Server::start_on_with_env(home, 0, extra, &[])
    }

    /// [`Server::start`] on a given port (a restart on the port a killed server had).
    pub fn start_on(home: &Home, port: u16, extra: &[&str]) -> Server {
        Server::start_on_with_env(home, port, extra, &[])
    }

    /// `start` with more environment variables for the server.
    pub fn start_with_env(home: &Home, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_on_with_env(home, 0, extra, env)
    }

    fn start_on_with_env(home: &Home, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Server {
        use std::io::{BufRead, BufReader};
        let mut child = home
            .cmd()
            .args(["serve", "--port", &port.to_string()])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", stderr.lock().unwrap());
            }
        };
        // "rampart: listening on http://ADDR:PORT and unix:PATH (mode M)"
        let port = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|hostport| hostport.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        let token = std::fs::read_to_string(home.path().join("token"))
            .unwrap()
            .trim()
            .to_owned();
        Server {
            child: Some(child),
            port,
            token,
            socket: home.path().join("rampart.sock"),
            stderr,
        }
    }

    pub fn unix(&self) -> Endpoint {
        Endpoint::Unix(self.socket.clone())
    }

    pub fn tcp(&self) -> Endpoint {
        Endpoint::Tcp(format!("127.0.0.1:{}", self.port))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// An authenticated request over the Unix socket.
    pub fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Response {
        request(
            &self.unix(),
            method,
            path,
            Some(&self.token),
            body.as_ref(),
            std::time::Duration::from_secs(30),
        )
        .unwrap()
    }

    pub fn preflight(&self, body: serde_json::Value) -> serde_json::Value {
        let r = self.call("POST", "/v1/preflight/exec", Some(body));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json().unwrap()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let child = self.child.take()?;
        signal(child.id(), "TERM");
        let output = child.wait_with_output().ok()?;
        output.status.code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

pub use rampart_server::client::{Endpoint, Response, request};

/// Polls `cond` every 20 ms for at most `secs` seconds.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

/// Every audit event id in the home's trail.
pub fn audit_ids(home: &Path) -> std::collections::HashSet<String> {
    let mut ids = std::collections::HashSet::new();
    let Ok(entries) = std::fs::read_dir(home.join("audit")) else {
        return ids;
    };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                ids.insert(v["id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids
}

/// The preload library the end-to-end tests run with (`make -C preload` builds it);
/// a missing library fails the test with that instruction.
pub fn library() -> PathBuf {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../preload/build/librampart.so");
    assert!(
        lib.is_file(),
        "{} is missing: run `make -C preload` first (the end-to-end tests need the real library)",
        lib.display()
    );
    lib.canonicalize().unwrap()
}

/// `cmd` without any `RAMPART_*` variable of the caller's environment (a developer's
/// exported RAMPART_URL, RAMPART_TOKEN, RAMPART_DEBUG… must not change what a test sees);
/// for commands not built by [`Home::cmd`].
pub fn clean(mut cmd: Command) -> Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RAMPART_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A `[WAIT]` line with its approval id replaced by `ID` and its seconds left by `N`, so
/// a test can assert the rest of it exactly.
pub fn mask_wait(line: &str) -> String {
    let Some(start) = line.find(", approval ") else {
        return line.to_owned();
    };
    let id_start = start + ", approval ".len();
    let Some(id_len) = line[id_start..].find(", ") else {
        return line.to_owned();
    };
    let id = &line[id_start..id_start + id_len];
    let rest = &line[id_start + id_len + 2..];
    let Some(secs) = rest.find("s left)") else {
        return line.to_owned();
    };
    if id.is_empty() || rest[..secs].parse::<u64>().is_err() {
        return line.to_owned();
    }
    format!(
        "{}, approval ID, Ns left){}",
        &line[..start],
        &rest[secs + "s left)".len()..]
    )
    .replace(&format!("'rampart approve {id}'"), "'rampart approve ID'")
    .replace(&format!("'rampart deny {id}'"), "'rampart deny ID'")
}

/// Whether the tests run as root (the owner of a file we just created is our effective
/// uid). Tests that need root skip loudly without it; tests that act as an ordinary user
/// switch to uid 1000 from it.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid() == 0
}

/// A started process whose output is collected in the background.
pub struct Running {
    child: Child,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<Vec<u8>>,
}

pub fn spawn(mut cmd: Command) -> Running {
    // Own process group, so a timeout can kill the agent and everything it started.
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
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    Running { child, out, err }
}

impl Running {
    /// Waits at most `secs`; on timeout kills the whole group and fails the test.
    pub fn wait(mut self, secs: u64) -> Run {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let Some(status) = status else {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.wait();
            let out = String::from_utf8_lossy(&self.out.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&self.err.join().unwrap()).into_owned();
            panic!("no exit within {secs} s (deadlock?)\nstdout:\n{out}\nstderr:\n{err}");
        };
        Run(std::process::Output {
            status,
            stdout: self.out.join().unwrap(),
            stderr: self.err.join().unwrap(),
        })
    }
}

/// Runs `cmd` to its end, at most `secs` (then kills its process group and fails).
pub fn run(cmd: Command, secs: u64) -> Run {
    spawn(cmd).wait(secs)
}

/// The real Python binary (pyenv shims are bash scripts that would add execs of their
/// own), found once.
pub fn python() -> &'static str {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 must be installed for the end-to-end tests");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

/// Every audit event of the home, oldest first (day files in name order); none when
/// there is no audit directory yet.
pub fn events(home: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(home.join("audit"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect()
}
