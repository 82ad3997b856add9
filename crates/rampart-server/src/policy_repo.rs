//! Policies from git (`rampart serve --policy-repo PATH_OR_URL`): a clone under
//! `$RAMPART_HOME/policy-repo/clone`, fetched every `--policy-repo-interval` with the
//! system `git`, whose `*.yaml` are loaded alongside the local policy files.
//!
//! A commit is adopted only if the local files and its files load together (the loader
//! runs the policies' inline tests); its files are then copied to
//! `$RAMPART_HOME/policy-repo/adopted`, which is what every later load (reload, restart,
//! an offline start) reads. A refused commit changes nothing in force: its short hash and
//! reason are kept for `serve status`, said on stderr and audited (a `policy` event).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_policy::PolicySet;
use rampart_policy::profiles::{self, Source};

use crate::state::{AppState, Loaded};

/// `--policy-repo`, `--policy-repo-branch`, `--policy-repo-interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    pub source: String,
    /// `None`: the remote's default branch (`HEAD`).
    pub branch: Option<String>,
    pub interval: Duration,
}

/// What `serve status` shows about the repository.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RepoStatus {
    pub source: String,
    /// Short hash of the commit whose policies are in force.
    pub adopted: Option<String>,
    /// Short hash of the newest refused commit (cleared when a later one is adopted).
    pub refused: Option<String>,
    /// Why it was refused (`file:line: reason` from the loader).
    pub refused_reason: Option<String>,
    /// The last fetch error (the network may be down); the adopted policy stays.
    pub fetch_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct RepoState {
    status: Mutex<Option<RepoStatus>>,
}

impl RepoState {
    pub fn status(&self) -> Option<RepoStatus> {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut RepoStatus)) {
        let mut guard = match self.status.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(guard.get_or_insert_with(RepoStatus::default));
    }
}

pub(crate) fn repo_dir(home: &Path) -> PathBuf {
    home.join("policy-repo")
}

fn adopted_dir(home: &Path) -> PathBuf {
    repo_dir(home).join("adopted")
}

fn clone_dir(home: &Path) -> PathBuf {
    repo_dir(home).join("clone")
}

/// The policy for the local directory plus, when given, the adopted repository files.
/// With no file anywhere: the embedded standard profile (as without a repository).
pub(crate) fn load(
    policies_dir: &Path,
    repo_files: Option<&Path>,
) -> Result<(Arc<PolicySet>, String), rampart_policy::PolicyError> {
    let Some(repo) = repo_files else {
        let (set, source) = profiles::load_effective(policies_dir)?;
        return Ok((set, crate::reload::describe(&source)));
    };
    let mut files = rampart_policy::load::load_dir(policies_dir)?;
    let repo_loaded = if repo.is_dir() {
        rampart_policy::load::load_dir(repo)?
    } else {
        Vec::new()
    };
    if files.is_empty() && repo_loaded.is_empty() {
        let (set, source) = profiles::load_effective(policies_dir)?;
        return Ok((set, crate::reload::describe(&source)));
    }
    let described = format!(
        "{} and {}",
        crate::reload::describe(&Source::Directory(policies_dir.to_path_buf())),
        repo.display()
    );
    files.extend(repo_loaded);
    Ok((Arc::new(PolicySet::new(files)?), described))
}

/// The repository files a load should include: the adopted copy when `--policy-repo` is
/// set.
pub(crate) fn files_for(config: &crate::config::ServerConfig) -> Option<PathBuf> {
    config
        .policy_repo
        .as_ref()
        .map(|_| adopted_dir(&config.home))
}

fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    let out = cmd
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        Err(format!(
            "git {}: {}",
            args.first().copied().unwrap_or(""),
            rampart_contract::printable::printable_string(line.trim().as_bytes())
        ))
    }
}

/// Starts the fetch loop on its own thread (git and the loader block).
pub(crate) fn start(state: Arc<AppState>) -> std::io::Result<()> {
    let Some(config) = state.config.policy_repo.clone() else {
        return Ok(());
    };
    state.policy_repo.update(|s| {
        s.source.clone_from(&config.source);
        s.adopted = std::fs::read_to_string(repo_dir(&state.config.home).join("adopted.commit"))
            .ok()
            .map(|c| short(c.trim()));
    });
    std::thread::Builder::new()
        .name("rampart-policy-repo".into())
        .spawn(move || {
            let mut considered = String::new();
            loop {
                if let Err(e) = poll(&state, &config, &mut considered) {
                    let first =
                        state.policy_repo.status().and_then(|s| s.fetch_error) != Some(e.clone());
                    if first {
                        eprintln!(
                            "rampart: policy repository {}: {e} (the adopted policy stays)",
                            config.source
                        );
                    }
                    state.policy_repo.update(|s| s.fetch_error = Some(e));
                } else {
                    state.policy_repo.update(|s| s.fetch_error = None);
                }
                std::thread::sleep(config.interval);
            }
        })?;
    Ok(())
}

