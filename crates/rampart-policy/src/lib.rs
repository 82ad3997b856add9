//! Rampart's policy language (DESIGN.md §8): the model, YAML loading with `file:line`
//! errors, globs, shell-command normalisation, evaluation and lint.
//!
//! Pure: no network, no clock, no environment. The server, `rampart test` and the
//! supervisor all evaluate through [`PolicySet::evaluate`], so there is one source of truth.

pub mod error;
pub mod eval;
pub mod expand;
pub mod glob;
pub mod lint;
pub mod load;
pub mod model;
pub mod place;
pub mod profiles;
pub mod shell;

pub use error::PolicyError;
pub use eval::{Decision, PolicySet, Request};
pub use glob::Glob;
pub use model::{Action, Origin};
