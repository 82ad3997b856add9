//! One policy check: build the preflight request for a command, send it, and turn the
//! answer (or the failure to get one) into run, refuse or run-unchecked by the contract's
//! decision matrix (`rampart_contract::verdict::permit`): fail closed on everything but
//! "nobody answered".

use rampart_contract::values;
pub use rampart_contract::verdict::Permit;
use rampart_contract::verdict::{Outcome, permit};

use crate::config::{self, Config, Mode};
use crate::http::{self, Fail, RESPONSE_MAX};
use crate::json;
use crate::path::{self, PATH_MAX};
use crate::sink::{BufWriter, JsonEsc, Printable, Sink, SliceWriter, put_json_str, put_shell_word};
use crate::sys::{self, CArray};
use crate::unchecked;

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
    /// Programs this process ran unchecked since it last reached the server.
    ran_unchecked: u64,
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
        if self.ran_unchecked > 0 {
            out.put(b",\"ran_unchecked\":");
            put_num(out, self.ran_unchecked.min(i64::MAX as u64) as i64);
        }
        out.put(b"}");
    }
}

/// Streams a stderr line whose middle part is produced by `mid`. Everything after the
/// prefix goes through `printable`: commands, names, messages and URLs are shown with
/// control and bidi characters escaped, so they cannot rewrite what the user sees.
fn stderr_line(prefix: &[u8], mid: &dyn Fn(&mut dyn Sink), suffix: &[u8]) {
    line_to(2, prefix, mid, suffix);
}

/// `stderr_line` to any descriptor (the controlling terminal for `[WAIT]`).
fn line_to(fd: core::ffi::c_int, prefix: &[u8], mid: &dyn Fn(&mut dyn Sink), suffix: &[u8]) {
    let mut buf = [0u8; 512];
    let mut w = BufWriter::new(&mut buf, |c: &[u8]| {
        sys::write_all(fd, c);
        true
    });
    w.put(prefix);
    {
        let mut p = Printable::new(&mut w);
        mid(&mut p);
        p.put(suffix);
        p.finish();
    }
    w.put(b"\n");
    w.flush();
}

fn deny_line(reason: &dyn Fn(&mut dyn Sink)) {
    stderr_line(b"rampart: [ERROR] Policy denied: ", reason, b"");
}

/// Asks the policy server about `call` and applies the decision matrix. Prints the
/// debug lines, the one `[ERROR]` line of a refusal, and the `[WARN]` line the first time
/// this process runs a program unchecked. The caller counts a `RunUnchecked` (see
/// `unchecked`): only it knows whether the program really started.
pub fn check(call: &Call) -> Permit {
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
        return Permit::Run;
    }
    if cfg.debug {
        config::debug(&[b"Policy check: POST /v1/preflight/exec"]);
    }
    let enforce = cfg.mode == Mode::Enforce;
    let wait_ms = if enforce { cfg.ask_timeout_ms } else { 0 };
    let mut cwd_buf = [0u8; PATH_MAX];
    let cwd = path::getcwd(&mut cwd_buf).unwrap_or(&[]);
    let pid = sys::getpid();
    let ran_unchecked = unchecked::pending();
    let body = Body {
        cfg,
        call,
        cwd,
        pid,
        ppid: sys::getppid(),
        enforce,
        wait_ms,
        ran_unchecked,
    };
    let mut buf = [0u8; RESPONSE_MAX];
    // The ask's id, learnt while waiting (`GET /v1/approvals?pid=`), so the wait line can
    // say exactly what to type; copied out of the scratch buffer into a fixed array.
    let mut id_buf = [0u8; 64];
    let mut id_len = 0usize;
    let mut tty = -1;
    let mut on_wait = || {
        if wait_ms == 0 {
            return;
        }
        tty = sys::open_tty();
        let out = if tty >= 0 { tty } else { 2 };
        let mut left = 0u64;
        if let Some(p) = pending_ask(cfg, pid, &mut id_buf) {
            (id_len, left) = p;
        }
        let id = id_buf.get(..id_len).unwrap_or(&[]);
        if id.is_empty() {
            line_to(
                out,
                b"rampart: [WAIT] Waiting for approval of: ",
                &|s: &mut dyn Sink| call.put_command(s),
                b" -- see 'rampart pending', then 'rampart approve <id>' or 'rampart deny <id>', or the dashboard",
            );
            return;
        }
        line_to(
            out,
            b"rampart: [WAIT] Waiting for approval of: ",
            &|s: &mut dyn Sink| {
                call.put_command(s);
                s.put(b" (agent ");
                s.put(cfg.s(cfg.agent));
                s.put(b", approval ");
                s.put(id);
                s.put(b", ");
                put_num(s, left.min(i64::MAX as u64) as i64);
                s.put(b"s left) -- type 'rampart approve ");
                s.put(id);
                s.put(b"' or 'rampart deny ");
                s.put(id);
                s.put(b"', or see the dashboard");
            },
            b"",
        );
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
    let verdict = match classify(result, &buf) {
        // By hand (`LD_PRELOAD=… cmd`) without a token: say which variable is missing
        // rather than a bare "refused our token".
        Verdict::Failed {
            outcome,
            status: 401,
            ..
        } if cfg.s(cfg.token).is_empty() => Verdict::Failed {
            outcome,
            what: NO_TOKEN,
            status: 401,
        },
        verdict => verdict,
    };
    if tty >= 0 {
        // The terminal that saw the wait line also sees how it ended (stderr keeps only
        // the `[ERROR]` line of a refusal, as before).
        let id = id_buf.get(..id_len).unwrap_or(&[]);
        resolved_line(tty, id, call, &verdict);
        sys::close(tty);
    }
    if matches!(verdict, Verdict::Answer { .. }) && ran_unchecked > 0 {
        // The server read a well-formed request carrying the count: it is reported.
        unchecked::reported(ran_unchecked);
    }
    decide(cfg, call, verdict)
}

