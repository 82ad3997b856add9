//! The place a command acts on (issue 14, family 1): which paths a delete, permission,
//! ownership, truncate or raw-write command would change, resolved against the directory
//! it runs in and normalised lexically, so that `cd ~ && rm -rf *`, `rm -rf /home//u`,
//! `rm -rf /usr/../home` and `rm -rf /root/..` are seen as what they delete.
//!
//! Pure text work: no file is looked at, symlinks are not followed (`..` is taken
//! lexically, as `rm` itself takes it for the names it is given). Which programs act on
//! which operands is data ([`ACTORS`]), not code paths.

use crate::glob::Glob;

/// What a program does to the paths it is given (for `--json` and documentation; the
/// rules select programs with `command_matches`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Delete,
    Mode,
    Owner,
    Truncate,
    Write,
}

/// How one program's operands are read.
#[derive(Debug)]
struct Actor {
    name: &'static str,
    effect: Effect,
    /// Short options that take a value (attached or as the next word).
    short_arg: &'static [u8],
    /// Long options that take the next word as value when written without `=`.
    long_arg: &'static [&'static str],
    /// Operands before the paths (chmod's mode, chown's owner), unless `--reference` is
    /// given.
    leading: usize,
}

/// The programs whose operands are places. Options not listed are taken as flags.
const ACTORS: &[Actor] = &[
    actor("rm", Effect::Delete, b"", &[], 0),
    actor("rmdir", Effect::Delete, b"", &[], 0),
    actor("unlink", Effect::Delete, b"", &[], 0),
    actor("srm", Effect::Delete, b"", &[], 0),
    actor("trash", Effect::Delete, b"", &[], 0),
    actor("trash-put", Effect::Delete, b"", &[], 0),
    actor(
        "shred",
        Effect::Delete,
        b"ns",
        &["iterations", "size", "random-source"],
        0,
    ),
    actor("chmod", Effect::Mode, b"", &[], 1),
    actor("chown", Effect::Owner, b"", &[], 1),
    actor("chgrp", Effect::Owner, b"", &[], 1),
    actor("chattr", Effect::Mode, b"pv", &[], 1),
    actor("setfacl", Effect::Mode, b"mMxX", &["modify", "remove"], 0),
    actor(
        "truncate",
        Effect::Truncate,
        b"sr",
        &["size", "reference"],
        0,
    ),
];

const fn actor(
    name: &'static str,
    effect: Effect,
    short_arg: &'static [u8],
    long_arg: &'static [&'static str],
    leading: usize,
) -> Actor {
    Actor {
        name,
        effect,
        short_arg,
        long_arg,
        leading,
    }
}

/// `find` expression words that make the starting points places: they delete, or run
/// a program on what is found.
const FIND_ACTIONS: &[&str] = &["-delete", "-exec", "-execdir", "-ok", "-okdir"];

/// What a command is evaluated against: where it runs and whose home `~` is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The directory the call came from (absolute); `None` when unknown, and then
    /// relative operands are not resolved.
    pub cwd: Option<&'a str>,
    /// The user's home directory (absolute); `None` when unknown: `~` is then kept as
    /// written, and `~` patterns match it.
    pub home: Option<&'a str>,
}

impl Context<'_> {
    /// The working tree: the directory the call came from, unless that is the root, the
    /// home directory or above it (then every path would be "inside the tree").
    pub fn tree(&self) -> Option<String> {
        let cwd = normalize(self.cwd?)?;
        if cwd == "/" {
            return None;
        }
        if let Some(home) = self.home.and_then(normalize)
            && (home == cwd || within(&home, &cwd))
        {
            return None;
        }
        Some(cwd)
    }
}

/// The places one piece acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Targets {
    pub effect: Option<Effect>,
    /// Absolute, lexically normalised paths (or `~…` when the home is unknown); a glob
    /// typed in the command stays in its segment (`/home/u/*`).
    pub paths: Vec<String>,
}

