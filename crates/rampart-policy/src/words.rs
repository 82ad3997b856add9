//! Words as the shell scanner produces them (split from `shell.rs`, issue 14): one
//! word with what is known about its quoting, the words of one simple command in one
//! buffer, borrowed views of them, and the small predicates the parser asks of words.

use memchr::{memchr, memrchr};

/// One word as scanned: unquoted text plus what the scanner learnt about its spelling.
#[derive(Debug, Default)]
pub(super) struct Word {
    pub(super) text: Vec<u8>,
    /// Offset in `text` where quoting or escaping first appeared. An assignment's name
    /// and a reserved word must be unquoted, so `"A=1"` and `\if` are ordinary words.
    pub(super) quoted_at: Option<usize>,
    /// Offset just past the last literal `/`: the basename starts here. Slashes inside
    /// copied substitution text do not count, so `$(cat /a/b)` is not cut to `b)`.
    pub(super) base: usize,
}

impl Word {
    pub(super) fn lit(&mut self, b: u8) {
        self.text.push(b);
        if b == b'/' {
            self.base = self.text.len();
        }
    }

    pub(super) fn lit_slice(&mut self, s: &[u8]) {
        if let Some(k) = memrchr(b'/', s) {
            self.base = self.text.len() + k + 1;
        }
        self.text.extend_from_slice(s);
    }

    pub(super) fn mark_quoted(&mut self) {
        if self.quoted_at.is_none() {
            self.quoted_at = Some(self.text.len());
        }
    }

    pub(super) fn view(&self) -> WordRef<'_> {
        WordRef {
            text: &self.text,
            quoted_at: self.quoted_at,
            base: self.base,
        }
    }

    /// The text, if the word was written without any quoting.
    pub(super) fn plain(&self) -> Option<&[u8]> {
        self.view().plain()
    }

    /// The word so far is `NAME=`, so a `(` starts an array literal, not a subshell.
    pub(super) fn opens_array(&self) -> bool {
        self.quoted_at.is_none() && self.text.last() == Some(&b'=') && self.view().is_assignment()
    }
}

/// A scanned word as its command's consumers read it (see [`Word`] for the fields).
#[derive(Debug, Clone, Copy)]
pub(super) struct WordRef<'a> {
    pub(super) text: &'a [u8],
    pub(super) quoted_at: Option<usize>,
    pub(super) base: usize,
}

impl<'a> WordRef<'a> {
    /// The text, if the word was written without any quoting.
    pub(super) fn plain(&self) -> Option<&'a [u8]> {
        match self.quoted_at {
            None => Some(self.text),
            Some(_) => None,
        }
    }

    pub(super) fn program_name(&self) -> &'a [u8] {
        match self.text.get(self.base..) {
            Some(name) if !name.is_empty() => name,
            _ => self.text,
        }
    }

    /// `NAME=value` (or `NAME+=value`) with the name and `=` unquoted.
    pub(super) fn is_assignment(&self) -> bool {
        let Some(eq) = memchr(b'=', self.text) else {
            return false;
        };
        if self.quoted_at.is_some_and(|q| q <= eq) {
            return false;
        }
        let name = &self.text[..eq];
        is_name(name.strip_suffix(b"+").unwrap_or(name))
    }
}

/// Where a stored word's text lies in its command's buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stored {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) quoted_at: Option<usize>,
    pub(super) base: usize,
}

/// The words of one simple command. Their texts lie one after the other in one buffer,
/// separated by single spaces: a command of thousands of words allocates no buffer per
/// word, and the words after the program are already the text of its piece.
#[derive(Debug, Default)]
pub(super) struct Words {
    pub(super) buf: Vec<u8>,
    pub(super) list: Vec<Stored>,
}

impl Words {
    pub(super) fn push(&mut self, word: &Word) {
        if !self.list.is_empty() {
            self.buf.push(b' ');
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(&word.text);
        self.list.push(Stored {
            start,
            end: self.buf.len(),
            quoted_at: word.quoted_at,
            base: word.base,
        });
    }

    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.list.clear();
    }

    pub(super) fn view(&self) -> WordList<'_> {
        WordList {
            buf: &self.buf,
            list: &self.list,
        }
    }
}

/// A command's words from some index on: a borrowed view of [`Words`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct WordList<'a> {
    pub(super) buf: &'a [u8],
    pub(super) list: &'a [Stored],
}

impl<'a> WordList<'a> {
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn get(&self, i: usize) -> Option<WordRef<'a>> {
        let s = self.list.get(i)?;
        Some(WordRef {
            text: self.buf.get(s.start..s.end).unwrap_or_default(),
            quoted_at: s.quoted_at,
            base: s.base,
        })
    }

    /// The words from index `i` on (like `slice.get(i..)`).
    pub(super) fn from(&self, i: usize) -> Option<WordList<'a>> {
        Some(WordList {
            buf: self.buf,
            list: self.list.get(i..)?,
        })
    }

    pub(super) fn iter(self) -> impl Iterator<Item = WordRef<'a>> {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// The first `n` words (all of them if there are fewer).
    pub(super) fn take(&self, n: usize) -> WordList<'a> {
        WordList {
            buf: self.buf,
            list: self.list.get(..n.min(self.list.len())).unwrap_or_default(),
        }
    }

    /// The words after the first, joined by single spaces (as stored).
    pub(super) fn tail_text(&self) -> &'a [u8] {
        match (self.list.get(1), self.list.last()) {
            (Some(second), Some(last)) => self.buf.get(second.start..last.end).unwrap_or_default(),
            _ => &[],
        }
    }
}

pub(super) fn is_name(s: &[u8]) -> bool {
    match s.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

/// Reserved words that may precede a command and are simply dropped.
pub(super) fn is_reserved(word: &[u8]) -> bool {
    matches!(
        word,
        b"if"
            | b"then"
            | b"elif"
            | b"else"
            | b"fi"
            | b"do"
            | b"done"
            | b"while"
            | b"until"
            | b"!"
            | b"{"
            | b"}"
            | b"esac"
            | b"coproc"
    )
}

/// The first unquoted word after reserved words other than `esac`, to spot `case`/`esac`.
pub(super) fn head_word(words: WordList<'_>) -> Option<&[u8]> {
    words
        .iter()
        .map(|w| w.plain())
        .find(|w| !matches!(w, Some(word) if is_reserved(word) && *word != b"esac"))
        .flatten()
}

pub(super) fn is_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

pub(super) fn into_string(bytes: Vec<u8>) -> String {
    // Input is UTF-8 and the scanner splits only at ASCII bytes; only ANSI-C escapes
    // like `$'\xff'` can produce invalid sequences, and those become U+FFFD.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
