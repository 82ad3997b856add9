//! `rampart supervise -- CMD`: run CMD under the seccomp supervisor (DESIGN.md §7), so
//! every exec in its tree is checked by the policy server — static binaries, raw
//! syscalls, Go programs and children without `LD_PRELOAD` included. The kernel work is
//! `rampart-supervise`'s; this is the glue that asks the server exactly as the preload
//! library does (same request with `via: "seccomp"`, same failure rules, same output).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rampart_contract::values::Mode;
use rampart_contract::verdict::{Outcome as Checked, Permit};
use rampart_supervise::{Decider, ExecRequest, Verdict};

use crate::Outcome;
use crate::agent_args::{self, GuardedCommand, Resolved, printable};
use crate::preload_cmd::{self, ExecCall, quote};

pub fn run(mut args: GuardedCommand) -> Result<Outcome> {
    agent_args::check_separator("supervise", &args.command)?;
    let protect = crate::protect_cmd::apply(&mut args.agent);
    let home = crate::home::dir()?;
    let mut resolved = args.agent.resolve(&home)?;
    resolved.protect |= protect;
    // Before the supervisor forks or starts threads: a server started here daemonises
    // and must not become our (subreaped) child.
    agent_args::ensure_server(&args.agent, &mut resolved, &home)?;
    // What --protect must hide is asked of the server with the admin token; the checks
    // are made with a credential bound to the supervisor, which outlives the tree. The
    // tree itself gets no token at all (rampart-supervise's launch drops RAMPART_TOKEN).
    let admin = resolved.clone();
    let credential = agent_args::scope_credential(&mut resolved, std::process::id())?;
    let scoped = resolved.clone();
    if resolved.debug {
        eprintln!("rampart: [DEBUG] Supervisor started (seccomp user notification)");
        eprintln!("rampart: [DEBUG] URL: {}", printable(&resolved.url));
        eprintln!("rampart: [DEBUG] Mode: {}", resolved.mode.name());
        eprintln!("rampart: [DEBUG] Fail-open: {}", resolved.fail_open);
    }
    let decider = Arc::new(ServerDecider {
        resolved,
        waiting: Arc::new(Waiting::default()),
        first: AtomicBool::new(true),
        warned: AtomicBool::new(false),
        unreported: AtomicU64::new(0),
    });
    let finished = if protect {
        let prepared = match crate::protect_cmd::prepare(&home, None, &admin) {
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
    .context("rampart supervise");
    agent_args::end_credential(&scoped, credential.as_deref());
    let finished = finished?;
    if let Some(err) = &finished.exec_error
        && !finished.refused()
    {
        eprintln!(
            "rampart: cannot run {}: {err}",
            preload_cmd::shown_command(args.command.get(..1).unwrap_or_default())
        );
    }
    Ok(Outcome::Code(u8::try_from(finished.code).unwrap_or(255)))
}

struct ServerDecider {
    resolved: Resolved,
    waiting: Arc<Waiting>,
    /// CMD's own exec is the first one decided: it is the probe of the configuration,
    /// and a configuration problem there is said as the launcher says it.
    first: AtomicBool,
    /// The one `[WARN]` line per run when an exec runs unchecked has been printed.
    warned: AtomicBool,
    /// Execs let run unchecked and not yet reported to the server (`ran_unchecked`).
    unreported: AtomicU64,
}

impl ServerDecider {
    fn deny(&self, message: &str) -> Verdict {
        if self.resolved.debug {
            eprintln!("rampart: [DEBUG] Decision: deny");
        }
        eprintln!("rampart: [ERROR] Policy denied: {message}");
        Verdict::Deny(message.to_owned())
    }

    /// Asks, carrying the count of unchecked execs; the count is cleared only when a
    /// decision came back (the server then has it), else kept for the next request.
    /// Taken with `swap` so that concurrent workers never report the same execs twice.
    fn ask(&self, call: &ExecCall) -> preload_cmd::Asked {
        let carried = self.unreported.swap(0, Ordering::AcqRel);
        let asked = preload_cmd::ask(&self.resolved, call, Some(carried));
        if carried > 0 && !matches!(asked.outcome, Checked::Answer { .. }) {
            self.unreported.fetch_add(carried, Ordering::AcqRel);
        }
        asked
    }

    /// An exec runs although nobody decided: counted, and said once per run.
    fn run_unchecked(&self, asked: &preload_cmd::Asked, shown: &str) -> Verdict {
        self.unreported.fetch_add(1, Ordering::AcqRel);
        if self.resolved.debug {
            eprintln!(
                "rampart: [DEBUG] Decision: allow (unchecked: {})",
                asked.why
            );
        }
        if !self.warned.swap(true, Ordering::AcqRel) {
            eprintln!(
                "{}; later unchecked execs are counted and reported to the server when it answers",
                preload_cmd::warn_line(&self.resolved, &asked.why, shown)
            );
        }
        Verdict::Allow
    }
}

impl Decider for ServerDecider {
    fn decide(&self, exec: &ExecRequest) -> Verdict {
        let first = self.first.swap(false, Ordering::AcqRel);
        // An anonymous program (memfd, deleted file) has no name worth matching: its
        // argv[0] stands for it, and the audit's `exe` still shows what really ran.
        let anonymous = exec.exe.starts_with("/memfd:") || exec.exe.ends_with(" (deleted)");
        let named = if anonymous { "" } else { exec.exe.as_str() };
        let command = preload_cmd::command_string(&exec.argv, named);
        let shown = printable(&command);
        if self.resolved.debug {
            let mut intercepted = quote(&exec.exe);
            for arg in exec.argv.iter().skip(1) {
                intercepted.push(' ');
                intercepted.push_str(&quote(arg));
            }
            eprintln!(
                "rampart: [DEBUG] Intercepted {}: {}",
                exec.syscall,
                printable(&intercepted)
            );
            eprintln!("rampart: [DEBUG] Policy check: POST /v1/preflight/exec");
        }
        let call = ExecCall {
            command,
            argv: exec.argv.clone(),
            exe: exec.exe.clone(),
            cwd: exec.cwd.clone(),
            pid: Some(i64::from(exec.pid)),
            ppid: exec.ppid.map(i64::from),
            via: "seccomp",
            unchecked: None,
        };
        let asks = self.resolved.mode == Mode::Enforce && self.resolved.ask_timeout_ms > 0;
        if asks {
            // Started on first use, after the fork: the supervisor forks single-threaded.
            self.waiting
                .reporter
                .get_or_init(|| self.waiting.start_reporter(&self.resolved));
        }
        let ticket = self.waiting.add(call.command.clone(), exec.pid);
        let asked = self.ask(&call);
        self.waiting.remove(ticket, &asked);
        // CMD's own exec proves the configuration, as under `rampart preload`: anything
        // but an answer, or fail-open's "nobody answered", stops the run with one line.
        let unusable = !matches!(
            (asked.permit, asked.outcome),
            (Permit::Run, _)
                | (_, Checked::Answer { .. })
                | (Permit::RunUnchecked, Checked::NoAnswer)
        );
        if first && unusable {
            let line = preload_cmd::configuration_problem(&self.resolved, &asked);
            eprintln!("rampart: [ERROR] Not started: {line}");
            return Verdict::Deny(line);
        }
        match asked.permit {
            Permit::Run => {
                if self.resolved.debug {
                    eprintln!("rampart: [DEBUG] Decision: allow");
                }
                Verdict::Allow
            }
            Permit::Refuse => self.deny(&asked.refusal(&self.resolved)),
            Permit::RunUnchecked => self.run_unchecked(&asked, &shown),
        }
    }

    fn unchecked(&self, pid: u32, why: &str) -> Verdict {
        self.first.store(false, Ordering::Release);
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
        let _ = self.ask(&call);
        let why = printable(why);
        match self.resolved.mode {
            Mode::Enforce => self.deny(&format!("{why} (refused in enforce mode)")),
            Mode::Monitor => {
                eprintln!("rampart: [WARN] {why} (allowed in monitor mode)");
                Verdict::Allow
            }
            Mode::Disabled => Verdict::Allow,
        }
    }
}

/// Execs whose answer is taking long: after a second each gets the library's one
/// `[WAIT]` line, so a person knows an `ask` is holding it.
#[derive(Default)]
struct Waiting {
    reporter: OnceLock<()>,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, (Instant, String, u32, bool)>>,
    /// Waits announced (on the terminal, when there is one): their resolution line is due.
    told: Mutex<HashMap<u64, crate::wait_line::Told>>,
}

impl Waiting {
    fn add(&self, command: String, pid: u32) -> u64 {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ticket, (Instant::now(), command, pid, false));
        ticket
    }

    fn remove(&self, ticket: u64, asked: &preload_cmd::Asked) {
        let entry = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ticket);
        let told = self
            .told
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ticket);
        if let (Some((_, command, _, _)), Some(told)) = (entry, told) {
            let allowed = match asked.outcome {
                Checked::Answer { allowed } => Some(allowed),
                _ => None,
            };
            told.resolved(allowed, &asked.why, &command);
        }
    }

    fn start_reporter(self: &Arc<Self>, resolved: &Resolved) {
        let this = Arc::clone(self);
        let resolved = resolved.clone();

        // A failure to start it only costs the [WAIT] hint.
        let _ = std::thread::Builder::new()
            .name("rampart-wait".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(250));
                    let due: Vec<(u64, String, u32)> = {
                        let mut pending =
                            this.pending.lock().unwrap_or_else(PoisonError::into_inner);
                        pending
                            .iter_mut()
                            .filter(|(_, (started, _, _, told))| {
                                !*told && started.elapsed() >= Duration::from_secs(1)
                            })
                            .map(|(ticket, (_, command, pid, told))| {
                                *told = true;
                                (*ticket, command.clone(), *pid)
                            })
                            .collect()
                    };
                    // Outside the lock: the lookup is a request to the server.
                    for (ticket, command, pid) in due {
                        let told =
                            crate::wait_line::announce(&resolved, Some(i64::from(pid)), &command);
                        // Answered meanwhile: its resolution line is lost, nothing else.
                        // Checked and stored under the pending lock, so `remove` either
                        // finds it or it is never stored.
                        let pending = this.pending.lock().unwrap_or_else(PoisonError::into_inner);
                        if pending.contains_key(&ticket) {
                            this.told
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .insert(ticket, told);
                        }
                    }
                }
            });
    }
}
