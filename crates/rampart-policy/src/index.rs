//! The rule index (moved out of `eval.rs`, issue 14): which rules could match a subject,
//! by its first word, a literal prefix, or literals found in one scan of the subject, so
//! that only those are tried. `evaluate_props::indexed_evaluation_equals_trying_every_rule`
//! proves it never leaves out a rule that matches.

use std::collections::HashMap;

use crate::model::{Conditions, Policy, Scope};

/// The set bits of `bits`, ascending.
pub(super) fn ones(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(k, &word)| {
        let mut rest = word;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let bit = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            Some(k * 64 + bit)
        })
    })
}

pub(super) fn has_bit(bits: &[u64], id: usize) -> bool {
    bits.get(id / 64)
        .is_some_and(|word| word & (1 << (id % 64)) != 0)
}

pub(super) fn set_bit(bits: &mut [u64], id: u32) {
    if let Some(word) = bits.get_mut(id as usize / 64) {
        *word |= 1 << (id % 64);
    }
}

/// Which rules could match a subject, found by the subject's first word.
///
/// A command glob is anchored, so its literal prefix (up to the first wildcard) must
/// start every match: `rm -rf /*` can only match subjects whose first word is `rm`. With
/// hundreds of patterns in the standard profile, testing only those rules is what keeps
/// evaluation in microseconds.
#[derive(Debug, Clone, Default)]
pub(super) struct RuleIndex {
    /// `(policy, rule)` of every non-default rule, in evaluation order; ids index this.
    pub(super) rules: Vec<(u32, u32)>,
    /// For each rule id, how to test each of its `command_contains` needles.
    pub(super) needles: Vec<Vec<Needle>>,
    /// For each rule id, literals of which one must occur for its `command_matches` to
    /// match (each pattern's longest literal after its first wildcard), or none when a
    /// pattern has no long enough one: rules with many anchored patterns (`rm * $HOME`, twelve spellings)
    /// are skipped by a bit test instead of a dozen glob matches.
    pub(super) requires: Vec<Vec<usize>>,
    /// For each policy, the first policy with an identical `match:` scope.
    pub(super) same_scope: Vec<usize>,
    /// Rules with a pattern whose first word is literal, by that word.
    pub(super) by_word: HashMap<String, Vec<u32>>,
    /// Rules with a pattern whose literal prefix ends inside the first word (`mkfs.*`).
    pub(super) by_prefix: Vec<(String, u32)>,
    /// Literals that must occur for a rule to match (the longest literal run of a pattern
    /// with a leading wildcard, or a `command_contains` needle), searched in one pass.
    pub(super) literals: Option<Scanner>,
    /// For each literal, the rules it may trigger.
    pub(super) literal_rules: Vec<Vec<u32>>,
    /// Rules that any subject could match (no command condition, or a pattern without
    /// any literal).
    pub(super) always: Vec<u32>,
    /// Collected while building, before the automaton exists.
    pub(super) pending_literals: Vec<(String, u32)>,
    /// Some rule has `target_matches`/`target_not_matches`: pieces' places are worked out.
    pub(super) uses_targets: bool,
    /// For each rule id, whether it has target conditions (then only subjects that change
    /// some place can match it).
    pub(super) needs_targets: Vec<bool>,
}

/// Shorter required literals are not worth indexing (see [`RuleIndex::add`]).
pub(super) const MIN_LITERAL: usize = 3;

