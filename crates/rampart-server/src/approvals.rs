//! Pending `ask` decisions waiting for a person.
//!
//! The preflight handler that hit an `ask` registers an approval and waits on its watch
//! channel; `POST /v1/approvals/{id}/resolve` (CLI, dashboard) settles it. Settled
//! approvals are kept (bounded) so that a late second resolve gets 410, not 404.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::wire::ApprovalInfo;

/// How an approval was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved { by: String, message: Option<String> },
    Denied { by: String, message: Option<String> },
    Expired,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ResolveError {
    NotFound,
    /// Already approved, denied or expired.
    Gone(Box<ApprovalInfo>),
}

struct Entry {
    /// Boxed: the table then holds small buckets, and a held ask costs about its own
    /// size (bench: "server memory per held ask").
    info: Box<ApprovalInfo>,
    /// Where the waiting preflight learns the outcome (a oneshot: a watch channel costs
    /// about ten times its size, once per held ask).
    tx: Option<oneshot::Sender<Outcome>>,
}

/// How many settled approvals are remembered for 410 answers and lookups.
const KEEP_SETTLED: usize = 1000;

/// Most approvals pending at once. Each is a held connection waiting for a person; an
/// `ask` beyond this is denied at once (and audited as such) rather than queued, so a
/// runaway agent cannot grow the queue, and no ask ever turns into an allow.
pub const MAX_PENDING: usize = 10_000;

/// [`Approvals::create`] refused: [`MAX_PENDING`] are already waiting.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyPending;

#[derive(Default)]
pub struct Approvals {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    settled_order: VecDeque<String>,
}

impl Inner {
    /// Every entry is pending or listed in `settled_order` (ids are unique ULIDs).
    fn pending_count(&self) -> usize {
        self.entries.len().saturating_sub(self.settled_order.len())
    }
}

impl Approvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            // Critical sections below never panic; if one did, the map is still usable.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Registers a pending approval; the receiver sees its outcome.
    pub fn create(&self, info: ApprovalInfo) -> Result<oneshot::Receiver<Outcome>, TooManyPending> {
        let mut inner = self.lock();
        if inner.pending_count() >= MAX_PENDING {
            return Err(TooManyPending);
        }
        let (tx, rx) = oneshot::channel();
        inner.entries.insert(
            info.id.clone(),
            Entry {
                info: Box::new(info),
                tx: Some(tx),
            },
        );
        Ok(rx)
    }

    pub fn pending(&self) -> Vec<ApprovalInfo> {
        let inner = self.lock();
        let mut list: Vec<ApprovalInfo> = inner
            .entries
            .values()
            .filter(|e| e.info.status == "pending")
            .map(|e| (*e.info).clone())
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    pub fn pending_count(&self) -> usize {
        self.lock().pending_count()
    }

    /// Records the scope a person gives with an approval (`session`), before settling it,
    /// so the waiting preflight sees it when it wakes.
    pub fn set_scope(&self, id: &str, scope: &str) {
        if let Some(e) = self.lock().entries.get_mut(id)
            && e.info.status == "pending"
        {
            e.info.scope = Some(scope.to_owned());
        }
    }

    pub fn get(&self, id: &str) -> Option<ApprovalInfo> {
        self.lock().entries.get(id).map(|e| (*e.info).clone())
    }

    /// Settles a pending approval. `now` is the RFC 3339 resolution time.
    pub fn settle(
        &self,
        id: &str,
        outcome: Outcome,
        now: String,
    ) -> Result<ApprovalInfo, ResolveError> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(id).ok_or(ResolveError::NotFound)?;
        if entry.info.status != "pending" {
            return Err(ResolveError::Gone(entry.info.clone()));
        }
        match &outcome {
            Outcome::Approved { by, message } => {
                entry.info.status = "approved".into();
                entry.info.resolved_by = Some(by.clone());
                entry.info.resolution_message = message.clone();
            }
            Outcome::Denied { by, message } => {
                entry.info.status = "denied".into();
                entry.info.resolved_by = Some(by.clone());
                entry.info.resolution_message = message.clone();
            }
            Outcome::Expired => entry.info.status = "expired".into(),
        }
        entry.info.resolved_at = Some(now);
        let info = (*entry.info).clone();
        if let Some(tx) = entry.tx.take() {
            let _ = tx.send(outcome);
        }
        inner.settled_order.push_back(id.to_owned());
        while inner.settled_order.len() > KEEP_SETTLED {
            if let Some(old) = inner.settled_order.pop_front() {
                inner.entries.remove(&old);
            }
        }
        Ok(info)
    }
}

