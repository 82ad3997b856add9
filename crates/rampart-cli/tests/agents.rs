//! Agent credentials (issue 13, item 1), server side, against a real `rampart serve`:
//! an agent holding its per-run credential cannot approve its own ask, forge who approved
//! it, claim another agent's name, or call any admin route; the credential survives
//! `rampart token rotate` and a server restart, and ends with the process it is bound to.
//!
//! The process a credential is bound to is a `sleep` the test starts (the launcher binds
//! its own pid, which becomes CMD's by exec).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rampart_server::client::{self, Endpoint};
use rampart_server::{Access, ROUTES};
use serde_json::json;

use crate::security::{assert_error_only, concrete_path, raw};
use crate::util::{Home, SEED_POLICY, Server, request};

/// A process to bind credentials to; killed (and reaped) when dropped.
struct Bound(Child);

impl Bound {
    fn start() -> Bound {
        Bound(
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn register(server: &Server, agent: &str, session: &str, pid: u32) -> (String, String) {
    let credential =
        client::register_agent(&server.unix(), &server.token, agent, session, pid).unwrap();
    assert!(
        credential.token.starts_with("rampart_agent_") && credential.token.len() == 14 + 64,
        "{credential:?}"
    );
    assert_eq!(
        (credential.agent.as_str(), credential.session.as_str()),
        (agent, session)
    );
    assert_eq!(credential.id.len(), 26);
    (credential.token, credential.id)
}

fn call_as(
    endpoint: &Endpoint,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> client::Response {
    request(
        endpoint,
        method,
        path,
        Some(token),
        body.as_ref(),
        Duration::from_secs(30),
    )
    .unwrap()
}

fn events(server: &Server) -> Vec<serde_json::Value> {
    let r = server.call("GET", "/v1/audit/events?limit=1000", None);
    r.json().unwrap()["events"].as_array().unwrap().clone()
}

fn seed_server() -> (Home, Server) {
    let home = Home::new();
    home.policy("seed.yaml", SEED_POLICY);
    let server = Server::start(&home, &[]);
    (home, server)
}

#[test]
fn an_agent_cannot_approve_its_own_ask_nor_forge_who_approved_it() {
    let (home, server) = seed_server();
    let bound = Bound::start();
    let (token, _) = register(&server, "preload", "s1", bound.pid());
    // The agent's own held ask (the seed asks before network commands).
    let endpoint = server.unix();
    let held = {
        let (endpoint, token) = (endpoint.clone(), token.clone());
        std::thread::spawn(move || {
            call_as(
                &endpoint,
                &token,
                "POST",
                "/v1/preflight/exec",
                Some(
                    json!({"params": {"command": "curl https://example.invalid"}, "wait_ms": 60000}),
                ),
            )
        })
    };
    assert!(crate::util::wait_until(20, || {
        server.call("GET", "/v1/approvals", None).json().unwrap()["approvals"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    }));
    let pending = server.call("GET", "/v1/approvals", None).json().unwrap();
    let id = pending["approvals"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(pending["approvals"][0]["agent"], json!("preload"));
    assert_eq!(pending["approvals"][0]["session"], json!("s1"));

    // Approving it with its credential, signed as a person: refused, still pending.
    let resolve = format!("/v1/approvals/{id}/resolve");
    let r = call_as(
        &endpoint,
        &token,
        "POST",
        &resolve,
        Some(json!({"approved": true, "resolved_by": "alice (dashboard)"})),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.error_text(),
        format!("agent credentials cannot call POST {resolve}: it needs the admin token")
    );
    // Listing: its own session's asks only (the library learns its ask's id so).
    let r = call_as(&endpoint, &token, "GET", "/v1/approvals", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().unwrap()["approvals"][0]["id"], json!(id));
    let (stranger, _) = register(&server, "preload", "s3", bound.pid());
    let r = call_as(&endpoint, &stranger, "GET", "/v1/approvals", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().unwrap()["approvals"], json!([]));
    let r = call_as(&endpoint, &token, "GET", "/v1/approvals?pid=1", None);
    assert_eq!(r.json().unwrap()["approvals"], json!([]));
    let r = call_as(&endpoint, &token, "GET", "/v1/approvals?pid=x", None);
    assert_eq!(r.status, 400, "{}", r.text());
    // The CLI with the credential in RAMPART_TOKEN (as the agent's environment has it).
    let run = crate::util::Run(
        home.cmd()
            .args(["approve", &id])
            .env("RAMPART_TOKEN", &token)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code(), 2, "{} {}", run.stdout(), run.stderr());
    assert_eq!(
        run.stderr(),
        format!(
            "rampart: error: agent credentials cannot call POST {resolve}: it needs the admin token: RAMPART_TOKEN holds an agent credential (given to programs run under `rampart preload`/`supervise`); admin commands need the admin token\n"
        )
    );
    // Its own approval it may read (the library polls it) ...
    let r = call_as(
        &endpoint,
        &token,
        "GET",
        &format!("/v1/approvals/{id}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().unwrap()["status"], json!("pending"));
    // ... another session's not.
    let (other, _) = register(&server, "preload", "s2", bound.pid());
    let r = call_as(
        &endpoint,
        &other,
        "GET",
        &format!("/v1/approvals/{id}"),
        None,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.error_text(),
        "agent credentials cannot read approvals of another agent or session"
    );
    let r = server.call("GET", &format!("/v1/approvals/{id}"), None);
    assert_eq!(r.json().unwrap()["status"], json!("pending"));

    // A person decides; the trail names the person, not what the agent claimed.
    let r = server.call(
        "POST",
        &resolve,
        Some(json!({"approved": false, "resolved_by": "bob"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = held.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json().unwrap();
    assert_eq!(
        (answer["allowed"].clone(), answer["message"].clone()),
        (json!(false), json!("denied by bob"))
    );
    let events = events(&server);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["approval"]["resolved_by"], json!("bob"));
    assert_eq!(events[0]["session"], json!("s1"));
}

#[test]
fn a_preflight_claiming_another_agent_or_session_is_refused_and_audited() {
    let home = Home::new();
    // A policy that trusts another agent name: claiming it must not buy the agent anything.
    home.policy(
        "names.yaml",
        r#"version: "1"
default_action: deny
policies:
  - name: trusted-claude
    match:
      agent: ["claude"]
    rules:
      - action: allow
        when:
          command_matches: ["*"]
  - name: preload-ls
    match:
      agent: ["preload"]
    rules:
      - action: allow
        when:
          command_matches: ["ls *"]
"#,
    );
    let server = Server::start(&home, &[]);
    let bound = Bound::start();
    let (token, _) = register(&server, "preload", "s1", bound.pid());
    let endpoint = server.tcp();
    let touch = json!({"command": "touch /tmp/rampart-claimed"});
    let bound_to = r#"this credential is for agent "preload", session "s1""#;
    for (claim, claimed) in [
        (
            json!({"agent": "claude", "params": touch}),
            r#"agent "claude", session "s1""#,
        ),
        (
            json!({"agent": "preload", "session": "s2", "params": touch}),
            r#"agent "preload", session "s2""#,
        ),
    ] {
        let r = call_as(&endpoint, &token, "POST", "/v1/preflight/exec", Some(claim));
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(
            r.text(),
            json!({"error": format!("agent credentials cannot claim another agent or session: {bound_to}")})
                .to_string()
        );
        let newest = events(&server)[0].clone();
        assert_eq!(
            (
                newest["decision"].clone(),
                newest["agent"].clone(),
                newest["session"].clone(),
                newest["command"].clone(),
                newest["message"].clone(),
            ),
            (
                json!("deny"),
                json!("preload"),
                json!("s1"),
                json!("touch /tmp/rampart-claimed"),
                json!(format!(
                    "refused: the request claimed {claimed}; {bound_to}"
                )),
            )
        );
    }
    // Naming itself, or nothing: evaluated as the credential's agent and session.
    for body in [
        json!({"params": {"command": "ls /"}}),
        json!({"agent": "preload", "session": "s1", "params": {"command": "ls /"}}),
    ] {
        let r = call_as(&endpoint, &token, "POST", "/v1/preflight/exec", Some(body));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json().unwrap()["decision"], json!("allow"));
        let newest = events(&server)[0].clone();
        assert_eq!(
            (newest["agent"].clone(), newest["session"].clone()),
            (json!("preload"), json!("s1"))
        );
    }
    let r = call_as(
        &endpoint,
        &token,
        "POST",
        "/v1/preflight/exec",
        Some(json!({"params": touch})),
    );
    assert_eq!(r.json().unwrap()["decision"], json!("deny"));
    assert_eq!(events(&server).len(), 5);
}

#[test]
fn token_rotate_leaves_agent_credentials_working_and_the_old_admin_token_dead() {
    let (home, server) = seed_server();
    let bound = Bound::start();
    let (token, _) = register(&server, "preload", "s1", bound.pid());
    let old_admin = server.token.clone();
    let run = home.run(&["token", "rotate"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let new_admin = run.stdout().trim().to_owned();
    assert_ne!(new_admin, old_admin);
    let ls = json!({"params": {"command": "ls"}});
    for endpoint in [server.unix(), server.tcp()] {
        let r = call_as(&endpoint, &old_admin, "GET", "/v1/status", None);
        assert_eq!(r.status, 401, "{}", r.text());
        let r = call_as(&endpoint, &new_admin, "GET", "/v1/status", None);
        assert_eq!(r.status, 200, "{}", r.text());
        let r = call_as(
            &endpoint,
            &token,
            "POST",
            "/v1/preflight/exec",
            Some(ls.clone()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json().unwrap()["allowed"], json!(true));
    }
}

#[test]
fn an_agent_credential_ends_with_its_process() {
    let (home, server) = seed_server();
    let mut bound = Bound::start();
    let (token, _) = register(&server, "preload", "s1", bound.pid());
    let pid = bound.pid();
    let ls = json!({"params": {"command": "ls"}});
    let r = call_as(
        &server.unix(),
        &token,
        "POST",
        "/v1/preflight/exec",
        Some(ls.clone()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Exited but not yet collected (a zombie) already counts as gone.
    bound.0.kill().unwrap();
    assert!(crate::util::wait_until(10, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    }));
    let r = call_as(
        &server.unix(),
        &token,
        "POST",
        "/v1/preflight/exec",
        Some(ls.clone()),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.error_text(),
        format!("agent credential ended: the process it was bound to (pid {pid}) is gone")
    );
    bound.0.wait().unwrap();
    // Forgotten: the file no longer holds it, and a restart does not bring it back.
    let stored = std::fs::read_to_string(home.path().join("agents.json")).unwrap();
    assert!(stored.contains("\"agents\": []"), "{stored}");
    let status = server.call("GET", "/v1/status", None).json().unwrap();
    assert_eq!(status["agent_credentials"], json!(0));
    // A credential for a process that is not running is not issued at all.
    let r =
        client::register_agent(&server.unix(), &server.token, "preload", "s1", pid).unwrap_err();
    assert_eq!(
        r,
        format!(
            "the server at {} refused an agent credential (400): `pid` {pid} is not a running process: a credential is bound to the process that runs the agent",
            server.unix().url()
        )
    );
}

#[test]
fn the_first_use_after_the_process_ends_says_why() {
    let (_home, server) = seed_server();
    let mut bound = Bound::start();
    let (token, id) = register(&server, "preload", "s1", bound.pid());
    let pid = bound.pid();
    bound.0.kill().unwrap();
    bound.0.wait().unwrap();
    let ls = json!({"params": {"command": "ls"}});
    let r = call_as(
        &server.unix(),
        &token,
        "POST",
        "/v1/preflight/exec",
        Some(ls.clone()),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.error_text(),
        format!("agent credential ended: the process it was bound to (pid {pid}) is gone")
    );
    // The server's log says what happened to it, from issue to end.
    let said = [
        format!("rampart: agent credential {id} issued: agent preload, session s1, pid {pid}"),
        format!("rampart: agent credential {id} ended: its process (pid {pid}) is gone"),
    ];
    assert!(
        crate::util::wait_until(10, || said
            .iter()
            .all(|l| server.stderr().lines().any(|s| s == l))),
        "{}",
        server.stderr()
    );
    // Then it is simply unknown.
    let r = call_as(
        &server.unix(),
        &token,
        "POST",
        "/v1/preflight/exec",
        Some(ls),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.error_text(), "invalid token");
}

#[test]
fn an_agent_credential_survives_a_restart_until_revoked() {
    let (home, server) = seed_server();
    let bound = Bound::start();
    let (token, id) = register(&server, "preload", "s1", bound.pid());
    let (second, second_id) = register(&server, "preload", "s2", bound.pid());
    server.kill9();
    let server = Server::start(&home, &[]);
    let ls = json!({"params": {"command": "ls"}});
    for t in [&token, &second] {
        let r = call_as(
            &server.unix(),
            t,
            "POST",
            "/v1/preflight/exec",
            Some(ls.clone()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let status = server.call("GET", "/v1/status", None).json().unwrap();
    assert_eq!(status["agent_credentials"], json!(2));
    // The credential ends itself ...
    client::revoke_agent(&server.unix(), &token, "self").unwrap();
    let r = call_as(
        &server.unix(),
        &token,
        "POST",
        "/v1/preflight/exec",
        Some(ls.clone()),
    );
    assert_eq!(r.status, 401);
    // ... and the admin ends another by id (once).
    client::revoke_agent(&server.tcp(), &server.token, &second_id).unwrap();
    let r = call_as(
        &server.unix(),
        &second,
        "POST",
        "/v1/preflight/exec",
        Some(ls),
    );
    assert_eq!(r.status, 401);
    let said = [
        format!("rampart: agent credential {id} revoked by itself"),
        format!("rampart: agent credential {second_id} revoked with the admin token"),
    ];
    assert!(
        crate::util::wait_until(10, || said
            .iter()
            .all(|l| server.stderr().lines().any(|s| s == l))),
        "{}",
        server.stderr()
    );
    let e = client::revoke_agent(&server.unix(), &server.token, &id).unwrap_err();
    assert!(e.ends_with(&format!(
        "(404): no agent credential {id} (revoked, ended or never issued)"
    )));
    // The admin token is no agent credential.
    let e = client::revoke_agent(&server.unix(), &server.token, "self").unwrap_err();
    assert!(
        e.contains("(400): DELETE /v1/agents/self needs an agent credential"),
        "{e}"
    );
}

#[test]
fn every_admin_route_refuses_an_agent_credential() {
    let (_home, server) = seed_server();
    let bound = Bound::start();
    let (token, _) = register(&server, "preload", "s1", bound.pid());
    let bearer = format!("Authorization: Bearer {token}");
    let admin_routes: Vec<_> = ROUTES
        .iter()
        .filter(|r| r.access == Access::Token)
        .collect();
    // 11: `GET /v1/approvals` lists an agent's own session's asks (issue 15).
    assert!(admin_routes.len() >= 11, "{admin_routes:?}");
    for endpoint in [server.tcp(), server.unix()] {
        for route in &admin_routes {
            let path = concrete_path(route);
            let r = raw(&endpoint, route.method, &path, &[bearer.as_str()]);
            assert_eq!(
                r.status, 403,
                "{} {path} on {endpoint:?}: {}",
                route.method, r.body
            );
            assert_error_only(&r, &path);
            assert_eq!(
                r.body,
                json!({"error": format!("agent credentials cannot call {} {path}: it needs the admin token", route.method)})
                    .to_string()
            );
        }
        // The event stream's `?token=` does not take it either.
        let r = raw(
            &endpoint,
            "GET",
            &format!("/v1/events/stream?token={token}"),
            &[],
        );
        assert_eq!(r.status, 403, "{}", r.body);
        // What it may call answers (a missing approval is just missing).
        let r = raw(
            &endpoint,
            "GET",
            "/v1/approvals/01J00000000000000000000000",
            &[bearer.as_str()],
        );
        assert_eq!(r.status, 404, "{}", r.body);
        let r = call_as(
            &endpoint,
            &token,
            "POST",
            "/v1/preflight/exec",
            Some(json!({"params": {"command": "ls"}})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // An agent cannot mint more credentials or read the audit trail through any route:
    // nothing was issued, nothing pending, and only its own two preflights are recorded.
    let status = server.call("GET", "/v1/status", None).json().unwrap();
    assert_eq!(status["agent_credentials"], json!(1));
    assert_eq!(events(&server).len(), 2);
}

/// The real library with an agent credential in `RAMPART_TOKEN` (what the launcher will
/// hand the agent's tree): checks work and deny as before; a tree whose configuration
/// names another session gets every exec refused (the server answers 403), never run.
#[test]
fn the_real_library_works_with_an_agent_credential_and_refuses_a_claimed_session() {
    let library =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../preload/build/librampart.so");
    assert!(
        library.is_file(),
        "{} is missing: run `make -C preload` first",
        library.display()
    );
    let home = Home::new();
    home.policy(
        "touch.yaml",
        r#"version: "1"
default_action: allow
policies:
  - name: no-touch
    match:
      agent: ["preload"]
    rules:
      - action: deny
        when:
          command_matches: ["touch *"]
        message: "touch is not for agents"
"#,
    );
    let server = Server::start(&home, &[]);
    // Bound to this test process, which outlives the agent.
    let (token, _) = register(&server, "preload", "s1", std::process::id());
    // The only `touch` the agent can reach is a fake that records it ran.
    let bin = tempfile::tempdir().unwrap();
    let marker = bin.path().join("touched");
    let touch = bin.path().join("touch");
    std::fs::write(
        &touch,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&touch, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let agent = r#"
import subprocess, sys
def run(argv):
    try:
        return "ran:%d" % subprocess.run(argv, stdout=subprocess.DEVNULL).returncode
    except PermissionError:
        return "EPERM"
print(run(["/bin/ls", "/"]), run([sys.argv[1], "F"]))
"#;
    let run_agent = |session: &str| {
        Command::new("/usr/bin/python3")
            .args(["-c", agent, touch.to_str().unwrap()])
            .env("LD_PRELOAD", &library)
            .env("RAMPART_URL", format!("unix:{}", server.socket.display()))
            .env("RAMPART_TOKEN", &token)
            .env("RAMPART_AGENT", "preload")
            .env("RAMPART_SESSION", session)
            .env("RAMPART_FAIL_OPEN", "false")
            .env_remove("RAMPART_MODE")
            .output()
            .unwrap()
    };
    let out = run_agent("s1");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ran:0 EPERM\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("rampart: [ERROR] Policy denied: touch is not for agents"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_agent("s2");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "EPERM EPERM\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists(), "the denied program ran");
    // Every refusal is in the trail under the credential's own names.
    let events = events(&server);
    let claimed = events
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .starts_with(r#"refused: the request claimed agent "preload", session "s2""#)
        })
        .count();
    assert_eq!(claimed, 2, "{events:?}");
    assert!(
        events.iter().all(|e| e["session"] == json!("s1")),
        "{events:?}"
    );
}

/// The whole of issue 13 item 1 through the real launcher: `rampart preload` hands the
/// agent a per-run credential (never the admin token); with it, plain Python cannot
/// approve its own ask, read the audit trail or reload policy; `rampart token rotate`
/// while the agent runs leaves its checks working; the credential ends with the run.
#[test]
fn the_launcher_hands_the_agent_a_scoped_credential_that_survives_rotation() {
    launched_agent_cannot_use_its_token("preload", "scoped");
}

/// The same under `rampart supervise`: the tree gets no token at all (the supervisor asks
/// for it, with a credential bound to itself), even when the user exported the admin
/// token; rotation mid-run leaves the supervisor's checks working.
#[test]
fn under_supervise_the_tree_gets_no_token_and_rotation_leaves_it_checked() {
    launched_agent_cannot_use_its_token("supervise", "none");
}

fn launched_agent_cannot_use_its_token(launcher: &str, expect: &str) {
    let library =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../preload/build/librampart.so");
    assert!(library.is_file(), "run `make -C preload` first");
    let home = Home::new();
    home.policy(
        "touch.yaml",
        r#"version: "1"
default_action: allow
policies:
  - name: no-touch
    rules:
      - action: deny
        when:
          command_matches: ["touch *"]
        message: "touch is not for agents"
"#,
    );
    let server = Server::start(&home, &[]);
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("touched");
    let touch = scratch.path().join("touch");
    std::fs::write(
        &touch,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&touch, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let go = scratch.path().join("go");
    // The agent: what a prompt-injected agent would try, in plain Python with no exec.
    let agent = r#"
import http.client, json, os, subprocess, sys, time
port, admin, touch, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tok = os.environ.get("RAMPART_TOKEN", "")
print("none" if not tok else "scoped" if tok.startswith("rampart_agent_") and tok != admin
      else "ADMIN:" + tok, flush=True)
def call(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    return c.getresponse().status
print(call("POST", "/v1/approvals/01J00000000000000000000000/resolve",
           {"approved": True, "resolved_by": "alice (dashboard)"}),
      call("GET", "/v1/audit/events"), call("POST", "/v1/policy/reload", {}),
      call("POST", "/v1/agents", {"agent": "x", "session": "y", "pid": os.getpid()}), flush=True)
print("waiting", flush=True)
for _ in range(3000):
    if os.path.exists(go):
        break
    time.sleep(0.01)
def run(argv):
    try:
        return "ran:%d" % subprocess.run(argv).returncode
    except PermissionError:
        return "EPERM"
print(run(["/bin/true"]), run([touch, "F"]), flush=True)
"#;
    let mut child = home
        .cmd()
        .args([
            launcher,
            "--url",
            &format!("http://127.0.0.1:{}", server.port),
            "--no-autostart",
            "--fail-open=false",
            "--",
            "/usr/bin/python3",
            "-c",
            agent,
            &server.port.to_string(),
            &server.token,
            touch.to_str().unwrap(),
            go.to_str().unwrap(),
        ])
        // A user who exported the admin token: it must not reach the agent either way.
        .env("RAMPART_TOKEN", &server.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    assert!(crate::util::wait_until(60, || {
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut stdout, &mut buf).unwrap_or(0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.contains("waiting") || n == 0
    }));
    let refused = if expect == "none" {
        "401 401 401 401"
    } else {
        "403 403 403 403"
    };
    assert_eq!(seen, format!("{expect}\n{refused}\nwaiting\n"));
    // The user rotates the admin token while the agent runs.
    let rotated = home.run(&["token", "rotate"]);
    assert_eq!(rotated.code(), 0, "{}", rotated.stderr());
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(
        rest,
        "ran:0 EPERM\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists(), "the denied program ran");
    // The run is over: its credential no longer answers.
    let admin = std::fs::read_to_string(home.path().join("token")).unwrap();
    let status = request(
        &server.unix(),
        "GET",
        "/v1/status",
        Some(admin.trim()),
        None,
        Duration::from_secs(10),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(status["agent_credentials"], json!(0), "{status}");
}
