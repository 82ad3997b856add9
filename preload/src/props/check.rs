//! The verdict: HTTP answer bytes through `http::parse`, `classify` and the contract's
//! `permit`, against the matrix of README.md, for every mode and fail-open setting.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::testgen::{Answer, answer, resp_with};

/// Whether the program runs (checked or not).
fn permits(v: &Verdict, enforce: bool, fail_open: bool) -> bool {
    let mode = if enforce {
        Mode::Enforce
    } else {
        Mode::Monitor
    };
    permit(v.outcome(), mode, fail_open, false) != Permit::Refuse
}

/// What the matrix says for an answer with this status and (for 200) `allowed`: only a
/// well-formed allow runs in enforce mode, 5xx included.
fn expected(status: u16, allowed: Option<bool>, enforce: bool, _fail_open: bool) -> bool {
    if !enforce {
        return true;
    }
    match status {
        200 => allowed.unwrap_or(false),
        _ => false,
    }
}

fn verdict_of(raw: &[u8], eof: bool, enforce: bool, fail_open: bool) -> bool {
    let mut buf = raw.to_vec();
    // An answer that stops part-way (the connection then closes) is cut; no byte at all
    // is "nobody answered".
    let incomplete = if raw.is_empty() {
        Fail::Closed
    } else {
        Fail::Cut
    };
    let result = http::parse(&mut buf, eof)
        .and_then(|r| r.ok_or(incomplete))
        .map(|(r, _)| r);
    permits(&classify(result, &buf), enforce, fail_open)
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => Just(200u16),
        1 => prop_oneof![Just(401u16), Just(403), Just(400), Just(404), Just(413), Just(302), Just(204)],
        1 => 500u16..600,
        1 => 100u16..600,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Well-formed answers in any framing: the program runs exactly when the matrix says.
    #[test]
    fn well_formed_answers_follow_the_matrix(
        (r, a) in answer().prop_flat_map(|a: Answer| {
            (resp_with(Just(a.text.clone().into_bytes())), Just(a))
        }),
        status in status(),
        enforce in any::<bool>(),
        fail_open in any::<bool>(),
    ) {
        let mut r = r;
        r.status = status;
        let got = verdict_of(&r.bytes(), r.close_delimited(), enforce, fail_open);
        prop_assert_eq!(got, expected(status, Some(a.allowed), enforce, fail_open));
    }

    /// A 200 whose body is not an answer denies in enforce mode, whatever fail-open says.
    #[test]
    fn garbage_bodies_deny_in_enforce(
        r in resp_with(vec(any::<u8>(), 0..500)),
        fail_open in any::<bool>(),
    ) {
        let mut r = r;
        r.status = 200;
        let has_verdict = json::scan(&r.body).and_then(|a| a.allowed);
        let got = verdict_of(&r.bytes(), r.close_delimited(), true, fail_open);
        prop_assert_eq!(got, has_verdict.unwrap_or(false));
        prop_assert!(verdict_of(&r.bytes(), r.close_delimited(), false, fail_open));
    }

    /// Any bytes at all as the answer: monitor never blocks, and enforce only runs the
    /// program on a 200 with `"allowed": true` (or, with fail-open, when nothing at all
    /// was answered).
    #[test]
    fn arbitrary_answers_never_allow_without_reason(raw in vec(any::<u8>(), 0..2000), eof in any::<bool>()) {
        prop_assert!(verdict_of(&raw, eof, false, false));
        if verdict_of(&raw, eof, true, false) {
            let mut buf = raw.clone();
            let (resp, _) = http::parse(&mut buf, eof).unwrap().unwrap();
            prop_assert_eq!(resp.status, 200);
            let body = &buf[resp.body_start..resp.body_start + resp.body_len];
            prop_assert_eq!(json::scan(body).and_then(|a| a.allowed), Some(true));
        }
    }
}

/// Every way of not getting an answer, against the matrix.
#[test]
fn failures_follow_the_matrix() {
    let soft = [Fail::Unreachable, Fail::Timeout, Fail::Closed];
    let hard = [
        Fail::Malformed,
        Fail::Oversized,
        Fail::Cut,
        Fail::Unusable(b"not a loopback address"),
    ];
    for enforce in [true, false] {
        for fail_open in [true, false] {
            for f in soft {
                let v = classify(Err(f), &[]);
                assert_eq!(
                    permits(&v, enforce, fail_open),
                    fail_open || !enforce,
                    "{f:?}"
                );
            }
            for f in hard {
                let v = classify(Err(f), &[]);
                assert_eq!(permits(&v, enforce, fail_open), !enforce, "{f:?}");
            }
        }
    }
}
