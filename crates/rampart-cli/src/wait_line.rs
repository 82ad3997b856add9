//! The `[WAIT]` line of a held `ask`, for the launchers' own checks (CMD under `rampart
//! preload`, every exec under `rampart supervise`): after a second without an answer the
//! id of the ask is looked up (`GET /v1/approvals?pid=`) and the line — command, agent,
//! approval id, time left and the exact `rampart approve ID` / `rampart deny ID` — goes
//! to the controlling terminal, so the person who started the agent sees it whatever the
//! agent does with its stderr; without a terminal, to stderr. The library
//! (`preload/src/check.rs`) writes the same lines.

use std::fs::File;
use std::io::Write;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rampart_server::client;

use crate::agent_args::{Resolved, printable};

/// What was said about one wait: where, and under which id.
pub struct Told {
    tty: Option<File>,
    id: Option<String>,
}

/// The controlling terminal for writing, if there is one.
fn tty() -> Option<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/tty")
        .ok()
}

/// The id and seconds left of the newest ask of `pid` the caller may see.
fn lookup(resolved: &Resolved, pid: i64) -> Option<(String, u64)> {
    let r = client::request(
        &resolved.endpoint,
        "GET",
        &format!("/v1/approvals?pid={pid}"),
        resolved.token.as_deref(),
        None,
        Duration::from_millis(rampart_contract::values::ANSWER_TIMEOUT_MS),
    )
    .ok()?;
    if r.status != 200 {
        return None;
    }
    let v = r.json().ok()?;
    let newest = v.get("approvals")?.as_array()?.last()?;
    let id = newest.get("id")?.as_str()?;
    // Only an id that is safe to print as a command to type.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let left = newest
        .get("expires_in_s")
        .and_then(|l| l.as_u64())
        .unwrap_or(0);
    Some((id.to_owned(), left))
}

/// The wait line, exactly as the library prints it.
pub fn wait_text(command: &str, agent: &str, found: Option<(&str, u64)>) -> String {
    let command = printable(command);
    match found {
        Some((id, left)) => format!(
            "rampart: [WAIT] Waiting for approval of: {command} (agent {}, approval {id}, {left}s left) -- type 'rampart approve {id}' or 'rampart deny {id}', or see the dashboard",
            printable(agent)
        ),
        None => format!(
            "rampart: [WAIT] Waiting for approval of: {command} -- see 'rampart pending', then 'rampart approve <id>' or 'rampart deny <id>', or the dashboard"
        ),
    }
}

/// Looks the ask up and says it: to the terminal when there is one, else stderr.
pub fn announce(resolved: &Resolved, pid: Option<i64>, command: &str) -> Told {
    let found = pid.and_then(|pid| lookup(resolved, pid));
    let line = wait_text(
        command,
        &resolved.agent,
        found.as_ref().map(|(id, left)| (id.as_str(), *left)),
    );
    let mut tty = tty();
    let shown = tty
        .as_mut()
        .is_some_and(|t| writeln!(t, "{line}").and_then(|()| t.flush()).is_ok());
    if !shown {
        tty = None;
        eprintln!("{line}");
    }
    Told {
        tty,
        id: found.map(|(id, _)| id),
    }
}

impl Told {
    /// The one line on the terminal when the wait ends (stderr keeps only the refusal's
    /// `[ERROR]` line, as before).
    pub fn resolved(mut self, allowed: Option<bool>, message: &str, command: &str) {
        let Some(tty) = self.tty.as_mut() else {
            return;
        };
        let id = self
            .id
            .as_deref()
            .map(|i| format!(" {i}"))
            .unwrap_or_default();
        let end = match allowed {
            Some(true) => format!("{message} (runs)"),
            Some(false) => format!("{message} (refused)"),
            None => "no answer from the policy server".to_owned(),
        };
        let _ = writeln!(
            tty,
            "rampart: [WAIT] Approval{id}: {end}: {}",
            printable(command)
        );
    }
}

/// A wait line due after a second, unless the answer comes first.
pub struct Timer {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<Option<Told>>,
}

impl Timer {
    pub fn start(resolved: &Resolved, pid: Option<i64>, command: &str) -> Option<Timer> {
        let (stop, stopped) = mpsc::channel();
        let (resolved, command) = (resolved.clone(), command.to_owned());
        let handle = std::thread::Builder::new()
            .name("rampart-wait".to_owned())
            .spawn(move || match stopped.recv_timeout(Duration::from_secs(1)) {
                Err(mpsc::RecvTimeoutError::Timeout) => Some(announce(&resolved, pid, &command)),
                _ => None,
            })
            .ok()?;
        Some(Timer { stop, handle })
    }

    /// The answer came: no wait line if none was due yet; the resolution line if it was.
    pub fn finish(self, allowed: Option<bool>, message: &str, command: &str) {
        let _ = self.stop.send(());
        if let Ok(Some(told)) = self.handle.join() {
            told.resolved(allowed, message, command);
        }
    }
}
