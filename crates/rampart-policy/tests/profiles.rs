//! The shipped profiles (`policies/*.yaml`, embedded in the binary) decide as their corpora
//! say.
//!
//! A corpus (`tests/corpus/<profile>.txt`) holds one case per line, `decision<TAB>command`,
//! where decision is `allow`, `deny`, `ask` or `log`, or `decision<TAB>cwd=DIR<TAB>command`
//! to evaluate in another directory; blank lines and lines starting with `#` are ignored.
//! Every case runs for the user `u` (home `/home/u`) in the working tree `/home/u/proj`
//! unless it names another directory. Every case is evaluated and all mismatches are reported together, so one
//! run shows every rule that needs attention.

use rampart_policy::{Action, Decision, PolicySet, Request, lint, profiles};

/// One corpus line.
struct Case {
    line: usize,
    expected: Action,
    cwd: String,
    command: String,
}

/// The home and working tree every corpus case runs with.
const HOME: &str = "/home/u";
const TREE: &str = "/home/u/proj";

fn load(name: &str) -> Result<PolicySet, String> {
    match profiles::load(name) {
        Some(Ok(set)) => Ok(set),
        Some(Err(err)) => Err(format!("profile `{name}` does not load: {err}")),
        None => Err(format!("there is no shipped profile named `{name}`")),
    }
}

fn parse_corpus(file: &str, text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        let Some((decision, command)) = raw.split_once('\t') else {
            errors.push(format!(
                "{file}:{line}: expected `decision<TAB>command`: {raw:?}"
            ));
            continue;
        };
        let (cwd, command) = match command.strip_prefix("cwd=") {
            Some(rest) => match rest.split_once('\t') {
                Some((cwd, command)) => (cwd, command),
                None => {
                    errors.push(format!("{file}:{line}: `cwd=DIR` without a command"));
                    continue;
                }
            },
            None => (TREE, command),
        };
        match Action::parse(decision.trim()) {
            Some(expected) => cases.push(Case {
                line,
                expected,
                cwd: cwd.to_owned(),
                command: command.to_owned(),
            }),
            None => errors.push(format!("{file}:{line}: unknown decision {decision:?}")),
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors.join("\n"))
    }
}

fn evaluate(set: &PolicySet, command: &str) -> Decision {
    evaluate_in(set, TREE, command)
}

fn evaluate_in(set: &PolicySet, cwd: &str, command: &str) -> Decision {
    set.evaluate(&Request {
        tool: "exec",
        agent: "preload",
        session: "s",
        command,
        cwd: Some(cwd),
        home: Some(HOME),
        ..Request::default()
    })
}