/// How a `command_contains` needle is tested against a subject.
#[derive(Debug, Clone)]
pub(super) enum Needle {
    /// Whether the literal scan found it (the literal's index in the automaton): the
    /// scan already walks every subject, and a rule like protect-secrets' exception has
    /// eighteen needles, each a separate memmem search otherwise.
    Found(usize),
    /// A needle shorter than [`MIN_LITERAL`] (it would be a match state on nearly every
    /// subject's walk), or any needle when the automaton could not be built.
    Search(Box<memchr::memmem::Finder<'static>>),
}

impl Needle {
    fn search(needle: &str) -> Needle {
        Needle::Search(Box::new(
            memchr::memmem::Finder::new(needle.as_bytes()).into_owned(),
        ))
    }
}

pub(super) enum Entry {
    Word(String),
    Prefix(String),
    Literal(String),
}

impl RuleIndex {
    pub(super) fn build(policies: &[Policy]) -> RuleIndex {
        let mut index = RuleIndex::default();
        for (pi, policy) in policies.iter().enumerate() {
            let same = policies
                .iter()
                .position(|other| same_scope(&other.scope, &policy.scope))
                .unwrap_or(pi);
            index.same_scope.push(same);
            for (ri, rule) in policy.rules.iter().enumerate() {
                if rule.is_default {
                    continue;
                }
                let id = u32::try_from(index.rules.len()).unwrap_or(u32::MAX);
                index.rules.push((
                    u32::try_from(pi).unwrap_or(u32::MAX),
                    u32::try_from(ri).unwrap_or(u32::MAX),
                ));
                index.needles.push(Vec::new());
                index.requires.push(Vec::new());
                let targeted = !rule.when.target_matches.is_empty()
                    || !rule.when.target_not_matches.is_empty();
                index.uses_targets |= targeted;
                index.needs_targets.push(targeted);
                index.add(id, &rule.when);
            }
        }
        for list in index.by_word.values_mut() {
            list.dedup();
        }
        let mut literals: Vec<String> = Vec::new();
        let mut literal_rules: Vec<Vec<u32>> = Vec::new();
        let mut positions: HashMap<String, usize> = HashMap::new();
        // A literal's index in the automaton, adding it when new.
        fn position(
            positions: &mut HashMap<String, usize>,
            literals: &mut Vec<String>,
            literal_rules: &mut Vec<Vec<u32>>,
            literal: &str,
        ) -> usize {
            *positions.entry(literal.to_owned()).or_insert_with(|| {
                literals.push(literal.to_owned());
                literal_rules.push(Vec::new());
                literal_rules.len() - 1
            })
        }
        for (literal, id) in std::mem::take(&mut index.pending_literals) {
            let at = position(&mut positions, &mut literals, &mut literal_rules, &literal);
            if let Some(rules) = literal_rules.get_mut(at)
                && rules.last() != Some(&id)
            {
                rules.push(id);
            }
        }
        // Every long enough needle is scanned for, whatever indexes its rule.
        for (needles, &(pi, ri)) in index.needles.iter_mut().zip(&index.rules) {
            let contains = policies
                .get(pi as usize)
                .and_then(|p| p.rules.get(ri as usize))
                .map_or(&[][..], |r| r.when.command_contains.as_slice());
            for needle in contains {
                needles.push(if needle.text.len() >= MIN_LITERAL {
                    Needle::Found(position(
                        &mut positions,
                        &mut literals,
                        &mut literal_rules,
                        &needle.text,
                    ))
                } else {
                    Needle::search(&needle.text)
                });
            }
        }
        for (required, &(pi, ri)) in index.requires.iter_mut().zip(&index.rules) {
            let patterns = policies
                .get(pi as usize)
                .and_then(|p| p.rules.get(ri as usize))
                .map_or(&[][..], |r| r.when.command_matches.as_slice());
            // One pattern is cheaper to test than to add to the scan, and a literal
            // prefix (`git *`) says no more than the first-word index did.
            let worth = patterns.len() > 1
                && patterns
                    .iter()
                    .all(|p| p.glob.inner_literal().len() >= MIN_LITERAL);
            if !worth {
                continue;
            }
            for pattern in patterns {
                let at = position(
                    &mut positions,
                    &mut literals,
                    &mut literal_rules,
                    pattern.glob.inner_literal(),
                );
                if !required.contains(&at) {
                    required.push(at);
                }
            }
        }
        // A DFA: a few hundred short literals make a small one, and `candidates` walks it
        // one table lookup per byte, reporting every literal that occurs.
        let built = aho_corasick::dfa::Builder::new()
            .match_kind(aho_corasick::MatchKind::Standard)
            .start_kind(aho_corasick::StartKind::Unanchored)
            .prefilter(false)
            .build(&literals);
        match built.ok().and_then(|dfa| Scanner::new(&dfa, &literals)) {
            Some(scanner) => {
                index.literals = Some(scanner);
                index.literal_rules = literal_rules;
            }
            // Cannot happen for a few hundred short literals; if it did, checking those
            // rules every time is slower but still right.
            None => {
                index.always.extend(literal_rules.into_iter().flatten());
                index.requires.iter_mut().for_each(Vec::clear);
                for needle in index.needles.iter_mut().flatten() {
                    if let Needle::Found(literal) = *needle {
                        *needle = Needle::search(literals.get(literal).map_or("", String::as_str));
                    }
                }
            }
        }
        index.always.sort_unstable();
        index.always.dedup();
        index
    }

