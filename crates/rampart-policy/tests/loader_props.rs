//! Hostile input to the YAML policy loader (issue 8 §2): arbitrary bytes, YAML-ish token
//! soup, mutated shipped policies, deep nesting and large files. The loader never panics
//! (nor overflows the stack), answers in time linear in the input, and every error it
//! returns points at a `line:column` that exists in the input. Valid policies generated
//! from a model load back as exactly that model, including strings written the way
//! `rampart policy show` writes them (JSON-escaped double-quoted scalars).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rampart_policy::load::parse_str;
use rampart_policy::{Action, PolicyError, PolicySet, profiles};

const FILE: &str = "hostile.yaml";

/// The lines of `text` as YAML counts them: `\r\n`, `\r` and `\n` each end a line.
fn yaml_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    loop {
        match rest.find(['\r', '\n']) {
            Some(i) => {
                lines.push(&rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                lines.push(rest);
                return lines;
            }
        }
    }
}

/// Asserts the invariants of one load: an error names this file and a place inside the
/// text (a line that exists, a column at most one past that line's last character), and
/// its message is one non-empty line.
fn check_load(text: &str) -> Result<(), TestCaseError> {
    let result = parse_str(Path::new(FILE), text);
    let lines = yaml_lines(text);
    match result {
        Ok(file) => {
            // A file that loads can be evaluated.
            if let Ok(set) = PolicySet::new(vec![file]) {
                let d = set.evaluate(&rampart_policy::Request::exec("rm -rf /tmp/x"));
                prop_assert!(!d.message.is_empty());
            }
        }
        Err(PolicyError::Invalid {
            file,
            line,
            column,
            message,
            ..
        }) => {
            prop_assert_eq!(file.as_path(), Path::new(FILE));
            // saphyr reports "ran out of input" one past the last line, at column 1, as
            // if the text ended in a line break: the end of the file, which is right.
            if line == lines.len() + 1 && column == 1 {
                return Ok(());
            }
            prop_assert!(
                line >= 1 && line <= lines.len(),
                "line {}:{} of {} lines: {}",
                line,
                column,
                lines.len(),
                message
            );
            let width = lines[line - 1].chars().count();
            prop_assert!(
                column >= 1 && column <= width + 1,
                "column {} of a {}-character line {}: {}",
                column,
                width,
                line,
                message
            );
            prop_assert!(!message.is_empty());
            prop_assert!(!message.contains('\n'), "{:?}", message);
        }
        Err(PolicyError::DuplicateName { first, second, .. }) => {
            for origin in [first, second] {
                prop_assert_eq!(origin.file.as_path(), Path::new(FILE));
                prop_assert!(origin.line >= 1 && origin.line <= lines.len());
            }
        }
        Err(other @ PolicyError::Io { .. }) => {
            prop_assert!(false, "parse_str does no I/O but said {}", other);
        }
    }
    Ok(())
}

/// Pieces of YAML syntax and of the policy vocabulary, glued into soup.
const YAML_TOKENS: &[&str] = &[
    "\n",
    "\n  ",
    "\n    ",
    "\n      ",
    "\r\n",
    "\r",
    "\t",
    " ",
    "- ",
    ": ",
    ":",
    "? ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "'",
    "\"",
    "\\",
    "\\u00e9",
    "\\x",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "!tag ",
    "|",
    ">-",
    "---",
    "...",
    "%YAML 1.2",
    "version",
    "\"1\"",
    "1",
    "default_action",
    "policies",
    "name",
    "rules",
    "action",
    "deny",
    "allow",
    "blok",
    "when",
    "command_matches",
    "command_contains",
    "path_matches",
    "match",
    "agent",
    "tool",
    "priority",
    "-99999999999999999999999",
    "enabled",
    "true",
    "null",
    "~",
    "default",
    "rm -rf /*",
    "é",
    "😀",
    "\u{feff}",
    "\u{85}",
    "\u{2028}",
    "\u{7f}",
    "\0",
    "\u{1b}[31m",
];

