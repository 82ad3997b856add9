//! `rampart serve` and the commands that talk to it, against real server processes.

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{Home, SEED_POLICY, Server, audit_ids, request, wait_until};

fn seed_home() -> Home {
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);
    home
}

fn exec(command: &str) -> serde_json::Value {
    json!({"agent": "preload", "session": "s1", "params": {"command": command}})
}

#[test]
fn first_start_creates_private_home_token_and_socket() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(home.path()), 0o700);
    assert_eq!(mode(&home.path().join("token")), 0o600);
    assert_eq!(mode(&server.socket), 0o600);
    assert!(
        std::fs::metadata(&server.socket)
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert!(server.token.starts_with("rampart_"));
    assert_eq!(server.token.len(), "rampart_".len() + 64);
    assert!(
        server.token["rampart_".len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );

    // /healthz answers on both transports without a token.
    for endpoint in [server.unix(), server.tcp()] {
        let r = request(
            &endpoint,
            "GET",
            "/healthz",
            None,
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    }
    // The token survives a restart.
    let token = server.token.clone();
    drop(server);
    let server = Server::start(&home, &[]);
    assert_eq!(server.token, token);
}

// `every_protected_endpoint_refuses_missing_and_wrong_tokens` lives in security.rs: it
// walks the server's route table (`rampart_server::ROUTES`) instead of a list of its own.

#[test]
fn seed_policy_decides_preflights_as_the_seed_shows_and_audits_them() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let cases = [
        (
            "git status",
            true,
            "allow",
            "Safe development commands",
            "preload-safe-dev",
        ),
        (
            "rm -rf /tmp/*",
            false,
            "deny",
            "Destructive command blocked",
            "preload-block-destructive",
        ),
        (
            "curl https://example.com",
            false,
            "ask",
            "Network command requires approval",
            "preload-ask-network",
        ),
        (
            ":(){ :|:& };:",
            false,
            "deny",
            "Destructive command blocked",
            "preload-block-destructive",
        ),
    ];
    let mut ids = Vec::new();
    for (command, allowed, decision, message, policy) in cases {
        let mut body = exec(command);
        body["argv"] = json!(["/bin/sh", "-c", command]);
        body["exe"] = json!("/bin/sh");
        body["cwd"] = json!("/home/u/proj");
        body["pid"] = json!(4243);
        body["ppid"] = json!(4242);
        body["via"] = json!("execve");
        let r = server.preflight(body);
        assert_eq!(r["allowed"], allowed, "{command}: {r}");
        assert_eq!(r["decision"], decision, "{command}");
        assert_eq!(r["message"], message, "{command}");
        assert_eq!(r["matched_policies"], json!([policy]), "{command}");
        assert!(r["eval_duration_us"].is_u64());
        let id = r["audit_id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 26, "a ULID");
        ids.push(id);
    }
    // Each decision is in the trail, with the context fields recorded.
    let r = server.call("GET", "/v1/audit/events?limit=10", None);
    let events = r.json().unwrap()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["id"], ids[3].as_str(), "newest first");
    let deny = events.iter().find(|e| e["id"] == ids[1].as_str()).unwrap();
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["command"], "rm -rf /tmp/*");
    assert_eq!(deny["argv"], json!(["/bin/sh", "-c", "rm -rf /tmp/*"]));
    assert_eq!(deny["exe"], "/bin/sh");
    assert_eq!(deny["cwd"], "/home/u/proj");
    assert_eq!(deny["pid"], 4243);
    assert_eq!(deny["ppid"], 4242);
    assert_eq!(deny["via"], "execve");
    assert_eq!(deny["policy"], "preload-block-destructive");
    assert_eq!(deny["agent"], "preload");
    assert_eq!(deny["session"], "s1");
    assert!(deny["hash"].as_str().unwrap().starts_with("sha256:"));

    let r = server.call("GET", "/v1/audit/events?decision=deny", None);
    assert_eq!(r.json().unwrap()["events"].as_array().unwrap().len(), 2);
    let r = server.call("GET", "/v1/audit/stats", None);
    let stats = r.json().unwrap();
    assert_eq!(stats["totals"]["total"], 4, "{stats}");
    // The ask nobody could answer (no wait) was refused: counted as denied, so the seed's
    // lines add up to Total (issue 15).
    assert_eq!(stats["agents"]["preload"]["denied"], 3);
    let r = server.call("GET", "/v1/audit/verify", None);
    assert_eq!(r.json().unwrap()["ok"], true);

    // The CLI reads the same trail: the seed's stats block.
    let run = home.run(&["audit", "stats"]);
    assert_eq!(
        run.stdout(),
        "Agent: preload\n  Total: 4\n  Allowed: 1\n  Denied: 3\n  Logged: 0\n  Asked: 1\n"
    );
    let run = home.run(&[
        "audit",
        "search",
        "--decision",
        "deny",
        "--agent",
        "preload",
    ]);
    assert_eq!(run.stdout().lines().count(), 2, "{}", run.stdout());
    assert!(
        run.stdout()
            .lines()
            .all(|l| l.contains("deny ") && l.contains("Destructive command blocked"))
    );
    assert!(!run.stdout().contains('\x1b'), "plain when piped");
    let run = home.run(&["audit", "tail", "-n", "2"]);
    let lines: Vec<&str> = run
        .stdout()
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .leak()
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains("curl https://example.com"),
        "oldest of the two first: {lines:?}"
    );
    assert!(lines[1].contains(":(){ :|:& };:"));
    let run = home.run(&["audit", "search", "--json", "curl"]);
    let v: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(v["decision"], "ask");
}

#[test]
fn monitor_and_disabled_modes() {
    let home = seed_home();
    let server = Server::start(&home, &["--mode", "monitor"]);
    let r = server.preflight(exec("rm -rf /tmp/*"));
    assert_eq!(r["allowed"], true);
    assert_eq!(r["decision"], "deny");
    assert_eq!(r["policy_decision"], "deny");
    assert_eq!(audit_ids(home.path()).len(), 1, "monitor still audits");
    drop(server);

    let home = seed_home();
    let server = Server::start(&home, &["--mode", "disabled"]);
    let r = server.preflight(exec("rm -rf /tmp/*"));
    assert_eq!(r["allowed"], true);
    assert_eq!(r["audit_id"], "");
    assert!(
        audit_ids(home.path()).is_empty(),
        "disabled evaluates nothing"
    );

    // A client in monitor mode (`enforce: false`) is never blocked by an enforcing server.
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let mut body = exec("rm -rf /tmp/*");
    body["enforce"] = json!(false);
    let r = server.preflight(body);
    assert_eq!(
        (r["allowed"].clone(), r["policy_decision"].clone()),
        (json!(true), json!("deny"))
    );
}