/// The reason for a 401 when `RAMPART_TOKEN` is empty (the library used by hand).
const NO_TOKEN: &[u8] = b"RAMPART_TOKEN is not set (`rampart preload` sets it; by hand: export RAMPART_TOKEN=\"$(rampart token show)\"), and the policy server refused the request without it";

/// Looks up the id and seconds left of the ask this process waits on; copies the id into
/// `id_buf`. `None` on any failure: the wait line then keeps its generic text.
fn pending_ask(cfg: &Config, pid: i32, id_buf: &mut [u8; 64]) -> Option<(usize, u64)> {
    let mut path = [0u8; 64];
    let mut w = SliceWriter::new(&mut path);
    w.put(b"/v1/approvals?pid=");
    put_num(&mut w, i64::from(pid));
    let n = w.len;
    let mut buf = [0u8; 4096];
    let resp = http::get(cfg, path.get(..n)?, &mut buf).ok()?;
    if resp.status != 200 {
        return None;
    }
    let body = buf.get(resp.body_start..resp.body_start.saturating_add(resp.body_len))?;
    let p = json::newest_pending(body)?;
    // Ids are ULIDs; anything else (or longer) is not printed as a command to type.
    if p.id.is_empty() || p.id.len() > id_buf.len() || !p.id.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    id_buf.get_mut(..p.id.len())?.copy_from_slice(p.id);
    Some((p.id.len(), p.expires_in_s))
}

/// The one line on the terminal when a wait announced there ends.
fn resolved_line(tty: core::ffi::c_int, id: &[u8], call: &Call, v: &Verdict) {
    line_to(
        tty,
        b"rampart: [WAIT] ",
        &|s: &mut dyn Sink| {
            s.put(b"Approval");
            if !id.is_empty() {
                s.put(b" ");
                s.put(id);
            }
            s.put(b": ");
            match v {
                Verdict::Answer {
                    allowed, message, ..
                } => {
                    match message.filter(|m| !m.is_empty()) {
                        Some(m) => json::put_unescaped(s, m),
                        None => s.put(if *allowed { b"approved" } else { b"denied" }),
                    }
                    s.put(if *allowed {
                        b" (runs): "
                    } else {
                        b" (refused): "
                    });
                }
                _ => s.put(b"no answer from the policy server: "),
            }
            call.put_command(s);
        },
        b"",
    );
}

