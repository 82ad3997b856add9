//! Loading policy files: YAML → [`PolicyFile`] with strict validation. Every error names
//! `file:line:column` and, for misspelt keys or actions, the word that was probably meant.
//!
//! Strict on purpose: a policy that silently ignores a misspelt `comand_matches` would allow
//! what its author meant to deny. So unknown keys, wrong types, duplicate keys, empty lists
//! (which would turn a condition into "anything") and `when:` on a `default: true` rule are
//! all errors. What is *legal but suspicious* is left to [`crate::lint`].
//!
//! Decisions worth knowing:
//! * `version` may be missing (it means `"1"`) and may be written `1` or `"1"`.
//! * A list of strings may also be written as one string (`tool: exec`).
//! * `null` (a key with nothing after it) is accepted for `policies:` and `rules:` (an
//!   empty list, so everything can be commented out) and refused everywhere else.
//! * Disabled policies and rules are validated, then dropped.
//! * A rule may carry a `name:` for the reader; it is checked to be a string and not kept.
//! * Errors are collected where reading can go on (an unknown key is skipped, a bad
//!   policy, rule or test is left out and the next one read) so `rampart policy lint`
//!   shows every mistake at once ([`parse_str_all`]); [`parse_str`] keeps the first, the
//!   one met first in the file. Invalid YAML stops reading the file. Inline tests run only
//!   on a file with no other error (a half-read file would fail them for no reason), and
//!   every failing test is reported.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, ScanError, YamlData};

use crate::error::{Hint, PolicyError};
use crate::glob::Glob;
use crate::model::{
    Action, Conditions, InlineTest, Needle, Origin, Pattern, Policy, PolicyFile, Rule, Scope,
    TargetPattern,
};
use crate::place::TargetGlob;

type Node<'i> = MarkedYaml<'i>;

const TOP_KEYS: &[&str] = &["version", "default_action", "policies", "tests"];
const TEST_KEYS: &[&str] = &["command", "expect", "cwd", "home", "agent"];
const POLICY_KEYS: &[&str] = &[
    "name",
    "description",
    "priority",
    "enabled",
    "match",
    "rules",
];
const MATCH_KEYS: &[&str] = &["agent", "tool", "session", "session_matches"];
const RULE_KEYS: &[&str] = &[
    "name",
    "action",
    "when",
    "message",
    "description",
    "enabled",
    "default",
    "quiet",
];
const WHEN_KEYS: &[&str] = &[
    "command_matches",
    "command_contains",
    "command_not_matches",
    "session_matches",
    "path_matches",
    "target_matches",
    "target_not_matches",
    "exe_matches",
];

/// The only policy format version there is.
const VERSION: &str = "1";

/// Deepest nesting of mappings and sequences a policy file may have (a policy needs six).
/// saphyr's loader recurses once per level, so thousands of levels (`- - - …`) would
/// overflow the stack and abort the process instead of returning an error.
const MAX_NESTING: usize = 64;

/// Default `priority` of a policy.
const DEFAULT_PRIORITY: i64 = 100;

/// Words people write for an action, mapped to the action they mean (for hints only).
const ACTION_SYNONYMS: &[(&str, &str)] = &[
    ("block", "deny"),
    ("reject", "deny"),
    ("forbid", "deny"),
    ("refuse", "deny"),
    ("disallow", "deny"),
    ("drop", "deny"),
    ("permit", "allow"),
    ("accept", "allow"),
    ("pass", "allow"),
    ("prompt", "ask"),
    ("confirm", "ask"),
    ("approve", "ask"),
    ("review", "ask"),
    ("audit", "log"),
    ("warn", "log"),
    ("monitor", "log"),
    ("record", "log"),
];

/// Parses policy YAML `text`; `file` is only used to name locations. The error is the
/// first one met in the file ([`parse_str_all`] has them all).
pub fn parse_str(file: &Path, text: &str) -> Result<PolicyFile, PolicyError> {
    parse_str_all(file, text).map_err(|mut errors| {
        // Never empty by construction; an empty list still reads as an error.
        if errors.is_empty() {
            PolicyError::Invalid {
                file: file.to_path_buf(),
                line: 1,
                column: 1,
                message: "invalid policy file".to_owned(),
                hint: Hint(None),
            }
        } else {
            errors.swap_remove(0)
        }
    })
}

