//! Hostile input end to end (issue 8 §2): ugly commands started by a real preloaded Python
//! agent (`agents/hostile_agent.py`) against a real `rampart serve` with the embedded
//! standard profile, and malformed request bodies sent straight to the server. For every
//! command: the exact decision (allowed runs, denied gets EPERM), exactly one audit event
//! per check with the command recorded faithfully (lossless for UTF-8; bytes that are not
//! UTF-8 become U+0080..U+00FF, one character per byte, as `preload/README.md` documents),
//! `rampart audit verify` passes, and the server still answers `/healthz`.
//!
//! Commands the standard profile denies are harmless if they ran: they read a private key
//! path under the scratch directory, which does not exist.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::library;
use crate::util::{Home, Run, Server};

const AGENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents/hostile_agent.py");
const PATH: &str = "/usr/bin:/bin";

fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 must be installed for the hostile tests");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A scratch directory under /tmp with a name of digits only.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!("/tmp/rampart-hostile-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn bytes(&self) -> Vec<u8> {
        self.0.as_os_str().as_bytes().to_vec()
    }

    fn text(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How the library writes one argv word into the command (preload/src/sink.rs): as is
/// when every byte is shell-safe, else single-quoted with `'\''` for quotes.
fn shell_word(word: &[u8]) -> Vec<u8> {
    let safe = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80 || b"_-./:=@%+,*?[]^".contains(&b);
    if !word.is_empty() && word.iter().all(|b| safe(*b)) {
        return word.to_vec();
    }
    let mut out = b"'".to_vec();
    for &b in word {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// Bytes as the server receives them: valid UTF-8 unchanged, every other byte as the
/// character with that number (U+0080..U+00FF).
fn wire(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|b| char::from(*b)));
    }
    out
}

/// The command string the library sends for `argv` (argv[0] kept).
fn command(argv: &[Vec<u8>]) -> String {
    let words: Vec<Vec<u8>> = argv.iter().map(|w| shell_word(w)).collect();
    wire(&words.join(&b' '))
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// What one exec check must leave in the audit trail.
struct Check {
    command: String,
    decision: &'static str,
    /// `argv` as recorded; `None` to skip (asserted through `command`).
    argv: Option<Vec<String>>,
    cwd: Option<String>,
}

enum Outcome {
    /// Ran with exit status 0 and printed exactly this.
    Ran(Vec<u8>),
    Eperm,
}

struct Case {
    name: &'static str,
    argv: Vec<Vec<u8>>,
    executable: Option<Vec<u8>>,
    cwd: Option<Vec<u8>>,
    env: Option<Vec<(String, Vec<u8>)>>,
    outcome: Outcome,
    /// The checks this case makes, in order: one per exec.
    checks: Vec<Check>,
}

impl Case {
    /// One exec of `argv`, recorded as sent.
    fn new(name: &'static str, argv: Vec<Vec<u8>>, outcome: Outcome) -> Case {
        let decision = match outcome {
            Outcome::Ran(_) => "allow",
            Outcome::Eperm => "deny",
        };
        let check = Check {
            command: command(&argv),
            decision,
            argv: Some(argv.iter().map(|w| wire(w)).collect()),
            cwd: None,
        };
        Case {
            name,
            argv,
            executable: None,
            cwd: None,
            env: None,
            outcome,
            checks: vec![check],
        }
    }
}

struct Setup {
    home: Home,
    server: Server,
    scratch: Scratch,
}

impl Setup {
    /// No policy file: the embedded standard profile applies.
    fn standard() -> Setup {
        library();
        let home = Home::new();
        let server = Server::start(&home, &[]);
        Setup {
            home,
            server,
            scratch: Scratch::new(),
        }
    }

    /// Runs the agent over `cases` under `rampart preload`; its stdout, stderr and exit.
    fn run_agent(&self, cases: &[Case]) -> Run {
        let spec: Vec<Value> = cases
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "argv": c.argv.iter().map(|a| hex(a)).collect::<Vec<_>>(),
                    "executable": c.executable.as_deref().map(hex),
                    "cwd": c.cwd.as_deref().map(hex),
                    "env": c.env.as_ref().map(|env| env
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(hex(v))))
                        .collect::<serde_json::Map<_, _>>()),
                })
            })
            .collect();
        let spec_path = self.scratch.0.join("spec.json");
        std::fs::write(&spec_path, json!({ "cases": spec }).to_string()).unwrap();
        let mut cmd = crate::util::clean(Command::new(env!("CARGO_BIN_EXE_rampart")));
        cmd.env_clear()
            .env("RAMPART_HOME", self.home.path())
            .env("HOME", self.home.path())
            .env("PATH", PATH)
            .env("LC_ALL", "C")
            .current_dir(&self.scratch.0)
            .args([
                "preload",
                "--url",
                &format!("http://127.0.0.1:{}", self.server.port),
                "--no-autostart",
                "--token",
                &self.server.token,
                "--ask-timeout",
                "5s",
                "--",
                &python(),
                AGENT,
            ])
            .arg(&spec_path);
        crate::util::run(cmd, 180)
    }

    /// Audit events of the exec checks (the agent's own check by `rampart preload` left
    /// out), oldest first.
    fn check_events(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.home.path().join("audit"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|e| e == "jsonl"));
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .filter(|e| e["via"] != "rampart-preload")
            .collect()
    }

    /// The server is alive, and `rampart audit verify` passes.
    fn assert_healthy(&self) {
        let health = crate::util::request(
            &self.server.tcp(),
            "GET",
            "/healthz",
            None,
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!((health.status, health.text().as_str()), (200, "ok"));
        let verify = self.home.run(&["audit", "verify"]);
        assert_eq!(verify.code(), 0, "{}{}", verify.stdout(), verify.stderr());
        assert!(
            verify.stdout().contains("hash chain intact"),
            "{}",
            verify.stdout()
        );
    }
}