fn short(commit: &str) -> String {
    commit.chars().take(12).collect()
}

/// One fetch: a new commit is checked out in the clone, loaded with the local files,
/// and adopted or refused.
fn poll(state: &Arc<AppState>, config: &RepoConfig, considered: &mut String) -> Result<(), String> {
    let home = &state.config.home;
    let clone = clone_dir(home);
    if !clone.join(".git").is_dir() {
        let _ = std::fs::remove_dir_all(&clone);
        std::fs::create_dir_all(repo_dir(home)).map_err(|e| format!("creating the clone: {e}"))?;
        let target = clone.to_string_lossy().into_owned();
        git(
            None,
            &[
                "clone",
                "--quiet",
                "--no-checkout",
                "--",
                &config.source,
                &target,
            ],
        )?;
    }
    let branch = config.branch.as_deref().unwrap_or("HEAD");
    let refspec = format!("+{branch}:refs/rampart/candidate");
    git(
        Some(&clone),
        &["fetch", "--quiet", "--force", "origin", &refspec],
    )?;
    let commit = git(
        Some(&clone),
        &["rev-parse", "refs/rampart/candidate^{commit}"],
    )?;
    let adopted =
        std::fs::read_to_string(repo_dir(home).join("adopted.commit")).unwrap_or_default();
    if commit == *considered || commit == adopted.trim() {
        *considered = commit;
        return Ok(());
    }
    git(
        Some(&clone),
        &["checkout", "--quiet", "--force", "--detach", &commit],
    )?;
    git(Some(&clone), &["clean", "--quiet", "-fdx"])?;
    *considered = commit.clone();
    let _serialised = state.reload_lock.blocking_lock();
    match load(&state.config.policies_dir, Some(&clone)) {
        Ok(_) => {
            copy_yaml(&clone, home).map_err(|e| format!("copying the adopted policies: {e}"))?;
            let _ = std::fs::write(repo_dir(home).join("adopted.commit"), format!("{commit}\n"));
            let adopted_files = adopted_dir(home);
            match load(&state.config.policies_dir, Some(&adopted_files)) {
                Ok((set, source)) => {
                    eprintln!(
                        "rampart: policy repository: adopted commit {} ({} policies, {} rules)",
                        short(&commit),
                        set.policies().len(),
                        set.rule_count()
                    );
                    state.set_loaded(Loaded {
                        set,
                        source,
                        last_error: None,
                    });
                    state.policy_repo.update(|s| {
                        s.adopted = Some(short(&commit));
                        s.refused = None;
                        s.refused_reason = None;
                    });
                    audit(state, "adopt", &commit, "adopted");
                }
                Err(e) => return Err(format!("loading the adopted copy: {e}")),
            }
        }
        Err(e) => {
            let reason = e.to_string();
            eprintln!(
                "rampart: policy repository: refused commit {}, the policy in force stays: {}",
                short(&commit),
                rampart_contract::printable::printable_string(reason.as_bytes())
            );
            state.policy_repo.update(|s| {
                s.refused = Some(short(&commit));
                s.refused_reason = Some(reason.clone());
            });
            audit(state, "refuse", &commit, &reason);
        }
    }
    Ok(())
}

/// Replaces the adopted copy with the clone's `*.yaml` (a fresh directory renamed over
/// the old one, so a crash leaves one whole set).
fn copy_yaml(clone: &Path, home: &Path) -> std::io::Result<()> {
    let fresh = repo_dir(home).join("adopted.new");
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh)?;
    for entry in std::fs::read_dir(clone)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_yaml = name
            .to_str()
            .is_some_and(|n| n.ends_with(".yaml") || n.ends_with(".yml"));
        if is_yaml && entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), fresh.join(&name))?;
        }
    }
    let old = adopted_dir(home);
    let _ = std::fs::remove_dir_all(&old);
    std::fs::rename(&fresh, &old)
}

fn audit(state: &AppState, verb: &str, commit: &str, message: &str) {
    let event = rampart_audit::NewEvent {
        agent: "rampart".into(),
        session: String::new(),
        tool: "policy".into(),
        command: format!("{verb} {commit}"),
        argv: Vec::new(),
        exe: None,
        cwd: None,
        pid: None,
        ppid: None,
        via: Some("policy-repo".into()),
        decision: "policy".into(),
        policy: String::new(),
        message: message.to_owned(),
        eval_us: 0,
        approval: None,
        mode: None,
        unchecked: None,
        quiet: false,
    };
    if let Err(e) = state.audit.append(event) {
        eprintln!("rampart: policy repository: cannot audit the {verb} of {commit}: {e}");
    }
}
