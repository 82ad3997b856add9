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
    /// Two policies share a name. Across files (typically a second shipped profile copied
    /// next to the first) the message says which file to remove.
    #[error("{}", duplicate_message(.name, .first, .second))]
    DuplicateName {
        name: String,
        first: crate::model::Origin,
        second: crate::model::Origin,
    },
}

/// `policy `x` is defined twice: A:3 and B:3`, and when A and B are different files,
/// `; remove one of them, e.g. `rm B``: the usual cause is a second profile copied into
/// the policy directory, and the loader cannot guess which one the user meant. The
/// suggestion is `standard.yaml` when it is one of the two (the profile `rampart init`
/// writes, so the other one is the newcomer), else the second file.
fn duplicate_message(
    name: &str,
    first: &crate::model::Origin,
    second: &crate::model::Origin,
) -> String {
    let mut text = format!("policy `{name}` is defined twice: {first} and {second}");
    if first.file != second.file {
        let is_standard = |o: &crate::model::Origin| {
            o.file.file_name().and_then(|n| n.to_str()) == Some("standard.yaml")
        };
        let remove = if is_standard(first) { first } else { second };
        text.push_str("; remove one of them, e.g. `rm ");
        text.push_str(&shell_word(&remove.file.display().to_string()));
        text.push('`');
    }
    text
}

/// `word` as one shell word: unchanged when it has nothing a shell would split or
/// expand, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
