//! `rampart audit tail|search|stats|verify`: read the trail straight from
//! `$RAMPART_HOME/audit` through the `rampart-audit` library (no server needed).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rampart_audit::{AuditEvent, Counts, Query};

use crate::{Outcome, home};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the newest events, oldest first; --follow keeps printing new ones
    Tail {
        /// How many of the newest events to print
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        n: usize,
        /// Keep printing new events as they are written (Ctrl-C ends)
        #[arg(short, long)]
        follow: bool,
        /// Include quiet events (allows of rules marked `quiet: true`, e.g. version
        /// manager shims), hidden by default
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Find events (newest first)
    Search(SearchArgs),
    /// Totals per agent: Total / Allowed / Denied / Logged / Asked
    Stats {
        /// Only events newer than this (24h, 7d, 30m) or since an RFC 3339 time
        #[arg(long)]
        since: Option<String>,
        /// Only this agent's events
        #[arg(long)]
        agent: Option<String>,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Recompute the hash chain; name the first broken line
    Verify {
        #[command(flatten)]
        dir: DirArg,
        /// Also check the local trail against an exported copy (JSON lines from an
        /// HTTP collector, or RFC 5424 lines from syslog): events rewritten, removed or
        /// truncated locally show up
        #[arg(long, value_name = "FILE")]
        against: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DirArg {
    /// Audit directory [default: $RAMPART_HOME/audit]
    #[arg(long)]
    audit_dir: Option<PathBuf>,
}

impl DirArg {
    fn resolve(&self) -> Result<PathBuf> {
        match &self.audit_dir {
            Some(dir) => Ok(dir.clone()),
            None => Ok(home::dir()?.join("audit")),
        }
    }
}

/// Every decision the trail holds: a mistyped one is a usage error (exit 2, listing these)
/// rather than a search that silently finds nothing.
const DECISIONS: [&str; 5] = ["allow", "deny", "ask", "log", "unchecked"];

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Text to find in the command or message (case-insensitive)
    text: Option<String>,
    /// Only this agent's events (exact name)
    #[arg(long)]
    agent: Option<String>,
    /// Only this session's events (exact id)
    #[arg(long)]
    session: Option<String>,
    /// allow, deny, ask, log, or unchecked (reports of execs that ran unchecked)
    #[arg(long, value_parser = DECISIONS)]
    decision: Option<String>,
    /// Only calls of this tool (exec for every program start)
    #[arg(long)]
    tool: Option<String>,
    /// Only events newer than this (24h, 7d, 30m) or since an RFC 3339 time
    #[arg(long)]
    since: Option<String>,
    /// At most this many events
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// One JSON object per line
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: DirArg,
}

fn since(value: Option<&str>) -> Result<Option<SystemTime>> {
    value
        .map(|v| rampart_audit::parse_since(v, SystemTime::now()).map_err(anyhow::Error::from))
        .transpose()
        .context("--since")
}

pub fn run(command: AuditCommand) -> Result<Outcome> {
    match command {
        AuditCommand::Tail {
            n,
            follow,
            all,
            dir,
        } => tail(n, follow, all, &dir.resolve()?),
        AuditCommand::Search(args) => search(&args),
        AuditCommand::Stats {
            since: s,
            agent,
            dir,
        } => stats(s.as_deref(), agent.as_deref(), &dir.resolve()?),
        AuditCommand::Verify { dir, against } => {
            let dir = dir.resolve()?;
            let chain = verify(&dir)?;
            match against {
                Some(file) => match verify_against(&dir, &file)? {
                    Outcome::Success => Ok(chain),
                    other => Ok(other),
                },
                None => Ok(chain),
            }
        }
    }
}

/// One event per line: time, decision, agent, session, command, then the policy's reason.
/// Every field comes from the trail (an agent chose its command, a tampered file could
/// hold anything), so each is shown through the one printable rule: control characters,
/// DEL, C1, bidi and zero-width characters escaped. An ESC sequence or a carriage return
/// in a command can then neither rewrite nor erase the lines a person reads.
pub fn format_event(event: &AuditEvent, colour: bool) -> String {
    let show = |text: &str| rampart_server::printable_string(text.as_bytes());
    let time = show(&event.ts.get(..19).unwrap_or(&event.ts).replace('T', " "));
    let decision = format!("{:<5}", show(&event.decision));
    let decision = if colour {
        let code = match event.decision.as_str() {
            "deny" => "31",
            "ask" => "33",
            "log" => "36",
            // A report of execs that ran unchecked: never green like an allow.
            "unchecked" => "35",
            _ => "32",
        };
        format!("\x1b[{code}m{decision}\x1b[0m")
    } else {
        decision
    };
    let mut line = format!(
        "{time}  {decision}  {}  {}  {}",
        show(&event.agent),
        show(&event.session),
        show(&event.command)
    );
    if !event.message.is_empty() {
        line.push_str("  — ");
        line.push_str(&show(&event.message));
    }
    if !event.policy.is_empty() {
        line.push_str(&format!(" [{}]", show(&event.policy)));
    }
    // The shell's exec of a system()/popen() command: part of that decision.
    if let Some(id) = &event.part_of {
        line.push_str(&format!(" (part of {})", show(id)));
    }
    // An ask's resolution, so `audit search --decision ask` says how each one ended.
    if let Some(a) = &event.approval {
        let how = if a.resolved_by == "timeout" {
            "timed out".to_owned()
        } else if a.approved {
            format!("approved by {}", show(&a.resolved_by))
        } else {
            format!("denied by {}", show(&a.resolved_by))
        };
        line.push_str(&format!(" (ask {}: {how})", show(&a.id)));
    } else if event.decision == "ask" {
        line.push_str(if event.mode.as_deref() == Some("monitor") {
            " (ask: monitor mode, ran without asking)"
        } else {
            " (ask: refused at once, nobody asked)"
        });
    }
    // Shown only with --all (or by search): say why it is usually hidden.
    if event.quiet {
        line.push_str(" (quiet)");
    }
    line
}

fn tail(n: usize, follow: bool, all: bool, dir: &std::path::Path) -> Result<Outcome> {
    // outln! ends the program quietly (exit 0) when the reader goes away (`| head`).
    let colour = std::io::stdout().is_terminal();
    // The newest n events shown: quiet ones do not take places unless --all.
    let query = Query {
        limit: Some(n),
        hide_quiet: !all,
        ..Query::default()
    };
    if !follow {
        let mut events = rampart_audit::read_events(dir, &query)?;
        events.reverse();
        for event in events {
            outln!("{}", format_event(&event, colour));
        }
        return Ok(Outcome::Success);
    }
    let mut follower = rampart_audit::Follower::new(dir)?;
    for event in follower.backlog_matching(query)? {
        outln!("{}", format_event(&event, colour));
    }
    loop {
        for event in follower.wait()?.into_iter().filter(|e| all || !e.quiet) {
            outln!("{}", format_event(&event, colour));
        }
        // Line-buffered already; a closed pipe ends the program in outln!.
        let _ = std::io::stdout().flush();
    }
}

fn search(args: &SearchArgs) -> Result<Outcome> {
    let query = Query {
        agent: args.agent.clone(),
        session: args.session.clone(),
        decision: args.decision.clone(),
        tool: args.tool.clone(),
        text: args.text.clone(),
        since: since(args.since.as_deref())?,
        before: None,
        limit: Some(args.limit),
        // A search is asked for: quiet events are found like any other.
        hide_quiet: false,
    };
    let events = rampart_audit::read_events(&args.dir.resolve()?, &query)?;
    let colour = !args.json && std::io::stdout().is_terminal();
    // Asks still waiting are not in the trail yet (an ask is recorded when it ends): the
    // running server lists them, newest first like the events below.
    let mut pending = 0usize;
    if args.decision.as_deref() == Some("ask") && !args.json {
        for line in pending_asks(args) {
            outln!("{line}");
            pending += 1;
        }
    }
    if events.is_empty() && pending == 0 {
        // Said on stderr under --json, so the output stays one JSON object per line.
        if args.json {
            eprintln!("rampart: no matching audit events");
        } else {
            outln!("No matching audit events.");
        }
        return Ok(Outcome::Success);
    }
    for event in &events {
        if args.json {
            outln!("{}", serde_json::to_string(event)?);
        } else {
            outln!("{}", format_event(event, colour));
        }
    }
    Ok(Outcome::Success)
}

/// The server's pending asks matching the search, as lines like `format_event`'s; none
/// when no server answers (the trail alone is then searched).
fn pending_asks(args: &SearchArgs) -> Vec<String> {
    let show = |text: &str| rampart_server::printable_string(text.as_bytes());
    let Ok((_, response)) = crate::serve_cmd::call("GET", "/v1/approvals", None) else {
        return Vec::new();
    };
    let Ok(mut value) = response.json() else {
        return Vec::new();
    };
    let list: Vec<rampart_server::wire::ApprovalInfo> =
        serde_json::from_value(value["approvals"].take()).unwrap_or_default();
    let now = jiff::Timestamp::now();
    let lower = |t: &str| t.to_ascii_lowercase();
    list.iter()
        .rev()
        .filter(|a| args.agent.as_ref().is_none_or(|x| x == &a.agent))
        .filter(|a| args.session.as_ref().is_none_or(|x| x == &a.session))
        .filter(|a| args.tool.as_ref().is_none_or(|x| x == &a.tool))
        .filter(|a| {
            args.text.as_ref().is_none_or(|t| {
                lower(&a.command).contains(&lower(t)) || lower(&a.message).contains(&lower(t))
            })
        })
        .take(args.limit)
        .map(|a| {
            let left = a
                .expires_at
                .parse::<jiff::Timestamp>()
                .map(|t| (t.as_second() - now.as_second()).max(0))
                .unwrap_or(0);
            let time = a
                .created_at
                .get(..19)
                .unwrap_or(&a.created_at)
                .replace('T', " ");
            let policy = a
                .matched_policies
                .first()
                .map(|p| format!(" [{}]", show(p)))
                .unwrap_or_default();
            format!(
                "{}  ask    {}  {}  {}  — {}{policy} (ask {}: pending, {left}s left)",
                show(&time),
                show(&a.agent),
                show(&a.session),
                show(&a.command),
                show(&a.message),
                show(&a.id),
            )
        })
        .collect()
}

/// `1247` → `1,247`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The seed page's block for one agent, and `Unchecked: N` (execs that ran without
/// being checked) when there were any.
pub fn stats_block(agent: &str, c: &Counts) -> String {
    let mut block = format!(
        "Agent: {agent}\n  Total: {}\n  Allowed: {}\n  Denied: {}\n  Logged: {}\n  Asked: {}\n",
        thousands(c.total),
        thousands(c.allowed),
        thousands(c.denied),
        thousands(c.logged),
        thousands(c.asked),
    );
    if c.unchecked > 0 {
        block.push_str(&format!("  Unchecked: {}\n", thousands(c.unchecked)));
    }
    block
}

fn stats(since_arg: Option<&str>, agent: Option<&str>, dir: &std::path::Path) -> Result<Outcome> {
    let stats = rampart_audit::stats(dir, since(since_arg)?, agent)?;
    if stats.agents.is_empty() {
        outln!(
            "No audit events{}.",
            if since_arg.is_some() {
                " in that period"
            } else {
                " yet"
            }
        );
        return Ok(Outcome::Success);
    }
    let blocks: Vec<String> = stats
        .agents
        .iter()
        .map(|(a, c)| stats_block(a, c))
        .collect();
    out!("{}", blocks.join("\n"));
    Ok(Outcome::Success)
}

fn verify(dir: &std::path::Path) -> Result<Outcome> {
    let report = rampart_audit::verify(dir)?;
    for repair in &report.repairs {
        outln!(
            "note: repaired at start-up {}: {}:{}: {}",
            repair.ts,
            dir.join(&repair.file).display(),
            repair.line,
            repair.what
        );
    }
    if let Some(torn) = &report.torn_tail {
        outln!(
            "note: {}:{}: incomplete last line ({} bytes, from an interrupted write) ignored; the server cuts it off when it next starts",
            torn.file.display(),
            torn.line,
            torn.bytes
        );
    }
    if report.ok {
        outln!(
            "ok: {} events in {} file(s), hash chain intact",
            thousands(report.events),
            report.files
        );
        return Ok(Outcome::Success);
    }
    for broken in &report.damage {
        outln!(
            "BROKEN: {}:{}: {}",
            broken.file.display(),
            broken.line,
            broken.reason
        );
    }
    let unlisted = report
        .damaged_lines
        .saturating_sub(report.damage.len() as u64);
    if unlisted > 0 {
        outln!("BROKEN: and {} more damaged line(s)", thousands(unlisted));
    }
    outln!(
        "{} damaged line(s); {} intact events in {} file(s)",
        thousands(report.damaged_lines),
        thousands(report.events),
        report.files
    );
    Ok(Outcome::Code(1))
}

/// `id` and `hash` of one exported event: a JSON line as written, or a syslog line whose
/// structured data carries the fields (` id="…"`, ` hash="…"`).
fn exported_event(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if let Some(json) = line.find('{').and_then(|i| line.get(i..))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(json)
    {
        return Some((v["id"].as_str()?.to_owned(), v["hash"].as_str()?.to_owned()));
    }
    let field = |name: &str| {
        let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
        let rest = line.get(start..)?;
        Some(rest.get(..rest.find('"')?)?.to_owned())
    };
    Some((field("id")?, field("hash")?))
}

/// Every exported event must be in the local trail with the same hash. Local events newer
/// than the exported copy are not judged (they may not have been exported yet).
fn verify_against(dir: &std::path::Path, file: &std::path::Path) -> Result<Outcome> {
    let exported = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut local = std::collections::HashMap::new();
    for path in rampart_audit::day_files(dir)? {
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        for line in text.split(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line)
                && let (Some(id), Some(hash)) = (v["id"].as_str(), v["hash"].as_str())
            {
                local.insert(id.to_owned(), hash.to_owned());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut problems = 0u64;
    for line in String::from_utf8_lossy(&exported).lines() {
        let Some((id, hash)) = exported_event(line) else {
            continue;
        };
        if !seen.insert(id.clone()) {
            continue; // delivered twice (at least once): one check is enough
        }
        let id_shown = rampart_server::printable_string(id.as_bytes());
        let problem = match local.get(&id) {
            None => Some(format!(
                "BROKEN: event {id_shown} is in the exported copy but not in the local trail (removed or truncated)"
            )),
            Some(h) if *h != hash => Some(format!(
                "BROKEN: event {id_shown} differs from the exported copy (rewritten locally)"
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            problems += 1;
            if problems <= 20 {
                outln!("{problem}");
            }
        }
    }
    if problems > 20 {
        outln!("BROKEN: and {} more", thousands(problems - 20));
    }
    if problems == 0 {
        outln!(
            "ok: {} exported event(s) in {} found unchanged in the local trail",
            thousands(seen.len() as u64),
            file.display()
        );
        return Ok(Outcome::Success);
    }
    outln!(
        "{} of {} exported event(s) missing or changed in the local trail",
        thousands(problems),
        thousands(seen.len() as u64)
    );
    Ok(Outcome::Code(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_events_are_read_from_json_and_syslog_lines() {
        let json = r#"{"id":"01A","ts":"t","prev_hash":"sha256:0","hash":"sha256:1"}"#;
        assert_eq!(
            exported_event(json),
            Some(("01A".into(), "sha256:1".into()))
        );
        let syslog = r#"<134>1 t h rampart - allow [rampart@32473 agent="a" hash="sha256:1" id="01A" prev_hash="sha256:0"] allow x"#;
        assert_eq!(
            exported_event(syslog),
            Some(("01A".into(), "sha256:1".into()))
        );
        assert_eq!(exported_event("noise"), None);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1247), "1,247");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn the_seed_stats_block() {
        let c = Counts {
            total: 1247,
            allowed: 1201,
            denied: 12,
            logged: 34,
            asked: 0,
            unchecked: 0,
        };
        assert_eq!(
            stats_block("preload", &c),
            "Agent: preload\n  Total: 1,247\n  Allowed: 1,201\n  Denied: 12\n  Logged: 34\n  Asked: 0\n"
        );
        let c = Counts {
            unchecked: 1234,
            ..c
        };
        assert_eq!(
            stats_block("preload", &c),
            "Agent: preload\n  Total: 1,247\n  Allowed: 1,201\n  Denied: 12\n  Logged: 34\n  Asked: 0\n  Unchecked: 1,234\n"
        );
    }
}