#[test]
fn ask_without_wait_answers_at_once_and_leaves_nothing_pending() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let r = server.preflight(exec("wget http://x"));
    assert_eq!(
        (r["allowed"].clone(), r["decision"].clone()),
        (json!(false), json!("ask"))
    );
    let pending = server.call("GET", "/v1/approvals", None).json().unwrap();
    assert_eq!(pending["approvals"], json!([]));
}

/// Starts an `ask` preflight with `wait_ms` in a thread; returns its pending approval id
/// and the join handle with the final answer.
fn ask_in_background(
    server: &Server,
    wait_ms: u64,
) -> (String, std::thread::JoinHandle<serde_json::Value>) {
    let endpoint = server.unix();
    let token = server.token.clone();
    let handle = std::thread::spawn(move || {
        let mut body = exec("curl https://example.com/data");
        body["wait_ms"] = json!(wait_ms);
        let r = request(
            &endpoint,
            "POST",
            "/v1/preflight/exec",
            Some(&token),
            Some(&body),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json().unwrap()
    });
    let mut id = String::new();
    assert!(wait_until(10, || {
        let list = server.call("GET", "/v1/approvals", None).json().unwrap();
        match list["approvals"].as_array().and_then(|a| a.first()) {
            Some(a) => {
                id = a["id"].as_str().unwrap().to_owned();
                true
            }
            None => false,
        }
    }));
    (id, handle)
}

#[test]
fn ask_held_open_until_approved_via_the_api() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let (id, waiter) = ask_in_background(&server, 30_000);
    let one = server
        .call("GET", &format!("/v1/approvals/{id}"), None)
        .json()
        .unwrap();
    assert_eq!(one["status"], "pending");
    assert_eq!(one["command"], "curl https://example.com/data");
    assert_eq!(one["message"], "Network command requires approval");
    let body = json!({"approved": true, "resolved_by": "alice", "message": "looks fine"});
    let r = server.call(
        "POST",
        &format!("/v1/approvals/{id}/resolve"),
        Some(body.clone()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = waiter.join().unwrap();
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["decision"], "allow");
    assert_eq!(answer["message"], "approved by alice: looks fine");
    assert_eq!(answer["approval_id"], id.as_str());
    // Settled: a second resolve is 410 Gone.
    let r = server.call("POST", &format!("/v1/approvals/{id}/resolve"), Some(body));
    assert_eq!(r.status, 410);
    let r = server.call(
        "POST",
        "/v1/approvals/01J00000000000000000000000/resolve",
        Some(json!({"approved": true})),
    );
    assert_eq!(r.status, 404);
    // The audit event carries the approval.
    let events = server.call("GET", "/v1/audit/events", None).json().unwrap();
    let event = &events["events"][0];
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["approval"]["id"], id.as_str());
    assert_eq!(event["approval"]["approved"], true);
    assert_eq!(event["approval"]["resolved_by"], "alice");
}

#[test]
fn ask_denied_with_rampart_deny_and_approved_with_rampart_approve() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let (id, waiter) = ask_in_background(&server, 30_000);
    let run = home.run(&["pending"]);
    assert!(run.stdout().starts_with(&id), "{}", run.stdout());
    assert!(run.stdout().contains("curl https://example.com/data"));
    let run = home
        .cmd()
        .args(["deny", &id, "--message", "not today"])
        .env("USER", "bob")
        .env_remove("SSH_CONNECTION")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let answer = waiter.join().unwrap();
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["message"], "denied by bob (rampart deny): not today");
    let run = home.run(&["approve", &id]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("already denied"), "{}", run.stderr());

    let (id, waiter) = ask_in_background(&server, 30_000);
    let run = home
        .cmd()
        .args(["approve", &id])
        .env("USER", "carol")
        .env("SSH_CONNECTION", "203.0.113.7 50000 10.0.0.1 22")
        .output()
        .unwrap();
    assert!(run.status.success());
    let answer = waiter.join().unwrap();
    // Who, and from where (issue 16: not "someone (cli)").
    assert_eq!(
        answer["message"],
        "approved by carol (rampart approve, ssh from 203.0.113.7)"
    );
    assert_eq!(home.run(&["pending"]).stdout(), "No pending approvals.\n");
}

