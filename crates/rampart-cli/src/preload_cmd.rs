//! `rampart preload -- CMD`: run CMD (and everything it starts) with `librampart.so`
//! preloaded. CMD itself is checked here first, exactly as the library checks every
//! later exec, so `rampart preload -- rm -rf /` is refused before anything runs — and that
//! check is the probe of the configuration: it is made with exactly the URL, token, mode,
//! agent and session the library is handed, so a configuration the library could not use
//! (an unusable URL, a refused token, a server that answers with errors) stops the
//! launcher with one line instead of letting every later exec fail open.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use anyhow::{Result, bail};
use rampart_contract::values::{self, Mode};
use rampart_contract::verdict::{self, Outcome as Checked, Permit};
use rampart_server::client;
use rampart_server::wire::{Params, PreflightRequest};

use crate::Outcome;
use crate::agent_args::{self, GuardedCommand, Refused, Resolved, printable};

thread_local! {
    static CONNECTION: std::cell::RefCell<Option<client::KeepAlive>> =
        const { std::cell::RefCell::new(None) };
}

/// Exit status when Rampart refuses CMD itself (like a shell's "cannot execute").
pub const REFUSED: u8 = 126;

pub fn run(mut args: GuardedCommand) -> Result<Outcome> {
    agent_args::check_separator("preload", &args.command)?;
    // A program that cannot start is said as a shell says it (127) before anything is
    // asked: the audit trail would otherwise show an "allow" for a program that never ran.
    if let Some(program) = args.command.first()
        && let Err(err) = findable(program)
    {
        eprintln!(
            "rampart: cannot run {}: {err}",
            shown_command(std::slice::from_ref(program))
        );
        // As a shell: 126 found but not executable, 127 not found.
        return Ok(Outcome::Code(if err.raw_os_error() == Some(13) {
            REFUSED
        } else {
            NOT_FOUND
        }));
    }
    let protect = crate::protect_cmd::apply(&mut args.agent);
    let home = crate::home::dir()?;
    let library = agent_args::find_library(&home)?;
    let mut resolved = args.agent.resolve(&home)?;
    resolved.protect |= protect;
    agent_args::ensure_server(&args.agent, &mut resolved, &home)?;
    // What --protect must hide is asked of the server with the admin token.
    let admin = resolved.clone();
    // This process becomes CMD (exec below), or waits for it outside the namespaces under
    // --protect: either way the credential lives as long as the run.
    let credential = agent_args::scope_credential(&mut resolved, std::process::id())?;

    let asked = check(&resolved, &args.command);
    let shown = shown_command(&args.command);
    if let Some(code) = start_or_refuse(&resolved, &asked, &shown)? {
        return Ok(Outcome::Code(code));
    }

    let Some((program, rest)) = args.command.split_first() else {
        bail!("no command given: rampart preload -- CMD [ARGS...]");
    };
    if protect {
        let env = child_env(&resolved, &library);
        let outcome = crate::protect_cmd::run_preload(&home, &library, &admin, &args.command, env);
        agent_args::end_credential(&resolved, credential.as_deref());
        return outcome;
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    for (key, value) in child_env(&resolved, &library) {
        cmd.env(key, value);
    }
    let err = cmd.exec();
    bail!(
        "cannot run {}: {err}",
        printable(&program.to_string_lossy())
    )
}

/// Exit status for a CMD that does not exist (a shell's "command not found").
pub const NOT_FOUND: u8 = 127;

/// Whether `program` names a file the exec could start: a path that exists, or a name
/// found as an executable file on `$PATH` (the PATH CMD is started with).
fn findable(program: &OsStr) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let not_found = || std::io::Error::from_raw_os_error(2);
    if program.is_empty() {
        return Err(not_found());
    }
    if program.as_bytes().contains(&b'/') {
        return std::fs::metadata(program).map(|_| ());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    // As execvp: the first executable file wins; a file that is not executable makes the
    // answer "Permission denied" when nothing else is found.
    let mut denied = false;
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            std::path::PathBuf::from(".")
        } else {
            dir
        };
        if let Ok(m) = std::fs::metadata(dir.join(program))
            && m.is_file()
        {
            if m.permissions().mode() & 0o111 != 0 {
                return Ok(());
            }
            denied = true;
        }
    }
    Err(if denied {
        std::io::Error::from_raw_os_error(13)
    } else {
        not_found()
    })
}

/// CMD as words for messages, escaped for the terminal.
pub fn shown_command(command: &[OsString]) -> String {
    let words: Vec<String> = command
        .iter()
        .map(|w| quote(&w.to_string_lossy()))
        .collect();
    printable(&words.join(" "))
}

