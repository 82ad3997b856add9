//! `rampart policy lint`: problems that load fine but are probably mistakes.

use crate::eval::PolicySet;
use crate::model::Origin;

/// One finding, printed as `file:line: warning: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub origin: Origin,
    pub message: String,
}

/// Lints a merged policy set.
pub fn lint(set: &PolicySet) -> Vec<Warning> {
    let _ = set;
    Vec::new()
}
