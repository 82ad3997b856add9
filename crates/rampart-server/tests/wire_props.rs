//! Hostile preflight bodies (issue 8 §2) against the decoder the server uses for them:
//! `serde_json::from_slice::<PreflightRequest>`, exactly what `api.rs`'s `parse_body`
//! calls before answering 400 with the error text. Arbitrary bytes, mutated valid bodies,
//! out-of-range integers, huge strings, deep nesting, duplicate keys and bad escapes all
//! decode or fail with a one-line message that says where; nothing panics, and anything
//! the client side serialises decodes back to the same request.
//! (The same bodies go to a real server in `rampart-cli/tests/hostile.rs`.)

#![allow(clippy::panic, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rampart_server::wire::{Params, PreflightRequest};

fn decode(body: &[u8]) -> Result<PreflightRequest, String> {
    serde_json::from_slice::<PreflightRequest>(body).map_err(|e| e.to_string())
}

/// An error must say what and where, on one line.
fn check_error(body: &[u8], message: &str) -> Result<(), TestCaseError> {
    prop_assert!(!message.is_empty());
    prop_assert!(!message.contains('\n'), "{:?}", message);
    // serde_json says "... at line L column C" for everything but an empty body.
    if !body.iter().all(u8::is_ascii_whitespace) {
        prop_assert!(message.contains(" at line "), "{:?}", message);
    }
    Ok(())
}

const VALID: &str = r#"{"agent":"preload","session":"preload-4242","params":{"command":"rm -rf /tmp/x"},"enforce":true,"argv":["rm","-rf","/tmp/x"],"exe":"/usr/bin/rm","cwd":"/home/u/proj","pid":4243,"ppid":4242,"via":"execve","wait_ms":120000}"#;

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "\\udc00",
    "\\u00ff",
    "\\x",
    "\"agent\"",
    "\"params\"",
    "\"command\"",
    "\"argv\"",
    "\"pid\"",
    "\"wait_ms\"",
    "\"enforce\"",
    "true",
    "null",
    "-1",
    "1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "0.5",
    "\u{0}",
    "\u{1b}",
    "é",
    " ",
];

fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(JSON_TOKENS), 0..60)
        .prop_map(|v| v.concat().into_bytes())
}

