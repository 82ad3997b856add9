//! The decision matrix: what the outcome of one policy check means for the program that
//! is about to start.
//!
//! Fail closed on everything but "nobody answered". A server that answered with anything
//! but a well-formed allow — a deny, an `ask` that was not approved, a 4xx or 5xx, a
//! malformed, cut or oversized reply — refuses the program in enforce mode. So does a
//! check that could not even be built (an unusable URL, a limit hit). Fail-open exists for
//! one situation only: no policy server answered at all (connection refused, nothing
//! listening, no answer in time), and even then it is never silent: the caller warns and
//! counts ([`Permit::RunUnchecked`]). With `protect` (the agent cannot have stopped the
//! server, so silence is suspicious) even that refuses.

use crate::values::Mode;

/// What one check came to, before mode and fail-open apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// A well-formed answer (HTTP 200 with a boolean `allowed`).
    Answer { allowed: bool },
    /// The server answered with this HTTP status instead of a decision.
    Status(u16),
    /// Something answered, but not with a readable decision (bad JSON, cut mid-answer,
    /// missing `allowed`, a status line that is not HTTP).
    Malformed,
    /// The answer was larger than a decision can be.
    Oversized,
    /// Nobody answered: connection refused, no listener, no answer in time.
    NoAnswer,
    /// The check could not be made: unusable URL, a limit of the request was hit.
    Unusable,
}

/// What happens to the program.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Permit {
    /// It runs, checked (or mode `disabled`, or monitor mode's verdict).
    Run,
    /// It is refused: `EPERM` and one line saying why.
    Refuse,
    /// It runs although nobody decided: the caller must say so (once per process on
    /// stderr) and count it for the audit trail.
    RunUnchecked,
}

/// The one matrix. `protect`: the agent runs where it cannot reach the server, so an
/// unreachable server refuses whatever `fail_open` says.
pub fn permit(outcome: Outcome, mode: Mode, fail_open: bool, protect: bool) -> Permit {
    match (mode, outcome) {
        (Mode::Disabled, _) => Permit::Run,
        (_, Outcome::Answer { allowed: true }) => Permit::Run,
        // Monitor never blocks; a monitor-mode answer was audited by the server.
        (Mode::Monitor, Outcome::Answer { .. }) => Permit::Run,
        (Mode::Monitor, _) => Permit::RunUnchecked,
        (Mode::Enforce, Outcome::NoAnswer) if fail_open && !protect => Permit::RunUnchecked,
        (Mode::Enforce, _) => Permit::Refuse,
    }
}

impl Outcome {
    /// Why the check did not produce a decision, for the one stderr line (`None` for an
    /// answer: the server's message says why).
    pub const fn reason(self) -> Option<&'static str> {
        match self {
            Outcome::Answer { .. } => None,
            Outcome::Status(401 | 403) => Some("the policy server refused our token"),
            Outcome::Status(500..=599) => Some("policy server error"),
            Outcome::Status(_) => Some("unexpected answer from the policy server"),
            Outcome::Malformed => Some("malformed answer from the policy server"),
            Outcome::Oversized => Some("oversized answer from the policy server"),
            Outcome::NoAnswer => Some("no policy server answered"),
            Outcome::Unusable => Some("the policy check could not be made"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Outcome; 9] = [
        Outcome::Answer { allowed: true },
        Outcome::Answer { allowed: false },
        Outcome::Status(401),
        Outcome::Status(413),
        Outcome::Status(503),
        Outcome::Malformed,
        Outcome::Oversized,
        Outcome::NoAnswer,
        Outcome::Unusable,
    ];

    #[test]
    fn enforce_fails_open_only_when_nobody_answered() {
        for o in ALL {
            let want = match o {
                Outcome::Answer { allowed: true } => Permit::Run,
                Outcome::NoAnswer => Permit::RunUnchecked,
                _ => Permit::Refuse,
            };
            assert_eq!(permit(o, Mode::Enforce, true, false), want, "{o:?}");
            let closed = if o == (Outcome::Answer { allowed: true }) {
                Permit::Run
            } else {
                Permit::Refuse
            };
            assert_eq!(permit(o, Mode::Enforce, false, false), closed, "{o:?}");
            assert_eq!(permit(o, Mode::Enforce, true, true), closed, "{o:?}");
        }
    }

    #[test]
    fn monitor_never_blocks_and_disabled_never_asks() {
        for o in ALL {
            assert_ne!(permit(o, Mode::Monitor, false, true), Permit::Refuse);
            assert_eq!(permit(o, Mode::Disabled, false, true), Permit::Run);
        }
        assert_eq!(
            permit(Outcome::NoAnswer, Mode::Monitor, false, false),
            Permit::RunUnchecked
        );
    }
}