/// Runs `cases` in one agent and asserts each outcome and each audit event exactly.
fn run_cases(s: &Setup, cases: &[Case]) {
    let r = s.run_agent(cases);
    let stdout = r.stdout();
    let stderr = r.stderr();
    assert_eq!(r.code(), 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), cases.len(), "{stdout}\n{stderr}");
    for (case, result) in cases.iter().zip(&results) {
        assert_eq!(result["name"], case.name);
        match &case.outcome {
            Outcome::Ran(expected) => {
                assert_eq!(result["result"], "ran", "{}: {result}", case.name);
                assert_eq!(result["rc"], 0, "{}: {result}", case.name);
                let got = unhex(result["stdout"].as_str().unwrap());
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(expected),
                    "{}",
                    case.name
                );
                assert_eq!(&got, expected, "{}", case.name);
            }
            Outcome::Eperm => {
                assert_eq!(result["result"], "eperm", "{}: {result}", case.name);
            }
        }
    }

    let events = s.check_events();
    let expected: Vec<(&str, &Check)> = cases
        .iter()
        .flat_map(|c| c.checks.iter().map(move |check| (c.name, check)))
        .collect();
    assert_eq!(
        events.len(),
        expected.len(),
        "one audit event per check: {:#?}",
        events
            .iter()
            .map(|e| e["command"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(120)
                .collect::<String>())
            .collect::<Vec<_>>()
    );
    let mut denials = 0;
    for (event, (name, check)) in events.iter().zip(&expected) {
        assert_eq!(
            event["command"].as_str(),
            Some(check.command.as_str()),
            "{name}: the command as recorded"
        );
        assert_eq!(event["decision"], check.decision, "{name}: {event}");
        assert_eq!(event["tool"], "exec", "{name}");
        if let Some(argv) = &check.argv {
            assert_eq!(event["argv"], json!(argv), "{name}: argv as recorded");
        }
        let cwd = check.cwd.clone().unwrap_or_else(|| s.scratch.text());
        assert_eq!(event["cwd"].as_str(), Some(cwd.as_str()), "{name}: cwd");
        if check.decision == "deny" {
            denials += 1;
        }
    }
    // One `[ERROR]` line per denial, nothing else from the library.
    let denied_lines = stderr
        .lines()
        .filter(|l| l.starts_with("rampart: [ERROR] Policy denied: "))
        .count();
    assert_eq!(denied_lines, denials, "{stderr}");
    s.assert_healthy();
}

