//! A minimal, strict scanner for the preflight answer: it validates the whole document and
//! picks out the top-level `allowed`, `decision`, `message` and `audit_id` keys. Values of
//! other keys (and anything nested) are skipped with string escapes honoured, so an
//! `"allowed":true` that only appears inside a string never counts.

use crate::sink::Sink;

#[derive(Default, Debug, PartialEq, Eq)]
pub struct Answer<'a> {
    pub allowed: Option<bool>,
    /// Raw (still escaped) contents of the string values.
    pub decision: Option<&'a [u8]>,
    pub message: Option<&'a [u8]>,
    pub audit_id: Option<&'a [u8]>,
}

const MAX_DEPTH: u32 = 32;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.ws();
        if self.peek()? == b {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// A string; returns its raw contents between the quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => {
                    let raw = self.s.get(start..self.i)?;
                    self.i += 1;
                    return Some(raw);
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.s.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        if self.digits() == 0 {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Skips any value; returns `Some(Some(b))` when it was a boolean.
    fn value(&mut self, depth: u32) -> Option<Option<bool>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(|_| None),
            b't' => self.literal(b"true").map(|_| Some(true)),
            b'f' => self.literal(b"false").map(|_| Some(false)),
            b'n' => self.literal(b"null").map(|_| None),
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(None);
                }
                loop {
                    self.string()?;
                    self.eat(b':')?;
                    self.value(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(None);
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(None);
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(None);
                        }
                        _ => return None,
                    }
                }
            }
            _ => self.number().map(|_| None),
        }
    }
}

/// Scans a preflight answer. `None` means malformed: not one JSON object, a duplicate or
/// non-boolean `allowed`, or a non-string `decision`/`message`.
pub fn scan(body: &[u8]) -> Option<Answer<'_>> {
    let mut p = Parser { s: body, i: 0 };
    let mut a = Answer::default();
    p.eat(b'{')?;
    p.ws();
    if p.peek()? == b'}' {
        p.i += 1;
    } else {
        loop {
            let key = p.string()?;
            p.eat(b':')?;
            p.ws();
            match key {
                b"allowed" => {
                    if a.allowed.is_some() {
                        return None;
                    }
                    a.allowed = Some(p.value(1)??);
                }
                b"decision" | b"message" | b"audit_id" => {
                    let v = p.string()?;
                    let slot = match key {
                        b"decision" => &mut a.decision,
                        b"message" => &mut a.message,
                        _ => &mut a.audit_id,
                    };
                    if slot.replace(v).is_some() {
                        return None;
                    }
                }
                _ => {
                    p.value(1)?;
                }
            }
            p.ws();
            match p.peek()? {
                b',' => p.i += 1,
                b'}' => {
                    p.i += 1;
                    break;
                }
                _ => return None,
            }
            p.ws();
        }
    }
    p.ws();
    if p.i != body.len() {
        return None;
    }
    Some(a)
}

/// One pending ask as `GET /v1/approvals?pid=N` lists it: its id (raw JSON string
/// contents) and the whole seconds left before it times out.
#[derive(Debug, PartialEq, Eq)]
pub struct Pending<'a> {
    pub id: &'a [u8],
    pub expires_in_s: u64,
}