/// Parses policy YAML `text` like [`parse_str`], and on failure returns every error
/// found, in the order they were met (never an empty list).
pub fn parse_str_all(file: &Path, text: &str) -> Result<PolicyFile, Vec<PolicyError>> {
    let cx = Cx {
        file,
        shared: Arc::new(file.to_path_buf()),
        errors: RefCell::new(Vec::new()),
    };
    check_nesting(&cx, text).map_err(|e| vec![e])?;
    let docs = MarkedYaml::load_from_str(text).map_err(|e| vec![cx.scan_error(text, &e)])?;
    let mut docs = docs.iter();
    let root = docs.next();
    if let Some(extra) = docs.find(|d| !is_nothing(d)) {
        return Err(vec![cx.at(
            extra,
            "a policy file holds one YAML document; remove the `---` before this one".into(),
            None,
        )]);
    }
    let file = match root {
        Some(root) if !is_nothing(root) => cx.file(root),
        _ => Ok(PolicyFile {
            path: cx.shared.clone(),
            version: VERSION.to_owned(),
            default_action: None,
            policies: Vec::new(),
            tests: Vec::new(),
        }),
    };
    let mut errors = cx.errors.into_inner();
    match file {
        Ok(file) if errors.is_empty() => {
            let failures = run_inline_tests(&file);
            if failures.is_empty() {
                Ok(file)
            } else {
                Err(failures)
            }
        }
        Ok(_) => Err(errors),
        Err(e) => {
            errors.push(e);
            Err(errors)
        }
    }
}

/// Evaluates a file's `tests:` against the file alone (other files may change the
/// effective decision; these pin what this file says). Every failure is returned,
/// pointing at its test; any failure refuses the file.
fn run_inline_tests(file: &PolicyFile) -> Vec<PolicyError> {
    if file.tests.is_empty() {
        return Vec::new();
    }
    let set = match crate::eval::PolicySet::new(vec![file.clone()]) {
        Ok(set) => set,
        Err(e) => return vec![e],
    };
    let mut failures = Vec::new();
    for test in &file.tests {
        let home = test.home.as_deref().unwrap_or("/home/user");
        let cwd = match test.cwd.as_deref() {
            Some(cwd) => match cwd.strip_prefix('~') {
                Some(rest) => format!("{home}{rest}"),
                None => cwd.to_owned(),
            },
            None => format!("{home}/project"),
        };
        let decision = set.evaluate(&crate::eval::Request {
            tool: "exec",
            agent: test.agent.as_deref().unwrap_or("preload"),
            session: "",
            command: &test.command,
            cwd: Some(&cwd),
            home: Some(home),
            ..crate::eval::Request::default()
        });
        if decision.action != test.expect {
            let why = match &decision.rule {
                Some(rule) => format!("policy {} at {rule}", decision.matched_policies.join(", ")),
                None => "default_action".to_owned(),
            };
            failures.push(PolicyError::Invalid {
                file: test.origin.file.as_ref().clone(),
                line: test.origin.line,
                column: test.column,
                message: format!(
                    "inline test failed: `{}` in {cwd}: expected {}, got {} ({why})",
                    one_line(&test.command),
                    test.expect,
                    decision.action
                ),
                hint: Hint(None),
            });
        }
    }
    failures
}

