//! The preflight answer scanner under hostile and well-formed input.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::testgen::{Json, answer, esc, text, value, whitespace};

struct Bytes(Vec<u8>);

impl Sink for Bytes {
    fn put(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

fn unescaped(raw: &[u8]) -> String {
    let mut out = Bytes(Vec::new());
    put_unescaped(&mut out, raw);
    String::from_utf8(out.0).unwrap()
}

/// Tokens that make up JSON, shuffled into things that mostly are not.
fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\"allowed\"".to_owned()),
        Just("\"decision\"".to_owned()),
        Just("\"message\"".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("null".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("\\u".to_owned()),
        "[0-9eE.+-]{1,4}",
        "[ -~]{0,3}",
        "[ \t\r\n]{1,2}",
    ];
    vec(token, 0..40).prop_map(|t| t.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(raw in vec(any::<u8>(), 0..4096)) {
        if let Some(a) = scan(&raw) {
            for s in [a.decision, a.message, a.audit_id].into_iter().flatten() {
                let _ = unescaped(s);
            }
        }
    }

    /// Near-JSON built from JSON's own tokens: no panic, and whatever is accepted has
    /// at most one `allowed`, which is a boolean.
    #[test]
    fn json_soup_never_panics(raw in json_soup()) {
        let _ = scan(&raw);
    }

    /// Generated answers, with our keys anywhere among others whose values may hold
    /// `"allowed":true` in strings and nested objects: exactly the top-level values.
    #[test]
    fn answers_are_read_exactly(a in answer()) {
        let got = scan(a.text.as_bytes());
        prop_assert!(got.is_some(), "rejected: {}", a.text);
        let got = got.unwrap();
        prop_assert_eq!(got.allowed, Some(a.allowed));
        let s = |v: Option<&[u8]>| v.map(|b| String::from_utf8(b.to_vec()).unwrap());
        prop_assert_eq!(s(got.decision), a.decision.clone());
        prop_assert_eq!(s(got.message), a.message.clone());
        prop_assert_eq!(s(got.audit_id), a.audit_id.clone());
    }

    /// No strict prefix of an answer is an answer.
    #[test]
    fn truncated_answers_are_rejected(a in answer(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(a.text.len());
        prop_assert_eq!(scan(&a.text.as_bytes()[..cut]), None);
    }

    /// An object with no top-level `allowed`, however often it appears nested or inside
    /// strings, has no verdict.
    #[test]
    fn nested_allowed_never_counts(members in vec((text().prop_filter("not the key", |k| k != "allowed"), value()), 0..6), ws in whitespace()) {
        let mut t = String::new();
        Json::Obj(members).write(&ws, &mut t);
        let got = scan(t.as_bytes());
        prop_assert!(got.is_some(), "rejected: {}", t);
        prop_assert_eq!(got.unwrap().allowed, None);
    }

    /// `allowed` that is not a boolean (a string "true", a number, null, an object) is
    /// malformed, never a verdict.
    #[test]
    fn non_boolean_allowed_is_malformed(v in value().prop_filter("not a boolean", |v| !matches!(v, Json::Bool(_)))) {
        let mut t = String::new();
        Json::Obj(vec![("allowed".to_owned(), v)]).write("", &mut t);
        prop_assert_eq!(scan(t.as_bytes()), None);
    }

    /// Messages shown on the terminal: the decoded text equals the original with control
    /// characters as spaces, so a message cannot start a line of its own.
    #[test]
    fn messages_decode_without_control_characters(m in text()) {
        let raw = esc(&m);
        let shown = unescaped(raw.as_bytes());
        let want: String = m.chars().map(|c| if (c as u32) < 0x20 { ' ' } else { c }).collect();
        prop_assert_eq!(shown, want);
    }
}

/// Nesting far beyond the limit is refused without exhausting the stack; nesting within
/// it is read.
#[test]
fn deep_nesting_is_bounded() {
    let doc = |n: usize| {
        format!(
            r#"{{"x":{}{},"allowed":true}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    assert_eq!(scan(doc(20).as_bytes()).unwrap().allowed, Some(true));
    assert_eq!(scan(doc(100_000).as_bytes()), None);
    let objects = format!(
        r#"{{"allowed":true,"x":{}1{}}}"#,
        r#"{"a":"#.repeat(100_000),
        "}".repeat(100_000)
    );
    assert_eq!(scan(objects.as_bytes()), None);
}
