use std::path::Path;

use super::{COMMON_WORDS, lint};
use crate::eval::PolicySet;
use crate::load::parse_str;

const SEED: &str = include_str!("../../../examples/seed-policy.yaml");
const CUSTOM_AGENT: &str = include_str!("../tests/fixtures/custom-agent.yaml");

/// Lints `files` (name, YAML) merged into one set; one warning per line, as printed.
fn warnings(files: &[(&str, &str)]) -> Vec<String> {
    let loaded = files
        .iter()
        .map(|(name, text)| parse_str(Path::new(name), text).unwrap())
        .collect();
    let set = PolicySet::new(loaded).unwrap();
    lint(&set).iter().map(ToString::to_string).collect()
}

fn one(text: &str) -> Vec<String> {
    warnings(&[("p.yaml", text)])
}

#[test]
fn the_seed_example_gets_one_warning_about_nc() {
    assert_eq!(
        warnings(&[("custom.yaml", SEED)]),
        [
            "custom.yaml:40: warning: `command_contains: nc` also matches inside other words, \
             such as `sync`; to match the command, use `command_matches: [\"nc *\"]`"
        ]
    );
}

#[test]
fn the_custom_agent_example_gets_one_warning_about_rm() {
    assert_eq!(
        warnings(&[("agent.yaml", CUSTOM_AGENT)]),
        [
            "agent.yaml:9: warning: `command_contains: rm` also matches inside other words, \
             such as `format`; to match the command, use `command_matches: [\"rm *\"]`"
        ]
    );
}

#[test]
fn a_clean_policy_has_no_warnings() {
    let text = r#"
default_action: deny
policies:
  - name: dev
    match: {agent: [preload]}
    rules:
      - action: deny
        when: {command_matches: ["git push --force*"]}
      - action: allow
        when:
          command_matches: ["git *", "cargo *"]
          command_not_matches: ["git push --force*"]
      - action: ask
        when: {command_contains: ["kubectl delete"]}
      - action: log
        default: true
"#;
    assert_eq!(one(text), Vec::<String>::new());
}

#[test]
fn rules_after_a_catch_all_never_apply() {
    let text = r#"
policies:
  - name: p
    rules:
      - action: deny
        when: {command_matches: ["rm *"]}
      - action: ask
        when: {command_matches: ["*"]}
      - action: allow
        when: {command_matches: ["git *"]}
      - action: log
      - action: deny
        default: true
  - name: q
    rules:
      - action: log
      - action: deny
        when: {command_contains: [curl]}
"#;
    assert_eq!(
        one(text),
        [
            "p.yaml:9: warning: rule never applies: the ask rule at p.yaml:7 before it matches \
             every command",
            "p.yaml:11: warning: rule never applies: the ask rule at p.yaml:7 before it \
             matches every command",
            "p.yaml:12: warning: `default: true` rule never applies: the rule at p.yaml:7 \
             matches every command",
            "p.yaml:17: warning: rule never applies: the log rule at p.yaml:16 before it \
             matches every command",
        ]
    );
}

#[test]
fn only_the_first_default_rule_applies() {
    let text = r#"
policies:
  - name: p
    rules:
      - action: ask
        default: true
      - action: deny
        when: {command_matches: ["rm *"]}
      - action: deny
        default: true
"#;
    assert_eq!(
        one(text),
        [
            "p.yaml:9: warning: `default: true` rule never applies: only the first one of a \
          policy does (p.yaml:5)"
        ]
    );
}

#[test]
fn self_contradicting_conditions_never_match() {
    let text = r#"
policies:
  - name: p
    rules:
      - action: deny
        when:
          command_matches: ["rm *"]
          command_not_matches: ["*"]
      - action: ask
        when:
          command_matches: ["curl *", "wget *"]
          command_not_matches: ["wget *", "curl *"]
      - action: log
        when:
          command_matches: [""]
"#;
    assert_eq!(
        one(text),
        [
            "p.yaml:8: warning: rule never matches: `command_not_matches: \"*\"` excludes every \
             command",
            "p.yaml:9: warning: rule never matches: every `command_matches` pattern is also in \
             `command_not_matches`",
            "p.yaml:15: warning: empty `command_matches` pattern only matches an empty command",
        ]
    );
}