    fn add(&mut self, id: u32, when: &Conditions) {
        // command_matches and command_contains must both hold when present: either one
        // narrows the candidates. Prefer the needles: they are scanned for anyway, and
        // rarer than a first word (`git *` with `.ssh`); else the anchored patterns.
        let contains_indexable = !when.command_contains.is_empty()
            && when
                .command_contains
                .iter()
                .all(|n| n.text.len() >= MIN_LITERAL);
        let entries = if when.command_matches.is_empty() || contains_indexable {
            None
        } else {
            match_entries(&when.command_matches)
        };
        if contains_indexable {
            for needle in &when.command_contains {
                self.pending_literals.push((needle.text.clone(), id));
            }
        } else if let Some(entries) = entries {
            for entry in entries {
                match entry {
                    Entry::Word(word) => self.by_word.entry(word).or_default().push(id),
                    Entry::Prefix(prefix) => self.by_prefix.push((prefix, id)),
                    Entry::Literal(literal) => self.pending_literals.push((literal, id)),
                }
            }
        } else {
            self.always.push(id);
        }
    }

    /// Sets in `bits` (cleared first) the ids of the rules that could match `subject`, and
    /// in `found` (cleared first) the literals that occur in it.
    pub(super) fn candidates(&self, subject: &str, bits: &mut [u64], found: &mut [u64]) {
        bits.fill(0);
        found.fill(0);
        for &id in &self.always {
            set_bit(bits, id);
        }
        let word = subject.split(' ').next().unwrap_or("");
        for &id in self.by_word.get(word).map_or(&[][..], Vec::as_slice) {
            set_bit(bits, id);
        }
        for (prefix, id) in &self.by_prefix {
            if subject.starts_with(prefix.as_str()) {
                set_bit(bits, *id);
            }
        }
        if let Some(scanner) = &self.literals {
            self.scan_literals(scanner, subject.as_bytes(), bits, found);
        }
    }

