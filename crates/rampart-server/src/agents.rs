//! Agent credentials (issue 13, item 1): per-run bearer tokens that the launcher
//! (`rampart preload`/`supervise`) gets from `POST /v1/agents` with the admin token and
//! hands to the agent's tree instead of the admin token.
//!
//! A credential is bound to an agent name, a session and one process (its pid *and* its
//! start time from `/proc/<pid>/stat`, so a recycled pid never revives it). It ends when
//! that process is gone — checked on every use — or when it is revoked
//! (`DELETE /v1/agents/{id}` with the admin token, `DELETE /v1/agents/self` with the
//! credential). What it may call is decided in `auth.rs` and `api.rs`: preflights (with
//! agent and session taken from the credential) and its own session's approvals.
//!
//! Only the sha256 of each token is kept, in memory and in `$RAMPART_HOME/agents.json`
//! (mode 0600, replaced by an atomic rename), so credentials survive a server restart
//! and `rampart token rotate` (which replaces only the admin token), and the file is no
//! key to anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every agent credential starts with this, then 64 lowercase hex digits.
pub const PREFIX: &str = "rampart_agent_";

/// Longest agent name or session accepted at registration.
const MAX_NAME: usize = 256;

/// Most credentials alive at once: each run of a launcher holds one, and a runaway loop
/// of registrations must not grow the file without bound.
pub const MAX_AGENTS: usize = 4096;

/// The file the credentials are kept in.
pub fn path(home: &Path) -> PathBuf {
    home.join("agents.json")
}

/// Who a request with an agent credential is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub id: String,
    pub agent: String,
    pub session: String,
    pub pid: i32,
}

/// One credential as stored: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Stored {
    id: String,
    agent: String,
    session: String,
    pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks after boot) when it was issued.
    start_time: u64,
    /// `sha256:<hex>` of the token.
    token_sha256: String,
    created_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    agents: Vec<Stored>,
}

/// Why [`Agents::authenticate`] refused a token that looks like an agent credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not issued by this server (or revoked).
    Unknown,
    /// Its process is gone (or its pid now belongs to another process).
    Ended { id: String, pid: i32 },
}

/// Why a registration was refused: the HTTP status and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterError {
    pub status: u16,
    pub message: String,
}

#[derive(Debug)]
pub struct Agents {
    file: PathBuf,
    by_hash: Mutex<HashMap<String, Stored>>,
    /// A pidfd of each credential's process once its start time was verified (by hash):
    /// every preflight asks whether the process still lives, and polling a pidfd is one
    /// system call where reading `/proc/<pid>/stat` is three and a parse. A pidfd names
    /// the process, not the number, so a recycled pid cannot revive the credential.
    watched: Mutex<HashMap<String, std::os::fd::OwnedFd>>,
}

/// Most pidfds held (one per live credential; a machine runs a few launchers at once);
/// beyond, `/proc` is read on each use. Small, so they stay within the descriptors the
/// connection cap keeps in reserve (`serve.rs`, `FD_RESERVE`).
const MAX_WATCHED: usize = 16;

/// `sha256:<hex>` of a token.
fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::from("sha256:");
    for b in digest.iter() {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// The start time of a live process, `None` when there is no such process (or it is a
/// zombie: it has exited, only its parent has not collected it yet).
pub fn process_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything, spaces and
    // parentheses included: the fields after it start after the *last* `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn valid_name(what: &str, value: &str) -> Result<(), RegisterError> {
    let bad = |why: &str| RegisterError {
        status: 400,
        message: format!("`{what}` {why}"),
    };
    if value.trim().is_empty() {
        return Err(bad("must not be empty"));
    }
    if value.chars().count() > MAX_NAME {
        return Err(bad(&format!("is longer than {MAX_NAME} characters")));
    }
    if !rampart_contract::printable::is_printable(value.as_bytes()) {
        return Err(bad(
            "holds control, bidi or zero-width characters; use plain text",
        ));
    }
    Ok(())
}

