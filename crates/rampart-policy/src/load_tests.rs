use std::path::Path;

use super::{parse_str, suggest};
use crate::error::PolicyError;
use crate::model::{Action, PolicyFile};

const SEED: &str = include_str!("../../../examples/seed-policy.yaml");
const CUSTOM_AGENT: &str = include_str!("../tests/fixtures/custom-agent.yaml");

fn parse(text: &str) -> PolicyFile {
    match parse_str(Path::new("p.yaml"), text) {
        Ok(file) => file,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn error(text: &str) -> String {
    match parse_str(Path::new("p.yaml"), text) {
        Ok(file) => panic!("expected an error, loaded {file:?}"),
        Err(e) => e.to_string(),
    }
}

fn globs(patterns: &[crate::model::Pattern]) -> Vec<&str> {
    patterns.iter().map(|p| p.glob.as_str()).collect()
}

#[test]
fn the_seed_example_loads() {
    let file = parse_str(Path::new("custom.yaml"), SEED).unwrap();
    assert_eq!(file.version, "1");
    assert_eq!(file.default_action, Some(Action::Allow));
    let names: Vec<&str> = file.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "preload-safe-dev",
            "preload-block-destructive",
            "preload-ask-network"
        ]
    );
    let rules: usize = file.policies.iter().map(|p| p.rules.len()).sum();
    assert_eq!(rules, 3);

    let dev = &file.policies[0];
    assert_eq!(dev.origin.to_string(), "custom.yaml:5");
    assert_eq!(dev.priority, 100);
    assert_eq!(globs(&dev.scope.agent), ["preload"]);
    assert_eq!(globs(&dev.scope.tool), ["exec"]);
    assert!(dev.scope.session.is_empty());
    let allow = &dev.rules[0];
    assert_eq!(allow.action, Action::Allow);
    assert_eq!(allow.origin.line, 10);
    assert_eq!(allow.message.as_deref(), Some("Safe development commands"));
    assert_eq!(
        globs(&allow.when.command_matches),
        ["git *", "npm *", "python *", "ls *"]
    );
    assert_eq!(allow.when.command_matches[0].origin.line, 13);
    assert!(!allow.is_default);

    let deny = &file.policies[1].rules[0];
    assert_eq!(deny.action, Action::Deny);
    assert_eq!(
        globs(&deny.when.command_matches),
        ["rm -rf /*", "dd if=*", "mkfs.*", ":(){ :|:& };:"]
    );
    assert_eq!(deny.message.as_deref(), Some("Destructive command blocked"));

    let ask = &file.policies[2].rules[0];
    assert_eq!(ask.action, Action::Ask);
    let needles: Vec<&str> = ask
        .when
        .command_contains
        .iter()
        .map(|n| n.text.as_str())
        .collect();
    assert_eq!(needles, ["curl", "wget", "nc"]);
    assert_eq!(ask.when.command_contains[2].origin.line, 40);
    assert!(ask.when.command_matches.is_empty());
}

#[test]
fn the_custom_agent_example_loads() {
    let file = parse(CUSTOM_AGENT);
    assert_eq!(file.version, "1");
    assert_eq!(file.default_action, None);
    assert_eq!(file.policies.len(), 1);
    let policy = &file.policies[0];
    assert_eq!(policy.name, "my-agent-rules");
    assert_eq!(globs(&policy.scope.agent), ["my-agent"]);
    assert_eq!(globs(&policy.scope.session), ["prod-*"]);
    assert!(policy.scope.tool.is_empty());
    assert_eq!(policy.rules.len(), 1);
    assert_eq!(policy.rules[0].action, Action::Deny);
    assert_eq!(policy.rules[0].when.command_contains.len(), 2);
}

