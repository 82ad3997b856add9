//! The `rampart` binary: argument parsing and glue. Logic lives in the library crates.

/// `println!`/`print!` that end the program quietly when stdout is closed early
/// (`rampart audit search x | head -1`) instead of panicking, and with exit 1 and a
/// message on any other write error.
macro_rules! outln {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*)) };
}

pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("rampart: error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

mod agent_args;
mod approvals_cmd;
mod audit_cmd;
mod dashboard_cmd;
mod doctor_cmd;
mod duration;
mod home;
mod policy_cmd;
mod preload_cmd;
mod protect_cmd;
mod serve_cmd;
mod show;
mod supervise_cmd;
mod token_cmd;
mod wait_line;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "Guard between AI coding agents and the operating system",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the policy server (HTTP on 127.0.0.1:9090 and $RAMPART_HOME/rampart.sock)
    Serve(serve_cmd::ServeArgs),
    /// Run a command with every program it starts checked by the policy server
    Preload(agent_args::GuardedCommand),
    /// Run a command under the seccomp supervisor: every exec in its tree is checked,
    /// static binaries, raw syscalls and Go programs included (Linux x86_64)
    Supervise(agent_args::GuardedCommand),
    /// Evaluate a command against the policy in force, without running it
    Test(policy_cmd::TestArgs),
    /// Check or print policy files
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Read the audit trail
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// List asks waiting for a person
    Pending {
        /// Keep watching: show asks as they come and answer each with `a N [message]`
        /// or `d N [message]` (then Enter); `q` quits. Plain lines: works over ssh
        #[arg(long)]
        watch: bool,
    },
    /// Let a pending ask run
    Approve {
        /// The approval id (from `rampart pending` or the ask's message)
        id: String,
        /// A note recorded with the decision
        #[arg(long, short)]
        message: Option<String>,
        /// Also approve the same command text in the same agent and session from now on
        /// (until the server stops)
        #[arg(long)]
        for_session: bool,
    },
    /// Refuse a pending ask (the waiting command fails with EPERM)
    Deny {
        /// The approval id (from `rampart pending` or the ask's message)
        id: String,
        /// Why: recorded with the decision and shown to the waiting program
        #[arg(long, short)]
        message: Option<String>,
    },
    /// Show or rotate the admin token
    Token {
        #[command(subcommand)]
        command: token_cmd::TokenCommand,
    },
    /// Check the installation: server, token, policies, library, audit, socket
    Doctor,
    /// Create $RAMPART_HOME with a shipped profile (standard unless --profile says) and a
    /// commented custom.yaml starter
    Init(policy_cmd::InitArgs),
    /// Print (and try to open) the live dashboard's URL, logged in
    Dashboard,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check policy files for errors and likely mistakes (default: the policy directory)
    Lint(policy_cmd::LintArgs),
    /// Print the effective merged policy, in evaluation order
    Show,
}

/// One example (or two) per command, shown at the end of its `--help`; `rampart test`'s
/// exit codes with it. Keyed by the command's path; the unit test below keeps every
/// command in this table.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "",
        "Examples:\n  rampart serve --background && rampart preload -- python3 agent.py\n  rampart test \"rm -rf /tmp/x\"",
    ),
    (
        "serve",
        "Example:\n  rampart serve --background            # port 9090 and $RAMPART_HOME/rampart.sock, log in serve.log",
    ),
    (
        "serve stop",
        "Example:\n  rampart serve stop                    # the server `serve --background` started",
    ),
    (
        "serve status",
        "Exit status: 0 running, 1 not running.\n\nExample:\n  rampart serve status",
    ),
    (
        "serve install",
        "Example:\n  rampart serve install --dry-run       # print the systemd user unit, install nothing",
    ),
    ("serve uninstall", "Example:\n  rampart serve uninstall"),
    (
        "preload",
        "Example:\n  rampart preload --agent claude --fail-open=false -- python3 agent.py",
    ),
    (
        "supervise",
        "Example:\n  rampart supervise --agent codex -- ./agent-binary --task fix-tests",
    ),
    (
        "test",
        "Exit status: 0 allow or log, 1 deny, 3 ask, 2 usage or input error.\n\nExample:\n  rampart test --agent claude \"git push --force origin main\"",
    ),
    (
        "policy",
        "Example:\n  rampart policy lint && rampart serve --reload",
    ),
    (
        "policy lint",
        "Example:\n  rampart policy lint ~/.rampart/policies/custom.yaml",
    ),
    ("policy show", "Example:\n  rampart policy show | less"),
    ("audit", "Example:\n  rampart audit tail --follow"),
    (
        "audit tail",
        "Examples:\n  rampart audit tail -n 50\n  rampart audit tail --all --follow     # quiet allows (version manager shims) too",
    ),
    (
        "audit search",
        "Example:\n  rampart audit search --decision deny --since 24h curl",
    ),
    ("audit stats", "Example:\n  rampart audit stats --since 7d"),
    (
        "audit verify",
        "Exit status: 0 intact, 1 damaged lines found.\n\nExample:\n  rampart audit verify",
    ),
    ("pending", "Example:\n  rampart pending"),
    (
        "approve",
        "Example:\n  rampart approve 01JD3Q4M6V2Z8K5T7W9X0Y1A2B --message \"reviewed the diff\"",
    ),
    (
        "deny",
        "Example:\n  rampart deny 01JD3Q4M6V2Z8K5T7W9X0Y1A2B --message \"not on main\"",
    ),
    (
        "token",
        "Example:\n  export RAMPART_TOKEN=\"$(rampart token show)\"",
    ),
    ("token show", "Example:\n  rampart token show"),
    (
        "token rotate",
        "Example:\n  rampart token rotate                  # a running server switches to the new token",
    ),
    (
        "doctor",
        "Exit status: 0 every check passed, 1 a check failed.\n\nExample:\n  rampart doctor",
    ),
    (
        "init",
        "Examples:\n  RAMPART_HOME=/tmp/try rampart init\n  rampart init --profile paranoid       # replaces the profile in force, keeps custom.yaml",
    ),
    (
        "dashboard",
        "Example:\n  rampart dashboard                     # prints the URL, opens it when there is a desktop",
    ),
];

