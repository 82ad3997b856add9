//! The transport-free decision core: one preflight call in, one answer out, audited here.
//!
//! Both transports call [`decide`]: the HTTP handler (`api.rs`, `POST /v1/preflight/{tool}`
//! on TCP and on the Unix socket for anything but the fast path) and the Unix socket's
//! fast path (`fastpath.rs`, plain threads, no HTTP stack). Whatever the transport, the
//! answer is built here, the event is written here before the answer leaves, and the
//! metrics are counted here, so the two can never decide differently.
//!
//! [`decide`] never waits: an `ask` that a person must answer comes back as
//! [`Decided::Hold`], which the caller awaits on the async runtime ([`Hold::wait`]);
//! every other call is answered at once ([`Decided::Now`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_audit::NewEvent;
use rampart_policy::{Action, Decision, Request};

use crate::agents::AgentIdentity;
use crate::api::ApiError;
use crate::approvals::Outcome;
use crate::config::Mode;
use crate::state::AppState;
use crate::wire::{ApprovalInfo, PreflightRequest, PreflightResponse};

/// Request bodies above this are refused with 413 (DESIGN.md §5).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// How much of an oversized preflight's command the audit event keeps.
pub(crate) const OVERSIZED_COMMAND_CHARS: usize = 4096;

/// The answer to one preflight call: a decision (HTTP 200 with [`PreflightResponse`]) or
/// a refusal to decide (an error status with `{"error": ...}`).
#[derive(Debug)]
pub(crate) enum Answer {
    Decided(PreflightResponse),
    Refused(ApiError),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Decided(body) => axum::Json(body).into_response(),
            Answer::Refused(e) => e.into_response(),
        }
    }
}

/// What [`decide`] made of a call.
pub(crate) enum Decided {
    /// Answered (and audited) now.
    Now(Answer),
    /// An `ask` held open for a person: await [`Hold::wait`] for the answer.
    Hold(Box<Hold>),
}

/// An `ask` to hold open for a person, with everything its answer needs.
pub(crate) struct Hold {
    req: PreflightRequest,
    tool: String,
    agent: String,
    session: String,
    command: String,
    decision: Decision,
    eval_us: u64,
    wait_ms: u64,
}

impl Hold {
    /// Waits for a person (or the timeout), then records and returns the answer.
    pub(crate) fn wait(self: Box<Self>, state: Arc<AppState>) -> impl Future<Output = Answer> {
        ask_and_wait(state, self)
    }
}

/// Decides a preflight body as it came off the wire (JSON, at most [`BODY_LIMIT`]).
pub(crate) fn decide_body(
    state: &AppState,
    who: Option<&AgentIdentity>,
    tool: &str,
    body: &[u8],
) -> Decided {
    match serde_json::from_slice::<PreflightRequest>(body) {
        Ok(req) => decide(state, who, tool, req),
        Err(e) => Decided::Now(Answer::Refused(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON body: {e}"),
        ))),
    }
}

