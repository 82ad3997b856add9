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

use std::collections::HashSet;
use std::path::PathBuf;

use crate::error::PolicyError;
use crate::model::{Action, Conditions, Origin, Policy, PolicyFile, Rule, Scope};
use crate::place;
use crate::shell::{self, Normalized};

/// All loaded policies, merged and ordered by priority, ready to evaluate.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: Vec<Policy>,
    default_action: Action,
    files: Vec<FileSummary>,
    index: RuleIndex,
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
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub tool: &'a str,
    pub agent: &'a str,
    pub session: &'a str,
    pub command: &'a str,
    /// The path a file tool acts on, if any; for `exec`, path-like words of the command
    /// are tested by `path_matches` as well.
    pub path: Option<&'a str>,
    /// The directory the call was made in (absolute). Path operands of deletes,
    /// permission and ownership changes are resolved against it (`target_matches`), and
    /// it is the working tree `$CWD` stands for.
    pub cwd: Option<&'a str>,
    /// The program file the exec runs, as the caller resolved it.
    pub exe: Option<&'a str>,
    /// The user's home directory: what `~` and `$HOME` mean.
    pub home: Option<&'a str>,
    /// Other readings of the program the exec runs (issue 14, family 2), each replacing
    /// the first piece's program word: the canonical name of a symlink (`rm`), the `#!`
    /// interpreter with its argument and the script (`rm -rf /tmp/s`), the name of a
    /// program a rule names whose copy this is. The caller works them out from the file
    /// ([`PolicySet::named_programs`] says which names a rule could care about).
    pub aliases: &'a [String],
}