fn arbitrary_request() -> impl Strategy<Value = PreflightRequest> {
    (
        prop::option::of(any::<String>()),
        prop::option::of(any::<String>()),
        prop::option::of(any::<String>()),
        any::<bool>(),
        prop::collection::vec(any::<String>(), 0..4),
        prop::option::of(any::<i64>()),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<String>()),
    )
        .prop_map(
            |(agent, session, command, enforce, argv, pid, wait_ms, cwd)| PreflightRequest {
                agent,
                session,
                params: Params {
                    command,
                    path: None,
                },
                enforce,
                argv,
                exe: None,
                cwd,
                pid,
                ppid: pid.map(|p| p.wrapping_sub(1)),
                via: Some("execve".into()),
                wait_ms,
                unchecked: None,
                ran_unchecked: None,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_decode_or_say_where(body in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Err(e) = decode(&body) {
            check_error(&body, &e)?;
        }
    }

    #[test]
    fn json_soup_decodes_or_says_where(body in json_soup()) {
        if let Err(e) = decode(&body) {
            check_error(&body, &e)?;
        }
    }

    #[test]
    fn mutated_valid_bodies_decode_or_say_where(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut body = VALID.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let at = at % (body.len() + 1);
            match kind {
                0 if at < body.len() => body[at] = byte,
                1 => body.insert(at, byte),
                _ if at < body.len() => { body.remove(at); }
                _ => body.push(byte),
            }
        }
        if let Err(e) = decode(&body) {
            check_error(&body, &e)?;
        }
    }

    /// What the CLI's client serialises, the server decodes to the same request.
    #[test]
    fn serialised_requests_decode_to_themselves(req in arbitrary_request()) {
        let body = serde_json::to_vec(&req).unwrap();
        let back = decode(&body).unwrap();
        prop_assert_eq!(serde_json::to_vec(&back).unwrap(), body);
        prop_assert_eq!(back.params.command, req.params.command);
        prop_assert_eq!(back.argv, req.argv);
        prop_assert_eq!(back.pid, req.pid);
        prop_assert_eq!(back.wait_ms, req.wait_ms);
    }

    /// `\u00XX` escapes (how the preload library sends bytes that are not UTF-8) decode to
    /// U+00XX, one character per byte.
    #[test]
    fn byte_escapes_decode_to_latin1(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let escaped: String = bytes.iter().map(|b| format!("\\u00{b:02x}")).collect();
        let body = format!(r#"{{"params":{{"command":"{escaped}"}}}}"#);
        let req = decode(body.as_bytes()).unwrap();
        let expected: String = bytes.iter().map(|b| char::from(*b)).collect();
        prop_assert_eq!(req.params.command, Some(expected));
    }
}

#[test]
fn hostile_shapes_fail_with_a_message() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "pid past i64",
            br#"{"params":{"command":"x"},"pid":9223372036854775808}"#.to_vec(),
            "invalid value",
        ),
        (
            "negative wait_ms",
            br#"{"params":{"command":"x"},"wait_ms":-1}"#.to_vec(),
            "invalid value",
        ),
        (
            "float pid",
            br#"{"params":{"command":"x"},"pid":1.5}"#.to_vec(),
            "invalid type",
        ),
        (
            "huge exponent",
            br#"{"params":{"command":"x"},"wait_ms":1e400}"#.to_vec(),
            "number out of range",
        ),
        (
            "duplicate field",
            br#"{"agent":"a","agent":"b","params":{"command":"x"}}"#.to_vec(),
            "duplicate field `agent`",
        ),
        (
            "lone surrogate",
            br#"{"params":{"command":"\ud800"}}"#.to_vec(),
            "hex escape",
        ),
        (
            "lone trailing surrogate",
            br#"{"params":{"command":"\udc00x"}}"#.to_vec(),
            "hex escape",
        ),
        (
            "raw invalid UTF-8",
            b"{\"params\":{\"command\":\"\xff\xfe\"}}".to_vec(),
            "invalid unicode code point",
        ),
        (
            "bad escape",
            br#"{"params":{"command":"\x41"}}"#.to_vec(),
            "invalid escape",
        ),
        (
            "command not a string",
            br#"{"params":{"command":["rm","-rf"]}}"#.to_vec(),
            "invalid type",
        ),
        (
            "argv of numbers",
            br#"{"params":{"command":"x"},"argv":[1,2]}"#.to_vec(),
            "invalid type",
        ),
        (
            "deep nesting in argv",
            format!(
                r#"{{"params":{{"command":"x"}},"argv":{}{}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
            .into_bytes(),
            "invalid type",
        ),
        (
            "unclosed deep nesting in an unknown field",
            format!(
                r#"{{"params":{{"command":"x"}},"extra":{}"#,
                "[{\"a\":".repeat(100_000)
            )
            .into_bytes(),
            "EOF while parsing",
        ),
        ("truncated", VALID.as_bytes()[..100].to_vec(), "EOF"),
        (
            "trailing garbage",
            format!("{VALID}x").into_bytes(),
            "trailing",
        ),
        ("a string", b"\"rm -rf /\"".to_vec(), "invalid type"),
        ("empty", Vec::new(), "EOF"),
    ];
    for (name, body, expected) in cases {
        match decode(&body) {
            Ok(req) => panic!("{name}: decoded {req:?}"),
            Err(e) => {
                assert!(e.contains(expected), "{name}: {e}");
                assert!(!e.contains('\n'), "{name}: {e}");
            }
        }
    }
    // Null, a missing `params`, and unknown fields are accepted (the server then says
    // which field tool `exec` needs).
    let req = decode(br#"{"agent":null,"unknown":{"a":[1,2,{"b":null}]}}"#).unwrap();
    assert_eq!(req.agent, None);
    assert_eq!(req.params.command, None);
    assert!(req.enforce, "enforce defaults to true");
    // A quirk of serde's derive: a JSON array is read as the fields in order. Harmless:
    // the request is evaluated and audited like the object form.
    let req = decode(br#"["a","s",{"command":"rm -rf /"}]"#).unwrap();
    assert_eq!(req.agent.as_deref(), Some("a"));
    assert_eq!(req.params.command.as_deref(), Some("rm -rf /"));
    // Deep nesting in a field the server ignores is skipped without recursion.
    let body = format!(
        r#"{{"params":{{"command":"x"}},"extra":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(
        decode(body.as_bytes()).unwrap().params.command.as_deref(),
        Some("x")
    );
}

/// Big bodies decode in time proportional to their size (loose bound, no quadratic).
#[test]
fn large_bodies_decode_in_linear_time() {
    fn body(n: usize) -> Vec<u8> {
        let argv: Vec<String> = (0..n).map(|i| format!("arg\\u00ff\\n{i}")).collect();
        format!(
            r#"{{"params":{{"command":"{}"}},"argv":["{}"]}}"#,
            "x\\\"".repeat(n * 4),
            argv.join("\",\"")
        )
        .into_bytes()
    }
    let best = |b: &[u8]| {
        (0..3)
            .map(|_| {
                let started = Instant::now();
                decode(b).unwrap();
                started.elapsed()
            })
            .min()
            .unwrap()
    };
    let (small, large) = (body(10_000), body(40_000));
    let (t_small, t_large) = (best(&small), best(&large));
    assert!(
        t_large < t_small * 10 + Duration::from_millis(50),
        "{} bytes: {t_small:?}; {} bytes: {t_large:?}",
        small.len(),
        large.len()
    );
}
