//! Shell-command normalisation (DESIGN.md §8): turn one command line into the simple
//! commands ("pieces") it would run, so that policy globs see `rm -rf /` whether it was
//! written `/bin/rm -rf /`, `env -i nice -n 5 rm -rf /` or `bash -lc 'cd x && rm -rf /'`.
//!
//! This is a best-effort reading of POSIX shell syntax for policy matching, not a shell:
//! it never fails, never panics, and its cost is linear in the input.
//!
//! What a piece is:
//!
//! - One simple command: its words with quotes and escapes removed, joined by single
//!   spaces, the program reduced to its basename. Redirections stay as their own words,
//!   operator and target separated (`2>/dev/null` → `2> /dev/null`, `2>&1` one word),
//!   and are moved to the end of the piece, so `>out rm x` reads `rm x > out`.
//! - Leading `VAR=value` assignments, reserved words (`if`, `then`, `do`, `{`, `!`, …) and
//!   transparent wrappers (`env`, `nice`, `timeout`, `xargs`, …, each with its options) are
//!   peeled off. A wrapper with nothing after it is its own piece (`env` is an env dump).
//! - `sh -c BODY`, `eval ARGS` and `env -S STRING` are replaced by the pieces of their
//!   body; their redirections are dropped (the raw command still carries them).
//! - `$(…)`, backticks, `<(…)`, `>(…)` and the substitutions in `${…}`, `$((…))` and
//!   unquoted here-documents add their pieces after the command that contains them, whose
//!   word keeps the substitution text as written. A body may therefore appear twice
//!   (`bash -c "echo $(id)"` yields `id` from the outer and from the re-parsed body).
//! - `sudo`/`doas` keep their own piece (`sudo git push`) and add the inner command's
//!   pieces marked privileged. The dynamic loader (`/lib64/ld-linux-x86-64.so.2 --argv0 x
//!   /usr/bin/touch f`) likewise keeps its own piece and adds the program's, unprivileged.
//! - Subshells, groups, `if`/`while`/`for`/`case` bodies and function bodies yield their
//!   commands; `for x in …`, `case … in`, case patterns and function names yield nothing,
//!   nor do redirections of compound commands (`done < list`). Here-document bodies are
//!   data, not commands.
//!
//! Expansions the parser does not do (`$IFS`, `c=rm; $c`, brace lists) are done on the
//! whole text by [`crate::expand`], whose reading adds its own pieces.
//!
//! Decisions for odd input: an unterminated quote or substitution runs to the end of the
//! input; a trailing backslash is kept as a literal `\`; an empty word (`''`) is kept as
//! an empty string, so `rm '' x` reads `rm  x` (two spaces); a piece whose words are all
//! empty is omitted, as are empty commands (`;;`, a trailing `&&`); NUL and escape bytes
//! are ordinary characters. Nesting deeper than [`MAX_DEPTH`], or re-parsing more text
//! than a budget proportional to the input, stops extraction: the unexamined body
//! becomes one piece as written, so adversarial input costs linear time and never
//! disappears from view; [`normalize_checked`] reports when that happened.

use memchr::memchr;

/// How deeply substitutions, subshells and re-parsed bodies are followed.
pub const MAX_DEPTH: usize = 64;

/// Word buffers kept for reuse; enough for any ordinary command.
const SPARE_BUFFERS: usize = 64;

/// Initial capacity of a word buffer…
const WORD_BUFFER: usize = 64;
/// …and of a nested command's word texts (at most the rest of the input).
const WORDS_BUFFER: usize = 256;

/// Bytes that end a run of literal characters outside quotes…
const SPECIAL_UNQUOTED: [bool; 256] = byte_set(b" \t\n;&|()<>\\'\"$`");
/// …and inside double quotes.
const SPECIAL_DQUOTED: [bool; 256] = byte_set(b"\"\\$`");

/// Where the first byte of `rest` in `special` is, the first byte not looked at (the
/// caller knows it is not special); the length of `rest` if there is none.
fn run_len(rest: &[u8], special: &[bool; 256]) -> usize {
    let is_special = |c: &u8| special[usize::from(*c)];
    // Most words are short: their first bytes are looked at one by one. Long runs
    // (paths, URLs) then eight bytes at a time, without a branch per byte, and the eight
    // with the special byte (or the last few) one by one again.
    let head = rest.get(1..rest.len().min(8)).unwrap_or_default();
    if let Some(k) = head.iter().position(is_special) {
        return 1 + k;
    }
    let mut i = 1 + head.len();
    while let Some(chunk) = rest.get(i..i + 8) {
        if chunk.iter().fold(false, |any, c| any | is_special(c)) {
            break;
        }
        i += 8;
    }
    let tail = rest.get(i..).unwrap_or_default();
    i + tail.iter().position(is_special).unwrap_or(tail.len())
}

const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    set
}

/// One simple command, normalised: program basename and its words joined by single spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    /// True for pieces seen only by looking through `sudo`/`doas`. Deny and ask rules see
    /// them; allow rules neither need to cover them nor may grant through them.
    pub privileged: bool,
}

/// Splits and normalises `command` into pieces, in the order they appear.
pub fn normalize(command: &str) -> Vec<Piece> {
    normalize_checked(command).pieces
}

/// The pieces of a command, and whether the limits stopped extraction somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub pieces: Vec<Piece>,
    /// Some construct was nested too deeply (or re-parsed too much) to be followed: its
    /// body is a piece as written, so an allow glob like `git *` could cover commands
    /// hidden inside. Only adversarial input gets here; callers may refuse to allow it.
    pub truncated: bool,
}