/// Where a piece moves the place for what follows: `cd DIR`, `pushd DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// The piece does not change directory.
    Stay,
    /// The following pieces run here (`None`: somewhere not known, `cd -`).
    To(Option<String>),
}

/// One piece with the directory it runs in and what it changes there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placed {
    /// Where the piece runs: the call's cwd, moved by earlier `cd`s of the same command;
    /// `None` when not known.
    pub cwd: Option<String>,
    #[serde(flatten)]
    pub targets: Targets,
}

/// Walks the pieces in order, following `cd`, and says where each runs and what it
/// changes; empty (not one entry per piece) when no piece changes a place or moves. A `cd` inside a subshell is followed too (the pieces are flat): that can
/// only move later pieces somewhere they might have run.
pub fn walk(pieces: &[crate::shell::Piece], ctx: &Context<'_>) -> Vec<Placed> {
    // Most commands change no place and never `cd`: nothing to resolve.
    let acts = |text: &str| {
        let program = text.split(' ').next().unwrap_or("");
        matches!(program, "find" | "dd" | "cd" | "pushd" | "popd" | "chdir")
            || ACTORS.iter().any(|a| a.name == program)
            || text.contains('>')
    };
    if !pieces.iter().any(|p| acts(&p.text)) {
        return Vec::new();
    }
    let mut place = ctx.cwd.and_then(normalize);
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let targets = targets(&piece.text, place.as_deref(), ctx.home);
        out.push(Placed {
            cwd: place.clone(),
            targets,
        });
        if let Move::To(to) = moves(&piece.text, place.as_deref(), ctx.home) {
            place = to;
        }
    }
    out
}

/// `cd`/`pushd`/`popd` pieces: where they lead, resolved against `place`.
pub fn moves(piece: &str, place: Option<&str>, home: Option<&str>) -> Move {
    let mut words = piece.split(' ');
    match words.next() {
        Some("cd" | "pushd" | "chdir") => {}
        Some("popd") => return Move::To(None),
        _ => return Move::Stay,
    }
    let dir = words.find(|w| !matches!(*w, "-L" | "-P" | "-e" | "-@" | "--"));
    match dir {
        None | Some("") => Move::To(Some(home.unwrap_or("~").to_owned())),
        Some("-") => Move::To(None),
        Some(dir) if is_redirection(dir) => Move::To(Some(home.unwrap_or("~").to_owned())),
        Some(dir) => Move::To(resolve(dir, place, home)),
    }
}

/// The paths `piece` (a normalised simple command) would change, resolved against
/// `place` (the directory it runs in).
pub fn targets(piece: &str, place: Option<&str>, home: Option<&str>) -> Targets {
    let mut words = piece.split(' ');
    let Some(program) = words.next() else {
        return Targets::default();
    };
    if program != "find" && program != "dd" && !ACTORS.iter().any(|a| a.name == program) {
        return redirect_targets(piece, place, home);
    }
    let words: Vec<&str> = words.collect();
    if program == "find" {
        return find_targets(&words, place, home);
    }
    if program == "dd" {
        let paths = words
            .iter()
            .filter_map(|w| w.strip_prefix("of="))
            .filter_map(|w| resolve(w, place, home))
            .collect();
        return Targets {
            effect: Some(Effect::Write),
            paths,
        };
    }
    let Some(actor) = ACTORS.iter().find(|a| a.name == program) else {
        return Targets::default();
    };
    let mut paths = Vec::new();
    let mut leading = actor.leading;
    let mut options = true;
    let mut k = 0;
    while let Some(&word) = words.get(k) {
        k += 1;
        if is_redirection(word) {
            // The redirection's target follows; redirections are at the end of a piece.
            break;
        }
        if options && word == "--" {
            options = false;
            continue;
        }
        if options && let Some(long) = word.strip_prefix("--") {
            let (name, has_value) = match long.split_once('=') {
                Some((name, _)) => (name, true),
                None => (long, false),
            };
            if name == "reference" {
                leading = 0;
            }
            if !has_value && (actor.long_arg.contains(&name) || name == "reference") {
                k += 1;
            }
            continue;
        }
        if options && word.len() > 1 && word.starts_with('-') && !is_chmod_mode(actor, word) {
            let bytes = word.as_bytes();
            for (i, c) in bytes.iter().enumerate().skip(1) {
                if actor.short_arg.contains(c) {
                    if i + 1 == bytes.len() {
                        k += 1;
                    }
                    break;
                }
            }
            continue;
        }
        if leading > 0 {
            leading -= 1;
            continue;
        }
        if let Some(path) = resolve(word, place, home) {
            paths.push(path);
        }
    }
    Targets {
        effect: Some(actor.effect),
        paths,
    }
}

