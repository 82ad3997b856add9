//! The flags shared by `rampart preload` and `rampart supervise`: where the server is,
//! how to identify the agent, and what to do when the server cannot answer — resolved by
//! the contract's rules (`rampart_contract`), so the launcher proves exactly the
//! configuration it hands the library — and the autostart of a server that only claims
//! success when a server really answers where the library will look.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use rampart_contract::values::{self, Mode};
use rampart_server::client::{self, Endpoint};

/// `rampart preload|supervise [FLAGS] -- CMD [ARGS...]`.
#[derive(Debug, Args)]
pub struct GuardedCommand {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// The program to run and its arguments (after `--`)
    // No `allow_hyphen_values`: a mistyped flag before CMD (`--agnet x -- ls`) is a usage
    // error instead of the program to run. Once CMD has started, its own flags are its.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `--mode`: the contract's modes, exact names only (a typo is a usage error here; the
/// library, which cannot say so, enforces on an unknown `RAMPART_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Deny what the policy denies
    Enforce,
    /// Audit only, never block
    Monitor,
    /// Ask nothing, allow everything
    Disabled,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Enforce => Mode::Enforce,
            ModeArg::Monitor => Mode::Monitor,
            ModeArg::Disabled => Mode::Disabled,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Policy server URL: http://127.0.0.1:PORT, http://localhost:PORT or
    /// unix:/absolute/path/to/rampart.sock [default: $RAMPART_URL, else this home's
    /// running server's port, else http://127.0.0.1:9090]
    #[arg(long, conflicts_with = "port")]
    pub url: Option<String>,
    /// Policy server port on 127.0.0.1
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Bearer token [default: $RAMPART_TOKEN, else $RAMPART_HOME/token]
    #[arg(long)]
    pub token: Option<String>,
    /// What to do with the policy's decisions
    #[arg(long, value_enum, default_value_t = ModeArg::Enforce)]
    pub mode: ModeArg,
    /// Run programs when no policy server answers at all, with a [WARN] line (false =
    /// refuse them). Any answer that is not an allow refuses in enforce mode regardless
    /// [default: $RAMPART_FAIL_OPEN, else true]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub fail_open: Option<bool>,
    /// Agent name recorded with every decision (policies match on it)
    /// [default: $RAMPART_AGENT, else preload]
    #[arg(long)]
    pub agent: Option<String>,
    /// Session id [default: $RAMPART_SESSION, else preload-<pid of this command>]
    #[arg(long)]
    pub session: Option<String>,
    /// How long an `ask` waits for a person (500ms, 30s, 2m, 1h; 0 = refuse asks at once)
    /// [default: 2m; 0 when CI=true: no person to ask]
    #[arg(long, value_parser = parse_duration_ms)]
    pub ask_timeout: Option<u64>,
    /// Print the library's [DEBUG] lines (also: RAMPART_DEBUG=1)
    #[arg(long)]
    pub debug: bool,
    /// Do not start `rampart serve --background` when no server answers
    #[arg(long)]
    pub no_autostart: bool,
    /// Run CMD in its own user, mount and PID namespaces: it cannot read or change
    /// $RAMPART_HOME (token, policies, audit) nor see or signal the server; an unreachable
    /// server then refuses [env: RAMPART_PROTECT]
    #[arg(long)]
    pub protect: bool,
}

/// `--ask-timeout` read exactly as the library reads `RAMPART_ASK_TIMEOUT`.
fn parse_duration_ms(text: &str) -> Result<u64, String> {
    values::duration_ms(text.as_bytes())
        .ok_or_else(|| format!("`{text}` is not a duration (examples: 500ms, 30s, 2m, 1h)"))
}

/// A configuration the library would not use, or that could not be proven: the launcher
/// refuses to start CMD (exit 126) with this one line, which says why and what to do.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The settings every checked process gets, resolved once: what the launcher checks
/// with is what it hands the library.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub url: String,
    pub endpoint: Endpoint,
    /// No --url, --port or RAMPART_URL chose the server: after starting this home's
    /// server, the launcher moves to its Unix socket ([`ensure_server`]).
    pub implicit_url: bool,
    pub token: Option<String>,
    pub agent: String,
    pub session: String,
    pub mode: Mode,
    pub fail_open: bool,
    /// `RAMPART_PROTECT` from our environment (handed down unchanged): silence refuses too.
    pub protect: bool,
    /// `--debug` or `RAMPART_DEBUG` from our environment.
    pub debug: bool,
    pub ask_timeout_ms: u64,
    /// Whether the launcher may start a server (for the advice in refusals).
    pub autostart: bool,
}

