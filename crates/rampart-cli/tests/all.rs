//! End-to-end tests of the `rampart` binary: real processes, real files, a throw-away
//! `RAMPART_HOME` each, servers on free loopback ports and private Unix sockets.

// Helpers outside #[test] functions may unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agents;
mod approvals;
mod dashboard;
mod export;
mod fail_closed;
mod families;
mod fastpath;
mod faults_preload;
mod faults_server;
mod hostile;
mod launcher;
mod policy_cli;
mod preload;
mod protect;
mod security;
mod server;
mod supervise;
mod util;
