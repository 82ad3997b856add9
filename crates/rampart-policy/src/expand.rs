//! Shell expansions the normaliser does not perform (issue 14, family 4), done as a text
//! rewrite of the whole command: `$IFS` as a space, simple variables assigned earlier in
//! the same command (`c=rm; $c -rf ~`), and brace lists (`{rm,-rf,~}`, `/{usr,home}`).
//!
//! The rewritten command is normalised too and its pieces are added to the original
//! ones, never replacing them: a deny rule then sees `rm -rf ~` however it was spelt,
//! and an allow rule must cover both readings. Only commands that contain one of these
//! constructs are rewritten; the cost is linear in the command.

use memchr::memmem;

/// At most this many assignments are remembered (a command with more is not ordinary).
const MAX_VARS: usize = 32;

/// The command with `$IFS`, earlier simple assignments and brace lists expanded, or
/// `None` when there is nothing to expand.
pub fn rewrite(command: &str) -> Option<String> {
    let bytes = command.as_bytes();
    let has_ifs = memmem::find(bytes, b"IFS").is_some();
    let has_dollar = memchr::memchr(b'$', bytes).is_some();
    let has_brace = memchr::memchr(b'{', bytes).is_some() && memchr::memchr(b',', bytes).is_some();
    if !has_ifs && !has_dollar && !has_brace {
        return None;
    }
    let mut text = command.to_owned();
    if has_ifs {
        text = text
            .replace("${IFS}", " ")
            .replace("$IFS$9", " ")
            .replace("$IFS", " ");
    }
    if has_dollar {
        let vars = assignments(&text);
        if !vars.is_empty() {
            text = substitute(&text, &vars);
        }
    }
    if has_brace {
        text = braces(&text);
    }
    (text != command).then_some(text)
}

/// `NAME=VALUE` words at the start of a command (after start, `;`, `&`, `|`, newline,
/// `(`, whitespace, or the quote or backtick that opens a nested command), VALUE a plain
/// word or a quoted one without `$`.
fn assignments(text: &str) -> Vec<(String, String)> {
    let bytes = text.as_bytes();
    let mut vars: Vec<(String, String)> = Vec::new();
    for eq in memchr::memchr_iter(b'=', bytes) {
        if vars.len() >= MAX_VARS {
            break;
        }
        let start = bytes
            .get(..eq)
            .unwrap_or_default()
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map_or(0, |k| k + 1);
        let name = text.get(start..eq).unwrap_or("");
        let boundary = start == 0
            || matches!(
                bytes.get(start - 1),
                // A quote or backtick opens a nested command (`sh -c 'c=rm; $c -rf ~'`).
                Some(b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b'\'' | b'"' | b'`')
            );
        if !boundary || name.is_empty() || name.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            continue;
        }
        let rest = text.get(eq + 1..).unwrap_or("");
        let value = match rest.as_bytes().first() {
            Some(&q @ (b'\'' | b'"')) => {
                let inner = rest.get(1..).unwrap_or("");
                match inner.find(q as char) {
                    Some(end) => inner.get(..end).unwrap_or(""),
                    None => continue,
                }
            }
            _ => {
                let end = rest
                    .find([' ', '\t', '\n', ';', '&', '|', ')'])
                    .unwrap_or(rest.len());
                rest.get(..end).unwrap_or("")
            }
        };
        if value.contains(['$', '`']) {
            continue;
        }
        vars.retain(|(n, _)| n != name);
        vars.push((name.to_owned(), value.to_owned()));
    }
    vars
}

/// `$NAME` and `${NAME}` replaced by the assigned values.
fn substitute(text: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(k) = rest.find('$') {
        out.push_str(rest.get(..k).unwrap_or(""));
        let after = rest.get(k + 1..).unwrap_or("");
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (braced.get(..end).unwrap_or(""), end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (after.get(..end).unwrap_or(""), end)
        };
        match vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, value)) if !name.is_empty() => {
                out.push_str(value);
                rest = after.get(used..).unwrap_or("");
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Each whitespace-separated word with one `{a,b,…}` list (no quotes, no spaces)
/// expanded into one word per item: `/{usr,home}` → `/usr /home`, `{rm,-rf,~}` →
/// `rm -rf ~`.
fn braces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest
            .find([' ', '\t', '\n', ';', '&', '|'])
            .unwrap_or(rest.len());
        let (word, tail) = rest.split_at(end);
        match expand_word(word) {
            Some(items) => out.push_str(&items.join(" ")),
            None => out.push_str(word),
        }
        let mut chars = tail.chars();
        if let Some(sep) = chars.next() {
            out.push(sep);
        }
        rest = chars.as_str();
    }
    out
}

fn expand_word(word: &str) -> Option<Vec<String>> {
    if word.contains(['\'', '"', '$', '`']) {
        return None;
    }
    let open = word.find('{')?;
    let close = open + word.get(open..)?.find('}')?;
    let inner = word.get(open + 1..close)?;
    if !inner.contains(',') {
        return None;
    }
    let (prefix, suffix) = (word.get(..open)?, word.get(close + 1..)?);
    Some(
        inner
            .split(',')
            .map(|item| format!("{prefix}{item}{suffix}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn rewrites() {
        for (input, expected) in [
            ("rm${IFS}-rf${IFS}~", Some("rm -rf ~")),
            ("rm$IFS-rf$IFS/", Some("rm -rf /")),
            ("c=rm; $c -rf ~", Some("c=rm; rm -rf ~")),
            ("X=/; rm -rf ${X}", Some("X=/; rm -rf /")),
            (
                "d='/home/u'; rm -rf $d",
                Some("d='/home/u'; rm -rf /home/u"),
            ),
            ("sh -c 'c=rm; $c -rf ~'", Some("sh -c 'c=rm; rm -rf ~'")),
            (
                "bash -c \"c=rm; $c -rf /\"",
                Some("bash -c \"c=rm; rm -rf /\""),
            ),
            ("{rm,-rf,~}", Some("rm -rf ~")),
            ("rm -rf /{usr,home}", Some("rm -rf /usr /home")),
            ("echo $HOME", None),
            ("git status", None),
            ("echo '{a,b}'", None),
            ("awk '{print $1}'", None),
        ] {
            assert_eq!(rewrite(input).as_deref(), expected, "{input}");
        }
    }
}
