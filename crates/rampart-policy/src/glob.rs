//! Globs as DESIGN.md §8 defines them: anchored at both ends, `?` is one character.
//!
//! * Command globs (`command_matches`, agents, sessions, tools): `*` and `**` match any run
//!   of characters, spaces and `/` included. Matching is greedy-leftmost over the literal
//!   segments between stars, which is exact for this language and linear in the subject
//!   (substring search is `memchr::memmem`), so thousands of `*` or a 100 KiB command cost
//!   microseconds, not seconds.
//! * Path globs (`path_matches`): `*` and `?` stay inside one path segment, `**` crosses
//!   segments and `**/` may also match nothing. Matched by a bit-parallel NFA walk,
//!   O(subject × pattern) with no backtracking.
//!
//! There are no character classes or escapes: `[`, `{` and `\` are literal, so patterns
//! like `:(){ :|:& };:` mean exactly what they show.

use std::fmt;

/// A compiled glob. Construction never fails: every string is a valid pattern.
#[derive(Clone)]
pub struct Glob {
    text: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// Literal segments separated by stars. `starred` is false for a pattern with no star
    /// at all (then there is exactly one segment that must match the whole subject).
    Command {
        segments: Vec<Segment>,
        starred: bool,
    },
    Path {
        tokens: Vec<PathToken>,
    },
}