fn secret_path(s: &Setup) -> Vec<u8> {
    let mut p = s.scratch.bytes();
    p.extend_from_slice(b"/.ssh/id_rsa");
    p
}

#[test]
fn ugly_arguments_are_decided_and_recorded_exactly() {
    let s = Setup::standard();
    let secret = secret_path(&s);
    let mut cases = Vec::new();

    // NUL cannot be in an argv; it can be in what a shell string makes.
    cases.push(Case::new(
        "nul via printf",
        vec![b("sh"), b("-c"), b("printf 'a\\000b'")],
        Outcome::Ran(b"a\0b".to_vec()),
    ));
    // Bytes that are not UTF-8, in the middle and at the end of an argument.
    let latin = b"\xff\xfe caf\xc3\xa9 \xc3".to_vec();
    let mut printed = latin.clone();
    printed.push(b'\n');
    cases.push(Case::new(
        "invalid utf-8",
        vec![b("echo"), latin],
        Outcome::Ran(printed),
    ));
    // A denied command whose path holds invalid bytes is still denied.
    let mut odd_secret = s.scratch.bytes();
    odd_secret.extend_from_slice(b"/\xff\xfe/.ssh/id_rsa");
    cases.push(Case::new(
        "invalid utf-8, denied",
        vec![b("cat"), odd_secret],
        Outcome::Eperm,
    ));
    // Terminal escapes and an RTL override are recorded as they are.
    let ansi = b"\x1b[31mred\x1b[0m \x1b]0;title\x07 \xe2\x80\xaegnp.exe\xe2\x80\xac".to_vec();
    let mut printed = ansi.clone();
    printed.push(b'\n');
    cases.push(Case::new(
        "ansi and rtl",
        vec![b("echo"), ansi],
        Outcome::Ran(printed),
    ));
    // Newlines and carriage returns inside an argument.
    cases.push(Case::new(
        "newline in an argument",
        vec![b("echo"), b("line1\nline2\r\nline3")],
        Outcome::Ran(b"line1\nline2\r\nline3\n".to_vec()),
    ));
    // A newline in a shell string separates commands: the second one is seen and denied.
    let mut smuggled = b"echo ok\ncat ".to_vec();
    smuggled.extend_from_slice(&secret);
    cases.push(Case::new(
        "newline smuggles a command",
        vec![b("sh"), b("-c"), smuggled],
        Outcome::Eperm,
    ));
    // Leading dashes, empty words, quotes, substitutions and globs as plain arguments.
    cases.push(Case::new(
        "leading dashes",
        vec![b("echo"), b("-n"), b("--"), b("-rf"), b("-")],
        Outcome::Ran(b"-- -rf -".to_vec()),
    ));
    cases.push(Case::new(
        "quotes and substitutions as text",
        vec![
            b("echo"),
            b("it's \"q\" $(id) `id` \\ ;|&"),
            b(""),
            b("*"),
            b("?[a]"),
        ],
        Outcome::Ran(b"it's \"q\" $(id) `id` \\ ;|&  * ?[a]\n".to_vec()),
    ));
    // argv[0] that is neither the program nor its basename is replaced by the program:
    // a `cat` disguised as `ls` is judged as what it is, and a leading `-` (the login
    // shell convention) is no disguise either.
    let mut spoof = Case::new(
        "argv[0] spoofing",
        vec![b("ls"), secret.clone()],
        Outcome::Eperm,
    );
    spoof.executable = Some(b("/usr/bin/cat"));
    spoof.checks[0].command = command(&[b("/usr/bin/cat"), secret.clone()]);
    spoof.checks[0].argv = Some(vec!["ls".into(), wire(&secret)]);
    cases.push(spoof);
    let mut login = Case::new(
        "argv[0] with a leading dash",
        vec![b("-echo"), b("hi")],
        Outcome::Ran(b"hi\n".to_vec()),
    );
    login.executable = Some(b("/usr/bin/echo"));
    login.checks[0].command = command(&[b("/usr/bin/echo"), b("hi")]);
    cases.push(login);
    // A working directory that is not UTF-8.
    let mut odd_dir = s.scratch.bytes();
    odd_dir.extend_from_slice(b"/d\xffir \xe2\x80\xae");
    std::fs::create_dir(std::ffi::OsStr::from_bytes(&odd_dir)).unwrap();
    let mut in_odd_dir = Case::new(
        "cwd not utf-8",
        vec![b("sh"), b("-c"), b("pwd")],
        Outcome::Ran([odd_dir.clone(), b"\n".to_vec()].concat()),
    );
    in_odd_dir.cwd = Some(odd_dir.clone());
    in_odd_dir.checks[0].cwd = Some(wire(&odd_dir));
    cases.push(in_odd_dir);
    // A program whose own path is not UTF-8 (and holds an RTL override).
    let mut odd_program = s.scratch.bytes();
    odd_program.extend_from_slice(b"/\xffecho\xe2\x80\xae");
    std::fs::copy("/usr/bin/echo", std::ffi::OsStr::from_bytes(&odd_program)).unwrap();
    cases.push(Case::new(
        "program path not utf-8",
        vec![odd_program, b("hi")],
        Outcome::Ran(b"hi\n".to_vec()),
    ));
    // A very long environment: 5 variables of 100 000 bytes (one string may not pass
    // 128 KiB, the kernel's limit) and 3 000 small ones. Not sent to the server, but the
    // library must pass it on untouched and re-inject itself into an environment that
    // lacks it.
    let mut long_env = Case::new(
        "very long environment",
        vec![
            b("sh"),
            b("-c"),
            b("printf '%s %s %s' \"${#HUGE0}\" \"${#HUGE4}\" \"$V2999\""),
        ],
        Outcome::Ran(b"100000 100000 x2999".to_vec()),
    );
    let mut env: Vec<(String, Vec<u8>)> = vec![("PATH".into(), b(PATH))];
    env.extend((0..5).map(|i| (format!("HUGE{i}"), vec![b'v'; 100_000])));
    env.extend((0..3_000).map(|i| (format!("V{i}"), b(&format!("x{i}")))));
    long_env.env = Some(env);
    cases.push(long_env);

    run_cases(&s, &cases);
}