/// Decides one preflight call of `who` (an agent credential; `None` for the admin token).
pub(crate) fn decide(
    state: &AppState,
    who: Option<&AgentIdentity>,
    tool: &str,
    req: PreflightRequest,
) -> Decided {
    let now = |answer: Answer| Decided::Now(answer);
    let command = req.params.command.clone().unwrap_or_default();
    if tool == "exec" && req.params.command.is_none() {
        return now(Answer::Refused(ApiError::new(
            StatusCode::BAD_REQUEST,
            "params.command is required for tool exec",
        )));
    }
    // An agent credential names its caller: the body may repeat the same agent and
    // session, never claim others (another name could select a more permissive policy).
    let (agent, session) = match who {
        None => (
            req.agent.clone().unwrap_or_else(|| "unknown".to_owned()),
            req.session.clone().unwrap_or_default(),
        ),
        Some(who) => {
            let other_agent = req.agent.as_deref().is_some_and(|a| a != who.agent);
            let other_session = req.session.as_deref().is_some_and(|s| s != who.session);
            if other_agent || other_session {
                return now(claimed_another(state, &req, tool, &command, who));
            }
            (who.agent.clone(), who.session.clone())
        }
    };
    let mode = state.config.mode;
    if mode == Mode::Disabled {
        return now(Answer::Decided(PreflightResponse {
            allowed: true,
            decision: "allow".into(),
            message: "Rampart is disabled".into(),
            matched_policies: Vec::new(),
            eval_duration_us: 0,
            audit_id: String::new(),
            policy_decision: None,
            approval_id: None,
        }));
    }
    let enforce = mode == Mode::Enforce && req.enforce;
    if let Some(count) = req.ran_unchecked.filter(|n| *n > 0) {
        record_unchecked_report(state, &req, tool, &agent, &session, count, enforce);
    }

    if let Some(why) = req.unchecked.as_deref() {
        return now(unchecked(
            state, &req, tool, &agent, &session, &command, why, enforce,
        ));
    }

    let policy = state.policy();
    let aliases = crate::program::aliases(req.exe.as_deref(), &policy);
    let started = Instant::now();
    let decision = policy.evaluate(&Request {
        tool,
        agent: &agent,
        session: &session,
        command: &command,
        path: req.params.path.as_deref(),
        cwd: req.cwd.as_deref(),
        exe: req.exe.as_deref(),
        home: user_home(),
        aliases: &aliases,
    });
    let eval_us = duration_us(started.elapsed());
    state.metrics.decision(decision.action, eval_us);

    let wait_ms = req.wait_ms.unwrap_or(0);
    // An approval already given covers this ask (approvals.rs `Grants`).
    if decision.action == Action::Ask
        && enforce
        && let Some(grant) = covering_grant(state, &req, &agent, &session, &command)
    {
        return now(granted(
            state, &req, tool, &agent, &session, &command, decision, eval_us, grant,
        ));
    }
    if decision.action == Action::Ask && enforce && wait_ms > 0 {
        // Held for as long as a person takes: keep one copy of the command.
        let mut req = req;
        req.params.command = None;
        (req.agent, req.session) = (None, None);
        return Decided::Hold(Box::new(Hold {
            req,
            tool: tool.to_owned(),
            agent,
            session,
            command,
            decision,
            eval_us,
            wait_ms,
        }));
    }

    let event = new_event(
        &req, tool, &agent, &session, &command, &decision, eval_us, None, enforce,
    );
    let (allowed, policy_decision) = if enforce {
        (decision.allowed(), None)
    } else {
        (true, Some(decision.action.as_str().to_owned()))
    };
    let (stored, message) = if allowed {
        // The shell's exec of exactly the command a system()/popen() call of its parent
        // was allowed: part of that decision (shells.rs). Only an allow is ever linked.
        let part_of = match (tool, req.ppid, decision.allowed()) {
            ("exec", Some(ppid), true) => state.shells.take(&session, ppid, &command),
            _ => None,
        };
        match append_linked(state, event, part_of.as_deref()) {
            Ok(stored) => {
                if let (Some("system" | "popen"), Some(pid), true) =
                    (req.via.as_deref(), req.pid, decision.allowed())
                {
                    state.shells.remember(&session, pid, &command, &stored);
                }
                (stored, decision.message)
            }
            Err(e) => return now(Answer::Refused(e)),
        }
    } else {
        let (stored, message) = append_refusal(state, event).answer(decision.message);
        if state.notifier.wants(crate::notify::Kind::Deny) {
            state.notifier.notify(
                crate::notify::Kind::Deny,
                crate::notify::Notice {
                    event: "deny",
                    id: stored.clone(),
                    command: rampart_audit::redact(&command).into_owned(),
                    agent: agent.clone(),
                    session: session.clone(),
                    cwd: req.cwd.clone(),
                    message: message.clone(),
                    dashboard: state.notifier.dashboard(),
                },
            );
        }
        (stored, message)
    };
    now(Answer::Decided(PreflightResponse {
        allowed,
        decision: decision.action.as_str().to_owned(),
        message,
        matched_policies: decision.matched_policies,
        eval_duration_us: eval_us,
        audit_id: stored,
        policy_decision,
        approval_id: None,
    }))
}

