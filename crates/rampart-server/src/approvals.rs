//! Pending `ask` decisions waiting for a person.
//!
//! The preflight handler that hit an `ask` registers an approval and waits on its watch
//! channel; `POST /v1/approvals/{id}/resolve` (CLI, dashboard) settles it. Settled
//! approvals are kept (bounded) so that a late second resolve gets 410, not 404.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::watch;

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
    info: ApprovalInfo,
    tx: watch::Sender<Option<Outcome>>,
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
    pub fn create(
        &self,
        info: ApprovalInfo,
    ) -> Result<watch::Receiver<Option<Outcome>>, TooManyPending> {
        let mut inner = self.lock();
        if inner.pending_count() >= MAX_PENDING {
            return Err(TooManyPending);
        }
        let (tx, rx) = watch::channel(None);
        inner.entries.insert(info.id.clone(), Entry { info, tx });
        Ok(rx)
    }

    pub fn pending(&self) -> Vec<ApprovalInfo> {
        let inner = self.lock();
        let mut list: Vec<ApprovalInfo> = inner
            .entries
            .values()
            .filter(|e| e.info.status == "pending")
            .map(|e| e.info.clone())
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    pub fn pending_count(&self) -> usize {
        self.lock().pending_count()
    }

    pub fn get(&self, id: &str) -> Option<ApprovalInfo> {
        self.lock().entries.get(id).map(|e| e.info.clone())
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
            return Err(ResolveError::Gone(Box::new(entry.info.clone())));
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
        let info = entry.info.clone();
        let _ = entry.tx.send(Some(outcome));
        inner.settled_order.push_back(id.to_owned());
        while inner.settled_order.len() > KEEP_SETTLED {
            if let Some(old) = inner.settled_order.pop_front() {
                inner.entries.remove(&old);
            }
        }
        Ok(info)
    }
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
        }
    }

    #[test]
    fn settle_once_then_gone() {
        let a = Approvals::default();
        let rx = a.create(info("1")).unwrap();
        assert_eq!(a.pending_count(), 1);
        let approved = Outcome::Approved {
            by: "me".into(),
            message: None,
        };
        let settled = a.settle("1", approved.clone(), "now".into()).unwrap();
        assert_eq!(settled.status, "approved");
        assert_eq!(*rx.borrow(), Some(approved));
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
