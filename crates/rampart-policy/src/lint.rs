//! `rampart policy lint`: problems that load fine but are probably mistakes.
//!
//! Loading ([`crate::load`]) refuses what is malformed; lint points at what is well formed
//! but cannot do what its author meant: rules that can never apply, patterns an earlier
//! rule always takes first, `command_contains` words that also hit unrelated commands, and
//! files that disagree on `default_action`. Warnings never change evaluation.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::eval::PolicySet;
use crate::model::{Conditions, Origin, Pattern, Policy, Rule};

/// One finding, printed as `file:line: warning: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.origin, self.message)
    }
}

/// Words and command names that short `command_contains` needles hide inside, in order of
/// how good an example each makes. The first one containing a needle is quoted.
const COMMON_WORDS: &[&str] = &[
    "sync",
    "format",
    "add",
    "push",
    "https",
    "status",
    "start",
    "string",
    "print",
    "node",
    "code",
    "mode",
    "stop",
    "command",
    "execute",
    "review",
    "used",
    "sudo",
    "venv",
    "gzip",
    "unzip",
    "pnpm",
    "pipe",
    "sshd",
    "gawk",
    "only",
    "tools",
    "else",
    "false",
    "true",
    "install",
    "update",
    "upgrade",
    "delete",
    "remove",
    "create",
    "build",
    "test",
    "check",
    "commit",
    "merge",
    "rebase",
    "fetch",
    "pull",
    "clone",
    "branch",
    "checkout",
    "diff",
    "log",
    "show",
    "reset",
    "restore",
    "stash",
    "tag",
    "init",
    "config",
    "remote",
    "origin",
    "main",
    "master",
    "develop",
    "release",
    "deploy",
    "docker",
    "compose",
    "kubectl",
    "helm",
    "terraform",
    "cargo",
    "rustc",
    "rustup",
    "python",
    "python3",
    "pytest",
    "npx",
    "yarn",
    "make",
    "cmake",
    "ninja",
    "gradle",
    "maven",
    "java",
    "javac",
    "go",
    "gofmt",
    "echo",
    "printf",
    "grep",
    "egrep",
    "find",
    "xargs",
    "sort",
    "uniq",
    "head",
    "tail",
    "less",
    "more",
    "touch",
    "mkdir",
    "rmdir",
    "chmod",
    "chown",
    "chgrp",
    "ln",
    "stat",
    "file",
    "which",
    "whereis",
    "whoami",
    "hostname",
    "uname",
    "date",
    "time",
    "sleep",
    "watch",
    "kill",
    "pkill",
    "killall",
    "nohup",
    "screen",
    "tmux",
    "ssh",
    "scp",
    "sftp",
    "rsync",
    "curl",
    "wget",
    "ping",
    "dig",
    "nslookup",
    "netstat",
    "ss",
    "ifconfig",
    "route",
    "iptables",
    "systemctl",
    "journalctl",
    "service",
    "cron",
    "crontab",
    "mount",
    "umount",
    "fdisk",
    "parted",
    "lsblk",
    "blkid",
    "free",
    "uptime",
    "htop",
    "top",
    "ps",
    "pgrep",
    "lsof",
    "strace",
    "ltrace",
    "gdb",
    "valgrind",
    "perf",
    "tar",
    "zip",
    "bzip2",
    "xz",
    "zstd",
    "openssl",
    "gpg",
    "base64",
    "md5sum",
    "sha256sum",
    "jq",
    "yq",
    "sed",
    "awk",
    "cut",
    "paste",
    "join",
    "split",
    "tr",
    "wc",
    "tee",
    "nl",
    "column",
    "bash",
    "zsh",
    "fish",
    "source",
    "export",
    "unset",
    "alias",
    "history",
    "clear",
    "term",
    "xterm",
    "perform",
    "alarm",
    "firmware",
    "confirm",
    "normal",
    "function",
    "func",
    "fsync",
    "once",
    "since",
    "instance",
    "license",
    "balance",
    "announce",
    "reference",
    "concat",
    "locate",
    "category",
    "adapt",
    "capture",
    "script",
    "description",
    "transform",
    "platform",
    "inform",
    "storm",
    "warm",
    "arm",
    "charm",
    "farm",
    "harm",
    "worm",
    "permission",
    "terminal",
    "determine",
    "deprecated",
    "modern",
    "prod",
    "staging",
    "server",
    "client",
    "cache",
    "backup",
    "archive",
    "download",
    "upload",
    "request",
    "response",
    "result",
    "issue",
    "tissue",
    "pdf",
    "abc",
    "module",
    "schedule",
    "include",
    "exclude",
    "cdn",
    "println",
    "video",
    "side",
    "pid",
    "trace",
    "desktop",
    "manage",
    "whole",
    "shell",
    "public",
    "private",
    "secret",
    "token",
    "password",
    "encrypt",
    "decrypt",
    "connect",
    "disconnect",
    "socket",
    "network",
    "account",
    "scan",
    "cancel",
    "channel",
    "signal",
    "final",
    "global",
    "local",
];