#[test]
fn ask_times_out_into_a_deny() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let started = Instant::now();
    let (id, waiter) = ask_in_background(&server, 700);
    let answer = waiter.join().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["message"], "approval timed out");
    let one = server
        .call("GET", &format!("/v1/approvals/{id}"), None)
        .json()
        .unwrap();
    assert_eq!(one["status"], "expired");
    let r = server.call(
        "POST",
        &format!("/v1/approvals/{id}/resolve"),
        Some(json!({"approved": true})),
    );
    assert_eq!(r.status, 410);

    // --approval-timeout caps what a client asks for.
    drop(server);
    let server = Server::start(&home, &["--approval-timeout", "300ms"]);
    let started = Instant::now();
    let (_, waiter) = ask_in_background(&server, 60_000);
    assert_eq!(waiter.join().unwrap()["message"], "approval timed out");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn concurrent_clients_every_decision_audited_and_chain_verifies() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let returned = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..50)
        .map(|t| {
            let endpoint = if t % 2 == 0 {
                server.unix()
            } else {
                server.tcp()
            };
            let token = server.token.clone();
            let returned = returned.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let command = if i % 3 == 0 {
                        format!("rm -rf /tmp/{t}-{i}")
                    } else {
                        format!("git log -n {i}")
                    };
                    let body = exec(&command);
                    let r = request(
                        &endpoint,
                        "POST",
                        "/v1/preflight/exec",
                        Some(&token),
                        Some(&body),
                        Duration::from_secs(60),
                    )
                    .unwrap();
                    assert_eq!(r.status, 200);
                    let v = r.json().unwrap();
                    let expected = if i % 3 == 0 { "deny" } else { "allow" };
                    assert_eq!(v["decision"], expected);
                    returned
                        .lock()
                        .unwrap()
                        .push(v["audit_id"].as_str().unwrap().to_owned());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let returned = returned.lock().unwrap().clone();
    assert_eq!(returned.len(), 10_000);
    let stored = audit_ids(home.path());
    assert_eq!(stored.len(), 10_000);
    assert!(returned.iter().all(|id| stored.contains(id)));
    let run = home.run(&["audit", "verify"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    assert_eq!(
        run.stdout(),
        "ok: 10,000 events in 1 file(s), hash chain intact\n"
    );
}

#[test]
fn kill_9_under_load_loses_no_returned_decision() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let returned = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let endpoint = server.unix();
            let token = server.token.clone();
            let returned = returned.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for i in 0..100_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let body = exec(&format!("git show {t}-{i}"));
                    // After the kill, requests fail: that is expected; only answers count.
                    let Ok(r) = request(
                        &endpoint,
                        "POST",
                        "/v1/preflight/exec",
                        Some(&token),
                        Some(&body),
                        Duration::from_secs(5),
                    ) else {
                        break;
                    };
                    if r.status != 200 {
                        break;
                    }
                    if let Ok(v) = r.json() {
                        returned
                            .lock()
                            .unwrap()
                            .push(v["audit_id"].as_str().unwrap_or_default().to_owned());
                    }
                }
            })
        })
        .collect();
    assert!(wait_until(20, || returned.lock().unwrap().len() >= 500));
    server.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let returned = returned.lock().unwrap().clone();
    let stored = audit_ids(home.path());
    let missing: Vec<&String> = returned.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} returned decisions missing from the trail",
        missing.len()
    );

    // Restart: the chain continues and verifies.
    let server = Server::start(&home, &[]);
    server.preflight(exec("git status"));
    let run = home.run(&["audit", "verify"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    assert!(
        run.stdout().contains("hash chain intact"),
        "{}",
        run.stdout()
    );
}

#[test]
fn editing_one_byte_breaks_verification_at_that_line() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    for i in 0..5 {
        server.preflight(exec(&format!("git log -n {i}")));
    }
    assert_eq!(server.terminate(), Some(0));
    let file = std::fs::read_dir(home.path().join("audit"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    let tampered = lines[2].replacen("git log -n 2", "git log -n 7", 1);
    assert_ne!(tampered, lines[2]);
    let mut new_text = String::new();
    for (i, line) in lines.iter().enumerate() {
        new_text.push_str(if i == 2 { &tampered } else { line });
        new_text.push('\n');
    }
    std::fs::write(&file, new_text).unwrap();
    let run = home.run(&["audit", "verify"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stdout()
            .starts_with(&format!("BROKEN: {}:3: ", file.display())),
        "{}",
        run.stdout()
    );
}

#[test]
fn bad_policy_edit_keeps_the_old_policy_and_reports_file_line() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    assert_eq!(server.preflight(exec("rm -rf /tmp/x"))["decision"], "deny");

    // A typo: the watcher reloads, fails, and keeps enforcing the old policy.
    let path = home.policy(
        "custom.yaml",
        &SEED_POLICY.replace(
            "    rules:\n      - action: deny",
            "    rules:\n      - actoin: deny",
        ),
    );
    assert!(
        wait_until(10, || server
            .stderr()
            .contains("failed, keeping the previous policy")),
        "{}",
        server.stderr()
    );
    assert_eq!(server.preflight(exec("rm -rf /tmp/x"))["decision"], "deny");
    let status = server.call("GET", "/v1/status", None).json().unwrap();
    let err = status["last_reload_error"].as_str().unwrap();
    assert!(
        err.starts_with(&format!(
            "{}:24:9: unknown key `actoin` in a rule",
            path.display()
        )),
        "{err}"
    );

    // `rampart serve --reload` reports the same error and fails.
    let run = home.run(&["serve", "--reload"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr().starts_with(&format!(
            "rampart: reload failed, the previous policy stays in force (3 policies, 3 rules): {}:24:9: ",
            path.display()
        )),
        "{}",
        run.stderr()
    );
    // Fixed: reload succeeds and the new policy applies.
    home.policy(
        "custom.yaml",
        &SEED_POLICY.replace("\"rm -rf /*\"", "\"rm -rf /opt/*\""),
    );
    let run = home.run(&["serve", "--reload"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        format!(
            "rampart: policies reloaded: 3 policies, 3 rules from {}\n",
            home.policies().display()
        )
    );
    assert_eq!(server.preflight(exec("rm -rf /tmp/x"))["decision"], "allow");
    assert_eq!(server.preflight(exec("rm -rf /opt/x"))["decision"], "deny");
}

#[test]
fn sighup_reloads() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    std::fs::remove_file(home.policies().join("custom.yaml")).unwrap();
    crate::util::signal(server.pid(), "HUP");
    assert!(wait_until(10, || server.stderr().contains("(SIGHUP)")));
    // No files: the embedded standard profile.
    let status = server.call("GET", "/v1/status", None).json().unwrap();
    assert_eq!(status["policy_source"], "embedded standard profile");
}

#[test]
fn long_commands_big_bodies_and_garbage() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let mut long = String::from("cc -o app");
    while long.len() < 100 * 1024 {
        long.push_str(" obj/some_object_file.o");
    }
    let r = server.preflight(exec(&long));
    assert_eq!(r["decision"], "allow");

    let huge = json!({"params": {"command": "x".repeat(2 * 1024 * 1024)}});
    let r = server.call("POST", "/v1/preflight/exec", Some(huge));
    assert_eq!(r.status, 413);
    assert!(
        r.json().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );

    let garbage: [&[u8]; 7] = [
        b"",
        b"{",
        b"null",
        b"[1,2]",
        b"{\"params\":7}",
        b"\xff\xfe\x00",
        b"{\"params\":{\"command\":1}}",
    ];
    for body in garbage {
        let r = raw_post(&server, "/v1/preflight/exec", body);
        assert_eq!(r.status, 400, "{:?}: {}", body, r.text());
        assert!(r.json().unwrap()["error"].is_string());
    }
    let r = server.call("POST", "/v1/preflight/exec", Some(json!({"params": {}})));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json().unwrap()["error"],
        "params.command is required for tool exec"
    );
    // Still alive and deciding.
    assert_eq!(server.preflight(exec("rm -rf /tmp/y"))["decision"], "deny");
}

fn raw_post(server: &Server, path: &str, body: &[u8]) -> crate::util::Response {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&server.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.token,
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    // Bodies here are small and not chunked.
    crate::util::Response {
        status,
        body: body.into_bytes(),
    }
}

#[test]
fn test_endpoint_status_metrics_and_events_stream() {
    use std::io::{BufRead, BufReader, Write};
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let r = server.call(
        "POST",
        "/v1/test",
        Some(json!({"command": "rm -rf /tmp/*"})),
    );
    let v = r.json().unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["pieces"], json!(["rm -rf /tmp/*"]));
    assert!(audit_ids(home.path()).is_empty(), "/v1/test is not audited");

    let status = server.call("GET", "/v1/status", None).json().unwrap();
    assert_eq!(status["mode"], "enforce");
    assert_eq!(status["policies"], 3);
    assert_eq!(status["rules"], 3);
    assert_eq!(status["pending_approvals"], 0);

    // SSE: subscribe, make a decision, read it from the stream.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1/events/stream?token={} HTTP/1.1\r\nHost: x\r\n\r\n",
        server.token
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    // The subscription is live once the headers are sent.
    let decided = server.preflight(exec("dd if=/dev/zero of=/dev/sda"));
    let mut event_name = String::new();
    let mut data = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if let Some(name) = line
            .trim_end()
            .strip_prefix("event: ")
            .or(line.trim_end().strip_prefix("event:"))
        {
            event_name = name.trim().to_owned();
        }
        if let Some(d) = line
            .trim_end()
            .strip_prefix("data: ")
            .or(line.trim_end().strip_prefix("data:"))
        {
            data = d.trim().to_owned();
            break;
        }
    }
    assert_eq!(event_name, "decision");
    let event: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(event["id"], decided["audit_id"]);
    assert_eq!(event["decision"], "deny");

    let metrics = server.call("GET", "/metrics", None).text();
    assert!(
        metrics.contains("rampart_decisions_total{action=\"deny\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE rampart_eval_duration_seconds histogram\n"));
    assert!(metrics.contains("rampart_eval_duration_seconds_count 1\n"));
}