impl AgentArgs {
    pub fn resolve(&self, home: &Path) -> Result<Resolved> {
        let env_url = std::env::var("RAMPART_URL").ok().filter(|u| !u.is_empty());
        let (url, source) = match (&self.url, self.port) {
            (Some(url), _) => (url.clone(), "--url"),
            (None, Some(port)) => (format!("http://127.0.0.1:{port}"), "--port"),
            (None, None) => match env_url {
                Some(url) => (url, "RAMPART_URL"),
                // This home's running server, on its Unix socket: the fast path
                // (server fastpath.rs) answers checks there without the HTTP stack, and
                // a launcher never checks with another home's server on the default port
                // while its own runs elsewhere.
                None => match home_socket_url(home) {
                    Some(url) => (url, "this home's server"),
                    None => (
                        rampart_contract::url::DEFAULT_URL.to_owned(),
                        "the default URL",
                    ),
                },
            },
        };
        // The library would refuse this URL and then fail every check: refuse to start,
        // with the library's own reason.
        let endpoint = Endpoint::parse(&url).map_err(|why| {
            Refused(format!(
                "{source} {why}",
                why = rampart_contract::printable::printable_string(why.as_bytes())
            ))
        })?;
        // --token, else what the admin commands use: $RAMPART_TOKEN or the home's file.
        let token = self
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| crate::serve_cmd::token(home).ok().filter(|t| !t.is_empty()));
        // Flags, else what the library would read from this environment: a launcher must
        // not quietly hand CMD a weaker setting (fail-open) or another identity (agent,
        // session: policies match on them) than the environment it runs in asks for.
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let session = self
            .session
            .clone()
            .or_else(|| env("RAMPART_SESSION"))
            .unwrap_or_else(|| format!("preload-{}", std::process::id()));
        let agent = self
            .agent
            .clone()
            .or_else(|| env("RAMPART_AGENT"))
            .unwrap_or_else(|| values::DEFAULT_AGENT.to_owned());
        let fail_open = self.fail_open.unwrap_or_else(|| {
            values::fail_open(env("RAMPART_FAIL_OPEN").as_deref().map(str::as_bytes))
        });
        let debug_env = std::env::var_os("RAMPART_DEBUG");
        Ok(Resolved {
            implicit_url: source == "this home's server" || source == "the default URL",
            url,
            endpoint,
            token,
            agent,
            session,
            mode: self.mode.into(),
            fail_open,
            // `RAMPART_PROTECT` from our environment, read by the same rule as `--protect`'s.
            protect: rampart_protect::requested(false),
            debug: self.debug || {
                use std::os::unix::ffi::OsStrExt;
                values::debug(debug_env.as_deref().map(|v| v.as_bytes()))
            },
            ask_timeout_ms: self.ask_timeout.unwrap_or_else(|| {
                use std::os::unix::ffi::OsStrExt;
                let ci = std::env::var_os("CI");
                values::default_ask_timeout_ms(values::ci(ci.as_deref().map(|v| v.as_bytes())))
            }),
            autostart: !self.no_autostart,
        })
    }
}

/// A missing `--` is fine while nothing after CMD's name could be one of our flags
/// (`rampart preload ls -la`); `rampart preload ls --mode monitor` is refused: is
/// `--mode` for rampart or for `ls`? Without `--`, everything from CMD on is CMD's.
pub fn check_separator(subcommand: &str, command: &[OsString]) -> Result<()> {
    let raw: Vec<OsString> = std::env::args_os().collect();
    let explicit = raw.len() > command.len()
        && raw.ends_with(command)
        && raw
            .get(raw.len() - command.len() - 1)
            .is_some_and(|w| w == "--");
    if explicit {
        return Ok(());
    }
    let ours = AgentArgs::augment_args(clap::Command::new("rampart"));
    let longs: Vec<String> = ours
        .get_arguments()
        .filter_map(|a| a.get_long())
        .chain(["help"])
        .map(|l| format!("--{l}"))
        .collect();
    for word in command.iter().skip(1) {
        let word = word.to_string_lossy();
        let flag = word.split('=').next().unwrap_or("");
        if longs.iter().any(|l| l == flag) {
            let program = command
                .first()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            bail!(
                "`{flag}` after `{program}` is ambiguous without `--`: write rampart {subcommand} [FLAGS] -- {program} [ARGS...] (flags for rampart before `--`, {program}'s after it)",
                program = rampart_contract::printable::printable_string(program.as_bytes()),
            );
        }
    }
    Ok(())
}

