//! The HTTP API of DESIGN.md §5: routes and handlers.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rampart_audit::NewEvent;
use rampart_policy::{Action, Decision, Request};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::agents::AgentIdentity;
use crate::approvals::{Outcome, ResolveError};
use crate::auth::Caller;
use crate::config::Mode;
use crate::state::AppState;
use crate::wire::{
    AgentCredential, AgentRequest, ApprovalInfo, ErrorBody, PolicyFileStatus, PreflightRequest,
    PreflightResponse, ResolveRequest, Status, TestRequest, TestResponse,
};

/// Request bodies above this are refused with 413 (DESIGN.md §5).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the server: `/healthz` and the dashboard's static files,
    /// which hold no data.
    Public,
    /// Only with `Authorization: Bearer <admin token>` (the SSE stream also takes
    /// `?token=`); 401 otherwise, 403 for an agent credential.
    Token,
    /// The admin token or an agent credential (`POST /v1/agents`): what the preload
    /// library and the supervisor need, and nothing else. 401 otherwise.
    Agent,
}

/// One route of the server: its method, its path (axum syntax, `{param}` for a path
/// parameter) and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

macro_rules! http_method {
    (get) => {
        "GET"
    };
    (post) => {
        "POST"
    };
    (delete) => {
        "DELETE"
    };
}

/// The route table: [`ROUTES`] and the router are generated from the same lines, so a
/// route cannot be served without being listed (tests iterate [`ROUTES`] and check that
/// every `Token` and `Agent` route refuses a missing or wrong token on both listeners,
/// and every `Token` route an agent credential).
macro_rules! route_table {
    ($($method:ident $path:literal $access:ident => $handler:expr;)*) => {
        /// Every route the server answers, in the order they are registered.
        pub const ROUTES: &[Route] = &[$(Route {
            method: http_method!($method),
            path: $path,
            access: Access::$access,
        }),*];

        /// (public routes, admin-token routes, routes agent credentials may call too)
        fn table_routers() -> (Router<Arc<AppState>>, Router<Arc<AppState>>, Router<Arc<AppState>>) {
            let mut public = Router::new();
            let mut admin = Router::new();
            let mut agent = Router::new();
            $(
                let handler = axum::routing::$method($handler);
                match Access::$access {
                    Access::Public => public = public.route($path, handler),
                    Access::Token => admin = admin.route($path, handler),
                    Access::Agent => agent = agent.route($path, handler),
                }
            )*
            (public, admin, agent)
        }
    };
}

route_table! {
    get "/healthz" Public => healthz;
    get "/" Public => crate::dashboard::redirect;
    get "/dashboard" Public => crate::dashboard::redirect;
    get "/dashboard/" Public => crate::dashboard::index_html;
    get "/dashboard/index.html" Public => crate::dashboard::index_html;
    get "/dashboard/app.js" Public => crate::dashboard::app_js;
    get "/dashboard/app.css" Public => crate::dashboard::app_css;
    get "/dashboard/favicon.svg" Public => crate::dashboard::favicon_svg;
    post "/v1/preflight/{tool}" Agent => preflight;
    post "/v1/test" Token => test;
    get "/v1/approvals" Agent => list_approvals;
    get "/v1/approvals/{id}" Agent => get_approval;
    post "/v1/approvals/{id}/resolve" Token => resolve_approval;
    get "/v1/audit/events" Token => audit_events;
    get "/v1/audit/stats" Token => audit_stats;
    get "/v1/audit/verify" Token => audit_verify;
    get "/v1/events/stream" Token => event_stream;
    post "/v1/policy/reload" Token => reload;
    get "/v1/status" Token => status;
    get "/metrics" Token => metrics;
    post "/v1/agents" Token => register_agent;
    delete "/v1/agents/self" Agent => revoke_own_agent;
    delete "/v1/agents/{id}" Token => revoke_agent;
}