#[derive(Clone)]
struct Segment {
    text: String,
    /// Number of `?` in `text`; zero means plain substring search applies.
    wildcards: usize,
    /// Length in characters (each `?` is one).
    chars: usize,
    /// Substring searcher built once (building one per match dominated evaluation time).
    finder: Option<memchr::memmem::Finder<'static>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PathToken {
    Char(char),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**`: any run of characters.
    DoubleStar,
    /// Starts `**/`, which means nothing or any run of characters ending in `/`: it is
    /// written as this token, `DoubleStar` and `Char('/')`, and lets the match either
    /// enter that pair or skip past it without consuming anything. (One token that stayed
    /// on any character and could always be skipped let `**/` match runs that do not end
    /// in `/`: `/a/**/b` matched `/a/xb`.)
    OptionalDirs,
}

impl Glob {
    /// A command glob: `*` crosses spaces and `/`.
    pub fn command(text: &str) -> Glob {
        let mut segments = Vec::new();
        let mut starred = false;
        for part in text.split('*') {
            segments.push(Segment::new(part));
        }
        if segments.len() > 1 {
            starred = true;
            // Runs of stars produce empty middle segments, which match anywhere: drop them,
            // keeping the first and last (the anchors) even when empty.
            let last = segments.pop();
            let mut kept: Vec<Segment> = Vec::with_capacity(segments.len() + 1);
            for (i, seg) in segments.into_iter().enumerate() {
                if i == 0 || !seg.text.is_empty() {
                    kept.push(seg);
                }
            }
            kept.extend(last);
            segments = kept;
        }
        Glob {
            text: text.to_owned(),
            kind: Kind::Command { segments, starred },
        }
    }

    /// A path glob: `*` stays inside one segment, `**` crosses segments.
    pub fn path(text: &str) -> Glob {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    let mut j = i;
                    while j < chars.len() && chars[j] == '*' {
                        j += 1;
                    }
                    if j - i >= 2 {
                        if chars.get(j) == Some(&'/') {
                            tokens.extend([
                                PathToken::OptionalDirs,
                                PathToken::DoubleStar,
                                PathToken::Char('/'),
                            ]);
                            j += 1;
                        } else {
                            tokens.push(PathToken::DoubleStar);
                        }
                    } else if tokens.last() != Some(&PathToken::Star) {
                        tokens.push(PathToken::Star);
                    }
                    i = j;
                }
                '?' => {
                    tokens.push(PathToken::AnyChar);
                    i += 1;
                }
                c => {
                    tokens.push(PathToken::Char(c));
                    i += 1;
                }
            }
        }
        Glob {
            text: text.to_owned(),
            kind: Kind::Path { tokens },
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// For a command glob: the literal text every match starts with (up to the first `*`
    /// or `?`), and whether that is the whole pattern. Used to index rules by first word.
    pub fn literal_prefix(&self) -> Option<(&str, bool)> {
        match &self.kind {
            Kind::Command { .. } => {
                let end = self.text.find(['*', '?']).unwrap_or(self.text.len());
                Some((&self.text[..end], end == self.text.len()))
            }
            Kind::Path { .. } => None,
        }
    }

    /// For a command glob: the longest literal run (between wildcards) that every match
    /// must contain; empty when there is none (`*`, `?*`).
    pub fn required_literal(&self) -> &str {
        match &self.kind {
            Kind::Command { .. } => self
                .text
                .split(['*', '?'])
                .max_by_key(|part| part.len())
                .unwrap_or(""),
            Kind::Path { .. } => "",
        }
    }

    /// For a command glob: the longest literal run after the first wildcard, which every
    /// match must contain besides the literal prefix; empty when there is none
    /// (`git *`).
    pub fn inner_literal(&self) -> &str {
        match &self.kind {
            Kind::Command { .. } => self
                .text
                .split(['*', '?'])
                .skip(1)
                .max_by_key(|part| part.len())
                .unwrap_or(""),
            Kind::Path { .. } => "",
        }
    }

    /// True when the pattern matches every string (`*`, `**`).
    pub fn matches_everything(&self) -> bool {
        match &self.kind {
            Kind::Command { segments, starred } => {
                *starred && segments.iter().all(|s| s.text.is_empty())
            }
            Kind::Path { tokens } => {
                !tokens.is_empty() && tokens.iter().all(|t| *t == PathToken::DoubleStar)
            }
        }
    }

    /// Whether the whole of `subject` matches the pattern.
    pub fn is_match(&self, subject: &str) -> bool {
        match &self.kind {
            Kind::Command { segments, starred } => match_command(segments, *starred, subject),
            Kind::Path { tokens } => match_path(tokens, subject),
        }
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Segment {
    fn new(text: &str) -> Segment {
        let wildcards = text.chars().filter(|&c| c == '?').count();
        Segment {
            text: text.to_owned(),
            wildcards,
            chars: text.chars().count(),
            finder: (wildcards == 0 && !text.is_empty())
                .then(|| memchr::memmem::Finder::new(text.as_bytes()).into_owned()),
        }
    }

    /// If the segment matches `subject` starting at byte `at`, the byte where it ends.
    fn match_at(&self, subject: &str, at: usize) -> Option<usize> {
        let rest = subject.get(at..)?;
        if self.wildcards == 0 {
            return rest
                .starts_with(self.text.as_str())
                .then(|| at + self.text.len());
        }
        let mut it = rest.char_indices();
        for p in self.text.chars() {
            let (_, c) = it.next()?;
            if p != '?' && p != c {
                return None;
            }
        }
        Some(match it.next() {
            Some((i, _)) => at + i,
            None => subject.len(),
        })
    }

    /// Leftmost match at or after byte `from` that ends at or before byte `limit`:
    /// returns its end.
    fn find(&self, subject: &str, from: usize, limit: usize) -> Option<usize> {
        let hay = subject.get(from..limit)?;
        if self.wildcards == 0 {
            let found = if hay.len() <= SHORT_HAYSTACK {
                find_short(hay.as_bytes(), self.text.as_bytes())
            } else {
                match &self.finder {
                    Some(finder) => finder.find(hay.as_bytes()),
                    None => Some(0),
                }
            };
            return found.map(|i| from + i + self.text.len());
        }
        for (i, _) in hay.char_indices() {
            if let Some(end) = self.match_at(subject, from + i)
                && end <= limit
            {
                return Some(end);
            }
        }
        None
    }
}

/// Haystacks up to this long are searched byte by byte: a memmem searcher's set-up
/// costs more than that for the few dozen bytes of a typical command.
const SHORT_HAYSTACK: usize = 64;

/// Leftmost occurrence of `needle` in a short `hay` (quadratic, so only for short ones):
/// `memchr` finds each candidate first byte, the rest is compared there.
fn find_short(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut from = 0;
    while let Some(k) = memchr::memchr(first, hay.get(from..=last_start)?) {
        let i = from + k;
        if hay.get(i + 1..i + needle.len()) == Some(rest) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

fn match_command(segments: &[Segment], starred: bool, subject: &str) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return subject.is_empty();
    };
    if !starred {
        return first.match_at(subject, 0) == Some(subject.len());
    }
    let Some(mut pos) = first.match_at(subject, 0) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return true;
    };
    // The last segment is anchored at the end: find where it must start.
    let tail_start = if last.wildcards == 0 {
        if !subject.ends_with(last.text.as_str()) {
            return false;
        }
        subject.len() - last.text.len()
    } else {
        match subject
            .char_indices()
            .rev()
            .nth(last.chars.saturating_sub(1))
        {
            Some((i, _)) if last.chars > 0 => i,
            _ if last.chars == 0 => subject.len(),
            _ => return false,
        }
    };
    if tail_start < pos || last.match_at(subject, tail_start) != Some(subject.len()) {
        return false;
    }
    for seg in middle {
        match seg.find(subject, pos, tail_start) {
            Some(end) => pos = end,
            None => return false,
        }
    }
    true
}

/// NFA simulation with a state set per input character. States are token indices;
/// reaching `tokens.len()` after the last character means a match. Patterns of up to 63
/// tokens (nearly all) keep their state set in one `u64`, with no allocation.
fn match_path(tokens: &[PathToken], subject: &str) -> bool {
    if tokens.len() < 64 {
        match_path_small(tokens, subject)
    } else {
        match_path_large(tokens, subject)
    }
}

fn match_path_small(tokens: &[PathToken], subject: &str) -> bool {
    // Every epsilon move goes forward, so one pass in token order closes the set.
    let close = |mut states: u64| {
        for (i, tok) in tokens.iter().enumerate() {
            if states & (1 << i) == 0 {
                continue;
            }
            match tok {
                PathToken::Star | PathToken::DoubleStar => states |= 1 << (i + 1),
                PathToken::OptionalDirs => states |= (1 << (i + 1)) | (1 << (i + 3)),
                _ => {}
            }
        }
        states
    };
    let mut current = close(1);
    for c in subject.chars() {
        let mut next = 0u64;
        for (i, &tok) in tokens.iter().enumerate() {
            if current & (1 << i) == 0 {
                continue;
            }
            next |= step(tok, c, i);
        }
        current = close(next);
        if current == 0 {
            return false;
        }
    }
    current & (1 << tokens.len()) != 0
}

/// The states reached from state `i` (token `tok`) on character `c`, as a bit set.
fn step(tok: PathToken, c: char, i: usize) -> u64 {
    let stay = 1u64 << i;
    let advance = 1u64 << (i + 1);
    match tok {
        PathToken::Char(p) if p == c => advance,
        PathToken::AnyChar if c != '/' => advance,
        PathToken::Star if c != '/' => stay,
        PathToken::DoubleStar => stay,
        PathToken::OptionalDirs => 0,
        _ => 0,
    }
}

fn match_path_large(tokens: &[PathToken], subject: &str) -> bool {
    let n = tokens.len();
    let mut current = vec![false; n + 1];
    let mut next = vec![false; n + 1];
    current[0] = true;
    close(tokens, &mut current);
    for c in subject.chars() {
        next.iter_mut().for_each(|s| *s = false);
        for (i, &tok) in tokens.iter().enumerate() {
            if !current[i] {
                continue;
            }
            match tok {
                PathToken::Char(p) if p == c => next[i + 1] = true,
                PathToken::AnyChar if c != '/' => next[i + 1] = true,
                PathToken::Star if c != '/' => next[i] = true,
                PathToken::DoubleStar => next[i] = true,
                _ => {}
            }
        }
        close(tokens, &mut next);
        std::mem::swap(&mut current, &mut next);
        if !current.iter().any(|s| *s) {
            return false;
        }
    }
    current[n]
}

/// Epsilon closure: star tokens may match nothing.
fn close(tokens: &[PathToken], states: &mut [bool]) {
    for i in 0..tokens.len() {
        if !states[i] {
            continue;
        }
        match tokens[i] {
            PathToken::Star | PathToken::DoubleStar => states[i + 1] = true,
            PathToken::OptionalDirs => {
                states[i + 1] = true;
                states[i + 3] = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "glob_tests.rs"]
mod tests;