#[test]
fn every_design_extension_loads() {
    let file = parse(
        r#"
version: 1
default_action: watch
policies:
  - name: prod
    description: "Production sessions"
    priority: 10
    enabled: true
    match:
      agent: claude-*
      tool: [exec, write]
      session: ["prod-*"]
      session_matches: ["live-*"]
    rules:
      - name: no secrets
        action: deny
        description: "keep keys out"
        when:
          command_matches: "cat *"
          command_not_matches: ["cat README*"]
          session_matches: ["prod-eu-*"]
          path_matches: ["**/.ssh/**", "/etc/*"]
        message: "no"
      - action: watch
        when:
          command_contains: "kubectl"
      - action: allow
        enabled: false
      - action: ask
        default: true
  - name: off
    enabled: false
    rules:
      - action: deny
  - name: negative
    priority: -5
    rules: []
"#,
    );
    assert_eq!(file.default_action, Some(Action::Log));
    assert_eq!(file.policies.len(), 2);
    let prod = &file.policies[0];
    assert_eq!(prod.description.as_deref(), Some("Production sessions"));
    assert_eq!(prod.priority, 10);
    assert_eq!(globs(&prod.scope.agent), ["claude-*"]);
    assert_eq!(globs(&prod.scope.tool), ["exec", "write"]);
    assert_eq!(globs(&prod.scope.session), ["prod-*", "live-*"]);
    assert_eq!(prod.rules.len(), 3, "the disabled rule is dropped");

    let deny = &prod.rules[0];
    assert_eq!(deny.description.as_deref(), Some("keep keys out"));
    assert_eq!(globs(&deny.when.command_matches), ["cat *"]);
    assert_eq!(globs(&deny.when.command_not_matches), ["cat README*"]);
    assert_eq!(globs(&deny.when.session_matches), ["prod-eu-*"]);
    assert_eq!(globs(&deny.when.path_matches), ["**/.ssh/**", "/etc/*"]);
    // Path globs keep `*` inside one segment; command globs do not.
    assert!(deny.when.path_matches[1].glob.is_match("/etc/passwd"));
    assert!(!deny.when.path_matches[1].glob.is_match("/etc/ssh/config"));
    assert!(deny.when.command_matches[0].glob.is_match("cat /a/b"));

    assert_eq!(prod.rules[1].action, Action::Log);
    assert_eq!(prod.rules[1].when.command_contains[0].text, "kubectl");
    assert_eq!(prod.rules[2].action, Action::Ask);
    assert!(prod.rules[2].is_default);
    assert!(prod.rules[2].when.is_empty());

    assert_eq!(file.policies[1].name, "negative");
    assert_eq!(file.policies[1].priority, -5);
    assert!(file.policies[1].rules.is_empty());
}

#[test]
fn empty_and_comment_only_files_have_no_policies() {
    for text in [
        "",
        "\n\n",
        "# nothing here yet\n  # indented comment\n",
        "---\n",
    ] {
        let file = parse(text);
        assert!(file.policies.is_empty(), "{text:?}");
        assert_eq!(file.default_action, None);
        assert_eq!(file.version, "1");
    }
    assert!(parse("policies:\n  # - name: later\n").policies.is_empty());
}

/// The seed example with one key misspelt, as a user would do it.
#[test]
fn misspelt_key_in_the_seed_names_file_line_column_and_the_fix() {
    let text = SEED.replacen("command_matches", "comand_matches", 1);
    let err = parse_str(Path::new("custom.yaml"), &text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "custom.yaml:12:11: unknown key `comand_matches` in `when`; valid keys: \
         command_matches, command_contains, command_not_matches, session_matches, \
         path_matches, target_matches, target_not_matches, exe_matches (did you mean `command_matches`?)"
    );
}

#[test]
fn misspelt_keys_at_every_level() {
    assert_eq!(
        error("version: \"1\"\npolices: []\n"),
        "p.yaml:2:1: unknown key `polices` at the top level; valid keys: version, \
         default_action, policies, tests (did you mean `policies`?)"
    );
    assert_eq!(
        error("policies:\n  - name: a\n    rules:\n      - actoin: deny\n"),
        "p.yaml:4:9: unknown key `actoin` in a rule; valid keys: name, action, when, \
         message, description, enabled, default, quiet (did you mean `action`?)"
    );
    assert_eq!(
        error("policies:\n  - name: a\n    priorty: 3\n"),
        "p.yaml:3:5: unknown key `priorty` in a policy; valid keys: name, description, \
         priority, enabled, match, rules (did you mean `priority`?)"
    );
    assert_eq!(
        error("policies:\n  - name: a\n    match: {agents: [x]}\n"),
        "p.yaml:3:13: unknown key `agents` in `match`; valid keys: agent, tool, session, \
         session_matches (did you mean `agent`?)"
    );
    // Nothing close enough: no hint.
    assert_eq!(
        error("colour: blue\n"),
        "p.yaml:1:1: unknown key `colour` at the top level; valid keys: version, \
         default_action, policies, tests"
    );
}