    /// Sets in `found` every literal that occurs in `hay`, and in `bits` its rules.
    ///
    /// One DFA walk is a chain of dependent table lookups, a few cycles per byte however
    /// simple each step is. A long subject is therefore cut into [`LANES`] parts walked
    /// in step, so that the processor overlaps their lookups; each part also reads the
    /// first `longest literal - 1` bytes of the next, so every occurrence lies wholly
    /// inside some part. Finding a literal twice changes nothing.
    fn scan_literals(&self, scanner: &Scanner, hay: &[u8], bits: &mut [u64], found: &mut [u64]) {
        let mut mark = |state: u32| {
            for &literal in scanner.matches(state) {
                let literal = literal as usize;
                if let Some(word) = found.get_mut(literal / 64) {
                    *word |= 1 << (literal % 64);
                }
                for &id in self
                    .literal_rules
                    .get(literal)
                    .map_or(&[][..], Vec::as_slice)
                {
                    set_bit(bits, id);
                }
            }
        };
        let start = scanner.start;
        let overlap = scanner.longest.saturating_sub(1);
        let part = hay.len() / LANES;
        if part < LANE_MIN.max(overlap) {
            let mut state = start;
            for &byte in hay {
                state = scanner.next(state, byte);
                if scanner.is_match(state) {
                    mark(state);
                }
            }
            return;
        }
        let (p0, rest) = hay.split_at(part);
        let (p1, rest) = rest.split_at(part);
        let (p2, rest) = rest.split_at(part);
        let p3 = rest.get(..part).unwrap_or_default();
        let [mut s0, mut s1, mut s2, mut s3] = [start; LANES];
        for (((&b0, &b1), &b2), &b3) in p0.iter().zip(p1).zip(p2).zip(p3) {
            s0 = scanner.next(s0, b0);
            s1 = scanner.next(s1, b1);
            s2 = scanner.next(s2, b2);
            s3 = scanner.next(s3, b3);
            if scanner.is_match(s0.max(s1).max(s2).max(s3)) {
                for state in [s0, s1, s2, s3] {
                    mark(state);
                }
            }
        }
        for (lane, state) in [s0, s1, s2, s3].iter_mut().enumerate() {
            let from = (lane + 1) * part;
            let to = if lane + 1 == LANES {
                hay.len()
            } else {
                (from + overlap).min(hay.len())
            };
            for &byte in hay.get(from..to).unwrap_or_default() {
                *state = scanner.next(*state, byte);
                if scanner.is_match(*state) {
                    mark(*state);
                }
            }
        }
    }
}

/// Index entries for a rule's `command_matches`, one per pattern; `None` when some
/// pattern has no literal worth indexing (then the pattern list narrows nothing).
pub(super) fn match_entries(patterns: &[crate::model::Pattern]) -> Option<Vec<Entry>> {
    let mut entries = Vec::with_capacity(patterns.len());
    for pattern in patterns {
        let (prefix, complete) = pattern.glob.literal_prefix()?;
        if let Some(space) = prefix.find(' ') {
            entries.push(Entry::Word(prefix[..space].to_owned()));
        } else if complete {
            entries.push(Entry::Word(prefix.to_owned()));
        } else if !prefix.is_empty() {
            entries.push(Entry::Prefix(prefix.to_owned()));
        } else {
            let literal = pattern.glob.required_literal();
            // One- and two-byte literals (`/`, ` -`) occur in nearly every command:
            // searching for them costs more than just testing the rule.
            if literal.len() < MIN_LITERAL {
                return None;
            }
            entries.push(Entry::Literal(literal.to_owned()));
        }
    }
    Some(entries)
}

/// The literal automaton copied into one flat table: a step is a class lookup and a
/// transition lookup, and match states are the highest-numbered, so "is any lane in a
/// match state" is one comparison. Same instruction count as stepping aho-corasick's DFA
/// through its `Automaton` methods, but a shorter dependency chain per byte: the 100 KiB
/// linker line's evaluation went from ~187 to ~170 µs.
#[derive(Debug, Clone)]
pub(super) struct Scanner {
    /// Equivalence class of each byte: bytes no literal tells apart share one.
    pub(super) classes: [u8; 256],
    /// `trans[state + class]`: states are numbered premultiplied by the class count.
    pub(super) trans: Vec<u32>,
    pub(super) start: u32,
    /// States from this one on are match states…
    pub(super) first_match: u32,
    /// …and these are their literals, in state order.
    pub(super) matches: Vec<Vec<u32>>,
    pub(super) stride: usize,
    /// Length of the longest literal.
    pub(super) longest: usize,
}

impl Scanner {
    /// Copies the states of `dfa`, built from `literals`, reachable from its unanchored
    /// start state; `None` if the automaton is too large to number in `u32`.
    pub(super) fn new(dfa: &aho_corasick::dfa::DFA, literals: &[String]) -> Option<Scanner> {
        use aho_corasick::Anchored::No;
        use aho_corasick::automaton::{Automaton, StateID};

        const UNSEEN: u32 = u32::MAX;
        // Each byte that occurs in a literal is a class of its own; all other bytes act
        // alike (from every state they lead where the start state does: back to it).
        let mut classes = [0u8; 256];
        let mut representatives: Vec<u8> = vec![0];
        for literal in literals {
            for &byte in literal.as_bytes() {
                if classes[usize::from(byte)] == 0 {
                    classes[usize::from(byte)] = u8::try_from(representatives.len()).ok()?;
                    representatives.push(byte);
                }
            }
        }
        if let Some(other) = (0..=255u8).find(|&b| classes[usize::from(b)] == 0) {
            representatives[0] = other;
        }
        let stride = representatives.len();
        let start = dfa.start_state(No).ok()?;
        // Reached states in discovery order, their index by the automaton's (dense) id,
        // and `next[n * stride + class]`: the index of the next state.
        let mut states = vec![start];
        let mut index: Vec<u32> = vec![UNSEEN; start.as_usize() + 1];
        *index.get_mut(start.as_usize())? = 0;
        let mut next: Vec<u32> = Vec::new();
        let mut n = 0;
        while let Some(&state) = states.get(n) {
            for &byte in &representatives {
                let to: StateID = dfa.next_state(No, state, byte);
                if to.as_usize() >= index.len() {
                    index.resize(to.as_usize() + 1, UNSEEN);
                }
                let slot = index.get_mut(to.as_usize())?;
                if *slot == UNSEEN {
                    *slot = u32::try_from(states.len()).ok()?;
                    states.push(to);
                }
                next.push(*slot);
            }
            n += 1;
        }
        // Non-match states first, then match states.
        let is_match = |s: &StateID| dfa.is_special(*s) && dfa.is_match(*s);
        let order: Vec<usize> = (0..states.len())
            .filter(|&n| !states.get(n).is_some_and(is_match))
            .chain((0..states.len()).filter(|&n| states.get(n).is_some_and(is_match)))
            .collect();
        let mut renumbered = vec![0u32; states.len()];
        for (k, &n) in order.iter().enumerate() {
            *renumbered.get_mut(n)? = u32::try_from(k.checked_mul(stride)?).ok()?;
        }
        let mut trans = Vec::with_capacity(order.len() * stride);
        let mut matches = Vec::new();
        for &n in &order {
            for &to in next.get(n * stride..(n + 1) * stride)? {
                trans.push(*renumbered.get(to as usize)?);
            }
            let state = *states.get(n)?;
            if is_match(&state) {
                matches.push(
                    (0..dfa.match_len(state))
                        .map(|k| dfa.match_pattern(state, k).as_u32())
                        .collect(),
                );
            }
        }
        let first_match = (order.len() - matches.len()) * stride;
        Some(Scanner {
            classes,
            trans,
            start: *renumbered.first()?,
            first_match: u32::try_from(first_match).ok()?,
            matches,
            stride,
            longest: dfa.max_pattern_len(),
        })
    }