/// The newest entry of a `{"approvals":[{...},...]}` answer (ids are time-ordered ULIDs,
/// listed oldest first). `None` when malformed, empty, or an entry lacks a string `id`.
pub fn newest_pending(body: &[u8]) -> Option<Pending<'_>> {
    let mut p = Parser { s: body, i: 0 };
    let mut newest = None;
    p.eat(b'{')?;
    loop {
        let key = p.string()?;
        p.eat(b':')?;
        p.ws();
        if key == b"approvals" {
            p.eat(b'[')?;
            p.ws();
            if p.peek()? == b']' {
                p.i += 1;
            } else {
                loop {
                    newest = Some(p.pending_entry()?);
                    p.ws();
                    match p.peek()? {
                        b',' => p.i += 1,
                        b']' => {
                            p.i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
        } else {
            p.value(1)?;
        }
        p.ws();
        match p.peek()? {
            b',' => p.i += 1,
            b'}' => break,
            _ => return None,
        }
    }
    newest
}

impl<'a> Parser<'a> {
    fn pending_entry(&mut self) -> Option<Pending<'a>> {
        let (mut id, mut left) = (None, 0u64);
        self.eat(b'{')?;
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            self.ws();
            match key {
                b"id" => id = Some(self.string()?),
                b"expires_in_s" => {
                    let start = self.i;
                    self.number()?;
                    let digits = self.s.get(start..self.i)?;
                    left = 0;
                    for &d in digits {
                        if !d.is_ascii_digit() {
                            return None;
                        }
                        left = left.saturating_mul(10).saturating_add(u64::from(d - b'0'));
                    }
                }
                _ => {
                    self.value(2)?;
                }
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        Some(Pending {
            id: id?,
            expires_in_s: left,
        })
    }
}

/// Writes the decoded text of a raw JSON string (as returned by `scan`) to `out`. Control
/// characters are shown as spaces so a message cannot forge extra terminal lines.
pub fn put_unescaped(out: &mut dyn Sink, raw: &[u8]) {
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b != b'\\' {
            let start = i;
            while matches!(raw.get(i), Some(&c) if c != b'\\') {
                i += 1;
            }
            out.put(raw.get(start..i).unwrap_or(&[]));
            continue;
        }
        let esc = raw.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        match esc {
            b'n' | b'r' | b't' | b'b' | b'f' => out.put(b" "),
            b'u' => {
                let cp = raw
                    .get(i..i + 4)
                    .and_then(|h| core::str::from_utf8(h).ok())
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .unwrap_or(0xfffd);
                i += 4;
                let c = if cp < 0x20 {
                    ' '
                } else {
                    char::from_u32(cp).unwrap_or('\u{fffd}')
                };
                let mut utf8 = [0u8; 4];
                out.put(c.encode_utf8(&mut utf8).as_bytes());
            }
            other => out.put(&[other]),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn newest_pending_reads_the_last_entry() {
        let body = br#"{"approvals":[{"id":"01A","command":"x \"id\":\"no\"","expires_in_s":5},{"status":"pending","id":"01B","pid":7,"expires_in_s":118,"matched_policies":["p"]}]}"#;
        assert_eq!(
            newest_pending(body),
            Some(Pending {
                id: b"01B",
                expires_in_s: 118
            })
        );
        assert_eq!(newest_pending(br#"{"approvals":[]}"#), None);
        assert_eq!(newest_pending(br#"{"approvals":[{"pid":1}]}"#), None);
        assert_eq!(newest_pending(br#"{"approvals":[{"id":"1","#), None);
        assert_eq!(
            newest_pending(br#"{"approvals":[{"id":"1","expires_in_s":-3}]}"#),
            None
        );
    }

    #[test]
    fn reads_the_contract_answer() {
        let a = scan(br#"{"allowed":false,"decision":"deny","message":"Destructive command blocked","matched_policies":["p"],"eval_duration_us":3,"audit_id":"01J"}"#).unwrap();
        assert_eq!(a.allowed, Some(false));
        assert_eq!(a.decision, Some(&b"deny"[..]));
        assert_eq!(a.message, Some(&b"Destructive command blocked"[..]));
        assert_eq!(a.audit_id, Some(&b"01J"[..]));
    }

    #[test]
    fn allowed_inside_a_string_does_not_count() {
        let a = scan(br#"{"message":"\"allowed\":true","allowed":false}"#).unwrap();
        assert_eq!(a.allowed, Some(false));
        let a = scan(br#"{"message":"{\"allowed\":true}"}"#).unwrap();
        assert_eq!(a.allowed, None);
        let a = scan(br#"{"x":{"allowed":true}}"#).unwrap();
        assert_eq!(a.allowed, None);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &br#"{"allowed":true"#[..],
            br#"{"allowed":true}x"#,
            br#"{"allowed":"true"}"#,
            br#"{"allowed":true,"allowed":false}"#,
            br#"[true]"#,
            b"",
            br#"{"allowed":tru}"#,
            br#"{"a":1.}"#,
            br#"{"a":"\q"}"#,
        ] {
            assert!(scan(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(scan(br#" {"a":[1,-2.5e3,null,{}],"allowed":true} "#).is_some());
    }

    #[test]
    fn unescapes_messages() {
        struct V(Vec<u8>);
        impl Sink for V {
            fn put(&mut self, b: &[u8]) {
                self.0.extend_from_slice(b);
            }
        }
        let mut v = V(Vec::new());
        put_unescaped(&mut v, br#"a\"b\u00e9\nc"#);
        assert_eq!(String::from_utf8(v.0).unwrap(), "a\"bé c");
    }
}

/// Property tests (proptest): hostile input never panics or hangs, well-formed input is
/// read exactly.
#[cfg(test)]
#[path = "props/json.rs"]
mod props;