/// Refuses YAML nested deeper than [`MAX_NESTING`], walking the parser's events (which
/// does not recurse) before the recursive loader sees the text. Syntax errors are left to
/// the loader, which reports them with its own message; it only gets that far into the
/// text when the nesting up to the error is shallow.
fn check_nesting(cx: &Cx<'_>, text: &str) -> Result<(), PolicyError> {
    use saphyr_parser::{Event, Parser};
    let mut depth = 0usize;
    for item in Parser::new_from_str(text) {
        match item {
            Ok((Event::SequenceStart(..) | Event::MappingStart(..), span)) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(PolicyError::Invalid {
                        file: cx.file.to_path_buf(),
                        line: span.start.line(),
                        column: span.start.col() + 1,
                        message: format!(
                            "lists and mappings nested more than {MAX_NESTING} levels deep"
                        ),
                        hint: Hint(None),
                    });
                }
            }
            Ok((Event::SequenceEnd | Event::MappingEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// Reads and parses one policy file.
pub fn load_file(path: &Path) -> Result<PolicyFile, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(path, &text)
}

/// Reads and parses one policy file, with every error ([`parse_str_all`]).
pub fn load_file_all(path: &Path) -> Result<PolicyFile, Vec<PolicyError>> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        vec![PolicyError::Io {
            path: path.to_path_buf(),
            source,
        }]
    })?;
    parse_str_all(path, &text)
}

/// Loads every `*.yaml` / `*.yml` file of `dir`, sorted by file name. A missing
/// directory is an empty list.
pub fn load_dir(dir: &Path) -> Result<Vec<PolicyFile>, PolicyError> {
    let mut paths = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PolicyError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| PolicyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        );
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|p| load_file(p)).collect()
}