fn yaml_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(YAML_TOKENS), 0..120).prop_map(|v| v.concat())
}

/// Valid policies to start mutations from.
fn bases() -> Vec<&'static str> {
    let mut bases: Vec<&'static str> = profiles::PROFILES.iter().map(|(_, t)| *t).collect();
    bases.push(include_str!("../../../examples/seed-policy.yaml"));
    bases.push(include_str!("fixtures/custom-agent.yaml"));
    bases
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, token: &'static str },
    DuplicateLine { at: usize },
    SwapLines { a: usize, b: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), prop::sample::select(YAML_TOKENS))
            .prop_map(|(at, token)| Mutation::Insert { at, token }),
        any::<usize>().prop_map(|at| Mutation::DuplicateLine { at }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// The char boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(text: &str, m: &Mutation) -> String {
    match *m {
        Mutation::Delete { at, len } => {
            let start = boundary(text, at);
            let end = boundary(text, (start + len).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Mutation::Insert { at, token } => {
            let at = boundary(text, at);
            format!("{}{token}{}", &text[..at], &text[at..])
        }
        Mutation::DuplicateLine { at } => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let i = at % lines.len();
            lines.insert(i, lines[i]);
            lines.join("\n")
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let n = lines.len();
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
        Mutation::Truncate { at } => text[..boundary(text, at)].to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// A model of valid policies, written out as YAML and loaded back.

#[derive(Debug, Clone)]
struct ModelRule {
    action: &'static str,
    commands: Vec<String>,
    contains: Vec<String>,
    paths: Vec<String>,
    message: Option<String>,
    enabled: bool,
}

#[derive(Debug, Clone)]
struct ModelPolicy {
    name: String,
    priority: Option<i64>,
    agents: Vec<String>,
    rules: Vec<ModelRule>,
}

/// Any text at all, including quotes, backslashes, control characters, `#`, `: ` and
/// non-BMP characters: written JSON-escaped, as `policy show` writes it.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z*?/ .-]{0,12}",
        any::<String>(),
        prop::collection::vec(
            prop::sample::select(vec![
                "\"", "'", "\\", "#", ": ", "- ", "\n", "\t", "\r", "\0", "\u{7f}", "\u{85}",
                "\u{2028}", "\u{feff}", "😀", "*", "?", "{", "[", "&", "!", "%", "@", "`", "x",
                " ",
            ]),
            0..12
        )
        .prop_map(|v| v.concat()),
    ]
}

fn non_empty_text() -> impl Strategy<Value = String> {
    any_text().prop_filter("must not be empty", |s| !s.is_empty())
}

fn model_rule() -> impl Strategy<Value = ModelRule> {
    (
        prop::sample::select(vec!["allow", "deny", "ask", "log", "watch"]),
        prop::collection::vec(any_text(), 0..3),
        prop::collection::vec(non_empty_text(), 0..3),
        prop::collection::vec(any_text(), 0..2),
        prop::option::of(any_text()),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(action, commands, contains, paths, message, enabled)| ModelRule {
                action,
                commands,
                contains,
                paths,
                message,
                enabled,
            },
        )
}

fn model_policies() -> impl Strategy<Value = Vec<ModelPolicy>> {
    prop::collection::vec(
        (
            prop::option::of(any::<i64>()),
            prop::collection::vec(any_text(), 0..3),
            prop::collection::vec(model_rule(), 0..4),
        ),
        0..4,
    )
    .prop_map(|policies| {
        policies
            .into_iter()
            .enumerate()
            .map(|(i, (priority, agents, rules))| ModelPolicy {
                // Distinct, never blank.
                name: format!("p{i} \"✓\" #{i}"),
                priority,
                agents,
                rules,
            })
            .collect()
    })
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn render(default_action: &str, policies: &[ModelPolicy]) -> String {
    let mut out = format!("version: \"1\"\ndefault_action: {default_action}\npolicies:\n");
    for p in policies {
        out.push_str(&format!("  - name: {}  # comment\n", q(&p.name)));
        if let Some(priority) = p.priority {
            out.push_str(&format!("    priority: {priority}\n"));
        }
        if !p.agents.is_empty() {
            out.push_str(&format!("    match:\n      agent: {}\n", list(&p.agents)));
        }
        out.push_str("    rules:\n");
        for r in &p.rules {
            out.push_str(&format!("      - action: {}\n", r.action));
            if !r.enabled {
                out.push_str("        enabled: false\n");
            }
            if !(r.commands.is_empty() && r.contains.is_empty() && r.paths.is_empty()) {
                out.push_str("        when:\n");
                if !r.commands.is_empty() {
                    out.push_str(&format!(
                        "          command_matches: {}\n",
                        list(&r.commands)
                    ));
                }
                if !r.contains.is_empty() {
                    out.push_str(&format!(
                        "          command_contains: {}\n",
                        list(&r.contains)
                    ));
                }
                if !r.paths.is_empty() {
                    out.push_str(&format!("          path_matches: {}\n", list(&r.paths)));
                }
            }
            if let Some(m) = &r.message {
                out.push_str(&format!("        message: {}\n", q(m)));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_load_or_point_inside_the_input(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_load(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_strings_load_or_point_inside_the_input(text in any::<String>()) {
        check_load(&text)?;
    }

    #[test]
    fn yaml_soup_loads_or_points_inside_the_input(text in yaml_soup()) {
        check_load(&text)?;
    }

    #[test]
    fn generated_policies_load_as_written(
        default_action in prop::sample::select(vec!["allow", "deny", "ask", "log"]),
        policies in model_policies(),
    ) {
        let text = render(default_action, &policies);
        let file = match parse_str(Path::new(FILE), &text) {
            Ok(file) => file,
            Err(e) => { prop_assert!(false, "{e}\n{text}"); unreachable!() }
        };
        prop_assert_eq!(file.default_action, Action::parse(default_action));
        prop_assert_eq!(file.policies.len(), policies.len());
        for (got, want) in file.policies.iter().zip(&policies) {
            prop_assert_eq!(&got.name, &want.name);
            prop_assert_eq!(got.priority, want.priority.unwrap_or(100));
            let agents: Vec<&str> = got.scope.agent.iter().map(|p| p.glob.as_str()).collect();
            prop_assert_eq!(agents, want.agents.iter().map(String::as_str).collect::<Vec<_>>());
            let enabled: Vec<&ModelRule> = want.rules.iter().filter(|r| r.enabled).collect();
            prop_assert_eq!(got.rules.len(), enabled.len());
            for (g, w) in got.rules.iter().zip(enabled) {
                prop_assert_eq!(Some(g.action), Action::parse(w.action));
                let commands: Vec<&str> = g.when.command_matches.iter().map(|p| p.glob.as_str()).collect();
                prop_assert_eq!(commands, w.commands.iter().map(String::as_str).collect::<Vec<_>>());
                let contains: Vec<&str> = g.when.command_contains.iter().map(|n| n.text.as_str()).collect();
                prop_assert_eq!(contains, w.contains.iter().map(String::as_str).collect::<Vec<_>>());
                let paths: Vec<&str> = g.when.path_matches.iter().map(|p| p.glob.as_str()).collect();
                prop_assert_eq!(paths, w.paths.iter().map(String::as_str).collect::<Vec<_>>());
                prop_assert_eq!(&g.message, &w.message);
            }
        }
    }

    /// A duplicated key is refused, naming the key exactly, wherever it is and whatever
    /// multi-byte text comes before it.
    #[test]
    fn duplicate_keys_are_named(prefix in "[a-zé😀 ]{0,30}", which in 0usize..3) {
        let (dup, line) = [
            ("message", "        message: \"second\"\n"),
            ("action", "        action: deny\n"),
            ("when", "        when: {command_matches: [\"x\"]}\n"),
        ][which];
        let text = format!(
            "policies:\n  - name: {}\n    rules:\n      - action: allow\n        message: {}\n        when: {{command_matches: [\"y\"]}}\n{line}",
            q(&prefix),
            q(&prefix)
        );
        match parse_str(Path::new(FILE), &text) {
            Err(PolicyError::Invalid { line, message, .. }) => {
                prop_assert_eq!(message, format!("duplicate key `{dup}`"));
                prop_assert_eq!(line, 7);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_policies_load_or_point_inside_the_input(
        base in prop::sample::select(bases()),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut text = base.to_owned();
        for m in &mutations {
            text = mutate(&text, m);
        }
        check_load(&text)?;
    }
}

/// Nesting of any depth is an error with a location, not a stack overflow: saphyr's
/// loader recursed once per level and `- - - …` 10 000 deep aborted the process.
#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let cases = [
        ("block sequences", "- ".repeat(100_000)),
        ("complex keys", "? ".repeat(100_000)),
        ("flow sequences", "[".repeat(100_000)),
        ("flow mappings", "{a: ".repeat(100_000)),
        (
            "closed flow sequences",
            format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)),
        ),
        (
            "indented mappings",
            (0..2_000)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect(),
        ),
        (
            "under policies",
            format!("policies:\n{}", "  - ".repeat(20_000)),
        ),
    ];
    for (name, text) in cases {
        let started = Instant::now();
        let err = parse_str(Path::new(FILE), &text).expect_err(name);
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
        let PolicyError::Invalid { line, message, .. } = &err else {
            panic!("{name}: {err}");
        };
        assert!(
            message.contains("nested more than 64 levels deep")
                || message.contains("recursion limit exceeded"),
            "{name}: {err}"
        );
        assert!(*line >= 1, "{name}");
    }
    // The limit leaves room for any real policy: 60 levels load far enough to be
    // judged by the policy rules, not refused for depth.
    let text = format!("policies: {}{}", "[".repeat(60), "]".repeat(60));
    let err = parse_str(Path::new(FILE), &text).unwrap_err().to_string();
    assert!(err.contains("a policy must be a mapping"), "{err}");
}

/// Large files load in time proportional to their size (loose bound against a
/// quadratic blow-up, not a speed test).
#[test]
fn large_policies_load_in_linear_time() {
    fn policy(rules: usize) -> String {
        let mut text = String::from("policies:\n  - name: big\n    rules:\n");
        for i in 0..rules {
            text.push_str(&format!(
                "      - action: deny\n        when:\n          command_matches: [\"cmd{i} *\", \"*{i}*\"]\n          command_contains: [\"x{i}\"]\n        message: \"rule {i}\"\n"
            ));
        }
        text
    }
    fn best(text: &str) -> Duration {
        (0..3)
            .map(|_| {
                let started = Instant::now();
                let file = parse_str(Path::new(FILE), text).unwrap();
                PolicySet::new(vec![file]).unwrap();
                started.elapsed()
            })
            .min()
            .unwrap()
    }
    let small = policy(500);
    let large = policy(2_000);
    let (t_small, t_large) = (best(&small), best(&large));
    // 4x the input: linear is 4x, quadratic 16x.
    assert!(
        t_large < t_small * 10 + Duration::from_millis(50),
        "{} bytes: {t_small:?}, {} bytes: {t_large:?}",
        small.len(),
        large.len()
    );
    // One huge scalar, one huge key, one long line of flow entries.
    for text in [
        format!(
            "policies:\n  - name: \"{}\"\n    rules: []\n",
            "n".repeat(1 << 20)
        ),
        format!("{}: 1\n", "k".repeat(1 << 20)),
        format!("policies: [{}]\n", "{name: a}, ".repeat(50_000)),
    ] {
        let started = Instant::now();
        let _ = parse_str(Path::new(FILE), &text);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