/// The files a piece's output redirections write (`echo x >> ~/.bashrc`: no program
/// writes them, the shell does). `/dev/null` and descriptor copies are not places.
fn redirect_targets(piece: &str, place: Option<&str>, home: Option<&str>) -> Targets {
    if !piece.contains('>') {
        return Targets::default();
    }
    let mut words = piece.split(' ');
    let mut paths = Vec::new();
    while let Some(word) = words.next() {
        if is_redirection(word)
            && (word.ends_with('>') || word.ends_with(">|"))
            && let Some(target) = words.next()
            && target != "/dev/null"
            && let Some(path) = resolve(target, place, home)
        {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Targets::default();
    }
    Targets {
        effect: Some(Effect::Write),
        paths,
    }
}

/// `chmod -w file`: a mode that looks like an option (chmod's own options are
/// `-R -c -f -v` and long ones).
fn is_chmod_mode(actor: &Actor, word: &str) -> bool {
    actor.name == "chmod"
        && word.len() > 1
        && word
            .bytes()
            .skip(1)
            .all(|c| matches!(c, b'r' | b'w' | b'x' | b'X' | b's' | b't'))
}

/// `find START… EXPR`: the starting points (default `.`) when the expression deletes or
/// runs a program on what it finds.
fn find_targets(words: &[&str], place: Option<&str>, home: Option<&str>) -> Targets {
    if !words.iter().any(|w| FIND_ACTIONS.contains(w)) {
        return Targets::default();
    }
    let mut starts = Vec::new();
    for &word in words {
        // Leading options of find itself.
        if starts.is_empty() && matches!(word, "-H" | "-L" | "-P") {
            continue;
        }
        if word.starts_with('-') || word == "(" || word == "!" || is_redirection(word) {
            break;
        }
        starts.push(word);
    }
    if starts.is_empty() {
        starts.push(".");
    }
    // What find deletes is below its starting points: `find . -name x -delete` in a
    // project acts on the project's contents (`/home/u/proj/*`), `find ~ -delete` on
    // everything in the home (`/home/u/*`), as `rm -rf *` there would.
    Targets {
        effect: Some(Effect::Delete),
        paths: starts
            .into_iter()
            .filter_map(|w| resolve(w, place, home))
            .map(|p| if p == "/" { "/*".to_owned() } else { p + "/*" })
            .collect(),
    }
}

/// A redirection operator word as the normaliser writes it (`>`, `2>>`, `&>`, `<`, `>|`).
fn is_redirection(word: &str) -> bool {
    !word.is_empty()
        && word.contains(['<', '>'])
        && word
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'<' | b'>' | b'&' | b'|' | b'-'))
}

/// `word` as an absolute, lexically normalised path: `~`, `~/x`, `$HOME`, `${HOME}` are
/// the home, `~user` is `/home/user` (`/root` for root), a relative word is taken
/// against `place`. `None` when it cannot be placed (relative with no known place,
/// another variable).
pub fn resolve(word: &str, place: Option<&str>, home: Option<&str>) -> Option<String> {
    if word.is_empty() {
        return None;
    }
    let home_text = home.unwrap_or("~");
    let joined = if let Some(rest) = strip_home(word) {
        format!("{home_text}/{rest}")
    } else if let Some(user) = word.strip_prefix('~') {
        let (name, rest) = user.split_once('/').unwrap_or((user, ""));
        if name == "root" {
            format!("/root/{rest}")
        } else {
            format!("/home/{name}/{rest}")
        }
    } else if word.starts_with('/') {
        word.to_owned()
    } else if word.starts_with('$') {
        return None;
    } else {
        format!("{}/{word}", place?)
    };
    normalize(&joined)
}