/// The closest of `candidates` to `word` by edit distance (transpositions count as one
/// edit), if it is close enough to be a plausible typo.
pub fn suggest(word: &str, candidates: &[&str]) -> Option<String> {
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for &candidate in candidates {
        let distance = edit_distance(&lower, candidate);
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    let (distance, candidate) = best?;
    let limit = (candidate.chars().count() / 3).max(1);
    (distance <= limit).then(|| candidate.to_owned())
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows: i-2, i-1, i.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The hint for a word that is not an action.
fn action_hint(word: &str) -> Option<String> {
    let lower = word.to_lowercase();
    ACTION_SYNONYMS
        .iter()
        .find(|(synonym, _)| *synonym == lower)
        .map(|(_, action)| (*action).to_owned())
        .or_else(|| suggest(word, Action::WORDS))
}

/// Parsing context: the file being read, for locations.
struct Cx<'f> {
    file: &'f Path,
    shared: Arc<PathBuf>,
    /// Errors reading went on past, in the order met.
    errors: RefCell<Vec<PolicyError>>,
}

/// The entries of one YAML mapping, keys checked against the allowed set.
struct Fields<'n, 'i> {
    entries: Vec<(&'n str, &'n Node<'i>)>,
}

impl<'n, 'i> Fields<'n, 'i> {
    fn get(&self, key: &str) -> Option<&'n Node<'i>> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

impl Cx<'_> {
    /// Records an error and lets reading go on.
    fn note(&self, error: PolicyError) {
        self.errors.borrow_mut().push(error);
    }

    /// `result`'s value, or `None` with its error recorded.
    fn keep<T>(&self, result: Result<T, PolicyError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.note(e);
                None
            }
        }
    }

    fn at(&self, node: &Node<'_>, message: String, hint: Option<String>) -> PolicyError {
        PolicyError::Invalid {
            file: self.file.to_path_buf(),
            line: node.span.start.line(),
            column: node.span.start.col() + 1,
            message,
            hint: Hint(hint),
        }
    }

    fn origin(&self, node: &Node<'_>) -> Origin {
        Origin {
            file: self.shared.clone(),
            line: node.span.start.line(),
        }
    }

    fn scan_error(&self, text: &str, e: &ScanError) -> PolicyError {
        let mark = e.marker();
        let message = if e.info() == "duplicated key in mapping" {
            match key_at(text, mark.index()) {
                Some(key) => format!("duplicate key `{}`", one_line(&key)),
                None => "duplicate key".to_owned(),
            }
        } else {
            format!("invalid YAML: {}", e.info())
        };
        PolicyError::Invalid {
            file: self.file.to_path_buf(),
            line: mark.line(),
            column: mark.col() + 1,
            message,
            hint: Hint(None),
        }
    }

    /// Checks that `node` is a mapping whose keys are all in `allowed`. `what` names the
    /// mapping in messages ("a rule", "`when`"), `place` says where a key is ("in a rule").
    fn fields<'n, 'i>(
        &self,
        node: &'n Node<'i>,
        (what, place): (&str, &str),
        allowed: &[&str],
    ) -> Result<Fields<'n, 'i>, PolicyError> {
        let YamlData::Mapping(map) = &node.data else {
            return Err(self.at(
                node,
                format!("{what} must be a mapping, found {}", describe(node)),
                None,
            ));
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map.iter() {
            // A bad key is recorded and skipped: the rest of the mapping is still read.
            let Some(name) = as_str(key) else {
                self.note(self.at(
                    key,
                    format!("keys {place} must be strings, found {}", describe(key)),
                    None,
                ));
                continue;
            };
            if !allowed.contains(&name) {
                self.note(self.at(
                    key,
                    format!(
                        "unknown key `{}` {place}; valid keys: {}",
                        one_line(name),
                        allowed.join(", ")
                    ),
                    suggest(name, allowed),
                ));
                continue;
            }
            entries.push((name, value));
        }
        Ok(Fields { entries })
    }

    fn string<'n>(&self, node: &'n Node<'_>, key: &str) -> Result<&'n str, PolicyError> {
        as_str(node).ok_or_else(|| {
            self.at(
                node,
                format!("`{key}` must be a string, found {}", describe(node)),
                None,
            )
        })
    }

    fn opt_string(
        &self,
        fields: &Fields<'_, '_>,
        key: &str,
    ) -> Result<Option<String>, PolicyError> {
        fields
            .get(key)
            .map(|node| self.string(node, key).map(str::to_owned))
            .transpose()
    }

    fn opt_bool(&self, fields: &Fields<'_, '_>, key: &str) -> Result<Option<bool>, PolicyError> {
        let Some(node) = fields.get(key) else {
            return Ok(None);
        };
        match &node.data {
            YamlData::Value(Scalar::Boolean(b)) => Ok(Some(*b)),
            _ => Err(self.at(
                node,
                format!("`{key}` must be true or false, found {}", describe(node)),
                None,
            )),
        }
    }

    fn action(&self, node: &Node<'_>, key: &str) -> Result<Action, PolicyError> {
        let word = self.string(node, key)?;
        Action::parse(word).ok_or_else(|| {
            self.at(
                node,
                format!(
                    "unknown action `{}`; valid actions: {}",
                    one_line(word),
                    Action::WORDS.join(", ")
                ),
                action_hint(word),
            )
        })
    }

    /// A list of strings, or one string standing for a list of one. Never empty: an empty
    /// list would silently turn a condition or scope into "anything".
    fn strings<'n, 'i>(
        &self,
        node: &'n Node<'i>,
        key: &str,
    ) -> Result<Vec<(&'n str, &'n Node<'i>)>, PolicyError> {
        if let Some(s) = as_str(node) {
            return Ok(vec![(s, node)]);
        }
        let YamlData::Sequence(items) = &node.data else {
            return Err(self.at(
                node,
                format!(
                    "`{key}` must be a string or a list of strings, found {}",
                    describe(node)
                ),
                None,
            ));
        };
        if items.is_empty() {
            return Err(self.at(
                node,
                format!("`{key}` is an empty list; give at least one entry or remove the key"),
                None,
            ));
        }
        items
            .iter()
            .map(|item| match as_str(item) {
                Some(s) => Ok((s, item)),
                None => Err(self.at(
                    item,
                    format!(
                        "entries of `{key}` must be strings, found {}",
                        describe(item)
                    ),
                    None,
                )),
            })
            .collect()
    }

    fn patterns(
        &self,
        fields: &Fields<'_, '_>,
        key: &str,
        compile: fn(&str) -> Glob,
    ) -> Result<Vec<Pattern>, PolicyError> {
        let Some(node) = fields.get(key) else {
            return Ok(Vec::new());
        };
        Ok(self
            .strings(node, key)?
            .into_iter()
            .map(|(text, item)| Pattern {
                glob: compile(text),
                origin: self.origin(item),
            })
            .collect())
    }

    /// `target_matches`-style patterns (see [`crate::place::TargetGlob`]).
    fn targets(
        &self,
        fields: &Fields<'_, '_>,
        key: &str,
    ) -> Result<Vec<TargetPattern>, PolicyError> {
        let Some(node) = fields.get(key) else {
            return Ok(Vec::new());
        };
        Ok(self
            .strings(node, key)?
            .into_iter()
            .map(|(text, item)| TargetPattern {
                text: text.to_owned(),
                glob: TargetGlob::new(text),
                origin: self.origin(item),
            })
            .collect())
    }

    /// A list that may be written as `null` (everything in it commented out).
    fn items<'n, 'i>(&self, node: &'n Node<'i>, key: &str) -> Result<&'n [Node<'i>], PolicyError> {
        match &node.data {
            YamlData::Sequence(items) => Ok(items),
            YamlData::Value(Scalar::Null) => Ok(&[]),
            _ => Err(self.at(
                node,
                format!("`{key}` must be a list, found {}", describe(node)),
                None,
            )),
        }
    }

    fn file(&self, root: &Node<'_>) -> Result<PolicyFile, PolicyError> {
        let YamlData::Mapping(_) = &root.data else {
            return Err(self.at(
                root,
                format!(
                    "a policy file must be a mapping with a `policies:` list, found {}",
                    describe(root)
                ),
                None,
            ));
        };
        let top = self.fields(root, ("the top level", "at the top level"), TOP_KEYS)?;
        if let Some(node) = top.get("version") {
            let version = match &node.data {
                YamlData::Value(Scalar::String(s)) => s.to_string(),
                YamlData::Value(Scalar::Integer(i)) => i.to_string(),
                YamlData::Value(Scalar::FloatingPoint(f)) => f.to_string(),
                _ => {
                    self.note(self.at(
                        node,
                        format!("`version` must be \"1\", found {}", describe(node)),
                        None,
                    ));
                    VERSION.to_owned()
                }
            };
            if version != VERSION {
                self.note(self.at(
                    node,
                    format!(
                        "unsupported `version` {}; this Rampart reads version \"1\"",
                        one_line(&version)
                    ),
                    None,
                ));
            }
        }
        let default_action = top
            .get("default_action")
            .and_then(|node| self.keep(self.action(node, "default_action")));

        let mut policies: Vec<Policy> = Vec::new();
        // Every policy read, enabled or not, for the duplicate-name check.
        let mut names: Vec<(String, Origin)> = Vec::new();
        if let Some(list) = top.get("policies") {
            for node in self.keep(self.items(list, "policies")).unwrap_or_default() {
                let Some((policy, enabled)) = self.keep(self.policy(node)) else {
                    continue;
                };
                if let Some((_, first)) = names.iter().find(|(n, _)| *n == policy.name) {
                    self.note(PolicyError::DuplicateName {
                        name: policy.name,
                        first: first.clone(),
                        second: policy.origin,
                    });
                    continue;
                }
                names.push((policy.name.clone(), policy.origin.clone()));
                if enabled {
                    policies.push(policy);
                }
            }
        }
        let mut tests = Vec::new();
        if let Some(list) = top.get("tests") {
            for node in self.keep(self.items(list, "tests")).unwrap_or_default() {
                if let Some(test) = self.keep(self.inline_test(node)) {
                    tests.push(test);
                }
            }
        }
        Ok(PolicyFile {
            path: self.shared.clone(),
            version: VERSION.to_owned(),
            default_action,
            policies,
            tests,
        })
    }

    /// One entry of `tests:`.
    fn inline_test(&self, node: &Node<'_>) -> Result<InlineTest, PolicyError> {
        let fields = self.fields(node, ("a test", "in a test"), TEST_KEYS)?;
        let Some(command) = fields.get("command") else {
            return Err(self.at(node, "test has no `command`".into(), None));
        };
        let Some(expect) = fields.get("expect") else {
            return Err(self.at(
                node,
                "test has no `expect` (allow, deny, ask or log)".into(),
                None,
            ));
        };
        let optional = |key: &str| -> Result<Option<String>, PolicyError> {
            fields
                .get(key)
                .map(|n| self.string(n, key).map(str::to_owned))
                .transpose()
        };
        Ok(InlineTest {
            command: self.string(command, "command")?.to_owned(),
            cwd: optional("cwd")?,
            home: optional("home")?,
            agent: optional("agent")?,
            expect: self.action(expect, "expect")?,
            origin: self.origin(node),
            column: node.span.start.col() + 1,
        })
    }

    /// One entry of `policies:`, and whether it is enabled.
    fn policy(&self, node: &Node<'_>) -> Result<(Policy, bool), PolicyError> {
        let fields = self.fields(node, ("a policy", "in a policy"), POLICY_KEYS)?;
        let Some(name_node) = fields.get("name") else {
            return Err(self.at(node, "policy has no `name`".into(), None));
        };
        let name = self.string(name_node, "name")?;
        if name.trim().is_empty() {
            return Err(self.at(name_node, "policy `name` must not be empty".into(), None));
        }
        // Past the name, a mistake is recorded and reading goes on, so the rules below
        // are checked too.
        let priority = match fields.get("priority") {
            None => DEFAULT_PRIORITY,
            Some(p) => match &p.data {
                YamlData::Value(Scalar::Integer(i)) => *i,
                _ => {
                    self.note(self.at(
                        p,
                        format!("`priority` must be an integer, found {}", describe(p)),
                        None,
                    ));
                    DEFAULT_PRIORITY
                }
            },
        };
        let enabled = self
            .keep(self.opt_bool(&fields, "enabled"))
            .flatten()
            .unwrap_or(true);
        let scope = match fields.get("match") {
            None => Scope::default(),
            Some(m) => self.keep(self.scope(m)).unwrap_or_default(),
        };
        let mut rules = Vec::new();
        if let Some(list) = fields.get("rules") {
            for rule_node in self.keep(self.items(list, "rules")).unwrap_or_default() {
                if let Some(Some(rule)) = self.keep(self.rule(rule_node)) {
                    rules.push(rule);
                }
            }
        }
        let policy = Policy {
            name: name.to_owned(),
            description: self.keep(self.opt_string(&fields, "description")).flatten(),
            priority,
            scope,
            rules,
            origin: self.origin(node),
        };
        Ok((policy, enabled))
    }

    /// `match:` of a policy.
    fn scope(&self, node: &Node<'_>) -> Result<Scope, PolicyError> {
        let m = self.fields(node, ("`match`", "in `match`"), MATCH_KEYS)?;
        let mut session = self.patterns(&m, "session", Glob::command)?;
        session.extend(self.patterns(&m, "session_matches", Glob::command)?);
        Ok(Scope {
            agent: self.patterns(&m, "agent", Glob::command)?,
            tool: self.patterns(&m, "tool", Glob::command)?,
            session,
        })
    }

    /// One entry of `rules:`; `None` when it is disabled or had a mistake (recorded: the
    /// rest of the rule is still checked).
    fn rule(&self, node: &Node<'_>) -> Result<Option<Rule>, PolicyError> {
        let fields = self.fields(node, ("a rule", "in a rule"), RULE_KEYS)?;
        let before = self.errors.borrow().len();
        let action = match fields.get("action") {
            None => {
                self.note(self.at(
                    node,
                    format!("rule has no `action` (one of {})", Action::WORDS.join(", ")),
                    None,
                ));
                None
            }
            Some(action_node) => self.keep(self.action(action_node, "action")),
        };
        // Only checked: the name is for whoever reads the file.
        self.keep(self.opt_string(&fields, "name"));
        let is_default = self
            .keep(self.opt_bool(&fields, "default"))
            .flatten()
            .unwrap_or(false);
        let when =
            match fields.get("when") {
                None => Conditions::default(),
                Some(w) if is_default => {
                    self.note(self.at(
                    w,
                    "a `default: true` rule applies when no other rule of its policy matches, \
                     so it cannot have `when` conditions"
                        .into(),
                    None,
                ));
                    Conditions::default()
                }
                Some(w) => self.keep(self.conditions(w)).unwrap_or_default(),
            };
        let message = self.keep(self.opt_string(&fields, "message")).flatten();
        let description = self.keep(self.opt_string(&fields, "description")).flatten();
        let enabled = self.keep(self.opt_bool(&fields, "enabled")).flatten();
        let quiet = self
            .keep(self.opt_bool(&fields, "quiet"))
            .flatten()
            .unwrap_or(false);
        // Hiding a refusal or a question from the live feed would hide what needs a
        // person's eye; only an allow can be quiet.
        if let (true, Some(a), Some(node)) = (quiet, action, fields.get("quiet"))
            && a != Action::Allow
        {
            self.note(self.at(
                node,
                format!("`quiet` is for allow rules only; this rule's action is {a}"),
                None,
            ));
        }
        let Some(action) = action else {
            return Ok(None);
        };
        if self.errors.borrow().len() > before || !enabled.unwrap_or(true) {
            return Ok(None);
        }
        Ok(Some(Rule {
            action,
            when,
            message,
            description,
            is_default,
            quiet,
            origin: self.origin(node),
        }))
    }

    fn conditions(&self, node: &Node<'_>) -> Result<Conditions, PolicyError> {
        let w = self.fields(node, ("`when`", "in `when`"), WHEN_KEYS)?;
        let mut command_contains = Vec::new();
        if let Some(list) = w.get("command_contains") {
            for (text, item) in self.strings(list, "command_contains")? {
                if text.is_empty() {
                    return Err(self.at(
                        item,
                        "`command_contains` entries must not be empty (\"\" is in every command)"
                            .into(),
                        None,
                    ));
                }
                command_contains.push(Needle {
                    text: text.to_owned(),
                    origin: self.origin(item),
                });
            }
        }
        Ok(Conditions {
            command_matches: self.patterns(&w, "command_matches", Glob::command)?,
            command_contains,
            command_not_matches: self.patterns(&w, "command_not_matches", Glob::command)?,
            session_matches: self.patterns(&w, "session_matches", Glob::command)?,
            path_matches: self.patterns(&w, "path_matches", Glob::path)?,
            target_matches: self.targets(&w, "target_matches")?,
            target_not_matches: self.targets(&w, "target_not_matches")?,
            exe_matches: self.patterns(&w, "exe_matches", Glob::path)?,
        })
    }
}