/// `unix:<home>/rampart.sock` when this home's server answers there and the path fits a
/// socket address (else the library could not use it).
fn home_socket_url(home: &Path) -> Option<String> {
    let socket = home_server(home)?.socket?;
    // sockaddr_un's sun_path holds 107 bytes and the terminating NUL.
    if socket.as_os_str().len() > 107 {
        return None;
    }
    let url = format!("unix:{}", socket.to_str()?);
    rampart_contract::url::parse(url.as_bytes()).ok()?;
    Some(url)
}

/// This home's own server, if it runs: where it listens, for messages. Found through
/// the home's socket (or the pid of a background server) and `serve.port`.
fn home_server(home: &Path) -> Option<HomeServer> {
    let socket = home.join("rampart.sock");
    let socket_answers = client::healthy(&Endpoint::Unix(socket.clone()));
    let pid = std::fs::read_to_string(home.join("serve.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists());
    if !socket_answers && pid.is_none() {
        return None;
    }
    let port = std::fs::read_to_string(home.join("serve.port"))
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok());
    Some(HomeServer {
        port,
        socket: socket_answers.then_some(socket),
        background: pid.is_some(),
    })
}

struct HomeServer {
    port: Option<u16>,
    socket: Option<PathBuf>,
    /// Started by `serve --background` (so `rampart serve stop` stops it).
    background: bool,
}

impl HomeServer {
    /// "127.0.0.1:9090 and unix:/h/rampart.sock"
    fn listens(&self) -> String {
        let mut parts = Vec::new();
        if let Some(port) = self.port {
            parts.push(format!("127.0.0.1:{port}"));
        }
        if let Some(socket) = &self.socket {
            parts.push(format!("unix:{}", socket.display()));
        }
        if parts.is_empty() {
            "an address this command cannot tell".to_owned()
        } else {
            parts.join(" and ")
        }
    }

    /// The flag that points the launcher at it, for the URL kind the user chose.
    fn use_it(&self, endpoint: &Endpoint) -> String {
        match (endpoint, self.port, &self.socket) {
            (Endpoint::Tcp(_), Some(port), _) => format!("use --port {port}"),
            (_, _, Some(socket)) => format!("use --url unix:{}", socket.display()),
            (_, Some(port), None) => format!("use --port {port}"),
            (_, None, None) => "point --url at it".to_owned(),
        }
    }

    fn stop_it(&self) -> &'static str {
        if self.background {
            "stop it (rampart serve stop)"
        } else {
            "stop it (it runs in the foreground where it was started)"
        }
    }
}

/// The prefix of an agent credential (`POST /v1/agents`); the admin token has none.
pub const AGENT_TOKEN_PREFIX: &str = "rampart_agent_";

/// Trades the admin token for a per-run agent credential bound to this run's agent,
/// session and `pid` (the process that lives as long as the run: CMD itself under
/// `preload`, which execs into it; the supervisor under `supervise`). From here on only
/// the credential is used and handed down: it can ask for decisions and nothing else, so
/// an agent that reads its environment cannot approve its own asks, reload or rewrite
/// policy, read the audit trail or claim another agent's name, and `rampart token rotate`
/// does not break it. A credential that is already an agent credential (a launcher
/// nested in a guarded tree) is kept as it is: the server holds it to its own agent and
/// session. When no server answers at all, the admin token is dropped rather than handed
/// down: the check of CMD then finds nobody and fail-open decides, loudly.
pub fn scope_credential(resolved: &mut Resolved, pid: u32) -> Result<Option<String>> {
    let Some(token) = resolved.token.clone() else {
        return Ok(None);
    };
    if token.starts_with(AGENT_TOKEN_PREFIX) {
        return Ok(None);
    }
    if !client::healthy(&resolved.endpoint) {
        resolved.token = None;
        return Ok(None);
    }
    let credential = client::register_agent(
        &resolved.endpoint,
        &token,
        &resolved.agent,
        &resolved.session,
        pid,
    )
    .map_err(|e| {
        Refused(format!(
            "{e}; check the token (--token, $RAMPART_TOKEN or $RAMPART_HOME/token)"
        ))
    })?;
    resolved.token = Some(credential.token);
    Ok(Some(credential.id))
}

