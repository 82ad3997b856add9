//! Evaluation: one call against a merged [`PolicySet`].
//!
//! The command is split into pieces ([`crate::shell::normalize`]). Each policy whose
//! `match:` scope covers the call contributes, for the raw command and for every piece,
//! the action of its first matching rule. Then:
//!
//! * a deny/ask/log rule that fires on the raw command or on any piece counts;
//! * pieces seen only through `sudo`/`doas` count for deny and ask rules only;
//! * an allow rule grants only the piece it matched, so a command is allowed by rules only
//!   when every piece is; a piece no rule matched gets `default_action`;
//! * across all of that, deny wins, then ask, then log, then allow.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::PolicyError;
use crate::model::{Action, Conditions, Origin, Policy, PolicyFile, Rule, Scope};
use crate::shell::{self, Piece};

/// All loaded policies, merged and ordered by priority, ready to evaluate.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: Vec<Policy>,
    default_action: Action,
    files: Vec<FileSummary>,
}

/// What one loaded file contributed (for `policy show`, reload results and status).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileSummary {
    pub path: PathBuf,
    pub policies: usize,
    pub rules: usize,
    pub default_action: Option<Action>,
}

/// One call to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub tool: &'a str,
    pub agent: &'a str,
    pub session: &'a str,
    pub command: &'a str,
    /// The path a file tool acts on, if any; for `exec`, path-like words of the command
    /// are tested by `path_matches` as well.
    pub path: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// An `exec` call with the seed's default agent, `preload`.
    pub fn exec(command: &'a str) -> Request<'a> {
        Request {
            tool: "exec",
            agent: "preload",
            session: "",
            command,
            path: None,
        }
    }
}

/// The outcome of evaluating one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub message: String,
    /// Names of the policies whose rules produced `action`, in evaluation order; empty
    /// when `default_action` decided.
    pub matched_policies: Vec<String>,
    /// Where the deciding rule was written; `None` when `default_action` decided.
    pub rule: Option<Origin>,
}

impl Decision {
    /// `allow` and `log` let the call run.
    pub fn allowed(&self) -> bool {
        matches!(self.action, Action::Allow | Action::Log)
    }
}

/// A rule that fired, kept while combining.
#[derive(Clone, Copy)]
struct Hit<'p> {
    action: Action,
    policy: &'p Policy,
    rule: &'p Rule,
}

impl PolicySet {
    /// Merges loaded files. Policy names must be unique across files. When files disagree
    /// on `default_action`, the strictest one applies (lint warns about it).
    pub fn new(files: Vec<PolicyFile>) -> Result<PolicySet, PolicyError> {
        let mut policies: Vec<Policy> = Vec::new();
        let mut summaries = Vec::with_capacity(files.len());
        let mut default_action: Option<Action> = None;
        for file in files {
            summaries.push(FileSummary {
                path: file.path.as_ref().clone(),
                policies: file.policies.len(),
                rules: file.policies.iter().map(|p| p.rules.len()).sum(),
                default_action: file.default_action,
            });
            if let Some(action) = file.default_action {
                default_action = Some(match default_action {
                    Some(prev) if prev.severity() >= action.severity() => prev,
                    _ => action,
                });
            }
            for policy in file.policies {
                if let Some(prev) = policies.iter().find(|p| p.name == policy.name) {
                    return Err(PolicyError::DuplicateName {
                        name: policy.name.clone(),
                        first: prev.origin.clone(),
                        second: policy.origin.clone(),
                    });
                }
                policies.push(policy);
            }
        }
        // Stable: equal priorities keep file order.
        policies.sort_by_key(|p| p.priority);
        Ok(PolicySet {
            policies,
            default_action: default_action.unwrap_or(Action::Allow),
            files: summaries,
        })
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn default_action(&self) -> Action {
        self.default_action
    }

    pub fn files(&self) -> &[FileSummary] {
        &self.files
    }

    pub fn rule_count(&self) -> usize {
        self.policies.iter().map(|p| p.rules.len()).sum()
    }

    /// Decides one call. Never fails, never panics; linear in the command's length.
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        let pieces = shell::normalize(req.command);
        self.evaluate_pieces(req, &pieces)
    }