/// The start of a string field `"key":"…"` in a JSON text that may be cut short:
/// best effort, for the audit record of a body too large to read as JSON.
pub(crate) fn string_field_prefix(prefix: &[u8], key: &str) -> Option<String> {
    let open = format!("\"{key}\":\"");
    // The prefix is a few KiB: a plain search is fine.
    let start = prefix
        .windows(open.len())
        .position(|w| w == open.as_bytes())?
        + open.len();
    let rest = &prefix[start..];
    let mut end = rest.len();
    let mut escaped = false;
    for (i, &b) in rest.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    // Cut back until what is left is a whole JSON string (not ending inside an escape
    // or a UTF-8 sequence).
    (0..8).find_map(|cut| {
        let body = rest.get(..end.checked_sub(cut)?)?;
        let mut quoted = Vec::with_capacity(body.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(body);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted).ok()
    })
}

/// Records and refuses a preflight whose body is over [`BODY_LIMIT`]: the client denies
/// on 413 in enforce mode, and a decision the user sees must be in the audit trail.
pub(crate) fn oversized(
    state: &AppState,
    tool: &str,
    prefix: &[u8],
    who: Option<&AgentIdentity>,
) -> Answer {
    let message = format!("request body larger than {BODY_LIMIT} bytes: not evaluated");
    let mode = state.config.mode;
    if mode == Mode::Disabled {
        return Answer::Refused(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message));
    }
    let enforce = mode == Mode::Enforce;
    let mut command: String = string_field_prefix(prefix, "command")
        .unwrap_or_default()
        .chars()
        .take(OVERSIZED_COMMAND_CHARS)
        .collect();
    command.push_str(" …");
    let action = if enforce { Action::Deny } else { Action::Log };
    state.metrics.decision(action, 0);
    let (agent, session) = match who {
        Some(who) => (who.agent.clone(), who.session.clone()),
        None => (
            string_field_prefix(prefix, "agent").unwrap_or_else(|| "unknown".to_owned()),
            string_field_prefix(prefix, "session").unwrap_or_default(),
        ),
    };
    let event = NewEvent {
        agent,
        session,
        tool: tool.to_owned(),
        command,
        decision: action.as_str().to_owned(),
        message: message.clone(),
        mode: Some(if enforce { "enforce" } else { "monitor" }.to_owned()),
        ..NewEvent::default()
    };
    // A 413 is a refusal in both modes' eyes (the library denies on it in enforce mode).
    let (_, message) = append_refusal(state, event).answer(message);
    Answer::Refused(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message))
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

pub(crate) fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Records a library's report that `count` execs ran unchecked (it failed open: no
/// server answered), as one event with decision `unchecked` and `unchecked: count`,
/// written before the event of the preflight that carried the report. It is no decision,
/// so it never changes the answer; if it cannot be written, that is said on stderr.
pub(crate) fn record_unchecked_report(
    state: &AppState,
    req: &PreflightRequest,
    tool: &str,
    agent: &str,
    session: &str,
    count: u64,
    enforce: bool,
) {
    let pid = req
        .pid
        .map_or_else(|| "an unknown pid".to_owned(), |p| format!("pid {p}"));
    let message = format!(
        "{count} {tool}(s) ran unchecked in {pid}: no policy server answered and the library failed open"
    );
    let event = NewEvent {
        agent: agent.to_owned(),
        session: session.to_owned(),
        tool: tool.to_owned(),
        command: String::new(),
        pid: req.pid,
        ppid: req.ppid,
        cwd: req.cwd.clone(),
        decision: rampart_audit::UNCHECKED.to_owned(),
        message: message.clone(),
        mode: Some(if enforce { "enforce" } else { "monitor" }.to_owned()),
        unchecked: Some(count),
        ..NewEvent::default()
    };
    state.notifier.notify(
        crate::notify::Kind::FailOpen,
        crate::notify::Notice {
            event: "fail-open",
            id: String::new(),
            command: String::new(),
            agent: agent.to_owned(),
            session: session.to_owned(),
            cwd: req.cwd.clone(),
            message: message.clone(),
            dashboard: state.notifier.dashboard(),
        },
    );
    if let Err(why) = write_event(state, event) {
        eprintln!(
            "rampart: report not recorded ({why}): agent {} session {}: {message}",
            printable_cut(agent),
            printable_cut(session)
        );
    }
}

