//! One rule for showing untrusted text on a terminal or in a log line: commands, agent and
//! session names, policy messages, approvers' notes.
//!
//! An agent chooses its command text, so printing it raw lets it rewrite what a person
//! sees (`ESC[2K`, cursor moves, a carriage return over an `rm -rf` to show `git status`)
//! or reorder it (bidi overrides). Every byte that could do that is shown escaped:
//! C0 controls (`\n`, `\r`, `\t` by name, the rest as `\xNN`), DEL, C1 controls, the
//! Unicode bidi controls, line and paragraph separators and zero-width characters (as
//! `\u{XXXX}`), and bytes that are not UTF-8 (as `\xNN`). Everything else — including
//! ordinary non-ASCII text — is shown as it is. The backslash itself is not escaped, so
//! ordinary commands read as typed.

/// Writes `input` to `out` with every terminal-affecting character escaped.
pub fn printable(input: &[u8], out: &mut dyn FnMut(&[u8])) {
    for chunk in input.utf8_chunks() {
        let valid = chunk.valid();
        let mut start = 0;
        for (i, c) in valid.char_indices() {
            if needs_escape(c) {
                if let Some(run) = valid.get(start..i) {
                    out(run.as_bytes());
                }
                escape_char(c, out);
                start = i + c.len_utf8();
            }
        }
        if let Some(run) = valid.get(start..) {
            out(run.as_bytes());
        }
        for &b in chunk.invalid() {
            hex_byte(b, out);
        }
    }
}

/// Whether `input` would be shown differently by [`printable`].
pub fn is_printable(input: &[u8]) -> bool {
    match core::str::from_utf8(input) {
        Ok(s) => !s.chars().any(needs_escape),
        Err(_) => false,
    }
}

/// [`printable`] into a `String`.
#[cfg(any(test, feature = "alloc"))]
pub fn printable_string(input: &[u8]) -> alloc::string::String {
    let mut out = alloc::vec::Vec::with_capacity(input.len());
    printable(input, &mut |b| out.extend_from_slice(b));
    // Only whole UTF-8 sequences and ASCII escapes were written.
    alloc::string::String::from_utf8(out)
        .unwrap_or_else(|e| alloc::string::String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        // bidi: ALM, LRM, RLM, LRE/RLE/PDF/LRO/RLO, LRI/RLI/FSI/PDI
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        // zero-width space/joiners, word joiner, BOM; line and paragraph separators
        | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{2028}' | '\u{2029}')
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_digit(n: u32) -> u8 {
    HEX.get((n & 0xf) as usize).copied().unwrap_or(b'?')
}

fn hex_byte(b: u8, out: &mut dyn FnMut(&[u8])) {
    out(&[
        b'\\',
        b'x',
        hex_digit(u32::from(b) >> 4),
        hex_digit(u32::from(b)),
    ]);
}

fn escape_char(c: char, out: &mut dyn FnMut(&[u8])) {
    match c {
        '\n' => out(b"\\n"),
        '\r' => out(b"\\r"),
        '\t' => out(b"\\t"),
        c if (c as u32) < 0x80 => hex_byte(c as u8, out),
        c => {
            let n = c as u32;
            out(b"\\u{");
            let digits = if n > 0xffff { 5 } else { 4 };
            for shift in (0..digits).rev() {
                out(&[hex_digit(n >> (shift * 4))]);
            }
            out(b"}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_moves_the_terminal() {
        assert_eq!(printable_string(b"git status"), "git status");
        assert_eq!(
            printable_string(b"rm -rf ~\r\x1b[2Kgit status"),
            "rm -rf ~\\r\\x1b[2Kgit status"
        );
        assert_eq!(printable_string(b"a\nb\tc\x7f"), "a\\nb\\tc\\x7f");
        assert_eq!(
            printable_string("ls \u{202e}txt.exe".as_bytes()),
            "ls \\u{202e}txt.exe"
        );
        assert_eq!(printable_string("x\u{85}y".as_bytes()), "x\\u{0085}y");
        assert_eq!(printable_string(b"bad \xff\xfe end"), "bad \\xff\\xfe end");
        assert_eq!(printable_string("caf\u{e9} 日本".as_bytes()), "café 日本");
        assert_eq!(printable_string(br"grep 'a\|b'"), r"grep 'a\|b'");
        assert!(is_printable(b"ls -la"));
        assert!(!is_printable(b"ls\x1b"));
        assert!(!is_printable(b"\xff"));
    }
}
