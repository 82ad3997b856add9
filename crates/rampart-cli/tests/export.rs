//! Issue 17 end to end: `serve --export` to a real `rsyslogd` (our own, on a free
//! loopback port with a private config and work directory, never the system daemon) and
//! to a local HTTP collector, across a `kill -9` of the server and an outage of the
//! receiver; `serve --policy-repo` against a local git repository.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde_json::json;

use crate::util::{Home, Server, audit_ids, wait_until};

fn exec(command: &str) -> serde_json::Value {
    json!({"agent": "preload", "session": "s1", "params": {"command": command}})
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Our own rsyslogd: imtcp on `port`, every message's raw text to `raw.log` and the
/// fields rsyslog's RFC 5424 parser found to `parsed.log`.
struct Rsyslog {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16) -> Option<Rsyslog> {
        Rsyslog::start_with(dir, port, None)
    }

    /// With `tls` (CA, certificate and key files): imtcp over rsyslog's OpenSSL driver.
    fn start_with(dir: &Path, port: u16, tls: Option<[&Path; 3]>) -> Option<Rsyslog> {
        if Command::new("rsyslogd").arg("-v").output().is_err() {
            println!("SKIPPED: rsyslogd is not installed (.ci/run installs Debian's rsyslog)");
            return None;
        }
        let (driver, module) = match tls {
            None => (String::new(), "module(load=\"imtcp\")".to_owned()),
            Some([ca, cert, key]) => (
                format!(
                    " DefaultNetstreamDriver=\"ossl\" DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                    ca.display(),
                    cert.display(),
                    key.display()
                ),
                "module(load=\"imtcp\" StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")".to_owned(),
            ),
        };
        let conf = format!(
            r#"global(workDirectory="{dir}" maxMessageSize="64k"{driver})
{module}
template(name="raw" type="string" string="%rawmsg%\n")
template(name="parsed" type="string" string="%protocol-version% %app-name% %msgid%\n")
ruleset(name="rampart") {{
  action(type="omfile" file="{dir}/raw.log" template="raw")
  action(type="omfile" file="{dir}/parsed.log" template="parsed")
}}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="rampart")
"#,
            dir = dir.display()
        );
        std::fs::write(dir.join("private.conf"), conf).unwrap();
        let mut r = Rsyslog {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        r.restart();
        Some(r)
    }

    fn restart(&mut self) {
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("private.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(30, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "rsyslogd did not listen on {port}"
        );
    }

    /// SIGTERM (rsyslogd then writes out what it accepted) and wait for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::util::signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    fn raw(&self) -> String {
        std::fs::read_to_string(self.dir.join("raw.log")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn decide(server: &Server, from: usize, to: usize) {
    for i in from..to {
        server.preflight(exec(&format!("git show export-{i}")));
    }
}

fn status(home: &Home) -> String {
    home.run(&["serve", "status"]).stdout()
}

fn missing(ids: &std::collections::HashSet<String>, received: &str) -> usize {
    ids.iter()
        .filter(|id| {
            !received.contains(&format!("id=\"{id}\""))
                && !received.contains(&format!("\"id\":\"{id}\""))
        })
        .count()
}

#[test]
fn syslog_export_loses_nothing_across_kill_9_and_a_receiver_outage() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(mut rsyslog) = Rsyslog::start(work.path(), port) else {
        return;
    };
    let url = format!("syslog://127.0.0.1:{port}");
    let server = Server::start(&home, &["--export", &url]);
    decide(&server, 0, 300);
    server.kill9();
    let server = Server::start(&home, &["--export", &url]);
    decide(&server, 300, 450);
    // The receiver goes away: decisions go on, the lag and the error show in status.
    rsyslog.stop();
    decide(&server, 450, 600);
    assert!(
        wait_until(60, || {
            let s = status(&home);
            s.contains(", last error: ") && !s.contains("lag 0 event(s)")
        }),
        "{}",
        status(&home)
    );
    let line = status(&home)
        .lines()
        .find(|l| l.starts_with("  export:   "))
        .unwrap()
        .to_owned();
    assert!(line.starts_with(&format!("  export:   {url}: ")), "{line}");
    assert!(!line.contains("lag 0 event(s)"), "{line}");
    let metrics = server.call("GET", "/metrics", None).text();
    assert!(
        metrics.contains(&format!("rampart_export_failing{{target=\"{url}\"}} 1")),
        "{metrics}"
    );

    rsyslog.restart();
    let ids = audit_ids(home.path());
    assert_eq!(ids.len(), 600);
    assert!(
        wait_until(120, || missing(&ids, &rsyslog.raw()) == 0),
        "{} of 600 events never reached rsyslog",
        missing(&ids, &rsyslog.raw())
    );
    assert!(wait_until(60, || status(&home).contains("lag 0 event(s)\n")));
    rsyslog.stop();
    // RFC 5424 as rsyslog parsed it: version 1, our app name, the decision as MSGID.
    let parsed = std::fs::read_to_string(work.path().join("parsed.log")).unwrap();
    assert!(parsed.lines().count() >= 600);
    for line in parsed.lines() {
        assert_eq!(line, "1 rampart allow", "{parsed}");
    }
    // The cursor survived the kill: after the restart the export resumed where it was
    // instead of starting over (at most the one batch in flight is sent twice).
    let received = rsyslog.raw().lines().count();
    println!("rsyslog received {received} messages for 600 events");
    assert!(
        received < 900,
        "{received} messages: the export started over"
    );
    for line in rsyslog.raw().lines() {
        assert!(line.starts_with("<134>1 "), "{line}");
        assert!(
            line.contains(" rampart - allow [rampart@32473 agent=\"preload\" ")
                && line.contains(" id=\"01"),
            "{line}"
        );
        assert!(line.contains(" hash=\"sha256:"), "{line}");
    }
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// A local HTTP collector: answers 200 to each POST and keeps the bodies; the bearer
/// it saw is kept too. Stopped by dropping the listener (connections are then refused).
struct Collector {
    auth: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(port: u16, bodies: std::sync::Arc<std::sync::Mutex<String>>) -> Collector {
        Collector::start_with(port, bodies, None)
    }

    /// With `tls`, the collector speaks HTTPS (rustls).
    fn start_with(
        port: u16,
        bodies: std::sync::Arc<std::sync::Mutex<String>>,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    ) -> Collector {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let auth = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (b, a, s) = (bodies.clone(), auth.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((tcp, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                tcp.set_nonblocking(false).unwrap();
                let mut conn: Box<dyn ReadWrite> = match &tls {
                    None => Box::new(tcp),
                    Some(config) => Box::new(rustls::StreamOwned::new(
                        rustls::ServerConnection::new(config.clone()).unwrap(),
                        tcp,
                    )),
                };
                let mut data = Vec::new();
                let mut buf = [0u8; 65536];
                let (head_end, length) = loop {
                    let n = conn.read(&mut buf).unwrap();
                    assert!(n > 0, "client closed early");
                    data.extend_from_slice(&buf[..n]);
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..i]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .unwrap()
                            .trim()
                            .parse()
                            .unwrap();
                        if let Some(v) =
                            head.lines().find_map(|l| l.strip_prefix("authorization: "))
                        {
                            a.lock().unwrap().push(v.to_owned());
                        }
                        break (i + 4, length);
                    }
                };
                while data.len() < head_end + length {
                    let n = conn.read(&mut buf).unwrap();
                    assert!(n > 0);
                    data.extend_from_slice(&buf[..n]);
                }
                b.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&data[head_end..]));
                conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .unwrap();
                conn.flush().unwrap();
            }
        });
        Collector {
            auth,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.auth.lock().unwrap().clone()
    }
}