/// Lints a merged policy set. Warnings come sorted by file and line.
pub fn lint(set: &PolicySet) -> Vec<Warning> {
    let mut out = Vec::new();
    for policy in set.policies() {
        lint_policy(policy, &mut out);
    }
    lint_default_actions(set, &mut out);
    out.sort_by(|a, b| {
        (a.origin.file.as_path(), a.origin.line).cmp(&(b.origin.file.as_path(), b.origin.line))
    });
    out
}

fn warn(out: &mut Vec<Warning>, origin: &Origin, message: String) {
    out.push(Warning {
        origin: origin.clone(),
        message,
    });
}

fn lint_policy(policy: &Policy, out: &mut Vec<Warning>) {
    if policy.rules.is_empty() {
        warn(
            out,
            &policy.origin,
            format!(
                "policy `{}` has no rules, so it never decides anything",
                policy.name
            ),
        );
    }
    let scope = &policy.scope;
    for (key, patterns, what) in [
        ("agent", &scope.agent, "an agent"),
        ("tool", &scope.tool, "a tool"),
        ("session", &scope.session, "a session"),
    ] {
        for pattern in patterns.iter().filter(|p| p.glob.as_str().is_empty()) {
            warn(
                out,
                &pattern.origin,
                format!("empty `{key}` pattern in `match` only matches calls without {what}"),
            );
        }
    }

    // Default rules are tried after all others, so a catch-all anywhere hides them.
    let catch_all = policy
        .rules
        .iter()
        .find(|r| !r.is_default && matches_every_command(&r.when));
    let mut first_default: Option<&Rule> = None;
    for (i, rule) in policy.rules.iter().enumerate() {
        if rule.is_default {
            if let Some(first) = first_default {
                warn(
                    out,
                    &rule.origin,
                    format!(
                        "`default: true` rule never applies: only the first one of a policy \
                         does ({})",
                        first.origin
                    ),
                );
            } else if let Some(all) = catch_all {
                warn(
                    out,
                    &rule.origin,
                    format!(
                        "`default: true` rule never applies: the rule at {} matches every \
                         command",
                        all.origin
                    ),
                );
            }
            first_default.get_or_insert(rule);
            continue;
        }
        let earlier = &policy.rules[..i];
        if let Some(all) = earlier
            .iter()
            .find(|r| !r.is_default && matches_every_command(&r.when))
        {
            warn(
                out,
                &rule.origin,
                format!(
                    "rule never applies: the {} rule at {} before it matches every command",
                    all.action, all.origin
                ),
            );
            continue;
        }
        lint_conditions(rule, out);
        lint_shadowed(rule, earlier, out);
    }
}

