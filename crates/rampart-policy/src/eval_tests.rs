use std::path::Path;

use super::*;
use crate::load::parse_str;

const SEED: &str = include_str!("../../../examples/seed-policy.yaml");

fn set(yaml: &str) -> PolicySet {
    let file = parse_str(Path::new("test.yaml"), yaml).unwrap();
    PolicySet::new(vec![file]).unwrap()
}

fn decide(set: &PolicySet, command: &str) -> Decision {
    set.evaluate(&Request::exec(command))
}

fn action(set: &PolicySet, command: &str) -> Action {
    decide(set, command).action
}

#[test]
fn the_seed_policy_decides_as_the_seed_page_shows() {
    let seed = set(SEED);
    let d = decide(&seed, "git status");
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.matched_policies, vec!["preload-safe-dev"]);
    assert_eq!(d.message, "Safe development commands");

    let d = decide(&seed, "rm -rf /tmp/*");
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.message, "Destructive command blocked");
    assert_eq!(d.matched_policies, vec!["preload-block-destructive"]);

    let d = decide(&seed, "curl https://example.com");
    assert_eq!(d.action, Action::Ask);
    assert_eq!(d.message, "Network command requires approval");
    assert_eq!(d.matched_policies, vec!["preload-ask-network"]);

    let d = decide(&seed, ":(){ :|:& };:");
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.message, "Destructive command blocked");

    assert_eq!(action(&seed, "dd if=/dev/zero of=/dev/sda"), Action::Deny);
    assert_eq!(action(&seed, "mkfs.ext4 /dev/sda1"), Action::Deny);
    assert_eq!(action(&seed, "/bin/rm -rf /"), Action::Deny);
    assert_eq!(action(&seed, "wget http://x"), Action::Ask);
    assert_eq!(action(&seed, "ls -la"), Action::Allow);
    // Not matched by any rule: default_action allow, no policy named.
    let d = decide(&seed, "make");
    assert_eq!(d.action, Action::Allow);
    assert!(d.matched_policies.is_empty());
    assert!(d.rule.is_none());
}

#[test]
fn seed_policy_scopes_by_agent_and_tool() {
    let seed = set(SEED);
    let mut req = Request::exec("rm -rf /tmp/*");
    req.agent = "other-agent";
    assert_eq!(seed.evaluate(&req).action, Action::Allow);
    let mut req = Request::exec("rm -rf /tmp/*");
    req.tool = "read";
    assert_eq!(seed.evaluate(&req).action, Action::Allow);
}