impl<'a> Request<'a> {
    /// An `exec` call with the seed's default agent, `preload`.
    pub fn exec(command: &'a str) -> Request<'a> {
        Request {
            tool: "exec",
            agent: "preload",
            session: "",
            command,
            ..Request::default()
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
    /// An allow made only by `quiet: true` rules, every piece covered by one: audited
    /// with `quiet`, kept out of the live feed and `audit tail` unless asked for.
    pub quiet: bool,
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
            index: RuleIndex::build(&policies),
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

    /// Program names that deny and ask rules name as the first word of a pattern (`rm`,
    /// `shred`, `mkfs.ext4`): a renamed copy of one of these is worth recognising.
    pub fn named_programs(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for rule in self.policies.iter().flat_map(|p| &p.rules) {
            if !matches!(rule.action, Action::Deny | Action::Ask) {
                continue;
            }
            for pattern in &rule.when.command_matches {
                let Some((prefix, complete)) = pattern.glob.literal_prefix() else {
                    continue;
                };
                let word = match prefix.split_once(' ') {
                    Some((word, _)) => word,
                    None if complete => prefix,
                    None => continue,
                };
                if !word.is_empty()
                    && !word.contains(['/', '$', '=', '('])
                    && !names.iter().any(|n| n == word)
                {
                    names.push(word.to_owned());
                }
            }
        }
        names
    }

    pub fn rule_count(&self) -> usize {
        self.policies.iter().map(|p| p.rules.len()).sum()
    }

    /// Decides one call. Never fails, never panics; linear in the command's length.
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        self.evaluate_normalized(req, &shell::normalize_checked(req.command))
    }

    /// Like [`PolicySet::evaluate`] with the command already normalised (the CLI prints
    /// the pieces). When normalisation gave up on adversarial nesting (`truncated`), allow
    /// rules cannot grant the command: a piece that was not looked into may hide anything,
    /// so it takes `default_action` unless a deny or ask already applies.
    pub fn evaluate_normalized(&self, req: &Request<'_>, normalized: &Normalized) -> Decision {
        self.evaluate_with(req, normalized, false)
    }

    /// [`PolicySet::evaluate`] trying every rule in order instead of the ones the index
    /// picks: the reference the index is tested against (an index miss would silently
    /// skip a deny). Not for production use: it is slower.
    #[doc(hidden)]
    pub fn evaluate_exhaustively(&self, req: &Request<'_>) -> Decision {
        self.evaluate_with(req, &shell::normalize_checked(req.command), true)
    }

    fn evaluate_with(
        &self,
        req: &Request<'_>,
        normalized: &Normalized,
        exhaustive: bool,
    ) -> Decision {
        // The program under its other names: `x -rf ~` is also `rm -rf ~` when x is rm.
        let with_aliases;
        let normalized = match (req.aliases, normalized.pieces.first()) {
            ([], _) | (_, None) => normalized,
            (aliases, Some(first)) => {
                let rest = first.text.split_once(' ').map_or("", |(_, rest)| rest);
                let mut more = normalized.clone();
                for alias in aliases {
                    let text = if rest.is_empty() {
                        alias.clone()
                    } else {
                        format!("{alias} {rest}")
                    };
                    // Like a command behind sudo: deny and ask rules see it, an allow
                    // rule need not cover it (the command as written is still judged).
                    more.pieces.push(shell::Piece {
                        text,
                        privileged: true,
                    });
                }
                with_aliases = more;
                &with_aliases
            }
        };
        let pieces = normalized.pieces.as_slice();
        let mut scratch = Scratch::new(self, req);
        scratch.exhaustive = exhaustive;
        // Where each piece runs and what it changes, only when some rule asks.
        let placed = if self.index.uses_targets {
            place::walk(pieces, &place::Context::from(req))
        } else {
            Vec::new()
        };
        // The anchors of `target_matches`, only when some piece changes a place.
        if placed.iter().any(|p| !p.targets.paths.is_empty()) {
            let ctx = place::Context::from(req);
            scratch.places = Places {
                home: req.home.unwrap_or("~").to_owned(),
                tree: ctx.tree(),
            };
        }
        let targets_of = |k: usize| -> &[String] {
            placed
                .get(k)
                .map_or(&[][..], |p| p.targets.paths.as_slice())
        };
        let mut hits: Vec<Hit<'_>> = Vec::new();

        // The raw command: deny/ask/log rules fire on it; an allow there grants nothing
        // (it still shadows later rules of its policy, as first-match says). A plain
        // command is its own only piece, so the raw text's rules are kept for reuse.
        let has_ordinary = pieces.iter().any(|p| !p.privileged);
        // A command that is one piece as written changes what that piece changes.
        let raw_targets = match pieces {
            [only] if only.text == req.command => targets_of(0),
            _ => &[],
        };
        let raw: Vec<Option<&Rule>> = if has_ordinary {
            scratch.targets = raw_targets;
            self.first_matches(req.command, req, &mut scratch);
            self.collect(&scratch.slots, &mut hits, |a| a != Action::Allow);
            scratch.slots.clone()
        } else {
            Vec::new()
        };

        // Every ordinary piece must be decided by some rule, else it takes the default.
        // Identical pieces decide identically: each distinct text is evaluated once.
        let mut defaulted = normalized.truncated;
        let mut seen: HashSet<&str> = HashSet::new();
        let ordinary = pieces
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.privileged)
            .map(|(k, p)| (p.text.as_str(), targets_of(k)));
        let subjects: Box<dyn Iterator<Item = (&str, &[String])>> = if has_ordinary {
            Box::new(ordinary)
        } else {
            Box::new(std::iter::once((req.command, &[][..])))
        };
        // With one piece there is nothing to deduplicate (and a long one is not hashed).
        // The same text in another place may change something else: not deduplicated.
        let dedup = pieces.len() > 1;
        for (subject, targets) in subjects {
            if dedup && targets.is_empty() && !seen.insert(subject) {
                continue;
            }
            scratch.targets = targets;
            self.decide(subject, req, &raw, raw_targets, &mut scratch);
            let before = hits.len();
            self.collect(&scratch.slots, &mut hits, |_| true);
            defaulted |= hits.len() == before;
        }

        // Pieces seen through sudo/doas: only deny and ask count.
        let mut seen_privileged: HashSet<&str> = HashSet::new();
        for (k, piece) in pieces.iter().enumerate().filter(|(_, p)| p.privileged) {
            let targets = targets_of(k);
            if dedup && targets.is_empty() && !seen_privileged.insert(piece.text.as_str()) {
                continue;
            }
            scratch.targets = targets;
            self.decide(&piece.text, req, &raw, raw_targets, &mut scratch);
            self.collect(&scratch.slots, &mut hits, |a| {
                matches!(a, Action::Deny | Action::Ask)
            });
        }

        let mut best: Option<Hit<'_>> = None;
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
                // Quiet only when nothing but quiet allows decided, and no piece was left
                // to the default.
                let quiet =
                    hit.action == Action::Allow && !defaulted && hits.iter().all(|h| h.rule.quiet);
                Decision {
                    action: hit.action,
                    message: rule_message(hit.policy, hit.rule),
                    matched_policies: matched,
                    rule: Some(hit.rule.origin.clone()),
                    quiet,
                }
            }
            _ => Decision {
                action: self.default_action,
                message: default_message(self.default_action),
                matched_policies: Vec::new(),
                rule: None,
                quiet: false,
            },
        }
    }

    /// [`PolicySet::first_matches`], reusing the raw command's result (`raw`, empty when
    /// not computed) for a subject with the same text.
    fn decide<'p>(
        &'p self,
        subject: &str,
        req: &Request<'_>,
        raw: &[Option<&'p Rule>],
        raw_targets: &[String],
        scratch: &mut Scratch<'p>,
    ) {
        // The raw command was decided with its own targets (the same as a piece of the
        // same text, or none).
        if raw.len() == scratch.slots.len()
            && subject == req.command
            && (scratch.targets.is_empty() || std::ptr::eq(scratch.targets, raw_targets))
        {
            scratch.slots.copy_from_slice(raw);
        } else {
            self.first_matches(subject, req, scratch);
        }
    }

    /// Fills `scratch.slots[policy]` with the first rule of each applicable policy that
    /// matches `subject` (`default: true` rules last), `None` elsewhere. Only rules the
    /// index says could match are tested: the rest cannot, so first-match order is kept.
    fn first_matches<'p>(&'p self, subject: &str, req: &Request<'_>, scratch: &mut Scratch<'p>) {
        scratch.slots.fill(None);
        let (candidates, found) = scratch.bits.split_at_mut(scratch.split);
        self.index.candidates(subject, candidates, found);
        if scratch.exhaustive {
            for id in 0..self.index.rules.len() {
                set_bit(candidates, u32::try_from(id).unwrap_or(u32::MAX));
            }
        }
        let (candidates, found) = (&*candidates, &*found);
        for id in ones(candidates) {
            let Some(&(pi, ri)) = self.index.rules.get(id) else {
                continue;
            };
            let (pi, ri) = (pi as usize, ri as usize);
            if !scratch.applicable.get(pi).copied().unwrap_or(false)
                || scratch.slots.get(pi).is_none_or(|s| s.is_some())
            {
                continue;
            }
            // A rule about places cannot match a subject that changes none.
            if scratch.targets.is_empty()
                && self.index.needs_targets.get(id).copied().unwrap_or(false)
            {
                continue;
            }
            let required = self.index.requires.get(id).map_or(&[][..], Vec::as_slice);
            if !scratch.exhaustive
                && !required.is_empty()
                && !required.iter().any(|&literal| has_bit(found, literal))
            {
                continue;
            }
            let needles = self.index.needles.get(id).map_or(&[][..], Vec::as_slice);
            if let Some(rule) = self.policies.get(pi).and_then(|p| p.rules.get(ri))
                && conditions_hold(&rule.when, needles, found, subject, req)
                && targets_hold(&rule.when, scratch.targets, &scratch.places)
                && let Some(slot) = scratch.slots.get_mut(pi)
            {
                *slot = Some(rule);
            }
        }
        for (pi, policy) in self.policies.iter().enumerate() {
            if scratch.applicable.get(pi).copied().unwrap_or(false)
                && let Some(slot) = scratch.slots.get_mut(pi)
                && slot.is_none()
            {
                *slot = policy.rules.iter().find(|r| r.is_default);
            }
        }
    }

    /// Appends the filled slots to `hits` (in policy order) when `keep` accepts their
    /// action.
    fn collect<'p>(
        &'p self,
        slots: &[Option<&'p Rule>],
        hits: &mut Vec<Hit<'p>>,
        keep: impl Fn(Action) -> bool,
    ) {
        for (policy, slot) in self.policies.iter().zip(slots) {
            if let Some(rule) = *slot
                && keep(rule.action)
            {
                hits.push(Hit {
                    action: rule.action,
                    policy,
                    rule,
                });
            }
        }
    }
}