/// True when a (non-default) rule with these conditions matches every call.
fn matches_every_command(when: &Conditions) -> bool {
    let all = |patterns: &[Pattern]| {
        patterns.is_empty() || patterns.iter().any(|p| p.glob.matches_everything())
    };
    when.command_contains.is_empty()
        && when.command_not_matches.is_empty()
        && when.path_matches.is_empty()
        && when.target_matches.is_empty()
        && when.target_not_matches.is_empty()
        && all(&when.exe_matches)
        && all(&when.command_matches)
        && all(&when.session_matches)
}

/// Conditions that contradict themselves, empty patterns and too-short needles.
fn lint_conditions(rule: &Rule, out: &mut Vec<Warning>) {
    let when = &rule.when;
    if let Some(every) = when
        .command_not_matches
        .iter()
        .find(|p| p.glob.matches_everything())
    {
        warn(
            out,
            &every.origin,
            format!(
                "rule never matches: `command_not_matches: \"{}\"` excludes every command",
                every.glob
            ),
        );
    } else if !when.command_matches.is_empty()
        && when.command_matches.iter().all(|m| {
            when.command_not_matches
                .iter()
                .any(|n| n.glob.as_str() == m.glob.as_str())
        })
    {
        warn(
            out,
            &rule.origin,
            "rule never matches: every `command_matches` pattern is also in \
             `command_not_matches`"
                .to_owned(),
        );
    }
    for pattern in when
        .command_matches
        .iter()
        .filter(|p| p.glob.as_str().is_empty())
    {
        warn(
            out,
            &pattern.origin,
            "empty `command_matches` pattern only matches an empty command".to_owned(),
        );
    }
    for needle in &when.command_contains {
        let text = needle.text.as_str();
        if text.chars().count() > 3 || text.contains(char::is_whitespace) {
            continue;
        }
        if let Some(word) = COMMON_WORDS
            .iter()
            .find(|w| w.len() > text.len() && w.contains(text))
        {
            warn(
                out,
                &needle.origin,
                format!(
                    "`command_contains: {text}` also matches inside other words, such as \
                     `{word}`; to match the command, use `command_matches: [\"{text} *\"]`"
                ),
            );
        }
    }
}

/// Patterns of `rule` that an earlier rule with the very same pattern, and no other
/// condition, always takes first.
fn lint_shadowed(rule: &Rule, earlier: &[Rule], out: &mut Vec<Warning>) {
    for pattern in &rule.when.command_matches {
        let first = earlier.iter().find(|r| {
            !r.is_default
                && only_command_matches(&r.when)
                && r.when
                    .command_matches
                    .iter()
                    .any(|p| p.glob.as_str() == pattern.glob.as_str())
        });
        if let Some(first) = first {
            warn(
                out,
                &pattern.origin,
                format!(
                    "`{}` never reaches this {} rule: the {} rule at {} matches it first",
                    pattern.glob, rule.action, first.action, first.origin
                ),
            );
        }
    }
}

fn only_command_matches(when: &Conditions) -> bool {
    when.command_contains.is_empty()
        && when.command_not_matches.is_empty()
        && when.session_matches.is_empty()
        && when.path_matches.is_empty()
        && when.target_matches.is_empty()
        && when.target_not_matches.is_empty()
}

/// Files that set a `default_action` other than the strictest one, which is what applies.
fn lint_default_actions(set: &PolicySet, out: &mut Vec<Warning>) {
    let effective = set.default_action();
    let Some(strictest) = set
        .files()
        .iter()
        .find(|f| f.default_action == Some(effective))
    else {
        return;
    };
    for file in set.files() {
        let Some(action) = file.default_action else {
            continue;
        };
        if action == effective {
            continue;
        }
        let origin = Origin {
            file: Arc::new(PathBuf::from(&file.path)),
            line: 1,
        };
        warn(
            out,
            &origin,
            format!(
                "`default_action: {action}` is overridden: {} sets `default_action: \
                 {effective}`, and the strictest default applies to every file",
                strictest.path.display()
            ),
        );
    }
}

#[cfg(test)]
#[path = "lint_tests.rs"]
mod tests;