/// An oversized preflight body is still read to its end, up to this much, before the 413
/// answer. Closing a connection with unread data makes the kernel reset it, and a client
/// that sees a reset instead of the 413 applies its fail-open rule: an argv padded past
/// 1 MiB then ran unchecked and unaudited about half the time. (An argv is at most 2 MiB
/// by the kernel's limit; escaped, its body stays far below this.)
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// How much of an oversized preflight's command the audit event keeps.
const OVERSIZED_COMMAND_CHARS: usize = 4096;

pub fn router(state: Arc<AppState>) -> Router {
    let (public, admin, agent) = table_routers();
    let admin = admin.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::require_admin,
    ));
    let agent = agent.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::require_caller,
    ));
    public
        .merge(admin)
        .merge(agent)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// A failed request: its status and the `{"error": ...}` text. Small, so handlers can
/// return it through `?`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, self.message)
    }
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

async fn healthz() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
}

/// Parses a JSON body ourselves so every failure is `{"error": ...}` with the right
/// status: 413 over the limit, 400 for anything that is not the expected JSON.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("request body larger than {BODY_LIMIT} bytes")
            } else {
                rejection.body_text()
            };
            return Err(ApiError::new(status, message));
        }
    };
    parse_json(&bytes)
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))
}

/// A preflight body: `Ok` within [`BODY_LIMIT`]; over it, `Err` with the first bytes,
/// after reading the rest (see [`DRAIN_LIMIT`]).
async fn read_preflight_body(body: axum::body::Body) -> Result<Result<Bytes, Vec<u8>>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            )
        })?;
        total = total.saturating_add(chunk.len());
        if total <= BODY_LIMIT {
            buf.extend_from_slice(&chunk);
        } else {
            buf.truncate(2 * OVERSIZED_COMMAND_CHARS);
            if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    Ok(if total > BODY_LIMIT {
        Err(buf)
    } else {
        Ok(Bytes::from(buf))
    })
}

