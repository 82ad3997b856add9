//! What the supervisor hands to the caller's decision and what it gets back.

/// One exec, as read from the calling task. Strings that are not valid UTF-8 carry each
/// invalid byte as the character U+00XX (the preload library's escaping), never dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The calling thread (as seen from the supervisor's pid namespace).
    pub pid: u32,
    /// Its parent process, when `/proc` says.
    pub ppid: Option<u32>,
    /// `execve` or `execveat`.
    pub syscall: &'static str,
    /// The program: absolute when the task gave a relative path, `/proc/<pid>/fd/N`'s
    /// target for descriptor-based execs (`fexecve`, `execveat(AT_EMPTY_PATH)`).
    pub exe: String,
    pub argv: Vec<String>,
    /// The task's working directory.
    pub cwd: Option<String>,
}

/// The answer for one exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the syscall continue as the task issued it.
    Allow,
    /// Fail the syscall with `EPERM`; the reason is for the caller to report.
    Deny(String),
}

/// Decides execs. Called from many threads at once, one per pending exec.
pub trait Decider: Send + Sync {
    /// An exec whose path and arguments were read.
    fn decide(&self, exec: &ExecRequest) -> Verdict;

    /// An exec that could not be checked: the task's memory is unreadable (a non-dumpable
    /// process, Yama, a foreign ABI) or changed while it was being decided. `why` says which.
    /// Must not allow silently; enforcing callers deny.
    fn unchecked(&self, pid: u32, why: &str) -> Verdict;
}

/// Bytes as text: valid UTF-8 unchanged, every other byte as the character U+00XX.
pub fn text_from_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|&b| char::from(b)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::text_from_bytes;

    #[test]
    fn invalid_bytes_are_kept_one_char_each() {
        assert_eq!(text_from_bytes(b"caf\xc3\xa9"), "café");
        assert_eq!(text_from_bytes(b"a\xffb"), "a\u{ff}b");
        assert_eq!(text_from_bytes(b"\xc3"), "\u{c3}");
    }
}
