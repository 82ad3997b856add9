//! `rampart doctor`: is everything in place? Each failed check names the command that
//! fixes it, and the honest limits of the preload library are said out loud.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use rampart_policy::profiles::{self, Source};
use rampart_server::client;

use crate::{Outcome, agent_args, home};

struct Report {
    problems: usize,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl AsRef<str>) {
        outln!("  ok    {what:<9} {}", detail.as_ref());
    }

    fn fail(&mut self, what: &str, detail: impl AsRef<str>, fix: impl AsRef<str>) {
        self.problems += 1;
        outln!("  FAIL  {what:<9} {}", detail.as_ref());
        outln!("        {:<9} fix: {}", "", fix.as_ref());
    }
}

fn audit_result(r: &mut Report, audit: &Path, writable: std::io::Result<()>) {
    match writable {
        Ok(()) => r.ok("audit", format!("{} is writable", audit.display())),
        Err(e) => r.fail(
            "audit",
            format!("{} is not writable: {e}", audit.display()),
            format!("chown -R $USER {0} && chmod 700 {0}", audit.display()),
        ),
    }
}

/// "has mode 0777; other users can write in it (…)" for a doctor line.
fn mode_and_why(e: &rampart_server::token::NotPrivate) -> String {
    format!("has mode {:04o}; {}", e.mode, e.why)
}

fn mode(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

/// `rampart preload`'s flags at their defaults (`RAMPART_URL`, `RAMPART_TOKEN` and the
/// home's token file still apply, as they do there).
#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    agent: agent_args::AgentArgs,
}

/// The launcher's probe: the check `rampart preload -- true` would make before running
/// `true`, with the URL, token and mode it would hand the library. It is a real check,
/// audited (`via: "rampart-doctor"`).
fn probe(r: &mut Report, home: &Path) {
    use clap::Parser;
    use rampart_contract::verdict::{Outcome as Checked, Permit};
    let resolved = Defaults::try_parse_from(["rampart"])
        .map_err(anyhow::Error::from)
        .and_then(|d| d.agent.resolve(home));
    let mut resolved = match resolved {
        Ok(resolved) => resolved,
        Err(e) => {
            return r.fail(
                "probe",
                format!("`rampart preload` would not start: {e}"),
                "export RAMPART_URL=http://127.0.0.1:PORT (or unix:/absolute/path/rampart.sock), or unset it",
            );
        }
    };
    // An `ask` rule answers at once instead of holding doctor for a person.
    resolved.ask_timeout_ms = 0;
    let url = agent_args::printable(&resolved.url);
    let call = crate::preload_cmd::ExecCall {
        command: "true".to_owned(),
        argv: vec!["true".to_owned()],
        exe: String::new(),
        cwd: None,
        pid: Some(i64::from(std::process::id())),
        ppid: None,
        via: "rampart-doctor",
        unchecked: None,
    };
    let asked = crate::preload_cmd::ask(&resolved, &call, None);
    match (asked.outcome, asked.permit) {
        (Checked::Answer { allowed }, _) => r.ok(
            "probe",
            format!(
                "`rampart preload` checks with {url}: `true` {} ({})",
                if allowed { "allowed" } else { "refused" },
                asked.why
            ),
        ),
        (Checked::NoAnswer, Permit::RunUnchecked) => r.fail(
            "probe",
            format!(
                "{}: `rampart preload` would start a server there, or with --no-autostart run programs UNCHECKED (fail-open)",
                asked.why
            ),
            "rampart serve --background   (or point RAMPART_URL / --port at the running server)",
        ),
        _ => r.fail(
            "probe",
            format!(
                "`rampart preload` would refuse to start: {}",
                crate::preload_cmd::configuration_problem(&resolved, &asked)
            ),
            "see the line above",
        ),
    }
}

/// The server at `endpoint` answers, and accepts the home's token.
fn server_checks(r: &mut Report, endpoint: &client::Endpoint, token: Option<&str>) {
    if client::healthy(endpoint) {
        r.ok("server", format!("answers at {}", endpoint.url()));
        let status = client::request(
            endpoint,
            "GET",
            "/v1/status",
            token,
            None,
            Duration::from_secs(5),
        );
        match status {
            Ok(resp) if resp.status == 200 => {
                let v = resp.json().unwrap_or_default();
                r.ok(
                    "auth",
                    format!(
                        "token accepted; mode {}, {} pending approval(s)",
                        v["mode"].as_str().unwrap_or("?"),
                        v["pending_approvals"]
                    ),
                );
            }
            Ok(resp) => r.fail(
                "auth",
                format!("the server refused the token ({})", resp.status),
                "rampart serve stop && rampart serve --background (it reads the token at start)",
            ),
            Err(e) => r.fail(
                "auth",
                format!("status request failed: {e}"),
                "rampart serve status",
            ),
        }
    } else {
        r.fail(
            "server",
            format!("nothing answers at {}", endpoint.url()),
            "rampart serve --background   (or: rampart serve install)",
        );
    }
}