    /// Like [`PolicySet::evaluate`] with the pieces already computed (the CLI prints them).
    pub fn evaluate_pieces(&self, req: &Request<'_>, pieces: &[Piece]) -> Decision {
        let applicable: Vec<&Policy> = self
            .policies
            .iter()
            .filter(|p| scope_covers(&p.scope, req))
            .collect();

        let mut best: Option<Hit<'_>> = None;
        let mut hits: Vec<Hit<'_>> = Vec::new();
        // The raw command: deny/ask/log rules fire on it; an allow there grants nothing
        // (it still shadows later rules of its policy, as first-match says).
        let ordinary: Vec<&Piece> = pieces.iter().filter(|p| !p.privileged).collect();
        if !ordinary.is_empty() {
            for policy in &applicable {
                if let Some(rule) = first_match(policy, req.command, req)
                    && rule.action != Action::Allow
                {
                    hits.push(Hit {
                        action: rule.action,
                        policy,
                        rule,
                    });
                }
            }
        }

        // Every ordinary piece must be decided by some rule, else it takes the default.
        let mut defaulted = false;
        let subjects: Vec<&str> = if ordinary.is_empty() {
            vec![req.command]
        } else {
            ordinary.iter().map(|p| p.text.as_str()).collect()
        };
        for subject in subjects {
            let mut decided = false;
            for policy in &applicable {
                if let Some(rule) = first_match(policy, subject, req) {
                    decided = true;
                    hits.push(Hit {
                        action: rule.action,
                        policy,
                        rule,
                    });
                }
            }
            defaulted |= !decided;
        }

        // Pieces seen through sudo/doas: only deny and ask count.
        for piece in pieces.iter().filter(|p| p.privileged) {
            for policy in &applicable {
                if let Some(rule) = first_match(policy, &piece.text, req)
                    && matches!(rule.action, Action::Deny | Action::Ask)
                {
                    hits.push(Hit {
                        action: rule.action,
                        policy,
                        rule,
                    });
                }
            }
        }

        for hit in &hits {
            if best.is_none_or(|b| hit.action.severity() > b.action.severity()) {
                best = Some(*hit);
            }
        }
        let default_wins =
            defaulted && best.is_none_or(|b| self.default_action.severity() > b.action.severity());
        match best {
            Some(hit) if !default_wins => {
                let mut matched: Vec<String> = Vec::new();
                for h in hits.iter().filter(|h| h.action == hit.action) {
                    if !matched.iter().any(|n| n == &h.policy.name) {
                        matched.push(h.policy.name.clone());
                    }
                }
                Decision {
                    action: hit.action,
                    message: rule_message(hit.policy, hit.rule),
                    matched_policies: matched,
                    rule: Some(hit.rule.origin.clone()),
                }
            }
            _ => Decision {
                action: self.default_action,
                message: default_message(self.default_action),
                matched_policies: Vec::new(),
                rule: None,
            },
        }
    }
}

fn default_message(action: Action) -> String {
    match action {
        Action::Allow => "No rule matched; default action is allow".to_owned(),
        Action::Log => "No rule matched; default action is log".to_owned(),
        Action::Ask => "No rule allows this command; default action is ask".to_owned(),
        Action::Deny => "No rule allows this command; default action is deny".to_owned(),
    }
}

fn rule_message(policy: &Policy, rule: &Rule) -> String {
    if let Some(message) = &rule.message {
        return message.clone();
    }
    match rule.action {
        Action::Allow => format!("Allowed by policy {}", policy.name),
        Action::Log => format!("Logged by policy {}", policy.name),
        Action::Ask => format!("Approval required by policy {}", policy.name),
        Action::Deny => format!("Denied by policy {}", policy.name),
    }
}

fn scope_covers(scope: &Scope, req: &Request<'_>) -> bool {
    any_or_empty(&scope.agent, req.agent)
        && any_or_empty(&scope.tool, req.tool)
        && any_or_empty(&scope.session, req.session)
}

fn any_or_empty(patterns: &[crate::model::Pattern], subject: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.glob.is_match(subject))
}

/// The first rule of `policy` that matches `subject`; `default: true` rules come last.
fn first_match<'p>(policy: &'p Policy, subject: &str, req: &Request<'_>) -> Option<&'p Rule> {
    policy
        .rules
        .iter()
        .filter(|r| !r.is_default)
        .find(|r| conditions_hold(&r.when, subject, req))
        .or_else(|| policy.rules.iter().find(|r| r.is_default))
}

fn conditions_hold(when: &Conditions, subject: &str, req: &Request<'_>) -> bool {
    if !when.command_matches.is_empty()
        && !when
            .command_matches
            .iter()
            .any(|p| p.glob.is_match(subject))
    {
        return false;
    }
    if !when.command_contains.is_empty()
        && !when
            .command_contains
            .iter()
            .any(|n| memchr::memmem::find(subject.as_bytes(), n.text.as_bytes()).is_some())
    {
        return false;
    }
    if when
        .command_not_matches
        .iter()
        .any(|p| p.glob.is_match(subject))
    {
        return false;
    }
    if !when.session_matches.is_empty()
        && !when
            .session_matches
            .iter()
            .any(|p| p.glob.is_match(req.session))
    {
        return false;
    }
    if !when.path_matches.is_empty() {
        let mut paths = req
            .path
            .into_iter()
            .chain(subject.split(' ').filter(|w| looks_like_path(w)));
        if !paths.any(|path| when.path_matches.iter().any(|p| p.glob.is_match(path))) {
            return false;
        }
    }
    true
}

fn looks_like_path(word: &str) -> bool {
    word.starts_with('/')
        || word.starts_with('~')
        || word.starts_with("./")
        || word.starts_with("../")
}

/// Shared handle type used by the server for the live policy.
pub type SharedPolicySet = Arc<PolicySet>;

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