#[test]
fn deep_nesting_is_followed_or_refused_never_lost() {
    let s = Setup::standard();
    let secret = String::from_utf8(secret_path(&s)).unwrap();
    let mut cases = Vec::new();

    // 50 levels of `$(...)`: within the normaliser's depth, evaluated and allowed.
    let body = format!("echo {}x{}", "$(echo ".repeat(50), ")".repeat(50));
    cases.push(Case::new(
        "50 nested substitutions",
        vec![b("sh"), b("-c"), b(&body)],
        Outcome::Ran(b"x\n".to_vec()),
    ));
    // 100 levels hiding a secret read: past the depth limit the rest is one piece as
    // written, which the deny rule still sees; denied before the shell starts.
    let body = format!(
        "echo {}cat {secret}{}",
        "$(echo ".repeat(100),
        ")".repeat(100)
    );
    cases.push(Case::new(
        "100 nested substitutions hiding a denied read",
        vec![b("sh"), b("-c"), b(&body)],
        Outcome::Eperm,
    ));
    // `sh -c "sh -c \"...\""` ten deep: every shell is a new exec, checked again.
    let mut level = "echo deep".to_owned();
    let mut bodies = vec![level.clone()];
    for _ in 1..10 {
        let escaped = level.replace('\\', "\\\\").replace('"', "\\\"");
        level = format!("sh -c \"{escaped}\"");
        bodies.push(level.clone());
    }
    bodies.reverse();
    let mut nested = Case::new(
        "sh -c ten deep",
        vec![b("sh"), b("-c"), b(&bodies[0])],
        Outcome::Ran(b"deep\n".to_vec()),
    );
    // The outer check, then one per inner `sh` the shells exec.
    for body in &bodies[1..] {
        nested.checks.push(Check {
            command: command(&[b("sh"), b("-c"), b(body)]),
            decision: "allow",
            argv: Some(vec!["sh".into(), "-c".into(), body.clone()]),
            cwd: None,
        });
    }
    cases.push(nested);
    // The same tower with a denied read at the top: the last shell's exec of `cat` is
    // refused (the outer checks already deny it, since the text is visible in each).
    let escaped_secret = format!("cat {secret}");
    cases.push(Case::new(
        "sh -c with a denied read inside",
        vec![
            b("sh"),
            b("-c"),
            b(&format!("sh -c \"sh -c '{escaped_secret}'\"")),
        ],
        Outcome::Eperm,
    ));

    run_cases(&s, &cases);
}