/// What an approval covers after it was given (issue 15, "one approval per command").
///
/// - For a short window ([`TREE_WINDOW`]), in the process tree of the pid that asked: the
///   same command again (a PATH walk retrying the same argv under another directory is
///   not a new ask), and any command whose every normalised piece is one of the pieces
///   the person saw (the `wget` an approved `bash -c 'wget …'` runs itself).
/// - "For this session" (`scope: "session"` on resolve): the same command text, in the
///   same agent and session, from any process, until the server stops.
///
/// Only asks consult it: a deny rule is never overridden by a grant.
#[derive(Default)]
pub struct Grants {
    list: Mutex<Vec<Grant>>,
}

#[derive(Debug, Clone)]
pub struct Grant {
    /// The approval this grant comes from: every use is audited against it.
    pub id: String,
    pub by: String,
    pub agent: String,
    pub session: String,
    pub command: String,
    /// The normalised pieces of `command` (what the person saw).
    pub pieces: Vec<String>,
    /// The process tree (`None`: the whole session).
    pub pid: Option<i64>,
    /// Until when (`None`: until the server stops).
    pub until: Option<std::time::Instant>,
}

/// How long an approval covers the programs its command runs itself.
pub const TREE_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);
/// Most grants kept; the oldest go first.
const MAX_GRANTS: usize = 1000;
/// Deepest process ancestry followed from the asking pid.
const MAX_DEPTH: usize = 64;

/// One preflight, as grants see it.
pub struct Asking<'a> {
    pub agent: &'a str,
    pub session: &'a str,
    pub command: &'a str,
    pub pieces: &'a [String],
    pub pid: Option<i64>,
    pub ppid: Option<i64>,
}

impl Grants {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Grant>> {
        self.list
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn add(&self, grant: Grant) {
        let now = std::time::Instant::now();
        let mut list = self.lock();
        list.retain(|g| g.until.is_none_or(|u| u > now));
        if list.len() >= MAX_GRANTS {
            list.remove(0);
        }
        list.push(grant);
    }

