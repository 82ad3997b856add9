//! The dashboard's static files: served without a token, with a strict CSP and the other
//! protective headers, while `/v1/*` still needs the token; `rampart dashboard` prints a
//! URL that logs the page in.

use std::io::{Read, Write};

use rampart_server::{Access, ROUTES};

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
    // Every public file route of the server's table (security.rs checks that the public
    // routes are exactly `/healthz` and the files of dashboard/).
    let files: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.access == Access::Public && r.path.starts_with("/dashboard/"))
        .map(|r| r.path)
        .collect();
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        // What each kind of file must be served as, and a line it must contain.
        let (content_type, needle) = match path.rsplit_once('.').map_or("html", |(_, ext)| ext) {
            "html" => ("text/html; charset=utf-8", "<script src=\"app.js\""),
            "js" => ("text/javascript; charset=utf-8", "textContent"),
            "css" => ("text/css; charset=utf-8", "prefers-color-scheme"),
            "svg" => ("image/svg+xml", "<svg"),
            other => panic!("{path}: no expected content type for .{other} in dashboard.rs"),
        };
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

    // The server's address itself leads to the page too (issue 16).
    for path in ["/dashboard", "/"] {
        let (status, headers, _) = get(&server, path);
        assert_eq!(status, 308, "{path}");
        assert_eq!(header(&headers, "location"), Some("/dashboard/"), "{path}");
    }
    // The page holds no data: everything it shows needs the token (every `/v1/` route is
    // checked in security.rs).
    let (status, _, body) = get(&server, "/v1/status");
    assert_eq!(status, 401, "{body}");
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
