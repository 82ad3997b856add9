//! `rampart pending [--watch]`, `rampart approve ID [--for-session]`, `rampart deny ID
//! [--message M]`.

use anyhow::{Result, bail};
use rampart_server::wire::ApprovalInfo;

use crate::Outcome;
use crate::serve_cmd::call;

pub fn pending() -> Result<Outcome> {
    let list = list_pending()?;
    if list.is_empty() {
        outln!("No pending approvals.");
        return Ok(Outcome::Success);
    }
    let now = jiff::Timestamp::now();
    // The agent chose the command (and maybe its name): shown escaped, so an ESC
    // sequence or a carriage return cannot make an `rm -rf` look like `git status`.
    for a in list {
        outln!("{}", ask_line(&a, now));
    }
    Ok(Outcome::Success)
}

/// One line for a pending ask (also used by `--watch`).
fn ask_line(a: &ApprovalInfo, now: jiff::Timestamp) -> String {
    let left = a
        .expires_at
        .parse::<jiff::Timestamp>()
        .map(|t| (t.as_second() - now.as_second()).max(0))
        .unwrap_or(0);
    format!(
        "{}  {}s left  {}  {}  {}  — {}",
        show(&a.id),
        left,
        show(&a.agent),
        show(&a.session),
        show(&a.command),
        show(&a.message)
    )
}

fn list_pending() -> Result<Vec<ApprovalInfo>> {
    let (_, response) = call("GET", "/v1/approvals", None)?;
    if response.status != 200 {
        bail!(
            "listing approvals failed ({}): {}",
            response.status,
            response.error_text()
        );
    }
    Ok(serde_json::from_value(
        response.json().map_err(anyhow::Error::msg)?["approvals"].take(),
    )?)
}

/// `rampart pending --watch`: asks as they come, each numbered once; a line of input
/// answers one (`a N [message]`, `d N [message]`; `a`/`d` alone when exactly one waits).
/// Plain lines in and out, no terminal modes: it works the same over ssh, in tmux or
/// with a pipe. The server is polled every half second; input is read on its own thread.
pub fn watch() -> Result<Outcome> {
    use std::collections::BTreeMap;
    use std::sync::mpsc;
    use std::time::Duration;

    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    outln!("Watching for asks. Answer with `a N [message]` or `d N [message]`; `q` quits.");
    // Number → id of the asks shown and still pending; ids → number.
    let mut shown: BTreeMap<u64, String> = BTreeMap::new();
    let mut next = 1u64;
    let mut stdin_open = true;
    loop {
        let pending = list_pending()?;
        let now = jiff::Timestamp::now();
        // Gone: resolved elsewhere (or timed out).
        shown.retain(|n, id| {
            let still = pending.iter().any(|a| &a.id == id);
            if !still {
                outln!("[{n}] {} is no longer pending", show(id));
            }
            still
        });
        for a in &pending {
            if !shown.values().any(|id| id == &a.id) {
                outln!("[{next}] {}", ask_line(a, now));
                shown.insert(next, a.id.clone());
                next += 1;
            }
        }
        let input = if stdin_open {
            match lines.recv_timeout(Duration::from_millis(500)) {
                Ok(line) => Some(line),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // No more input (a closed pipe): keep showing asks until interrupted.
                    stdin_open = false;
                    None
                }
            }
        } else {
            std::thread::sleep(Duration::from_millis(500));
            None
        };
        let Some(line) = input else { continue };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "q" {
            return Ok(Outcome::Success);
        }
        let mut chars = line.chars();
        let verb = chars.next();
        let rest = chars.as_str();
        // `a`, `a 2`, `a2 msg`, `a msg` — but never a word such as `approve` or `deny`.
        let plain = rest
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c.is_ascii_digit());
        let approved = match verb {
            Some('a') if plain => true,
            Some('d') if plain => false,
            _ => {
                outln!("? `a N [message]` approves ask N, `d N [message]` denies it, `q` quits");
                continue;
            }
        };
        let rest = rest.trim_start();
        let (number, message) = match rest.split_once(char::is_whitespace) {
            Some((n, m)) if n.parse::<u64>().is_ok() => (n.parse::<u64>().ok(), m.trim()),
            _ => match rest.parse::<u64>() {
                Ok(n) => (Some(n), ""),
                Err(_) => (None, rest),
            },
        };
        let id = match number {
            Some(n) => shown.get(&n).cloned(),
            None if shown.len() == 1 => shown.values().next().cloned(),
            None => None,
        };
        let Some(id) = id else {
            outln!("? no such pending ask (give its number: `a N`)");
            continue;
        };
        let message = (!message.is_empty()).then_some(message);
        if let Err(e) = resolve(&id, approved, message, false) {
            outln!("! {e:#}");
        }
    }
}

fn show(text: &str) -> String {
    rampart_server::printable_string(text.as_bytes())
}

/// Who resolved an ask and from where, for the audit trail and the waiting agent's
/// answer: "carol (rampart approve, ssh from 203.0.113.7, pts/3)". The user is `$USER`
/// (else `$LOGNAME`, else the uid); "from where" is the SSH client's address when there is
/// one and the terminal when stdin is one.
fn who(approved: bool) -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| format!("uid {}", uid().unwrap_or_else(|| "?".to_owned())));
    let mut from = vec![if approved {
        "rampart approve".to_owned()
    } else {
        "rampart deny".to_owned()
    }];
    if let Some(client) = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().next().map(str::to_owned))
    {
        from.push(format!("ssh from {client}"));
    }
    if let Some(tty) = std::fs::read_link("/proc/self/fd/0")
        .ok()
        .and_then(|p| p.to_str()?.strip_prefix("/dev/").map(str::to_owned))
        .filter(|t| t.starts_with("pts/") || t.starts_with("tty"))
    {
        from.push(tty);
    }
    format!("{user} ({})", from.join(", "))
}

/// The real uid, from `/proc/self/status` (the CLI has no libc binding of its own).
fn uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1).map(str::to_owned)
}

pub fn resolve(
    id: &str,
    approved: bool,
    message: Option<&str>,
    for_session: bool,
) -> Result<Outcome> {
    let mut body = serde_json::json!({
        "approved": approved,
        "message": message,
        "resolved_by": who(approved),
    });
    if for_session {
        body["scope"] = "session".into();
    }
    let (_, response) = call("POST", &format!("/v1/approvals/{id}/resolve"), Some(&body))?;
    match response.status {
        200 => {
            let info: ApprovalInfo =
                serde_json::from_value(response.json().map_err(anyhow::Error::msg)?)?;
            outln!(
                "{} {}: {}{}",
                if approved { "Approved" } else { "Denied" },
                show(&info.id),
                show(&info.command),
                if for_session {
                    " (and the same command for the rest of this session)"
                } else {
                    ""
                }
            );
            Ok(Outcome::Success)
        }
        404 => bail!("no approval with id {} (see `rampart pending`)", show(id)),
        410 => bail!("{}", show(&response.error_text())),
        status => bail!(
            "resolving {} failed ({status}): {}",
            show(id),
            show(&response.error_text())
        ),
    }
}
