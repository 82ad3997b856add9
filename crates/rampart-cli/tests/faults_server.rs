//! The server under faults and load (issue 8, items 1c–1e), end to end with real
//! `rampart serve` processes:
//!
//! - the audit directory fills up or is read-only: preflights get 503, nothing that was
//!   not written is claimed, the chain stays valid and the server recovers by itself;
//! - the newest day file ends damaged at start-up (torn write, garbage, changed line,
//!   empty line): the server starts, says what it did, and `rampart audit verify` is
//!   exact about it;
//! - many pending approvals, event-stream clients and idle connections: memory stays
//!   bounded, others are still served, and the caps answer clearly.
//!
//! A full disk is a small tmpfs mounted in a private mount namespace (`unshare -m`) that
//! only the server sees; the test reaches it through `/proc/<pid>/root`. Where mounting is
//! impossible the test says SKIPPED on stderr with the reason.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::util::{Endpoint, Home, SEED_POLICY, request, wait_until};

/// A `rampart serve` started through a wrapper (`unshare`, `sh -c 'ulimit ...'`); killed
/// when dropped.
struct Proc {
    child: Option<Child>,
    port: u16,
    token: String,
    socket: PathBuf,
    stderr: Arc<Mutex<String>>,
}

fn rampart() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

/// Starts `program args...` (which must exec `rampart serve --port 0`) in `home`'s
/// environment and waits for its "listening" line.
fn spawn(home: &Home, program: &str, args: &[&str]) -> Proc {
    use std::io::BufRead;
    let mut child = crate::util::clean(Command::new(program))
        .args(args)
        .env("RAMPART_HOME", home.path())
        .env_remove("RAMPART_URL")
        .env_remove("RAMPART_TOKEN")
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr_pipe = child.stderr.take().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr_pipe)
            .lines()
            .map_while(Result::ok)
        {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("server did not start: {}", stderr.lock().unwrap());
    };
    let port = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    let token = std::fs::read_to_string(home.path().join("token"))
        .unwrap()
        .trim()
        .to_owned();
    Proc {
        child: Some(child),
        port,
        token,
        socket: home.path().join("rampart.sock"),
        stderr,
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `path` as the server sees it (inside its mount namespace).
    fn seen(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid())).join(path.strip_prefix("/").unwrap())
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> crate::util::Response {
        request(
            &Endpoint::Unix(self.socket.clone()),
            method,
            path,
            Some(&self.token),
            body.as_ref(),
            Duration::from_secs(30),
        )
        .unwrap()
    }

    fn tcp_call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> crate::util::Response {
        request(
            &Endpoint::Tcp(format!("127.0.0.1:{}", self.port)),
            method,
            path,
            Some(&self.token),
            body.as_ref(),
            Duration::from_secs(30),
        )
        .unwrap()
    }

    fn exec(&self, command: &str) -> crate::util::Response {
        self.call(
            "POST",
            "/v1/preflight/exec",
            Some(json!({"agent": "preload", "session": "faults", "params": {"command": command}})),
        )
    }

    fn metric(&self, name: &str) -> u64 {
        let text = self.call("GET", "/metrics", None).text();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .parse()
            .unwrap()
    }

    fn event_ids(&self) -> Vec<String> {
        let r = self.call("GET", "/v1/audit/events?limit=10000", None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json().unwrap()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Resident memory of the server, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGTERM and wait; the exit code.
    fn terminate(mut self) -> Option<i32> {
        let child = self.child.take()?;
        crate::util::signal(child.id(), "TERM");
        child.wait_with_output().ok()?.status.code()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether this machine lets us mount a tmpfs in a private mount namespace; if not, says
/// SKIPPED on the real stderr (not captured by the test harness) with the reason.
fn can_mount(test: &str) -> bool {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"])
        .output();
    let reason = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        Err(e) => format!("cannot run unshare: {e}"),
    };
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED faults_server::{test}: needs `unshare -m` and a tmpfs mount (root): {reason}"
    );
    false
}

/// A server whose audit directory (`home/audit`) is a fresh tmpfs of `size` visible to it
/// alone; `mount_opts` may add `,ro`.
fn serve_on_tmpfs(home: &Home, size: &str, mount_opts: &str, extra: &[&str]) -> Proc {
    let audit = home.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    let script = format!(
        "mount -t tmpfs -o size={size},mode=0700{mount_opts} tmpfs \"$1\" && shift && exec \"$@\""
    );
    let mut args = vec![
        "-m",
        "sh",
        "-c",
        &script,
        "sh",
        audit.to_str().unwrap(),
        rampart(),
        "serve",
        "--port",
        "0",
    ];
    args.extend_from_slice(extra);
    spawn(home, "unshare", &args)
}

fn seed_home() -> Home {
    let home = Home::new();
    home.policy("seed.yaml", SEED_POLICY);
    home
}

/// Fills the file system holding `dir` (as the server sees it) to the last byte.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    for _ in 0..100_000 {
        match file.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Whatever fits of a partial block.
    let _ = file.write(&block[..1]);
    path
}

