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
use rampart_policy::Request;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::approvals::{Outcome, ResolveError};
use crate::auth::Caller;
use crate::state::AppState;
use crate::wire::{
    AgentCredential, AgentRequest, ErrorBody, PolicyFileStatus, ResolveRequest, Status,
    TestRequest, TestResponse,
};

pub use crate::decide::BODY_LIMIT;
use crate::decide::{
    self, OVERSIZED_COMMAND_CHARS, duration_us, now_rfc3339, printable_cut, user_home,
};

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
    pub(crate) status: StatusCode,
    pub(crate) message: String,
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

async fn preflight(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(tool): Path<String>,
    body: axum::body::Body,
) -> Response {
    let who = caller.agent();
    let decided = match read_preflight_body(body).await {
        Ok(Ok(bytes)) => decide::decide_body(&state, who, &tool, &bytes),
        Ok(Err(prefix)) => decide::Decided::Now(decide::oversized(&state, &tool, &prefix, who)),
        Err(e) => return e.into_response(),
    };
    match decided {
        decide::Decided::Now(answer) => answer.into_response(),
        decide::Decided::Hold(hold) => hold.wait(state).await.into_response(),
    }
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
