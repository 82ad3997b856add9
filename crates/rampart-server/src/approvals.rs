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

#[derive(Default)]
pub struct Approvals {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    settled_order: VecDeque<String>,
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
    pub fn create(&self, info: ApprovalInfo) -> watch::Receiver<Option<Outcome>> {
        let (tx, rx) = watch::channel(None);
        self.lock()
            .entries
            .insert(info.id.clone(), Entry { info, tx });
        rx
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
        self.lock()
            .entries
            .values()
            .filter(|e| e.info.status == "pending")
            .count()
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
        let rx = a.create(info("1"));
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