impl Agents {
    /// The credentials in `home/agents.json`, without those whose process is gone. A
    /// missing file is an empty list; an unreadable or damaged one is said on stderr and
    /// ignored (its credentials then fail, which refuses rather than allows).
    pub fn load(home: &Path) -> Agents {
        let file = path(home);
        let mut by_hash = HashMap::new();
        match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<File>(&bytes) {
                Ok(stored) => {
                    for agent in stored.agents {
                        if process_start_time(agent.pid) == Some(agent.start_time) {
                            by_hash.insert(agent.token_sha256.clone(), agent);
                        }
                    }
                }
                Err(e) => eprintln!(
                    "rampart: {} is damaged ({e}); agent credentials issued before are not accepted",
                    file.display()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "rampart: cannot read {} ({e}); agent credentials issued before are not accepted",
                file.display()
            ),
        }
        let agents = Agents {
            file,
            by_hash: Mutex::new(by_hash),
            watched: Mutex::new(HashMap::new()),
        };
        // Drop the dead ones from the file too.
        let map = agents.lock();
        if let Err(e) = agents.save(&map) {
            eprintln!("rampart: cannot write {}: {e}", agents.file.display());
        }
        drop(map);
        agents
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stored>> {
        match self.by_hash.lock() {
            Ok(guard) => guard,
            // Critical sections never panic; if one did, the map is still whole.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Writes the whole list to a temporary file, then renames it over the old one, so a
    /// crash leaves either the old or the new list.
    fn save(&self, map: &HashMap<String, Stored>) -> std::io::Result<()> {
        let mut agents: Vec<Stored> = map.values().cloned().collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        let text = serde_json::to_vec_pretty(&File { version: 1, agents })
            .map_err(std::io::Error::other)?;
        crate::token::write_private_atomically(&self.file, &text)
    }

    /// Issues a credential for `agent`/`session` bound to process `pid`: the token (shown
    /// once, never stored) and who it is.
    pub fn register(
        &self,
        agent: &str,
        session: &str,
        pid: i64,
    ) -> Result<(String, AgentIdentity), RegisterError> {
        valid_name("agent", agent)?;
        valid_name("session", session)?;
        let pid_i32 = i32::try_from(pid).ok().filter(|p| *p > 0);
        let Some((pid, start_time)) =
            pid_i32.and_then(|p| process_start_time(p).map(|start| (p, start)))
        else {
            return Err(RegisterError {
                status: 400,
                message: format!(
                    "`pid` {pid} is not a running process: a credential is bound to the process that runs the agent"
                ),
            });
        };
        let token = generate().map_err(|e| RegisterError {
            status: 500,
            message: format!("cannot generate a credential: {e}"),
        })?;
        let stored = Stored {
            id: ulid::Ulid::from_datetime(std::time::SystemTime::now()).to_string(),
            agent: agent.to_owned(),
            session: session.to_owned(),
            pid,
            start_time,
            token_sha256: token_hash(&token),
            created_at: jiff::Timestamp::now().to_string(),
        };
        let mut map = self.lock();
        // Make room from the dead before refusing.
        map.retain(|_, a| process_start_time(a.pid) == Some(a.start_time));
        if map.len() >= MAX_AGENTS {
            return Err(RegisterError {
                status: 503,
                message: format!(
                    "{MAX_AGENTS} agent credentials are alive already; revoke some (DELETE /v1/agents/{{id}})"
                ),
            });
        }
        map.insert(stored.token_sha256.clone(), stored.clone());
        if let Err(e) = self.save(&map) {
            map.remove(&stored.token_sha256);
            return Err(RegisterError {
                status: 500,
                message: format!("cannot write {}: {e}", self.file.display()),
            });
        }
        Ok((token, identity(&stored)))
    }

    /// The identity behind `token`, if it is a live credential of this server. A
    /// credential whose process is gone is removed here (lazily, on its next use).
    pub fn authenticate(&self, token: &str) -> Result<AgentIdentity, Refused> {
        let hash = token_hash(token);
        // Look at the process without holding the lock: every preflight passes here.
        let (who, pid, start_time) = {
            let map = self.lock();
            let stored = map.get(&hash).ok_or(Refused::Unknown)?;
            (identity(stored), stored.pid, stored.start_time)
        };
        if self.still_runs(&hash, pid, start_time) {
            return Ok(who);
        }
        let stored = self.lock().get(&hash).cloned().ok_or(Refused::Unknown)?;
        self.unwatch(&hash);
        let mut map = self.lock();
        if map.remove(&hash).is_some()
            && let Err(e) = self.save(&map)
        {
            eprintln!("rampart: cannot write {}: {e}", self.file.display());
        }
        eprintln!(
            "rampart: agent credential {} ended: its process (pid {}) is gone",
            stored.id, stored.pid
        );
        Err(Refused::Ended {
            id: stored.id,
            pid: stored.pid,
        })
    }

    /// Whether the credential's process (`pid`, started at `start_time`) still runs.
    fn still_runs(&self, hash: &str, pid: i32, start_time: u64) -> bool {
        let zero = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // A watched process: its pidfd is readable once it has exited (an error: look
        // again below).
        let alive = self.watching().get(hash).map(|fd| {
            let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
            matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(0))
        });
        if alive == Some(true) {
            return true;
        }
        // First use (or after a restart, or the watch said "gone": confirm): open a pidfd
        // first, then check the start time, so the pidfd is of the process that was
        // bound (a pid recycled in between fails the start-time check).
        // With no room left for another watch, `/proc` alone answers, every time.
        let room = self.watching().len() < MAX_WATCHED;
        let fd = rustix::process::Pid::from_raw(pid)
            .filter(|_| room)
            .and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
            });
        if process_start_time(pid) != Some(start_time) {
            return false;
        }
        if let Some(fd) = fd {
            let mut w = self.watching();
            // Another thread may have filled the last place meanwhile.
            if w.len() < MAX_WATCHED {
                w.insert(hash.to_owned(), fd);
            }
        }
        true
    }