/// Refuses (403) a preflight whose body claims another agent or session than its agent
/// credential is bound to. The refusal is audited as a `deny` under the credential's
/// agent and session (the library denies on 403, so the user sees a refusal that must be
/// in the trail), with the claimed names in the message.
pub(crate) fn claimed_another(
    state: &AppState,
    req: &PreflightRequest,
    tool: &str,
    command: &str,
    who: &AgentIdentity,
) -> Answer {
    let bound = format!(
        "this credential is for agent \"{}\", session \"{}\"",
        who.agent, who.session
    );
    if state.config.mode != Mode::Disabled {
        let claimed = format!(
            "agent \"{}\", session \"{}\"",
            req.agent.as_deref().unwrap_or(&who.agent),
            req.session.as_deref().unwrap_or(&who.session)
        );
        let decision = Decision {
            action: Action::Deny,
            message: format!("refused: the request claimed {claimed}; {bound}"),
            matched_policies: Vec::new(),
            rule: None,
            quiet: false,
        };
        state.metrics.decision(Action::Deny, 0);
        // The mode is recorded as it is: a monitor-mode client runs the command anyway.
        let enforce = state.config.mode == Mode::Enforce && req.enforce;
        let event = new_event(
            req,
            tool,
            &who.agent,
            &who.session,
            command,
            &decision,
            0,
            None,
            enforce,
        );
        let _ = append_refusal(state, event);
    }
    Answer::Refused(ApiError::new(
        StatusCode::FORBIDDEN,
        format!("agent credentials cannot claim another agent or session: {bound}"),
    ))
}

