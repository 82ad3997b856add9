//! `rampart supervise -- CMD`: run CMD under the seccomp supervisor (DESIGN.md §7), so
//! every exec in its tree is checked by the policy server — static binaries, raw
//! syscalls, Go programs and children without `LD_PRELOAD` included. The kernel work is
//! `rampart-supervise`'s; this is the glue that asks the server exactly as the preload
//! library does (same request with `via: "seccomp"`, same failure rules, same output).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rampart_supervise::{Decider, ExecRequest, Verdict};

use crate::Outcome;
use crate::agent_args::{self, AgentArgs, GuardedCommand, Resolved};
use crate::preload_cmd::{self, ExecCall, quote};

pub fn run(mut args: GuardedCommand) -> Result<Outcome> {
    let protect = crate::protect_cmd::apply(&mut args.agent);
    let home = crate::home::dir()?;
    let mut resolved = args.agent.resolve(&home)?;
    // Before the supervisor forks or starts threads: a server started here daemonises
    // and must not become our (subreaped) child.
    agent_args::ensure_server(&args.agent, &mut resolved, &home)?;
    if args.agent.debug {
        eprintln!("rampart: [DEBUG] Supervisor started (seccomp user notification)");
        eprintln!("rampart: [DEBUG] URL: {}", resolved.url);
        eprintln!("rampart: [DEBUG] Mode: {}", args.agent.mode);
        eprintln!("rampart: [DEBUG] Fail-open: {}", args.agent.fail_open);
    }
    let decider = Arc::new(ServerDecider {
        args: args.agent.clone(),
        resolved,
        waiting: Arc::new(Waiting::default()),
    });
    let finished = if protect {
        let prepared = match crate::protect_cmd::prepare(&home, None, &decider.resolved) {
            Ok(prepared) => prepared.with_env(&[("RAMPART_PROTECT", "1")]),
            Err(e) => return crate::protect_cmd::failed(e),
        };
        let result = rampart_supervise::run_prepared(&args.command, decider, &|| prepared.enter());
        let program = args
            .command
            .first()
            .map(|c| c.to_string_lossy().into_owned());
        if let Some(e) = prepared.failure(&program.unwrap_or_default()) {
            return crate::protect_cmd::failed(e);
        }
        result
    } else {
        rampart_supervise::run(&args.command, decider)
    }
    .context("rampart supervise")?;
    if let Some(err) = &finished.exec_error
        && !finished.refused()
    {
        eprintln!(
            "rampart: cannot run {}: {err}",
            args.command
                .first()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
    }
    Ok(Outcome::Code(u8::try_from(finished.code).unwrap_or(255)))
}

struct ServerDecider {
    args: AgentArgs,
    resolved: Resolved,
    waiting: Arc<Waiting>,
}

impl ServerDecider {
    fn deny(&self, message: String) -> Verdict {
        if self.args.debug {
            eprintln!("rampart: [DEBUG] Decision: deny");
        }
        eprintln!("rampart: [ERROR] Policy denied: {message}");
        Verdict::Deny(message)
    }
}

impl Decider for ServerDecider {
    fn decide(&self, exec: &ExecRequest) -> Verdict {
        // An anonymous program (memfd, deleted file) has no name worth matching: its
        // argv[0] stands for it, and the audit's `exe` still shows what really ran.
        let anonymous = exec.exe.starts_with("/memfd:") || exec.exe.ends_with(" (deleted)");
        let named = if anonymous { "" } else { exec.exe.as_str() };
        let command = preload_cmd::command_string(&exec.argv, named);
        if self.args.debug {
            let mut shown = quote(&exec.exe);
            for arg in exec.argv.iter().skip(1) {
                shown.push(' ');
                shown.push_str(&quote(arg));
            }
            eprintln!("rampart: [DEBUG] Intercepted {}: {shown}", exec.syscall);
            eprintln!("rampart: [DEBUG] Policy check: POST /v1/preflight/exec");
        }
        let call = ExecCall {
            command: command.clone(),
            argv: exec.argv.clone(),
            exe: exec.exe.clone(),
            cwd: exec.cwd.clone(),
            pid: Some(i64::from(exec.pid)),
            ppid: exec.ppid.map(i64::from),
            via: "seccomp",
            unchecked: None,
        };
        let asks = self.args.mode == "enforce" && !self.args.ask_timeout.is_zero();
        if asks {
            // Started on first use, after the fork: the supervisor forks single-threaded.
            self.waiting
                .reporter
                .get_or_init(|| self.waiting.start_reporter());
        }
        let ticket = self.waiting.add(command);
        let verdict = preload_cmd::ask(&self.args, &self.resolved, &call);
        self.waiting.remove(ticket);
        match verdict {
            Ok(preload_cmd::Verdict::Run) => {
                if self.args.debug {
                    eprintln!("rampart: [DEBUG] Decision: allow");
                }
                Verdict::Allow
            }
            Ok(preload_cmd::Verdict::Refuse(message)) => self.deny(message),
            // Only encoding the request can fail here; an exec we could not ask about is
            // refused in enforce mode like any unreadable answer.
            Err(e) if self.args.mode == "enforce" => self.deny(format!("{e:#}")),
            Err(_) => Verdict::Allow,
        }
    }

    fn unchecked(&self, pid: u32, why: &str) -> Verdict {
        // Recorded in the audit trail (the server does not evaluate it); the verdict below
        // stands whatever the answer, so an unreachable server changes nothing here.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let call = ExecCall {
            command: format!("<unreadable exec by pid {pid}> {exe}")
                .trim_end()
                .to_owned(),
            argv: Vec::new(),
            exe,
            cwd: None,
            pid: Some(i64::from(pid)),
            ppid: None,
            via: "seccomp",
            unchecked: Some(why.to_owned()),
        };
        let _ = preload_cmd::ask(&self.args, &self.resolved, &call);
        match self.args.mode.as_str() {
            "enforce" => self.deny(format!("{why} (refused in enforce mode)")),
            "monitor" => {
                eprintln!("rampart: [WARN] {why} (allowed in monitor mode)");
                Verdict::Allow
            }
            _ => Verdict::Allow,
        }
    }
}

/// Execs whose answer is taking long: after a second each gets the library's one
/// `[WAIT]` line, so a person knows an `ask` is holding it.
#[derive(Default)]
struct Waiting {
    reporter: OnceLock<()>,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, (Instant, String, bool)>>,
}

impl Waiting {
    fn add(&self, command: String) -> u64 {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ticket, (Instant::now(), command, false));
        ticket
    }

    fn remove(&self, ticket: u64) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ticket);
    }

    fn start_reporter(self: &Arc<Self>) {
        let this = Arc::clone(self);

        // A failure to start it only costs the [WAIT] hint.
        let _ = std::thread::Builder::new()
            .name("rampart-wait".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(250));
                    let mut pending = this.pending.lock().unwrap_or_else(PoisonError::into_inner);
                    for (started, command, told) in pending.values_mut() {
                        if !*told && started.elapsed() >= Duration::from_secs(1) {
                            *told = true;
                            eprintln!(
                                "rampart: [WAIT] Waiting for approval of: {command} -- see 'rampart pending', then 'rampart approve <id>' or 'rampart deny <id>', or the dashboard"
                            );
                        }
                    }
                }
            });
    }
}
