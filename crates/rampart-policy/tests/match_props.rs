//! Hostile input to globs and the shell normaliser (issue 8 §2), beside the tables and
//! properties of `normalize.rs` and `evaluate_props.rs`:
//!
//! * globs agree with a plain backtracking reference matcher on small inputs, `*`
//!   matches everything, a pattern without wildcards matches exactly itself, and
//!   adversarial patterns and subjects cost linear time;
//! * the normaliser marks `truncated` exactly when nesting passes `MAX_DEPTH`, never loses
//!   the innermost command, splits `a ; b` into the pieces of `a` then those of `b`, and
//!   treats quoting as transparent;
//! * evaluation never lets an allow rule grant a command the normaliser gave up on.

#![allow(clippy::panic, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rampart_policy::load::parse_str;
use rampart_policy::shell::{MAX_DEPTH, Piece, normalize, normalize_checked};
use rampart_policy::{Action, Glob, PolicySet, Request};

// ---------------------------------------------------------------------------------------
// Reference matchers: the definitions of DESIGN.md §8, by plain backtracking. Exponential
// in the worst case, so only for the short inputs generated below.

/// Command glob: `*` any run of characters, `?` exactly one, everything else literal.
fn reference_command(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('*', rest)) => (0..=s.len()).any(|k| reference_command(rest, &s[k..])),
        Some(('?', rest)) => !s.is_empty() && reference_command(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && reference_command(rest, &s[1..]),
    }
}

/// Path glob: `*` a run without `/`, `?` one character other than `/`, `**` (two or
/// more stars) any run, `**/` nothing or any run ending in `/`. (This property found
/// that `**/` also matched runs not ending in `/`: `/a/**/b` matched `/a/xb`.)
fn reference_path(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('*', _)) => {
            let stars = p.iter().take_while(|c| **c == '*').count();
            let rest = &p[stars..];
            if stars == 1 {
                let run = s.iter().take_while(|c| **c != '/').count();
                return (0..=run).any(|k| reference_path(rest, &s[k..]));
            }
            if let Some(('/', after)) = rest.split_first() {
                return reference_path(after, s)
                    || (0..s.len()).any(|k| s[k] == '/' && reference_path(after, &s[k + 1..]));
            }
            (0..=s.len()).any(|k| reference_path(rest, &s[k..]))
        }
        Some(('?', rest)) => s.first().is_some_and(|c| *c != '/') && reference_path(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && reference_path(rest, &s[1..]),
    }
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

/// Short strings over a small alphabet, so that matches are frequent.
fn small(alphabet: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(alphabet), 0..max).prop_map(|v| v.concat())
}

const PATTERN_ALPHABET: &[&str] = &["a", "b", "/", " ", "é", "*", "*", "?", "**", "**/"];
const SUBJECT_ALPHABET: &[&str] = &["a", "b", "/", " ", "é", "ab", "/a"];

/// A subject that often matches `pattern`: the pattern with each wildcard replaced.
fn instance(pattern: &str, fills: &[String]) -> String {
    let mut out = String::new();
    let mut fill = fills.iter().cycle();
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(fill.next().map_or("", String::as_str)),
            '?' => out.push('a'),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Shell helpers.

fn texts(pieces: &[Piece]) -> Vec<(String, bool)> {
    pieces
        .iter()
        .map(|p| (p.text.clone(), p.privileged))
        .collect()
}

/// A word that is none of the words the normaliser treats specially (reserved words,
/// wrappers, `sudo`, assignments).
fn plain_word() -> impl Strategy<Value = String> {
    "q[a-z0-9_./-]{0,6}"
}

/// One complete simple command, optionally with a substitution or a quoted argument:
/// nothing left open, so what follows a separator after it is a new command.
fn complete_command() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(plain_word(), 1..4),
        prop_oneof![
            Just(String::new()),
            plain_word().prop_map(|w| format!(" \"$({w})\"")),
            plain_word().prop_map(|w| format!(" '{w} ; x'")),
            plain_word().prop_map(|w| format!(" `{w}`")),
            plain_word().prop_map(|w| format!(" > {w}")),
            Just(" 2>&1".to_owned()),
        ],
        prop_oneof![
            Just(""),
            Just("sudo "),
            Just("env -i "),
            Just("nice -n 5 "),
            Just("A=1 ")
        ],
    )
        .prop_map(|(words, extra, prefix)| format!("{prefix}{}{extra}", words.join(" ")))
}