#[test]
fn ten_thousand_arguments_and_large_argv_are_evaluated_whole() {
    let s = Setup::standard();
    let mut cases = Vec::new();
    // 10 000 arguments.
    let mut many = vec![b("echo")];
    many.extend((0..10_000).map(|i| b(&format!("a{i}"))));
    let printed: Vec<String> = (0..10_000).map(|i| format!("a{i}")).collect();
    cases.push(Case::new(
        "10 000 arguments",
        many,
        Outcome::Ran(format!("{}\n", printed.join(" ")).into_bytes()),
    ));
    // 400 KB in 1 000 arguments: the body (command + argv, ~800 KB) is under 1 MiB.
    let mut big = vec![b("true")];
    big.extend((0..1_000).map(|i| b(&format!("{i:03}{}", "y".repeat(397)))));
    cases.push(Case::new(
        "400 KB of arguments",
        big,
        Outcome::Ran(Vec::new()),
    ));
    // A denied read after 10 000 harmless arguments is still denied.
    let mut tail = vec![b("cat")];
    tail.extend((0..10_000).map(|i| b(&format!("/tmp/n{i}"))));
    tail.push(secret_path(&s));
    cases.push(Case::new(
        "denied after 10 000 arguments",
        tail,
        Outcome::Eperm,
    ));
    run_cases(&s, &cases);
}

/// An argv whose request body passes the server's 1 MiB limit is refused (EPERM) and the
/// refusal is in the audit trail. It used to be decided by a race: the server answered
/// 413 and closed with the body unread, the kernel reset the connection, and the library,
/// seeing no answer, applied fail-open — the command ran, unaudited, about half the time.
#[test]
fn one_megabyte_argv_is_refused_and_audited_every_time() {
    let s = Setup::standard();
    let secret = secret_path(&s);
    let mut cases = Vec::new();
    for round in 0..4 {
        // 1 MB in 10 arguments (each under the kernel's 128 KiB per string).
        let mut spread = vec![b("true")];
        spread.extend((0..10).map(|i| b(&format!("{i}{}", "z".repeat(99_999)))));
        cases.push((
            ["1 MB in 10 arguments", "again", "and again", "once more"][round],
            spread,
        ));
    }
    // A denied command padded past the limit is still refused.
    let mut padded = vec![b("cat"), secret.clone()];
    padded.extend((0..10).map(|i| b(&format!("/tmp/{i}{}", "p".repeat(99_990)))));
    cases.push(("padded denied read", padded));
    // One argument of 1 MB: refused by Rampart before the kernel would say E2BIG.
    cases.push((
        "1 MB in one argument",
        vec![b("true"), vec![b'z'; 1_000_000]],
    ));
    let cases: Vec<Case> = cases
        .into_iter()
        .map(|(name, argv)| Case::new(name, argv, Outcome::Eperm))
        .collect();

    let r = s.run_agent(&cases);
    let stdout = r.stdout();
    let stderr = r.stderr();
    assert_eq!(r.code(), 0, "{stdout}{stderr}");
    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), cases.len(), "{stdout}{stderr}");
    for (case, result) in cases.iter().zip(&results) {
        assert_eq!(result["result"], "eperm", "{}: {result}", case.name);
    }
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        vec![
            "rampart: [ERROR] Policy denied: unexpected answer from the policy server (HTTP 413)";
            cases.len()
        ],
        "{stderr}"
    );

    // One audit event per refusal: denied, with the start of the command.
    let events = s.check_events();
    assert_eq!(events.len(), cases.len(), "{events:#?}");
    for (event, case) in events.iter().zip(&cases) {
        assert_eq!(event["decision"], "deny", "{}", case.name);
        assert_eq!(event["tool"], "exec");
        assert_eq!(event["agent"], "preload");
        assert_eq!(event["mode"], "enforce");
        assert_eq!(
            event["message"],
            "request body larger than 1048576 bytes: not evaluated"
        );
        let recorded = event["command"].as_str().unwrap();
        let full = command(&case.argv);
        let start: String = full.chars().take(4096).collect();
        assert_eq!(recorded, format!("{start} …"), "{}", case.name);
    }
    assert!(
        events[4]["command"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cat {}", wire(&secret)))
    );
    s.assert_healthy();
}

