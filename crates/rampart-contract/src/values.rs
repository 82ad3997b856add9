//! How the `RAMPART_*` configuration values are read, their defaults, and the transport
//! timeouts. The library reads them from its environment, the launchers from flags that
//! they then hand down as the same variables: both go through these functions.

/// Default for `RAMPART_ASK_TIMEOUT`: how long an `ask` may hold a program.
pub const DEFAULT_ASK_TIMEOUT_MS: u64 = 120_000;
/// Connecting to the policy server: past this, nobody answered.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Waiting for an answer that is not a held ask: past this, nobody answered.
pub const ANSWER_TIMEOUT_MS: u64 = 2_000;
/// Default for `RAMPART_AGENT`.
pub const DEFAULT_AGENT: &str = "preload";
/// Largest answer to a check (status line, headers and body): a decision is small, so a
/// larger one is refused as oversized rather than read without end.
pub const ANSWER_MAX_BYTES: usize = 16 * 1024;

/// The server's enforcement mode as the client requests it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Enforce,
    Monitor,
    Disabled,
}

impl Mode {
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
            Mode::Disabled => "disabled",
        }
    }

    /// The exact names only (what the launchers accept as a flag).
    pub fn from_name(v: &[u8]) -> Option<Mode> {
        [Mode::Enforce, Mode::Monitor, Mode::Disabled]
            .into_iter()
            .find(|m| v.eq_ignore_ascii_case(m.name().as_bytes()))
    }
}

/// `RAMPART_MODE` as the library reads it: unknown values enforce, because a typo must
/// never switch protection off. The launchers refuse unknown values instead.
pub fn mode_or_enforce(v: &[u8]) -> Mode {
    Mode::from_name(v).unwrap_or(Mode::Enforce)
}

/// `false`, `0`, `no`, `off` (any case) are false.
pub fn is_false(v: &[u8]) -> bool {
    [&b"false"[..], b"0", b"no", b"off"]
        .iter()
        .any(|f| v.eq_ignore_ascii_case(f))
}

/// `RAMPART_FAIL_OPEN`: true unless set to a false value.
pub fn fail_open(v: Option<&[u8]>) -> bool {
    v.is_none_or(|v| !is_false(v))
}

/// `RAMPART_PROTECT`: on when set to anything but empty or a false value (`1`, `true`,
/// `yes`; empty, `false`, `0`, `no`, `off` leave it off). The one rule: the library
/// (silence then refuses every program whatever fail-open says, `verdict::permit`'s
/// `protect`) and the launchers (`rampart_protect::requested`: the namespaces) both
/// read it here, so `RAMPART_PROTECT=` cannot mean "on" to one and "off" to the other.
pub fn protect(v: Option<&[u8]>) -> bool {
    v.is_some_and(|v| !v.is_empty() && !is_false(v))
}

/// `RAMPART_DEBUG`: on when set to anything but empty or a false value.
pub fn debug(v: Option<&[u8]>) -> bool {
    v.is_some_and(|v| !v.is_empty() && !is_false(v))
}

/// `2m`, `30s`, `500ms`, `1h`, or a plain number of seconds. `0` turns waiting off.
pub fn duration_ms(v: &[u8]) -> Option<u64> {
    let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v.get(..digits)? {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let unit: u64 = match v.get(digits..)? {
        b"" | b"s" => 1000,
        b"ms" => 1,
        b"m" => 60_000,
        b"h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// `CI`: CI runners (GitHub Actions, GitLab CI, CircleCI, ...) set `CI=true`; there is no
/// person there to answer an `ask`. `true`/`1`/`yes` (any case) count.
pub fn ci(v: Option<&[u8]>) -> bool {
    v.is_some_and(|v| {
        [&b"true"[..], b"1", b"yes"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t))
    })
}

/// The ask timeout when none is given (no `--ask-timeout`, no `RAMPART_ASK_TIMEOUT`):
/// 0 in CI, so an `ask` is refused at once rather than holding the job for minutes.
pub fn default_ask_timeout_ms(ci: bool) -> u64 {
    if ci { 0 } else { DEFAULT_ASK_TIMEOUT_MS }
}

/// Why an `ask` was refused at once, completing the refusal line
/// `rampart: [ERROR] Policy denied: MESSAGE -- an ask, refused at once: WHY`.
pub fn no_person(ci: bool) -> &'static str {
    if ci {
        "no person to ask in CI (CI=true; --ask-timeout or RAMPART_ASK_TIMEOUT makes it wait)"
    } else {
        "no person to ask (the ask timeout is 0)"
    }
}

/// The text between the server's message and [`no_person`] in that refusal line.
pub const REFUSED_AT_ONCE: &str = " -- an ask, refused at once: ";

#[cfg(test)]
mod tests {
    #[test]
    fn protect_is_on_for_anything_but_empty_or_false() {
        assert!(super::protect(Some(b"1")) && super::protect(Some(b"yes")));
        assert!(super::protect(Some(b"anything")));
        for off in [&b""[..], b"0", b"false", b"NO", b"off"] {
            assert!(!super::protect(Some(off)), "{off:?}");
        }
        assert!(!super::protect(None));
    }

    #[test]
    fn ci_means_no_person_to_ask() {
        assert!(super::ci(Some(b"true")) && super::ci(Some(b"TRUE")) && super::ci(Some(b"1")));
        assert!(!super::ci(None) && !super::ci(Some(b"false")) && !super::ci(Some(b"")));
        assert_eq!(super::default_ask_timeout_ms(true), 0);
        assert_eq!(
            super::default_ask_timeout_ms(false),
            super::DEFAULT_ASK_TIMEOUT_MS
        );
    }

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms(b"2m"), Some(120_000));
        assert_eq!(duration_ms(b"30s"), Some(30_000));
        assert_eq!(duration_ms(b"500ms"), Some(500));
        assert_eq!(duration_ms(b"7"), Some(7000));
        assert_eq!(duration_ms(b"0"), Some(0));
        assert_eq!(duration_ms(b"x"), None);
        assert_eq!(duration_ms(b"5d"), None);
        assert_eq!(duration_ms(b"99999999999999999999"), None);
    }

    #[test]
    fn modes_and_flags() {
        assert_eq!(mode_or_enforce(b"monitor"), Mode::Monitor);
        assert_eq!(mode_or_enforce(b"DISABLED"), Mode::Disabled);
        assert_eq!(mode_or_enforce(b"typo"), Mode::Enforce);
        assert_eq!(Mode::from_name(b"typo"), None);
        assert!(fail_open(None));
        assert!(fail_open(Some(b"yes")));
        assert!(!fail_open(Some(b"OFF")));
        assert!(!protect(None));
        assert!(protect(Some(b"1")));
        assert!(protect(Some(b"true")));
        assert!(!protect(Some(b"false")));
        assert!(!protect(Some(b"0")));
        assert!(!debug(Some(b"")));
        assert!(debug(Some(b"1")));
        assert!(!debug(Some(b"0")));
    }
}
