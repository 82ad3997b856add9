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

use clap::{Parser, Subcommand};

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
        id: String,
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
    /// Create $RAMPART_HOME with the standard profile and a commented custom.yaml starter
    Init,
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

/// How a command ended, beyond plain success: exit codes are part of the interface
/// (`rampart test`: 0 allow/log, 1 deny, 3 ask; 2 usage or input errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Code(u8),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Init => policy_cmd::init(),
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