fn day_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl") && !p.ends_with("repairs.jsonl"))
        .collect();
    files.sort();
    files.pop().unwrap()
}

/// Issue 12, item 2: a full disk turns would-be allows into 503, but a refusal is still
/// answered as a refusal (before: 503 too, which the client's fail-open rule ran), said
/// on stderr and counted.
#[test]
fn a_full_disk_answers_503_claims_nothing_and_recovers_by_itself() {
    if !can_mount("a_full_disk_answers_503_claims_nothing_and_recovers_by_itself") {
        return;
    }
    let home = seed_home();
    let server = serve_on_tmpfs(&home, "256k", "", &[]);
    let audit = server.seen(&home.path().join("audit"));

    let mut answered = Vec::new();
    for i in 0..5 {
        let r = server.exec(&format!("echo before {i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        answered.push(r.json().unwrap()["audit_id"].as_str().unwrap().to_owned());
    }
    let day = day_file(&audit);
    let filler = fill(&audit);
    let size_before = std::fs::metadata(&day).unwrap().len();

    // Lines longer than a page cannot fit in what is left of the file's last page: each
    // write is cut short by the full disk, then cut back by the server.
    let long = format!("echo {}", "x".repeat(6000));
    let mut refused = 0;
    for _ in 0..4 {
        let r = server.exec(&long);
        assert_eq!(r.status, 503, "{}", r.text());
        let error = r.json().unwrap()["error"].as_str().unwrap().to_owned();
        assert!(
            error.starts_with(&format!(
                "audit trail cannot be written: cannot write audit file {}: No space left on device",
                home.path().join("audit").join(day.file_name().unwrap()).display()
            )),
            "{error}"
        );
        refused += 1;
    }
    // A denied command is still answered as a denial: a 503 would hand it to the
    // client's fail-open rule. Its event is missing, so the answer says so.
    let long_deny = format!("rm -rf / {}", "y".repeat(6000));
    let r = server.exec(&long_deny);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json().unwrap();
    assert_eq!(body["allowed"], json!(false), "{body}");
    assert_eq!(body["decision"], json!("deny"), "{body}");
    assert_eq!(body["audit_id"], json!(""), "{body}");
    assert_eq!(
        body["message"],
        json!("Destructive command blocked (not recorded: the audit trail cannot be written)"),
        "{body}"
    );
    refused += 1;
    // So is an ask that nobody waits for (no wait_ms): it refuses.
    let r = server.exec(&format!("curl {}", "q".repeat(6000)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().unwrap()["decision"], json!("ask"));
    refused += 1;
    assert_eq!(server.metric("rampart_unrecorded_refusals_total"), 2);
    let status = server.call("GET", "/v1/status", None).json().unwrap();
    assert_eq!(status["unrecorded_refusals"], json!(2), "{status}");
    let shown = home.run(&["serve", "status"]);
    assert!(
        shown.stdout().contains(
            "  unrecorded: 2 refusal(s) answered while the audit trail could not be written (see the server's stderr)\n"
        ),
        "{}",
        shown.stdout()
    );

    let content = std::fs::read(&day).unwrap();
    assert_eq!(
        content.len() as u64,
        size_before,
        "failed writes were cut back"
    );
    assert_eq!(content.last(), Some(&b'\n'));
    assert_eq!(server.metric("rampart_audit_writable"), 0);
    assert_eq!(server.metric("rampart_audit_errors_total"), refused);
    // Nothing that was refused shows up anywhere.
    let mut listed = server.event_ids();
    listed.sort();
    let mut expected = answered.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let stats = server.call("GET", "/v1/audit/stats", None).json().unwrap();
    assert_eq!(stats["totals"]["total"], 5, "{stats}");

    // Space comes back: the next preflight is answered and audited, with no restart.
    std::fs::remove_file(&filler).unwrap();
    let r = server.exec(&long);
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json().unwrap()["audit_id"].as_str().unwrap().to_owned();
    assert!(server.event_ids().contains(&id));
    assert_eq!(server.metric("rampart_audit_writable"), 1);

    // (stderr is collected by a thread of its own: wait for the lines to arrive)
    assert!(wait_until(10, || server
        .stderr()
        .matches("rampart: audit trail")
        .count()
        >= 2));
    let stderr = server.stderr();
    let outage: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rampart: audit trail"))
        .collect();
    assert_eq!(
        outage.len(),
        2,
        "one line when it failed, one when it recovered:\n{stderr}"
    );
    assert!(
        outage[0].contains("No space left on device")
            && outage[0]
                .ends_with("answering would-be allows 503 and refusals unrecorded until it can"),
        "{}",
        outage[0]
    );
    assert_eq!(
        outage[1],
        format!(
            "rampart: audit trail writable again; while it was not, {} preflight(s) were answered 503 and 2 refusal(s) were answered unrecorded",
            refused - 2
        )
    );
    // Each unrecorded refusal is said, on one line, since stderr is its only record.
    let unrecorded: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rampart: refusal answered but not recorded ("))
        .collect();
    assert_eq!(unrecorded.len(), 2, "{stderr}");
    assert!(
        unrecorded[0].contains("No space left on device")
            && unrecorded[0].contains("): deny agent preload session faults: rm -rf / yyy")
            && unrecorded[0].ends_with("y…"),
        "{}",
        unrecorded[0]
    );
    assert!(
        unrecorded[1].contains("): ask agent preload session faults: curl qqq"),
        "{}",
        unrecorded[1]
    );

    let verify = home.run(&["audit", "verify", "--audit-dir", audit.to_str().unwrap()]);
    assert_eq!(verify.code(), 0, "{}{}", verify.stdout(), verify.stderr());
    assert_eq!(
        verify.stdout(),
        "ok: 6 events in 1 file(s), hash chain intact\n"
    );
}

#[test]
fn monitor_mode_also_answers_503_when_the_audit_cannot_be_written() {
    if !can_mount("monitor_mode_also_answers_503_when_the_audit_cannot_be_written") {
        return;
    }
    let home = seed_home();
    let server = serve_on_tmpfs(&home, "64k", "", &["--mode", "monitor"]);
    let audit = server.seen(&home.path().join("audit"));
    assert_eq!(server.exec("rm -rf /").status, 200);
    let filler = fill(&audit);
    let r = server.exec(&format!("rm -rf / {}", "z".repeat(6000)));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("No space left on device"), "{}", r.text());
    std::fs::remove_file(filler).unwrap();
    let r = server.exec("rm -rf /");
    assert_eq!(r.status, 200);
    let body = r.json().unwrap();
    assert_eq!(
        (body["allowed"].clone(), body["policy_decision"].clone()),
        (json!(true), json!("deny"))
    );
    assert_eq!(server.event_ids().len(), 2);
}

#[test]
fn a_read_only_audit_directory_stops_start_up_with_a_clear_error() {
    if !can_mount("a_read_only_audit_directory_stops_start_up_with_a_clear_error") {
        return;
    }
    let home = seed_home();
    let audit = home.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k,ro tmpfs \"$1\" && shift && exec \"$@\"",
            "sh",
            audit.to_str().unwrap(),
            rampart(),
            "serve",
            "--port",
            "0",
        ])
        .env("RAMPART_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "rampart: error: audit trail: cannot open audit file {}: Read-only file system (os error 30)",
            audit.join(".lock").display()
        )
    );
}

