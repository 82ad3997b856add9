//! Everything a request handler needs, shared behind one `Arc`.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use rampart_audit::AuditLog;
use rampart_policy::PolicySet;

use crate::approvals::Approvals;
use crate::config::ServerConfig;
use crate::events::Events;
use crate::metrics::Metrics;

pub struct AppState {
    pub config: ServerConfig,
    /// The policy in force. Readers clone the `Arc` and drop the lock at once, so a reload
    /// never waits for an evaluation and vice versa.
    pub policy: RwLock<Loaded>,
    pub token: RwLock<String>,
    /// Agent credentials (`POST /v1/agents`), kept in `$RAMPART_HOME/agents.json`.
    pub agents: crate::agents::Agents,
    pub audit: AuditLog,
    pub approvals: Approvals,
    /// What given approvals still cover (`approvals::Grants`).
    pub grants: crate::approvals::Grants,
    pub events: Events,
    pub metrics: Metrics,
    pub started: Instant,
    /// Serialises reloads (watcher, SIGHUP and the API may fire together).
    pub reload_lock: tokio::sync::Mutex<()>,
    /// The connection cap of both listeners (for `/metrics`).
    pub connections: Arc<crate::serve::Connections>,
    /// Audit export targets and their lag/last error.
    pub exports: crate::export::Exports,
    /// The policy repository's adopted and refused commits, when `--policy-repo` is set.
    pub policy_repo: crate::policy_repo::RepoState,
    /// Allowed `system()`/`popen()` calls whose shell's exec is part of them.
    pub shells: crate::shells::Shells,
    /// Webhook notifications of asks (and denies, fail-open reports) — `notify.rs`.
    pub notifier: crate::notify::Notifier,
}

#[derive(Clone)]
pub struct Loaded {
    pub set: Arc<PolicySet>,
    pub source: String,
    pub last_error: Option<String>,
}

impl AppState {
    pub fn policy(&self) -> Arc<PolicySet> {
        match self.policy.read() {
            Ok(guard) => guard.set.clone(),
            // A writer panicked while holding the lock; the stored value is still whole
            // (we only ever assign it), so keep serving it.
            Err(poisoned) => poisoned.into_inner().set.clone(),
        }
    }

    pub fn loaded(&self) -> Loaded {
        match self.policy.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_loaded(&self, loaded: Loaded) {
        match self.policy.write() {
            Ok(mut guard) => *guard = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
    }

    /// Whether `presented` is the admin token (constant time), without copying it: this
    /// runs on every request.
    pub fn is_admin_token(&self, presented: &[u8]) -> bool {
        match self.token.read() {
            Ok(guard) => crate::token::constant_time_eq(presented, guard.as_bytes()),
            Err(poisoned) => {
                crate::token::constant_time_eq(presented, poisoned.into_inner().as_bytes())
            }
        }
    }

    pub fn set_token(&self, token: String) {
        match self.token.write() {
            Ok(mut guard) => *guard = token,
            Err(poisoned) => *poisoned.into_inner() = token,
        }
    }
}
