//! `rampart test`, `rampart policy lint|show` and `rampart init`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rampart_policy::profiles::{self, Source};
use rampart_policy::{Action, PolicySet, Request, lint, load, place, shell};

use crate::{Outcome, home};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Tool name the call is made with
    #[arg(long, default_value = "exec")]
    tool: String,
    /// Agent name (the seed's policies match on `preload`, the preload library's default)
    #[arg(long, default_value = "preload")]
    agent: String,
    /// Session id
    #[arg(long, default_value = "")]
    session: String,
    /// Print one JSON object instead of text (with the paths each piece would change)
    #[arg(long)]
    json: bool,
    /// Evaluate as if run in this directory (default: the current directory)
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// The command line to evaluate, e.g. "rm -rf /tmp/*"
    command: String,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Policy files to check (default: every file of $RAMPART_HOME/policies)
    files: Vec<PathBuf>,
}

/// The policy in force for this `RAMPART_HOME`, with a description of where it came from.
fn effective() -> Result<(Arc<PolicySet>, String)> {
    let dir = home::policies_dir()?;
    let (set, source) = profiles::load_effective(&dir).context("loading policies")?;
    let from = match source {
        Source::Directory(dir) => dir.display().to_string(),
        Source::EmbeddedStandard => "embedded standard profile".to_owned(),
    };
    Ok((set, from))
}

/// The directory `rampart test` evaluates in: `--cwd` (relative to the current
/// directory), else the current directory; absolute and lexically normalised. It need
/// not exist: a command can be tried for a place it would run in.
fn test_cwd(arg: Option<&Path>) -> Result<String> {
    let here = || std::env::current_dir().context("reading the current directory");
    let dir = match arg {
        Some(dir) if dir.is_absolute() => dir.to_path_buf(),
        Some(dir) => here()?.join(dir),
        None => here()?,
    };
    let text = dir
        .to_str()
        .with_context(|| format!("--cwd {}: not valid UTF-8", dir.display()))?;
    place::normalize(text).with_context(|| format!("--cwd {text}: not an absolute directory"))
}

pub fn test(args: &TestArgs) -> Result<Outcome> {
    let (set, _) = effective()?;
    let cwd = test_cwd(args.cwd.as_deref())?;
    let user_home = std::env::var("HOME").ok().filter(|h| h.starts_with('/'));
    let req = Request {
        tool: &args.tool,
        agent: &args.agent,
        session: &args.session,
        command: &args.command,
        path: None,
        cwd: Some(&cwd),
        exe: None,
        home: user_home.as_deref(),
        aliases: &[],
    };
    let started = Instant::now();
    let normalized = shell::normalize_checked(&args.command);
    let decision = set.evaluate_normalized(&req, &normalized);
    let pieces = normalized.pieces;
    let elapsed = started.elapsed();

    let rule = decision.rule.as_ref().map(|o| o.to_string());
    if args.json {
        let placed = place::walk(&pieces, &place::Context::from(&req));
        let places: Vec<serde_json::Value> = pieces
            .iter()
            .zip(&placed)
            .filter(|(_, p)| p.targets.effect.is_some())
            .map(|(piece, p)| {
                serde_json::json!({
                    "piece": piece.text,
                    "cwd": p.cwd,
                    "effect": p.targets.effect,
                    "paths": p.targets.paths,
                })
            })
            .collect();
        let value = serde_json::json!({
            "cwd": cwd,
            "places": places,
            "command": args.command,
            "decision": decision.action.as_str(),
            "allowed": decision.allowed(),
            "message": decision.message,
            "matched_policies": decision.matched_policies,
            "rule": rule,
            "pieces": pieces.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(),
            "eval_duration_ns": u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        });
        outln!("{value}");
    } else {
        let policy = if decision.matched_policies.is_empty() {
            "(none: default_action)".to_owned()
        } else {
            decision.matched_policies.join(", ")
        };
        outln!("decision: {}", decision.action);
        outln!("policy:   {policy}");
        outln!("message:  {}", decision.message);
        if let Some(rule) = rule {
            outln!("rule:     {rule}");
        }
        outln!("time:     {}", format_duration(elapsed));
    }
    Ok(match decision.action {
        Action::Allow | Action::Log => Outcome::Success,
        Action::Deny => Outcome::Code(1),
        Action::Ask => Outcome::Code(3),
    })
}

fn format_duration(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{:.1} µs", ns as f64 / 1000.0)
    } else if ns < 10_000_000 {
        format!("{} µs", ns / 1000)
    } else {
        format!("{} ms", ns / 1_000_000)
    }
}

pub fn lint(args: &LintArgs) -> Result<Outcome> {
    let files: Vec<PathBuf> = if args.files.is_empty() {
        let dir = home::policies_dir()?;
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let yaml = matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                );
                if yaml && path.is_file() {
                    found.push(path);
                }
            }
        }
        found.sort();
        if found.is_empty() {
            outln!(
                "no policy files in {}; the embedded standard profile applies",
                dir.display()
            );
        }
        found
    } else {
        args.files.clone()
    };

    let mut errors = 0usize;
    let mut loaded = Vec::new();
    for file in &files {
        // Every error of every file: the loader goes on past what it can.
        match load::load_file_all(file) {
            Ok(policy_file) => loaded.push(policy_file),
            Err(errs) => {
                for err in &errs {
                    errors += 1;
                    outln!("{}", error_line(err));
                }
            }
        }
    }
    let set = if files.is_empty() {
        match profiles::load("standard") {
            Some(result) => Some(result?),
            None => None,
        }
    } else {
        match PolicySet::new(loaded) {
            Ok(set) => Some(set),
            Err(err) => {
                errors += 1;
                outln!("{}", error_line(&err));
                None
            }
        }
    };
    let mut warnings = 0usize;
    if let Some(set) = &set {
        for warning in lint::lint(set) {
            warnings += 1;
            outln!("{}: warning: {}", warning.origin, warning.message);
        }
        outln!(
            "{} file(s), {}: {errors} error(s), {warnings} warning(s)",
            set.files().len().max(files.len()),
            rampart_server::wire::policies_and_rules(set.policies().len(), set.rule_count())
        );
    } else {
        outln!(
            "{} file(s): {errors} error(s), {warnings} warning(s)",
            files.len()
        );
    }
    Ok(if errors > 0 {
        Outcome::Code(1)
    } else {
        Outcome::Success
    })
}

