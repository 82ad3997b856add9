//! One policy check: build the preflight request for a command, send it, and turn the
//! answer (or the failure to get one) into allow or deny by the fail-open rules.

use crate::config::{self, Config, Mode};
use crate::http::{self, Fail, RESPONSE_MAX};
use crate::json;
use crate::path::{self, PATH_MAX};
use crate::sink::{BufWriter, JsonEsc, Sink, put_json_str, put_shell_word};
use crate::sys::{self, CArray};

/// What is about to be started.
pub struct Call<'a> {
    /// The entry point's name as the program called it (`execve`, `system`, ...).
    pub via: &'a [u8],
    /// The program that will run (resolved, absolute when we could make it so).
    pub exe: &'a [u8],
    /// The argument vector; ignored for shell calls.
    pub argv: CArray,
    /// `system`/`popen`: the shell command string (argv is then `sh -c <cmd>`).
    pub shell: Option<&'a [u8]>,
    /// Whether a fresh connection may be cached (false on the exec path, see `http`).
    pub may_cache: bool,
}

fn basename(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => p.get(i + 1..).unwrap_or(&[]),
        None => p,
    }
}

impl Call<'_> {
    fn for_each_arg(&self, mut f: impl FnMut(usize, &[u8])) {
        match self.shell {
            Some(cmd) => {
                f(0, b"sh");
                f(1, b"-c");
                f(2, cmd);
            }
            None => {
                for i in 0..self.argv.len() {
                    f(i, self.argv.get(i));
                }
            }
        }
    }

    /// The command string sent as `params.command`: the shell string itself, or argv
    /// joined with spaces and quoted where needed, argv[0] replaced by the program path
    /// when it is neither that path nor its basename.
    pub fn put_command(&self, out: &mut dyn Sink) {
        if let Some(cmd) = self.shell {
            return out.put(cmd);
        }
        let n = self.argv.len();
        if n == 0 {
            return put_shell_word(out, self.exe);
        }
        for i in 0..n {
            let mut w = self.argv.get(i);
            if i == 0 {
                if w != self.exe && w != basename(self.exe) {
                    w = self.exe;
                }
            } else {
                out.put(b" ");
            }
            put_shell_word(out, w);
        }
    }

    /// The text of the `Intercepted` debug line: the program path and its arguments.
    fn put_display(&self, out: &mut dyn Sink) {
        if let Some(cmd) = self.shell {
            return out.put(cmd);
        }
        put_shell_word(out, self.exe);
        for i in 1..self.argv.len() {
            out.put(b" ");
            put_shell_word(out, self.argv.get(i));
        }
    }
}

fn put_num(out: &mut dyn Sink, n: i64) {
    let mut b = [0u8; 21];
    out.put(sys::fmt_i64(n, &mut b));
}

fn put_str(out: &mut dyn Sink, s: &[u8]) {
    out.put(b"\"");
    put_json_str(out, s);
    out.put(b"\"");
}

struct Body<'a> {
    cfg: &'a Config,
    call: &'a Call<'a>,
    cwd: &'a [u8],
    pid: i32,
    ppid: i32,
    enforce: bool,
    wait_ms: u64,
}

impl Body<'_> {
    fn write(&self, out: &mut dyn Sink) {
        let cfg = self.cfg;
        out.put(b"{\"agent\":");
        put_str(out, cfg.s(cfg.agent));
        out.put(b",\"session\":");
        put_str(out, cfg.session());
        out.put(b",\"params\":{\"command\":\"");
        self.call.put_command(&mut JsonEsc(out));
        out.put(b"\"},\"enforce\":");
        out.put(if self.enforce { b"true" } else { b"false" });
        out.put(b",\"argv\":[");
        self.call.for_each_arg(|i, a| {
            if i > 0 {
                out.put(b",");
            }
            put_str(out, a);
        });
        out.put(b"],\"exe\":");
        put_str(out, self.call.exe);
        out.put(b",\"cwd\":");
        put_str(out, self.cwd);
        out.put(b",\"pid\":");
        put_num(out, i64::from(self.pid));
        out.put(b",\"ppid\":");
        put_num(out, i64::from(self.ppid));
        out.put(b",\"via\":");
        put_str(out, self.call.via);
        if self.wait_ms > 0 {
            out.put(b",\"wait_ms\":");
            put_num(out, self.wait_ms.min(i64::MAX as u64) as i64);
        }
        out.put(b"}");
    }
}