/// Records a call its caller could not check (see `PreflightRequest::unchecked`):
/// denied in enforce mode, logged in monitor mode, never evaluated.
#[allow(clippy::too_many_arguments)]
pub(crate) fn unchecked(
    state: &AppState,
    req: &PreflightRequest,
    tool: &str,
    agent: &str,
    session: &str,
    command: &str,
    why: &str,
    enforce: bool,
) -> Answer {
    let decision = Decision {
        action: if enforce { Action::Deny } else { Action::Log },
        message: format!("exec not checked: {why}"),
        matched_policies: Vec::new(),
        rule: None,
        quiet: false,
    };
    state.metrics.decision(decision.action, 0);
    let event = new_event(
        req, tool, agent, session, command, &decision, 0, None, enforce,
    );
    let (audit_id, message) = if enforce {
        append_refusal(state, event).answer(decision.message)
    } else {
        match append(state, event) {
            Ok(id) => (id, decision.message),
            Err(e) => return Answer::Refused(e),
        }
    };
    Answer::Decided(PreflightResponse {
        allowed: !enforce,
        decision: decision.action.as_str().to_owned(),
        message,
        matched_policies: Vec::new(),
        eval_duration_us: 0,
        audit_id,
        policy_decision: (!enforce).then(|| "deny".to_owned()),
        approval_id: None,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn new_event(
    req: &PreflightRequest,
    tool: &str,
    agent: &str,
    session: &str,
    command: &str,
    decision: &Decision,
    eval_us: u64,
    approval: Option<rampart_audit::Approval>,
    enforce: bool,
) -> NewEvent {
    NewEvent {
        agent: agent.to_owned(),
        session: session.to_owned(),
        tool: tool.to_owned(),
        command: command.to_owned(),
        argv: req.argv.clone(),
        exe: req.exe.clone(),
        cwd: req.cwd.clone(),
        pid: req.pid,
        ppid: req.ppid,
        via: req.via.clone(),
        decision: decision.action.as_str().to_owned(),
        policy: decision.matched_policies.join(", "),
        message: decision.message.clone(),
        eval_us,
        approval,
        mode: Some(if enforce { "enforce" } else { "monitor" }.to_owned()),
        unchecked: None,
        // Only an allow that was acted on as one is quiet.
        quiet: decision.quiet && decision.allowed(),
    }
}

/// Writes the event (before any answer leaves) and streams it; its id, or 503 when the
/// trail cannot be written. Used for answers that would let a command run (allow, log,
/// monitor mode): nothing that was not written is answered as an allow, streamed or
/// counted. Refusals go through [`append_refusal`] instead. The first failure of an
/// outage and the recovery after it are said once each on stderr.
pub(crate) fn append(state: &AppState, event: NewEvent) -> Result<String, ApiError> {
    append_linked(state, event, None)
}

/// [`append`], for an event that may be part of an earlier decision (`part_of`).
pub(crate) fn append_linked(
    state: &AppState,
    event: NewEvent,
    part_of: Option<&str>,
) -> Result<String, ApiError> {
    match write_linked(state, event, part_of) {
        Ok(id) => Ok(id),
        Err(why) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("audit trail cannot be written: {why}"),
        )),
    }
}

/// Writes the event of a refusal. A refusal is answered as one whether or not its event
/// could be written: turning it into a 5xx would hand the decision to the client's
/// fail-open rule, and a deny must never be lost as an error. When the write fails the
/// refusal is said on stderr (one line each: it is the only record) and counted
/// (`unrecorded_refusals` in `/v1/status`, `rampart_unrecorded_refusals_total`); the
/// answer's `audit_id` is then empty and its message says it was not recorded.
pub(crate) fn append_refusal(state: &AppState, event: NewEvent) -> Refusal {
    let said = format!(
        "{} agent {} session {}: {}",
        event.decision,
        printable_cut(&event.agent),
        printable_cut(&event.session),
        printable_cut(&event.command)
    );
    match write_event(state, event) {
        Ok(id) => Refusal::Recorded(id),
        Err(why) => {
            state.metrics.unrecorded_refusal();
            eprintln!("rampart: refusal answered but not recorded ({why}): {said}");
            Refusal::Unrecorded
        }
    }
}

/// Whether a refusal's event reached the trail.
pub(crate) enum Refusal {
    Recorded(String),
    Unrecorded,
}

impl Refusal {
    /// What the answer carries: the event id (empty when none was written) and the
    /// message, which says so when the event is missing.
    fn answer(self, message: String) -> (String, String) {
        match self {
            Refusal::Recorded(id) => (id, message),
            Refusal::Unrecorded => (
                String::new(),
                format!("{message} (not recorded: the audit trail cannot be written)"),
            ),
        }
    }
}

/// At most 200 characters of `text`, with control and bidi characters escaped, for one
/// stderr line.
pub(crate) fn printable_cut(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    let mut shown = rampart_contract::printable::printable_string(cut.as_bytes());
    if cut.len() < text.len() {
        shown.push('…');
    }
    shown
}

/// The one place an event is written: its id, or why it could not be.
pub(crate) fn write_event(state: &AppState, event: NewEvent) -> Result<String, String> {
    write_linked(state, event, None)
}

/// [`write_event`]; an event that is part of an earlier decision stays out of the live
/// feed (it is no new decision).
pub(crate) fn write_linked(
    state: &AppState,
    event: NewEvent,
    part_of: Option<&str>,
) -> Result<String, String> {
    let written = match part_of {
        Some(id) => state.audit.append_part_of(event, id),
        None => state.audit.append(event),
    };
    match written {
        Ok(stored) => {
            if let Some((failed, unrecorded)) = state.metrics.audit_recovered() {
                eprintln!(
                    "rampart: audit trail writable again; while it was not, {} preflight(s) were answered 503 and {unrecorded} refusal(s) were answered unrecorded",
                    failed.saturating_sub(unrecorded)
                );
            }
            if stored.part_of.is_none() {
                // Quiet decisions go out marked: only clients that asked (`?all=true`) get them.
                state.events.send_marked("decision", &stored, stored.quiet);
            }
            Ok(stored.id)
        }
        Err(e) => {
            let why = describe_audit_error(&e);
            if state.metrics.audit_error() {
                eprintln!(
                    "rampart: audit trail cannot be written: {why}; answering would-be allows 503 and refusals unrecorded until it can"
                );
            }
            Err(why)
        }
    }
}

/// The audit error, with the cause named when the OS error alone does not say it.
pub(crate) fn describe_audit_error(e: &rampart_audit::AuditError) -> String {
    use std::error::Error as _;
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    match io.and_then(std::io::Error::raw_os_error) {
        // SIGXFSZ is ignored (serve.rs), so reaching RLIMIT_FSIZE is this error.
        Some(libc::EFBIG) => format!(
            "{e} (the file size limit of this process, RLIMIT_FSIZE, is reached: raise `ulimit -f` where the server starts)"
        ),
        _ => e.to_string(),
    }
}

/// Removes a pending approval whose waiting client went away (expired, so a late
/// resolve gets 410 rather than approving nothing).
pub(crate) struct AbandonGuard {
    state: Arc<AppState>,
    id: String,
    armed: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if self.armed
            && let Ok(info) = self
                .state
                .approvals
                .settle(&self.id, Outcome::Expired, now_rfc3339())
        {
            self.state.events.send("resolution", &info);
        }
    }
}