#[test]
fn http_export_sends_the_events_as_written_across_kill_9_and_an_outage() {
    let home = Home::new();
    let port = free_port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let collector = Collector::start(port, bodies.clone());
    let bearer = home.path().join("collector.token");
    std::fs::write(&bearer, "s3cret\n").unwrap();
    let url = format!(
        "http://127.0.0.1:{port}/ingest?bearer_file={}",
        bearer.display()
    );
    let server = Server::start(&home, &["--export", &url]);
    decide(&server, 0, 200);
    server.kill9();
    let server = Server::start(&home, &["--export", &url]);
    decide(&server, 200, 300);
    let auth = collector.stop();
    decide(&server, 300, 400);
    assert!(wait_until(60, || status(&home).contains(", last error: ")));
    let collector = Collector::start(port, bodies.clone());
    let ids = audit_ids(home.path());
    assert_eq!(ids.len(), 400);
    assert!(
        wait_until(120, || missing(&ids, &bodies.lock().unwrap()) == 0),
        "{} of 400 events never reached the collector",
        missing(&ids, &bodies.lock().unwrap())
    );
    let auth = [auth, collector.stop()].concat();
    assert!(!auth.is_empty());
    assert!(auth.iter().all(|a| a == "bearer s3cret"), "{auth:?}");
    // The lines arrive exactly as written in the audit files (hash chain intact).
    let received = bodies.lock().unwrap().clone();
    let mut on_disk = String::new();
    let mut files: Vec<_> = std::fs::read_dir(home.path().join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        on_disk.push_str(&std::fs::read_to_string(f).unwrap());
    }
    for line in on_disk.lines() {
        assert!(
            received.contains(line),
            "{line} was not received as written"
        );
    }
    drop(server);

    // The collector's copy is an external anchor: lines cut off the end of the local
    // trail (which the chain alone cannot show) are named by `verify --against`.
    let copy = home.path().join("collector-copy.jsonl");
    std::fs::write(&copy, &received).unwrap();
    let ok = home.run(&["audit", "verify", "--against", copy.to_str().unwrap()]);
    assert_eq!(ok.code(), 0, "{}", ok.stdout());
    assert!(ok.stdout().ends_with(&format!(
        "ok: 400 exported event(s) in {} found unchanged in the local trail\n",
        copy.display()
    )));
    let newest = newest_day_file(home.path());
    let text = std::fs::read_to_string(&newest).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (kept, cut) = lines.split_at(lines.len() - 3);
    std::fs::write(&newest, format!("{}\n", kept.join("\n"))).unwrap();
    let chain_only = home.run(&["audit", "verify"]);
    assert_eq!(chain_only.code(), 0, "{}", chain_only.stdout());
    let against = home.run(&["audit", "verify", "--against", copy.to_str().unwrap()]);
    assert_eq!(against.code(), 1, "{}", against.stdout());
    for line in cut {
        let id = serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(against.stdout().contains(&format!(
            "BROKEN: event {id} is in the exported copy but not in the local trail (removed or truncated)\n"
        )));
    }
    assert!(
        against
            .stdout()
            .ends_with("3 of 400 exported event(s) missing or changed in the local trail\n")
    );
}