/// The day file of a trail of three events written by a real server, stopped.
fn three_events(home: &Home) -> PathBuf {
    let server = crate::util::Server::start(home, &[]);
    for i in 0..3 {
        server.preflight(json!({"agent": "preload", "params": {"command": format!("echo {i}")}}));
    }
    assert_eq!(server.terminate(), Some(0));
    day_file(&home.path().join("audit"))
}

/// Appends raw bytes to an audit day file, as a crash or an editor would leave them.
fn append_raw(day: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(day)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn verify_out(home: &Home) -> (i32, String) {
    let run = home.run(&["audit", "verify"]);
    assert_eq!(run.stderr(), "");
    (run.code(), run.stdout())
}

/// Restarts the server on a damaged trail: what it said about the audit on stderr, and
/// the event it then wrote.
fn restart_and_append(home: &Home) -> (Vec<String>, serde_json::Value) {
    let server = crate::util::Server::start(home, &[]);
    let answer = server.preflight(json!({"agent": "preload", "params": {"command": "echo after"}}));
    let id = answer["audit_id"].as_str().unwrap().to_owned();
    // "shutting down" is the server's last line: everything before it has arrived.
    crate::util::signal(server.pid(), "TERM");
    assert!(wait_until(20, || server
        .stderr()
        .contains("rampart: shutting down")));
    let said: Vec<String> = server
        .stderr()
        .lines()
        .filter(|l| l.starts_with("rampart: audit: "))
        .map(str::to_owned)
        .collect();
    assert_eq!(server.terminate(), Some(0));
    let day = day_file(&home.path().join("audit"));
    let event = std::fs::read_to_string(day)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["id"] == id.as_str())
        .unwrap();
    (said, event)
}

