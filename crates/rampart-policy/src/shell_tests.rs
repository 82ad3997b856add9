//! Unit tests for the scanner's internals: option tables, words, the skip scanner and
//! the limits. Whole-command behaviour is tabled in `tests/normalize.rs`.

use super::*;

fn texts(command: &str) -> Vec<String> {
    normalize(command).into_iter().map(|p| p.text).collect()
}

/// Scans `command` as one simple command and returns its words.
fn words(command: &str) -> Vec<Word> {
    let mut parser = Parser::new(command.as_bytes(), 0, false, usize::MAX);
    let mut cmd = Simple::default();
    parser.simple(&mut cmd, false);
    let stored = cmd.words.view();
    stored
        .iter()
        .map(|w| Word {
            text: w.text.to_vec(),
            quoted_at: w.quoted_at,
            base: w.base,
        })
        .collect()
}

fn word(text: &str) -> Word {
    let mut w = Word::default();
    w.lit_slice(text.as_bytes());
    w
}

fn argv(args: &[&str]) -> Words {
    let mut words = Words::default();
    for a in args {
        words.push(&word(a));
    }
    words
}

#[test]
fn words_record_quoting_and_basename() {
    let ws = words(r#"/usr/bin/x "a b"c 'd' A="1" \e $(cat /p/q)/r"#);
    let texts: Vec<&[u8]> = ws.iter().map(|w| w.text.as_slice()).collect();
    assert_eq!(
        texts,
        [
            &b"/usr/bin/x"[..],
            b"a bc",
            b"d",
            b"A=1",
            b"e",
            b"$(cat /p/q)/r"
        ]
    );
    assert_eq!(ws[0].view().program_name(), b"x");
    assert_eq!(ws[0].quoted_at, None);
    assert_eq!(ws[1].quoted_at, Some(0));
    assert_eq!(ws[3].quoted_at, Some(2));
    assert!(ws[3].view().is_assignment());
    assert_eq!(ws[4].quoted_at, Some(0));
    // The slash inside the substitution does not count; the one after it does.
    assert_eq!(ws[5].view().program_name(), b"r");
}

#[test]
fn program_name_of_odd_paths() {
    assert_eq!(word("rm").view().program_name(), b"rm");
    assert_eq!(word("/").view().program_name(), b"/");
    assert_eq!(word("a/").view().program_name(), b"a/");
    assert_eq!(word("./x").view().program_name(), b"x");
    let subst = &words("$(which rm)")[0];
    assert_eq!(subst.view().program_name(), b"$(which rm)");
}

#[test]
fn assignments() {
    for yes in ["A=1", "_a9=", "A+=x", "A=", "a=b=c"] {
        assert!(word(yes).view().is_assignment(), "{yes}");
    }
    for no in ["=1", "1A=2", "A-B=1", "A", "+=1", "A B=1"] {
        assert!(!word(no).view().is_assignment(), "{no}");
    }
    let quoted = &words(r#""A"=1"#)[0];
    assert!(!quoted.view().is_assignment());
    let escaped = &words(r"A\=1")[0];
    assert!(!escaped.view().is_assignment());
}

#[test]
fn short_and_long_options() {
    let o = options(argv(&["nice", "-n", "5", "rm"]).view(), &NICE);
    assert_eq!(o.next, 3);
    let o = options(argv(&["nice", "-n5", "rm"]).view(), &NICE);
    assert_eq!(o.next, 2);
    let o = options(argv(&["nice", "--adjustment", "5", "rm"]).view(), &NICE);
    assert_eq!(o.next, 3);
    let o = options(argv(&["nice", "--adjustment=5", "--", "rm"]).view(), &NICE);
    assert_eq!(o.next, 3);
    let o = options(argv(&["timeout", "-vk", "1", "5", "rm"]).view(), &TIMEOUT);
    assert_eq!(o.next, 4);
    assert!(o.has(b'v') && o.has(b'k') && !o.has(b's'));
    let o = options(argv(&["bash", "+o", "x", "-xc", "body"]).view(), &SHELL);
    assert_eq!(o.next, 4);
    assert!(o.has(b'c') && o.has(b'x'));
    let o = options(argv(&["sudo", "--list"]).view(), &SUDO);
    assert!(o.has(b'l'));
    assert_eq!(o.next, 2);
    // An operand ends the options; `-` alone is an operand.
    let o = options(argv(&["nohup", "-", "-x"]).view(), &NO_OPTIONS);
    assert_eq!(o.next, 1);
    // Non-ASCII option characters are ignored rather than shifted out of range.
    let o = options(argv(&["nice", "-é", "rm"]).view(), &NICE);
    assert_eq!(o.next, 2);
    assert_eq!(o.flags, 0);
}

#[test]
fn env_arguments() {
    let inner = |args: &[&str]| match env_options(argv(args).view()) {
        EnvArgs::Inner(j) => Some(j),
        EnvArgs::Split(..) => None,
    };
    assert_eq!(inner(&["env", "-i", "A=1", "rm"]), Some(3));
    assert_eq!(inner(&["env", "-u", "A", "-uB", "rm"]), Some(4));
    assert_eq!(inner(&["env", "-iu", "A", "rm"]), Some(3));
    assert_eq!(inner(&["env", "--unset", "A", "--chdir=/", "rm"]), Some(4));
    assert_eq!(inner(&["env", "-", "-0", "rm"]), Some(3));
    assert_eq!(inner(&["env", "--", "-i"]), Some(2));
    assert_eq!(inner(&["env", "-u"]), Some(3));
    assert_eq!(inner(&["env", "=x", "rm"]), Some(1));
    let split = |args: &[&str]| match env_options(argv(args).view()) {
        EnvArgs::Split(s, j) => Some((String::from_utf8_lossy(s).into_owned(), j)),
        EnvArgs::Inner(_) => None,
    };
    assert_eq!(split(&["env", "-S", "a b", "c"]), Some(("a b".into(), 3)));
    assert_eq!(split(&["env", "-iSa b", "c"]), Some(("a b".into(), 2)));
    assert_eq!(
        split(&["env", "--split-string=x", "c"]),
        Some(("x".into(), 2))
    );
    assert_eq!(
        split(&["env", "--split-string", "x", "c"]),
        Some(("x".into(), 3))
    );
    assert_eq!(inner(&["env", "-S"]), Some(2));
}

#[test]
fn skip_scanner_finds_the_matching_closer() {
    let cases: &[(&str, Ctx, bool, usize)] = &[
        ("a b) rest", Ctx::Paren, false, 3),
        (
            "a ')' \")\" `)` \\) (x) $(y) ${z}) rest",
            Ctx::Paren,
            false,
            30,
        ),
        ("x:-$(a)} rest", Ctx::Brace, false, 7),
        ("1 + (2)) ) rest", Ctx::Paren, true, 9),
        ("\"$(\")\")\") rest", Ctx::Paren, false, 8),
        ("unclosed (", Ctx::Paren, false, 10),
        ("'unclosed", Ctx::Paren, false, 9),
    ];
    for &(src, ctx, arith, end) in cases {
        let mut parser = Parser::new(src.as_bytes(), 0, false, 0);
        assert_eq!(parser.skip(ctx, arith), end, "{src:?}");
        assert_eq!(parser.pos, (end + 1).min(src.len()), "{src:?}");
    }
}

#[test]
fn budget_is_held_while_nested_and_refunded() {
    let src = b"$(a $(b)) c";
    let mut parser = Parser::new(src, 0, false, 1000);
    parser.pos = 2;
    let held = parser.enter();
    assert_eq!(held, Some(src.len() - 2));
    assert_eq!(parser.budget, 1000 - (src.len() - 2));
    assert_eq!(parser.depth, 1);
    if let Some(held) = held {
        parser.leave(held);
    }
    assert_eq!((parser.budget, parser.depth), (1000, 0));
    // Not enough budget for the rest of the input: skip, and say so.
    let mut poor = Parser::new(src, 0, false, 3);
    assert_eq!(poor.enter(), None);
    assert!(poor.truncated);
    let mut deep = Parser::new(src, MAX_DEPTH, false, 1000);
    assert_eq!(deep.enter(), None);
}

#[test]
fn reparse_charges_the_body_and_refuses_when_poor() {
    let mut out = Vec::new();
    let mut parser = Parser::new(b"", 0, false, 10);
    assert!(parser.reparse(b"a; b", false, &mut out));
    assert_eq!(parser.budget, 6);
    assert!(!parser.reparse(b"a long body", false, &mut out));
    assert!(parser.truncated);
    assert_eq!(out.len(), 2);
}

#[test]
fn word_buffers_are_reused_clean() {
    // Commands after an array literal and after many words must not see old bytes.
    assert_eq!(texts("a=(x y z) b; c d e; f"), ["b", "c d e", "f"]);
    let long = "w ".repeat(200);
    let expected = long.trim_end().to_owned();
    assert_eq!(
        texts(&format!("{long}; {long}")),
        [expected.clone(), expected]
    );
}

#[test]
fn heredoc_bodies_are_skipped_and_scanned() {
    let mut parser = Parser::new(b"x $(a)\n`b`\\$(no)\nEND\nrest", 0, false, 1000);
    let mut subs = Vec::new();
    let doc = Heredoc {
        delim: b"END".to_vec(),
        strip_tabs: false,
        expand: true,
        script: Script::Data,
    };
    parser.heredoc_body(&doc, &mut subs);
    let found: Vec<&str> = subs.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(found, ["a", "b"]);
    assert_eq!(&parser.src[parser.pos..], b"rest");
}

#[test]
fn ansi_c_escapes() {
    let cases = [
        (r"$'\n\t\r\a\b\f\v'", "\n\t\r\u{7}\u{8}\u{c}\u{b}"),
        (r#"$'\e\E\\\'\"\?'"#, "\u{1b}\u{1b}\\'\"?"),
        (r"$'\x41\x4a\x'", "AJ\\x"),
        (r"$'\101\0\7'", "A\0\u{7}"),
        (r"$'\u263a\U0001F600\u'", "☺😀\\u"),
        (r"$'\cA\z'", "\u{1}\\z"),
        (r"$'\xff'", "\u{fffd}"),
        (r"$'\udfff'", "\u{fffd}"),
    ];
    for (input, expected) in cases {
        assert_eq!(texts(input), [expected], "{input}");
    }
}

#[test]
fn privileged_flag_follows_sudo_only() {
    let pieces = normalize("sudo -u x sh -c 'a $(b)' && c");
    let flags: Vec<(&str, bool)> = pieces
        .iter()
        .map(|p| (p.text.as_str(), p.privileged))
        .collect();
    assert_eq!(
        flags,
        [
            ("sudo -u x sh -c a $(b)", false),
            ("a $(b)", true),
            ("b", true),
            ("c", false),
        ]
    );
}

#[test]
fn normalize_checked_reports_truncation() {
    assert!(!normalize_checked("echo $(a $(b))").truncated);
    let deep = format!("{}x", "sudo ".repeat(MAX_DEPTH + 1));
    assert!(normalize_checked(&deep).truncated);
    let deep = format!("{}x", "eval ".repeat(MAX_DEPTH + 3));
    let result = normalize_checked(&deep);
    assert!(result.truncated);
    // Each eval is one re-parse; the layer at the limit is kept as its own piece.
    let texts: Vec<&str> = result.pieces.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts, ["eval eval eval x"]);
}

#[test]
fn literal_runs_end_at_the_first_special_byte_wherever_it_is() {
    for len in 1..40 {
        for at in 1..=len {
            let mut text = vec![b'a'; len];
            if at < len {
                text[at] = b' ';
            }
            assert_eq!(run_len(&text, &SPECIAL_UNQUOTED), at, "{len} {at}");
        }
    }
    // The first byte is not looked at.
    assert_eq!(run_len(b"$x", &SPECIAL_UNQUOTED), 2);
    assert_eq!(run_len(b"a/b/c\"d", &SPECIAL_DQUOTED), 5);
}
