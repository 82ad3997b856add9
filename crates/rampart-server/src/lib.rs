//! Rampart's policy server (DESIGN.md §5): the HTTP API over TCP and a Unix socket,
//! bearer-token auth, preflight evaluation with audit-before-answer, `ask` approvals held
//! open until a person decides, Server-Sent Events, hot policy reload and metrics.
//!
//! Not here: policy semantics (`rampart-policy`) and the audit file format
//! (`rampart-audit`). This crate wires them to the network.

pub mod agents;
mod api;
mod approvals;
mod auth;
pub mod client;
pub mod config;
mod dashboard;
mod decide;
mod events;
pub mod export;
mod fastpath;
mod metrics;
pub mod notify;
pub mod policy_repo;
mod program;
mod reload;
mod serve;
mod shells;
mod state;
pub mod token;
pub mod wire;

pub use api::{Access, ROUTES, Route};
pub use config::{Mode, ServerConfig};
/// The one rule for showing untrusted text (commands, names, messages) on a terminal or
/// in a log line, re-exported for the CLI's admin commands.
pub use rampart_contract::printable::printable_string;
pub use serve::{ServerError, run};