fn hash_of_line(path: &Path, line: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().nth(line - 1).unwrap()).unwrap();
    v["hash"].as_str().unwrap().to_owned()
}

#[test]
fn a_torn_last_line_is_cut_off_at_start_up_said_and_recorded() {
    let home = seed_home();
    let day = three_events(&home);
    let fragment = br#"{"id":"01KAZ","ts":"2026-11-26T08:"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&day)
        .unwrap()
        .write_all(fragment)
        .unwrap();

    let (code, out) = verify_out(&home);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!(
            "note: {}:4: incomplete last line ({} bytes, from an interrupted write) ignored; the server cuts it off when it next starts\nok: 3 events in 1 file(s), hash chain intact\n",
            day.display(),
            fragment.len()
        )
    );

    let (said, event) = restart_and_append(&home);
    let what = format!(
        "cut off an unterminated partial line of {} bytes (a write cut short); no decision was returned for it; its bytes are kept in repairs.jsonl",
        fragment.len()
    );
    assert_eq!(
        said,
        [format!("rampart: audit: {}:4: {what}", day.display())]
    );
    assert_eq!(event["prev_hash"].as_str().unwrap(), hash_of_line(&day, 3));

    let (code, out) = verify_out(&home);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("note: repaired at start-up 20"),
        "{out}"
    );
    assert!(
        lines[0].ends_with(&format!("Z: {}:4: {what}", day.display())),
        "{out}"
    );
    assert_eq!(lines[1], "ok: 4 events in 1 file(s), hash chain intact");
    let record = std::fs::read_to_string(home.path().join("audit/repairs.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(record.trim()).unwrap();
    assert_eq!(record["bytes"].as_str().unwrap().as_bytes(), fragment);
}

#[test]
fn a_garbage_last_line_is_left_in_place_and_the_chain_continues_before_it() {
    let home = seed_home();
    let day = three_events(&home);
    append_raw(&day, b"this is not JSON\n");

    let (code, out) = verify_out(&home);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!(
            "BROKEN: {}:4: not a valid audit event: expected ident at line 1 column 2\n1 damaged line(s); 3 intact events in 1 file(s)\n",
            day.display()
        )
    );

    let (said, event) = restart_and_append(&home);
    assert_eq!(
        said,
        [format!(
            "rampart: audit: {}:4: not a valid audit event: expected ident at line 1 column 2; left in place, the chain continues from the last intact event before it (`rampart audit verify` reports this line)",
            day.display()
        )]
    );
    assert_eq!(event["prev_hash"].as_str().unwrap(), hash_of_line(&day, 3));

    // The damage is still named, exactly once; the new event links past it.
    let (code, out) = verify_out(&home);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!(
            "BROKEN: {}:4: not a valid audit event: expected ident at line 1 column 2\n1 damaged line(s); 4 intact events in 1 file(s)\n",
            day.display()
        )
    );
}

#[test]
fn a_changed_last_line_is_named_by_verify_and_the_chain_continues_before_it() {
    let home = seed_home();
    let day = three_events(&home);
    let text = std::fs::read_to_string(&day).unwrap();
    std::fs::write(&day, text.replacen("\"echo 2\"", "\"echo 3\"", 1)).unwrap();

    let (code, out) = verify_out(&home);
    assert_eq!(code, 1);
    let broken = format!(
        "BROKEN: {}:3: hash mismatch: the event was changed after it was written\n",
        day.display()
    );
    assert_eq!(
        out,
        format!("{broken}1 damaged line(s); 2 intact events in 1 file(s)\n")
    );

    let (said, event) = restart_and_append(&home);
    assert_eq!(
        said,
        [format!(
            "rampart: audit: {}:3: hash mismatch: the event was changed after it was written; left in place, the chain continues from the last intact event before it (`rampart audit verify` reports this line)",
            day.display()
        )]
    );
    assert_eq!(event["prev_hash"].as_str().unwrap(), hash_of_line(&day, 2));
    let (code, out) = verify_out(&home);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!("{broken}1 damaged line(s); 3 intact events in 1 file(s)\n")
    );
}

#[test]
fn an_empty_last_line_is_removed_at_start_up_said_and_recorded() {
    let home = seed_home();
    let day = three_events(&home);
    append_raw(&day, b"\n");

    let (code, out) = verify_out(&home);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!(
            "BROKEN: {}:4: empty line (the writer never writes one)\n1 damaged line(s); 3 intact events in 1 file(s)\n",
            day.display()
        )
    );

    let (said, event) = restart_and_append(&home);
    let what = "removed 1 empty line(s) at the end of the file";
    assert_eq!(
        said,
        [format!("rampart: audit: {}:4: {what}", day.display())]
    );
    assert_eq!(event["prev_hash"].as_str().unwrap(), hash_of_line(&day, 3));
    let (code, out) = verify_out(&home);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with(&format!(
            "Z: {}:4: {what}\nok: 4 events in 1 file(s), hash chain intact\n",
            day.display()
        )),
        "{out}"
    );
}