/// Like [`normalize`], also saying whether the depth or work limits were reached.
pub fn normalize_checked(command: &str) -> Normalized {
    let mut pieces = Vec::new();
    // Re-parsing (`sh -c`, `eval`, backticks, sudo) and copying substitution text into
    // outer words revisit bytes; the budget caps all of it at a multiple of the input,
    // with a floor so that ordinary commands never come near it.
    let budget = command.len().saturating_mul(4).saturating_add(64 * 1024);
    let mut parser = Parser::new(command.as_bytes(), 0, false, budget);
    parser.list(false, &mut pieces);
    let mut truncated = parser.truncated;
    // `$IFS`, `c=rm; $c …`, `{rm,-rf,~}`: the expanded reading's pieces are added.
    if let Some(text) = crate::expand::rewrite(command) {
        let mut more = Vec::new();
        let mut parser = Parser::new(text.as_bytes(), 0, false, budget);
        parser.list(false, &mut more);
        truncated |= parser.truncated;
        // The whole reading, in order (a `cd` in it moves the place for what follows),
        // when it differs at all.
        let known: std::collections::HashSet<(&str, bool)> = pieces
            .iter()
            .map(|p| (p.text.as_str(), p.privileged))
            .collect();
        let differs = more
            .iter()
            .any(|p| !known.contains(&(p.text.as_str(), p.privileged)));
        if differs {
            pieces.extend(more);
        }
    }
    Normalized { pieces, truncated }
}

/// A simple command as scanned, before wrappers and assignments are peeled.
#[derive(Debug, Default)]
struct Simple {
    words: Words,
    redirs: Vec<Vec<u8>>,
    /// Pieces of substitutions inside this command; they follow its own piece.
    subs: Vec<Piece>,
    /// A subshell, arithmetic command or function definition was part of it, so bare
    /// redirections belong to that compound command rather than forming one of their own.
    compound: bool,
}

#[derive(Debug)]
struct Heredoc {
    delim: Vec<u8>,
    strip_tabs: bool,
    /// Unquoted delimiter: the body undergoes substitution.
    expand: bool,
    /// What reads the body: data, or a script (`bash <<EOF`, `python3 - <<EOF`).
    script: Script,
}

/// What a here-document's body is to the command it is fed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Data,
    /// A shell reads it as commands.
    Shell,
    /// An interpreter runs it as code (read like a one-liner).
    Code,
}

/// How the program `name` reads a here-document fed to it.
fn script_kind(name: &[u8]) -> Script {
    match name {
        b"sh" | b"bash" | b"zsh" | b"dash" | b"ksh" | b"mksh" | b"ash" | b"yash" | b"rbash"
        | b"posh" | b"fish" => Script::Shell,
        b"python" | b"python2" | b"python3" | b"node" | b"nodejs" | b"perl" | b"ruby" | b"php"
        | b"osascript" => Script::Code,
        _ if name.starts_with(b"python3.") => Script::Code,
        _ => Script::Data,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    End,
    Separator,
    /// A single `|`: also what separates alternatives in a `case` pattern.
    Pipe,
    Close,
}

/// Nesting contexts of the iterative scanner used beyond the depth limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Paren,
    Brace,
    DQuote,
    Backtick,
}

