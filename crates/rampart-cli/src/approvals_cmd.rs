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

fn who() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "someone".to_owned());
    format!("{user} (cli)")
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
        "resolved_by": who(),
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