/// Writes `body` as one HTTP/1.1 POST over TCP and reads the whole answer.
fn raw_post(port: u16, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    // The server may answer before reading everything; what it answered is still there.
    let _ = std::io::Write::write_all(&mut stream, &message);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Malformed preflight bodies get 400 with a one-line `{"error": ...}` saying what and
/// where, are not audited (nothing was decided), and the server keeps serving.
#[test]
fn malformed_preflight_bodies_get_400_and_the_server_lives() {
    let s = Setup::standard();
    let deep = format!(
        r#"{{"params":{{"command":"x"}},"argv":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let bodies: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "EOF while parsing"),
        ("not json", b"rm -rf /".to_vec(), "expected value"),
        (
            "truncated",
            br#"{"agent":"preload","params":{"command":"rm -r"#.to_vec(),
            "EOF while parsing",
        ),
        (
            "raw invalid utf-8",
            b"{\"params\":{\"command\":\"\xff\xfe\"}}".to_vec(),
            "invalid unicode code point",
        ),
        (
            "lone surrogate",
            br#"{"params":{"command":"\ud800"}}"#.to_vec(),
            "hex escape",
        ),
        (
            "pid out of range",
            br#"{"params":{"command":"ls"},"pid":99999999999999999999}"#.to_vec(),
            "invalid",
        ),
        (
            "negative wait",
            br#"{"params":{"command":"ls"},"wait_ms":-5}"#.to_vec(),
            "invalid value",
        ),
        (
            "duplicate key",
            br#"{"params":{"command":"ls"},"params":{"command":"rm -rf /"}}"#.to_vec(),
            "duplicate field `params`",
        ),
        ("deep nesting", deep.into_bytes(), "invalid type"),
        (
            "no command",
            br#"{"agent":"preload"}"#.to_vec(),
            "params.command is required for tool exec",
        ),
    ];
    for (name, body, expected) in &bodies {
        let (status, answer) = raw_post(s.server.port, "/v1/preflight/exec", &s.server.token, body);
        assert_eq!(status, 400, "{name}: {answer}");
        let v: Value =
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{name}: {e}: {answer}"));
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(expected), "{name}: {error}");
        assert!(!error.contains('\n'), "{name}: {error}");
    }
    // Nothing was decided, so nothing is in the trail.
    assert_eq!(s.check_events().len(), 0);
    // A body over the limit: 413, recorded as a refusal.
    let big = format!(
        r#"{{"agent":"raw","params":{{"command":"echo {}"}}}}"#,
        "x".repeat(2 << 20)
    );
    let (status, answer) = raw_post(
        s.server.port,
        "/v1/preflight/exec",
        &s.server.token,
        big.as_bytes(),
    );
    assert_eq!(status, 413, "{answer}");
    let events = s.check_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["agent"], "raw");
    assert_eq!(events[0]["decision"], "deny");
    // A well-formed request still works after all that.
    let ok = s
        .server
        .preflight(json!({"agent": "preload", "params": {"command": "ls -la"}}));
    assert_eq!(ok["decision"], "allow");
    s.assert_healthy();
}

