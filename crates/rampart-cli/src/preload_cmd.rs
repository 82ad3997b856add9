//! `rampart preload -- CMD`: run CMD (and everything it starts) with `librampart.so`
//! preloaded. CMD itself is checked here first, exactly as the library checks every
//! later exec, so `rampart preload -- rm -rf /` is refused before anything runs.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rampart_server::client;
use rampart_server::wire::{Params, PreflightRequest};

use crate::Outcome;
use crate::agent_args::{self, AgentArgs, GuardedCommand, Resolved};

thread_local! {
    static CONNECTION: std::cell::RefCell<Option<client::KeepAlive>> =
        const { std::cell::RefCell::new(None) };
}

/// Exit status when Rampart refuses CMD itself (like a shell's "cannot execute").
pub const REFUSED: u8 = 126;

pub fn run(mut args: GuardedCommand) -> Result<Outcome> {
    let protect = crate::protect_cmd::apply(&mut args.agent);
    let home = crate::home::dir()?;
    let library = agent_args::find_library(&home)?;
    let mut resolved = args.agent.resolve(&home)?;
    agent_args::ensure_server(&args.agent, &mut resolved, &home)?;

    if let Verdict::Refuse(message) = check(&args.agent, &resolved, &args.command)? {
        eprintln!("rampart: [ERROR] Policy denied: {message}");
        return Ok(Outcome::Code(REFUSED));
    }

    let Some((program, rest)) = args.command.split_first() else {
        bail!("no command given: rampart preload -- CMD [ARGS...]");
    };
    if protect {
        let env = child_env(&args.agent, &resolved, &library);
        return crate::protect_cmd::run_preload(&home, &library, &resolved, &args.command, env);
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    for (key, value) in child_env(&args.agent, &resolved, &library) {
        cmd.env(key, value);
    }
    let err = cmd.exec();
    bail!("cannot run {}: {err}", program.to_string_lossy())
}

/// The environment that configures the library in CMD and, re-injected by the library,
/// in everything below it.
pub fn child_env(
    args: &AgentArgs,
    resolved: &Resolved,
    library: &std::path::Path,
) -> Vec<(String, OsString)> {
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
        ("RAMPART_MODE".to_owned(), args.mode.clone().into()),
        (
            "RAMPART_FAIL_OPEN".to_owned(),
            if args.fail_open { "true" } else { "false" }.into(),
        ),
        ("RAMPART_AGENT".to_owned(), args.agent.clone().into()),
        (
            "RAMPART_SESSION".to_owned(),
            resolved.session.clone().into(),
        ),
        (
            "RAMPART_ASK_TIMEOUT".to_owned(),
            format!("{}ms", args.ask_timeout.as_millis()).into(),
        ),
        (
            "RAMPART_DEBUG".to_owned(),
            if args.debug { "1" } else { "0" }.into(),
        ),
    ];
    if let Some(token) = &resolved.token {
        env.push(("RAMPART_TOKEN".to_owned(), token.clone().into()));
    }
    env
}

pub enum Verdict {
    Run,
    Refuse(String),
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

/// Asks the server about CMD, applying the library's failure rules (see [`ask`]).
pub fn check(args: &AgentArgs, resolved: &Resolved, command: &[OsString]) -> Result<Verdict> {
    let argv: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let exe = argv.first().and_then(|p| which(p)).unwrap_or_default();
    ask(
        args,
        resolved,
        &ExecCall {
            command: command_string(&argv, &exe),
            argv,
            exe,
            cwd: std::env::current_dir()
                .ok()
                .map(|d| d.to_string_lossy().into_owned()),
            pid: Some(i64::from(std::process::id())),
            ppid: Some(i64::from(std::os::unix::process::parent_id())),
            via: "rampart-preload",
            unchecked: None,
        },
    )
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

/// Asks the server about one exec with the library's failure rules (DESIGN.md §6):
/// unreachable, timeouts and 5xx follow fail-open; 401/403 and unreadable answers refuse
/// in enforce mode; monitor never refuses; disabled never asks. Used by `rampart preload`
/// for CMD and by `rampart supervise` for every exec in the tree.
pub fn ask(args: &AgentArgs, resolved: &Resolved, call: &ExecCall) -> Result<Verdict> {
    if args.mode == "disabled" {
        return Ok(Verdict::Run);
    }
    let enforce = args.mode == "enforce";
    let wait_ms = u64::try_from(args.ask_timeout.as_millis()).unwrap_or(u64::MAX);
    let request = PreflightRequest {
        agent: Some(args.agent.clone()),
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
    };
    let body = serde_json::to_value(&request).context("encoding the preflight request")?;
    let timeout = Duration::from_millis(wait_ms.saturating_add(2000));
    // One kept-alive connection per thread: the supervisor's workers ask for every exec
    // of a tree, and a fresh connection per exec costs a connect and an accept each.
    let answer = CONNECTION.with_borrow_mut(|kept| {
        let conn = match kept {
            Some(conn) if conn.endpoint() == &resolved.endpoint => conn,
            _ => kept.insert(client::KeepAlive::new(resolved.endpoint.clone())),
        };
        conn.request(
            "POST",
            "/v1/preflight/exec",
            resolved.token.as_deref(),
            Some(&body),
            timeout,
        )
    });
    let fail = |why: String| -> Verdict {
        if !enforce || args.fail_open {
            Verdict::Run
        } else {
            Verdict::Refuse(format!("{why} and fail-open is off"))
        }
    };
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            return Ok(fail(format!(
                "policy server unreachable at {} ({e})",
                resolved.url
            )));
        }
    };
    if response.status >= 500 {
        return Ok(fail(format!("policy server error {}", response.status)));
    }
    if !enforce {
        return Ok(Verdict::Run);
    }
    if response.status != 200 {
        return Ok(Verdict::Refuse(format!(
            "policy server refused the request ({}): {}",
            response.status,
            response.error_text()
        )));
    }
    let Ok(value) = response.json() else {
        return Ok(Verdict::Refuse(
            "unreadable answer from the policy server".to_owned(),
        ));
    };
    match value.get("allowed").and_then(|a| a.as_bool()) {
        Some(true) => Ok(Verdict::Run),
        Some(false) => Ok(Verdict::Refuse(
            value
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("denied by policy")
                .to_owned(),
        )),
        None => Ok(Verdict::Refuse(
            "unreadable answer from the policy server".to_owned(),
        )),
    }
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
