//! The flags shared by `rampart preload` and `rampart supervise`: where the server is,
//! how to identify the agent, and what to do when the server cannot answer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use rampart_server::client::{self, Endpoint};

/// `rampart preload|supervise [FLAGS] -- CMD [ARGS...]`.
#[derive(Debug, Args)]
pub struct GuardedCommand {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// The program to run and its arguments (after `--`)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Policy server URL: http://HOST:PORT or unix:/path/to/rampart.sock
    /// [default: $RAMPART_URL, else http://127.0.0.1:9090]
    #[arg(long, conflicts_with = "port")]
    pub url: Option<String>,
    /// Policy server port on 127.0.0.1
    #[arg(long)]
    pub port: Option<u16>,
    /// Bearer token [default: $RAMPART_TOKEN, else $RAMPART_HOME/token]
    #[arg(long)]
    pub token: Option<String>,
    /// enforce, monitor (audit only, never block) or disabled
    #[arg(long, default_value = "enforce", value_parser = ["enforce", "monitor", "disabled"])]
    pub mode: String,
    /// Run commands when the server cannot be reached (false = refuse them)
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub fail_open: bool,
    /// Agent name recorded with every decision (policies match on it)
    #[arg(long, default_value = "preload")]
    pub agent: String,
    /// Session id [default: preload-<pid of this command>]
    #[arg(long)]
    pub session: Option<String>,
    /// How long an `ask` waits for a person
    #[arg(long, default_value = "2m", value_parser = crate::duration::parse)]
    pub ask_timeout: Duration,
    /// Print the library's [DEBUG] lines
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

/// The settings every checked process gets, resolved once.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub url: String,
    pub endpoint: Endpoint,
    pub token: Option<String>,
    pub session: String,
}

impl AgentArgs {
    pub fn resolve(&self, home: &Path) -> Result<Resolved> {
        let env_url = std::env::var("RAMPART_URL").ok().filter(|u| !u.is_empty());
        let url = match (&self.url, self.port) {
            (Some(url), _) => url.clone(),
            (None, Some(port)) => format!("http://127.0.0.1:{port}"),
            (None, None) => env_url.unwrap_or_else(|| "http://127.0.0.1:9090".to_owned()),
        };
        let endpoint = Endpoint::parse(&url)
            .map_err(anyhow::Error::msg)
            .context("--url")?;
        // --token, else what the admin commands use: $RAMPART_TOKEN or the home's file.
        let token = self
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| crate::serve_cmd::token(home).ok().filter(|t| !t.is_empty()));
        let session = self
            .session
            .clone()
            .unwrap_or_else(|| format!("preload-{}", std::process::id()));
        Ok(Resolved {
            url,
            endpoint,
            token,
            session,
        })
    }
}

/// True for endpoints on this machine, where starting a server ourselves makes sense.
fn is_local(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Unix(_) => true,
        Endpoint::Tcp(hostport) => {
            let host = hostport
                .rsplit_once(':')
                .map_or(hostport.as_str(), |(h, _)| h);
            matches!(host, "127.0.0.1" | "localhost" | "[::1]")
        }
    }
}

/// Makes sure a server answers at `resolved`: if none does at a local URL, starts
/// `rampart serve --background` (never under the preload library) and waits for it.
/// A server started here uses the home's token file (it may have just created it), so
/// unless `--token` was given, `resolved.token` is taken from that file afterwards.
pub fn ensure_server(args: &AgentArgs, resolved: &mut Resolved, home: &Path) -> Result<()> {
    if args.mode == "disabled" || client::healthy(&resolved.endpoint) {
        return Ok(());
    }
    if args.no_autostart || !is_local(&resolved.endpoint) {
        return Ok(());
    }
    crate::home::check_private(home).with_context(|| {
        format!(
            "no policy server answers at {} and none was started",
            resolved.url
        )
    })?;
    let exe = std::env::current_exe().context("finding the rampart binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("serve")
        .arg("--background")
        .env_remove("LD_PRELOAD")
        .env("RAMPART_HOME", home);
    match &resolved.endpoint {
        Endpoint::Tcp(hostport) => {
            if let Some((_, port)) = hostport.rsplit_once(':') {
                cmd.arg("--port").arg(port);
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
        bail!(
            "no policy server answers at {} and starting one failed: {}",
            resolved.url,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // One line: what we did, so a surprised user knows where the server came from.
    eprintln!(
        "rampart: no policy server answered at {}; started one in the background (log: {}, stop: rampart serve stop)",
        resolved.url,
        home.join("serve.log").display()
    );
    if args.token.is_none() {
        resolved.token = rampart_server::token::read(home)
            .ok()
            .or(resolved.token.take());
    }
    Ok(())
}

/// Where `librampart.so` is, in DESIGN.md §4's order.
pub fn find_library(home: &Path) -> Result<PathBuf> {
    let mut candidates = vec![
        home.join("lib/librampart.so"),
        PathBuf::from("/usr/local/lib/librampart.so"),
    ];
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join("librampart.so"));
        // target/{debug,release}/rampart → preload/build/librampart.so
        if let Some(root) = dir.parent().and_then(Path::parent) {
            candidates.push(root.join("preload/build/librampart.so"));
        }
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "librampart.so not found (looked in {}); build and install it with `make -C preload install`",
        looked.join(", ")
    )
}