/// What an answer (or the failure to get one) means, before mode and fail-open apply.
fn classify(result: Result<http::Response, Fail>, buf: &[u8]) -> Verdict<'_> {
    let failed = |outcome, what, status| Verdict::Failed {
        outcome,
        what,
        status,
    };
    match result {
        Ok(resp) => {
            let body = buf
                .get(resp.body_start..resp.body_start.saturating_add(resp.body_len))
                .unwrap_or(&[]);
            let s = resp.status;
            match s {
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
                    _ => failed(
                        Outcome::Malformed,
                        b"malformed answer from the policy server",
                        0,
                    ),
                },
                401 | 403 => failed(
                    Outcome::Status(s),
                    b"the policy server refused our token",
                    s,
                ),
                500..=599 => failed(Outcome::Status(s), b"policy server error", s),
                _ => failed(
                    Outcome::Status(s),
                    b"unexpected answer from the policy server",
                    s,
                ),
            }
        }
        Err(f @ (Fail::Malformed | Fail::Cut)) => failed(Outcome::Malformed, f.describe(), 0),
        Err(f @ Fail::Oversized) => failed(Outcome::Oversized, f.describe(), 0),
        Err(Fail::Unusable(why)) => Verdict::Unusable(why),
        Err(f @ (Fail::Unreachable | Fail::Timeout | Fail::Closed)) => {
            failed(Outcome::NoAnswer, f.describe(), 0)
        }
    }
}