/// Ways to write a word of [`plain_word`] characters that all mean the same word.
fn quoted(word: &str, style: u8) -> String {
    match style % 6 {
        0 => word.to_owned(),
        1 => format!("'{word}'"),
        2 => format!("\"{word}\""),
        3 => word.chars().map(|c| format!("\\{c}")).collect(),
        4 => {
            // Quote only the middle: q'ab'c.
            let mid = word.len() / 2;
            format!("{}'{}'{}", &word[..mid], &word[mid..], "")
        }
        _ => format!("$'{word}'"),
    }
}

fn allow_everything_else_deny() -> PolicySet {
    let yaml = "default_action: deny\npolicies:\n  - name: all\n    rules:\n      - action: allow\n        when:\n          command_matches: [\"*\"]\n";
    PolicySet::new(vec![
        parse_str(std::path::Path::new("all.yaml"), yaml).unwrap(),
    ])
    .unwrap()
}

/// Nesting constructs whose depth the normaliser follows one level at a time.
const NESTINGS: &[(&str, &str)] = &[
    ("$(", ")"),
    ("<(", ")"),
    ("sudo ", ""),
    ("eval ", ""),
    ("env -S '", "'"),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn command_globs_agree_with_the_reference(
        pattern in small(PATTERN_ALPHABET, 7),
        subject in small(SUBJECT_ALPHABET, 8),
        fills in prop::collection::vec(small(SUBJECT_ALPHABET, 3), 1..4),
        use_instance in any::<bool>(),
    ) {
        let subject = if use_instance { instance(&pattern, &fills) } else { subject };
        let glob = Glob::command(&pattern);
        prop_assert_eq!(
            glob.is_match(&subject),
            reference_command(&chars(&pattern), &chars(&subject)),
            "pattern {:?} subject {:?}", pattern, subject
        );
    }

    #[test]
    fn path_globs_agree_with_the_reference(
        pattern in small(PATTERN_ALPHABET, 7),
        subject in small(SUBJECT_ALPHABET, 8),
        fills in prop::collection::vec(small(SUBJECT_ALPHABET, 3), 1..4),
        use_instance in any::<bool>(),
    ) {
        let subject = if use_instance { instance(&pattern, &fills) } else { subject };
        let glob = Glob::path(&pattern);
        prop_assert_eq!(
            glob.is_match(&subject),
            reference_path(&chars(&pattern), &chars(&subject)),
            "pattern {:?} subject {:?}", pattern, subject
        );
    }

    /// Long patterns of 64+ tokens take the path matcher's other (vector) code path.
    #[test]
    fn long_path_globs_agree_with_the_reference(
        parts in prop::collection::vec(("[ab/?]{6,16}", prop::sample::select(vec!["*", "**", "**/"])), 4..8),
        last in "[ab/]{0,6}",
        fills in prop::collection::vec(small(&["a", "/", "b"], 3), 1..4),
        cut in 0usize..4,
    ) {
        // Few wildcards (the reference is exponential in them), many tokens.
        let pattern: String = parts.iter().map(|(lit, star)| format!("{lit}{star}")).collect::<String>() + &last;
        let mut subject = instance(&pattern, &fills);
        for _ in 0..cut { subject.pop(); }
        let (p, s) = (chars(&pattern), chars(&subject));
        prop_assert_eq!(Glob::path(&pattern).is_match(&subject), reference_path(&p, &s), "pattern {:?} subject {:?}", pattern, subject);
    }

    #[test]
    fn star_matches_everything(subject in any::<String>()) {
        for pattern in ["*", "**", "***"] {
            prop_assert!(Glob::command(pattern).is_match(&subject));
            prop_assert!(Glob::command(pattern).matches_everything());
        }
        prop_assert!(Glob::path("**").is_match(&subject));
        prop_assert_eq!(Glob::path("*").is_match(&subject), !subject.contains('/'));
    }

    #[test]
    fn a_pattern_without_wildcards_matches_exactly_itself(
        pattern in any::<String>().prop_map(|s| s.replace(['*', '?'], "")),
        other in any::<String>(),
        edit in 0usize..3,
    ) {
        let subject = match edit {
            0 => pattern.clone(),
            1 => format!("{pattern}{other}"),
            _ => other,
        };
        for glob in [Glob::command(&pattern), Glob::path(&pattern)] {
            prop_assert_eq!(glob.is_match(&subject), subject == pattern);
            prop_assert_eq!(glob.as_str(), pattern.as_str());
        }
    }

    #[test]
    fn globs_never_panic_on_arbitrary_input(pattern in any::<String>(), subject in any::<String>()) {
        let c = Glob::command(&pattern);
        let p = Glob::path(&pattern);
        let _ = (c.is_match(&subject), p.is_match(&subject), c.required_literal(), c.inner_literal(), c.literal_prefix());
        if c.matches_everything() { prop_assert!(c.is_match(&subject)); }
        if p.matches_everything() { prop_assert!(p.is_match(&subject)); }
        // The literal prefix really is one.
        if let Some((prefix, whole)) = c.literal_prefix()
            && c.is_match(&subject)
        {
            prop_assert!(subject.starts_with(prefix));
            if whole { prop_assert_eq!(subject.as_str(), prefix); }
        }
        if c.is_match(&subject) { prop_assert!(subject.contains(c.required_literal())); }
    }

    /// `a SEP b` is the pieces of `a`, then the pieces of `b`: the separator ends a
    /// complete command, so nothing of one leaks into the other.
    #[test]
    fn separated_commands_are_the_concatenation_of_their_pieces(
        a in complete_command(),
        b in complete_command(),
        sep in prop::sample::select(vec![";", " ; ", "&&", " || ", "\n", " & ", " | "]),
    ) {
        let joined = normalize_checked(&format!("{a}{sep}{b}"));
        let mut expected = texts(&normalize(&a));
        expected.extend(texts(&normalize(&b)));
        prop_assert_eq!(texts(&joined.pieces), expected);
        prop_assert!(!joined.truncated);
    }

    /// Quote removal: however each word is quoted, the pieces are those of the bare words.
    #[test]
    fn quoting_is_transparent(
        words in prop::collection::vec(plain_word(), 1..6),
        styles in prop::collection::vec(any::<u8>(), 6),
    ) {
        let bare = words.join(" ");
        let quoted: Vec<String> = words.iter().zip(&styles).map(|(w, s)| quoted(w, *s)).collect();
        let quoted = quoted.join(" ");
        prop_assert_eq!(texts(&normalize(&quoted)), texts(&normalize(&bare)), "{}", quoted);
    }

    /// Normalising is a pure function of its input.
    #[test]
    fn normalising_is_deterministic(input in "[a-z $();|&'\"`\\\\<>{}=-]{0,80}") {
        prop_assert_eq!(normalize_checked(&input), normalize_checked(&input));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Nesting is followed to `MAX_DEPTH` levels and `truncated` says exactly when it was
    /// not; either way the innermost command is still in some piece (nothing vanishes).
    #[test]
    fn truncated_exactly_past_the_depth_limit(which in 0..NESTINGS.len(), depth in 0usize..(2 * MAX_DEPTH)) {
        let (open, close) = NESTINGS[which];
        let command = format!("{}qinner{}", open.repeat(depth), close.repeat(depth));
        let result = normalize_checked(&command);
        prop_assert_eq!(result.truncated, depth > MAX_DEPTH, "{}", command);
        prop_assert!(result.pieces.iter().any(|p| p.text.contains("qinner")));
        if !result.truncated {
            prop_assert!(result.pieces.iter().any(|p| p.text == "qinner"));
        }
    }

    /// An allow rule never grants what the normaliser gave up on: with `allow *` and a
    /// `deny` default, exactly the truncated commands are denied.
    #[test]
    fn allow_never_covers_a_truncated_command(which in 0..NESTINGS.len(), depth in 0usize..(2 * MAX_DEPTH), tail in "[a-z ;|&]{0,12}") {
        let (open, close) = NESTINGS[which];
        let command = format!("{}qinner{}{tail}", open.repeat(depth), close.repeat(depth));
        let set = allow_everything_else_deny();
        let truncated = normalize_checked(&command).truncated;
        let decision = set.evaluate(&Request::exec(&command));
        prop_assert_eq!(decision.action, if truncated { Action::Deny } else { Action::Allow }, "{}", command);
    }

    /// Work budgets: re-parsing chains that grow quickly stop within linear output and
    /// say so, and the innermost command survives.
    #[test]
    fn budgets_bound_the_output(depth in 1usize..40, inner in plain_word()) {
        let command = format!("{}{inner}{}", "eval \"$(".repeat(depth), ")\"".repeat(depth));
        let result = normalize_checked(&command);
        let out: usize = result.pieces.iter().map(|p| p.text.len()).sum();
        prop_assert!(out <= 80 * command.len() + (1 << 20), "{} bytes out of {}", out, command.len());
        prop_assert!(result.pieces.iter().any(|p| p.text.contains(&inner)));
    }
}

fn best_of_three(f: impl Fn() -> bool) -> Duration {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            assert!(f() || !f());
            started.elapsed()
        })
        .min()
        .unwrap()
}