fn newest_day_file(home: &Path) -> PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(home.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files.pop().unwrap()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn head(dir: &Path) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn deny_policy(name: &str, program: &str) -> String {
    format!(
        "version: \"1\"\ndefault_action: allow\npolicies:\n  - name: {name}\n    match:\n      tool: [\"exec\"]\n    rules:\n      - action: deny\n        when:\n          command_matches: [\"{program} *\"]\n        message: \"not {program}\"\n"
    )
}

#[test]
fn policy_repo_adopts_a_new_commit_and_refuses_a_broken_one() {
    let home = Home::new();
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.path().join("team.yaml"),
        deny_policy("team-no-curl", "curl"),
    )
    .unwrap();
    git(repo.path(), &["add", "team.yaml"]);
    git(repo.path(), &["commit", "--quiet", "-m", "no curl"]);
    let first = head(repo.path());
    let server = Server::start(
        &home,
        &[
            "--policy-repo",
            repo.path().to_str().unwrap(),
            "--policy-repo-interval",
            "2s",
        ],
    );
    let decision = |cmd: &str| {
        server.preflight(exec(cmd))["decision"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(wait_until(60, || decision("curl http://x") == "deny"));
    assert!(status(&home).contains(&format!(
        "  repo:     {} at {first}\n",
        repo.path().display()
    )));

    // A new commit is adopted within the interval.
    std::fs::write(
        repo.path().join("team.yaml"),
        deny_policy("team-no-wget", "wget"),
    )
    .unwrap();
    git(repo.path(), &["commit", "--quiet", "-am", "no wget"]);
    let second = head(repo.path());
    assert!(wait_until(60, || decision("wget http://x") == "deny"));
    assert_eq!(decision("curl http://x"), "allow");
    assert!(status(&home).contains(&format!(" at {second}\n")));

    // A broken commit is refused; the policy in force stays, and status names it.
    std::fs::write(repo.path().join("team.yaml"), "version: 1\npolicies: [\n").unwrap();
    git(repo.path(), &["commit", "--quiet", "-am", "broken"]);
    let broken = head(repo.path());
    assert!(
        wait_until(60, || status(&home)
            .contains(&format!("  refused:  commit {broken}: "))),
        "{}",
        status(&home)
    );
    assert!(status(&home).contains(&format!(" at {second}\n")));
    assert_eq!(decision("wget http://x"), "deny");
    assert!(server.stderr().contains(&format!(
        "rampart: policy repository: refused commit {broken}, the policy in force stays: "
    )));
    // A commit that loads but whose own inline tests fail is refused too: the file says
    // `wget` must be denied, the rule it ships denies `curl` instead.
    let mut untested = deny_policy("team-no-curl-again", "curl");
    untested.push_str("tests:\n  - command: \"wget http://x\"\n    expect: deny\n");
    std::fs::write(repo.path().join("team.yaml"), untested).unwrap();
    git(repo.path(), &["commit", "--quiet", "-am", "tests fail"]);
    let failing = head(repo.path());
    assert!(
        wait_until(60, || status(&home)
            .contains(&format!("  refused:  commit {failing}: "))),
        "{}",
        status(&home)
    );
    assert!(
        status(&home).contains("inline test failed"),
        "{}",
        status(&home)
    );
    assert_eq!(decision("wget http://x"), "deny");
    assert_eq!(decision("curl http://x"), "allow");
    // Adoptions and the refusal are in the audit trail, with their commits.
    let audit = home
        .run(&["audit", "search", "--tool", "policy", "--json"])
        .stdout();
    assert!(audit.contains("\"command\":\"refuse "), "{audit}");
    assert!(audit.contains("\"command\":\"adopt "), "{audit}");

    // The repository goes away (the network is down) and the server restarts: the last
    // adopted commit stays in force and status says the fetch fails.
    drop(server);
    let moved = repo.path().with_extension("gone");
    std::fs::rename(repo.path(), &moved).unwrap();
    let server = Server::start(
        &home,
        &[
            "--policy-repo",
            repo.path().to_str().unwrap(),
            "--policy-repo-interval",
            "2s",
        ],
    );
    let decision = |cmd: &str| {
        server.preflight(exec(cmd))["decision"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(decision("wget http://x"), "deny");
    assert!(
        wait_until(60, || status(&home).contains("  fetch:    git fetch: ")),
        "{}",
        status(&home)
    );
    assert!(status(&home).contains(&format!(" at {second}\n")));
    assert_eq!(decision("wget http://x"), "deny");
    std::fs::rename(&moved, repo.path()).unwrap();
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME-ca.pem`) and, signed by it, a certificate for 127.0.0.1 (`NAME.pem`,
/// `NAME.key`).
fn make_certs(dir: &Path, name: &str) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            &format!("/CN=rampart test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

#[test]
fn syslog_tls_export_delivers_and_refuses_a_receiver_the_ca_file_does_not_vouch_for() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    if Command::new("openssl").arg("version").output().is_err() {
        println!("SKIPPED: openssl is not installed");
        return;
    }
    if !Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so").exists()
        && !Path::new("/usr/lib/rsyslog/lmnsd_ossl.so").exists()
    {
        println!(
            "SKIPPED: rsyslog's OpenSSL driver is not installed (.ci/run installs rsyslog-openssl)"
        );
        return;
    }
    make_certs(dir, "receiver");
    make_certs(dir, "stranger");
    let port = free_port();
    let Some(rsyslog) = Rsyslog::start_with(
        dir,
        port,
        Some([
            &dir.join("receiver-ca.pem"),
            &dir.join("receiver.pem"),
            &dir.join("receiver.key"),
        ]),
    ) else {
        return;
    };
    let home = Home::new();
    let good = format!(
        "syslog+tls://127.0.0.1:{port}?ca_file={}",
        dir.join("receiver-ca.pem").display()
    );
    let wrong = format!(
        "syslog+tls://127.0.0.1:{port}?ca_file={}&app=wrong",
        dir.join("stranger-ca.pem").display()
    );
    let server = Server::start(&home, &["--export", &good, "--export", &wrong]);
    decide(&server, 0, 50);
    let ids = audit_ids(home.path());
    assert!(
        wait_until(60, || missing(&ids, &rsyslog.raw()) == 0),
        "{} of 50 events never reached rsyslog over TLS",
        missing(&ids, &rsyslog.raw())
    );
    // The target whose CA file does not vouch for the receiver sends nothing and says why.
    let refused = format!(
        "  export:   {wrong}: 0 delivered, lag 50 event(s), last error: sending to 127.0.0.1:{port}: invalid peer certificate: UnknownIssuer\n"
    );
    assert!(
        wait_until(60, || status(&home).contains(&refused)),
        "{}",
        status(&home)
    );
    assert!(!rsyslog.raw().contains(" wrong - "));
    for line in rsyslog.raw().lines() {
        assert!(line.starts_with("<134>1 "), "{line}");
    }
}

#[test]
fn https_export_delivers_to_a_collector_the_ca_file_vouches_for() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    if Command::new("openssl").arg("version").output().is_err() {
        println!("SKIPPED: openssl is not installed");
        return;
    }
    make_certs(dir, "collector");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("collector.pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("collector.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let port = free_port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let collector = Collector::start_with(port, bodies.clone(), Some(std::sync::Arc::new(config)));
    let home = Home::new();
    let url = format!(
        "https://127.0.0.1:{port}/ingest?ca_file={}",
        dir.join("collector-ca.pem").display()
    );
    let server = Server::start(&home, &["--export", &url]);
    decide(&server, 0, 30);
    let ids = audit_ids(home.path());
    assert!(
        wait_until(60, || missing(&ids, &bodies.lock().unwrap()) == 0),
        "{} of 30 events never reached the HTTPS collector",
        missing(&ids, &bodies.lock().unwrap())
    );
    assert!(wait_until(60, || status(&home).contains(&format!(
        "  export:   {url}: 30 delivered, lag 0 event(s)\n"
    ))));
    drop(server);
    collector.stop();
}