/// Evaluates every case of the corpus of `name`; on any mismatch, a report of all of them.
fn check_corpus(name: &str, corpus: &str) -> Result<Vec<Case>, String> {
    let file = format!("tests/corpus/{name}.txt");
    let set = load(name)?;
    let cases = parse_corpus(&file, corpus)?;
    let mut failures = Vec::new();
    for case in &cases {
        let got = evaluate_in(&set, &case.cwd, &case.command);
        if got.action != case.expected {
            let rule = got
                .rule
                .as_ref()
                .map_or_else(|| "default_action".to_owned(), ToString::to_string);
            failures.push(format!(
                "{file}:{}: `{}` (in {})\n    expected {}, got {} (policies {:?}, rule {rule}): {}",
                case.line,
                case.command,
                case.cwd,
                case.expected,
                got.action,
                got.matched_policies,
                got.message,
            ));
        }
    }
    if failures.is_empty() {
        Ok(cases)
    } else {
        Err(format!(
            "{} of {} cases of the `{name}` profile decide differently:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        ))
    }
}

fn count(cases: &[Case], action: Action) -> usize {
    cases.iter().filter(|c| c.expected == action).count()
}

#[test]
fn standard_profile_decides_as_its_corpus_says() {
    let cases = check_corpus("standard", include_str!("corpus/standard.txt"))
        .unwrap_or_else(|report| panic!("{report}"));
    // The corpus is the profile's specification: keep it broad, and mostly everyday work
    // that must keep running.
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let allowed = count(&cases, Action::Allow) + count(&cases, Action::Log);
    assert!(
        allowed * 2 >= cases.len(),
        "only {allowed} of {} cases are everyday commands that run",
        cases.len()
    );
    for action in [Action::Deny, Action::Ask, Action::Log] {
        assert!(count(&cases, action) > 0, "no `{action}` case");
    }
}

#[test]
fn paranoid_profile_decides_as_its_corpus_says() {
    let cases = check_corpus("paranoid", include_str!("corpus/paranoid.txt"))
        .unwrap_or_else(|report| panic!("{report}"));
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    assert!(count(&cases, Action::Allow) > 0 && count(&cases, Action::Deny) > 0);
}

#[test]
fn yolo_profile_decides_as_its_corpus_says() {
    let cases = check_corpus("yolo", include_str!("corpus/yolo.txt"))
        .unwrap_or_else(|report| panic!("{report}"));
    assert!(cases.len() >= 40, "only {} cases", cases.len());
}

#[test]
fn every_profile_loads_with_its_default_action() {
    for (name, expected) in [
        ("standard", Action::Allow),
        ("paranoid", Action::Deny),
        ("yolo", Action::Log),
    ] {
        let set = load(name).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(set.default_action(), expected, "default_action of `{name}`");
        assert!(set.rule_count() > 0, "`{name}` has no rules");
    }
    assert_eq!(
        profiles::PROFILES.len(),
        3,
        "a new profile needs a corpus here"
    );
}

#[test]
fn profiles_apply_to_every_agent_and_explain_every_refusal() {
    for (name, _) in profiles::PROFILES {
        let set = load(name).unwrap_or_else(|err| panic!("{err}"));
        for policy in set.policies() {
            assert!(
                policy.scope.agent.is_empty(),
                "{name}: policy `{}` is limited to some agents ({})",
                policy.name,
                policy.origin
            );
            for rule in &policy.rules {
                assert!(
                    rule.message
                        .as_deref()
                        .is_some_and(|m| !m.trim().is_empty()),
                    "{name}: the {} rule at {} has no message",
                    rule.action,
                    rule.origin
                );
            }
        }
    }
}

#[test]
fn profiles_lint_clean() {
    for (name, _) in profiles::PROFILES {
        let set = load(name).unwrap_or_else(|err| panic!("{err}"));
        let warnings: Vec<String> = lint::lint(&set).iter().map(ToString::to_string).collect();
        assert!(
            warnings.is_empty(),
            "`{name}` has lint warnings:\n{}",
            warnings.join("\n")
        );
    }
}

#[test]
fn the_same_command_decides_the_same_for_any_agent() {
    let set = load("standard").unwrap_or_else(|err| panic!("{err}"));
    for command in ["rm -rf /", "git status", "sudo apt install jq", "env"] {
        let preload = evaluate(&set, command);
        let other = set.evaluate(&Request {
            tool: "exec",
            agent: "claude-code",
            session: "other",
            command,
            ..Request::default()
        });
        assert_eq!(preload.action, other.action, "{command}");
    }
}

/// The standard corpus per section (`# --- Family ---` headers): how many cases each
/// holds, how many are blocked (deny/ask) and allowed (allow/log) — the expected
/// decisions, which `standard_profile_decides_as_its_corpus_says` proves the profile
/// gives. `bench/corpus-report.sh` prints it (`--nocapture`).
#[test]
fn standard_corpus_report_per_family() {
    let text = include_str!("corpus/standard.txt");
    let mut rows: Vec<(String, usize, usize)> = Vec::new();
    for raw in text.lines() {
        if let Some(title) = raw.strip_prefix("# --- ") {
            rows.push((title.trim_end_matches(['-', ' ']).to_owned(), 0, 0));
            continue;
        }
        let Some((decision, _)) = raw.split_once('\t') else {
            continue;
        };
        let Some(action) = Action::parse(decision.trim()) else {
            continue;
        };
        if rows.is_empty() {
            rows.push(("(no section)".to_owned(), 0, 0));
        }
        if let Some(row) = rows.last_mut() {
            match action {
                Action::Deny | Action::Ask => row.1 += 1,
                Action::Allow | Action::Log => row.2 += 1,
            }
        }
    }
    let total: usize = rows.iter().map(|r| r.1 + r.2).sum();
    println!("{:<88} {:>7} {:>7}", "family", "blocked", "allowed");
    for (title, blocked, allowed) in &rows {
        println!("{title:<88} {blocked:>7} {allowed:>7}");
    }
    let blocked: usize = rows.iter().map(|r| r.1).sum();
    println!("{:<88} {:>7} {:>7}", "total", blocked, total - blocked);
    assert!(total >= 400, "only {total} cases");
    assert!(rows.iter().all(|r| r.1 + r.2 > 0), "an empty section");
}

/// Here-documents fed to a shell or an interpreter are read as what they run (issue 14,
/// families 4 and 5); fed to anything else they stay data. (Multi-line, so not in the
/// one-line-per-case corpus.)
#[test]
fn here_documents_fed_to_shells_and_interpreters_are_judged() {
    let set = load("standard").unwrap_or_else(|err| panic!("{err}"));
    for (command, expected) in [
        ("bash <<'EOF'\nrm -rf ~\nEOF", Action::Deny),
        ("sh <<EOF\ncd ~\nrm -rf *\nEOF", Action::Deny),
        (
            "python3 - <<'PY'\nimport shutil, os\nshutil.rmtree(os.path.expanduser('~'))\nPY",
            Action::Deny,
        ),
        ("cat <<'EOF' > notes.txt\nrm -rf ~\nEOF", Action::Allow),
        (
            "bash <<'EOF'\ncargo build\nrm -rf target/debug\nEOF",
            Action::Allow,
        ),
    ] {
        assert_eq!(evaluate(&set, command).action, expected, "{command:?}");
    }
}