/// Raises this test process's open-file soft limit to its hard limit (many sockets).
fn raise_own_fd_limit() {
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            "--nofile=unlimited:",
        ])
        .status();
    // "unlimited:" may be refused; fall back to the hard limit read from /proc.
    if !status.is_ok_and(|s| s.success()) {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let hard = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(4))
            .unwrap()
            .to_owned();
        let ok = Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={hard}:"),
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "prlimit could not raise the open-file limit");
    }
}

fn soft_fd_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Sends an HTTP/1.1 request on a raw connection and leaves it open.
fn send_raw(stream: &mut impl Write, method: &str, path: &str, token: &str, body: &str) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
}

/// Reads one response's status line and headers (not the body).
fn read_head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if stream.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

const MIB: u64 = 1024;

#[test]
fn ten_thousand_pending_approvals_stay_bounded_and_others_are_still_served() {
    raise_own_fd_limit();
    assert!(
        soft_fd_limit() > 10_500,
        "needs an open-file limit above 10 500"
    );
    let home = seed_home();
    let server = spawn(
        &home,
        rampart(),
        &["serve", "--port", "0", "--approval-timeout", "10m"],
    );
    let base = server.rss_kib();
    let addr = format!("127.0.0.1:{}", server.port);
    let ask = |i: usize| {
        json!({"agent": "preload", "session": "flood", "params": {"command": format!("curl http://example.invalid/{i}")}, "wait_ms": 600_000})
            .to_string()
    };
    let pending = || {
        server.call("GET", "/v1/status", None).json().unwrap()["pending_approvals"]
            .as_u64()
            .unwrap()
    };
    // In batches, so the listen backlog never overflows (a dropped SYN costs the client a
    // one-second retry, which would only slow the test down).
    let hold_all = |round: usize| {
        let mut held = Vec::with_capacity(MAX_PENDING);
        for batch in 0..MAX_PENDING / 500 {
            for i in 0..500 {
                let mut stream = std::net::TcpStream::connect(&addr).unwrap();
                let n = round * MAX_PENDING + batch * 500 + i;
                send_raw(
                    &mut stream,
                    "POST",
                    "/v1/preflight/exec",
                    &server.token,
                    &ask(n),
                );
                held.push(stream);
            }
            let want = (batch as u64 + 1) * 500;
            assert!(
                wait_until(60, || pending() >= want),
                "{} < {want}",
                pending()
            );
        }
        held
    };
    let held = hold_all(0);
    let first = server.rss_kib();

    // Others are still served, on both listeners.
    assert_eq!(server.tcp_call("GET", "/healthz", None).text(), "ok");
    let r = server.exec("git status");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().unwrap()["decision"], "allow");
    // One more ask is denied at once, and audited, rather than queued.
    let over = server.call(
        "POST",
        "/v1/preflight/exec",
        Some(serde_json::from_str(&ask(99_999)).unwrap()),
    );
    assert_eq!(over.status, 200, "{}", over.text());
    let over = over.json().unwrap();
    assert_eq!(over["decision"], "deny");
    assert_eq!(
        over["message"],
        "Network command requires approval; denied without asking: 10000 approvals are already pending (see `rampart pending`)"
    );
    assert!(
        server
            .event_ids()
            .contains(&over["audit_id"].as_str().unwrap().to_owned())
    );
    assert_eq!(
        server.call("GET", "/v1/approvals", None).json().unwrap()["approvals"]
            .as_array()
            .unwrap()
            .len(),
        MAX_PENDING
    );

    // The waiting clients go away: their approvals expire and their memory is reused by
    // the next ten thousand, not added to.
    drop(held);
    assert!(wait_until(120, || pending() == 0), "{}", pending());
    assert!(wait_until(30, || server.metric("rampart_open_connections") <= 1));
    let between = server.rss_kib();
    let held = hold_all(1);
    let second = server.rss_kib();
    drop(held);
    assert!(wait_until(120, || pending() == 0), "{}", pending());
    eprintln!(
        "server RSS: {base} KiB at start, {first} KiB with 10 000 pending, {between} KiB after they left, {second} KiB with the next 10 000"
    );
    // Measured on the debug build: ~180 MiB with 10 000 held asks (~18 KiB each: a
    // connection, its buffers and the waiting handler), ~250 MiB for the next 10 000 as
    // the allocator fragments. A leak of what an ask holds would add 100+ MiB per round.
    assert!(first < 256 * MIB, "RSS {first} KiB");
    assert!(
        second <= first + first / 2,
        "RSS keeps growing: {first} KiB, then {between} KiB, then {second} KiB"
    );
}