impl Verdict<'_> {
    fn outcome(&self) -> Outcome {
        match self {
            Verdict::Answer { allowed, .. } => Outcome::Answer { allowed: *allowed },
            Verdict::Failed { outcome, .. } => *outcome,
            Verdict::Unusable(_) => Outcome::Unusable,
        }
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
    /// No decision: the outcome for the matrix, the reason, the HTTP status (0: none).
    Failed {
        outcome: Outcome,
        what: &'static [u8],
        status: u16,
    },
    /// The request could not be built (`RAMPART_URL` refused, socket path too long):
    /// nothing was sent. The reason completes "RAMPART_URL <url> is ...".
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

/// The `[WARN]` line, once per agent (the processes sharing `unchecked`'s page): fail-open
/// is never silent.
fn warn_unchecked(cfg: &Config, call: &Call, why: &dyn Fn(&mut dyn Sink)) {
    if !unchecked::first_warning() {
        return;
    }
    let hint: &[u8] = if cfg.mode == Mode::Monitor {
        b" runs unchecked (monitor mode never blocks; said once)"
    } else {
        b" runs unchecked (fail-open; said once; --fail-open=false or RAMPART_FAIL_OPEN=false fails closed)"
    };
    stderr_line(
        b"rampart: [WARN] ",
        &|s: &mut dyn Sink| {
            why(s);
            s.put(b": ");
            call.put_command(s);
        },
        hint,
    );
}

/// A check that got no usable decision (a failed answer, an unusable configuration): the
/// debug line, then the refusal's `[ERROR]` line or, where the matrix lets it run
/// unchecked (monitor mode), the one `[WARN]` line. `warn_reason` may add where it asked.
fn unusable_answer(
    cfg: &Config,
    call: &Call,
    p: Permit,
    reason: &dyn Fn(&mut dyn Sink),
    warn_reason: &dyn Fn(&mut dyn Sink),
) {
    if cfg.debug {
        stderr_line(
            b"rampart: [DEBUG] Decision: ",
            &|s| {
                s.put(if p == Permit::Refuse {
                    b"deny ("
                } else {
                    b"allow (monitor; "
                });
                reason(s);
                s.put(b")");
            },
            b"",
        );
    }
    match p {
        Permit::Refuse => deny_line(reason),
        Permit::RunUnchecked => warn_unchecked(cfg, call, warn_reason),
        Permit::Run => {}
    }
}

fn decide(cfg: &Config, call: &Call, v: Verdict) -> Permit {
    let enforce = cfg.mode == Mode::Enforce;
    let p = permit(v.outcome(), cfg.mode, cfg.fail_open, cfg.protect);
    let debug_decision = |what: &dyn Fn(&mut dyn Sink)| {
        if cfg.debug {
            stderr_line(b"rampart: [DEBUG] Decision: ", what, b"");
        }
    };
    match v {
        Verdict::Answer {
            allowed,
            decision,
            message,
        } => {
            let decision = decision.unwrap_or(if allowed { b"allow" } else { b"deny" });
            debug_decision(&|s| json::put_unescaped(s, decision));
            if p == Permit::Refuse {
                // An ask the server could not hold (we asked it not to wait): say why.
                let at_once = decision == b"ask" && cfg.ask_timeout_ms == 0;
                deny_line(&|s: &mut dyn Sink| {
                    match message.filter(|m| !m.is_empty()) {
                        Some(m) => json::put_unescaped(s, m),
                        None => {
                            s.put(b"decision ");
                            json::put_unescaped(s, decision);
                        }
                    }
                    if at_once {
                        s.put(values::REFUSED_AT_ONCE.as_bytes());
                        s.put(values::no_person(cfg.ci).as_bytes());
                    }
                });
            }
        }
        Verdict::Failed {
            outcome: Outcome::NoAnswer,
            what,
            ..
        } => {
            let reason = |s: &mut dyn Sink| {
                s.put(what);
                s.put(b" at ");
                s.put(cfg.s(cfg.url));
            };
            debug_decision(&|s| {
                s.put(match p {
                    Permit::Refuse => b"deny (fail-closed: ",
                    _ if enforce => b"allow (fail-open: ",
                    _ => b"allow (monitor; ",
                });
                s.put(what);
                s.put(b")");
            });
            match p {
                Permit::Refuse => deny_line(&|s| {
                    reason(s);
                    s.put(if cfg.protect {
                        b" and RAMPART_PROTECT is on"
                    } else {
                        b" and fail-open is off"
                    });
                }),
                Permit::RunUnchecked => warn_unchecked(cfg, call, &reason),
                Permit::Run => {}
            }
        }
        Verdict::Failed { what, status, .. } => {
            unusable_answer(cfg, call, p, &|s| put_reason(s, what, status), &|s| {
                put_reason(s, what, status);
                s.put(b" at ");
                s.put(cfg.s(cfg.url));
            })
        }
        Verdict::Unusable(why) => {
            let reason = |s: &mut dyn Sink| put_unusable(s, cfg, why);
            unusable_answer(cfg, call, p, &reason, &reason)
        }
    }
    p
}

/// `fexecve`/`execveat` on an open descriptor whose file this library cannot name (no
/// `/proc`): refused, with one line.
pub fn refuse_unseen(fd: core::ffi::c_int) {
    deny_line(&|s: &mut dyn Sink| {
        s.put(b"cannot see which program descriptor ");
        put_num(s, i64::from(fd));
        s.put(b" is (is /proc mounted?), so it was not asked about");
    });
}

/// The environment limit of re-injection (`env`): a child environment this library
/// cannot hand `LD_PRELOAD` and the `RAMPART_*` variables to is never passed through
/// unguarded. Returns false (and says why, once per call) when `envp` is over the limit
/// or the snapshot itself is incomplete; the caller then fails with `E2BIG`.
pub fn env_fits(call: &Call, envp: *const *const core::ffi::c_char) -> bool {
    let cfg = config::get();
    if cfg.incomplete {
        deny_line(&|s: &mut dyn Sink| {
            s.put(b"the library's configuration (a RAMPART_* value over 4096 bytes, or its own path) does not fit its buffers, so it could not be passed on (E2BIG); not starting ");
            call.put_command(s);
        });
        return false;
    }
    let n = crate::env::entries(envp);
    if n > crate::env::MAX_ENTRIES {
        deny_line(&|s: &mut dyn Sink| {
            s.put(b"the environment has ");
            put_num(s, n as i64);
            s.put(b" entries, more than the ");
            put_num(s, crate::env::MAX_ENTRIES as i64);
            s.put(b" the library can pass on with LD_PRELOAD (E2BIG); not starting ");
            call.put_command(s);
        });
        return false;
    }
    true
}

/// Property tests (proptest): hostile input never panics or hangs, well-formed input is
/// read exactly.
#[cfg(test)]
#[path = "props/check.rs"]
mod props;
