//! Bearer-token check for `/v1/*` and `/metrics` (constant-time). The SSE stream also
//! accepts `?token=` because browsers' EventSource cannot set headers.
//!
//! Two kinds of token are accepted: the admin token (`$RAMPART_HOME/token`, every route)
//! and agent credentials (`agents.rs`), which only the routes marked `Agent` in the
//! route table take; every other route answers an agent credential 403. The handler
//! learns who called from the request's [`Caller`] extension.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::agents::{AgentIdentity, Refused};
use crate::api::{ApiError, error};
use crate::state::AppState;

/// Who sent a request that passed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Agent(AgentIdentity),
}

impl Caller {
    /// The agent credential's identity; `None` for the admin token.
    pub fn agent(&self) -> Option<&AgentIdentity> {
        match self {
            Caller::Admin => None,
            Caller::Agent(who) => Some(who),
        }
    }
}

/// The token a request presents, if any.
fn presented(request: &Request) -> Option<String> {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        // The scheme is case-insensitive (RFC 7235 §2.1): `bearer` works as `Bearer`.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let from_query = if request.uri().path() == "/v1/events/stream" {
        request.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .map(str::to_owned)
        })
    } else {
        None
    };
    from_header.map(str::to_owned).or(from_query)
}

/// Who the request is from, or the 401 answer.
fn identify(state: &AppState, request: &Request) -> Result<Caller, ApiError> {
    identify_token(state, presented(request).as_deref().map(str::as_bytes))
}

/// Who presents `token` (the bearer token of a request; `None`: none was sent), or the
/// 401 answer. The HTTP routes and the Unix socket's fast path both ask here.
pub(crate) fn identify_token(state: &AppState, token: Option<&[u8]>) -> Result<Caller, ApiError> {
    let Some(token) = token.map(<[u8]>::trim_ascii) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing token: send `Authorization: Bearer <token>` (see `rampart token show`)",
        ));
    };
    if state.is_admin_token(token) {
        return Ok(Caller::Admin);
    }
    // Tokens are ASCII: anything else is no token of ours.
    let token = std::str::from_utf8(token).unwrap_or_default();
    if token.starts_with(crate::agents::PREFIX) {
        return match state.agents.authenticate(token) {
            Ok(identity) => Ok(Caller::Agent(identity)),
            Err(Refused::Ended { pid, .. }) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("agent credential ended: the process it was bound to (pid {pid}) is gone"),
            )),
            Err(Refused::Unknown) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid token")),
        };
    }
    Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid token"))
}

/// Routes for the admin token only: an agent credential gets 403.
pub async fn require_admin(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    match identify(&state, &request) {
        Ok(Caller::Admin) => {
            request.extensions_mut().insert(Caller::Admin);
            next.run(request).await
        }
        Ok(Caller::Agent(_)) => error(
            StatusCode::FORBIDDEN,
            format!(
                "agent credentials cannot call {} {}: it needs the admin token",
                request.method(),
                request.uri().path()
            ),
        ),
        Err(refusal) => refusal.into_response(),
    }
}

/// Routes an agent credential may call too (preflight, its own approvals).
pub async fn require_caller(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    match identify(&state, &request) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}