#[test]
fn empty_scope_patterns_are_flagged() {
    let text = r#"
policies:
  - name: p
    match:
      agent: [""]
      tool: ["exec", ""]
      session_matches: [""]
    rules:
      - action: deny
        when: {command_matches: ["rm *"]}
"#;
    assert_eq!(
        one(text),
        [
            "p.yaml:5: warning: empty `agent` pattern in `match` only matches calls without an \
             agent",
            "p.yaml:6: warning: empty `tool` pattern in `match` only matches calls without a \
             tool",
            "p.yaml:7: warning: empty `session` pattern in `match` only matches calls without a \
             session",
        ]
    );
}

#[test]
fn patterns_an_earlier_rule_takes_first_are_flagged() {
    let text = r#"
policies:
  - name: p
    rules:
      - action: deny
        when:
          command_matches:
            - "git push *"
            - "npm publish*"
      - action: deny
        when:
          command_contains: ["--force"]
          command_matches: ["git commit *"]
      - action: allow
        when:
          command_matches:
            - "git push *"
            - "git commit *"
            - "git status"
"#;
    // `git commit *` stays reachable: the earlier rule also needs `--force`.
    assert_eq!(
        one(text),
        [
            "p.yaml:17: warning: `git push *` never reaches this allow rule: the deny rule at \
          p.yaml:5 matches it first"
        ]
    );
}

#[test]
fn policies_without_rules_are_flagged() {
    let text = "policies:\n  - name: empty\n    rules: []\n  - name: bare\n";
    assert_eq!(
        one(text),
        [
            "p.yaml:2: warning: policy `empty` has no rules, so it never decides anything",
            "p.yaml:4: warning: policy `bare` has no rules, so it never decides anything",
        ]
    );
}

#[test]
fn files_that_disagree_on_default_action_are_flagged() {
    let files = [
        ("a.yaml", "default_action: allow\n"),
        ("b.yaml", "default_action: deny\n"),
        ("c.yaml", "policies: []\n"),
        ("d.yaml", "default_action: deny\n"),
        ("e.yaml", "default_action: ask\n"),
    ];
    assert_eq!(
        warnings(&files),
        [
            "a.yaml:1: warning: `default_action: allow` is overridden: b.yaml sets \
             `default_action: deny`, and the strictest default applies to every file",
            "e.yaml:1: warning: `default_action: ask` is overridden: b.yaml sets \
             `default_action: deny`, and the strictest default applies to every file",
        ]
    );
    assert_eq!(
        warnings(&[("a.yaml", "default_action: allow\n"), ("b.yaml", "{}\n")]),
        Vec::<String>::new()
    );
}

#[test]
fn short_needles_only_warn_when_a_common_word_contains_them() {
    let text = r#"
policies:
  - name: p
    rules:
      - action: ask
        when:
          command_contains: ["dd", "qqq", "rm -", "sh", "wget"]
"#;
    assert_eq!(
        one(text),
        [
            "p.yaml:7: warning: `command_contains: dd` also matches inside other words, such as \
             `add`; to match the command, use `command_matches: [\"dd *\"]`",
            "p.yaml:7: warning: `command_contains: sh` also matches inside other words, such as \
             `push`; to match the command, use `command_matches: [\"sh *\"]`",
        ]
    );
}

#[test]
fn the_word_list_is_sizeable_and_has_no_duplicates() {
    let mut words = COMMON_WORDS.to_vec();
    words.sort_unstable();
    words.dedup();
    assert_eq!(words.len(), COMMON_WORDS.len());
    assert!(words.len() >= 200);
}