/// The start of a string field `"key":"…"` in a JSON text that may be cut short:
/// best effort, for the audit record of a body too large to read as JSON.
fn string_field_prefix(prefix: &[u8], key: &str) -> Option<String> {
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
fn oversized(state: &AppState, tool: &str, prefix: &[u8], who: Option<&AgentIdentity>) -> Response {
    let message = format!("request body larger than {BODY_LIMIT} bytes: not evaluated");
    let mode = state.config.mode;
    if mode == Mode::Disabled {
        return error(StatusCode::PAYLOAD_TOO_LARGE, message);
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
    error(StatusCode::PAYLOAD_TOO_LARGE, message)
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn preflight(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(tool): Path<String>,
    body: axum::body::Body,
) -> Response {
    let who = match &caller {
        Caller::Admin => None,
        Caller::Agent(who) => Some(who),
    };
    let bytes = match read_preflight_body(body).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(prefix)) => return oversized(&state, &tool, &prefix, who),
        Err(e) => return e.into_response(),
    };
    let req: PreflightRequest = match parse_json(&bytes) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let command = req.params.command.clone().unwrap_or_default();
    if tool == "exec" && req.params.command.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "params.command is required for tool exec",
        );
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
                return claimed_another(&state, &req, &tool, &command, who);
            }
            (who.agent.clone(), who.session.clone())
        }
    };
    let mode = state.config.mode;
    if mode == Mode::Disabled {
        return axum::Json(PreflightResponse {
            allowed: true,
            decision: "allow".into(),
            message: "Rampart is disabled".into(),
            matched_policies: Vec::new(),
            eval_duration_us: 0,
            audit_id: String::new(),
            policy_decision: None,
            approval_id: None,
        })
        .into_response();
    }
    let enforce = mode == Mode::Enforce && req.enforce;
    if let Some(count) = req.ran_unchecked.filter(|n| *n > 0) {
        record_unchecked_report(&state, &req, &tool, &agent, &session, count, enforce);
    }

    if let Some(why) = req.unchecked.as_deref() {
        return unchecked(
            &state, &req, &tool, &agent, &session, &command, why, enforce,
        );
    }

    let policy = state.policy();
    let aliases = crate::program::aliases(req.exe.as_deref(), &policy);
    let started = Instant::now();
    let decision = policy.evaluate(&Request {
        tool: &tool,
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
        && let Some(grant) = covering_grant(&state, &req, &agent, &session, &command)
    {
        return granted(
            &state, &req, &tool, &agent, &session, &command, decision, eval_us, grant,
        );
    }
    if decision.action == Action::Ask && enforce && wait_ms > 0 {
        return ask_and_wait(
            state, req, tool, agent, session, command, decision, eval_us, wait_ms,
        )
        .await;
    }

    let event = new_event(
        &req, &tool, &agent, &session, &command, &decision, eval_us, None, enforce,
    );
    let (allowed, policy_decision) = if enforce {
        (decision.allowed(), None)
    } else {
        (true, Some(decision.action.as_str().to_owned()))
    };
    let (stored, message) = if allowed {
        // The shell's exec of exactly the command a system()/popen() call of its parent
        // was allowed: part of that decision (shells.rs). Only an allow is ever linked.
        let part_of = match (tool.as_str(), req.ppid, decision.allowed()) {
            ("exec", Some(ppid), true) => state.shells.take(&session, ppid, &command),
            _ => None,
        };
        match append_linked(&state, event, part_of.as_deref()) {
            Ok(stored) => {
                if let (Some("system" | "popen"), Some(pid), true) =
                    (req.via.as_deref(), req.pid, decision.allowed())
                {
                    state.shells.remember(&session, pid, &command, &stored);
                }
                (stored, decision.message)
            }
            Err(e) => return e.into_response(),
        }
    } else {
        let (stored, message) = append_refusal(&state, event).answer(decision.message);
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
    axum::Json(PreflightResponse {
        allowed,
        decision: decision.action.as_str().to_owned(),
        message,
        matched_policies: decision.matched_policies,
        eval_duration_us: eval_us,
        audit_id: stored,
        policy_decision,
        approval_id: None,
    })
    .into_response()
}

/// Records a library's report that `count` execs ran unchecked (it failed open: no
/// server answered), as one event with decision `unchecked` and `unchecked: count`,
/// written before the event of the preflight that carried the report. It is no decision,
/// so it never changes the answer; if it cannot be written, that is said on stderr.
fn record_unchecked_report(
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
fn claimed_another(
    state: &AppState,
    req: &PreflightRequest,
    tool: &str,
    command: &str,
    who: &AgentIdentity,
) -> Response {
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
    error(
        StatusCode::FORBIDDEN,
        format!("agent credentials cannot claim another agent or session: {bound}"),
    )
}

/// Records a call its caller could not check (see `PreflightRequest::unchecked`):
/// denied in enforce mode, logged in monitor mode, never evaluated.
#[allow(clippy::too_many_arguments)]
fn unchecked(
    state: &AppState,
    req: &PreflightRequest,
    tool: &str,
    agent: &str,
    session: &str,
    command: &str,
    why: &str,
    enforce: bool,
) -> Response {
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
            Err(e) => return e.into_response(),
        }
    };
    axum::Json(PreflightResponse {
        allowed: !enforce,
        decision: decision.action.as_str().to_owned(),
        message,
        matched_policies: Vec::new(),
        eval_duration_us: 0,
        audit_id,
        policy_decision: (!enforce).then(|| "deny".to_owned()),
        approval_id: None,
    })
    .into_response()
}

#[allow(clippy::too_many_arguments)]
fn new_event(
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
fn append(state: &AppState, event: NewEvent) -> Result<String, ApiError> {
    append_linked(state, event, None)
}

/// [`append`], for an event that may be part of an earlier decision (`part_of`).
fn append_linked(
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
fn append_refusal(state: &AppState, event: NewEvent) -> Refusal {
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
enum Refusal {
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
fn printable_cut(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    let mut shown = rampart_contract::printable::printable_string(cut.as_bytes());
    if cut.len() < text.len() {
        shown.push('…');
    }
    shown
}

/// The one place an event is written: its id, or why it could not be.
fn write_event(state: &AppState, event: NewEvent) -> Result<String, String> {
    write_linked(state, event, None)
}

/// [`write_event`]; an event that is part of an earlier decision stays out of the live
/// feed (it is no new decision).
fn write_linked(
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
fn describe_audit_error(e: &rampart_audit::AuditError) -> String {
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
struct AbandonGuard {
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

#[allow(clippy::too_many_arguments)]
async fn ask_and_wait(
    state: Arc<AppState>,
    req: PreflightRequest,
    tool: String,
    agent: String,
    session: String,
    command: String,
    decision: Decision,
    eval_us: u64,
    wait_ms: u64,
) -> Response {
    let wait = Duration::from_millis(wait_ms).min(state.config.approval_timeout);
    let id = ulid::Ulid::from_datetime(std::time::SystemTime::now()).to_string();
    let created = jiff::Timestamp::now();
    let expires = created
        .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::ZERO))
        .unwrap_or(created);
    let info = ApprovalInfo {
        id: id.clone(),
        status: "pending".into(),
        command: rampart_audit::redact(&command).into_owned(),
        agent: agent.clone(),
        session: session.clone(),
        tool: tool.clone(),
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
    let mut rx = match state.approvals.create(info.clone()) {
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
                &req, &tool, &agent, &session, &command, &denied, eval_us, None, true,
            );
            let (audit_id, message) = append_refusal(&state, event).answer(denied.message);
            return axum::Json(PreflightResponse {
                allowed: false,
                decision: Action::Deny.as_str().to_owned(),
                message,
                matched_policies: denied.matched_policies,
                eval_duration_us: eval_us,
                audit_id,
                policy_decision: None,
                approval_id: None,
            })
            .into_response();
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
    let mut guard = AbandonGuard {
        state: state.clone(),
        id: id.clone(),
        armed: true,
    };

    let waited = tokio::time::timeout(wait, rx.wait_for(|o| o.is_some()))
        .await
        .map(|r| r.map(|o| o.clone()));
    let outcome = match waited {
        Ok(Ok(outcome)) => outcome,
        _ => match state.approvals.settle(&id, Outcome::Expired, now_rfc3339()) {
            Ok(info) => {
                state.events.send("resolution", &info);
                Some(Outcome::Expired)
            }
            // Resolved in the instant the wait ended: honour the person's decision.
            Err(_) => rx.borrow().clone(),
        },
    };
    guard.armed = false;
    let outcome = outcome.unwrap_or(Outcome::Expired);
    if let Outcome::Approved { by, .. } = &outcome {
        add_grants(&state, &req, &agent, &session, &command, &id, by);
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
        &req,
        &tool,
        &agent,
        &session,
        &command,
        &final_decision,
        eval_us,
        Some(approval),
        true,
    );
    let allowed = final_decision.allowed();
    let (audit_id, message) = if allowed {
        match append(&state, event) {
            Ok(id) => (id, final_decision.message),
            Err(e) => return e.into_response(),
        }
    } else {
        append_refusal(&state, event).answer(final_decision.message)
    };
    axum::Json(PreflightResponse {
        allowed,
        decision: action.as_str().to_owned(),
        message,
        matched_policies: final_decision.matched_policies,
        eval_duration_us: eval_us,
        audit_id,
        policy_decision: None,
        approval_id: Some(id),
    })
    .into_response()
}

fn pieces_of(command: &str) -> Vec<String> {
    let normalized = rampart_policy::shell::normalize_checked(command);
    // A command the normaliser gave up on grants nothing by its pieces.
    if normalized.truncated {
        return Vec::new();
    }
    normalized.pieces.into_iter().map(|p| p.text).collect()
}

/// An approval covers its command and the programs that command runs itself for a short
/// while in its process tree; "for this session" also the same text in the session.
fn add_grants(
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

fn covering_grant(
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
fn granted(
    state: &AppState,
    req: &PreflightRequest,
    tool: &str,
    agent: &str,
    session: &str,
    command: &str,
    decision: Decision,
    eval_us: u64,
    grant: crate::approvals::Grant,
) -> Response {
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
        Err(e) => return e.into_response(),
    };
    axum::Json(PreflightResponse {
        allowed: true,
        decision: Action::Allow.as_str().to_owned(),
        message: allowed.message,
        matched_policies: allowed.matched_policies,
        eval_duration_us: eval_us,
        audit_id,
        policy_decision: None,
        approval_id: Some(grant.id),
    })
    .into_response()
}

fn with_note(text: String, note: &Option<String>) -> String {
    match note.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => format!("{text}: {n}"),
        _ => text,
    }
}

/// The home directory of the user the server runs as (the agents' user): what `~` means
/// to the policy. Read once; the server's environment does not change.
fn user_home() -> Option<&'static str> {
    static HOME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOME.get_or_init(|| std::env::var("HOME").ok().filter(|h| h.starts_with('/')))
        .as_deref()
}

async fn test(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let req: TestRequest = match parse_body(body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let policy = state.policy();
    let started = Instant::now();
    let normalized = rampart_policy::shell::normalize_checked(&req.command);
    let decision = policy.evaluate_normalized(
        &Request {
            tool: req.tool.as_deref().unwrap_or("exec"),
            agent: req.agent.as_deref().unwrap_or("preload"),
            session: req.session.as_deref().unwrap_or(""),
            command: &req.command,
            home: user_home(),
            ..Request::default()
        },
        &normalized,
    );
    let eval_us = duration_us(started.elapsed());
    axum::Json(TestResponse {
        allowed: decision.allowed(),
        decision: decision.action.as_str().to_owned(),
        message: decision.message,
        matched_policies: decision.matched_policies,
        rule: decision.rule.map(|o| o.to_string()),
        pieces: normalized.pieces.into_iter().map(|p| p.text).collect(),
        eval_duration_us: eval_us,
    })
    .into_response()
}

#[derive(Deserialize)]
struct ApprovalsQuery {
    pid: Option<String>,
}

/// `?pid=N` narrows the list to the asks of one process: the library and the launchers
/// use it to learn the id of the ask they are waiting on, so the wait line can say what to
/// type. An agent credential sees only its own agent and session. Each entry carries
/// `expires_in_s`, the whole seconds left, so a caller needs no clock agreement.
async fn list_approvals(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(query): Query<ApprovalsQuery>,
) -> Response {
    let pid = match query.pid.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(pid)) => Some(pid),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "pid must be a number"),
    };
    let now = jiff::Timestamp::now();
    let list: Vec<serde_json::Value> = state
        .approvals
        .pending()
        .into_iter()
        .filter(|a| pid.is_none() || a.pid == pid)
        .filter(|a| match &caller {
            Caller::Agent(who) => a.agent == who.agent && a.session == who.session,
            _ => true,
        })
        .filter_map(|a| {
            let left = a
                .expires_at
                .parse::<jiff::Timestamp>()
                .ok()
                .map(|t| t.duration_since(now).as_secs().max(0))
                .unwrap_or(0);
            let mut v = serde_json::to_value(a).ok()?;
            if let Some(obj) = v.as_object_mut() {
                obj.insert("expires_in_s".into(), left.into());
            }
            Some(v)
        })
        .collect();
    axum::Json(serde_json::json!({ "approvals": list })).into_response()
}

async fn get_approval(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match (state.approvals.get(&id), caller) {
        (Some(info), Caller::Agent(who))
            if info.agent != who.agent || info.session != who.session =>
        {
            error(
                StatusCode::FORBIDDEN,
                "agent credentials cannot read approvals of another agent or session",
            )
        }
        (Some(info), _) => axum::Json(info).into_response(),
        (None, _) => error(StatusCode::NOT_FOUND, format!("no approval {id}")),
    }
}

async fn register_agent(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req: AgentRequest = match parse_body(body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    match state.agents.register(&req.agent, &req.session, req.pid) {
        Ok((token, who)) => {
            eprintln!(
                "rampart: agent credential {} issued: agent {}, session {}, pid {}",
                who.id,
                printable_cut(&who.agent),
                printable_cut(&who.session),
                who.pid
            );
            axum::Json(AgentCredential {
                token,
                id: who.id,
                agent: who.agent,
                session: who.session,
            })
            .into_response()
        }
        Err(e) => error(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.message,
        ),
    }
}

async fn revoke_agent(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if state.agents.revoke(&id) {
        eprintln!("rampart: agent credential {id} revoked with the admin token");
        axum::Json(serde_json::json!({ "revoked": id })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no agent credential {id} (revoked, ended or never issued)"),
        )
    }
}

async fn revoke_own_agent(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    match caller {
        Caller::Agent(who) => {
            state.agents.revoke(&who.id);
            eprintln!("rampart: agent credential {} revoked by itself", who.id);
            axum::Json(serde_json::json!({ "revoked": who.id })).into_response()
        }
        Caller::Admin => error(
            StatusCode::BAD_REQUEST,
            "DELETE /v1/agents/self needs an agent credential; with the admin token, revoke one by id (DELETE /v1/agents/{id})",
        ),
    }
}

async fn resolve_approval(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req: ResolveRequest = match parse_body(body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let by = req
        .resolved_by
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "api".to_owned());
    // The note goes into the audit trail, the stream and the waiting agent's answer:
    // redacted like a command.
    let req_message = req.message.map(|m| rampart_audit::redact(&m).into_owned());
    match req.scope.as_deref() {
        None | Some("command") => {}
        Some("session") if req.approved => state.approvals.set_scope(&id, "session"),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "scope `{}` is not one of: command, session (approvals only)",
                    printable_cut(other)
                ),
            );
        }
    }
    let outcome = if req.approved {
        Outcome::Approved {
            by,
            message: req_message,
        }
    } else {
        Outcome::Denied {
            by,
            message: req_message,
        }
    };
    match state.approvals.settle(&id, outcome, now_rfc3339()) {
        Ok(info) => {
            state.events.send("resolution", &info);
            axum::Json(info).into_response()
        }
        Err(ResolveError::NotFound) => error(StatusCode::NOT_FOUND, format!("no approval {id}")),
        Err(ResolveError::Gone(info)) => error(
            StatusCode::GONE,
            format!("approval {id} is already {}", info.status),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    agent: Option<String>,
    session: Option<String>,
    decision: Option<String>,
    tool: Option<String>,
    q: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
    /// `quiet=false` leaves quiet events out (the dashboard with its "quiet" box off).
    quiet: Option<bool>,
}

fn parse_since(since: Option<&str>) -> Result<Option<SystemTime>, ApiError> {
    match since.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(value) => rampart_audit::parse_since(value, SystemTime::now())
            .map(Some)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, rampart_audit::AuditError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("audit reader failed: {e}"),
        )),
    }
}

async fn audit_events(
    State(state): State<Arc<AppState>>,
    Query(q): Query<EventsQuery>,
) -> Response {
    let since = match parse_since(q.since.as_deref()) {
        Ok(since) => since,
        Err(e) => return e.into_response(),
    };
    let query = rampart_audit::Query {
        agent: q.agent,
        session: q.session,
        decision: q.decision,
        tool: q.tool,
        text: q.q,
        since,
        before: q.before,
        limit: Some(q.limit.unwrap_or(100).min(10_000)),
        hide_quiet: q.quiet == Some(false),
    };
    let dir = state.config.audit_dir.clone();
    match blocking(move || rampart_audit::read_events(&dir, &query)).await {
        Ok(events) => axum::Json(serde_json::json!({ "events": events })).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    since: Option<String>,
    agent: Option<String>,
}

async fn audit_stats(State(state): State<Arc<AppState>>, Query(q): Query<StatsQuery>) -> Response {
    let since = match parse_since(q.since.as_deref()) {
        Ok(since) => since,
        Err(e) => return e.into_response(),
    };
    let dir = state.config.audit_dir.clone();
    match blocking(move || rampart_audit::stats(&dir, since, q.agent.as_deref())).await {
        Ok(stats) => axum::Json(stats).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn audit_verify(State(state): State<Arc<AppState>>) -> Response {
    let dir = state.config.audit_dir.clone();
    match blocking(move || rampart_audit::verify(&dir)).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    /// `all=true`: quiet decisions too (hidden from the live feed by default).
    all: Option<bool>,
}

async fn event_stream(
    State(state): State<Arc<AppState>>,
    Query(q): Query<StreamQuery>,
) -> Response {
    let all = q.all == Some(true);
    let Some(subscription) = state.events.subscribe() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many event-stream clients ({} listening); try again later",
                crate::events::MAX_SUBSCRIBERS
            ),
        );
    };
    let slot = subscription.slot;
    let stream = BroadcastStream::new(subscription.rx).filter_map(move |item| {
        // The slot lives as long as the stream: the client's place is freed when it goes.
        let _slot = &slot;
        match item {
            Ok(message) if message.quiet && !all => None,
            Ok(message) => Some(Ok::<Event, Infallible>(
                Event::default()
                    .event(message.event)
                    .data(message.data.as_ref()),
            )),
            Err(BroadcastStreamRecvError::Lagged(n)) => Some(Ok(Event::default()
                .event("lagged")
                .data(format!("{{\"skipped\":{n}}}")))),
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn reload(State(state): State<Arc<AppState>>) -> Response {
    let result = crate::reload::reload(&state, "api").await;
    let status = if result.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, axum::Json(result)).into_response()
}

async fn status(State(state): State<Arc<AppState>>) -> Response {
    let loaded = state.loaded();
    let set = &loaded.set;
    axum::Json(Status {
        mode: state.config.mode.as_str().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: state.started.elapsed().as_secs(),
        policies: set.policies().len(),
        rules: set.rule_count(),
        policy_source: loaded.source.clone(),
        policy_files: set
            .files()
            .iter()
            .map(|f| PolicyFileStatus {
                path: f.path.display().to_string(),
                policies: f.policies,
                rules: f.rules,
            })
            .collect(),
        pending_approvals: state.approvals.pending_count(),
        audit_dir: state.config.audit_dir.display().to_string(),
        last_reload_error: loaded.last_error.clone(),
        unrecorded_refusals: state.metrics.unrecorded_refusals(),
        agent_credentials: state.agents.count(),
        exports: state.exports.status(),
        policy_repo: state.policy_repo.status(),
        notify_targets: state.notifier.targets,
        notify_sent: state.notifier.stats.sent.load(Ordering::Relaxed),
        notify_failed: state.notifier.stats.failed.load(Ordering::Relaxed),
        notify_dropped: state.notifier.stats.dropped.load(Ordering::Relaxed),
        notify_last_error: state.notifier.stats.last_error(),
    })
    .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = state.metrics.render(
                state.approvals.pending_count(),
                state.events.subscribers(),
                state.connections.open(),
            );
            let n = &state.notifier.stats;
            for (name, help, value) in [
                (
                    "rampart_notify_sent_total",
                    "Notifications delivered.",
                    &n.sent,
                ),
                (
                    "rampart_notify_failed_total",
                    "Notifications given up after every retry.",
                    &n.failed,
                ),
                (
                    "rampart_notify_dropped_total",
                    "Notifications dropped (queue full).",
                    &n.dropped,
                ),
            ] {
                text.push_str(&format!(
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                    value.load(Ordering::Relaxed)
                ));
            }
            text.push_str(&crate::export::render_metrics(&state.exports.status()));
            text
        },
    )
        .into_response()
}