/// `Null` and the placeholder saphyr uses for an empty document.
fn is_nothing(node: &Node<'_>) -> bool {
    matches!(
        node.data,
        YamlData::BadValue | YamlData::Value(Scalar::Null)
    )
}

fn as_str<'n>(node: &'n Node<'_>) -> Option<&'n str> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.as_ref()),
        _ => None,
    }
}

/// What a node is, for "found ..." in type errors.
fn describe(node: &Node<'_>) -> &'static str {
    match &node.data {
        YamlData::Value(Scalar::Null) => "nothing (null)",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_)) => "an integer",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) => "a string",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        YamlData::Tagged(..) => "a tagged value",
        YamlData::Representation(..) | YamlData::Alias(_) | YamlData::BadValue => {
            "an invalid value"
        }
    }
}

/// `text` with control characters (line breaks, tabs, escapes) written as escapes, so an
/// error that quotes what the file says stays one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The mapping key written at character `index` of `text` (for duplicate-key errors,
/// where saphyr reports only the position).
fn key_at(text: &str, index: usize) -> Option<String> {
    let rest: String = text.chars().skip(index).take(256).collect();
    let first = rest.chars().next()?;
    let key = if first == '"' || first == '\'' {
        let body = &rest[first.len_utf8()..];
        &body[..body.find(first)?]
    } else {
        let end = rest.find([':', '\n', ',', '}']).unwrap_or(rest.len());
        rest[..end].trim()
    };
    (!key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