#[derive(Debug)]
struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: usize,
    /// Pieces found here run under sudo/doas.
    privileged: bool,
    budget: usize,
    /// A limit stopped extraction somewhere.
    truncated: bool,
    /// Cleared word buffers, reused so that long commands do not allocate per word.
    spare: Vec<Vec<u8>>,
    /// Here-documents whose bodies start after the next unquoted newline.
    heredocs: Vec<Heredoc>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a [u8], depth: usize, privileged: bool, budget: usize) -> Self {
        Parser {
            src,
            pos: 0,
            depth,
            privileged,
            budget,
            truncated: false,
            spare: Vec::new(),
            heredocs: Vec::new(),
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    /// Enters a nested construct whose text the caller copies into its word afterwards.
    /// The copy can be as long as the rest of the input, so that much budget is held
    /// while inside: deep nesting of long text stops after a few levels instead of
    /// copying the input `MAX_DEPTH` times. Returns the amount held, or `None` when the
    /// construct must be skipped.
    fn enter(&mut self) -> Option<usize> {
        let hold = self.src.len().saturating_sub(self.pos);
        if self.depth >= MAX_DEPTH || self.budget < hold {
            self.truncated = true;
            return None;
        }
        self.budget -= hold;
        self.depth += 1;
        Some(hold)
    }

    fn leave(&mut self, held: usize) {
        self.depth -= 1;
        self.budget += held;
    }

    /// A command list, up to the end of input or (when `close`) an unmatched `)`.
    fn list(&mut self, close: bool, out: &mut Vec<Piece>) {
        // `case` patterns end in `)`, which must not close a `$(` or subshell, and their
        // alternatives are separated by `|`, so words before a `|` wait in `held` until
        // it is clear whether they were a pattern.
        let mut open_cases = 0usize;
        let mut held: Vec<Simple> = Vec::new();
        // One command buffer, cleared and reused: most of the cost of long commands
        // would otherwise be allocating words. Sized once for ordinary commands.
        let mut cmd = Simple::default();
        // At the top, the words of one command can fill the whole input (a long linker
        // line); inside, most lists are a short substitution.
        let rest = self.src.len().saturating_sub(self.pos);
        let nested = self.depth > 0;
        cmd.words
            .buf
            .reserve(if nested { rest.min(WORDS_BUFFER) } else { rest });
        cmd.words.list.reserve(8);
        loop {
            let stop = self.simple(&mut cmd, open_cases > 0);
            let head = head_word(cmd.words.view());
            let mut closes = stop == Stop::Close;
            if head == Some(b"case") {
                open_cases += 1;
                closes = false;
                self.flush(&mut held, true, out);
                self.discard(&mut cmd, out);
            } else if closes && open_cases > 0 {
                closes = false;
                self.flush(&mut held, false, out);
                self.discard(&mut cmd, out);
            } else if stop == Stop::Pipe && open_cases > 0 {
                held.push(std::mem::take(&mut cmd));
            } else {
                if head == Some(b"esac") {
                    open_cases = open_cases.saturating_sub(1);
                }
                self.flush(&mut held, true, out);
                self.finish(&mut cmd, out);
            }
            if stop == Stop::End {
                self.flush(&mut held, true, out);
                return;
            }
            if closes && close {
                return;
            }
        }
    }

    /// Releases held commands: as commands, or as a case pattern (only their
    /// substitutions count).
    fn flush(&mut self, held: &mut Vec<Simple>, commands: bool, out: &mut Vec<Piece>) {
        for mut cmd in held.drain(..) {
            if commands {
                self.finish(&mut cmd, out);
            } else {
                self.discard(&mut cmd, out);
            }
        }
    }

    /// Drops a command's words (a `case` header or pattern), keeping its substitutions.
    fn discard(&mut self, cmd: &mut Simple, out: &mut Vec<Piece>) {
        out.append(&mut cmd.subs);
        self.recycle(cmd);
    }

    /// Empties `cmd`, keeping its buffers (and its redirections' for other words).
    fn recycle(&mut self, cmd: &mut Simple) {
        let mut redirs = std::mem::take(&mut cmd.redirs);
        for buf in redirs.drain(..) {
            self.give_back(buf);
        }
        // The emptied vectors keep their capacity for the next command.
        cmd.redirs = redirs;
        cmd.words.clear();
        cmd.compound = false;
    }

    fn give_back(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            buf.clear();
            self.spare.push(buf);
        }
    }

    fn new_word(&mut self) -> Word {
        Word {
            // Only words being scanned hold a buffer (a command's words are copied into
            // its own), so a few roomy ones serve the whole input.
            text: self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(WORD_BUFFER)),
            ..Word::default()
        }
    }

    /// Scans one simple command into `cmd` and says what ended it.
    fn simple(&mut self, cmd: &mut Simple, in_case: bool) -> Stop {
        loop {
            self.skip_blanks();
            let Some(b) = self.peek(0) else {
                return Stop::End;
            };
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.read_heredocs(&mut cmd.subs);
                    return Stop::Separator;
                }
                b';' => {
                    self.pos += 1;
                    if self.peek(0) == Some(b';') {
                        self.pos += 1;
                    }
                    if self.peek(0) == Some(b'&') && self.peek(1) != Some(b'>') {
                        self.pos += 1;
                    }
                    return Stop::Separator;
                }
                b'&' if self.peek(1) == Some(b'>') => self.redirect(None, cmd),
                b'&' | b'|' => {
                    self.pos += 1;
                    if matches!(self.peek(0), Some(c) if c == b || c == b'&' && b == b'|') {
                        self.pos += 1;
                    } else if b == b'|' {
                        return Stop::Pipe;
                    }
                    return Stop::Separator;
                }
                b')' => {
                    self.pos += 1;
                    return Stop::Close;
                }
                b'(' => self.open_paren(cmd, in_case),
                b'<' | b'>' if self.peek(1) != Some(b'(') => self.redirect(None, cmd),
                b'#' => {
                    // A comment runs to the newline, which still separates.
                    self.pos = memchr(b'\n', &self.src[self.pos..])
                        .map_or(self.src.len(), |k| self.pos + k);
                }
                _ => {
                    let word = self.word(&mut cmd.subs);
                    let fd = matches!(self.peek(0), Some(b'<' | b'>'))
                        && self.peek(1) != Some(b'(')
                        && word.plain().is_some_and(is_digits);
                    if fd {
                        self.redirect(Some(word.text), cmd);
                    } else {
                        cmd.words.push(&word);
                        self.give_back(word.text);
                    }
                }
            }
        }
    }

    fn skip_blanks(&mut self) {
        loop {
            match self.peek(0) {
                Some(b' ' | b'\t') => self.pos += 1,
                Some(b'\\') if self.peek(1) == Some(b'\n') => self.pos += 2,
                _ => return,
            }
        }
    }

    /// Whether the byte at `pos` can start a word (as opposed to an operator or the end).
    fn at_word(&self) -> bool {
        match self.peek(0) {
            None | Some(b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')') => false,
            Some(b'<' | b'>') => self.peek(1) == Some(b'('),
            Some(_) => true,
        }
    }

    /// `(` inside a simple command: function definition, case pattern, arithmetic
    /// command or subshell.
    fn open_paren(&mut self, cmd: &mut Simple, in_case: bool) {
        let n = cmd.words.list.len();
        let first = cmd.words.view().get(0).and_then(|w| w.plain());
        let named = n == 1 || (n == 2 && first == Some(b"function"));
        if named {
            let mut p = self.pos + 1;
            while matches!(self.src.get(p), Some(b' ' | b'\t')) {
                p += 1;
            }
            if self.src.get(p) == Some(&b')') {
                // `name() body`: defining runs nothing; the body is what matters.
                self.pos = p + 1;
                cmd.words.clear();
                cmd.redirs.clear();
                cmd.compound = true;
                return;
            }
        }
        if in_case && n == 0 {
            // The optional `(` before a case pattern.
            self.pos += 1;
            return;
        }
        cmd.compound = true;
        let arith_allowed = n == 0 || (n == 1 && first == Some(b"for"));
        if arith_allowed && self.peek(1) == Some(b'(') {
            self.pos += 2;
            let mut scratch = Word::default();
            self.arith(&mut scratch, &mut cmd.subs);
            return;
        }
        self.pos += 1;
        self.sub_list(&mut cmd.subs);
    }

    /// The body of `$(`, `(`, `<(` or `>(` (opener consumed), up to its `)`.
    fn sub_list(&mut self, out: &mut Vec<Piece>) {
        let Some(held) = self.enter() else {
            self.skip_as_piece(Ctx::Paren, false, out);
            return;
        };
        self.list(true, out);
        self.leave(held);
    }

    /// Beyond the limits: find the end of a construct without extracting anything, and
    /// keep its body, as written, as one piece.
    fn skip_as_piece(&mut self, ctx: Ctx, arith: bool, out: &mut Vec<Piece>) {
        let start = self.pos;
        let end = self.skip(ctx, arith);
        self.raw_piece(start, end, out);
    }

    fn raw_piece(&self, start: usize, end: usize, out: &mut Vec<Piece>) {
        let body = self.src.get(start..end).unwrap_or_default().trim_ascii();
        if !body.is_empty() {
            out.push(Piece {
                text: into_string(body.to_vec()),
                privileged: self.privileged,
            });
        }
    }

    /// Iteratively skips to the closer of `ctx` (two closers for arithmetic), honouring
    /// quotes and nested constructs. Returns where the body ends; `pos` goes past it.
    fn skip(&mut self, ctx: Ctx, arith: bool) -> usize {
        let src = self.src;
        let mut stack = vec![ctx];
        if arith {
            stack.push(Ctx::Paren);
        }
        let mut p = self.pos;
        while let Some(&top) = stack.last() {
            let Some(&b) = src.get(p) else {
                self.pos = src.len();
                return src.len();
            };
            let next = src.get(p + 1).copied();
            match top {
                Ctx::DQuote => match b {
                    b'"' => {
                        stack.pop();
                    }
                    b'\\' => p += 1,
                    b'$' if next == Some(b'(') => {
                        stack.push(Ctx::Paren);
                        p += 1;
                    }
                    b'$' if next == Some(b'{') => {
                        stack.push(Ctx::Brace);
                        p += 1;
                    }
                    b'`' => stack.push(Ctx::Backtick),
                    _ => {}
                },
                Ctx::Backtick => match b {
                    b'`' => {
                        stack.pop();
                    }
                    b'\\' => p += 1,
                    _ => {}
                },
                Ctx::Paren | Ctx::Brace => match b {
                    b'\\' => p += 1,
                    b'\'' => {
                        p = memchr(b'\'', src.get(p + 1..).unwrap_or_default())
                            .map_or(src.len(), |k| p + 1 + k);
                    }
                    b'"' => stack.push(Ctx::DQuote),
                    b'`' => stack.push(Ctx::Backtick),
                    b'(' => stack.push(Ctx::Paren),
                    b'$' if next == Some(b'{') => {
                        stack.push(Ctx::Brace);
                        p += 1;
                    }
                    b')' if top == Ctx::Paren => {
                        stack.pop();
                    }
                    b'}' if top == Ctx::Brace => {
                        stack.pop();
                    }
                    _ => {}
                },
            }
            p += 1;
        }
        self.pos = p.min(src.len());
        // The loop ends right after consuming the outermost closer.
        p.saturating_sub(1).min(src.len())
    }

    /// One word, up to an unquoted blank or operator.
    fn word(&mut self, subs: &mut Vec<Piece>) -> Word {
        let mut w = self.new_word();
        while let Some(b) = self.peek(0) {
            match b {
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b')' => break,
                b'(' => {
                    if !w.opens_array() {
                        break;
                    }
                    self.array(&mut w, subs);
                }
                b'<' | b'>' => {
                    if self.peek(1) != Some(b'(') {
                        break;
                    }
                    let start = self.pos;
                    self.pos += 2;
                    self.sub_list(subs);
                    self.append_raw(&mut w, start);
                }
                b'\\' => match self.peek(1) {
                    Some(b'\n') => self.pos += 2,
                    Some(c) => {
                        w.mark_quoted();
                        w.lit(c);
                        self.pos += 2;
                    }
                    None => {
                        w.lit(b'\\');
                        self.pos += 1;
                    }
                },
                b'\'' => self.single_quote(&mut w),
                b'"' => {
                    self.pos += 1;
                    self.double_quote(&mut w, subs);
                }
                b'$' => self.dollar(&mut w, subs, false),
                b'`' => self.backtick(&mut w, subs, false),
                _ => self.literal_run(&mut w, &SPECIAL_UNQUOTED),
            }
        }
        w
    }

    /// Copies bytes up to the next one in `special` (the current one is not).
    fn literal_run(&mut self, w: &mut Word, special: &[bool; 256]) {
        let rest = self.src.get(self.pos..).unwrap_or_default();
        let run = run_len(rest, special);
        w.lit_slice(&rest[..run]);
        self.pos += run;
    }

    /// Copies `src[start..pos]` (a substitution as written) into `w`.
    fn append_raw(&mut self, w: &mut Word, start: usize) {
        let raw = self.src.get(start..self.pos).unwrap_or_default();
        self.budget = self.budget.saturating_sub(raw.len());
        w.text.extend_from_slice(raw);
    }

    fn single_quote(&mut self, w: &mut Word) {
        w.mark_quoted();
        let start = self.pos + 1;
        let rest = self.src.get(start..).unwrap_or_default();
        match memchr(b'\'', rest) {
            Some(k) => {
                w.lit_slice(&rest[..k]);
                self.pos = start + k + 1;
            }
            None => {
                w.lit_slice(rest);
                self.pos = self.src.len();
            }
        }
    }

    /// Inside `"…"` (opening quote consumed).
    fn double_quote(&mut self, w: &mut Word, subs: &mut Vec<Piece>) {
        w.mark_quoted();
        while let Some(b) = self.peek(0) {
            match b {
                b'"' => {
                    self.pos += 1;
                    return;
                }
                b'\\' => match self.peek(1) {
                    Some(c @ (b'"' | b'\\' | b'$' | b'`')) => {
                        w.lit(c);
                        self.pos += 2;
                    }
                    Some(b'\n') => self.pos += 2,
                    _ => {
                        w.lit(b'\\');
                        self.pos += 1;
                    }
                },
                b'$' => self.dollar(w, subs, true),
                b'`' => self.backtick(w, subs, true),
                _ => self.literal_run(w, &SPECIAL_DQUOTED),
            }
        }
    }

    /// At a `$`: substitution, parameter expansion, ANSI-C string or a plain dollar.
    fn dollar(&mut self, w: &mut Word, subs: &mut Vec<Piece>, in_dquote: bool) {
        let start = self.pos;
        match self.peek(1) {
            Some(b'(') => {
                if self.peek(2) == Some(b'(') {
                    self.pos += 3;
                    let mut scratch = Word::default();
                    self.arith(&mut scratch, subs);
                } else {
                    self.pos += 2;
                    self.sub_list(subs);
                }
                self.append_raw(w, start);
            }
            Some(b'{') => {
                self.pos += 2;
                self.brace(subs, in_dquote);
                self.append_raw(w, start);
            }
            Some(b'\'') if !in_dquote => {
                self.pos += 2;
                self.ansi_c(w);
            }
            Some(b'"') if !in_dquote => {
                self.pos += 2;
                self.double_quote(w, subs);
            }
            _ => {
                w.lit(b'$');
                self.pos += 1;
            }
        }
    }

    /// Arithmetic `$((…))` or `((…))`, both parens consumed. Nothing here is a command,
    /// but substitutions inside still run. The text goes to `scratch`, which the caller
    /// drops: what is kept is the raw spelling.
    fn arith(&mut self, scratch: &mut Word, subs: &mut Vec<Piece>) {
        let Some(held) = self.enter() else {
            self.skip_as_piece(Ctx::Paren, true, subs);
            return;
        };
        let mut level = 0usize;
        while let Some(b) = self.peek(0) {
            match b {
                b'(' => {
                    level += 1;
                    self.pos += 1;
                }
                b')' => {
                    self.pos += 1;
                    if level == 0 {
                        if self.peek(0) == Some(b')') {
                            self.pos += 1;
                        }
                        break;
                    }
                    level -= 1;
                }
                b'\\' => self.pos = (self.pos + 2).min(self.src.len()),
                b'"' => {
                    self.pos += 1;
                    self.double_quote(scratch, subs);
                }
                b'$' => self.dollar(scratch, subs, true),
                b'`' => self.backtick(scratch, subs, true),
                _ => self.pos += 1,
            }
        }
        self.leave(held);
    }

    /// Parameter expansion `${…}` (opener consumed): literal, except for the
    /// substitutions that `${x:-$(cmd)}` can hide.
    fn brace(&mut self, subs: &mut Vec<Piece>, in_dquote: bool) {
        let Some(held) = self.enter() else {
            self.skip_as_piece(Ctx::Brace, false, subs);
            return;
        };
        let mut scratch = Word::default();
        while let Some(b) = self.peek(0) {
            match b {
                b'}' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => self.pos = (self.pos + 2).min(self.src.len()),
                b'\'' if !in_dquote => self.single_quote(&mut scratch),
                b'"' => {
                    self.pos += 1;
                    self.double_quote(&mut scratch, subs);
                }
                b'$' => self.dollar(&mut scratch, subs, in_dquote),
                b'`' => self.backtick(&mut scratch, subs, in_dquote),
                _ => self.pos += 1,
            }
        }
        self.leave(held);
    }

    /// `` `…` ``: the body, unescaped as the shell does, is parsed as a command line.
    fn backtick(&mut self, w: &mut Word, subs: &mut Vec<Piece>, in_dquote: bool) {
        let start = self.pos;
        self.pos += 1;
        let mut body = Vec::new();
        while let Some(b) = self.peek(0) {
            match b {
                b'`' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => match self.peek(1) {
                    Some(c @ (b'`' | b'\\' | b'$')) => {
                        body.push(c);
                        self.pos += 2;
                    }
                    Some(b'"') if in_dquote => {
                        body.push(b'"');
                        self.pos += 2;
                    }
                    _ => {
                        body.push(b'\\');
                        self.pos += 1;
                    }
                },
                _ => {
                    body.push(b);
                    self.pos += 1;
                }
            }
        }
        let privileged = self.privileged;
        if !self.reparse(&body, privileged, subs) {
            let text = body.trim_ascii();
            if !text.is_empty() {
                subs.push(Piece {
                    text: into_string(text.to_vec()),
                    privileged,
                });
            }
        }
        self.append_raw(w, start);
    }

    /// `$'…'` (opener consumed), with the escapes bash understands.
    fn ansi_c(&mut self, w: &mut Word) {
        w.mark_quoted();
        while let Some(b) = self.peek(0) {
            self.pos += 1;
            match b {
                b'\'' => return,
                b'\\' => {
                    let Some(e) = self.peek(0) else {
                        w.lit(b'\\');
                        return;
                    };
                    self.pos += 1;
                    match e {
                        b'n' => w.lit(b'\n'),
                        b't' => w.lit(b'\t'),
                        b'r' => w.lit(b'\r'),
                        b'a' => w.lit(0x07),
                        b'b' => w.lit(0x08),
                        b'e' | b'E' => w.lit(0x1b),
                        b'f' => w.lit(0x0c),
                        b'v' => w.lit(0x0b),
                        b'\\' | b'\'' | b'"' | b'?' => w.lit(e),
                        b'0'..=b'7' => {
                            let value = u32::from(e - b'0');
                            let value = self.digits(value, 8, 2);
                            w.lit((value & 0xff) as u8);
                        }
                        b'x' => self.hex_escape(w, 2, false),
                        b'u' => self.hex_escape(w, 4, true),
                        b'U' => self.hex_escape(w, 8, true),
                        b'c' => {
                            if let Some(c) = self.peek(0) {
                                self.pos += 1;
                                w.lit(c & 0x1f);
                            }
                        }
                        _ => {
                            w.lit(b'\\');
                            w.lit(e);
                        }
                    }
                }
                _ => w.lit(b),
            }
        }
    }

    /// Reads up to `max` more digits in `radix`, accumulating onto `value`.
    fn digits(&mut self, mut value: u32, radix: u32, max: usize) -> u32 {
        for _ in 0..max {
            let Some(d) = self.peek(0).and_then(|c| char::from(c).to_digit(radix)) else {
                break;
            };
            value = value.saturating_mul(radix).saturating_add(d);
            self.pos += 1;
        }
        value
    }

    fn hex_escape(&mut self, w: &mut Word, max: usize, unicode: bool) {
        let before = self.pos;
        let value = self.digits(0, 16, max);
        if self.pos == before {
            w.lit(b'\\');
            w.lit(self.src.get(before - 1).copied().unwrap_or(b'x'));
        } else if unicode {
            let c = char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER);
            let mut buf = [0u8; 4];
            w.lit_slice(c.encode_utf8(&mut buf).as_bytes());
        } else {
            w.lit((value & 0xff) as u8);
        }
    }

    /// `NAME=(…)` array literal, at the `(`. Its words are data, but substitutions in
    /// them run.
    fn array(&mut self, w: &mut Word, subs: &mut Vec<Piece>) {
        let start = self.pos;
        self.pos += 1;
        let Some(held) = self.enter() else {
            self.skip_as_piece(Ctx::Paren, false, subs);
            self.append_raw(w, start);
            return;
        };
        while let Some(b) = self.peek(0) {
            match b {
                b')' => {
                    self.pos += 1;
                    break;
                }
                _ if self.at_word() => {
                    let inner = self.word(subs);
                    self.give_back(inner.text);
                }
                _ => self.pos += 1,
            }
        }
        self.leave(held);
        self.append_raw(w, start);
    }

    /// A redirection at its operator, with `fd` digits already scanned.
    fn redirect(&mut self, fd: Option<Vec<u8>>, cmd: &mut Simple) {
        let a = self.peek(0);
        let b = self.peek(1);
        let c = self.peek(2);
        let op: &[u8] = match (a, b, c) {
            (Some(b'&'), _, Some(b'>')) => b"&>>",
            (Some(b'&'), _, _) => b"&>",
            (Some(b'<'), Some(b'<'), Some(b'<')) => b"<<<",
            (Some(b'<'), Some(b'<'), Some(b'-')) => b"<<-",
            (Some(b'<'), Some(b'<'), _) => b"<<",
            (Some(b'<'), Some(b'&'), _) => b"<&",
            (Some(b'<'), Some(b'>'), _) => b"<>",
            (Some(b'<'), _, _) => b"<",
            (_, Some(b'>'), _) => b">>",
            (_, Some(b'&'), _) => b">&",
            (_, Some(b'|'), _) => b">|",
            _ => b">",
        };
        self.pos += op.len();
        let mut text = fd.unwrap_or_default();
        text.extend_from_slice(op);
        self.skip_blanks();
        if !self.at_word() {
            cmd.redirs.push(text);
            return;
        }
        let target = self.word(&mut cmd.subs);
        if op == b"<<" || op == b"<<-" {
            let words = cmd.words.view();
            let program = words
                .iter()
                .find(|w| !w.is_assignment())
                .map_or(&[][..], |w| w.program_name());
            self.heredocs.push(Heredoc {
                delim: target.text.clone(),
                strip_tabs: op == b"<<-",
                expand: target.quoted_at.is_none(),
                script: script_kind(program),
            });
        }
        let dup = (op == b">&" || op == b"<&")
            && target.plain().is_some_and(|t| is_digits(t) || t == b"-");
        if dup {
            text.extend_from_slice(&target.text);
            cmd.redirs.push(text);
        } else {
            cmd.redirs.push(text);
            cmd.redirs.push(target.text);
        }
    }

    /// Consumes the bodies of pending here-documents, after a newline.
    fn read_heredocs(&mut self, subs: &mut Vec<Piece>) {
        if self.heredocs.is_empty() {
            return;
        }
        for doc in std::mem::take(&mut self.heredocs) {
            self.heredoc_body(&doc, subs);
        }
    }

    /// Reads one here-document body; when it is a script (`bash <<EOF`), its commands
    /// are pieces too.
    fn heredoc_body(&mut self, doc: &Heredoc, subs: &mut Vec<Piece>) {
        let body = self.heredoc_lines(doc, subs);
        let privileged = self.privileged;
        match doc.script {
            Script::Data => {}
            Script::Shell => {
                self.reparse(&body, privileged, subs);
            }
            Script::Code => {
                for command in wrappers::code_commands(&body) {
                    self.reparse(&command, privileged, subs);
                }
            }
        }
    }

    /// Consumes a here-document's lines up to its delimiter, scanning them for
    /// substitutions when it expands; returns the body when it is a script.
    fn heredoc_lines(&mut self, doc: &Heredoc, subs: &mut Vec<Piece>) -> Vec<u8> {
        let src = self.src;
        let mut body = Vec::new();
        let mut scratch = Word::default();
        while self.pos < src.len() {
            let mut p = self.pos;
            if doc.strip_tabs {
                while src.get(p) == Some(&b'\t') {
                    p += 1;
                }
            }
            let rest = src.get(p..).unwrap_or_default();
            let eol = memchr(b'\n', rest).map_or(src.len(), |k| p + k);
            let line = src.get(p..eol).unwrap_or_default();
            if line == doc.delim.as_slice() {
                self.pos = (eol + 1).min(src.len());
                return body;
            }
            if doc.script != Script::Data {
                body.extend_from_slice(line);
                body.push(b'\n');
            }
            if !doc.expand {
                self.pos = (eol + 1).min(src.len());
                continue;
            }
            // The line may contain substitutions, which may span lines themselves.
            while let Some(b) = self.peek(0) {
                match b {
                    b'\n' => {
                        self.pos += 1;
                        break;
                    }
                    b'\\' => self.pos = (self.pos + 2).min(src.len()),
                    b'$' => self.dollar(&mut scratch, subs, true),
                    b'`' => self.backtick(&mut scratch, subs, true),
                    _ => self.pos += 1,
                }
            }
            scratch.text.clear();
        }
        body
    }

    /// Parses `text` as a command line one level deeper, if depth and budget allow.
    fn reparse(&mut self, text: &[u8], privileged: bool, out: &mut Vec<Piece>) -> bool {
        if self.depth >= MAX_DEPTH || self.budget < text.len() {
            self.truncated = true;
            return false;
        }
        let mut inner = Parser::new(text, self.depth + 1, privileged, self.budget - text.len());
        inner.spare = std::mem::take(&mut self.spare);
        inner.list(false, out);
        self.budget = inner.budget;
        self.spare = inner.spare;
        self.truncated |= inner.truncated;
        true
    }

    fn finish(&mut self, cmd: &mut Simple, out: &mut Vec<Piece>) {
        let privileged = self.privileged;
        self.command(cmd.words.view(), &cmd.redirs, privileged, cmd.compound, out);
        out.append(&mut cmd.subs);
        self.recycle(cmd);
    }

    /// Peels reserved words, assignments and wrappers off one simple command and emits
    /// what remains.
    fn command(
        &mut self,
        words: WordList<'_>,
        redirs: &[Vec<u8>],
        privileged: bool,
        mut compound: bool,
        out: &mut Vec<Piece>,
    ) {
        let mut i = 0;
        while let Some(w) = words.get(i) {
            match w.plain() {
                Some(word) if is_reserved(word) => {
                    // `done < list`, `} > f`: the redirection is the compound command's.
                    compound = true;
                    i += 1;
                }
                // `for x in …` and `case x in` name data, not a command.
                Some(b"for" | b"select" | b"case") => return,
                Some(b"function") => i += 2,
                _ if w.is_assignment() => i += 1,
                _ => break,
            }
        }
        loop {
            let Some(rest) = words.from(i).filter(|r| !r.is_empty()) else {
                if !compound {
                    emit(WordList::default(), redirs, privileged, out);
                }
                return;
            };
            let name = rest.get(0).map_or(&[][..], |w| w.program_name());
            if self.launcher(rest, redirs, privileged, out) {
                return;
            }
            let inner = match name {
                b"env" => match env_options(rest) {
                    EnvArgs::Inner(j) => j,
                    EnvArgs::Split(string, from) => {
                        // `env -S STRING ARGS…` runs env on STRING split into words.
                        let mut line = b"env ".to_vec();
                        line.extend_from_slice(string);
                        for w in rest.from(from).unwrap_or_default().iter() {
                            line.push(b' ');
                            line.extend_from_slice(w.text);
                        }
                        if !self.reparse(&line, privileged, out) {
                            emit(rest, redirs, privileged, out);
                        }
                        return;
                    }
                },
                b"nohup" | b"builtin" | b"busybox" | b"setsid" => options(rest, &NO_OPTIONS).next,
                b"nice" => options(rest, &NICE).next,
                b"timeout" => options(rest, &TIMEOUT).next,
                b"stdbuf" => options(rest, &STDBUF).next,
                b"exec" => options(rest, &EXEC).next,
                b"time" => options(rest, &TIME).next,
                b"xargs" => options(rest, &XARGS).next,
                // With a pid (ionice: or pgid, uid) they act on running processes.
                b"ionice" => {
                    let o = options(rest, &IONICE);
                    if o.has(b'p') || o.has(b'P') || o.has(b'u') {
                        rest.len()
                    } else {
                        o.next
                    }
                }
                b"chrt" => {
                    let o = options(rest, &CHRT);
                    if o.has(b'p') { rest.len() } else { o.next }
                }
                b"command" => {
                    let o = options(rest, &COMMAND);
                    if o.has(b'v') || o.has(b'V') {
                        // A lookup, not a run.
                        rest.len()
                    } else {
                        o.next
                    }
                }
                b"sh" | b"bash" | b"zsh" | b"dash" | b"ksh" | b"mksh" | b"ash" | b"yash"
                | b"rbash" | b"posh" | b"fish" => {
                    let o = options(rest, &SHELL);
                    let body = rest.get(o.next).filter(|_| o.has(b'c'));
                    if let Some(body) = body
                        && self.reparse(body.text, privileged, out)
                    {
                        return;
                    }
                    // `bash <<< 'rm -rf ~'`: a here-string is the script.
                    if body.is_none()
                        && let Some(k) = redirs.iter().position(|r| r.as_slice() == b"<<<")
                        && let Some(script) = redirs.get(k + 1)
                    {
                        emit(rest, redirs, privileged, out);
                        self.reparse(script, privileged, out);
                        return;
                    }
                    emit(rest, redirs, privileged, out);
                    return;
                }
                b"eval" => {
                    let mut line = Vec::new();
                    for (k, w) in rest.iter().enumerate().skip(1) {
                        if k > 1 {
                            line.push(b' ');
                        }
                        line.extend_from_slice(w.text);
                    }
                    if rest.len() < 2 || !self.reparse(&line, privileged, out) {
                        emit(rest, redirs, privileged, out);
                    }
                    return;
                }
                _ if is_loader(name) => {
                    // The dynamic loader runs the program it is given as if exec'd: keep
                    // the loader's own piece (running it directly is worth a rule), then
                    // the program's pieces, as for sudo but not privileged.
                    emit(rest, redirs, privileged, out);
                    let o = options(rest, &LOADER);
                    let runs = !LOADER_NO_RUN.iter().any(|&c| o.has(c));
                    if let Some(inner) = rest.from(o.next).filter(|r| runs && !r.is_empty()) {
                        let cost = inner.iter().map(|w| w.text.len() + 1).sum::<usize>();
                        if self.depth < MAX_DEPTH && self.budget >= cost {
                            self.budget -= cost;
                            self.depth += 1;
                            self.command(inner, redirs, privileged, false, out);
                            self.depth -= 1;
                        } else {
                            self.truncated = true;
                        }
                    }
                    return;
                }
                b"sudo" | b"doas" => {
                    emit(rest, redirs, privileged, out);
                    let (spec, no_run): (&Spec, &[u8]) = if name == b"sudo" {
                        (&SUDO, b"elvVhK")
                    } else {
                        (&DOAS, b"CL")
                    };
                    let o = options(rest, spec);
                    let runs = !no_run.iter().any(|&c| o.has(c));
                    if let Some(inner) = rest.from(o.next).filter(|r| runs && !r.is_empty()) {
                        let cost = inner.iter().map(|w| w.text.len() + 1).sum::<usize>();
                        if self.depth < MAX_DEPTH && self.budget >= cost {
                            self.budget -= cost;
                            self.depth += 1;
                            self.command(inner, redirs, true, false, out);
                            self.depth -= 1;
                        } else {
                            self.truncated = true;
                        }
                    }
                    return;
                }
                _ => {
                    emit(rest, redirs, privileged, out);
                    return;
                }
            };
            if inner >= rest.len() {
                // A wrapper with nothing to run is its own command.
                emit(rest, redirs, privileged, out);
                return;
            }
            i += inner;
        }
    }
}