/// Opens an ask: the approval entry, the live event and the notification. Its id and
/// the receiver of its outcome, or the answer when no more asks may be pending.
#[allow(clippy::too_many_arguments)]
fn open_ask(
    state: &AppState,
    req: &PreflightRequest,
    tool: &str,
    agent: &str,
    session: &str,
    command: &str,
    decision: &Decision,
    eval_us: u64,
    wait: Duration,
) -> Result<(String, tokio::sync::oneshot::Receiver<Outcome>), Box<Answer>> {
    let id = ulid::Ulid::from_datetime(std::time::SystemTime::now()).to_string();
    let created = jiff::Timestamp::now();
    let expires = created
        .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::ZERO))
        .unwrap_or(created);
    let info = ApprovalInfo {
        id: id.clone(),
        status: "pending".into(),
        command: rampart_audit::redact(command).into_owned(),
        agent: agent.to_owned(),
        session: session.to_owned(),
        tool: tool.to_owned(),
        message: decision.message.clone(),
        matched_policies: decision.matched_policies.clone(),
        pid: req.pid,
        cwd: req.cwd.clone(),
        created_at: created.to_string(),
        expires_at: expires.to_string(),
        resolved_by: None,
        resolution_message: None,
        resolved_at: None,
        scope: None,
    };
    let rx = match state.approvals.create(info.clone()) {
        Ok(rx) => rx,
        Err(crate::approvals::TooManyPending) => {
            let denied = Decision {
                action: Action::Deny,
                message: format!(
                    "{}; denied without asking: {} approvals are already pending (see `rampart pending`)",
                    decision.message,
                    crate::approvals::MAX_PENDING
                ),
                matched_policies: decision.matched_policies.clone(),
                rule: decision.rule.clone(),
                quiet: false,
            };
            let event = new_event(
                req, tool, agent, session, command, &denied, eval_us, None, true,
            );
            let (audit_id, message) = append_refusal(state, event).answer(denied.message);
            return Err(Box::new(Answer::Decided(PreflightResponse {
                allowed: false,
                decision: Action::Deny.as_str().to_owned(),
                message,
                matched_policies: denied.matched_policies,
                eval_duration_us: eval_us,
                audit_id,
                policy_decision: None,
                approval_id: None,
            })));
        }
    };
    state.events.send("approval", &info);
    state.notifier.notify(
        crate::notify::Kind::Ask,
        crate::notify::Notice {
            event: "ask",
            id: id.clone(),
            command: info.command.clone(),
            agent: info.agent.clone(),
            session: info.session.clone(),
            cwd: info.cwd.clone(),
            message: info.message.clone(),
            dashboard: state.notifier.dashboard(),
        },
    );
    Ok((id, rx))
}