    fn watching(&self) -> std::sync::MutexGuard<'_, HashMap<String, std::os::fd::OwnedFd>> {
        match self.watched.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn unwatch(&self, hash: &str) {
        self.watching().remove(hash);
    }

    /// Ends the credential `id`; false when there is none.
    pub fn revoke(&self, id: &str) -> bool {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, a| a.id != id);
        if map.len() == before {
            return false;
        }
        self.watching().retain(|hash, _| map.contains_key(hash));
        if let Err(e) = self.save(&map) {
            eprintln!("rampart: cannot write {}: {e}", self.file.display());
        }
        true
    }

    /// Credentials alive now (their process checked).
    pub fn count(&self) -> usize {
        self.lock()
            .values()
            .filter(|a| process_start_time(a.pid) == Some(a.start_time))
            .count()
    }
}

fn identity(stored: &Stored) -> AgentIdentity {
    AgentIdentity {
        id: stored.id.clone(),
        agent: stored.agent.clone(),
        session: stored.session.clone(),
        pid: stored.pid,
    }
}

/// A fresh credential from the kernel's CSPRNG: [`PREFIX`] and 64 lowercase hex digits.
fn generate() -> std::io::Result<String> {
    let admin_like = crate::token::generate()?;
    let hex = admin_like
        .strip_prefix(crate::token::PREFIX)
        .ok_or_else(|| std::io::Error::other("unexpected token form"))?;
    Ok(format!("{PREFIX}{hex}"))
}

/// True for [`PREFIX`] followed by exactly 64 lowercase hex digits.
pub fn is_well_formed(token: &str) -> bool {
    crate::token::prefixed_hex64(token, PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn start_time_of_this_process_and_of_no_process() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(process_start_time(me).is_some());
        assert_eq!(process_start_time(me), process_start_time(me));
        assert_eq!(process_start_time(0), None);
        assert_eq!(process_start_time(-1), None);
        assert_eq!(process_start_time(i32::MAX), None);
    }

    #[test]
    fn register_authenticate_revoke_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let agents = Agents::load(dir.path());
        let me = i64::from(std::process::id());
        let (token, who) = agents.register("claude", "s1", me).unwrap();
        assert!(is_well_formed(&token), "{token}");
        assert!(!crate::token::is_well_formed(&token));
        assert_eq!((who.agent.as_str(), who.session.as_str()), ("claude", "s1"));
        assert_eq!(agents.authenticate(&token), Ok(who.clone()));
        assert_eq!(
            agents.authenticate(&format!("{token}0")),
            Err(Refused::Unknown)
        );
        // Stored hashed, privately.
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(!text.contains(&token[PREFIX.len()..]));
        assert!(text.contains(&token_hash(&token)));
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A new server on the same home accepts it.
        let again = Agents::load(dir.path());
        assert_eq!(again.authenticate(&token), Ok(who.clone()));
        assert!(again.revoke(&who.id));
        assert!(!again.revoke(&who.id));
        assert_eq!(again.authenticate(&token), Err(Refused::Unknown));
        assert_eq!(
            Agents::load(dir.path()).authenticate(&token),
            Err(Refused::Unknown)
        );
    }

    #[test]
    fn registration_needs_names_and_a_live_process() {
        let dir = tempfile::tempdir().unwrap();
        let agents = Agents::load(dir.path());
        let me = i64::from(std::process::id());
        for (agent, session, pid, want) in [
            ("", "s", me, "`agent` must not be empty"),
            ("a", " ", me, "`session` must not be empty"),
            ("a\u{1b}[2J", "s", me, "`agent` holds control"),
            ("a", "s", 0, "`pid` 0 is not a running process"),
            ("a", "s", -5, "`pid` -5 is not a running process"),
            ("a", "s", i64::MAX, "is not a running process"),
        ] {
            let e = agents.register(agent, session, pid).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains(want), "{}", e.message);
        }
    }

    #[test]
    fn a_damaged_file_accepts_nothing_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "{not json").unwrap();
        let agents = Agents::load(dir.path());
        assert_eq!(agents.count(), 0);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.contains("\"agents\": []"), "{text}");
    }
}
