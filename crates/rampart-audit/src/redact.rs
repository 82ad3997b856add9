//! Secret redaction, applied to `command`, `argv` and `message` before an event is hashed and written,
//! so a secret never reaches the disk and the stored (redacted) text is what the chain
//! protects. Each secret becomes `[REDACTED]`; what is around it stays, so the line still
//! says what ran.
//!
//! Covered, by hand-written scanning (every pattern is ASCII, so spans always fall on
//! character boundaries):
//! - `Bearer <token>` anywhere, and the credential of any `Authorization: <scheme> <cred>`;
//! - `key=value` where the key ends in `password`, `passwd`, `_pwd`, `passphrase`, `token`,
//!   `secret`, `api_key`, `apikey`, `api-key`, `secret_access_key` or `private_key`
//!   (case-insensitive: `--password=`, `GITHUB_TOKEN=`, `?token=` in URLs). A value that is
//!   a shell variable (`$TOKEN`) is no secret and stays;
//! - `--password <value>` and the like (`--token`, `--api-key`, `--secret`, …) as two words,
//!   except for MySQL/MariaDB clients, where `--password` alone means "prompt";
//! - `-p<password>` only for MySQL/MariaDB clients (`mysql -psecret`) and for `sshpass`
//!   (`-p secret` too): everywhere else `-p…` is an ordinary option (`mkdir -p`,
//!   `mkdir -pv`), so we decide by program, not by shape;
//! - the password of a URL's user info (`https://user:secret@host`,
//!   `postgres://app:secret@db/x`), and of `curl -u user:secret` / `--user user:secret`;
//! - token shapes: AWS key ids (`AKIA`/`ASIA` + 16), GitHub tokens (`ghp_`, `gho_`, `ghs_`,
//!   `ghu_`, `ghr_`, `github_pat_`), OpenAI-style `sk-` keys (20+ characters) and Rampart's
//!   own `rampart_` + 64 hex admin token.
//!
//! Not covered: secrets in files, stdin, or JSON bodies (`-d '{"password":"x"}'`).

use std::borrow::Cow;
use std::ops::Range;

const REDACTED: &str = "[REDACTED]";

/// Key suffixes that make `key=value` a secret.
const SECRET_KEY_SUFFIXES: &[&str] = &[
    "password",
    "passwd",
    "_pwd",
    "passphrase",
    "token",
    "secret",
    "api_key",
    "apikey",
    "api-key",
    "secret_access_key",
    "private_key",
];

/// Options whose next word is a secret (`--password hunter2`).
const SECRET_FLAGS: &[&str] = &[
    "--password",
    "--passwd",
    "--passphrase",
    "--token",
    "--access-token",
    "--auth-token",
    "--api-key",
    "--apikey",
    "--secret",
    "--client-secret",
];

/// Programs for which `-p<password>` is a password (and `--password` alone a prompt).
const MYSQL_CLIENTS: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlcheck",
    "mysqlshow",
    "mysqlpump",
    "mysqlslap",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "mariadb-import",
    "mariadb-check",
    "mariadb-show",
    "mariadb-slap",
];

/// Returns `text` with every secret replaced by `[REDACTED]`; borrowed when nothing was.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut spans = Vec::new();
    scan_text(text, &mut spans);
    apply(text, spans)
}

/// Redacts an argument vector: each element as by [`redact`], plus the rules that need
/// the element before (`--password` `hunter2`) or the program (`mysql` … `-psecret`).
pub fn redact_argv(argv: &[String]) -> Vec<String> {
    let mut context = WordContext::default();
    let mut prev: Option<&str> = None;
    argv.iter()
        .map(|arg| {
            let mut spans = Vec::new();
            scan_text(arg, &mut spans);
            spans.extend(context.secret_in(prev, arg, 0));
            context.observe(arg);
            prev = Some(arg);
            apply(arg, spans).into_owned()
        })
        .collect()
}