/// Per-call working memory, allocated once per evaluation and reused for every subject.
struct Scratch<'p> {
    /// Test every rule, not only the index's candidates (the reference evaluation).
    exhaustive: bool,
    /// The places the current subject changes (none for the raw command).
    targets: &'p [String],
    /// The home and working tree `target_matches` patterns are anchored at.
    places: Places,
    /// Whether each policy's `match:` scope covers the call.
    applicable: Vec<bool>,
    /// The first matching rule of each policy, for the current subject.
    slots: Vec<Option<&'p Rule>>,
    /// Two bit sets in one allocation: the rule ids that could match the current
    /// subject, then (from `split`) the indexed literals that occur in it.
    bits: Vec<u64>,
    split: usize,
}

impl<'p> Scratch<'p> {
    fn new(set: &'p PolicySet, req: &Request<'_>) -> Scratch<'p> {
        // Most policies share a scope (`tool: [exec]`): each distinct one is tested once.
        let mut applicable: Vec<bool> = Vec::with_capacity(set.policies.len());
        for (pi, policy) in set.policies.iter().enumerate() {
            let same = set.index.same_scope.get(pi).copied().unwrap_or(pi);
            let covers = match applicable.get(same) {
                Some(&covers) if same < pi => covers,
                _ => scope_covers(&policy.scope, req),
            };
            applicable.push(covers);
        }
        let split = set.index.rules.len().div_ceil(64);
        Scratch {
            exhaustive: false,
            targets: &[],
            places: Places::default(),
            applicable,
            slots: vec![None; set.policies.len()],
            bits: vec![0; split + set.index.literal_rules.len().div_ceil(64)],
            split,
        }
    }
}