/// The rest after a leading `~`, `$HOME` or `${HOME}` (empty for the home itself).
fn strip_home(word: &str) -> Option<&str> {
    for prefix in ["~", "$HOME", "${HOME}"] {
        if let Some(rest) = word.strip_prefix(prefix) {
            if rest.is_empty() {
                return Some("");
            }
            if let Some(rest) = rest.strip_prefix('/') {
                return Some(rest);
            }
        }
    }
    None
}

/// Lexical normalisation: `//` and `/./` collapse, `..` removes the segment before it
/// (never above the root), a trailing `/` goes. Keeps a leading `~` (unknown home).
pub fn normalize(path: &str) -> Option<String> {
    let (root, rest) = if let Some(rest) = path.strip_prefix('~') {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        ("~", rest)
    } else if path.starts_with('/') {
        ("", path)
    } else {
        return None;
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in rest.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    if segments.is_empty() {
        return Some(if root.is_empty() { "/" } else { root }.to_owned());
    }
    let mut out = String::with_capacity(path.len());
    out.push_str(root);
    for s in segments {
        out.push('/');
        out.push_str(s);
    }
    Some(out)
}

/// Whether `path` lies strictly inside `dir`.
pub fn within(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return path.len() > 1 && path.starts_with('/');
    }
    path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Where a `target_matches` pattern is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// An absolute pattern.
    Root,
    /// `~` or `$HOME`: the user's home.
    Home,
    /// `$CWD`: the working tree (see [`Context::tree`]).
    Tree,
}

/// A `target_matches` pattern: a base and a path glob for the rest (`""` is the base
/// itself, `/**` anything inside it).
#[derive(Debug, Clone)]
pub struct TargetGlob {
    pub base: Base,
    pub rest: Glob,
    /// The rest's text before its first wildcard: a path that does not start with it
    /// cannot match, which is cheaper to see than to run the glob.
    prefix: String,
}

impl TargetGlob {
    pub fn new(text: &str) -> TargetGlob {
        for (prefix, base) in [
            ("${HOME}", Base::Home),
            ("$HOME", Base::Home),
            ("~", Base::Home),
            ("${CWD}", Base::Tree),
            ("$CWD", Base::Tree),
        ] {
            if let Some(rest) = text.strip_prefix(prefix)
                && (rest.is_empty() || rest.starts_with('/'))
            {
                let rest = rest.strip_suffix('/').unwrap_or(rest);
                return TargetGlob {
                    base,
                    rest: Glob::path(rest),
                    prefix: literal_prefix(rest),
                };
            }
        }
        TargetGlob {
            base: Base::Root,
            rest: Glob::path(text),
            prefix: literal_prefix(text),
        }
    }

    /// Whether the resolved `path` matches, `home` and `tree` being the request's.
    pub fn is_match(&self, path: &str, home: &str, tree: Option<&str>) -> bool {
        let base = match self.base {
            Base::Root => return path.starts_with(&self.prefix) && self.rest.is_match(path),
            Base::Home => home,
            Base::Tree => match tree {
                Some(tree) => tree,
                None => return false,
            },
        };
        match path.strip_prefix(base) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                rest.starts_with(&self.prefix) && self.rest.is_match(rest)
            }
            _ => false,
        }
    }
}

/// `text` up to its first `*` or `?`.
fn literal_prefix(text: &str) -> String {
    text.split(['*', '?']).next().unwrap_or("").to_owned()
}

#[cfg(test)]
#[path = "place_tests.rs"]
mod tests;