/// Ends the run's credential (from [`scope_credential`]) when the launcher outlives CMD
/// (`--protect`, `supervise`). Best effort: the server also ends it when the process it
/// is bound to is gone.
pub fn end_credential(resolved: &Resolved, id: Option<&str>) {
    if let (Some(_), Some(token)) = (id, &resolved.token) {
        let _ = client::revoke_agent(&resolved.endpoint, token, "self");
    }
}

/// Makes sure a server answers at `resolved`: if none does, starts `rampart serve
/// --background` for this home (never under the preload library) at exactly that
/// address, and says so in one line — but only once a server really answers there.
/// When this home's server already runs elsewhere, or the started one does not answer
/// where the library will look, the launcher refuses to start ([`Refused`]) naming what
/// answers where. A server started here uses the home's token file (it may have just
/// created it), so unless `--token` was given, `resolved.token` is read from it afterwards.
pub fn ensure_server(args: &AgentArgs, resolved: &mut Resolved, home: &Path) -> Result<()> {
    if resolved.mode == Mode::Disabled || client::healthy(&resolved.endpoint) {
        return Ok(());
    }
    if args.no_autostart {
        return Ok(());
    }
    let url = printable(&resolved.url);
    if let Some(running) = home_server(home) {
        return Err(Refused(format!(
            "no policy server answers at {url}, and this home's server ({}) listens on {}, not there; {} or {}",
            home.display(),
            running.listens(),
            running.use_it(&resolved.endpoint),
            running.stop_it(),
        ))
        .into());
    }
    crate::home::check_private(home)
        .with_context(|| format!("no policy server answers at {url} and none was started"))?;
    let exe = std::env::current_exe().context("finding the rampart binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("serve")
        .arg("--background")
        .env_remove("LD_PRELOAD")
        .env("RAMPART_HOME", home);
    match &resolved.endpoint {
        Endpoint::Tcp(hostport) => {
            if let Some((addr, port)) = hostport.rsplit_once(':') {
                cmd.arg("--addr").arg(addr).arg("--port").arg(port);
            }
        }
        Endpoint::Unix(path) => {
            cmd.arg("--socket").arg(path);
        }
    }
    let output = cmd
        .output()
        .context("starting rampart serve --background")?;
    if !output.status.success() {
        return Err(Refused(format!(
            "no policy server answers at {url} and starting one failed: {}",
            printable(String::from_utf8_lossy(&output.stderr).trim())
        ))
        .into());
    }
    // `serve --background` returns once the server answers on its socket; the TCP
    // listener is bound before that, but look where the library will look, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !client::healthy(&resolved.endpoint) {
        if Instant::now() >= deadline {
            let listens = home_server(home)
                .map(|s| format!("it listens on {}", s.listens()))
                .unwrap_or_else(|| "it is not running".to_owned());
            return Err(Refused(format!(
                "started this home's server in the background, but nothing answers at {url}: {listens} (log: {}, stop: rampart serve stop)",
                home.join("serve.log").display()
            ))
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // One line: what we did, so a surprised user knows where the server came from.
    eprintln!(
        "rampart: no policy server answered at {url}; started one in the background (log: {}, stop: rampart serve stop)",
        home.join("serve.log").display()
    );
    // Started for this home at the default URL: check on its Unix socket from here on.
    if resolved.implicit_url
        && let Some(url) = home_socket_url(home)
        && let Ok(endpoint) = Endpoint::parse(&url)
    {
        resolved.url = url;
        resolved.endpoint = endpoint;
    }
    if args.token.is_none() {
        resolved.token = rampart_server::token::read(home)
            .ok()
            .or(resolved.token.take());
    }
    Ok(())
}

/// Untrusted or user-supplied text as it may be shown on a terminal.
pub fn printable(text: &str) -> String {
    rampart_contract::printable::printable_string(text.as_bytes())
}

/// Where `librampart.so` is, in DESIGN.md §4's order:
///
/// 1. `$RAMPART_HOME/lib/librampart.so` — this home's own copy;
/// 2. `<bindir>/../lib/rampart/librampart.so` — beside the installed binary (`make install`
///    puts it in `$(PREFIX)/lib/rampart`);
/// 3. `~/.rampart/lib/librampart.so` of the real `$HOME` (read only; where `make install`
///    puts it by default), so a throw-away `RAMPART_HOME` still finds it;
/// 4. `<root>/preload/build/librampart.so`, only when this binary runs from a build tree
///    (`<root>/target/{debug,release}/rampart`).
pub fn find_library(home: &Path) -> Result<PathBuf> {
    let candidates = library_candidates(
        home,
        std::env::current_exe().ok().as_deref(),
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .as_deref(),
    );
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "librampart.so not found (looked in {}); build and install it with `make install`",
        looked.join(", ")
    )
}

fn library_candidates(home: &Path, exe: Option<&Path>, user_home: Option<&Path>) -> Vec<PathBuf> {
    const NAME: &str = "librampart.so";
    let mut candidates = vec![home.join("lib").join(NAME)];
    let bindir = exe.and_then(Path::parent);
    if let Some(prefix) = bindir.and_then(Path::parent) {
        candidates.push(prefix.join("lib/rampart").join(NAME));
    }
    if let Some(user_home) = user_home {
        candidates.push(user_home.join(".rampart/lib").join(NAME));
    }
    if let Some(dir) = bindir
        && matches!(
            dir.file_name().and_then(|n| n.to_str()),
            Some("debug" | "release")
        )
        && let Some(target) = dir.parent()
        && target.file_name().is_some_and(|n| n == "target")
        && let Some(root) = target.parent()
    {
        candidates.push(root.join("preload/build").join(NAME));
    }
    candidates.dedup();
    candidates
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        agent: AgentArgs,
    }

    /// The library search order; the build tree only for a binary in a build tree.
    #[test]
    fn library_search_order() {
        let found = |exe: &str| {
            library_candidates(
                Path::new("/h"),
                Some(Path::new(exe)),
                Some(Path::new("/home/u")),
            )
            .into_iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
        };
        assert_eq!(
            found("/usr/local/bin/rampart"),
            [
                "/h/lib/librampart.so",
                "/usr/local/lib/rampart/librampart.so",
                "/home/u/.rampart/lib/librampart.so",
            ]
        );
        assert_eq!(
            found("/src/rampart/target/release/rampart"),
            [
                "/h/lib/librampart.so",
                "/src/rampart/target/lib/rampart/librampart.so",
                "/home/u/.rampart/lib/librampart.so",
                "/src/rampart/preload/build/librampart.so",
            ]
        );
    }

    /// The flags' defaults are the contract's, so an unflagged launcher hands the library
    /// what the library would assume anyway.
    #[test]
    fn defaults_are_the_contract_s() {
        let flags = Flags::try_parse_from(["rampart"]).unwrap().agent;
        // None: the contract's default applies (2m, 0 in CI), as in the library.
        assert_eq!(flags.ask_timeout, None);
        assert_eq!(flags.agent, None);
        assert_eq!(flags.fail_open, None);
        assert_eq!(Mode::from(flags.mode), Mode::Enforce);
        let flags = Flags::try_parse_from(["rampart", "--fail-open"])
            .unwrap()
            .agent;
        assert_eq!(flags.fail_open, Some(true));
        let flags = Flags::try_parse_from(["rampart", "--fail-open=off"])
            .unwrap()
            .agent;
        assert_eq!(flags.fail_open, Some(false));
        for name in ["enforce", "monitor", "disabled"] {
            let flags = Flags::try_parse_from(["rampart", "--mode", name]).unwrap();
            assert_eq!(
                Some(Mode::from(flags.agent.mode)),
                Mode::from_name(name.as_bytes())
            );
        }
        assert!(Flags::try_parse_from(["rampart", "--mode", "enforcing"]).is_err());
        assert!(Flags::try_parse_from(["rampart", "--port", "0"]).is_err());
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(
            parse_duration_ms("5d"),
            Err("`5d` is not a duration (examples: 500ms, 30s, 2m, 1h)".to_owned())
        );
    }
}
