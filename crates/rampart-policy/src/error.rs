//! The one error type of this crate: every variant says which file (and line) is at fault.

use std::fmt;
use std::path::PathBuf;

/// A "did you mean" suggestion, printed after the message when present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hint(pub Option<String>);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(word) => write!(f, " (did you mean `{word}`?)"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file is not valid YAML, or valid YAML that is not a valid policy.
    #[error("{}:{line}:{column}: {message}{hint}", file.display())]
    Invalid {
        file: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based.
        column: usize,
        message: String,
        hint: Hint,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy `{name}` is defined twice: {first} and {second}")]
    DuplicateName {
        name: String,
        first: crate::model::Origin,
        second: crate::model::Origin,
    },
}
