//! `--protect` for `rampart preload` and `rampart supervise` (issue 13): what the agent's
//! tree must not see or change, handed to `rampart-protect`, which does the kernel work.
//! Kept apart from the launchers so each of them calls in at one place.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use rampart_server::client::Endpoint;

use crate::Outcome;
use crate::agent_args::{AgentArgs, Resolved};

/// Exit status when protection cannot be set up: nothing ran (like a shell's "cannot
/// execute").
pub const REFUSED: u8 = 126;

/// Whether to protect (`--protect` or `RAMPART_PROTECT`). Under protection an unreachable
/// server refuses, whatever `--fail-open` says: the agent cannot have stopped it, so
/// silence means something is wrong. The launcher's own check and the library (through
/// `RAMPART_FAIL_OPEN=false` and `RAMPART_PROTECT=1`) both follow that.
pub fn apply(args: &mut AgentArgs) -> bool {
    let protect = rampart_protect::requested(args.protect);
    if protect {
        args.fail_open = Some(false);
    }
    protect
}

/// Where the server keeps its policies and audit trail when that is not `$RAMPART_HOME`
/// (`serve --policies DIR --audit-dir DIR`), as its `/v1/status` says.
fn server_dirs(resolved: &Resolved) -> Vec<PathBuf> {
    let answer = rampart_server::client::request(
        &resolved.endpoint,
        "GET",
        "/v1/status",
        resolved.token.as_deref(),
        None,
        std::time::Duration::from_secs(2),
    );
    let Ok(answer) = answer else {
        return Vec::new();
    };
    let Ok(status) = answer.json() else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    if answer.status == 200 {
        let text = |v: &serde_json::Value| v.as_str().map(PathBuf::from);
        dirs.extend(text(&status["audit_dir"]));
        dirs.extend(text(&status["policy_source"]));
        if let Some(files) = status["policy_files"].as_array() {
            for file in files {
                dirs.extend(text(&file["path"]).and_then(|p| p.parent().map(Path::to_path_buf)));
            }
        }
    }
    dirs.retain(|d| d.is_absolute() && d.is_dir());
    dirs
}

/// `$RAMPART_HOME` and the server's policy and audit directories hidden; the library,
/// this binary and the server's Unix socket (when that is what the tree talks to) kept
/// visible, read-only. A directory that holds the working directory (or is `/`) cannot
/// be hidden without taking the command's files away: said in one line, left visible.
pub fn plan(home: &Path, library: Option<&Path>, resolved: &Resolved) -> rampart_protect::Plan {
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| d.canonicalize().ok());
    let mut hide = vec![home.to_path_buf()];
    for dir in server_dirs(resolved) {
        let Ok(real) = dir.canonicalize() else {
            continue;
        };
        if real.starts_with(home.canonicalize().unwrap_or_else(|_| home.to_path_buf())) {
            continue;
        }
        if real.parent().is_none() || cwd.as_ref().is_some_and(|c| c.starts_with(&real)) {
            eprintln!(
                "rampart: [WARN] --protect: {} stays visible to the command: it runs inside it",
                real.display()
            );
            continue;
        }
        hide.push(real);
    }
    let mut read_only: Vec<PathBuf> = library.map(Path::to_path_buf).into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        read_only.push(exe);
    }
    if let Endpoint::Unix(socket) = &resolved.endpoint
        && socket.exists()
    {
        read_only.push(socket.clone());
    }
    rampart_protect::Plan { hide, read_only }
}

pub fn prepare(
    home: &Path,
    library: Option<&Path>,
    resolved: &Resolved,
) -> Result<rampart_protect::Prepared, rampart_protect::Error> {
    // supervise needs no library, but one installed must stay read-only all the same.
    let found = crate::agent_args::find_library(home).ok();
    let library = library.or(found.as_deref());
    rampart_protect::Prepared::new(&plan(home, library, resolved))
}

/// What a failed setup means for the user: one line and exit 126 when protection is not
/// available here; the launcher's usual error otherwise.
pub fn failed(e: rampart_protect::Error) -> Result<Outcome> {
    match e {
        rampart_protect::Error::Refused(line) => {
            eprintln!("rampart: [ERROR] {line}");
            Ok(Outcome::Code(REFUSED))
        }
        other => Err(anyhow!("{other}")),
    }
}

/// `rampart preload --protect`: CMD with the library's environment plus
/// `RAMPART_PROTECT=1`, in the namespaces; the launcher waits outside.
pub fn run_preload(
    home: &Path,
    library: &Path,
    resolved: &Resolved,
    command: &[OsString],
    env: Vec<(String, OsString)>,
) -> Result<Outcome> {
    let prepared = match prepare(home, Some(library), resolved) {
        Ok(prepared) => prepared,
        Err(e) => return failed(e),
    };
    match rampart_protect::run(prepared, command, &env) {
        Ok(code) => Ok(Outcome::Code(u8::try_from(code).unwrap_or(255))),
        Err(e) => failed(e),
    }
}