/// Holds an ask open for a person (or the timeout), then records and returns the answer.
/// The hold stays boxed and is only borrowed: the future holds a pointer, not a second
/// copy of the call.
pub(crate) async fn ask_and_wait(state: Arc<AppState>, hold: Box<Hold>) -> Answer {
    let Hold {
        req,
        tool,
        agent,
        session,
        command,
        decision,
        eval_us,
        wait_ms,
    } = &*hold;
    let (eval_us, wait_ms) = (*eval_us, *wait_ms);
    let wait = Duration::from_millis(wait_ms).min(state.config.approval_timeout);
    // Everything that is only needed to open the ask lives in `open_ask`, not across
    // the wait: a held ask costs the server this future and the approval's entry.
    let (id, mut rx) = match open_ask(
        &state, req, tool, agent, session, command, decision, eval_us, wait,
    ) {
        Ok(opened) => opened,
        Err(answer) => return *answer,
    };
    let mut guard = AbandonGuard {
        state: state.clone(),
        id: id.clone(),
        armed: true,
    };

    let waited = tokio::time::timeout(wait, &mut rx).await;
    let outcome = match waited {
        Ok(Ok(outcome)) => Some(outcome),
        _ => match state.approvals.settle(&id, Outcome::Expired, now_rfc3339()) {
            Ok(info) => {
                state.events.send("resolution", &info);
                Some(Outcome::Expired)
            }
            // Resolved in the instant the wait ended: honour the person's decision.
            Err(_) => rx.try_recv().ok(),
        },
    };
    guard.armed = false;
    let outcome = outcome.unwrap_or(Outcome::Expired);
    if let Outcome::Approved { by, .. } = &outcome {
        add_grants(&state, req, agent, session, command, &id, by);
    }

    let (action, message, resolved_by, approved, note) = match &outcome {
        Outcome::Approved { by, message } => (
            Action::Allow,
            with_note(format!("approved by {by}"), message),
            by.clone(),
            true,
            message.clone(),
        ),
        Outcome::Denied { by, message } => (
            Action::Deny,
            with_note(format!("denied by {by}"), message),
            by.clone(),
            false,
            message.clone(),
        ),
        Outcome::Expired => (
            Action::Deny,
            "approval timed out".to_owned(),
            "timeout".to_owned(),
            false,
            None,
        ),
    };
    let final_decision = Decision {
        action,
        message,
        matched_policies: decision.matched_policies.clone(),
        rule: decision.rule.clone(),
        quiet: false,
    };
    let approval = rampart_audit::Approval {
        id: id.clone(),
        approved,
        resolved_by,
        message: note.unwrap_or_default(),
        resolved_at: now_rfc3339(),
    };
    let event = new_event(
        req,
        tool,
        agent,
        session,
        command,
        &final_decision,
        eval_us,
        Some(approval),
        true,
    );
    let allowed = final_decision.allowed();
    let (audit_id, message) = if allowed {
        match append(&state, event) {
            Ok(id) => (id, final_decision.message),
            Err(e) => return Answer::Refused(e),
        }
    } else {
        append_refusal(&state, event).answer(final_decision.message)
    };
    Answer::Decided(PreflightResponse {
        allowed,
        decision: action.as_str().to_owned(),
        message,
        matched_policies: final_decision.matched_policies,
        eval_duration_us: eval_us,
        audit_id,
        policy_decision: None,
        approval_id: Some(id),
    })
}