const MAX_PENDING: usize = 10_000;

#[test]
fn a_thousand_stalled_event_stream_clients_stay_bounded_and_the_cap_answers_503() {
    raise_own_fd_limit();
    let home = seed_home();
    let server = spawn(&home, rampart(), &["serve", "--port", "0"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let open_stream = || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        send_raw(
            &mut stream,
            "GET",
            &format!("/v1/events/stream?token={}", server.token),
            &server.token,
            "",
        );
        let head = read_head(&mut stream);
        (stream, head)
    };
    let base = server.rss_kib();
    let mut streams = Vec::new();
    for _ in 0..1000 {
        let (stream, head) = open_stream();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        streams.push(stream);
    }
    assert_eq!(server.metric("rampart_event_stream_clients"), 1000);
    // None of them reads: 3 000 decisions, each sent to all of them.
    let big = "b".repeat(2000);
    for i in 0..3000 {
        let r = server.exec(&format!("echo {i} {big}"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let loaded = server.rss_kib();
    assert_eq!(server.tcp_call("GET", "/healthz", None).text(), "ok");
    assert_eq!(server.exec("git status").status, 200);

    // Up to the cap, then 503 with a JSON reason.
    for _ in 1000..2000 {
        let (stream, head) = open_stream();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        streams.push(stream);
    }
    let (mut refused, head) = open_stream();
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    let mut body = String::new();
    let _ = refused.read_to_string(&mut body);
    assert_eq!(
        body,
        r#"{"error":"too many event-stream clients (2000 listening); try again later"}"#
    );

    // They leave; the next event finds them gone and frees their places.
    drop(streams);
    assert!(wait_until(30, || {
        let _ = server.exec("echo wake");
        server.metric("rampart_event_stream_clients") == 0
    }));
    let after = server.rss_kib();
    eprintln!(
        "server RSS: {base} KiB at start, {loaded} KiB with 1 000 stalled streams, {after} KiB after 2 000 came and went"
    );
    assert!(loaded < 200 * MIB, "RSS {loaded} KiB");
    assert!(after < 200 * MIB, "RSS {after} KiB");
}

#[test]
fn idle_and_half_sent_connections_are_closed_after_the_idle_timeout() {
    raise_own_fd_limit();
    let home = seed_home();
    let server = spawn(&home, rampart(), &["serve", "--port", "0"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let mut tcp: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let mut unix: Vec<std::os::unix::net::UnixStream> = (0..100)
        .map(|_| std::os::unix::net::UnixStream::connect(&server.socket).unwrap())
        .collect();
    // Some stall in the middle of their headers.
    for stream in tcp.iter_mut().take(10) {
        stream
            .write_all(b"POST /v1/preflight/exec HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
    }
    assert!(wait_until(10, || server.metric("rampart_open_connections") >= 200));
    let r = server.exec("git status");
    assert_eq!(r.status, 200);
    assert_eq!(server.tcp_call("GET", "/healthz", None).text(), "ok");

    // All are closed by the server (read gives end of file) within the idle timeout.
    for stream in &tcp {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
    }
    for stream in &unix {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
    }
    let started = std::time::Instant::now();
    for stream in tcp.iter_mut() {
        let mut buf = [0u8; 64];
        assert_eq!(stream.read(&mut buf).unwrap(), 0);
    }
    for stream in unix.iter_mut() {
        let mut buf = [0u8; 64];
        assert_eq!(stream.read(&mut buf).unwrap(), 0);
    }
    assert!(started.elapsed() < Duration::from_secs(55));
    assert!(wait_until(10, || server.metric("rampart_open_connections") <= 1));
}

#[test]
fn the_connection_cap_follows_the_open_file_limit_and_answers_503() {
    let home = seed_home();
    let server = spawn(
        &home,
        "sh",
        &[
            "-c",
            "ulimit -n 256 && exec \"$@\"",
            "sh",
            rampart(),
            "serve",
            "--port",
            "0",
        ],
    );
    assert!(
        wait_until(10, || {
            server.stderr().contains("rampart: the open-file limit allows only 192 connections at once (raise it with `ulimit -n`)")
        }),
        "{}",
        server.stderr()
    );
    let addr = format!("127.0.0.1:{}", server.port);
    // Each asks once and stays open (keep-alive), so each surely holds its place.
    let idle: Vec<std::net::TcpStream> = (0..192)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            send_raw(&mut stream, "GET", "/healthz", "", "");
            let head = read_head(&mut stream);
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            let mut ok = [0u8; 2];
            stream.read_exact(&mut ok).unwrap();
            stream
        })
        .collect();
    let mut probe = std::os::unix::net::UnixStream::connect(&server.socket).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    send_raw(&mut probe, "GET", "/healthz", "", "");
    let mut answer = String::new();
    probe.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(
        answer
            .ends_with("\r\n\r\n{\"error\":\"too many connections (192 open); try again later\"}"),
        "{answer}"
    );
    drop(idle);
    assert!(wait_until(10, || {
        request(
            &Endpoint::Unix(server.socket.clone()),
            "GET",
            "/healthz",
            None,
            None,
            Duration::from_secs(5),
        )
        .is_ok_and(|r| r.status == 200)
    }));
    assert_eq!(server.exec("git status").status, 200);
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn a_burst_of_a_thousand_connections_waits_in_the_listen_queue_without_drops() {
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if somaxconn < 1100 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED faults_server::a_burst_of_a_thousand_connections_waits_in_the_listen_queue_without_drops: net.core.somaxconn is {somaxconn}, the kernel caps every listen queue there"
        );
        return;
    }
    raise_own_fd_limit();
    let home = seed_home();
    let server = spawn(&home, rampart(), &["serve", "--port", "0"]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    // While the server is stopped, only the kernel's listen queues hold the connections:
    // with the default backlog of 128 the 129th would be dropped (TCP) or block (Unix).
    crate::util::signal(server.pid(), "STOP");
    let socket = server.socket.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tcp: Vec<_> = (0..1000)
            .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
            .collect();
        let unix: Vec<_> = (0..1000)
            .map(|_| std::os::unix::net::UnixStream::connect(&socket))
            .collect();
        let _ = tx.send((tcp, unix));
    });
    let queued = rx.recv_timeout(Duration::from_secs(60));
    crate::util::signal(server.pid(), "CONT");
    let (tcp, unix) = queued.expect("connecting 1000 + 1000 clients to a stopped server hung");
    let mut tcp: Vec<std::net::TcpStream> = tcp.into_iter().map(Result::unwrap).collect();
    let mut unix: Vec<std::os::unix::net::UnixStream> =
        unix.into_iter().map(Result::unwrap).collect();
    // Once it runs again, every one of them is served.
    for stream in &mut tcp {
        send_raw(stream, "GET", "/healthz", "", "");
    }
    for stream in &mut unix {
        send_raw(stream, "GET", "/healthz", "", "");
    }
    for stream in &mut tcp {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        assert!(read_head(stream).starts_with("HTTP/1.1 200 OK\r\n"));
    }
    for stream in &mut unix {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        assert!(read_head(stream).starts_with("HTTP/1.1 200 OK\r\n"));
    }
}

/// Whether `mkfs.ext2` and loop mounts work here (see [`can_mount`]).
fn can_loop_mount(test: &str) -> bool {
    if !can_mount(test) {
        return false;
    }
    let probe = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=2m tmpfs /mnt && truncate -s 8m /mnt/img && mkfs.ext2 -q -F /mnt/img && mkdir /mnt/fs && mount -o loop /mnt/img /mnt/fs",
        ])
        .output();
    let reason = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        Err(e) => format!("cannot run unshare: {e}"),
    };
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED faults_server::{test}: needs mkfs.ext2 and a loop mount: {reason}"
    );
    false
}

