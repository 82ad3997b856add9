//! Byte sinks and the two encoders written through them: JSON string escaping and shell
//! quoting. Everything streams, so an argv of any length is encoded without a heap: the
//! request body is produced twice, once into a `Counter` (for Content-Length) and once
//! through a small stack buffer into the socket.

/// Something bytes can be written to. Errors are sticky inside the sink.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// Counts bytes (first pass of the request body).
#[derive(Default)]
pub struct Counter(pub usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

/// Buffers into a caller-provided slice and hands full buffers to `out`; once `out`
/// fails, later writes are dropped and `failed` stays set.
pub struct BufWriter<'a, F: FnMut(&[u8]) -> bool> {
    buf: &'a mut [u8],
    len: usize,
    out: F,
    pub failed: bool,
}

impl<'a, F: FnMut(&[u8]) -> bool> BufWriter<'a, F> {
    pub fn new(buf: &'a mut [u8], out: F) -> Self {
        BufWriter {
            buf,
            len: 0,
            out,
            failed: false,
        }
    }

    pub fn flush(&mut self) -> bool {
        if !self.failed && self.len > 0 {
            let chunk = self.buf.get(..self.len).unwrap_or(&[]);
            self.failed = !(self.out)(chunk);
        }
        self.len = 0;
        !self.failed
    }
}

impl<F: FnMut(&[u8]) -> bool> Sink for BufWriter<'_, F> {
    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.failed {
            let room = self.buf.len() - self.len;
            if room == 0 {
                self.flush();
                continue;
            }
            let n = room.min(bytes.len());
            if let (Some(dst), Some(src)) =
                (self.buf.get_mut(self.len..self.len + n), bytes.get(..n))
            {
                dst.copy_from_slice(src);
            }
            self.len += n;
            bytes = bytes.get(n..).unwrap_or(&[]);
        }
    }
}

/// Writes into a fixed slice and silently truncates (for short texts such as paths).
pub struct SliceWriter<'a> {
    pub buf: &'a mut [u8],
    pub len: usize,
    pub truncated: bool,
}

impl<'a> SliceWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter {
            buf,
            len: 0,
            truncated: false,
        }
    }
}

impl Sink for SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - self.len;
        let n = room.min(bytes.len());
        if n < bytes.len() {
            self.truncated = true;
        }
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.len += n;
    }
}

/// Shows untrusted text (commands, names, server messages, URLs) on a terminal through
/// the contract's `printable`: control characters, DEL, C1, bidi and zero-width
/// characters escaped. Text arrives in pieces, so an incomplete UTF-8 sequence at the end
/// of one piece is held (at most 3 bytes) and completed by the next; `finish` shows
/// whatever is still held.
pub struct Printable<'a> {
    out: &'a mut dyn Sink,
    held: [u8; 4],
    n_held: usize,
}

impl<'a> Printable<'a> {
    pub fn new(out: &'a mut dyn Sink) -> Self {
        Printable {
            out,
            held: [0; 4],
            n_held: 0,
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        let out = &mut *self.out;
        rampart_contract::printable::printable(bytes, &mut |b| out.put(b));
    }

    /// Shows the bytes still held (an incomplete sequence: escaped as bytes).
    pub fn finish(&mut self) {
        let held = self.held;
        let n = core::mem::take(&mut self.n_held);
        self.emit(held.get(..n).unwrap_or(&[]));
    }
}

/// How many bytes at the end of `b` start a UTF-8 sequence that `b` does not complete.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let Some(&c) = b.get(b.len() - back) else {
            break;
        };
        if c & 0xc0 == 0x80 {
            continue;
        }
        let need = match c {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

impl Sink for Printable<'_> {
    fn put(&mut self, mut bytes: &[u8]) {
        // Complete a held sequence with continuation bytes from this piece.
        while self.n_held > 0 {
            match bytes.first() {
                Some(&c) if c & 0xc0 == 0x80 && self.n_held < 4 => {
                    if let Some(slot) = self.held.get_mut(self.n_held) {
                        *slot = c;
                    }
                    self.n_held += 1;
                    bytes = bytes.get(1..).unwrap_or(&[]);
                    let held = self.held;
                    let n = self.n_held;
                    if incomplete_tail(held.get(..n).unwrap_or(&[])) == 0 {
                        self.n_held = 0;
                        self.emit(held.get(..n).unwrap_or(&[]));
                    }
                }
                Some(_) => self.finish(),
                None => return,
            }
        }
        let keep = incomplete_tail(bytes);
        let (now, later) = bytes.split_at(bytes.len() - keep);
        self.emit(now);
        if let Some(dst) = self.held.get_mut(..later.len()) {
            dst.copy_from_slice(later);
        }
        self.n_held = later.len();
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_u00(out: &mut dyn Sink, b: u8) {
    let esc = [
        b'\\',
        b'u',
        b'0',
        b'0',
        HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
        HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
    ];
    out.put(&esc);
}

/// Escapes valid UTF-8 text (control characters, quote, backslash) for a JSON string.
fn put_json_valid(out: &mut dyn Sink, text: &[u8]) {
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.put(text.get(start..i).unwrap_or(&[]));
        match esc {
            Some(e) => out.put(e),
            None => put_u00(out, b),
        }
        start = i + 1;
    }
    out.put(text.get(start..).unwrap_or(&[]));
}

/// Writes `bytes` as the inside of a JSON string. Bytes that are not valid UTF-8 are
/// written as `\u00XX` (one escape per byte, XX = the byte), so nothing is ever dropped
/// and the length is preserved; valid UTF-8 passes through unchanged.
pub fn put_json_str(out: &mut dyn Sink, mut bytes: &[u8]) {
    loop {
        match core::str::from_utf8(bytes) {
            Ok(_) => return put_json_valid(out, bytes),
            Err(e) => {
                let good = e.valid_up_to();
                put_json_valid(out, bytes.get(..good).unwrap_or(&[]));
                let bad = e.error_len().unwrap_or(bytes.len() - good).max(1);
                for &b in bytes.get(good..good + bad).unwrap_or(&[]) {
                    put_u00(out, b);
                }
                bytes = bytes.get(good + bad..).unwrap_or(&[]);
            }
        }
    }
}

/// Adapts a sink so everything written through it is JSON-string escaped. Each `put`
/// must carry whole UTF-8 sequences; the shell quoter below only splits words at ASCII
/// bytes, so it does.
pub struct JsonEsc<'a>(pub &'a mut dyn Sink);