    /// The grant that covers `a`, if any.
    pub fn covering(&self, a: &Asking) -> Option<Grant> {
        let now = std::time::Instant::now();
        let list = self.lock().clone();
        list.into_iter().rev().find(|g| {
            if g.agent != a.agent || g.session != a.session || g.until.is_some_and(|u| u <= now) {
                return false;
            }
            let same = g.command == a.command;
            match g.pid {
                None => same,
                Some(root) => {
                    let pieces = !a.pieces.is_empty()
                        && a.pieces.iter().all(|p| g.pieces.iter().any(|q| q == p));
                    (same || pieces) && in_tree(root, a.pid, a.ppid)
                }
            }
        })
    }
}

/// Whether `pid` (with parent `ppid`) is `root` or descends from it, by `/proc`. Any
/// doubt (no pid, an unreadable `/proc`, a pid namespace the server cannot see into) is
/// "no": the command is then asked about again, never let through.
fn in_tree(root: i64, pid: Option<i64>, ppid: Option<i64>) -> bool {
    let Some(pid) = pid else { return false };
    if pid == root || ppid == Some(root) {
        return true;
    }
    let mut p = pid;
    for _ in 0..MAX_DEPTH {
        let Some(parent) = parent_of(p) else {
            return false;
        };
        if parent == root {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        p = parent;
    }
    false
}

fn parent_of(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_than_max_pending_and_settling_frees_a_place() {
        let a = Approvals::default();
        let mut receivers = Vec::new();
        for i in 0..MAX_PENDING {
            receivers.push(a.create(info(&format!("{i:08}"))).unwrap());
        }
        assert_eq!(a.pending_count(), MAX_PENDING);
        assert_eq!(a.create(info("over")).err(), Some(TooManyPending));
        a.settle("00000000", Outcome::Expired, "now".into())
            .unwrap();
        assert_eq!(a.pending_count(), MAX_PENDING - 1);
        assert!(a.create(info("again")).is_ok());
        assert_eq!(a.pending_count(), MAX_PENDING);
    }

    fn info(id: &str) -> ApprovalInfo {
        ApprovalInfo {
            id: id.into(),
            status: "pending".into(),
            command: "curl x".into(),
            agent: "a".into(),
            session: "s".into(),
            tool: "exec".into(),
            message: "m".into(),
            matched_policies: vec![],
            pid: None,
            cwd: None,
            created_at: "t".into(),
            expires_at: "t".into(),
            resolved_by: None,
            resolution_message: None,
            resolved_at: None,
            scope: None,
        }
    }

    #[test]
    fn a_grant_covers_its_pieces_in_its_tree_and_its_text_in_its_session() {
        let g = Grants::default();
        let me = i64::from(std::process::id());
        g.add(Grant {
            id: "A".into(),
            by: "me".into(),
            agent: "a".into(),
            session: "s".into(),
            command: "bash -c 'wget x'".into(),
            pieces: vec!["wget x".into()],
            pid: Some(me),
            until: Some(std::time::Instant::now() + TREE_WINDOW),
        });
        let ask = |command: &str, pieces: &[&str], pid: i64, session: &str| {
            let pieces: Vec<String> = pieces.iter().map(|p| p.to_string()).collect();
            g.covering(&Asking {
                agent: "a",
                session,
                command,
                pieces: &pieces,
                pid: Some(pid),
                ppid: None,
            })
            .map(|g| g.id)
        };
        assert_eq!(ask("wget x", &["wget x"], me, "s"), Some("A".into()));
        assert_eq!(ask("wget y", &["wget y"], me, "s"), None);
        assert_eq!(
            ask("wget x && rm -rf ~", &["wget x", "rm -rf ~"], me, "s"),
            None
        );
        assert_eq!(ask("wget x", &["wget x"], me, "other"), None);
        // pid 1 is no descendant of this test.
        assert_eq!(ask("wget x", &["wget x"], 1, "s"), None);
        g.add(Grant {
            id: "S".into(),
            by: "me".into(),
            agent: "a".into(),
            session: "s".into(),
            command: "curl y".into(),
            pieces: vec!["curl y".into()],
            pid: None,
            until: None,
        });
        assert_eq!(ask("curl y", &["curl y"], 1, "s"), Some("S".into()));
        assert_eq!(ask("curl y", &["curl y"], 1, "t"), None);
    }

    #[test]
    fn settle_once_then_gone() {
        let a = Approvals::default();
        let mut rx = a.create(info("1")).unwrap();
        assert_eq!(a.pending_count(), 1);
        let approved = Outcome::Approved {
            by: "me".into(),
            message: None,
        };
        let settled = a.settle("1", approved.clone(), "now".into()).unwrap();
        assert_eq!(settled.status, "approved");
        assert_eq!(rx.try_recv().ok(), Some(approved));
        assert_eq!(a.pending_count(), 0);
        assert!(matches!(
            a.settle("1", Outcome::Expired, "now".into()),
            Err(ResolveError::Gone(_))
        ));
        assert_eq!(
            a.settle("2", Outcome::Expired, "now".into()),
            Err(ResolveError::NotFound)
        );
    }
}
