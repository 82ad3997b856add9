//! `system()`/`popen()` are checked as the shell string, and then the shell (a direct
//! child of the caller, in the same session) execs the command: for `system("ls -l")`,
//! `/bin/sh -c "ls -l"` execs `ls -l`. That exec is part of the first decision, not a new
//! one: it is audited linked to it (`part_of`), left out of the counts and the live feed.
//!
//! Nothing is skipped on the strength of this: the exec is still evaluated, and only an
//! allowed exec is linked. What an agent could forge (its pid, ppid, `via`) therefore
//! changes at most how an allowed exec is filed, never what runs. Each remembered shell
//! string links one exec: exactly the same command, within a minute, from the shell
//! itself (a shell that execs its last command: its parent is the caller) or from the
//! shell's child (dash forks even for one command: its grandparent is the caller, read
//! from `/proc/<ppid>/stat`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many remembered calls (the oldest go first).
const MAX: usize = 1024;
/// How long the shell has to exec the command.
const TTL: Duration = Duration::from_secs(60);

struct Entry {
    session: String,
    pid: i64,
    command: String,
    id: String,
    at: Instant,
}

#[derive(Default)]
pub struct Shells {
    entries: Mutex<VecDeque<Entry>>,
}

impl Shells {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An allowed `system()`/`popen()` call of `command` by `pid`, audited as `id`.
    pub fn remember(&self, session: &str, pid: i64, command: &str, id: &str) {
        let mut entries = self.lock();
        let now = Instant::now();
        entries.retain(|e| now.duration_since(e.at) < TTL);
        if entries.len() >= MAX {
            entries.pop_front();
        }
        entries.push_back(Entry {
            session: session.to_owned(),
            pid,
            command: command.to_owned(),
            id: id.to_owned(),
            at: now,
        });
    }

    /// The id of the call this allowed exec of `command` by a child of `ppid` is part of;
    /// used up by the first such exec.
    pub fn take(&self, session: &str, ppid: i64, command: &str) -> Option<String> {
        let mut entries = self.lock();
        if !entries.iter().any(|e| e.session == session) {
            return None;
        }
        let grandparent = parent_of(ppid);
        let now = Instant::now();
        let at = entries.iter().position(|e| {
            (e.pid == ppid || Some(e.pid) == grandparent)
                && e.session == session
                && e.command == command
                && now.duration_since(e.at) < TTL
        })?;
        entries.remove(at).map(|e| e.id)
    }
}

/// The parent of `pid` (`/proc/<pid>/stat`, the field after the command name).
fn parent_of(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_exec_of_exactly_the_command_from_a_child_of_the_caller() {
        let shells = Shells::default();
        shells.remember("s", 10, "ls -l", "A");
        assert_eq!(shells.take("s", 11, "ls -l"), None, "another parent");
        // A child of this process (the test's pid as ppid): its grandparent is ours.
        let me = i64::from(std::process::id());
        let parent = parent_of(me).unwrap();
        shells.remember("s", parent, "true", "B");
        assert_eq!(shells.take("s", me, "true"), Some("B".to_owned()));
        assert_eq!(shells.take("t", 10, "ls -l"), None, "another session");
        assert_eq!(shells.take("s", 10, "ls -la"), None, "another command");
        assert_eq!(shells.take("s", 10, "ls -l"), Some("A".to_owned()));
        assert_eq!(shells.take("s", 10, "ls -l"), None, "used up");
    }
}