#[test]
fn a_failed_fsync_is_answered_503_said_on_stderr_and_recovered_from() {
    if !can_loop_mount("a_failed_fsync_is_answered_503_said_on_stderr_and_recovered_from") {
        return;
    }
    // The audit directory is an ext2 file system in an image file on a small tmpfs. With
    // the tmpfs full, writes still land in the page cache but writing them back fails:
    // write(2) succeeds and fsync fails, as on a thin-provisioned or failing disk.
    let home = seed_home();
    let backing = home.path().join("backing");
    let audit = home.path().join("audit");
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&audit).unwrap();
    let script = "mount -t tmpfs -o size=4m tmpfs \"$1\" && truncate -s 32m \"$1/img\" && mkfs.ext2 -q -F \"$1/img\" && mount -o loop \"$1/img\" \"$2\" && chmod 700 \"$2\" && shift 2 && exec \"$@\"";
    let server = spawn(
        &home,
        "unshare",
        &[
            "-m",
            "sh",
            "-c",
            script,
            "sh",
            backing.to_str().unwrap(),
            audit.to_str().unwrap(),
            rampart(),
            "serve",
            "--port",
            "0",
        ],
    );
    assert_eq!(server.exec("echo first").status, 200);
    let day_name = day_file(&server.seen(&audit))
        .file_name()
        .unwrap()
        .to_owned();
    let filler = fill(&server.seen(&backing));

    let big = "f".repeat(20_000);
    let mut answered = 1;
    let mut refused = None;
    for i in 0..200 {
        let r = server.exec(&format!("echo {i} {big}"));
        match r.status {
            200 => answered += 1,
            503 => {
                refused = Some(r.json().unwrap()["error"].as_str().unwrap().to_owned());
                break;
            }
            other => panic!("{other}: {}", r.text()),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = refused.expect("no fsync failure was reported in 200 writes");
    assert_eq!(
        refused,
        format!(
            "audit trail cannot be written: cannot sync audit file {} to disk: No space left on device (os error 28)",
            audit.join(&day_name).display()
        )
    );
    let said = format!(
        "rampart: audit trail cannot be written: {}; answering would-be allows 503 and refusals unrecorded until it can",
        refused.trim_start_matches("audit trail cannot be written: ")
    );
    assert!(
        wait_until(10, || server.stderr().lines().any(|l| l == said)),
        "{}",
        server.stderr()
    );

    // Space comes back: answered again, with no restart.
    std::fs::remove_file(filler).unwrap();
    let mut ok_in_a_row = 0;
    for _ in 0..100 {
        let r = server.exec("echo after");
        if r.status == 200 {
            answered += 1;
            ok_in_a_row += 1;
            if ok_in_a_row == 5 {
                break;
            }
        } else {
            assert_eq!(r.status, 503, "{}", r.text());
            ok_in_a_row = 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ok_in_a_row, 5, "{}", server.stderr());
    assert!(
        wait_until(10, || server
            .stderr()
            .lines()
            .any(|l| l.starts_with("rampart: audit trail writable again; "))),
        "{}",
        server.stderr()
    );
    // Every answered decision is in the trail, nothing else, and the chain verifies.
    assert_eq!(server.event_ids().len(), answered);
    let verify = home.run(&[
        "audit",
        "verify",
        "--audit-dir",
        server.seen(&audit).to_str().unwrap(),
    ]);
    assert_eq!(verify.code(), 0, "{}", verify.stdout());
}

#[test]
fn sigterm_right_after_start_up_is_a_clean_shutdown() {
    // The signal handlers are in place before the "listening" line: a service manager
    // stopping the server at once gets a clean exit (audit flushed), never the default
    // kill. Several rounds, as the old race depended on thread scheduling.
    let home = seed_home();
    for _ in 0..5 {
        let server = crate::util::Server::start(&home, &[]);
        assert_eq!(server.terminate(), Some(0));
    }
}

/// Issue 12, item 2: `prlimit --fsize=N rampart serve` — the audit file reaching the file
/// size limit used to kill the server with SIGXFSZ, silently, and every client then
/// applied its fail-open rule. Now the signal is caught: the write fails with EFBIG, said
/// on stderr as the file size limit; allows get 503, refusals are still answered.
#[test]
fn the_file_size_limit_does_not_kill_the_server_and_denials_are_still_answered() {
    let home = seed_home();
    let server = spawn(
        &home,
        "prlimit",
        &["--fsize=16384", rampart(), "serve", "--port", "0"],
    );
    let padding = "p".repeat(900);
    let mut allowed = 0;
    let mut first_503 = None;
    for i in 0..100 {
        let r = server.exec(&format!("echo {i} {padding}"));
        if r.status == 503 {
            first_503 = Some(r.json().unwrap()["error"].as_str().unwrap().to_owned());
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        allowed += 1;
    }
    let error = first_503.expect("the limit was never reached");
    assert!(allowed >= 5, "{allowed}");
    assert!(
        error.contains("File too large")
            && error.ends_with(
                "(the file size limit of this process, RLIMIT_FSIZE, is reached: raise `ulimit -f` where the server starts)"
            ),
        "{error}"
    );
    // Alive, and a denial is answered as one.
    assert!(crate::util::wait_until(2, || std::path::Path::new(
        &format!("/proc/{}/status", server.pid())
    )
    .exists()));
    let r = server.exec(&format!("rm -rf / {padding}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json().unwrap();
    assert_eq!(
        (body["allowed"].clone(), body["decision"].clone()),
        (json!(false), json!("deny"))
    );
    assert_eq!(server.metric("rampart_unrecorded_refusals_total"), 1);
    assert!(wait_until(10, || server
        .stderr()
        .contains("rampart: refusal answered but not recorded (")));
    let stderr = server.stderr();
    assert!(
        stderr.lines().any(
            |l| l.starts_with("rampart: audit trail cannot be written: ")
                && l.contains("RLIMIT_FSIZE")
        ),
        "{stderr}"
    );
    // What was written is intact.
    let verify = home.run(&["audit", "verify"]);
    assert_eq!(verify.code(), 0, "{}{}", verify.stdout(), verify.stderr());
    assert_eq!(
        verify.stdout(),
        format!("ok: {allowed} events in 1 file(s), hash chain intact\n")
    );
    assert_eq!(server.terminate(), Some(0));
}
