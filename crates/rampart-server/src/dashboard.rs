//! The live dashboard's static files (`dashboard/` in the repository), embedded into the
//! binary so the page works offline and always matches the server that serves it.
//!
//! These routes need no token: the page holds no data, it asks `/v1/*` with the token
//! the person gives it. Every answer carries a strict Content-Security-Policy (scripts,
//! styles and connections to this origin only, no framing), so a command that smuggles
//! markup into the audit trail has nothing to run even if it were ever rendered as HTML.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX_HTML: &str = include_str!("../../../dashboard/index.html");
const APP_JS: &str = include_str!("../../../dashboard/app.js");
const APP_CSS: &str = include_str!("../../../dashboard/app.css");
const FAVICON_SVG: &str = include_str!("../../../dashboard/favicon.svg");

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

// The routes are listed in `api::ROUTES` (all `Public`).

/// `/` and `/dashboard` → `/dashboard/` (the page's relative asset URLs resolve there; a
/// person who opens the server's address gets the dashboard, not a 404).
pub async fn redirect() -> Redirect {
    Redirect::permanent("/dashboard/")
}

pub async fn index_html() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

pub async fn favicon_svg() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_TYPE, content_type);
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    // Revalidate every time: after an upgrade the page must match the new server.
    set(headers, header::CACHE_CONTROL, "no-cache");
    response
}
