//! Generators shared by the property tests (`src/props/`): JSON values, preflight answers
//! and HTTP responses, each with the result a correct reader must produce.
#![allow(clippy::indexing_slicing)]

use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Debug, Clone)]
pub enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// The JSON text of a string's contents (no quotes): `"` and `\` escaped, `\n \r \t` as
/// short escapes, other control characters as `\u00XX`, everything else as is.
pub fn esc(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl Json {
    /// Serialises with `ws` between all tokens.
    pub fn write(&self, ws: &str, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => {
                out.push('"');
                out.push_str(&esc(s));
                out.push('"');
            }
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(ws);
                        out.push(',');
                    }
                    out.push_str(ws);
                    v.write(ws, out);
                }
                out.push_str(ws);
                out.push(']');
            }
            Json::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws);
                    out.push('"');
                    out.push_str(&esc(k));
                    out.push('"');
                    out.push_str(ws);
                    out.push(':');
                    out.push_str(ws);
                    v.write(ws, out);
                }
                out.push_str(ws);
                out.push('}');
            }
        }
    }
}

/// Strings that are awkward for a scanner: quotes, backslashes, control characters,
/// non-ASCII, and text that looks like the key we look for.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        "[\"\\\\{}:,\\[\\] a-z\\x00-\\x1f]{0,10}",
        Just("\"allowed\":true".to_owned()),
        Just("{\"allowed\":true}".to_owned()),
        Just("é€😀".to_owned()),
    ]
}

pub fn number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,6})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?"
}

/// Any JSON value, nested a few levels; nested objects may well contain `"allowed"`.
pub fn value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        number().prop_map(Json::Num),
        text().prop_map(Json::Str),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Json::Arr),
            vec(
                (prop_oneof![Just("allowed".to_owned()), text()], inner),
                0..4
            )
            .prop_map(Json::Obj),
        ]
    })
}

pub fn whitespace() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[ \\t\\r\\n]{1,3}"]
}

/// A preflight answer and what the scanner must read from it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub text: String,
    pub allowed: bool,
    /// Escaped contents, as `json::scan` returns them.
    pub decision: Option<String>,
    pub message: Option<String>,
    pub audit_id: Option<String>,
}

const RESERVED: [&str; 4] = ["allowed", "decision", "message", "audit_id"];

pub fn answer() -> impl Strategy<Value = Answer> {
    (
        any::<bool>(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of("[0-9A-Z]{26}"),
        vec(
            (
                text().prop_filter("not a key the scanner reads", |k| {
                    !RESERVED.contains(&k.as_str())
                }),
                value(),
            ),
            0..5,
        ),
        any::<prop::sample::Index>(),
        whitespace(),
    )
        .prop_map(
            |(allowed, decision, message, audit_id, mut members, at, ws)| {
                let mut own = vec![("allowed".to_owned(), Json::Bool(allowed))];
                if let Some(d) = &decision {
                    own.push(("decision".to_owned(), Json::Str(d.clone())));
                }
                if let Some(m) = &message {
                    own.push(("message".to_owned(), Json::Str(m.clone())));
                }
                if let Some(a) = &audit_id {
                    own.push(("audit_id".to_owned(), Json::Str(a.clone())));
                }
                // Our keys go in one run at a random place among the others.
                let pos = at.index(members.len() + 1);
                for (i, m) in own.into_iter().enumerate() {
                    members.insert(pos + i, m);
                }
                let mut text = String::new();
                Json::Obj(members).write(&ws, &mut text);
                Answer {
                    text,
                    allowed,
                    decision: decision.as_deref().map(esc),
                    message: message.as_deref().map(esc),
                    audit_id,
                }
            },
        )
}

/// How an HTTP response body is delimited.
#[derive(Debug, Clone)]
pub enum Framing {
    Length,
    /// Chunk sizes used in turn until the body is out; chunk extensions, upper-case hex
    /// and trailers on or off.
    Chunked {
        sizes: Vec<usize>,
        ext: bool,
        upper: bool,
        trailers: Vec<(String, String)>,
    },
    /// No length: the body ends when the server closes.
    Close,
}

/// A well-formed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub minor: u8,
    pub status: u16,
    pub reason: String,
    pub extra: Vec<(String, String)>,
    pub connection: Option<&'static str>,
    pub upper_names: bool,
    pub framing: Framing,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn bytes(&self) -> Vec<u8> {
        let name = |n: &str| {
            if self.upper_names {
                n.to_ascii_uppercase()
            } else {
                n.to_owned()
            }
        };
        let mut out = format!("HTTP/1.{} {} {}\r\n", self.minor, self.status, self.reason);
        for (k, v) in &self.extra {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(c) = self.connection {
            out.push_str(&format!("{}: {c}\r\n", name("Connection")));
        }
        match &self.framing {
            Framing::Length => out.push_str(&format!(
                "{}: {}\r\n",
                name("Content-Length"),
                self.body.len()
            )),
            Framing::Chunked { .. } => {
                out.push_str(&format!("{}: chunked\r\n", name("Transfer-Encoding")))
            }
            Framing::Close => {}
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        match &self.framing {
            Framing::Length | Framing::Close => out.extend_from_slice(&self.body),
            Framing::Chunked {
                sizes,
                ext,
                upper,
                trailers,
            } => {
                let mut rest = &self.body[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = sizes[i % sizes.len()].clamp(1, rest.len());
                    i += 1;
                    let hex = if *upper {
                        format!("{n:X}")
                    } else {
                        format!("{n:x}")
                    };
                    out.extend_from_slice(hex.as_bytes());
                    if *ext {
                        out.extend_from_slice(b";name=value");
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&rest[..n]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                out.extend_from_slice(b"0\r\n");
                for (k, v) in trailers {
                    out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    /// Whether the connection may be reused after this response (read exactly).
    pub fn keep(&self) -> bool {
        let mut close = self.minor == 0;
        match self.connection {
            Some("close") => close = true,
            Some(_) => close = false,
            None => {}
        }
        !close && !matches!(self.framing, Framing::Close)
    }

    /// Whether the body ends only when the connection does.
    pub fn close_delimited(&self) -> bool {
        matches!(self.framing, Framing::Close)
    }
}

fn header() -> impl Strategy<Value = (String, String)> {
    ("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,20}")
}

pub fn resp_with(body: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Resp> {
    let framing = prop_oneof![
        Just(Framing::Length),
        (
            vec(1usize..300, 1..5),
            any::<bool>(),
            any::<bool>(),
            vec(header(), 0..3)
        )
            .prop_map(|(sizes, ext, upper, trailers)| Framing::Chunked {
                sizes,
                ext,
                upper,
                trailers
            }),
        Just(Framing::Close),
    ];
    (
        0u8..2,
        100u16..600,
        "[A-Za-z ]{0,12}",
        vec(header(), 0..4),
        proptest::option::of(prop_oneof![
            Just("close"),
            Just("keep-alive"),
            Just("Keep-Alive")
        ]),
        any::<bool>(),
        framing,
        body,
    )
        .prop_map(
            |(minor, status, reason, extra, connection, upper_names, framing, body)| Resp {
                minor,
                status,
                reason,
                extra,
                connection,
                upper_names,
                framing,
                body,
            },
        )
}

/// Responses with bodies small enough that even one-byte chunks with extensions stay
/// under `RESPONSE_MAX`.
pub fn resp() -> impl Strategy<Value = Resp> {
    resp_with(vec(any::<u8>(), 0..800))
}