pub fn run() -> Result<Outcome> {
    let home = home::dir()?;
    let mut r = Report { problems: 0 };
    outln!("rampart doctor ({})", home.display());

    match (mode(&home), rampart_server::token::check_home(&home)) {
        (_, Err(unsafe_home)) => r.fail(
            "home",
            format!(
                "{} {}",
                unsafe_home.path.display(),
                mode_and_why(&unsafe_home)
            ),
            unsafe_home.fix,
        ),
        (Some(0o700), Ok(())) => r.ok("home", format!("{} (mode 0700)", home.display())),
        (Some(m), Ok(())) => r.fail(
            "home",
            format!(
                "{} has mode {m:04o}; others can read the audit trail",
                home.display()
            ),
            format!("chmod 700 {}", home.display()),
        ),
        (None, Ok(())) => r.fail(
            "home",
            format!("{} does not exist", home.display()),
            "rampart init && rampart serve --background",
        ),
    }

    match profiles::load_effective(&home.join("policies")) {
        Ok((set, source)) => {
            let from = match source {
                Source::Directory(dir) => dir.display().to_string(),
                Source::EmbeddedStandard => {
                    "the embedded standard profile (no policy files)".to_owned()
                }
            };
            r.ok(
                "policies",
                format!(
                    "{} from {from}",
                    rampart_server::wire::policies_and_rules(
                        set.policies().len(),
                        set.rule_count()
                    )
                ),
            );
        }
        Err(e) => r.fail(
            "policies",
            e.to_string(),
            "rampart policy lint (then fix the file it names)",
        ),
    }

    let token_path = rampart_server::token::path(&home);
    let token = rampart_server::token::read(&home).ok();
    let token_private = rampart_server::token::check_file(&home);
    match (&token, mode(&token_path), token_private) {
        (Some(_), Some(_), Err(unsafe_token)) => r.fail(
            "token",
            format!(
                "{} {}",
                unsafe_token.path.display(),
                mode_and_why(&unsafe_token)
            ),
            unsafe_token.fix,
        ),
        (Some(t), Some(m), Ok(())) if rampart_server::token::is_well_formed(t) => {
            r.ok("token", format!("{} (mode {m:04o})", token_path.display()))
        }
        (Some(_), _, _) => r.fail(
            "token",
            "the token file is malformed",
            "rampart token rotate",
        ),
        (None, _, _) => r.fail(
            "token",
            format!("{} does not exist", token_path.display()),
            "rampart serve --background (the first start creates it)",
        ),
    }

    // An unusable RAMPART_URL is a finding, not the end of the report.
    match home::endpoint(&home, None) {
        Err(e) => r.fail(
            "server",
            format!("RAMPART_URL {e}"),
            "export RAMPART_URL=http://127.0.0.1:PORT (or unix:/absolute/path/rampart.sock), or unset it",
        ),
        Ok(endpoint) => server_checks(&mut r, &endpoint, token.as_deref()),
    }

    probe(&mut r, &home);

    let socket = home.join("rampart.sock");
    match mode(&socket) {
        Some(0o600) => r.ok("socket", format!("{} (mode 0600)", socket.display())),
        Some(m) => r.fail(
            "socket",
            format!("{} has mode {m:04o}", socket.display()),
            format!("chmod 600 {}", socket.display()),
        ),
        None => r.fail(
            "socket",
            format!("{} does not exist", socket.display()),
            "rampart serve --background",
        ),
    }

    match agent_args::find_library(&home) {
        Ok(lib) => {
            // Loadable: run /bin/true with it, disabled so that nothing is asked.
            let out = std::process::Command::new("/bin/true")
                .env("LD_PRELOAD", &lib)
                .env("RAMPART_MODE", "disabled")
                .output();
            match out {
                Ok(o) if o.status.success() && o.stderr.is_empty() => r.ok(
                    "library",
                    format!("{} loads (LD_PRELOAD=… /bin/true)", lib.display()),
                ),
                Ok(o) => r.fail(
                    "library",
                    format!(
                        "{} does not load: {}",
                        lib.display(),
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                    "make -C preload install   (rebuild for this machine's architecture)",
                ),
                Err(e) => r.fail(
                    "library",
                    format!("cannot run /bin/true: {e}"),
                    "check /bin/true exists",
                ),
            }
        }
        Err(e) => r.fail("library", e.to_string(), "make -C preload install"),
    }

    let audit = home.join("audit");
    let probe = audit.join(".doctor-probe");
    if !audit.exists() {
        r.ok(
            "audit",
            format!(
                "{} does not exist yet (the server creates it)",
                audit.display()
            ),
        );
    } else {
        let writable = std::fs::write(&probe, b"probe").and_then(|()| std::fs::remove_file(&probe));
        audit_result(&mut r, &audit, writable);
    }

    outln!();
    outln!("Limits: the preload library sees dynamically linked programs only; static binaries,");
    outln!(
        "raw execve syscalls and Go's os/exec bypass it. Use `rampart supervise -- CMD` for those."
    );
    if std::env::var("RAMPART_TOKEN")
        .is_ok_and(|t| !t.is_empty() && !t.starts_with(crate::agent_args::AGENT_TOKEN_PREFIX))
    {
        outln!("RAMPART_TOKEN here is the admin token: a library preloaded by hand with it gives");
        outln!("the agent the power to approve its own asks and reload policy. `rampart preload`");
        outln!("and `rampart supervise` hand the agent a per-run credential that can only ask.");
    } else {
        outln!(
            "Launch agents with `rampart preload`/`rampart supervise` (not LD_PRELOAD by hand):"
        );
        outln!(
            "they hand the agent a per-run credential that can only ask, never the admin token."
        );
    }
    if r.problems == 0 {
        outln!("All checks passed.");
        Ok(Outcome::Success)
    } else {
        outln!("{} problem(s) found.", r.problems);
        Ok(Outcome::Code(1))
    }
}