/// `file:line:col: error: message`, the form editors and CI annotate.
fn error_line(err: &rampart_policy::PolicyError) -> String {
    use rampart_policy::PolicyError;
    match err {
        PolicyError::Invalid {
            file,
            line,
            column,
            message,
            hint,
        } => format!("{}:{line}:{column}: error: {message}{hint}", file.display()),
        // Located at the second definition, the one that made it a duplicate.
        PolicyError::DuplicateName { second, .. } => format!("{second}: error: {err}"),
        other => format!("error: {other}"),
    }
}

pub fn show() -> Result<Outcome> {
    let (set, from) = effective()?;
    out!("{}", crate::show::render(&set, &from));
    Ok(Outcome::Success)
}

const CUSTOM_STARTER: &str = include_str!("../../../policies/custom.starter.yaml");

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The shipped profile to install (replaces another shipped profile in the policy
    /// directory); `rampart init --list` names them
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// List the shipped profiles and which one this home uses, then exit
    #[arg(long, conflicts_with = "profile")]
    list: bool,
}

/// One line per shipped profile for `init --list`; a unit test keeps it complete.
const PROFILE_SUMMARIES: &[(&str, &str)] = &[
    (
        "standard",
        "everyday development runs; destroying, credential reading and switching Rampart off are refused (the default)",
    ),
    (
        "paranoid",
        "only read-only developer commands run; everything else is refused",
    ),
    (
        "yolo",
        "nothing is blocked or waits; every command is recorded",
    ),
];

/// The shipped profiles whose file (`NAME.yaml`) is in `policies`.
fn installed_profiles(policies: &Path) -> Vec<&'static str> {
    profiles::PROFILES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| policies.join(format!("{name}.yaml")).exists())
        .collect()
}

pub fn init(args: &InitArgs) -> Result<Outcome> {
    let home = home::dir()?;
    let policies = home.join("policies");
    if args.list {
        let installed = installed_profiles(&policies);
        for (name, _) in profiles::PROFILES {
            let summary = PROFILE_SUMMARIES
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, s)| *s);
            let mark = if installed.contains(name) { '*' } else { ' ' };
            outln!("{mark} {name:<9} {summary}");
        }
        if installed.is_empty() {
            outln!(
                "(none installed in {}; with no policy file there the embedded standard profile applies)",
                policies.display()
            );
        } else {
            outln!("(* installed in {})", policies.display());
        }
        return Ok(Outcome::Success);
    }
    let chosen = args.profile.as_deref().unwrap_or("standard");
    let Some(text) = profiles::text(chosen) else {
        let names: Vec<&str> = profiles::PROFILES.iter().map(|(n, _)| *n).collect();
        anyhow::bail!(
            "no profile `{chosen}`; the shipped profiles are {} (see `rampart init --list`)",
            names.join(", ")
        );
    };
    home::create_private_dir(&home)?;
    home::create_private_dir(&policies)?;
    let installed = installed_profiles(&policies);
    if args.profile.is_some() {
        // Two shipped profiles side by side define the same policies twice and nothing
        // loads: the chosen one replaces the others.
        for other in installed.iter().filter(|n| **n != chosen) {
            replace_profile(&policies, other, chosen)?;
        }
        write_new(&policies.join(format!("{chosen}.yaml")), text)?;
    } else if let Some(first) = installed.first() {
        // Plain `init` keeps whichever profile is there rather than adding standard.
        outln!(
            "kept    {} (already exists)",
            policies.join(format!("{first}.yaml")).display()
        );
    } else {
        // Once any file exists in policies/, the embedded standard profile no longer
        // applies by itself, so init copies it next to the starter: the user keeps its
        // protection.
        write_new(&policies.join("standard.yaml"), text)?;
    }
    write_new(&policies.join("custom.yaml"), CUSTOM_STARTER)?;
    outln!(
        "Edit {} and check it with `rampart policy lint`.",
        policies.join("custom.yaml").display()
    );
    Ok(Outcome::Success)
}

/// Takes the shipped profile `old` out of `policies` for `new`: removed when it is the
/// shipped text, kept as `old.yaml.bak` (which the loader ignores) when it was edited.
fn replace_profile(policies: &Path, old: &str, new: &str) -> Result<()> {
    let path = policies.join(format!("{old}.yaml"));
    let current =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if Some(current.as_str()) == profiles::text(old) {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        outln!("removed {} (replaced by {new})", path.display());
    } else {
        let backup = policies.join(format!("{old}.yaml.bak"));
        std::fs::rename(&path, &backup)
            .with_context(|| format!("renaming {} to {}", path.display(), backup.display()))?;
        outln!(
            "moved   {} to {} (edited; replaced by {new})",
            path.display(),
            backup.display()
        );
    }
    Ok(())
}

/// Writes `text` to `path` unless the file exists; says which happened.
fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            outln!("created {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            outln!("kept    {} (already exists)", path.display());
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_has_a_summary() {
        let names: Vec<&str> = profiles::PROFILES.iter().map(|(n, _)| *n).collect();
        let summarized: Vec<&str> = PROFILE_SUMMARIES.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, summarized);
    }
}
