//! The policy model: what a loaded policy file means, independent of YAML.
//!
//! Every node remembers where it came from (`Origin`) so that evaluation results, lint
//! warnings and `policy show` can point back at `file:line`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::glob::Glob;
use crate::place::TargetGlob;

/// What a rule (or the default) does with a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Log,
    Ask,
    Deny,
}

impl Action {
    /// Precedence when policies disagree: deny beats ask beats log beats allow.
    pub fn severity(self) -> u8 {
        match self {
            Action::Allow => 0,
            Action::Log => 1,
            Action::Ask => 2,
            Action::Deny => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Log => "log",
            Action::Ask => "ask",
            Action::Deny => "deny",
        }
    }

    /// Parses an action word as written in a policy file. `watch` is accepted as `log`
    /// for users coming from other Rampart implementations.
    pub fn parse(word: &str) -> Option<Action> {
        match word {
            "allow" => Some(Action::Allow),
            "log" | "watch" => Some(Action::Log),
            "ask" => Some(Action::Ask),
            "deny" => Some(Action::Deny),
            _ => None,
        }
    }

    /// Words accepted by [`Action::parse`], for did-you-mean hints.
    pub const WORDS: &'static [&'static str] = &["allow", "deny", "ask", "log", "watch"];
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a policy element was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file it came from; `embedded:standard.yaml` style names for built-in profiles.
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A glob together with the text it was written as and where.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub glob: Glob,
    pub origin: Origin,
}

/// A `target_matches` pattern: a path glob anchored at `/`, the home (`~`, `$HOME`) or
/// the working tree (`$CWD`), as written and where.
#[derive(Debug, Clone)]
pub struct TargetPattern {
    pub text: String,
    pub glob: TargetGlob,
    pub origin: Origin,
}

/// A literal string (for `command_contains`) and where it was written.
#[derive(Debug, Clone)]
pub struct Needle {
    pub text: String,
    pub origin: Origin,
}

/// `match:` — which calls a policy applies to. Empty lists mean "any".
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub agent: Vec<Pattern>,
    pub tool: Vec<Pattern>,
    /// `session` and `session_matches` both land here.
    pub session: Vec<Pattern>,
}

/// `when:` — the conditions of one rule. All present conditions must hold; within one
/// list any entry may match. A rule with no conditions matches everything.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub command_matches: Vec<Pattern>,
    pub command_contains: Vec<Needle>,
    pub command_not_matches: Vec<Pattern>,
    pub session_matches: Vec<Pattern>,
    /// Path globs: `*` stays inside one segment, `**` crosses segments.
    pub path_matches: Vec<Pattern>,
    /// The places the piece changes (`crate::place`): some target must match one of
    /// these…
    pub target_matches: Vec<TargetPattern>,
    /// …and none of these.
    pub target_not_matches: Vec<TargetPattern>,
    /// Path globs (like `path_matches`) on the program file the exec runs, as the caller
    /// resolved it: a version manager's shim is told from the real `python3` by where it
    /// lives. A call that names no program file matches none.
    pub exe_matches: Vec<Pattern>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.command_matches.is_empty()
            && self.command_contains.is_empty()
            && self.command_not_matches.is_empty()
            && self.session_matches.is_empty()
            && self.path_matches.is_empty()
            && self.target_matches.is_empty()
            && self.target_not_matches.is_empty()
            && self.exe_matches.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub action: Action,
    pub when: Conditions,
    pub message: Option<String>,
    pub description: Option<String>,
    /// `default: true` — the rule applies when no other rule of its policy matched.
    pub is_default: bool,
    /// `quiet: true` (allow rules only) — a known-benign allow: still audited, marked
    /// `quiet`, and left out of the live feed and `audit tail` unless asked for.
    pub quiet: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub description: Option<String>,
    /// Lower runs first; default 100. Ties keep file order.
    pub priority: i64,
    pub scope: Scope,
    /// Only enabled rules; disabled rules are dropped at load time.
    pub rules: Vec<Rule>,
    pub origin: Origin,
}

/// One parsed policy file.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    pub path: Arc<PathBuf>,
    pub version: String,
    /// `default_action:` if the file gave one.
    pub default_action: Option<Action>,
    /// Only enabled policies; disabled ones are dropped at load time.
    pub policies: Vec<Policy>,
    /// `tests:` — commands and the decision this file must give them (checked at load).
    pub tests: Vec<InlineTest>,
}

/// One entry of a file's `tests:` list.
#[derive(Debug, Clone)]
pub struct InlineTest {
    pub command: String,
    /// The directory it runs in (default: `<home>/project`); a leading `~` is the home.
    pub cwd: Option<String>,
    /// The user's home (default: `/home/user`).
    pub home: Option<String>,
    /// The agent (default: `preload`).
    pub agent: Option<String>,
    pub expect: Action,
    pub origin: Origin,
    /// 1-based column of the entry, for `file:line:col` errors.
    pub column: usize,
}