impl Sink for JsonEsc<'_> {
    fn put(&mut self, bytes: &[u8]) {
        put_json_str(self.0, bytes);
    }
}

/// Bytes a shell leaves alone in a word. Glob characters are kept unquoted on purpose: the
/// command then reads the way a person typed it (`rm -rf /tmp/*`), and the policy engine
/// matches the text, it does not expand it. Non-ASCII bytes are kept as they are.
fn shell_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80 || b"_-./:=@%+,*?[]^".contains(&b)
}

/// Writes one word, single-quoted only when it needs it (`'\''` for embedded quotes).
pub fn put_shell_word(out: &mut dyn Sink, word: &[u8]) {
    if !word.is_empty() && word.iter().all(|&b| shell_safe(b)) {
        return out.put(word);
    }
    out.put(b"'");
    let mut rest = word;
    while let Some(q) = rest.iter().position(|&b| b == b'\'') {
        out.put(rest.get(..q).unwrap_or(&[]));
        out.put(b"'\\''");
        rest = rest.get(q + 1..).unwrap_or(&[]);
    }
    out.put(rest);
    out.put(b"'");
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    struct Vec8(Vec<u8>);
    impl Sink for Vec8 {
        fn put(&mut self, b: &[u8]) {
            self.0.extend_from_slice(b);
        }
    }

    fn json(b: &[u8]) -> String {
        let mut v = Vec8(Vec::new());
        put_json_str(&mut v, b);
        String::from_utf8(v.0).unwrap()
    }

    fn sh(b: &[u8]) -> String {
        let mut v = Vec8(Vec::new());
        put_shell_word(&mut v, b);
        String::from_utf8(v.0).unwrap()
    }

    fn shown(pieces: &[&[u8]]) -> String {
        let mut v = Vec8(Vec::new());
        let mut p = Printable::new(&mut v);
        for piece in pieces {
            p.put(piece);
        }
        p.finish();
        String::from_utf8(v.0).unwrap()
    }

    #[test]
    fn printable_in_pieces() {
        assert_eq!(
            shown(&[b"rm -rf ~\r\x1b[2K", b"git status"]),
            "rm -rf ~\\r\\x1b[2Kgit status"
        );
        // A bidi override split across pieces is still recognised.
        let rlo = "\u{202e}".as_bytes();
        assert_eq!(
            shown(&[b"ls ", &rlo[..1], &rlo[1..2], &rlo[2..], b"txt"]),
            "ls \\u{202e}txt"
        );
        assert_eq!(shown(&["caf\u{e9}".as_bytes()]), "caf\u{e9}");
        // An incomplete sequence at the very end, or broken by an ASCII byte.
        assert_eq!(shown(&[b"a\xe2\x80"]), "a\\xe2\\x80");
        assert_eq!(shown(&[b"a\xe2", b"b"]), "a\\xe2b");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json(b"a\"b\\c\n\x01"), "a\\\"b\\\\c\\n\\u0001");
        assert_eq!(json("é/ü".as_bytes()), "é/ü");
        assert_eq!(json(b"x\xffy\xc3"), "x\\u00ffy\\u00c3");
    }

    #[test]
    fn shell_quotes_only_when_needed() {
        assert_eq!(sh(b"/tmp/*"), "/tmp/*");
        assert_eq!(sh(b"if=/dev/zero"), "if=/dev/zero");
        assert_eq!(sh(b""), "''");
        assert_eq!(sh(b"a b"), "'a b'");
        assert_eq!(sh(b"it's"), "'it'\\''s'");
        assert_eq!(sh(b"$(x)"), "'$(x)'");
    }

    #[test]
    fn buffered_writer_streams_in_chunks() {
        let mut buf = [0u8; 4];
        let mut got = Vec::new();
        {
            let mut w = BufWriter::new(&mut buf, |c: &[u8]| {
                got.push(c.to_vec());
                true
            });
            w.put(b"hello world");
            w.flush();
        }
        assert_eq!(got.concat(), b"hello world");
        assert!(got.iter().all(|c| c.len() <= 4));
    }
}
