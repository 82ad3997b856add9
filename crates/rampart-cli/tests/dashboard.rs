//! The dashboard's static files: served without a token, with a strict CSP and the other
//! protective headers, while `/v1/*` still needs the token; `rampart dashboard` prints a
//! URL that logs the page in.

use std::io::{Read, Write};

use crate::util::{Home, Server};

/// A raw HTTP/1.1 GET over TCP: (status, lower-cased header lines, body).
fn get(server: &Server, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn static_files_need_no_token_and_carry_strict_headers() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    for (path, content_type, needle) in [
        (
            "/dashboard/",
            "text/html; charset=utf-8",
            "<script src=\"app.js\"",
        ),
        (
            "/dashboard/app.js",
            "text/javascript; charset=utf-8",
            "textContent",
        ),
        (
            "/dashboard/app.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme",
        ),
        ("/dashboard/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let (status, headers, body) = get(&server, path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            header(&headers, "content-type"),
            Some(content_type),
            "{path}"
        );
        assert_eq!(
            header(&headers, "content-security-policy"),
            Some(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
            "{path}"
        );
        assert_eq!(header(&headers, "x-frame-options"), Some("DENY"));
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"));
        assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
        assert!(body.contains(needle), "{path}: {body}");
    }

    let (status, headers, _) = get(&server, "/dashboard");
    assert_eq!(status, 308);
    assert_eq!(header(&headers, "location"), Some("/dashboard/"));

    // The page holds no data: everything it shows still needs the token.
    let (status, _, body) = get(&server, "/v1/status");
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = get(&server, "/v1/events/stream");
    assert_eq!(status, 401);
    let (status, _, _) = get(&server, "/dashboard/nope.js");
    assert_eq!(status, 404);
}

#[test]
fn dashboard_command_prints_a_logged_in_url_for_the_running_server() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let run = home.run(&["dashboard"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        format!(
            "http://127.0.0.1:{}/dashboard/#token={}\n",
            server.port, server.token
        )
    );
}