/// `cmd` and its subcommands with their `EXAMPLES` entry as the help's closing text.
fn with_examples(mut cmd: clap::Command, path: &str) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |sub| with_examples(sub, &sub_path));
    }
    match EXAMPLES.iter().find(|(p, _)| *p == path) {
        Some((_, text)) => cmd.after_help(*text),
        None => cmd,
    }
}

/// How a command ended, beyond plain success: exit codes are part of the interface
/// (`rampart test`: 0 allow/log, 1 deny, 3 ask; 2 usage or input errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Code(u8),
}

fn main() -> ExitCode {
    let matches = with_examples(Cli::command(), "").get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Serve(args) => serve_cmd::serve(args),
        Command::Preload(args) => preload_cmd::run(args),
        Command::Supervise(args) => supervise_cmd::run(args),
        Command::Test(args) => policy_cmd::test(&args),
        Command::Audit { command } => audit_cmd::run(command),
        Command::Pending { watch: false } => approvals_cmd::pending(),
        Command::Pending { watch: true } => approvals_cmd::watch(),
        Command::Approve {
            id,
            message,
            for_session,
        } => approvals_cmd::resolve(&id, true, message.as_deref(), for_session),
        Command::Deny { id, message } => {
            approvals_cmd::resolve(&id, false, message.as_deref(), false)
        }
        Command::Token { command } => token_cmd::run(command),
        Command::Policy {
            command: PolicyCommand::Lint(args),
        } => policy_cmd::lint(&args),
        Command::Policy {
            command: PolicyCommand::Show,
        } => policy_cmd::show(),
        Command::Doctor => doctor_cmd::run(),
        Command::Init(args) => policy_cmd::init(&args),
        Command::Dashboard => dashboard_cmd::run(),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Code(code)) => ExitCode::from(code),
        // `rampart preload|supervise` would hand CMD a configuration that guards nothing:
        // refused like CMD itself would be (126), with why and what to do.
        Err(err) if err.downcast_ref::<agent_args::Refused>().is_some() => {
            eprintln!("rampart: [ERROR] Not started: {}", one_line(&err));
            ExitCode::from(preload_cmd::REFUSED)
        }
        Err(err) if err.downcast_ref::<home::NotRunning>().is_some() => {
            eprintln!("rampart: {err}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("rampart: error: {}", one_line(&err));
            ExitCode::from(2)
        }
    }
}

/// `anyhow`'s context chain on one line: "reading policies: x.yaml:3:5: unknown key".
/// A cause whose text the message before it already ends with (errors that print their
/// source themselves) is not repeated.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for part in err.chain().map(|e| e.to_string()) {
        if line.ends_with(&part) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&part);
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `--help` documents every option and argument, and every command has an example
    /// (issue 16).
    #[test]
    fn every_command_has_an_example_and_every_option_a_description() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if !EXAMPLES.iter().any(|(p, _)| *p == path) {
                missing.push(format!("no example for `rampart {path}`"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("`rampart {path}`: {id} has no description"));
                }
            }
            for sub in cmd.get_subcommands() {
                let sub_path = if path.is_empty() {
                    sub.get_name().to_owned()
                } else {
                    format!("{path} {}", sub.get_name())
                };
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert_eq!(missing, Vec::<String>::new());
        // No example is left over for a command that no longer exists.
        let cmd = with_examples(Cli::command(), "");
        for (path, _) in EXAMPLES {
            let mut c = &cmd;
            for word in path.split_whitespace() {
                c = c.find_subcommand(word).unwrap();
            }
            assert!(c.get_after_help().is_some(), "{path}");
        }
    }
}