#[test]
fn bad_actions_suggest_a_real_one() {
    assert_eq!(
        error("policies:\n  - name: a\n    rules:\n      - action: dney\n"),
        "p.yaml:4:17: unknown action `dney`; valid actions: allow, deny, ask, log, watch \
         (did you mean `deny`?)"
    );
    assert_eq!(
        error("policies:\n  - name: a\n    rules:\n      - action: block\n"),
        "p.yaml:4:17: unknown action `block`; valid actions: allow, deny, ask, log, watch \
         (did you mean `deny`?)"
    );
    assert_eq!(
        error("default_action: Allow\n"),
        "p.yaml:1:17: unknown action `Allow`; valid actions: allow, deny, ask, log, watch \
         (did you mean `allow`?)"
    );
    assert_eq!(
        error("default_action: explode\n"),
        "p.yaml:1:17: unknown action `explode`; valid actions: allow, deny, ask, log, watch"
    );
    assert_eq!(
        error("policies:\n  - name: a\n    rules:\n      - when: {command_contains: x}\n"),
        "p.yaml:4:9: rule has no `action` (one of allow, deny, ask, log, watch)"
    );
}

#[test]
fn wrong_types_say_what_was_expected_and_found() {
    assert_eq!(
        error("policies:\n  - name: a\n    priority: \"10\"\n"),
        "p.yaml:3:15: `priority` must be an integer, found a string"
    );
    assert_eq!(
        error("policies:\n  - name: a\n    priority: 1.5\n"),
        "p.yaml:3:15: `priority` must be an integer, found a number"
    );
    assert_eq!(
        error("policies:\n  - name: a\n    enabled: \"no\"\n"),
        "p.yaml:3:14: `enabled` must be true or false, found a string"
    );
    assert_eq!(
        error("policies:\n  - name: 7\n"),
        "p.yaml:2:11: `name` must be a string, found an integer"
    );
    assert_eq!(
        error("policies:\n  name: a\n"),
        "p.yaml:2:3: `policies` must be a list, found a mapping"
    );
    assert_eq!(
        error("policies:\n  - just a string\n"),
        "p.yaml:2:5: a policy must be a mapping, found a string"
    );
    assert_eq!(
        error(
            "policies:\n  - name: a\n    rules:\n      - action: deny\n        when:\n          \
             command_matches: [1, \"x\"]\n"
        ),
        "p.yaml:6:29: entries of `command_matches` must be strings, found an integer"
    );
    assert_eq!(
        error(
            "policies:\n  - name: a\n    rules:\n      - action: deny\n        when:\n          \
             command_matches: {a: b}\n"
        ),
        "p.yaml:6:28: `command_matches` must be a string or a list of strings, found a mapping"
    );
    assert_eq!(
        error("policies:\n  - name: a\n    rules:\n      - action: deny\n        when:\n"),
        "p.yaml:5:13: `when` must be a mapping, found nothing (null)"
    );
    assert_eq!(
        error("- name: a\n"),
        "p.yaml:1:1: a policy file must be a mapping with a `policies:` list, found a list"
    );
    assert_eq!(
        error("1: x\n"),
        "p.yaml:1:1: keys at the top level must be strings, found an integer"
    );
    assert_eq!(
        error("version: \"2\"\n"),
        "p.yaml:1:10: unsupported `version` 2; this Rampart reads version \"1\""
    );
}

#[test]
fn empty_lists_and_names_are_refused() {
    assert_eq!(
        error(
            "policies:\n  - name: a\n    rules:\n      - action: allow\n        when:\n          \
             command_matches: []\n"
        ),
        "p.yaml:6:28: `command_matches` is an empty list; give at least one entry or remove \
         the key"
    );
    assert_eq!(
        error(
            "policies:\n  - name: a\n    rules:\n      - action: deny\n        when:\n          \
             command_contains: [\"\"]\n"
        ),
        "p.yaml:6:30: `command_contains` entries must not be empty (\"\" is in every command)"
    );
    assert_eq!(
        error("policies:\n  - name: \"  \"\n"),
        "p.yaml:2:11: policy `name` must not be empty"
    );
    assert_eq!(
        error("policies:\n  - rules: []\n"),
        "p.yaml:2:5: policy has no `name`"
    );
}

#[test]
fn a_default_rule_cannot_have_conditions() {
    assert_eq!(
        error(
            "policies:\n  - name: a\n    rules:\n      - action: deny\n        default: true\n        \
             when: {command_contains: x}\n"
        ),
        "p.yaml:6:15: a `default: true` rule applies when no other rule of its policy \
         matches, so it cannot have `when` conditions"
    );
}

#[test]
fn duplicate_keys_are_refused() {
    assert_eq!(
        error("policies:\n  - name: a\n    priority: 1\n    priority: 2\n"),
        "p.yaml:4:5: duplicate key `priority`"
    );
    assert_eq!(
        error("version: \"1\"\n\"version\": \"1\"\n"),
        "p.yaml:2:1: duplicate key `version`"
    );
}