/// Streams a stderr line whose middle part is produced by `mid`.
fn stderr_line(prefix: &[u8], mid: &dyn Fn(&mut dyn Sink), suffix: &[u8]) {
    let mut buf = [0u8; 512];
    let mut w = BufWriter::new(&mut buf, |c: &[u8]| {
        sys::write_all(2, c);
        true
    });
    w.put(prefix);
    mid(&mut w);
    w.put(suffix);
    w.put(b"\n");
    w.flush();
}

fn deny_line(reason: &dyn Fn(&mut dyn Sink)) {
    stderr_line(b"rampart: [ERROR] Policy denied: ", reason, b"");
}

/// Asks the policy server about `call`. Returns true when the program may start.
/// Prints the debug lines and, on a denial, the one `[ERROR]` line.
pub fn check(call: &Call) -> bool {
    let cfg = config::get();
    if cfg.debug {
        stderr_line(
            b"rampart: [DEBUG] Intercepted ",
            &|s: &mut dyn Sink| {
                s.put(call.via);
                s.put(b": ");
                call.put_display(s);
            },
            b"",
        );
    }
    if cfg.mode == Mode::Disabled {
        return true;
    }
    if cfg.debug {
        config::debug(&[b"Policy check: POST /v1/preflight/exec"]);
    }
    let enforce = cfg.mode == Mode::Enforce;
    let wait_ms = if enforce { cfg.ask_timeout_ms } else { 0 };
    let mut cwd_buf = [0u8; PATH_MAX];
    let cwd = path::getcwd(&mut cwd_buf).unwrap_or(&[]);
    let pid = sys::getpid();
    let body = Body {
        cfg,
        call,
        cwd,
        pid,
        ppid: sys::getppid(),
        enforce,
        wait_ms,
    };
    let mut buf = [0u8; RESPONSE_MAX];
    let mut on_wait = || {
        if wait_ms > 0 {
            stderr_line(
                b"rampart: [WAIT] Waiting for approval of: ",
                &|s: &mut dyn Sink| call.put_command(s),
                b" -- see 'rampart pending', then 'rampart approve <id>' or 'rampart deny <id>', or the dashboard",
            );
        }
    };
    let result = http::post(
        cfg,
        pid,
        b"/v1/preflight/exec",
        &|s: &mut dyn Sink| body.write(s),
        wait_ms,
        call.may_cache,
        &mut buf,
        &mut on_wait,
    );
    decide(cfg, classify(result, &buf))
}

/// What an answer (or the failure to get one) means, before mode and fail-open apply.
fn classify(result: Result<http::Response, Fail>, buf: &[u8]) -> Verdict<'_> {
    match result {
        Ok(resp) => {
            let body = buf
                .get(resp.body_start..resp.body_start.saturating_add(resp.body_len))
                .unwrap_or(&[]);
            match resp.status {
                200 => match json::scan(body) {
                    Some(json::Answer {
                        allowed: Some(allowed),
                        decision,
                        message,
                        ..
                    }) => Verdict::Answer {
                        allowed,
                        decision,
                        message,
                    },
                    _ => Verdict::Hard(b"malformed answer from the policy server", 0),
                },
                401 | 403 => Verdict::Hard(b"the policy server refused our token", resp.status),
                500..=599 => Verdict::Soft(b"policy server error", resp.status),
                s => Verdict::Hard(b"unexpected answer from the policy server", s),
            }
        }
        Err(f @ (Fail::Malformed | Fail::Oversized)) => Verdict::Hard(f.describe(), 0),
        Err(Fail::Unusable(why)) => Verdict::Unusable(why),
        Err(f) => Verdict::Soft(f.describe(), 0),
    }
}

/// The fail-open matrix: whether the program may start.
fn permits(v: &Verdict, enforce: bool, fail_open: bool) -> bool {
    match v {
        Verdict::Answer { allowed, .. } => *allowed || !enforce,
        Verdict::Hard(..) => !enforce,
        Verdict::Soft(..) | Verdict::Unusable(_) => fail_open || !enforce,
    }
}