    pub(super) fn next(&self, state: u32, byte: u8) -> u32 {
        let class = usize::from(self.classes[usize::from(byte)]);
        // In bounds: every state is premultiplied by `stride` and `class < stride`. A
        // fallback value here would sit on the walk's dependency chain.
        self.trans[state as usize + class]
    }

    pub(super) fn is_match(&self, state: u32) -> bool {
        state >= self.first_match
    }

    /// The literals that end where `state` is reached.
    pub(super) fn matches(&self, state: u32) -> &[u32] {
        if !self.is_match(state) {
            return &[];
        }
        let k = (state - self.first_match) as usize / self.stride.max(1);
        self.matches.get(k).map_or(&[][..], Vec::as_slice)
    }
}

/// Parts a long subject's literal scan is cut into (see [`RuleIndex::scan_literals`])…
pub(super) const LANES: usize = 4;
/// …when each part is at least this long.
pub(super) const LANE_MIN: usize = 256;

/// Whether two scopes are written identically (then they cover the same calls).
pub(super) fn same_scope(a: &Scope, b: &Scope) -> bool {
    let same = |x: &[crate::model::Pattern], y: &[crate::model::Pattern]| {
        x.len() == y.len()
            && x.iter()
                .zip(y)
                .all(|(p, q)| p.glob.as_str() == q.glob.as_str())
    };
    same(&a.agent, &b.agent) && same(&a.tool, &b.tool) && same(&a.session, &b.session)
}