// ---------------------------------------------------------------------------------------
// `rampart policy show` writes YAML that loads back to the same policy.

/// The `show` output without comment lines (origins name the file they came from).
fn shown(home: &Home) -> String {
    let r = home.run(&["policy", "show"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    r.stdout()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split("  # ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads `yaml` into a fresh home, shows it, loads what was shown into another home and
/// shows that: the two must be the same, and decide a few commands the same.
fn assert_show_round_trips(yaml: &str) {
    let first = Home::new();
    first.policy("custom.yaml", yaml);
    let shown_once = first.run(&["policy", "show"]);
    assert_eq!(shown_once.code(), 0, "{}\n{yaml}", shown_once.stderr());
    let second = Home::new();
    second.policy("shown.yaml", &shown_once.stdout());
    assert_eq!(shown(&first), shown(&second), "{yaml}");
    for command in [
        "rm -rf /",
        "ls -la",
        "git push",
        "cat ~/.ssh/id_rsa",
        "x\u{1b}y",
    ] {
        let decide = |home: &Home| {
            let r = home.run(&["test", "--json", command]);
            let v: Value = serde_json::from_str(&r.stdout()).unwrap();
            (
                v["decision"].clone(),
                v["message"].clone(),
                v["matched_policies"].clone(),
            )
        };
        assert_eq!(decide(&first), decide(&second), "{command}\n{yaml}");
    }
}

#[test]
fn policy_show_round_trips_the_shipped_and_an_ugly_policy() {
    for (_, text) in rampart_policy::profiles::PROFILES {
        assert_show_round_trips(text);
    }
    assert_show_round_trips(crate::util::SEED_POLICY);
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let ugly = [
        "it's \"quoted\" \\ back",
        "# not a comment",
        "key: value",
        "- dash",
        "tab\there\nnewline\r\n",
        "\u{0}\u{1b}[31m\u{7f}\u{85}\u{2028}\u{feff}",
        "עברית \u{202e}rtl\u{202c} 😀",
        "*",
        "",
    ];
    let mut yaml = String::from("default_action: ask\npolicies:\n");
    for (i, text) in ugly.iter().enumerate() {
        yaml.push_str(&format!(
            "  - name: {}\n    priority: {}\n    match:\n      agent: [{}]\n    rules:\n      - action: deny\n        when:\n          command_matches: [{}]\n          command_contains: [{}]\n        message: {}\n",
            q(&format!("p{i} {text}")),
            i64::MAX - i as i64,
            q(&format!("{text}*")),
            q(text),
            q(&format!("c{text}")),
            q(text),
        ));
    }
    assert_show_round_trips(&yaml);
}

mod show_props {
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-z *?/.-]{0,10}"]
    }

    proptest! {
        // Each case runs `rampart` eight times: few cases, many strings per case.
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn random_policies_round_trip_through_show(
            names in prop::collection::vec(text(), 1..4),
            patterns in prop::collection::vec(text(), 1..6),
            needle in text().prop_filter("non-empty", |s| !s.is_empty()),
            message in text(),
            priority in any::<i64>(),
        ) {
            let q = |s: &str| serde_json::to_string(s).unwrap();
            let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
            let mut yaml = String::from("policies:\n");
            for (i, name) in names.iter().enumerate() {
                yaml.push_str(&format!(
                    "  - name: {}\n    priority: {priority}\n    rules:\n      - action: ask\n        when:\n          command_matches: [{}]\n          command_contains: [{}]\n          path_matches: [{}]\n        message: {}\n      - action: log\n        default: true\n",
                    q(&format!("{i}{name}")),
                    list(&patterns),
                    q(&needle),
                    list(&patterns),
                    q(&message),
                ));
            }
            super::assert_show_round_trips(&yaml);
        }
    }
}