/// The debug lines for a repeat of a command this process was just denied (`repeat`):
/// no request, and no second `[ERROR]` line for what the user already saw refused.
pub fn repeat_denied(call: &Call) {
    if config::get().debug {
        stderr_line(
            b"rampart: [DEBUG] Intercepted ",
            &|s: &mut dyn Sink| {
                s.put(call.via);
                s.put(b": ");
                call.put_display(s);
            },
            b"",
        );
        config::debug(&[b"Decision: deny (the same program and arguments were just denied)"]);
    }
}

enum Verdict<'a> {
    Answer {
        allowed: bool,
        decision: Option<&'a [u8]>,
        message: Option<&'a [u8]>,
    },
    /// Denies in enforce mode whatever fail-open says.
    Hard(&'static [u8], u16),
    /// Transport trouble: fail-open decides.
    Soft(&'static [u8], u16),
    /// `RAMPART_URL` refused, nothing was sent: fail-open decides.
    Unusable(&'static [u8]),
}

fn put_reason(s: &mut dyn Sink, what: &[u8], status: u16) {
    s.put(what);
    if status != 0 {
        s.put(b" (HTTP ");
        put_num(s, i64::from(status));
        s.put(b")");
    }
}

/// `RAMPART_URL <url> is <why>`.
fn put_unusable(s: &mut dyn Sink, cfg: &Config, why: &[u8]) {
    s.put(b"RAMPART_URL ");
    s.put(cfg.s(cfg.url));
    s.put(b" is ");
    s.put(why);
}

/// The server could not be asked (`Soft`) or not even tried (`Unusable`): fail-open
/// decides. The debug line gives the reason in brackets; a refusal gives the reason,
/// then `where_` (what was tried, if anything), then "and fail-open is off".
fn fail_open_decides(
    cfg: &Config,
    allow: bool,
    reason: &dyn Fn(&mut dyn Sink),
    where_: &dyn Fn(&mut dyn Sink),
) -> bool {
    if cfg.debug {
        stderr_line(
            b"rampart: [DEBUG] Decision: ",
            &|s| {
                s.put(if allow {
                    b"allow (fail-open: "
                } else {
                    b"deny (fail-closed: "
                });
                reason(s);
                s.put(b")");
            },
            b"",
        );
    }
    if allow {
        return true;
    }
    deny_line(&|s| {
        reason(s);
        where_(s);
        s.put(b" and fail-open is off");
    });
    false
}

fn decide(cfg: &Config, v: Verdict) -> bool {
    let enforce = cfg.mode == Mode::Enforce;
    let allow = permits(&v, enforce, cfg.fail_open);
    match v {
        Verdict::Answer {
            allowed,
            decision,
            message,
        } => {
            let decision = decision.unwrap_or(if allowed { b"allow" } else { b"deny" });
            if cfg.debug {
                stderr_line(
                    b"rampart: [DEBUG] Decision: ",
                    &|s| json::put_unescaped(s, decision),
                    b"",
                );
            }
            if allow {
                return true;
            }
            deny_line(
                &|s: &mut dyn Sink| match message.filter(|m| !m.is_empty()) {
                    Some(m) => json::put_unescaped(s, m),
                    None => {
                        s.put(b"decision ");
                        json::put_unescaped(s, decision);
                    }
                },
            );
            false
        }
        Verdict::Hard(what, status) => {
            if cfg.debug {
                stderr_line(
                    b"rampart: [DEBUG] Decision: ",
                    &|s| {
                        s.put(if enforce {
                            b"deny ("
                        } else {
                            b"allow (monitor; "
                        });
                        put_reason(s, what, status);
                        s.put(b")");
                    },
                    b"",
                );
            }
            if allow {
                return true;
            }
            deny_line(&|s| put_reason(s, what, status));
            false
        }
        Verdict::Soft(what, status) => {
            fail_open_decides(cfg, allow, &|s| put_reason(s, what, status), &|s| {
                s.put(b" at ");
                s.put(cfg.s(cfg.url));
            })
        }
        Verdict::Unusable(why) => {
            fail_open_decides(cfg, allow, &|s| put_unusable(s, cfg, why), &|_| {})
        }
    }
}

/// Property tests (proptest): hostile input never panics or hangs, well-formed input is
/// read exactly.
#[cfg(test)]
#[path = "props/check.rs"]
mod props;