pub(crate) fn pieces_of(command: &str) -> Vec<String> {
    let normalized = rampart_policy::shell::normalize_checked(command);
    // A command the normaliser gave up on grants nothing by its pieces.
    if normalized.truncated {
        return Vec::new();
    }
    normalized.pieces.into_iter().map(|p| p.text).collect()
}

/// An approval covers its command and the programs that command runs itself for a short
/// while in its process tree; "for this session" also the same text in the session.
pub(crate) fn add_grants(
    state: &AppState,
    req: &PreflightRequest,
    agent: &str,
    session: &str,
    command: &str,
    id: &str,
    by: &str,
) {
    let grant = crate::approvals::Grant {
        id: id.to_owned(),
        by: by.to_owned(),
        agent: agent.to_owned(),
        session: session.to_owned(),
        command: command.to_owned(),
        pieces: pieces_of(command),
        pid: req.pid,
        until: Some(Instant::now() + crate::approvals::TREE_WINDOW),
    };
    if req.pid.is_some() {
        state.grants.add(grant.clone());
    }
    let for_session = state
        .approvals
        .get(id)
        .is_some_and(|i| i.scope.as_deref() == Some("session"));
    if for_session {
        state.grants.add(crate::approvals::Grant {
            pid: None,
            until: None,
            ..grant
        });
    }
}

pub(crate) fn covering_grant(
    state: &AppState,
    req: &PreflightRequest,
    agent: &str,
    session: &str,
    command: &str,
) -> Option<crate::approvals::Grant> {
    let pieces = pieces_of(command);
    state.grants.covering(&crate::approvals::Asking {
        agent,
        session,
        command,
        pieces: &pieces,
        pid: req.pid,
        ppid: req.ppid,
    })
}

/// An ask an earlier approval covers: allowed, audited against that approval's id.
#[allow(clippy::too_many_arguments)]
pub(crate) fn granted(
    state: &AppState,
    req: &PreflightRequest,
    tool: &str,
    agent: &str,
    session: &str,
    command: &str,
    decision: Decision,
    eval_us: u64,
    grant: crate::approvals::Grant,
) -> Answer {
    let scope = if grant.pid.is_none() {
        "this session"
    } else {
        "this command"
    };
    let allowed = Decision {
        action: Action::Allow,
        message: format!(
            "covered by approval {} ({scope}, approved by {})",
            grant.id, grant.by
        ),
        matched_policies: decision.matched_policies,
        rule: decision.rule,
        // A use of a person's approval is always shown.
        quiet: false,
    };
    let approval = rampart_audit::Approval {
        id: grant.id.clone(),
        approved: true,
        resolved_by: grant.by.clone(),
        message: format!("covered by approval {} ({scope})", grant.id),
        resolved_at: now_rfc3339(),
    };
    let event = new_event(
        req,
        tool,
        agent,
        session,
        command,
        &allowed,
        eval_us,
        Some(approval),
        true,
    );
    let audit_id = match append(state, event) {
        Ok(id) => id,
        Err(e) => return Answer::Refused(e),
    };
    Answer::Decided(PreflightResponse {
        allowed: true,
        decision: Action::Allow.as_str().to_owned(),
        message: allowed.message,
        matched_policies: allowed.matched_policies,
        eval_duration_us: eval_us,
        audit_id,
        policy_decision: None,
        approval_id: Some(grant.id),
    })
}

pub(crate) fn with_note(text: String, note: &Option<String>) -> String {
    match note.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => format!("{text}: {n}"),
        _ => text,
    }
}

/// The home directory of the user the server runs as (the agents' user): what `~` means
/// to the policy. Read once; the server's environment does not change.
pub(crate) fn user_home() -> Option<&'static str> {
    static HOME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOME.get_or_init(|| std::env::var("HOME").ok().filter(|h| h.starts_with('/')))
        .as_deref()
}