/// The request's home (`~` when unknown) and working tree, for `target_matches`.
#[derive(Debug, Default)]
struct Places {
    home: String,
    tree: Option<String>,
}

impl<'a> From<&Request<'a>> for place::Context<'a> {
    fn from(req: &Request<'a>) -> place::Context<'a> {
        place::Context {
            cwd: req.cwd,
            home: req.home,
        }
    }
}

/// `target_matches` / `target_not_matches`: some place the subject changes matches one
/// of the former (any, if there are none) and none of the latter. A rule with neither
/// holds; a subject that changes no place never matches a rule with either.
fn targets_hold(when: &Conditions, targets: &[String], places: &Places) -> bool {
    if when.target_matches.is_empty() && when.target_not_matches.is_empty() {
        return true;
    }
    let tree = places.tree.as_deref();
    targets.iter().any(|path| {
        let hit = |p: &crate::model::TargetPattern| p.glob.is_match(path, &places.home, tree);
        (when.target_matches.is_empty() || when.target_matches.iter().any(hit))
            && !when.target_not_matches.iter().any(hit)
    })
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

/// Whether `when` holds for `subject`; `needles` test its `command_contains`, in order,
/// `found` being the literals the scan found in `subject`.
fn conditions_hold(
    when: &Conditions,
    needles: &[Needle],
    found: &[u64],
    subject: &str,
    req: &Request<'_>,
) -> bool {
    if !when.command_matches.is_empty()
        && !when
            .command_matches
            .iter()
            .any(|p| p.glob.is_match(subject))
    {
        return false;
    }
    if !when.command_contains.is_empty()
        && !needles.iter().any(|n| match n {
            Needle::Found(literal) => has_bit(found, *literal),
            Needle::Search(finder) => finder.find(subject.as_bytes()).is_some(),
        })
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
        let mut paths = req.path.into_iter().chain(path_words(subject));
        if !paths.any(|path| when.path_matches.iter().any(|p| p.glob.is_match(path))) {
            return false;
        }
    }
    if !when.exe_matches.is_empty()
        && !req
            .exe
            .is_some_and(|exe| when.exe_matches.iter().any(|p| p.glob.is_match(exe)))
    {
        return false;
    }
    true
}

/// The words of `subject` (split at single spaces) that [`looks_like_path`], in order.
/// Only words starting with `/`, `~` or `.` are looked at, found with `memchr`, so a long
/// command of relative paths is skipped quickly.
fn path_words(subject: &str) -> impl Iterator<Item = &str> {
    let bytes = subject.as_bytes();
    std::iter::once(0)
        .chain(memchr::memchr_iter(b' ', bytes).map(|space| space + 1))
        .filter(move |&start| matches!(bytes.get(start), Some(b'/' | b'~' | b'.')))
        .filter_map(move |start| subject.get(start..)?.split(' ').next())
        .filter(|word| looks_like_path(word))
}

fn looks_like_path(word: &str) -> bool {
    word.starts_with('/')
        || word.starts_with('~')
        || word.starts_with("./")
        || word.starts_with("../")
}

#[path = "index.rs"]
mod index;

#[cfg(test)]
use index::Scanner;
use index::{Needle, RuleIndex, has_bit, ones, set_bit};

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
