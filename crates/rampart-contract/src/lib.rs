//! The exec-check contract: the rules that `librampart.so`, `rampart preload` and
//! `rampart supervise` must apply identically, kept in one place so they cannot drift.
//!
//! - [`url`]: which `RAMPART_URL` values are usable (loopback HTTP or an absolute
//!   `unix:` path) and why the others are refused;
//! - [`values`]: how the other `RAMPART_*` values are read (mode, booleans, durations),
//!   their defaults and the transport timeouts;
//! - [`verdict`]: the decision matrix — what an answer, a status, a malformed reply or
//!   silence means in each mode, and the one case where fail-open applies;
//! - [`printable`]: how commands and messages are shown on a terminal (control
//!   characters, DEL and bidi controls escaped).
//!
//! `no_std`, no heap, no dependencies: the preload library links it into code that runs in
//! vfork children. Nothing here allocates, locks, panics or reads the environment itself.
#![no_std]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod printable;
pub mod url;
pub mod values;
pub mod verdict;