/// What the check of CMD (the probe) means for starting it: `Ok(None)` runs it (after a
/// `[WARN]` line when nobody answered and fail-open lets it run unchecked);
/// `Ok(Some(126))` after a policy denial's one line; `Err(Refused)` when the
/// configuration is unusable — whatever the mode, because a launcher that starts CMD
/// with it would guard (or, in monitor mode, audit) nothing.
pub fn start_or_refuse(resolved: &Resolved, asked: &Asked, shown: &str) -> Result<Option<u8>> {
    match (asked.permit, asked.outcome) {
        (Permit::Run, _) => Ok(None),
        (Permit::Refuse, Checked::Answer { .. }) => {
            eprintln!("rampart: [ERROR] Policy denied: {}", asked.why);
            Ok(Some(REFUSED))
        }
        (Permit::RunUnchecked, Checked::NoAnswer) => {
            eprintln!("{}", warn_line(resolved, &asked.why, shown));
            Ok(None)
        }
        _ => Err(Refused(configuration_problem(resolved, asked)).into()),
    }
}

/// How much of a command a `[WARN]` line shows.
const SHOWN_MAX: usize = 300;

/// The one loud line when programs run although nobody decided.
pub fn warn_line(resolved: &Resolved, why: &str, shown: &str) -> String {
    let by = if resolved.mode == Mode::Monitor {
        "monitor mode"
    } else {
        "fail-open"
    };
    let instead = if resolved.mode == Mode::Monitor {
        "start the server (rampart serve --background)"
    } else {
        "start the server (rampart serve --background) or use --fail-open=false to refuse instead"
    };
    // A command may be megabytes long; the line only has to say which one.
    let shown = match shown.char_indices().nth(SHOWN_MAX) {
        Some((cut, _)) => format!("{}…", shown.get(..cut).unwrap_or(shown)),
        None => shown.to_owned(),
    };
    format!("rampart: [WARN] {why}: {by} runs {shown} UNCHECKED and unaudited; {instead}")
}

/// Why the probe could not prove the configuration, and what to do, on one line.
pub fn configuration_problem(resolved: &Resolved, asked: &Asked) -> String {
    let url = printable(&resolved.url);
    match asked.outcome {
        Checked::NoAnswer => {
            let because = if resolved.protect {
                "RAMPART_PROTECT is set"
            } else {
                "fail-open is off"
            };
            let fix = if resolved.autostart {
                "start it (rampart serve --background) or check the URL"
            } else {
                "start it (rampart serve --background), or drop --no-autostart to let rampart start it"
            };
            format!("{} and {because}; {fix}", asked.why)
        }
        Checked::Status(401 | 403) if resolved.token.is_none() => format!(
            "{} (no token was found: --token, $RAMPART_TOKEN or $RAMPART_HOME/token); give the token of the server at {url}",
            asked.why
        ),
        Checked::Status(401 | 403) => format!(
            "{}; give the token of the server at {url} (--token or $RAMPART_TOKEN), or set RAMPART_HOME to that server's home",
            asked.why
        ),
        Checked::Status(500..=599) => format!(
            "{}; see `rampart serve status` and the server's log",
            asked.why
        ),
        // Too large for the server: a property of this command, not of the configuration.
        Checked::Unusable | Checked::Status(413) => asked.why.clone(),
        _ => format!(
            "{}; is a Rampart policy server listening at {url}?",
            asked.why
        ),
    }
}

/// The environment that configures the library in CMD and, re-injected by the library,
/// in everything below it. `RAMPART_PROTECT` is not set here: it passes through from our
/// environment unchanged.
pub fn child_env(resolved: &Resolved, library: &std::path::Path) -> Vec<(String, OsString)> {
    let mut preload = library.as_os_str().to_owned();
    if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        let already = existing
            .as_bytes()
            .split(|b| *b == b':' || *b == b' ')
            .any(|p| p == library.as_os_str().as_bytes());
        if already {
            preload = existing;
        } else {
            preload.push(":");
            preload.push(existing);
        }
    }
    let mut env = vec![
        ("LD_PRELOAD".to_owned(), preload),
        ("RAMPART_URL".to_owned(), resolved.url.clone().into()),
        ("RAMPART_MODE".to_owned(), resolved.mode.name().into()),
        (
            "RAMPART_FAIL_OPEN".to_owned(),
            if resolved.fail_open { "true" } else { "false" }.into(),
        ),
        ("RAMPART_AGENT".to_owned(), resolved.agent.clone().into()),
        (
            "RAMPART_SESSION".to_owned(),
            resolved.session.clone().into(),
        ),
        (
            "RAMPART_ASK_TIMEOUT".to_owned(),
            format!("{}ms", resolved.ask_timeout_ms).into(),
        ),
        (
            "RAMPART_DEBUG".to_owned(),
            if resolved.debug { "1" } else { "0" }.into(),
        ),
    ];
    if let Some(token) = &resolved.token {
        env.push(("RAMPART_TOKEN".to_owned(), token.clone().into()));
    }
    if resolved.protect {
        env.push(("RAMPART_PROTECT".to_owned(), "1".into()));
    }
    env
}