fn apply(text: &str, mut spans: Vec<Range<usize>>) -> Cow<'_, str> {
    spans.retain(|s| !s.is_empty());
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort_by_key(|s| s.start);
    // Overlapping and touching spans become one marker, not `[REDACTED][REDACTED]`.
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for span in merged {
        out.push_str(&text[done..span.start]);
        out.push_str(REDACTED);
        done = span.end;
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

fn scan_text(text: &str, spans: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    token_shapes(bytes, spans);
    bearer_and_authorization(bytes, spans);
    assignments(bytes, spans);
    url_passwords(bytes, spans);
    word_rules(text, 0, spans);
}

/// `scheme://user:password@host`: the password goes, the user and host stay.
fn url_passwords(bytes: &[u8], spans: &mut Vec<Range<usize>>) {
    let mut from = 0;
    while let Some(found) = memfind(&bytes[from..], b"://") {
        let userinfo = from + found + 3;
        from = userinfo;
        // The authority ends at the first of these; user info is what precedes an `@`.
        let len = run_len(bytes, userinfo, |b| {
            is_credential_byte(b) && !matches!(b, b'/' | b'?' | b'#' | b'@')
        });
        if bytes.get(userinfo + len) != Some(&b'@') {
            continue;
        }
        if let Some(colon) = bytes[userinfo..userinfo + len]
            .iter()
            .position(|b| *b == b':')
        {
            let start = userinfo + colon + 1;
            let end = userinfo + len;
            if start < end && bytes[start] != b'$' {
                spans.push(start..end);
            }
        }
    }
}

fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn starts_word(bytes: &[u8], i: usize) -> bool {
    i == 0 || !is_word_byte(bytes[i - 1])
}

fn run_len(bytes: &[u8], start: usize, allowed: impl Fn(u8) -> bool) -> usize {
    bytes[start..].iter().take_while(|b| allowed(**b)).count()
}

/// Tokens recognisable by their shape alone; the whole token is replaced.
fn token_shapes(bytes: &[u8], spans: &mut Vec<Range<usize>>) {
    let token_char = |b: u8| is_word_byte(b);
    let key_char = |b: u8| is_word_byte(b) || b == b'-';
    for i in 0..bytes.len() {
        if !starts_word(bytes, i) {
            continue;
        }
        let rest = &bytes[i..];
        let len = if rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA") {
            let n = run_len(bytes, i + 4, |b| {
                b.is_ascii_digit() || b.is_ascii_uppercase()
            });
            (n == 16 && !bytes.get(i + 20).is_some_and(|b| is_word_byte(*b))).then_some(20)
        } else if let Some(prefix) = [
            &b"github_pat_"[..],
            b"ghp_",
            b"gho_",
            b"ghs_",
            b"ghu_",
            b"ghr_",
        ]
        .into_iter()
        .find(|p| rest.starts_with(p))
        {
            let n = run_len(bytes, i + prefix.len(), token_char);
            (n >= 20).then_some(prefix.len() + n)
        } else if rest.starts_with(b"sk-") {
            let n = run_len(bytes, i + 3, key_char);
            (n >= 20).then_some(3 + n)
        } else if rest.starts_with(b"rampart_") {
            let n = run_len(bytes, i + 8, |b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            (n == 64 && !bytes.get(i + 72).is_some_and(|b| is_word_byte(*b))).then_some(72)
        } else {
            None
        };
        if let Some(len) = len {
            spans.push(i..i + len);
        }
    }
}

fn eq_ignore_case_at(bytes: &[u8], i: usize, word: &[u8]) -> bool {
    bytes
        .get(i..i + word.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(word))
}

fn skip_blanks(bytes: &[u8], i: usize) -> usize {
    i + run_len(bytes, i, |b| b == b' ' || b == b'\t')
}

fn is_credential_byte(b: u8) -> bool {
    !b.is_ascii_whitespace() && !matches!(b, b'"' | b'\'' | b',' | b';' | b'`' | b')')
}

/// `Bearer <token>` and `Authorization: <scheme> <credential>`: the credential goes.
fn bearer_and_authorization(bytes: &[u8], spans: &mut Vec<Range<usize>>) {
    for i in 0..bytes.len() {
        if !starts_word(bytes, i) {
            continue;
        }
        if eq_ignore_case_at(bytes, i, b"bearer") {
            let after = i + 6;
            let start = skip_blanks(bytes, after);
            if start > after && bytes.get(start) != Some(&b'$') {
                let n = run_len(bytes, start, is_credential_byte);
                spans.push(start..start + n);
            }
        } else if eq_ignore_case_at(bytes, i, b"authorization:") {
            let first = skip_blanks(bytes, i + 14);
            let first_len = run_len(bytes, first, is_credential_byte);
            let second = skip_blanks(bytes, first + first_len);
            let second_len = if second > first + first_len {
                run_len(bytes, second, is_credential_byte)
            } else {
                0
            };
            // A bare value with no scheme is the credential itself.
            let credential = if second_len > 0 {
                second..second + second_len
            } else {
                first..first + first_len
            };
            if bytes.get(credential.start) != Some(&b'$') {
                spans.push(credential);
            }
        }
    }
}

/// `key=value` for secret-sounding keys.
fn assignments(bytes: &[u8], spans: &mut Vec<Range<usize>>) {
    for (eq, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'=') {
        let key_len = bytes[..eq]
            .iter()
            .rev()
            .take_while(|b| is_word_byte(**b) || **b == b'-')
            .count();
        let key = &bytes[eq - key_len..eq];
        let secret_key = SECRET_KEY_SUFFIXES.iter().any(|suffix| {
            key.len() >= suffix.len()
                && key[key.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
        });
        if !secret_key {
            continue;
        }
        let value = eq + 1;
        let span = match bytes.get(value) {
            Some(q @ (b'"' | b'\'')) => {
                let inner = value + 1;
                let n = run_len(bytes, inner, |b| b != *q);
                inner..inner + n
            }
            // A shell variable names the secret without revealing it.
            Some(b'$') | None => continue,
            Some(_) => {
                let n = run_len(bytes, value, |b| {
                    is_credential_byte(b) && b != b'&' && b != b'|'
                });
                value..value + n
            }
        };
        spans.push(span);
    }
}

/// What the words so far say about the words to come (reset at `;`, `|`, `&`, newline).
#[derive(Debug, Default)]
struct WordContext {
    mysql: bool,
    sshpass: bool,
    curl: bool,
}

impl WordContext {
    fn observe(&mut self, word: &str) {
        let name = word.trim_start_matches(['$', '(', '`', '\'', '"']);
        let name = name.rsplit('/').next().unwrap_or(name);
        let name = name.trim_end_matches(['\'', '"', ')', '`', ';', '&', '|']);
        if MYSQL_CLIENTS.contains(&name) {
            self.mysql = true;
        } else if name == "sshpass" {
            self.sshpass = true;
        } else if name == "curl" {
            self.curl = true;
        }
    }

    /// The secret inside `word` (at `offset` in the scanned text), given the word before.
    fn secret_in(&self, prev: Option<&str>, word: &str, offset: usize) -> Option<Range<usize>> {
        let prev_is_flag =
            |flags: &[&str]| prev.is_some_and(|p| flags.iter().any(|f| p.eq_ignore_ascii_case(f)));
        if self.curl {
            // `-u user:password`, `--user user:password`, `--user=user:password`: the
            // part after the first colon (`-u user` alone makes curl prompt).
            let value = if prev_is_flag(&["-u", "--user", "-U", "--proxy-user"]) {
                Some(0)
            } else {
                ["--user=", "--proxy-user="]
                    .iter()
                    .find(|f| word.starts_with(*f))
                    .map(|f| f.len())
            };
            if let Some(value) = value
                && let Some(span) = value_span(word, value)
                && let Some(colon) = word[span.clone()].find(':')
                && span.start + colon + 1 < span.end
            {
                return Some(span.start + colon + 1 + offset..span.end + offset);
            }
        }
        let start = if (!self.mysql && prev_is_flag(SECRET_FLAGS))
            || (self.sshpass && prev_is_flag(&["-p"]))
        {
            (!word.starts_with('-')).then_some(0)?
        } else if (self.mysql || self.sshpass)
            && word.len() > 2
            && word.starts_with("-p")
            && !word.starts_with("--")
        {
            2
        } else {
            return None;
        };
        value_span(word, start).map(|r| r.start + offset..r.end + offset)
    }
}

/// The value in `word[start..]`, without its surrounding quotes or a trailing shell
/// closer that belongs to the command, not the secret.
fn value_span(word: &str, start: usize) -> Option<Range<usize>> {
    let value = &word[start..];
    let quote = value.chars().next().filter(|c| *c == '\'' || *c == '"');
    let (lead, trimmed) = match quote {
        Some(q) => (1, value[1..].trim_end_matches(q)),
        None => (
            0,
            value.trim_end_matches(['\'', '"', ')', '`', ';', '&', '|']),
        ),
    };
    let begin = start + lead;
    (!trimmed.is_empty()).then_some(begin..begin + trimmed.len())
}

/// Shell-ish words of `text` with their offsets; a quoted run (`'two words'`) stays in
/// one word. `true` marks a word that follows a newline.
fn shell_words(text: &str) -> Vec<(usize, &str, bool)> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quote = None;
    let mut after_newline = false;
    let mut word_after_newline = false;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => {
                quote = Some(c);
                start.get_or_insert_with(|| {
                    word_after_newline = after_newline;
                    i
                });
            }
            (None, c) if c.is_ascii_whitespace() => {
                if let Some(s) = start.take() {
                    words.push((s, &text[s..i], word_after_newline));
                    after_newline = false;
                }
                after_newline |= c == '\n';
            }
            (None, _) => {
                start.get_or_insert_with(|| {
                    word_after_newline = after_newline;
                    i
                });
            }
        }
    }
    if let Some(s) = start {
        words.push((s, &text[s..], word_after_newline));
    }
    words
}

/// The rules that need neighbouring words, over the words of a command line. A quoted
/// word (`sh -c 'mysql -psecret'`) is a command line of its own and is scanned too.
fn word_rules(text: &str, base: usize, spans: &mut Vec<Range<usize>>) {
    let mut context = WordContext::default();
    let mut prev: Option<&str> = None;
    for (offset, word, after_newline) in shell_words(text) {
        let offset = base + offset;
        // A newline or a control operator separates commands.
        if after_newline || word.trim_matches([';', '&', '|']).is_empty() {
            context = WordContext::default();
            prev = None;
            if !after_newline {
                continue;
            }
        }
        spans.extend(context.secret_in(prev, word, offset));
        if let Some(inner) = quoted_inner(word) {
            word_rules(inner, offset + 1, spans);
        }
        context.observe(word);
        prev = Some(word);
        if word.ends_with([';', '&', '|']) {
            context = WordContext::default();
            prev = None;
        }
    }
}

fn quoted_inner(word: &str) -> Option<&str> {
    let quote = word.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = &word[1..];
    Some(inner.strip_suffix(quote).unwrap_or(inner))
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