/// Patterns with many wildcards against long subjects that almost match: linear (command
/// globs) or pattern × subject without backtracking (path globs). Loose bounds: a
/// backtracking matcher takes hours on these, not milliseconds.
#[test]
fn adversarial_globs_cost_linear_time() {
    let cases = |n: usize| {
        vec![
            (
                "stars between letters",
                Glob::command(&format!("{}b", "*a".repeat(200))),
                "a".repeat(n),
            ),
            (
                "question marks",
                Glob::command(&format!("*{}b*", "?a".repeat(100))),
                "a".repeat(n),
            ),
            (
                "path stars",
                Glob::path(&format!("{}x", "**/a*".repeat(20))),
                "/a".repeat(n / 2),
            ),
            (
                "path question marks",
                Glob::path(&format!("**{}b", "?".repeat(60))),
                "a/".repeat(n / 2),
            ),
        ]
    };
    for ((name, glob, small), (_, _, large)) in cases(25 * 1024).into_iter().zip(cases(100 * 1024))
    {
        assert!(!glob.is_match(&small), "{name}");
        let t_small = best_of_three(|| glob.is_match(&small));
        let t_large = best_of_three(|| glob.is_match(&large));
        assert!(
            t_large < t_small * 16 + Duration::from_millis(50),
            "{name}: {t_small:?} at 25 KiB, {t_large:?} at 100 KiB"
        );
        assert!(t_large < Duration::from_secs(5), "{name}: {t_large:?}");
    }
}

/// `**/` is nothing or a run ending in `/`, never a run that does not end in one: an
/// allow on `/tmp/**/safe` used to allow `/tmp/unsafe`.
#[test]
fn double_star_slash_needs_a_slash() {
    let cases = [
        ("/a/**/b", "/a/b", true),
        ("/a/**/b", "/a/x/y/b", true),
        ("/a/**/b", "/a/xb", false),
        ("/tmp/**/safe", "/tmp/unsafe", false),
        ("**/.ssh/id_*", "/home/u/.ssh/id_rsa", true),
        ("**/.ssh/id_*", "/home/u/x.ssh/id_rsa", false),
        ("**/", "a", false),
        ("**/", "a/", true),
        ("**/", "", true),
    ];
    for (pattern, subject, expected) in cases {
        assert_eq!(
            Glob::path(pattern).is_match(subject),
            expected,
            "{pattern} vs {subject}"
        );
        // The long-pattern matcher agrees.
        let long = format!("{}{pattern}", "z/".repeat(40));
        let subject = format!("{}{subject}", "z/".repeat(40));
        assert_eq!(
            Glob::path(&long).is_match(&subject),
            expected,
            "{long} vs {subject}"
        );
    }
}