/// Quotes a word for the command string the way the library does: only when needed,
/// single quotes, glob characters left as typed.
pub fn quote(word: &str) -> String {
    // Same byte set as preload/src/sink.rs `shell_safe`, so both send the same string.
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b >= 0x80 || b"_-./:=@%+,*?[]^".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Asks the server about CMD, applying the contract (see [`ask`]).
pub fn check(resolved: &Resolved, command: &[OsString]) -> Asked {
    let argv: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let exe = argv.first().and_then(|p| which(p)).unwrap_or_default();
    let command = command_string(&argv, &exe);
    let pid = i64::from(std::process::id());
    // CMD's own held ask is announced like the library's (`wait_line`).
    let timer = (resolved.mode == Mode::Enforce && resolved.ask_timeout_ms > 0)
        .then(|| crate::wait_line::Timer::start(resolved, Some(pid), &command))
        .flatten();
    let asked = ask(
        resolved,
        &ExecCall {
            command: command.clone(),
            argv,
            exe,
            cwd: std::env::current_dir()
                .ok()
                .map(|d| d.to_string_lossy().into_owned()),
            pid: Some(pid),
            ppid: Some(i64::from(std::os::unix::process::parent_id())),
            via: "rampart-preload",
            unchecked: None,
        },
        None,
    );
    if let Some(timer) = timer {
        let allowed = match asked.outcome {
            Checked::Answer { allowed } => Some(allowed),
            _ => None,
        };
        timer.finish(allowed, &asked.why, &command);
    }
    asked
}

/// One exec to be checked: what the library sends about it (DESIGN.md §5, §6).
#[derive(Debug)]
pub struct ExecCall {
    /// `params.command`, usually [`command_string`].
    pub command: String,
    pub argv: Vec<String>,
    /// The resolved program path; empty when unknown.
    pub exe: String,
    pub cwd: Option<String>,
    pub pid: Option<i64>,
    pub ppid: Option<i64>,
    pub via: &'static str,
    /// Why the caller could not read this exec, when it could not (see
    /// `PreflightRequest::unchecked`): the server then records it without evaluating.
    pub unchecked: Option<String>,
}

/// The command string the library sends: argv quoted where needed, argv[0] replaced by
/// the program path when it is neither that path nor its basename.
pub fn command_string(argv: &[String], exe: &str) -> String {
    let mut words: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    if let Some(first) = words.first_mut()
        && !exe.is_empty()
        && argv
            .first()
            .is_some_and(|a0| *a0 != exe && !exe.ends_with(&format!("/{a0}")))
    {
        *first = quote(exe);
    }
    if words.is_empty() && !exe.is_empty() {
        words.push(quote(exe));
    }
    words.join(" ")
}

/// What one check came to.
#[derive(Debug, Clone)]
pub struct Asked {
    /// What happened, in the contract's terms.
    pub outcome: Checked,
    /// What that means for the program (`verdict::permit`).
    pub permit: Permit,
    /// For an answer: the server's message (or "decision X"). Otherwise why there is no
    /// decision, with where it was asked: "no policy server answered at URL (…)".
    /// Escaped for the terminal.
    pub why: String,
}

impl Asked {
    /// The library-style refusal text for `rampart: [ERROR] Policy denied: …`.
    pub fn refusal(&self, resolved: &Resolved) -> String {
        match self.outcome {
            Checked::NoAnswer if resolved.protect => {
                format!("{} and RAMPART_PROTECT is set", self.why)
            }
            Checked::NoAnswer => format!("{} and fail-open is off", self.why),
            _ => self.why.clone(),
        }
    }
}

/// Asks the server about one exec and decides by the contract's matrix
/// (`rampart_contract::verdict::permit`): only a well-formed allow runs in enforce mode;
/// fail-open (`RunUnchecked`) applies only when nobody answered; monitor never refuses;
/// disabled never asks. `ran_unchecked` (execs the caller let run unchecked since its
/// last report) travels with the request. Used by `rampart preload` for CMD and by
/// `rampart supervise` for every exec in the tree.
pub fn ask(resolved: &Resolved, call: &ExecCall, ran_unchecked: Option<u64>) -> Asked {
    let decided = |outcome: Checked, why: String| Asked {
        outcome,
        permit: verdict::permit(outcome, resolved.mode, resolved.fail_open, resolved.protect),
        why,
    };
    if resolved.mode == Mode::Disabled {
        return decided(Checked::Answer { allowed: true }, String::new());
    }
    let enforce = resolved.mode == Mode::Enforce;
    let wait_ms = resolved.ask_timeout_ms;
    let request = PreflightRequest {
        agent: Some(resolved.agent.clone()),
        session: Some(resolved.session.clone()),
        params: Params {
            command: Some(call.command.clone()),
            path: None,
        },
        enforce,
        argv: call.argv.clone(),
        exe: (!call.exe.is_empty()).then(|| call.exe.clone()),
        cwd: call.cwd.clone(),
        pid: call.pid,
        ppid: call.ppid,
        via: Some(call.via.to_owned()),
        wait_ms: (enforce && wait_ms > 0 && call.unchecked.is_none()).then_some(wait_ms),
        unchecked: call.unchecked.clone(),
        ran_unchecked: ran_unchecked.filter(|&n| n > 0),
    };
    let url = printable(&resolved.url);
    let body = match serde_json::to_value(&request) {
        Ok(body) => body,
        Err(e) => {
            let reason = Checked::Unusable.reason().unwrap_or_default();
            return decided(Checked::Unusable, format!("{reason} ({e})"));
        }
    };
    // A held ask may take `wait_ms`; past that plus the answer time, nobody answered.
    let timeout = Duration::from_millis(
        request
            .wait_ms
            .unwrap_or(0)
            .saturating_add(values::ANSWER_TIMEOUT_MS),
    );
    // One kept-alive connection per thread: the supervisor's workers ask for every exec
    // of a tree, and a fresh connection per exec costs a connect and an accept each.
    let answer = CONNECTION.with_borrow_mut(|kept| {
        let conn = match kept {
            Some(conn) if conn.endpoint() == &resolved.endpoint => conn,
            _ => kept.insert(
                client::KeepAlive::new(resolved.endpoint.clone())
                    .with_answer_limit(values::ANSWER_MAX_BYTES),
            ),
        };
        conn.request(
            "POST",
            "/v1/preflight/exec",
            resolved.token.as_deref(),
            Some(&body),
            timeout,
        )
    });
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            let outcome = client::outcome_of(&e);
            let reason = outcome.reason().unwrap_or_default();
            let detail = printable(&e.to_string());
            return decided(outcome, format!("{reason} at {url} ({detail})"));
        }
    };
    if response.status != 200 {
        let outcome = Checked::Status(response.status);
        let reason = outcome.reason().unwrap_or_default();
        let text: String = response.error_text().chars().take(200).collect();
        let detail = if text.is_empty() {
            String::new()
        } else {
            format!(": {}", printable(&text))
        };
        return decided(
            outcome,
            format!("{reason} (HTTP {}) at {url}{detail}", response.status),
        );
    }
    let value = response.json().ok();
    let allowed = value
        .as_ref()
        .and_then(|v| v.get("allowed"))
        .and_then(|a| a.as_bool());
    let Some(allowed) = allowed else {
        let reason = Checked::Malformed.reason().unwrap_or_default();
        return decided(
            Checked::Malformed,
            format!("{reason} at {url} (no boolean `allowed` in its JSON)"),
        );
    };
    let field = |name: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|m| m.as_str())
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
    };
    let mut why = match (field("message"), field("decision")) {
        (Some(message), _) => printable(&message),
        (None, Some(decision)) => format!("decision {}", printable(&decision)),
        (None, None) => "denied by policy".to_owned(),
    };
    // An ask the server was asked not to hold (ask timeout 0, CI): say why, as the library.
    if !allowed
        && enforce
        && request.wait_ms.is_none()
        && field("decision").as_deref() == Some("ask")
    {
        use std::os::unix::ffi::OsStrExt;
        let ci = std::env::var_os("CI");
        why.push_str(values::REFUSED_AT_ONCE);
        why.push_str(values::no_person(values::ci(
            ci.as_deref().map(|v| v.as_bytes()),
        )));
    }
    decided(Checked::Answer { allowed }, why)
}

/// The path exec would run for `program` (PATH search like execvp), if any.
fn which(program: &str) -> Option<String> {
    if program.contains('/') {
        return Some(program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting_matches_the_library() {
        assert_eq!(quote("rm"), "rm");
        assert_eq!(quote("/tmp/*"), "/tmp/*");
        assert_eq!(quote("hello world"), "'hello world'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
