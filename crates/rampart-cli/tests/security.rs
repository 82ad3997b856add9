//! Security checks (issue 8, item 3), server and dashboard side:
//! - the route table is the whole API: only `/healthz` and the dashboard's files answer
//!   without the token, unknown paths and unrouted methods answer with nothing but an error;
//! - the home, the token and everything else the server writes are private, and the server
//!   refuses to start on a home or token file other users could write (or read the token);
//! - secrets in commands never leave the server unredacted: not on disk, not in the API,
//!   not in the live stream, not in pending approvals, not in answers or logs.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rampart_server::{Access, ROUTES, Route};
use serde_json::json;

use crate::util::{Endpoint, Home, Server, request};

/// A sample value for each path parameter of the route table. A new parameter name
/// makes the tests fail here until it gets one.
fn sample(param: &str) -> &'static str {
    match param {
        "tool" => "exec",
        "id" => "01J00000000000000000000000",
        other => panic!("route parameter {{{other}}} has no sample value in security.rs"),
    }
}

/// `route.path` with every `{param}` replaced by its sample value.
pub fn concrete_path(route: &Route) -> String {
    route
        .path
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) => sample(param).to_owned(),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// One raw HTTP/1.1 exchange: (status, lower-cased headers, body).
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` with exactly the given extra header lines (and a body for
/// anything but GET/HEAD) over either listener, and reads the whole answer.
pub fn raw(endpoint: &Endpoint, method: &str, path: &str, headers: &[&str]) -> Raw {
    let mut message =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        message.push_str(h);
        message.push_str("\r\n");
    }
    let body = if matches!(method, "GET" | "HEAD") {
        ""
    } else {
        "{}"
    };
    if !body.is_empty() {
        message.push_str("Content-Type: application/json\r\n");
    }
    message.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut answer = Vec::new();
    match endpoint {
        Endpoint::Unix(path) => {
            let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(message.as_bytes()).unwrap();
            s.read_to_end(&mut answer).unwrap();
        }
        Endpoint::Tcp(addr) => {
            let mut s = std::net::TcpStream::connect(addr.as_str()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(message.as_bytes()).unwrap();
            s.read_to_end(&mut answer).unwrap();
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP answer: {answer:?}"));
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
    Raw {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `{"error": "..."}` and nothing else.
pub fn assert_error_only(r: &Raw, what: &str) {
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{what}: {}",
        r.body
    );
    let v: serde_json::Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {}", r.body));
    let object = v.as_object().unwrap();
    assert_eq!(object.len(), 1, "{what}: {}", r.body);
    assert!(object["error"].is_string(), "{what}: {}", r.body);
}

fn public_routes() -> std::collections::BTreeSet<&'static str> {
    ROUTES
        .iter()
        .filter(|r| r.access == Access::Public)
        .map(|r| r.path)
        .collect()
}

#[test]
fn the_only_public_routes_are_healthz_and_the_dashboard_files() {
    // The oracle is the repository's dashboard/ directory, not the table itself.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboard");
    let mut expected: std::collections::BTreeSet<String> =
        ["/healthz", "/", "/dashboard", "/dashboard/"]
            .into_iter()
            .map(str::to_owned)
            .collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        expected.insert(format!("/dashboard/{name}"));
    }
    let public: std::collections::BTreeSet<String> =
        public_routes().into_iter().map(str::to_owned).collect();
    assert_eq!(public, expected);
    // Public routes are read-only and take no parameters.
    for route in ROUTES.iter().filter(|r| r.access == Access::Public) {
        assert_eq!(route.method, "GET", "{route:?}");
        assert!(!route.path.contains('{'), "{route:?}");
    }
    // Everything under /v1/ and /metrics needs the token (DESIGN.md §5); agent
    // credentials reach exactly what the library and the supervisor need (issue 13).
    let mut agent_routes = Vec::new();
    for route in ROUTES {
        if route.path.starts_with("/v1/") || route.path.starts_with("/metrics") {
            assert_ne!(route.access, Access::Public, "{route:?}");
        }
        if route.access == Access::Agent {
            agent_routes.push((route.method, route.path));
        }
    }
    assert_eq!(
        agent_routes,
        [
            ("POST", "/v1/preflight/{tool}"),
            ("GET", "/v1/approvals"),
            ("GET", "/v1/approvals/{id}"),
            ("DELETE", "/v1/agents/self"),
        ]
    );
    // No route is listed twice.
    let mut seen = std::collections::HashSet::new();
    for route in ROUTES {
        assert!(seen.insert((route.method, route.path)), "{route:?} twice");
    }

    // And they answer as listed, on both listeners, without a token and without data.
    let home = Home::new();
    let server = Server::start(&home, &[]);
    for endpoint in [server.tcp(), server.unix()] {
        for route in ROUTES.iter().filter(|r| r.access == Access::Public) {
            let r = raw(&endpoint, route.method, route.path, &[]);
            let expected_status = if matches!(route.path, "/" | "/dashboard") {
                308
            } else {
                200
            };
            assert_eq!(r.status, expected_status, "{route:?} on {endpoint:?}");
            assert!(!r.body.contains(&server.token), "{route:?}");
            assert!(
                !r.body.contains(&home.path().display().to_string()),
                "{route:?}"
            );
        }
    }
}

#[test]
fn every_protected_endpoint_refuses_missing_and_wrong_tokens() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let token = server.token.clone();
    let wrong = format!("rampart_{}", "0".repeat(64));
    let authorization = |value: &str| format!("Authorization: {value}");
    let credentials: Vec<(String, Vec<String>)> = vec![
        ("no header".into(), vec![]),
        (
            "a wrong token".into(),
            vec![authorization(&format!("Bearer {wrong}"))],
        ),
        ("an empty token".into(), vec![authorization("Bearer ")]),
        ("no scheme".into(), vec![authorization(&token)]),
        (
            "another scheme".into(),
            vec![authorization(&format!("Basic {token}"))],
        ),
        (
            "the token plus a character".into(),
            vec![authorization(&format!("Bearer {token}0"))],
        ),
        (
            "the token minus a character".into(),
            vec![authorization(&format!(
                "Bearer {}",
                &token[..token.len() - 1]
            ))],
        ),
        (
            "another header".into(),
            vec![format!("X-Rampart-Token: {token}")],
        ),
        ("a cookie".into(), vec![format!("Cookie: token={token}")]),
    ];
    let token_routes: Vec<&Route> = ROUTES
        .iter()
        .filter(|r| r.access != Access::Public)
        .collect();
    assert!(token_routes.len() >= 12, "{token_routes:?}");
    for endpoint in [server.tcp(), server.unix()] {
        for route in &token_routes {
            let path = concrete_path(route);
            for (what, headers) in &credentials {
                let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
                let r = raw(&endpoint, route.method, &path, &headers);
                assert_eq!(
                    r.status, 401,
                    "{} {path} with {what} on {endpoint:?}: {}",
                    route.method, r.body
                );
                assert_error_only(&r, &format!("{} {path} with {what}", route.method));
            }
            // `?token=` is for the SSE stream only (browsers' EventSource cannot set
            // headers); a wrong one is refused there too.
            let separator = if path.contains('?') { '&' } else { '?' };
            let with_query = format!("{path}{separator}token={token}");
            if route.path == "/v1/events/stream" {
                // Accepted: read no further than the status line (the stream stays open).
                assert_eq!(stream_status(&endpoint, &with_query), 200);
                let r = raw(
                    &endpoint,
                    route.method,
                    &format!("{path}?token={wrong}"),
                    &[],
                );
                assert_eq!(r.status, 401);
            } else {
                let r = raw(&endpoint, route.method, &with_query, &[]);
                assert_eq!(r.status, 401, "{} {with_query}: {}", route.method, r.body);
                assert_error_only(&r, &with_query);
            }
            // HEAD runs GET routes: refused the same way.
            if route.method == "GET" {
                let r = raw(&endpoint, "HEAD", &path, &[]);
                assert_eq!(r.status, 401, "HEAD {path}");
            }
        }
    }
    // The scheme is case-insensitive (RFC 7235): the right token with `bearer` or
    // `BEARER` is accepted on both transports.
    for endpoint in [server.tcp(), server.unix()] {
        for scheme in ["bearer", "BEARER", "Bearer"] {
            let header = authorization(&format!("{scheme} {token}"));
            let r = raw(&endpoint, "GET", "/v1/status", &[header.as_str()]);
            assert_eq!(r.status, 200, "{scheme} on {endpoint:?}: {}", r.body);
        }
    }
    // Nothing refused left a trace: no audit event, no approval.
    assert!(crate::util::audit_ids(home.path()).is_empty());
    let approvals = server.call("GET", "/v1/approvals", None).json().unwrap();
    assert_eq!(approvals["approvals"], json!([]));
}

/// The status of a streaming GET, reading only the status line.
fn stream_status(endpoint: &Endpoint, path: &str) -> u16 {
    let message = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut line = String::new();
    match endpoint {
        Endpoint::Unix(socket) => {
            let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(message.as_bytes()).unwrap();
            BufReader::new(s).read_line(&mut line).unwrap();
        }
        Endpoint::Tcp(addr) => {
            let mut s = std::net::TcpStream::connect(addr.as_str()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(message.as_bytes()).unwrap();
            BufReader::new(s).read_line(&mut line).unwrap();
        }
    }
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn unknown_paths_and_unrouted_methods_answer_with_an_error_and_nothing_else() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    server.preflight(json!({"agent": "a", "params": {"command": "ls /secret-listing"}}));
    let token_header = format!("Authorization: Bearer {}", server.token);
    let unknown = [
        "/token",
        "/rampart.sock",
        "/serve.port",
        "/audit",
        "/audit/",
        "/policies/custom.yaml",
        "/.env",
        "/v1",
        "/v1/",
        "/v1/nope",
        "/V1/STATUS",
        "/v1/status/",
        "/v1/audit/events/all",
        "/v1/approvals/01J00000000000000000000000/resolve/now",
        "/v1/preflight",
        "/v1/preflight/exec/extra",
        "/metrics/x",
        "/healthz/",
        "/dashboard/nope.js",
        "/dashboard/app.js.map",
        "/dashboard/../token",
        "/dashboard/%2e%2e/token",
        "/dashboard/..%2ftoken",
        "//v1/status",
        "/v1/status%00",
    ];
    for endpoint in [server.tcp(), server.unix()] {
        for path in unknown {
            for headers in [vec![], vec![token_header.as_str()]] {
                for method in ["GET", "POST"] {
                    let r = raw(&endpoint, method, path, &headers);
                    assert_eq!(r.status, 404, "{method} {path} on {endpoint:?}: {}", r.body);
                    assert_error_only(&r, path);
                    assert_eq!(r.body, r#"{"error":"no such endpoint"}"#);
                }
            }
        }
        // Every routed path, with each method it is not routed for: 405, no data, token
        // or not.
        for route in ROUTES {
            let path = concrete_path(route);
            let routed: Vec<&str> = ROUTES
                .iter()
                .filter(|r| r.path == route.path)
                .map(|r| r.method)
                .collect();
            for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
                if routed.contains(&method) {
                    continue;
                }
                for headers in [vec![], vec![token_header.as_str()]] {
                    let r = raw(&endpoint, method, &path, &headers);
                    assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
                    assert_error_only(&r, &format!("{method} {path}"));
                    assert!(!r.body.contains("secret-listing"));
                }
            }
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn everything_the_server_writes_is_private_after_start_rotate_and_background() {
    let home = Home::new();
    // A home that others may read is tightened (nothing was written in it yet).
    chmod(home.path(), 0o755);
    let server = Server::start(&home, &[]);
    server.preflight(json!({"agent": "a", "params": {"command": "ls"}}));
    let p = |rel: &str| home.path().join(rel);
    assert_eq!(mode(home.path()), 0o700);
    assert_eq!(mode(&p("token")), 0o600);
    assert_eq!(mode(&p("rampart.sock")), 0o600);
    assert_eq!(mode(&p("serve.port")), 0o600);
    assert_eq!(mode(&p("agents.json")), 0o600);
    assert_eq!(mode(&p("policies")), 0o700);
    assert_eq!(mode(&p("audit")), 0o700);
    let files: Vec<_> = std::fs::read_dir(p("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    let run = home.run(&["token", "rotate"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(mode(&p("token")), 0o600);
    assert!(!p(".token.tmp").exists());
    drop(server);

    // The background server's pid and log files; an old world-readable log is tightened.
    std::fs::write(p("serve.log"), "old line\n").unwrap();
    chmod(&p("serve.log"), 0o644);
    let run = home.run(&["serve", "--background", "--port", "0"]);
    assert_eq!(run.code(), 0, "{} {}", run.stdout(), run.stderr());
    let modes = [
        mode(&p("serve.pid")),
        mode(&p("serve.log")),
        mode(&p("serve.port")),
        mode(&p("token")),
        mode(&p("rampart.sock")),
    ];
    let run = home.run(&["serve", "stop"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        modes, [0o600; 5],
        "serve.pid, serve.log, serve.port, token, socket"
    );
}

/// The one line `rampart serve` prints when it refuses a home.
fn refusal(path: &Path, mode: u32, why: &str, fix: &str) -> String {
    format!(
        "rampart: error: refusing to start the server: {} has mode {mode:04o}: {why}; fix: {fix}\n",
        path.display()
    )
}

/// Runs `rampart ARGS` expecting it to end by itself (a refused start); a server that
/// starts anyway is killed after 20 s and fails the test instead of hanging it.
fn run_bounded(home: &Home, args: &[&str]) -> crate::util::Run {
    let mut child = home
        .cmd()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            let _ = home.run(&["serve", "stop"]);
            panic!("`rampart {}` did not refuse to start", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::util::Run(child.wait_with_output().unwrap())
}

const HOME_WRITABLE: &str = "other users can write in it (replace the admin token, add policies)";

/// A loopback port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_refuses_a_home_others_can_write_and_says_how_to_fix_it() {
    for bad in [0o777, 0o770, 0o722, 0o1777] {
        let home = Home::new();
        chmod(home.path(), bad);
        let fix = format!("chmod 700 {}", home.path().display());
        let expected = refusal(home.path(), bad, HOME_WRITABLE, &fix);
        for args in [
            vec!["serve", "--port", "0"],
            vec!["serve", "--background", "--port", "0"],
        ] {
            let run = run_bounded(&home, &args);
            assert_eq!(run.code(), 2, "{args:?} with mode {bad:o}");
            assert_eq!(run.stderr(), expected, "{args:?}");
            assert_eq!(run.stdout(), "");
        }
        // Refused, not silently repaired, and nothing was created.
        assert_eq!(mode(home.path()), bad);
        assert!(!home.path().join("token").exists());
        assert!(!home.path().join("serve.pid").exists());

        // preload and supervise do not start a server there either.
        let port = free_port().to_string();
        for sub in ["preload", "supervise"] {
            let run = run_bounded(&home, &[sub, "--port", &port, "--", "/bin/true"]);
            assert_eq!(run.code(), 2, "{sub}: {}", run.stderr());
            assert_eq!(
                run.stderr(),
                format!(
                    "rampart: error: no policy server answers at http://127.0.0.1:{port} and none was started: {}",
                    expected.trim_start_matches("rampart: error: ")
                ),
                "{sub}"
            );
        }
        assert!(!home.path().join("token").exists());

        // doctor names the problem and the fix.
        let out = home.run(&["doctor"]).stdout();
        assert!(
            out.contains(&format!(
                "  FAIL  home      {} has mode {bad:04o}; {HOME_WRITABLE}\n        {:<9} fix: {fix}\n",
                home.path().display(),
                ""
            )),
            "{out}"
        );

        // The fix it names works.
        let (program, args) = fix.split_once(' ').unwrap();
        assert!(
            std::process::Command::new(program)
                .args(args.split(' '))
                .status()
                .unwrap()
                .success()
        );
        let server = Server::start(&home, &[]);
        assert_eq!(mode(home.path()), 0o700);
        drop(server);
    }
}

#[test]
fn serve_refuses_a_token_others_can_read_or_write_until_rotated() {
    let home = Home::new();
    drop(Server::start(&home, &[]));
    let token = home.path().join("token");
    let fix = format!("chmod 600 {} && rampart token rotate", token.display());
    for (bad, why) in [
        (0o666, "other users can write the admin token"),
        (0o620, "other users can write the admin token"),
        (0o644, "other users can read the admin token"),
        (0o640, "other users can read the admin token"),
        (0o604, "other users can read the admin token"),
    ] {
        chmod(&token, bad);
        let run = run_bounded(&home, &["serve", "--port", "0"]);
        assert_eq!(run.code(), 2, "mode {bad:o}");
        assert_eq!(run.stderr(), refusal(&token, bad, why, &fix));
        assert_eq!(mode(&token), bad, "refused, not repaired");
        let out = home.run(&["doctor"]).stdout();
        assert!(
            out.contains(&format!(
                "  FAIL  token     {} has mode {bad:04o}; {why}\n        {:<9} fix: {fix}\n",
                token.display(),
                ""
            )),
            "{out}"
        );
    }
    // Owner-only modes are fine.
    for good in [0o600, 0o400] {
        chmod(&token, good);
        let server = Server::start(&home, &[]);
        drop(server);
    }
    // Rotating replaces a token others may have read with a private new one.
    chmod(&token, 0o644);
    let old = std::fs::read_to_string(&token).unwrap();
    let run = home.run(&["token", "rotate"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(mode(&token), 0o600);
    assert_ne!(std::fs::read_to_string(&token).unwrap(), old);
    let server = Server::start(&home, &[]);
    let out = home.run(&["doctor"]).stdout();
    assert!(
        out.contains(&format!(
            "  ok    token     {} (mode 0600)\n",
            token.display()
        )),
        "{out}"
    );
    drop(server);
}

// ---------------------------------------------------------------------------------------
// Redaction everywhere a command goes.

/// Commands carrying every secret shape the redactor knows, each secret unique.
fn secret_commands() -> Vec<(String, Vec<&'static str>)> {
    let ghp = "ghp_LeakCheck0123456789abcdefghijklmnop";
    let aws = "AKIAQWERTYUIOPASDFGH";
    let sk = "sk-LeakCheckOpenAiKey0123456789";
    // `rampart_` + 64 hex: the shape of an admin token (not this server's).
    let rampart_shape = "rampart_5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
    assert_eq!(rampart_shape.len(), 8 + 64);
    vec![
        (format!("git clone https://{ghp}@github.com/x/y"), vec![ghp]),
        (
            format!("aws configure set aws_access_key_id {aws}"),
            vec![aws],
        ),
        (
            "curl -H 'Authorization: Bearer bearerLeak0aa' https://api.example".into(),
            vec!["bearerLeak0aa"],
        ),
        ("psql --password=pwLeak1bb -h db".into(), vec!["pwLeak1bb"]),
        ("vault login --token tokLeak2cc".into(), vec!["tokLeak2cc"]),
        ("mysql -u root -pmyLeak3dd db".into(), vec!["myLeak3dd"]),
        (
            "git clone https://alice:urlLeak4ee@git.example/x".into(),
            vec!["urlLeak4ee"],
        ),
        (
            "curl https://api.example/v1?token=queryLeak5ff".into(),
            vec!["queryLeak5ff"],
        ),
        (
            "env AWS_SECRET_ACCESS_KEY=awsLeak6gg aws s3 ls".into(),
            vec!["awsLeak6gg"],
        ),
        (format!("python tool.py --key {sk}"), vec![sk]),
        (format!("echo {rampart_shape}"), vec![rampart_shape]),
        (
            "curl -u admin:curlLeak7hh https://x.example".into(),
            vec!["curlLeak7hh"],
        ),
        ("sshpass -p sshLeak8ii ssh host".into(), vec!["sshLeak8ii"]),
        (
            "psql postgres://app:pgLeak9jj@db:5432/app".into(),
            vec!["pgLeak9jj"],
        ),
    ]
}

/// The argv a shell would make of `command` (single quotes only, as used here).
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in command.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => words.push(std::mem::take(&mut word)),
            c => word.push(c),
        }
    }
    words.push(word);
    words
}

/// Reads SSE messages in the background into `sink` until the connection closes.
fn subscribe(server: &Server) -> std::sync::Arc<std::sync::Mutex<String>> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        s,
        "GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let sink = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let out = sink.clone();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let mut s = out.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    sink
}

#[test]
fn secrets_never_leave_the_server_unredacted() {
    let home = Home::new();
    home.policy(
        "leak.yaml",
        r#"version: "1"
default_action: allow
policies:
  - name: leak-ask
    rules:
      - action: ask
        when:
          command_matches: ["deploy *"]
        message: "Deploys need a person"
  - name: leak-deny
    rules:
      - action: deny
        when:
          command_matches: ["psql *"]
        message: "No database shells"
"#,
    );
    let server = Server::start(&home, &[]);
    let stream = subscribe(&server);
    let commands = secret_commands();
    let mut all_secrets: Vec<&str> = commands.iter().flat_map(|(_, s)| s.clone()).collect();
    let mut answers = String::new();
    for (command, _) in &commands {
        let argv = words(command);
        let r = server.preflight(json!({
            "agent": "leak-test", "session": "leak-1", "params": {"command": command},
            "argv": argv, "enforce": true, "via": "execve",
        }));
        answers.push_str(&r.to_string());
    }

    // An ask holding a secret, waiting for a person: look at it while it is pending.
    let ask_secret = "deployLeak10kk";
    let url_secret = "deployUrlLeak11ll";
    all_secrets.extend([ask_secret, url_secret, "noteLeak12mm"]);
    let ask_command =
        format!("deploy --token {ask_secret} https://ops:{url_secret}@deploy.example");
    let waiter = {
        let socket = server.unix();
        let token = server.token.clone();
        let argv = words(&ask_command);
        let body = json!({
            "agent": "leak-test", "session": "leak-1", "params": {"command": ask_command},
            "argv": argv, "enforce": true, "wait_ms": 30000,
        });
        std::thread::spawn(move || {
            request(
                &socket,
                "POST",
                "/v1/preflight/exec",
                Some(&token),
                Some(&body),
                Duration::from_secs(60),
            )
            .unwrap()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let v = server.call("GET", "/v1/approvals", None).json().unwrap();
        if let Some(a) = v["approvals"].as_array().and_then(|a| a.first()) {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "the ask never became pending");
        std::thread::sleep(Duration::from_millis(20));
    };
    let id = pending["id"].as_str().unwrap().to_owned();
    assert_eq!(
        pending["command"],
        "deploy --token [REDACTED] https://ops:[REDACTED]@deploy.example"
    );
    let one = server
        .call("GET", &format!("/v1/approvals/{id}"), None)
        .text();
    let pending_cli = home.run(&["pending"]);
    assert_eq!(pending_cli.code(), 0, "{}", pending_cli.stderr());
    let resolved = server
        .call(
            "POST",
            &format!("/v1/approvals/{id}/resolve"),
            // A person's note may quote a secret too.
            Some(json!({"approved": false, "resolved_by": "leak-test",
                        "message": "not with --password=noteLeak12mm"})),
        )
        .text();
    let answer = waiter.join().unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json().unwrap()["decision"], "deny");
    assert_eq!(
        answer.json().unwrap()["message"],
        "denied by leak-test: not with --password=[REDACTED]"
    );
    answers.push_str(&answer.text());

    // Everything that may carry a command, gathered.
    let on_disk: String = std::fs::read_dir(home.path().join("audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(on_disk.lines().count(), commands.len() + 1);
    let events = server
        .call("GET", "/v1/audit/events?limit=1000", None)
        .text();
    let searched = server
        .call("GET", "/v1/audit/events?q=REDACTED&limit=1000", None)
        .text();
    let cli_search = home.run(&["audit", "search", "--json"]);
    assert_eq!(cli_search.code(), 0, "{}", cli_search.stderr());
    let cli_tail = home.run(&["audit", "tail", "-n", "100"]);
    assert_eq!(cli_tail.code(), 0, "{}", cli_tail.stderr());
    // The live stream: every decision, the approval and its resolution.
    let decisions_expected = commands.len() + 1;
    assert!(
        crate::util::wait_until(10, || {
            let s = stream.lock().unwrap();
            s.matches("event: decision").count() >= decisions_expected
                && s.contains("event: approval")
                && s.contains("event: resolution")
        }),
        "stream: {}",
        stream.lock().unwrap()
    );
    let streamed = stream.lock().unwrap().clone();
    let channels = [
        ("audit files", on_disk.as_str()),
        ("GET /v1/audit/events", events.as_str()),
        ("GET /v1/audit/events?q=", searched.as_str()),
        ("SSE stream", streamed.as_str()),
        ("GET /v1/approvals/{id}", one.as_str()),
        ("resolve answer", resolved.as_str()),
        ("preflight answers", answers.as_str()),
        ("rampart audit search --json", &cli_search.stdout()),
        ("rampart audit tail", &cli_tail.stdout()),
        ("rampart pending", &pending_cli.stdout()),
        ("server stderr", &server.stderr()),
    ];
    for (channel, text) in channels {
        for secret in &all_secrets {
            assert!(!text.contains(secret), "{channel} leaks {secret}:\n{text}");
        }
    }
    for (channel, text) in channels {
        if !matches!(channel, "preflight answers" | "server stderr") {
            assert!(text.contains("[REDACTED]"), "{channel}: {text}");
        }
    }
    // What stayed says what ran.
    assert!(
        on_disk.contains(r#""command":"mysql -u root -p[REDACTED] db""#),
        "{on_disk}"
    );
    assert!(
        on_disk.contains(r#""argv":["curl","-u","admin:[REDACTED]","https://x.example"]"#),
        "{on_disk}"
    );
    assert_eq!(home.run(&["audit", "verify"]).code(), 0);
}

/// A reload re-reads the token (after `rampart token rotate`) only from a file others
/// cannot read or write: a token planted in a world-writable file is not adopted, the
/// one in force keeps working, and the server says why.
#[test]
fn a_reload_does_not_adopt_a_token_others_can_write() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let token_file = home.path().join("token");
    let planted = format!("rampart_{}", "ab".repeat(32));
    std::fs::write(&token_file, &planted).unwrap();
    chmod(&token_file, 0o666);
    crate::util::signal(server.pid(), "HUP");
    // The whole reload, not only its token line: the count of finished reloads below must
    // not be taken while this one is still running.
    assert!(crate::util::wait_until(10, || {
        let said = server.stderr();
        said.contains("token not re-read, the one in force stays") && said.contains("(SIGHUP)")
    }));
    assert!(
        server.stderr().contains(&format!(
            "{} has mode 0666: other users can write the admin token",
            token_file.display()
        )),
        "{}",
        server.stderr()
    );
    let status = |token: &str| {
        request(
            &server.unix(),
            "GET",
            "/v1/status",
            Some(token),
            None,
            Duration::from_secs(10),
        )
        .unwrap()
        .status
    };
    assert_eq!(status(&planted), 401);
    assert_eq!(status(&server.token), 200);

    // Made private again, the next reload adopts it (what `token rotate` relies on).
    chmod(&token_file, 0o600);
    let reloads = server.stderr().matches("(SIGHUP)").count();
    crate::util::signal(server.pid(), "HUP");
    assert!(crate::util::wait_until(10, || server
        .stderr()
        .matches("(SIGHUP)")
        .count()
        > reloads));
    assert_eq!(status(&planted), 200);
    assert_eq!(status(&server.token), 401);
}

/// A refused request with a large body still gets its 401 over TCP, although the server
/// answers without reading the body: a reset instead of the answer would look like "no
/// answer" to the library, which with fail-open would run the command unchecked. (Checked
/// up to 20 MB bodies by hand; the 413 path reads the body for the same reason.)
#[test]
fn a_wrong_token_with_a_large_body_gets_its_401_not_a_reset() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let body = format!(
        "{{\"params\":{{\"command\":\"echo {}\"}}}}",
        "x".repeat(1_500_000)
    );
    for round in 0..4 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST /v1/preflight/exec HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer rampart_{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            "0".repeat(64),
            body.len()
        );
        let mut writer = stream.try_clone().unwrap();
        let body = body.clone();
        let sender = std::thread::spawn(move || {
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(body.as_bytes());
        });
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        sender.join().unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 401"),
            "round {round}: {read:?}, answer {:?}",
            text.chars().take(200).collect::<String>()
        );
    }
}

/// Issue 12, item 3: `rampart serve` makes itself non-dumpable, so an agent running as
/// the same (ordinary) user can neither list `/proc/<serve>/fd`, read its `environ` or
/// `mem`, nor copy one of its descriptors with `pidfd_getfd` (the way to steal a socket
/// or the seccomp listener). Server and probe both run as uid 1000; a sleeping process of
/// that user is the control, on which every probe works.
#[test]
fn serve_is_not_dumpable_a_same_user_agent_cannot_read_or_copy_its_descriptors() {
    use std::io::BufRead;
    use std::os::unix::fs::chown;
    use std::process::{Command, Stdio};
    const TEST: &str =
        "security::serve_is_not_dumpable_a_same_user_agent_cannot_read_or_copy_its_descriptors";
    if running_as_root().is_none() {
        eprintln!("SKIPPED {TEST}: needs root to run the server and the probe as uid 1000");
        return;
    }
    let home = Home::new();
    chown(home.path(), Some(1000), Some(1000)).unwrap();
    let probe = home.path().join("probe.py");
    std::fs::write(&probe, NON_DUMPABLE_PROBE).unwrap();
    chown(&probe, Some(1000), Some(1000)).unwrap();
    let as_user = |program: &str| {
        let mut cmd = crate::util::clean(Command::new("setpriv"));
        cmd.args([
            "--reuid",
            "1000",
            "--regid",
            "1000",
            "--clear-groups",
            program,
        ])
        .env("RAMPART_HOME", home.path())
        .env_remove("RAMPART_TOKEN")
        .env_remove("LD_PRELOAD");
        cmd
    };
    let mut server = as_user(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("rampart: listening on "), "{first:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
    assert!(status.contains("\nUid:\t1000\t"), "{status}");
    let out = as_user("/usr/bin/python3")
        .arg(&probe)
        .arg(server.id().to_string())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"control": {"environ": "ok", "fd": "ok", "getfd": "ok", "mem": "ok"}, "server": {"environ": "Permission denied", "fd": "Permission denied", "getfd": "Operation not permitted", "mem": "Permission denied"}}"#
    );
}

/// `Some(())` when this test process runs as root.
fn running_as_root() -> Option<()> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .any(|l| l.starts_with("Uid:\t0\t"))
        .then_some(())
}

/// Tries, as the calling user, each way into another process of the same user.
const NON_DUMPABLE_PROBE: &str = r#"
import ctypes, json, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return e.strerror or str(e)
def getfd(target, fd):
    pidfd = os.pidfd_open(target)
    try:
        r = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        os.close(r)
    finally:
        os.close(pidfd)
def probe(target):
    return {
        "fd": attempt(lambda: os.listdir(f"/proc/{target}/fd")),
        "environ": attempt(lambda: open(f"/proc/{target}/environ", "rb").read()),
        "mem": attempt(lambda: open(f"/proc/{target}/mem", "rb").close()),
        "getfd": attempt(lambda: getfd(target, 0)),
    }
control = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)
out = {"server": probe(int(sys.argv[1])), "control": probe(control.pid)}
control.kill()
control.wait()
print(json.dumps(out, sort_keys=True))
"#;
