//! Bearer-token check for `/v1/*` and `/metrics` (constant-time). The SSE stream also
//! accepts `?token=` because browsers' EventSource cannot set headers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::error;
use crate::state::AppState;
use crate::token::constant_time_eq;

pub async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let expected = state.token();
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
    let presented = from_header.map(str::to_owned).or(from_query);
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => error(StatusCode::UNAUTHORIZED, "invalid token").into_response(),
        None => error(
            StatusCode::UNAUTHORIZED,
            "missing token: send `Authorization: Bearer <token>` (see `rampart token show`)",
        )
        .into_response(),
    }
}
