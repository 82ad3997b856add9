//! `rampart pending`, `rampart approve ID`, `rampart deny ID [--message M]`.

use anyhow::{Result, bail};
use rampart_server::wire::ApprovalInfo;

use crate::Outcome;
use crate::serve_cmd::call;

pub fn pending() -> Result<Outcome> {
    let (_, response) = call("GET", "/v1/approvals", None)?;
    if response.status != 200 {
        bail!(
            "listing approvals failed ({}): {}",
            response.status,
            response.error_text()
        );
    }
    let list: Vec<ApprovalInfo> =
        serde_json::from_value(response.json().map_err(anyhow::Error::msg)?["approvals"].take())?;
    if list.is_empty() {
        outln!("No pending approvals.");
        return Ok(Outcome::Success);
    }
    let now = jiff::Timestamp::now();
    for a in list {
        let left = a
            .expires_at
            .parse::<jiff::Timestamp>()
            .map(|t| (t.as_second() - now.as_second()).max(0))
            .unwrap_or(0);
        // The agent chose the command (and maybe its name): shown escaped, so an ESC
        // sequence or a carriage return cannot make an `rm -rf` look like `git status`.
        outln!(
            "{}  {}s left  {}  {}  {}  — {}",
            show(&a.id),
            left,
            show(&a.agent),
            show(&a.session),
            show(&a.command),
            show(&a.message)
        );
    }
    Ok(Outcome::Success)
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

pub fn resolve(id: &str, approved: bool, message: Option<&str>) -> Result<Outcome> {
    let body = serde_json::json!({
        "approved": approved,
        "message": message,
        "resolved_by": who(approved),
    });
    let (_, response) = call("POST", &format!("/v1/approvals/{id}/resolve"), Some(&body))?;
    match response.status {
        200 => {
            let info: ApprovalInfo =
                serde_json::from_value(response.json().map_err(anyhow::Error::msg)?)?;
            outln!(
                "{} {}: {}",
                if approved { "Approved" } else { "Denied" },
                show(&info.id),
                show(&info.command)
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