/// Appends the piece for `words` (program basename first) and `redirs`, unless empty.
fn emit(words: WordList<'_>, redirs: &[Vec<u8>], privileged: bool, out: &mut Vec<Piece>) {
    if redirs.is_empty() && words.iter().all(|w| w.text.is_empty()) {
        return;
    }
    let name = words.get(0).map(|w| w.program_name());
    let tail = Some(words.tail_text()).filter(|_| words.len() > 1);
    let len = name.map_or(0, |n| n.len() + 1)
        + tail.map_or(0, |t| t.len() + 1)
        + redirs.iter().map(|r| r.len() + 1).sum::<usize>();
    let mut text = Vec::with_capacity(len);
    let parts = name
        .into_iter()
        .chain(tail)
        .chain(redirs.iter().map(Vec::as_slice));
    for (k, part) in parts.enumerate() {
        if k > 0 {
            text.push(b' ');
        }
        text.extend_from_slice(part);
    }
    out.push(Piece {
        text: into_string(text),
        privileged,
    });
}

#[path = "words.rs"]
mod words;
#[path = "wrappers.rs"]
mod wrappers;

use words::{Word, WordList, Words, head_word, into_string, is_digits, is_reserved};
pub use wrappers::is_loader;
use wrappers::{
    CHRT, COMMAND, DOAS, EXEC, EnvArgs, IONICE, LOADER, LOADER_NO_RUN, NICE, NO_OPTIONS, SHELL,
    STDBUF, SUDO, Spec, TIME, TIMEOUT, XARGS, env_options, options,
};

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