#[test]
fn duplicate_policy_names_in_one_file_name_both_places() {
    let err = parse_str(
        Path::new("p.yaml"),
        "policies:\n  - name: a\n  - name: b\n  - name: a\n    enabled: false\n",
    )
    .unwrap_err();
    assert!(matches!(err, PolicyError::DuplicateName { .. }));
    assert_eq!(
        err.to_string(),
        "policy `a` is defined twice: p.yaml:2 and p.yaml:4"
    );
}

#[test]
fn yaml_syntax_errors_carry_the_parser_position() {
    assert_eq!(
        error("policies:\n  - name: a\n    rules: [\n      - action: deny\n"),
        "p.yaml:4:7: invalid YAML: \"-\" is only valid inside a block"
    );
    assert_eq!(
        error("policies:\n  - name: \"unterminated\n"),
        "p.yaml:2:11: invalid YAML: while scanning a quoted scalar, found unexpected end of stream"
    );
    assert_eq!(
        error("version: \"1\"\n---\npolicies: []\n"),
        "p.yaml:3:1: a policy file holds one YAML document; remove the `---` before this one"
    );
}

#[test]
fn suggestions_need_to_be_close() {
    assert_eq!(
        suggest("comand_matches", super::WHEN_KEYS).as_deref(),
        Some("command_matches")
    );
    assert_eq!(suggest("actoin", &["action"]).as_deref(), Some("action"));
    assert_eq!(
        suggest("ak", crate::model::Action::WORDS).as_deref(),
        Some("ask")
    );
    assert_eq!(
        suggest("DENY", crate::model::Action::WORDS).as_deref(),
        Some("deny")
    );
    assert_eq!(suggest("xyz", crate::model::Action::WORDS), None);
    assert_eq!(suggest("", crate::model::Action::WORDS), None);
}

#[test]
fn hostile_input_does_not_panic() {
    for text in [
        "\u{feff}",
        "policies: *nope\n",
        "a: &x [*x]\n",
        "!!binary aGk=\n",
        "policies:\n  - !custom {name: a}\n",
        "policies:\n  - name: a\n    rules:\n      - action: !!str deny\n",
        "? [a, b]\n: c\n",
        "version: \"1\"\n...\n",
    ] {
        let _ = parse_str(Path::new("p.yaml"), text);
    }
}

/// `tests:` pin what a file decides: they run at load, against the file alone, with
/// `cwd` (default `<home>/project`) and `home` (default `/home/user`); the first failing
/// one refuses the file at its `file:line:col`.
#[test]
fn inline_tests_run_at_load_and_a_failure_refuses_the_file() {
    let policy = r#"version: "1"
policies:
  - name: places
    match: { tool: [exec] }
    rules:
      - action: deny
        when:
          command_matches: ["rm *"]
          target_matches: ["~", "~/*"]
tests:
  - command: rm -rf build
    expect: allow
  - { command: "rm -rf *", cwd: "~", expect: deny }
  - { command: "rm -rf ../x", cwd: /home/me/p, home: /home/me, expect: deny }
"#;
    let file = parse(policy);
    assert_eq!(file.tests.len(), 3);
    assert_eq!(file.tests[1].cwd.as_deref(), Some("~"));

    let failing = policy.replace(
        "rm -rf build\n    expect: allow",
        "rm -rf build\n    expect: deny",
    );
    let err = parse_str(Path::new("p.yaml"), &failing).unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.yaml:11:5: inline test failed: `rm -rf build` in /home/user/project: expected deny, \
         got allow (default_action)"
    );
    let failing = policy.replace("cwd: \"~\", expect: deny", "cwd: \"~\", expect: ask");
    let err = parse_str(Path::new("p.yaml"), &failing).unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.yaml:13:5: inline test failed: `rm -rf *` in /home/user: expected ask, got deny \
         (policy places at p.yaml:6)"
    );
    let err = parse_str(Path::new("p.yaml"), "tests:\n  - expect: deny\n").unwrap_err();
    assert_eq!(err.to_string(), "p.yaml:2:5: test has no `command`");
    let err = parse_str(Path::new("p.yaml"), "tests:\n  - command: ls\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.yaml:2:5: test has no `expect` (allow, deny, ask or log)"
    );
    let err = parse_str(
        Path::new("p.yaml"),
        "tests:\n  - {command: ls, expect: yes}\n",
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("p.yaml:2:"), "{err}");
}