#[test]
fn secrets_are_redacted_in_the_trail() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    server.preflight(exec(&format!("git clone https://{secret}@github.com/x/y")));
    let text: String = std::fs::read_dir(home.path().join("audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(!text.contains(secret));
    assert!(text.contains("[REDACTED]"));
    assert_eq!(home.run(&["audit", "verify"]).code(), 0);
}

#[test]
fn graceful_shutdown_on_sigterm_and_background_lifecycle() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let r = server.preflight(exec("git status"));
    let id = r["audit_id"].as_str().unwrap().to_owned();
    assert_eq!(server.terminate(), Some(0));
    assert!(audit_ids(home.path()).contains(&id));
    assert!(
        !home.path().join("rampart.sock").exists(),
        "socket removed on shutdown"
    );

    let run = home.run(&["serve", "status"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stdout().starts_with("rampart: not running"),
        "{}",
        run.stdout()
    );

    let run = home.run(&["serve", "--background", "--port", "0"]);
    assert_eq!(run.code(), 0, "{} {}", run.stdout(), run.stderr());
    assert!(
        run.stdout()
            .starts_with("rampart: server started in the background (pid ")
    );
    let run = home.run(&["serve", "status"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stdout()
            .contains("  policy:   3 policies, 3 rules from "),
        "{}",
        run.stdout()
    );
    let run = home.run(&["serve", "stop"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stdout().starts_with("rampart: server stopped (pid "));
    assert!(!home.path().join("serve.pid").exists());
    assert_eq!(home.run(&["serve", "stop"]).code(), 1);
}

#[test]
fn install_dry_run_prints_a_systemd_unit() {
    let home = Home::new();
    let run = home.run(&["serve", "install", "--dry-run"]);
    assert_eq!(run.code(), 0);
    let unit = run.stdout();
    assert!(unit.starts_with("[Unit]\nDescription=Rampart policy server"));
    assert!(unit.contains("\n[Service]\nType=simple\n"));
    assert!(unit.contains(&format!(
        "\nEnvironment=RAMPART_HOME={}\n",
        home.path().display()
    )));
    assert!(unit.contains(&format!(
        "\nExecStart={} serve --port 9090\n",
        env!("CARGO_BIN_EXE_rampart")
    )));
    assert!(unit.contains("\n[Install]\nWantedBy=default.target\n"));
    // No placeholder documentation URL (issue 16).
    assert!(!unit.contains("Documentation="), "{unit}");
    // Every line is a section, a key=value pair or blank.
    for line in unit.lines() {
        assert!(
            line.is_empty() || (line.starts_with('[') && line.ends_with(']')) || line.contains('='),
            "{line}"
        );
    }
}

#[test]
fn token_show_and_rotate() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let run = home.run(&["token", "show"]);
    assert_eq!(run.stdout().trim(), server.token);
    let run = home.run(&["token", "rotate"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let new = run.stdout().trim().to_owned();
    assert_ne!(new, server.token);
    assert!(run.stderr().contains("now uses the new token"));
    let old = request(
        &server.unix(),
        "GET",
        "/v1/status",
        Some(&server.token),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(old.status, 401);
    let ok = request(
        &server.unix(),
        "GET",
        "/v1/status",
        Some(&new),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(ok.status, 200);
}

#[test]
fn doctor_passes_with_a_running_server_and_names_fixes_without_one() {
    let home = seed_home();
    let run = home.run(&["doctor"]);
    assert_eq!(run.code(), 1);
    let out = run.stdout();
    assert!(
        out.contains("  FAIL  server    nothing answers at "),
        "{out}"
    );
    assert!(out.contains("fix: rampart serve --background"), "{out}");
    assert!(
        out.contains("  ok    policies  3 policies, 3 rules from "),
        "{out}"
    );

    let server = Server::start(&home, &[]);
    // The CLI finds the server through the home's socket.
    let run = home.run(&["doctor"]);
    let out = run.stdout();
    assert_eq!(run.code(), 0, "{out}");
    for check in [
        "home", "policies", "token", "server", "auth", "socket", "library", "audit",
    ] {
        assert!(
            out.contains(&format!("  ok    {check:<9} ")),
            "{check}: {out}"
        );
    }
    assert!(out.ends_with("All checks passed.\n"));
    drop(server);

    // A broken policy file is named with its line.
    home.policy("custom.yaml", "version: \"1\"\npolicies:\n  - nme: x\n");
    let out = home.run(&["doctor"]).stdout();
    assert!(
        out.contains("  FAIL  policies  ") && out.contains("custom.yaml:3:5: unknown key `nme`"),
        "{out}"
    );
    assert!(out.contains("fix: rampart policy lint"), "{out}");
}

#[test]
fn a_kept_alive_connection_is_reused_and_reopened_once_after_a_restart() {
    use rampart_server::client::KeepAlive;
    let home = seed_home();
    let server = Server::start(&home, &[]);
    let mut conn = KeepAlive::new(server.unix());
    let body = exec("git status");
    for _ in 0..3 {
        let r = conn
            .request(
                "POST",
                "/v1/preflight/exec",
                Some(&server.token),
                Some(&body),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(audit_ids(home.path()).len(), 3);
    let token = server.token.clone();
    assert_eq!(server.terminate(), Some(0));
    // The kept connection is dead; the next request goes out once on a fresh one.
    let server = Server::start(&home, &[]);
    assert_eq!(server.token, token);
    let r = conn
        .request(
            "POST",
            "/v1/preflight/exec",
            Some(&token),
            Some(&body),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(audit_ids(home.path()).len(), 4, "evaluated exactly once");
    drop(server);
    // No server at all: a clear error, not a hang.
    assert!(
        conn.request(
            "POST",
            "/v1/preflight/exec",
            Some(&token),
            Some(&body),
            Duration::from_secs(5)
        )
        .is_err()
    );
}

/// Issue 12, item 6: a library that failed open reports how many execs ran unchecked
/// with its next preflight; the server records the report as its own event (decision
/// `unchecked`, before the preflight's event) that `audit stats`, `audit search`,
/// `audit tail` and the API show — and that is never counted as an allow.
#[test]
fn execs_that_ran_unchecked_are_recorded_counted_and_found() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    server.preflight(exec("ls /"));
    let mut body = exec("rm -rf /");
    body["pid"] = json!(4242);
    body["ran_unchecked"] = json!(3);
    let answer = server.preflight(body);
    assert_eq!(answer["decision"], json!("deny"), "{answer}");
    // 0 is nothing to report.
    let mut body = exec("git status");
    body["ran_unchecked"] = json!(0);
    server.preflight(body);

    let events = server
        .call("GET", "/v1/audit/events?limit=10", None)
        .json()
        .unwrap()["events"]
        .as_array()
        .unwrap()
        .clone();
    let decisions: Vec<&str> = events
        .iter()
        .map(|e| e["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allow", "deny", "unchecked", "allow"]);
    let report = &events[2];
    assert_eq!(
        (
            report["agent"].clone(),
            report["session"].clone(),
            report["pid"].clone(),
            report["unchecked"].clone(),
            report["command"].clone(),
            report["message"].clone(),
        ),
        (
            json!("preload"),
            json!("s1"),
            json!(4242),
            json!(3),
            json!(""),
            json!(
                "3 exec(s) ran unchecked in pid 4242: no policy server answered and the library failed open"
            ),
        )
    );
    assert_eq!(events[1]["audit_id"], json!(null));
    assert_eq!(answer["audit_id"], events[1]["id"]);

    let run = home.run(&["audit", "stats"]);
    assert_eq!(
        run.stdout(),
        "Agent: preload\n  Total: 3\n  Allowed: 2\n  Denied: 1\n  Logged: 0\n  Asked: 0\n  Unchecked: 3\n"
    );
    let stats = server.call("GET", "/v1/audit/stats", None).json().unwrap();
    assert_eq!(stats["totals"]["unchecked"], json!(3), "{stats}");
    assert_eq!(stats["totals"]["allowed"], json!(2), "{stats}");
    for args in [
        &["audit", "search", "--decision", "unchecked"][..],
        &["audit", "search", "ran unchecked"][..],
    ] {
        let stdout = home.run(args).stdout();
        let lines: Vec<&str> = stdout.lines().map(|l| &l[19..]).collect();
        assert_eq!(
            lines,
            [
                "  unchecked  preload  s1    — 3 exec(s) ran unchecked in pid 4242: no policy server answered and the library failed open"
            ],
            "{args:?}"
        );
    }
    let verify = home.run(&["audit", "verify"]);
    assert_eq!(
        verify.stdout(),
        "ok: 4 events in 1 file(s), hash chain intact\n"
    );
}

/// Issue 12, item 8: a command (or agent name) with ESC sequences, carriage returns or
/// bidi overrides reached the approver's terminal raw — `rampart pending` showed
/// `git status` for an `rm -rf`, and `audit tail` lines could erase earlier ones. Every
/// such character is now shown escaped, by the one printable rule.
#[test]
fn commands_reach_the_terminal_escaped_in_pending_tail_and_search() {
    let home = Home::new();
    home.policy(
        "escapes.yaml",
        r#"version: "1"
default_action: allow
policies:
  - name: deletes
    rules:
      - action: ask
        when:
          command_matches: ["rm *"]
        message: "Deletes need a person"
      - action: deny
        when:
          command_matches: ["dd *"]
        message: "Disk writes blocked"
"#,
    );
    let server = Server::start(&home, &[]);
    let denied = "dd if=/dev/zero of=/dev/sda\x1b[1A\x1b[2K\rls";
    let answer = server
        .preflight(json!({"agent": "a\u{202e}b", "session": "s", "params": {"command": denied}}));
    assert_eq!(answer["decision"], json!("deny"));

    let disguised = "rm -rf ~/\r\x1b[2Kgit status";
    let endpoint = server.unix();
    let token = server.token.clone();
    let waiter = std::thread::spawn(move || {
        let body = json!({"agent": "preload", "session": "s1", "params": {"command": disguised}, "wait_ms": 30000});
        request(
            &endpoint,
            "POST",
            "/v1/preflight/exec",
            Some(&token),
            Some(&body),
            Duration::from_secs(60),
        )
        .unwrap()
        .json()
        .unwrap()
    });
    assert!(wait_until(10, || home
        .run(&["pending"])
        .stdout()
        .contains("Deletes")));
    let pending = home.run(&["pending"]).stdout();
    assert!(!pending.contains(['\x1b', '\r']), "{pending:?}");
    assert!(
        pending
            .ends_with("  preload  s1  rm -rf ~/\\r\\x1b[2Kgit status  — Deletes need a person\n"),
        "{pending:?}"
    );
    let id = pending.split(' ').next().unwrap().to_owned();
    let run = home.run(&["deny", &id]);
    assert_eq!(
        run.stdout(),
        format!("Denied {id}: rm -rf ~/\\r\\x1b[2Kgit status\n")
    );
    assert_eq!(waiter.join().unwrap()["decision"], json!("deny"));

    for args in [&["audit", "tail", "-n", "5"][..], &["audit", "search"][..]] {
        let out = home.run(args).stdout();
        assert!(
            !out.contains(['\x1b', '\r', '\u{202e}']),
            "{args:?}: {out:?}"
        );
        assert_eq!(out.lines().count(), 2, "{args:?}: {out:?}");
        assert!(
            out.contains(
                "  deny   a\\u{202e}b  s  dd if=/dev/zero of=/dev/sda\\x1b[1A\\x1b[2K\\rls  — Disk writes blocked [deletes]"
            ),
            "{args:?}: {out:?}"
        );
        assert!(
            out.contains("  preload  s1  rm -rf ~/\\r\\x1b[2Kgit status  — denied by "),
            "{args:?}: {out:?}"
        );
    }
}

/// Issue 16: with this home's server stopped, `serve status`, `pending`, `approve`,
/// `--reload` and `dashboard` say "not running" and how to start it (exit 1) — not
/// "reading the token …".
#[test]
fn nothing_running_is_said_with_how_to_start_it() {
    let home = Home::new();
    let line = format!(
        "rampart: not running (nothing answers at unix:{}/rampart.sock); start it with `rampart serve --background`\n",
        home.path().display()
    );
    let run = home.run(&["serve", "status"]);
    assert_eq!(
        (run.code(), run.stdout(), run.stderr()),
        (1, line.clone(), String::new())
    );
    for args in [
        &["pending"][..],
        &["dashboard"],
        &["approve", "01ABC"],
        &["serve", "--reload"],
    ] {
        let run = home.run(args);
        assert_eq!(
            (run.code(), run.stdout(), run.stderr()),
            (1, String::new(), line.clone()),
            "{args:?}"
        );
    }
    // The token exists once a server has run here; stopped, the answer is the same.
    let server = Server::start(&home, &[]);
    assert_eq!(server.terminate(), Some(0));
    let run = home.run(&["pending"]);
    assert_eq!((run.code(), run.stderr()), (1, line));
}

/// Issue 16: a home whose server is stopped never talks to another home's server on the
/// default port (it would hand it this home's token). Run in a network namespace of its
/// own (`unshare -Urn`, no root needed), so the other home's server can own
/// 127.0.0.1:9090 there without touching the machine's port 9090.
#[test]
fn a_stopped_home_never_asks_another_homes_server_on_the_default_port() {
    let other = Home::new();
    let home = Home::new();
    // A token in this home, as after a first run: the old code then sent it to :9090.
    assert_eq!(home.run(&["token", "show"]).code(), 0);
    let script = r#"
        ip link set lo up || exit 90
        RAMPART_HOME="$1" "$0" serve --background --port 9090 >/dev/null || exit 91
        for args in "serve status" "pending" "dashboard"; do
            RAMPART_HOME="$2" "$0" $args
            echo "rc=$?"
        done
        RAMPART_HOME="$1" "$0" serve stop >/dev/null
    "#;
    let out = std::process::Command::new("unshare")
        .args(["-Urn", "sh", "-c", script, env!("CARGO_BIN_EXE_rampart")])
        .arg(other.path())
        .arg(home.path())
        .env_remove("RAMPART_URL")
        .env_remove("RAMPART_TOKEN")
        .output()
        .unwrap();
    if out.status.code() == Some(1) && out.stdout.is_empty() {
        println!(
            "SKIPPED a_stopped_home_never_asks_another_homes_server_on_the_default_port: unshare -Urn failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let line = format!(
        "rampart: not running (nothing answers at unix:{}/rampart.sock); start it with `rampart serve --background`\n",
        home.path().display()
    );
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (format!("{line}rc=1\nrc=1\nrc=1\n"), format!("{line}{line}"))
    );
}

/// A second foreground `serve` on a home whose server runs names it instead of failing on
/// the audit trail's lock file.
#[test]
fn a_second_serve_says_already_running_with_the_pid() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let run = home.run(&["serve", "--port", "0"]);
    let pid = server.pid();
    assert_eq!(
        (run.code(), run.stdout(), run.stderr()),
        (
            1,
            format!(
                "rampart: already running (pid {pid}, unix:{}); stop it with `rampart serve stop` or `kill {pid}`\n",
                server.socket.display()
            ),
            String::new()
        )
    );
}

/// A port another server holds is said once, foreground and background.
#[test]
fn a_port_clash_is_said_once() {
    let first = Home::new();
    let server = Server::start(&first, &[]);
    let home = Home::new();
    let port = server.port.to_string();
    let reason = format!(
        "cannot listen on 127.0.0.1:{port}: Address already in use (os error 98) (is another `rampart serve` running? see `rampart serve status`)"
    );
    let run = home.run(&["serve", "--port", &port]);
    assert_eq!(
        (run.code(), run.stderr()),
        (2, format!("rampart: error: {reason}\n"))
    );
    let run = home.run(&["serve", "--background", "--port", &port]);
    assert_eq!(
        (run.code(), run.stderr()),
        (
            2,
            format!(
                "rampart: error: the background server did not start: {reason} (log {}/serve.log)\n",
                home.path().display()
            )
        )
    );
}

/// Issue 16: `rampart … | head` ends quietly. The reader is gone before the first write
/// (a pipe whose read end is closed), so every command that prints meets EPIPE: each
/// exits 0 with nothing on stderr.
#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    for i in 0..5 {
        server.preflight(exec(&format!("git status {i}")));
    }
    let commands: &[&[&str]] = &[
        &["--help"],
        &["preload", "--help"],
        &["audit", "tail"],
        &["audit", "tail", "-n", "3"],
        &["audit", "search"],
        &["audit", "search", "--json"],
        &["audit", "search", "no-such-command"],
        &["audit", "stats"],
        &["audit", "verify"],
        &["policy", "show"],
        &["policy", "lint"],
        &["test", "git status"],
        &["pending"],
        &["serve", "status"],
        &["serve", "install", "--dry-run"],
        &["dashboard"],
        &["token", "show"],
        &["--version"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = home
            .cmd()
            .args(*args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned()
            ),
            (Some(0), String::new()),
            "{args:?}"
        );
    }
}

/// Issue 16: a search that finds nothing says so; a decision that does not exist is a
/// usage error listing the ones that do (`unchecked` among them).
#[test]
fn audit_search_says_no_match_and_refuses_an_unknown_decision() {
    let home = seed_home();
    let server = Server::start(&home, &[]);
    server.preflight(exec("git status"));
    let run = home.run(&["audit", "search", "no-such-command"]);
    assert_eq!(
        (run.code(), run.stdout(), run.stderr()),
        (0, "No matching audit events.\n".to_owned(), String::new())
    );
    let run = home.run(&["audit", "search", "--json", "--decision", "ask"]);
    assert_eq!(
        (run.code(), run.stdout(), run.stderr()),
        (
            0,
            String::new(),
            "rampart: no matching audit events\n".to_owned()
        )
    );
    let run = home.run(&["audit", "search", "--decision", "denied"]);
    assert_eq!(
        (run.code(), run.stdout(), run.stderr()),
        (
            2,
            String::new(),
            "error: invalid value 'denied' for '--decision <DECISION>'\n  [possible values: allow, deny, ask, log, unchecked]\n\n  tip: a similar value exists: 'deny'\n\nFor more information, try '--help'.\n".to_owned()
        )
    );
    let run = home.run(&["audit", "search", "--decision", "allow"]);
    assert_eq!(run.code(), 0);
    assert!(
        run.stdout().contains("  allow  preload  s1  git status"),
        "{}",
        run.stdout()
    );
}

/// Issue 16: "1 policy, 1 rule", not "1 policies, 1 rules".
#[test]
fn one_policy_is_said_in_the_singular() {
    let home = Home::new();
    home.policy(
        "one.yaml",
        "version: \"1\"\ndefault_action: allow\npolicies:\n  - name: only\n    match:\n      tool: [\"exec\"]\n    rules:\n      - action: deny\n        when:\n          command_matches: [\"touch *\"]\n",
    );
    let _server = Server::start(&home, &[]);
    let run = home.run(&["serve", "status"]);
    assert!(
        run.stdout()
            .contains("\n  policy:   1 policy, 1 rule from "),
        "{}",
        run.stdout()
    );
    let run = home.run(&["serve", "--reload"]);
    assert!(
        run.stdout()
            .starts_with("rampart: policies reloaded: 1 policy, 1 rule from "),
        "{}",
        run.stdout()
    );
    let run = home.run(&["policy", "show"]);
    assert!(
        run.stdout().contains(": 1 policy, 1 rule\n"),
        "{}",
        run.stdout()
    );
    let run = home.run(&["policy", "lint"]);
    assert!(
        run.stdout()
            .ends_with("1 file(s), 1 policy, 1 rule: 0 error(s), 0 warning(s)\n"),
        "{}",
        run.stdout()
    );
}

/// Issue 16: `rampart test --help` says its exit codes, and ends with an example.
#[test]
fn test_help_says_the_exit_codes() {
    let run = Home::new().run(&["test", "--help"]);
    assert_eq!(run.code(), 0);
    assert!(
        run.stdout().ends_with(
            "\nExit status: 0 allow or log, 1 deny, 3 ask, 2 usage or input error.\n\nExample:\n  rampart test --agent claude \"git push --force origin main\"\n"
        ),
        "{}",
        run.stdout()
    );
}

/// Reads an SSE stream's headers; the subscription is live once they are sent.
fn subscribe(server: &Server, query: &str) -> BufReader<std::net::TcpStream> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1/events/stream?token={}{query} HTTP/1.1\r\nHost: x\r\n\r\n",
        server.token
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    for _ in 0..100 {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    reader
}

/// The data of the next `decision` event on an SSE stream.
fn next_decision(reader: &mut BufReader<std::net::TcpStream>) -> serde_json::Value {
    let mut line = String::new();
    let mut name = String::new();
    for _ in 0..1000 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended");
        let line = line.trim_end();
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_owned();
        } else if let Some(d) = line.strip_prefix("data:")
            && name == "decision"
        {
            return serde_json::from_str(d.trim()).unwrap();
        }
    }
    panic!("no decision event");
}

/// Quiet allows (issue 16): the standard profile allows a pyenv shim quietly. The event
/// is in the trail with `"quiet": true`, is not sent to a live-feed client unless it asked
/// (`?all=true`), and `audit tail` leaves it out unless `--all`; the real python3 the shim
/// ends in is an ordinary allow, shown everywhere.
#[test]
fn quiet_allows_are_audited_but_kept_out_of_the_live_feed_and_tail() {
    let home = Home::new(); // no policy file: the embedded standard profile
    let server = Server::start(&home, &[]);
    let mut feed = subscribe(&server, "");
    let mut everything = subscribe(&server, "&all=true");

    let shim = json!({"agent": "preload", "session": "s1", "params": {"command": "python3 -V"},
        "exe": "/home/u/.pyenv/shims/python3"});
    let quiet = server.preflight(shim);
    assert_eq!(quiet["decision"], "allow");
    let real = json!({"agent": "preload", "session": "s1", "params": {"command": "python3 -V"},
        "exe": "/home/u/.pyenv/versions/3.12.1/bin/python3"});
    let shown = server.preflight(real);
    assert_eq!(shown["decision"], "allow");
    // The helpers of the chain are quiet too; a deny on a shim is never quiet.
    let helper = json!({"agent": "preload", "session": "s1",
        "params": {"command": "pyenv-version-name"},
        "exe": "/home/u/.pyenv/libexec/pyenv-version-name"});
    let helper = server.preflight(helper);
    let refused = json!({"agent": "preload", "session": "s1", "params": {"command": "python3 -c 'x' && rm -rf /"},
        "exe": "/home/u/.pyenv/shims/python3"});
    let refused = server.preflight(refused);
    assert_eq!(refused["decision"], "deny");

    // The default client gets the ordinary allow first: the quiet one was never sent.
    let first = next_decision(&mut feed);
    assert_eq!(first["id"], shown["audit_id"]);
    assert_eq!(first.get("quiet"), None);
    assert_eq!(next_decision(&mut feed)["id"], refused["audit_id"]);
    // The client that asked gets all of them, the quiet ones marked.
    let first = next_decision(&mut everything);
    assert_eq!(first["id"], quiet["audit_id"]);
    assert_eq!(first["quiet"], true);
    assert_eq!(next_decision(&mut everything)["id"], shown["audit_id"]);
    let third = next_decision(&mut everything);
    assert_eq!(third["id"], helper["audit_id"]);
    assert_eq!(third["quiet"], true);
    assert_eq!(next_decision(&mut everything)["id"], refused["audit_id"]);

    // The trail holds all four, the quiet ones marked; the chain verifies.
    let events = server.call("GET", "/v1/audit/events", None).json().unwrap();
    let quiet_flags: Vec<bool> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["quiet"] == true)
        .collect();
    assert_eq!(quiet_flags, [false, true, false, true]); // newest first
    let events = server
        .call("GET", "/v1/audit/events?quiet=false", None)
        .json()
        .unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    assert_eq!(home.run(&["audit", "verify"]).code(), 0);

    // `audit tail`: the quiet ones only with --all, then marked.
    let strip = |out: String| -> Vec<String> {
        out.lines()
            .map(|l| l.get(21..).unwrap_or("").to_owned())
            .collect()
    };
    let run = home.run(&["audit", "tail"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        strip(run.stdout()),
        [
            "allow  preload  s1  python3 -V  — No rule matched; default action is allow",
            "deny   preload  s1  python3 -c 'x' && rm -rf /  — Recursive delete of the root, a home directory or a system directory blocked [block-destructive-deletes, protect-places]",
        ]
    );
    let run = home.run(&["audit", "tail", "--all", "-n", "3"]);
    assert_eq!(
        strip(run.stdout()),
        [
            "allow  preload  s1  python3 -V  — No rule matched; default action is allow",
            "allow  preload  s1  pyenv-version-name  — Version manager shim (quiet) [quiet-version-manager-shims] (quiet)",
            "deny   preload  s1  python3 -c 'x' && rm -rf /  — Recursive delete of the root, a home directory or a system directory blocked [block-destructive-deletes, protect-places]",
        ]
    );
}

/// The same end to end (issue 16): a pyenv-like shim chain (shim script → libexec/pyenv →
/// the system python3, each script `#!/usr/bin/env bash` as pyenv's are) run under
/// `rampart preload` with the real library and the standard profile. Every exec is in the
/// trail (the script and env's bash for each hop); `audit tail` shows only the real
/// python3, `audit tail --all` the whole chain, the hops marked quiet.
#[test]
fn a_shim_chain_under_preload_is_audited_quietly_but_the_real_program_is_shown() {
    let lib = crate::util::library();
    let home = Home::new(); // the embedded standard profile
    let server = Server::start(&home, &[]);
    let root = home.path().join("u/.pyenv");
    for dir in ["shims", "libexec"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let script = |path: &std::path::Path, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    // No dirname/basename: every exec of the chain is a hop of its own.
    // As pyenv writes them: `#!/usr/bin/env bash`, the shim naming libexec/pyenv by
    // its absolute path.
    script(
        &root.join("shims/python3"),
        &format!(
            "#!/usr/bin/env bash\nexec \"{}/libexec/pyenv\" exec python3 \"$@\"\n",
            root.display()
        ),
    );
    script(
        &root.join("libexec/pyenv"),
        "#!/usr/bin/env bash\nshift 2\nexec python3 \"$@\"\n",
    );
    let shim = root.join("shims/python3");
    let out = home
        .cmd()
        .env("RAMPART_LIBRARY", &lib)
        // The system python3 (a developer's own pyenv must not join the chain).
        .env("PATH", "/usr/bin:/bin")
        .args([
            "preload",
            "--url",
            &format!("http://127.0.0.1:{}", server.port),
            "--no-autostart",
            "--session",
            "shim",
            "--",
        ])
        .arg(&shim)
        .args(["-c", "print('hello from python')"])
        .output()
        .unwrap();
    let run = crate::util::Run(out);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), "hello from python\n");

    let strip = |out: String| -> Vec<String> {
        out.lines()
            .map(|l| l.get(21..).unwrap_or("").to_owned())
            .filter(|l| l.contains("  shim  "))
            .collect()
    };
    let real = "allow  preload  shim  python3 -c 'print('\\''hello from python'\\'')'  — No rule matched; default action is allow";
    let run = home.run(&["audit", "tail"]);
    assert_eq!(strip(run.stdout()), [real], "{}", run.stdout());
    let run = home.run(&["audit", "tail", "--all"]);
    let r = root.display();
    assert_eq!(
        strip(run.stdout()),
        [
            format!(
                "allow  preload  shim  {r}/shims/python3 -c 'print('\\''hello from python'\\'')'  — Version manager shim (quiet) [quiet-version-manager-shims] (quiet)"
            ),
            format!(
                "allow  preload  shim  bash {r}/shims/python3 -c 'print('\\''hello from python'\\'')'  — Version manager shim (quiet) [quiet-version-manager-shims] (quiet)"
            ),
            format!(
                "allow  preload  shim  {r}/libexec/pyenv exec python3 -c 'print('\\''hello from python'\\'')'  — Version manager shim (quiet) [quiet-version-manager-shims] (quiet)"
            ),
            format!(
                "allow  preload  shim  bash {r}/libexec/pyenv exec python3 -c 'print('\\''hello from python'\\'')'  — Version manager shim (quiet) [quiet-version-manager-shims] (quiet)"
            ),
            real.to_owned(),
        ],
        "{}",
        run.stdout()
    );
}