#[test]
fn any_piece_can_deny_and_allow_must_cover_every_piece() {
    let seed = set(SEED);
    assert_eq!(action(&seed, "git status && rm -rf /tmp/x"), Action::Deny);
    assert_eq!(action(&seed, "bash -c 'rm -rf /home'"), Action::Deny);
    assert_eq!(
        action(&seed, "env -i nice -n 5 /bin/rm -rf /etc"),
        Action::Deny
    );
    assert_eq!(action(&seed, "echo $(rm -rf /var)"), Action::Deny);

    let strict = set(r#"
version: "1"
default_action: deny
policies:
  - name: dev
    rules:
      - action: allow
        when:
          command_matches: ["git *", "ls *", "ls"]
"#);
    assert_eq!(action(&strict, "git status"), Action::Allow);
    assert_eq!(action(&strict, "git status && ls"), Action::Allow);
    assert_eq!(action(&strict, "git status && make"), Action::Deny);
    assert_eq!(action(&strict, "sudo git push"), Action::Deny);
    assert_eq!(action(&strict, "git log | less"), Action::Deny);
    let d = decide(&strict, "make");
    assert_eq!(
        d.message,
        "No rule allows this command; default action is deny"
    );
}

#[test]
fn sudo_is_looked_through_for_deny_and_ask_only() {
    let p = set(r#"
version: "1"
default_action: allow
policies:
  - name: p
    rules:
      - action: deny
        when: { command_matches: ["rm -rf /*"] }
        message: no
      - action: ask
        when: { command_matches: ["git push *"] }
"#);
    assert_eq!(action(&p, "sudo rm -rf /"), Action::Deny);
    assert_eq!(action(&p, "doas rm -rf /"), Action::Deny);
    assert_eq!(action(&p, "sudo -u root sh -c 'rm -rf /'"), Action::Deny);
    let d = decide(&p, "sudo git push origin main");
    assert_eq!(d.action, Action::Ask);
    assert_eq!(d.message, "Approval required by policy p");
}

#[test]
fn deny_wins_over_ask_over_log_over_allow_across_policies() {
    let p = set(r#"
version: "1"
policies:
  - name: a
    rules:
      - action: allow
        when: { command_matches: ["*"] }
  - name: l
    rules:
      - action: log
        when: { command_contains: ["x"] }
  - name: q
    rules:
      - action: ask
        when: { command_contains: ["y"] }
  - name: d
    rules:
      - action: deny
        when: { command_contains: ["z"] }
"#);
    assert_eq!(action(&p, "a"), Action::Allow);
    assert_eq!(action(&p, "x"), Action::Log);
    assert_eq!(action(&p, "xy"), Action::Ask);
    assert_eq!(action(&p, "xyz"), Action::Deny);
    assert_eq!(decide(&p, "xyz").matched_policies, vec!["d"]);
    assert_eq!(decide(&p, "x").matched_policies, vec!["l"]);
}

#[test]
fn first_matching_rule_wins_within_a_policy() {
    let p = set(r#"
version: "1"
default_action: allow
policies:
  - name: p
    rules:
      - action: allow
        when: { command_matches: ["rm -rf ./build*"] }
      - action: deny
        when: { command_matches: ["rm -rf *"] }
        message: denied
"#);
    assert_eq!(action(&p, "rm -rf ./build"), Action::Allow);
    assert_eq!(action(&p, "rm -rf ./src"), Action::Deny);
}

#[test]
fn extensions_priority_default_rule_not_matches_session_and_path() {
    let p = set(r#"
version: "1"
default_action: allow
policies:
  - name: late
    priority: 200
    rules:
      - action: deny
        when: { command_matches: ["deploy *"] }
        message: late
  - name: early
    priority: 10
    description: runs first
    match:
      session: ["prod-*"]
    rules:
      - action: deny
        when:
          command_matches: ["deploy *"]
          command_not_matches: ["deploy --dry-run*"]
        message: early
      - action: log
        default: true
  - name: sessions
    rules:
      - action: ask
        when:
          command_matches: ["kubectl *"]
          session_matches: ["prod-*"]
  - name: paths
    rules:
      - action: deny
        when:
          path_matches: ["/etc/**", "**/.ssh/id_*"]
        message: path
  - name: disabled
    enabled: false
    rules:
      - action: deny
        when: { command_matches: ["*"] }
"#);
    let mut req = Request::exec("deploy app");
    req.session = "prod-1";
    let d = p.evaluate(&req);
    assert_eq!(d.action, Action::Deny);
    // Both policies denied; the message comes from the earlier (lower priority number).
    assert_eq!(d.message, "early");
    assert_eq!(d.matched_policies, vec!["early", "late"]);

    let mut req = Request::exec("deploy --dry-run app");
    req.session = "prod-1";
    assert_eq!(p.evaluate(&req).message, "late");

    let mut req = Request::exec("ls");
    req.session = "prod-1";
    assert_eq!(p.evaluate(&req).action, Action::Log, "default: true rule");
    assert_eq!(action(&p, "ls"), Action::Allow);

    let mut req = Request::exec("kubectl delete pod x");
    assert_eq!(p.evaluate(&req).action, Action::Allow);
    req.session = "prod-2";
    assert_eq!(p.evaluate(&req).action, Action::Ask);

    assert_eq!(action(&p, "cat /etc/hosts"), Action::Deny);
    assert_eq!(action(&p, "cp /home/u/.ssh/id_rsa ."), Action::Deny);
    assert_eq!(action(&p, "cat /home/u/.ssh/keys/x"), Action::Allow);
    let mut req = Request::exec("");
    req.tool = "read";
    req.path = Some("/etc/shadow");
    assert_eq!(p.evaluate(&req).action, Action::Deny);
}

#[test]
fn strictest_default_action_wins_across_files() {
    let a = parse_str(
        Path::new("a.yaml"),
        "version: \"1\"\ndefault_action: allow\npolicies: []\n",
    )
    .unwrap();
    let b = parse_str(
        Path::new("b.yaml"),
        "version: \"1\"\ndefault_action: ask\npolicies: []\n",
    )
    .unwrap();
    let s = PolicySet::new(vec![a, b]).unwrap();
    assert_eq!(s.default_action(), Action::Ask);
    assert_eq!(s.files().len(), 2);
}

#[test]
fn duplicate_policy_names_across_files_are_an_error() {
    let yaml = "version: \"1\"\npolicies:\n  - name: same\n    rules: []\n";
    let a = parse_str(Path::new("a.yaml"), yaml).unwrap();
    let b = parse_str(Path::new("b.yaml"), yaml).unwrap();
    let err = PolicySet::new(vec![a, b]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy `same` is defined twice: a.yaml:3 and b.yaml:3; remove one of them, e.g. `rm b.yaml`"
    );
    // A second profile next to the standard one: the standard one is the one to remove.
    let a = parse_str(Path::new("/h/policies/paranoid.yaml"), yaml).unwrap();
    let b = parse_str(Path::new("/h/my policies/standard.yaml"), yaml).unwrap();
    let err = PolicySet::new(vec![a, b]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy `same` is defined twice: /h/policies/paranoid.yaml:3 and /h/my policies/standard.yaml:3; \
         remove one of them, e.g. `rm '/h/my policies/standard.yaml'`"
    );
}

#[test]
fn empty_and_whitespace_commands_take_the_default() {
    let seed = set(SEED);
    assert_eq!(action(&seed, ""), Action::Allow);
    assert_eq!(action(&seed, "   "), Action::Allow);
}

#[test]
fn truncated_normalisation_never_allows_by_rule() {
    let strict = set(r#"
version: "1"
default_action: deny
policies:
  - name: dev
    rules:
      - action: allow
        when: { command_matches: ["echo *"] }
"#);
    assert_eq!(action(&strict, "echo hi"), Action::Allow);
    let deep = format!("echo {}rm -rf /{}", "$(".repeat(200), ")".repeat(200));
    let normalized = shell::normalize_checked(&deep);
    assert!(normalized.truncated);
    assert_eq!(action(&strict, &deep), Action::Deny);
}

#[test]
fn literals_are_found_anywhere_in_long_commands() {
    // Long subjects are scanned in parts; a literal across a part boundary still counts.
    let set = set(r#"
version: "1"
policies:
  - name: p
    rules:
      - action: deny
        when:
          command_matches: ["*fsockopen*"]
"#);
    let len = 4096;
    let part = len / 4;
    let needle = "fsockopen";
    let last = len - needle.len();
    for boundary in [part, 2 * part, 3 * part, last] {
        for at in boundary - 10..=(boundary + 10).min(last) {
            let mut command = format!("echo {}", "x".repeat(len - 5));
            command.replace_range(at..at + needle.len(), needle);
            assert_eq!(command.len(), len);
            assert_eq!(action(&set, &command), Action::Deny, "literal at {at}");
        }
    }
    assert_eq!(action(&set, &"x".repeat(len)), Action::Allow);
}

#[test]
fn path_words_are_the_path_like_words() {
    let words: Vec<&str> = path_words("cat /a ~/b ./c ../d .e x/y  /f ~").collect();
    assert_eq!(words, vec!["/a", "~/b", "./c", "../d", "/f", "~"]);
    assert_eq!(path_words("/x").collect::<Vec<_>>(), vec!["/x"]);
    assert_eq!(path_words("").count(), 0);
}

#[test]
fn command_contains_beside_an_anchored_pattern_is_tested_per_piece() {
    // The rule is indexed by `cat`; its needles are tested from the literal scan (long
    // ones) or searched (short ones), for each piece and for long subjects alike.
    let p = set(r#"
version: "1"
default_action: allow
policies:
  - name: p
    rules:
      - action: deny
        when:
          command_matches: ["cat *"]
          command_contains: [".secret", "> "]
"#);
    assert_eq!(action(&p, "cat a.secret"), Action::Deny);
    assert_eq!(action(&p, "cat a > b"), Action::Deny);
    assert_eq!(action(&p, "cat a.txt"), Action::Allow);
    assert_eq!(action(&p, "ls x.secret && cat a.txt"), Action::Allow);
    assert_eq!(action(&p, "ls x.secret && cat a.secret"), Action::Deny);
    let mut long = String::from("cat");
    while long.len() < 4096 {
        long.push_str(" file.txt");
    }
    assert_eq!(action(&p, &long), Action::Allow);
    long.push_str(" x.secret");
    assert_eq!(action(&p, &long), Action::Deny);
}

#[test]
fn rules_of_many_anchored_patterns_still_match_each_spelling() {
    // Every pattern has a literal after its first wildcard, so the rule is only tested
    // when one of those occurs; each spelling must still be found.
    let p = set(r#"
version: "1"
default_action: allow
policies:
  - name: p
    rules:
      - action: deny
        when:
          command_matches: ["rm * $HOME", "rm * $HOME/?", "rm * ${HOME} *", "rm -?f *tmp"]
"#);
    assert_eq!(action(&p, "rm -rf $HOME"), Action::Deny);
    assert_eq!(action(&p, "rm -rf $HOME/x"), Action::Deny);
    assert_eq!(action(&p, "rm -rf ${HOME} y"), Action::Deny);
    assert_eq!(action(&p, "rm -rf tmp"), Action::Deny);
    assert_eq!(action(&p, "rm -rf node_modules"), Action::Allow);
    assert_eq!(action(&p, "rm -rf $HOMEx"), Action::Allow);
    assert_eq!(action(&p, "ls $HOME && rm -rf x"), Action::Allow);
}

#[test]
fn the_flat_scanner_reports_every_literal_that_occurs() {
    let literals: Vec<String> = ["abc", "bcd", "cd", "é/x", "\u{0}z", "zzz"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let dfa = aho_corasick::dfa::Builder::new()
        .match_kind(aho_corasick::MatchKind::Standard)
        .prefilter(false)
        .build(&literals)
        .unwrap();
    let scanner = Scanner::new(&dfa, &literals).unwrap();
    let hays = [
        "xxabcdxx",
        "é/xé/",
        "\u{0}\u{0}zz",
        "zz zz",
        "abcabcab",
        "",
        "ÿ€ zzz",
    ];
    for hay in hays {
        let mut state = scanner.start;
        let mut seen = vec![false; literals.len()];
        for &byte in hay.as_bytes() {
            state = scanner.next(state, byte);
            for &literal in scanner.matches(state) {
                seen[literal as usize] = true;
            }
        }
        let expected: Vec<bool> = literals.iter().map(|l| hay.contains(l.as_str())).collect();
        assert_eq!(seen, expected, "{hay:?}");
    }
}

/// Quiet allows (issue 16): the decision is quiet only when quiet allow rules decided
/// every piece; a deny elsewhere still wins, and a program not matched by `exe_matches`
/// (the real python3 behind a shim) is an ordinary allow. `quiet` on a deny is an error.
#[test]
fn quiet_allows_cover_every_piece_and_never_hide_a_refusal() {
    let yaml = "version: \"1\"\ndefault_action: allow\npolicies:\n  - name: shims\n    rules:\n      - action: allow\n        quiet: true\n        when:\n          exe_matches: [\"**/.pyenv/shims/*\"]\n  - name: no-rm\n    rules:\n      - action: deny\n        when:\n          command_matches: [\"rm *\"]\n";
    let set = PolicySet::new(vec![parse_str(Path::new("q.yaml"), yaml).unwrap()]).unwrap();
    let shim = Some("/home/u/.pyenv/shims/python3");
    let decide = |command: &str, exe: Option<&str>| {
        let mut req = Request::exec(command);
        req.exe = exe;
        let d = set.evaluate(&req);
        (d.action, d.quiet)
    };
    assert_eq!(decide("python3 -V", shim), (Action::Allow, true));
    assert_eq!(
        decide(
            "python3 -V",
            Some("/home/u/.pyenv/versions/3.12.1/bin/python3")
        ),
        (Action::Allow, false)
    );
    assert_eq!(decide("python3 -V", None), (Action::Allow, false));
    assert_eq!(decide("rm -rf x", shim), (Action::Deny, false));

    let err = parse_str(
        Path::new("q.yaml"),
        "policies:\n  - name: p\n    rules:\n      - action: deny\n        quiet: true\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "q.yaml:5:16: `quiet` is for allow rules only; this rule's action is deny"
    );
}
