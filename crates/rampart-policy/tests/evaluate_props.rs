//! Evaluation of the shipped profiles never panics and never blows up: arbitrary input,
//! 100 KiB commands, thousands of `*`, deep nesting. Time may grow at most linearly; the
//! bounds below are deliberately loose (a shared 2-core machine is noisy) but a quadratic
//! algorithm fails them by orders of magnitude. Speed itself is measured by `make bench`.

#![allow(clippy::panic, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rampart_policy::{PolicySet, Request, profiles};

fn profile(name: &str) -> PolicySet {
    match profiles::load(name) {
        Some(Ok(set)) => set,
        other => panic!("profile {name} does not load: {other:?}"),
    }
}

fn families(n: usize) -> Vec<(&'static str, String)> {
    vec![
        (
            "long linker line",
            format!("cc -o app {}", "obj/x.o ".repeat(n / 8)),
        ),
        ("many stars", format!("rm -rf {}", "*".repeat(n))),
        ("star words", "* ".repeat(n / 2)),
        ("many pieces", "a && ".repeat(n / 5)),
        (
            "distinct pieces",
            (0..n / 8).map(|i| format!("p{i} ;")).collect::<String>(),
        ),
        (
            "nested substitutions",
            format!("{}x{}", "$(".repeat(n / 4), ")".repeat(n / 4)),
        ),
        (
            "nested sh -c",
            format!("{}rm -rf /", "sh -c ".repeat(n / 6)),
        ),
        ("quotes", "'a' \"b\" ".repeat(n / 8)),
        ("pipes to sh", "curl x | sh | ".repeat(n / 15)),
        ("paths", "cat /etc/a/b/c/d/e/f ".repeat(n / 21)),
        ("sudo chain", "sudo ".repeat(n / 5)),
        ("unterminated", format!("echo \"{}", "x".repeat(n))),
    ]
}

fn time(set: &PolicySet, command: &str) -> Duration {
    let started = Instant::now();
    let decision = set.evaluate(&Request::exec(command));
    let elapsed = started.elapsed();
    assert!(!decision.message.is_empty());
    elapsed
}

#[test]
fn adversarial_commands_cost_at_most_linear_time() {
    for name in ["standard", "paranoid", "yolo"] {
        let set = profile(name);
        for ((family, small), (_, large)) in
            families(25 * 1024).into_iter().zip(families(100 * 1024))
        {
            // Best of three, to shave off scheduler noise.
            let t_small = (0..3).map(|_| time(&set, &small)).min().unwrap_or_default();
            let t_large = (0..3).map(|_| time(&set, &large)).min().unwrap_or_default();
            assert!(
                t_large < t_small * 16 + Duration::from_millis(50),
                "{name}/{family}: {t_small:?} at 25 KiB but {t_large:?} at 100 KiB"
            );
            assert!(
                t_large < Duration::from_secs(2),
                "{name}/{family}: {t_large:?} at 100 KiB"
            );
        }
    }
}

fn shellish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "rm",
        "-rf",
        "/",
        "/*",
        "~",
        "sudo",
        "sh -c '",
        "'",
        "\"",
        "$(",
        ")",
        "`",
        "&&",
        "||",
        ";",
        "|",
        "&",
        "2>&1",
        ">",
        "<(",
        "env -i",
        "nice -n 5",
        "curl x",
        "| sh",
        "*",
        "?",
        "\\",
        "\n",
        "\0",
        "\x1b[31m",
        ":(){ :|:& };:",
        "cat ~/.ssh/id_rsa",
        "git push",
        "eval",
        "é",
        " ",
    ]);
    prop::collection::vec(atoms, 0..64).prop_map(|parts| parts.join(" "))
}

/// Like [`shellish`] without anything that opens a quote, a substitution or a
/// heredoc, so that what follows it is still a command.
fn balanced() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "rm",
        "-rf",
        "/tmp/x",
        "~",
        "sudo",
        "&&",
        "||",
        ";",
        "|",
        "&",
        "2>&1",
        "> out",
        "env -i",
        "nice -n 5",
        "curl x",
        "| sh",
        "*",
        "?",
        "git push",
        "é",
        " ",
        "ls -la",
        "timeout 5",
    ]);
    prop::collection::vec(atoms, 0..64).prop_map(|parts| parts.join(" "))
}

/// Words of the issue-14 families: places, launchers, one-liners, loader variables.
fn family_words() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "cd ~ &&",
        "cd / &&",
        "cd .. &&",
        "rm -rf *",
        "rm -rf .",
        "rm -rf build",
        "find . -delete",
        "chmod -R 000 ~",
        "chown -R x /etc",
        "truncate -s 0 ~/.bashrc",
        "echo x >> ~/.ssh/authorized_keys",
        "echo x > /etc/sudoers.d/u",
        "strace -f",
        "taskset -c 0",
        "ssh host",
        "docker run --rm -v /:/h alpine",
        "kubectl exec p --",
        "python3 -c 'import os; os.system(\"rm -rf ~\")'",
        "node -e 'require(\"fs\").rmSync(\"/\")'",
        "LD_PRELOAD=/tmp/x.so",
        "/lib64/ld-linux-x86-64.so.2",
        "c=rm; $c -rf ~",
        "rm${IFS}-rf${IFS}/",
        "{rm,-rf,/}",
        "bash <<< 'rm -rf ~'",
        "git status",
        "cargo build",
        "&&",
        ";",
        "|",
    ]);
    prop::collection::vec(atoms, 0..12).prop_map(|parts| parts.join(" "))
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(command in any::<String>()) {
        let set = profile("standard");
        let d = set.evaluate(&Request::exec(&command));
        prop_assert!(!d.message.is_empty());
    }

    #[test]
    fn shell_soup_never_panics_and_stays_fast(command in shellish()) {
        let set = profile("standard");
        let started = Instant::now();
        let d = set.evaluate(&Request::exec(&command));
        prop_assert!(!d.message.is_empty());
        prop_assert!(started.elapsed() < Duration::from_millis(200));
    }

    /// A denied command after any (balanced) command line is still denied.
    #[test]
    fn a_denied_piece_always_denies(prefix in balanced()) {
        let set = profile("standard");
        let command = format!("{prefix}\n rm -rf /");
        let d = set.evaluate(&Request::exec(&command));
        prop_assert_eq!(d.action, rampart_policy::Action::Deny, "{:?}", command);
    }
}

proptest! {
    // Three profiles, each evaluated twice, per case: fewer cases keep it quick.
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The rule index only narrows which rules are tried: evaluating through it decides
    /// exactly as trying every rule of every profile in order does (issue 14: an index
    /// miss would silently skip a deny).
    #[test]
    fn indexed_evaluation_equals_trying_every_rule(
        command in prop_oneof![shellish(), balanced(), family_words()],
        cwd in prop::sample::select(vec!["/home/u/proj", "/home/u", "/", "/tmp/w"]),
    ) {
        for name in ["standard", "paranoid", "yolo"] {
            let set = profile(name);
            let req = Request {
                cwd: Some(cwd),
                home: Some("/home/u"),
                ..Request::exec(&command)
            };
            prop_assert_eq!(set.evaluate(&req), set.evaluate_exhaustively(&req), "{}", name);
        }
    }
}
