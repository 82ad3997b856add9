//! `rampart serve` and its subcommands: foreground, `--background`, `--reload`, `stop`,
//! `status`, `install`/`uninstall` (systemd user unit, launchd on macOS).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rampart_server::{Mode, ServerConfig};

use crate::{Outcome, home};
use rampart_server::client::{self, Endpoint};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    command: Option<ServeCommand>,
    /// TCP port (0 picks a free one)
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// TCP address to listen on (loopback by default; the API is for this machine)
    #[arg(long, default_value = "127.0.0.1")]
    addr: IpAddr,
    /// Unix socket path [default: $RAMPART_HOME/rampart.sock]
    #[arg(long)]
    socket: Option<PathBuf>,
    /// enforce, monitor (audit only, never block) or disabled (allow all, evaluate nothing)
    #[arg(long, default_value = "enforce", value_parser = parse_mode)]
    mode: Mode,
    /// Policy directory [default: $RAMPART_HOME/policies]
    #[arg(long)]
    policies: Option<PathBuf>,
    /// Audit directory [default: $RAMPART_HOME/audit]
    #[arg(long)]
    audit_dir: Option<PathBuf>,
    /// How long an `ask` waits for a person at most
    #[arg(long, default_value = "2m", value_parser = crate::duration::parse)]
    approval_timeout: Duration,
    /// Start in the background (pid in serve.pid, output in serve.log) and return
    #[arg(long)]
    background: bool,
    /// Ask the running server to reload its policies and print the result
    #[arg(long)]
    reload: bool,
    /// Send every audit event to syslog://HOST:PORT (RFC 5424 over TCP) or
    /// http://HOST:PORT/PATH (JSON lines); repeatable
    #[arg(long, value_name = "URL", value_parser = rampart_server::export::ExportSpec::parse)]
    export: Vec<rampart_server::export::ExportSpec>,
    /// Load policies also from this git repository (path or URL), fetched periodically
    #[arg(long, value_name = "PATH_OR_URL")]
    policy_repo: Option<String>,
    /// Branch of --policy-repo [default: the remote's default branch]
    #[arg(long, value_name = "BRANCH", requires = "policy_repo")]
    policy_repo_branch: Option<String>,
    /// How often --policy-repo is fetched
    #[arg(long, default_value = "60s", value_parser = crate::duration::parse)]
    policy_repo_interval: Duration,
    /// Post each `ask` (JSON) to this webhook URL; repeatable. More targets, formats
    /// (slack, discord, ntfy) and events (deny, fail-open): `notify:` in
    /// $RAMPART_HOME/config.yaml
    #[arg(long = "notify", value_name = "URL", value_parser = parse_notify)]
    notify: Vec<String>,
}

fn parse_notify(url: &str) -> Result<String, String> {
    rampart_server::notify::Target::from_flag(url).map(|_| url.to_owned())
}

#[derive(Debug, Subcommand)]
enum ServeCommand {
    /// Stop the background server
    Stop,
    /// Is a server running? What is it enforcing?
    Status,
    /// Install and start a systemd user service (launchd agent on macOS)
    Install {
        /// Print the unit file instead of installing it
        #[arg(long)]
        dry_run: bool,
        /// Port for the service
        #[arg(long, default_value_t = 9090)]
        port: u16,
    },
    /// Stop and remove the service installed by `serve install`
    Uninstall,
}

fn parse_mode(word: &str) -> Result<Mode, String> {
    Mode::parse(word)
        .ok_or_else(|| format!("`{word}` is not a mode: use enforce, monitor or disabled"))
}

pub fn serve(args: ServeArgs) -> Result<Outcome> {
    match args.command {
        Some(ServeCommand::Stop) => return stop(),
        Some(ServeCommand::Status) => return status(),
        Some(ServeCommand::Install { dry_run, port }) => return install(dry_run, port),
        Some(ServeCommand::Uninstall) => return uninstall(),
        None => {}
    }
    if args.reload {
        return reload();
    }
    let home = home::dir()?;
    home::check_private(&home)?;
    if args.background {
        return background(&home, &args);
    }
    let mut config = ServerConfig::for_home(home);
    config.port = args.port;
    config.addr = args.addr;
    config.mode = args.mode;
    config.approval_timeout = args.approval_timeout;
    config.notify = rampart_server::notify::load_config(&config.home.join("config.yaml"))
        .map_err(anyhow::Error::msg)?;
    for url in &args.notify {
        config
            .notify
            .push(rampart_server::notify::Target::from_flag(url).map_err(anyhow::Error::msg)?);
    }
    if let Some(socket) = args.socket {
        config.socket = socket;
    }
    if let Some(dir) = args.policies {
        config.policies_dir = dir;
    }
    if let Some(dir) = args.audit_dir {
        config.audit_dir = dir;
    }
    // A second server on this home would fail on the audit trail's lock; say who holds it.
    if client::healthy(&Endpoint::Unix(config.socket.clone()))
        && let Some(pid) = client::socket_peer_pid(&config.socket)
    {
        outln!(
            "rampart: already running (pid {pid}, unix:{}); stop it with `rampart serve stop` or `kill {pid}`",
            config.socket.display()
        );
        return Ok(Outcome::Code(1));
    }
    // `export:` of config.yaml, then --export (a URL given both ways is sent once).
    let mut exports =
        rampart_server::export::config_file_exports(&config.home).map_err(anyhow::Error::msg)?;
    for spec in args.export {
        if !exports.iter().any(|e| e.url == spec.url) {
            exports.push(spec);
        }
    }
    config.exports = exports;
    config.policy_repo = args
        .policy_repo
        .map(|source| rampart_server::policy_repo::RepoConfig {
            source,
            branch: args.policy_repo_branch,
            interval: args.policy_repo_interval,
        });
    run_foreground(config)
}

fn run_foreground(config: ServerConfig) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rampart-serve")
        .build()
        .context("starting the async runtime")?;
    let mode = config.mode;
    runtime.block_on(async move {
        // Registered before the server says it is listening: a SIGTERM or Ctrl-C that
        // comes right after start-up is then a clean shutdown (audit flushed), not the
        // default action of killing the process.
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        let shutdown = async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = interrupt.recv() => {},
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("rampart: cannot watch SIGTERM/SIGINT ({e}); stop with Ctrl-C");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            }
            eprintln!("rampart: shutting down");
        };
        rampart_server::run(config, shutdown, |bound| {
            // One line a script (or a test) can wait for and read the port from.
            outln!(
                "rampart: listening on http://{} and unix:{} (mode {})",
                bound.tcp,
                bound.socket.display(),
                mode.as_str()
            );
        })
        .await
    })?;
    Ok(Outcome::Success)
}

fn pid_path(home: &Path) -> PathBuf {
    home.join("serve.pid")
}

fn read_pid(home: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_path(home))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// Re-runs this binary as `rampart serve` (same options) detached from the terminal, with
/// output to serve.log, and waits until it answers `/healthz`.
fn background(home: &Path, args: &ServeArgs) -> Result<Outcome> {
    home::create_private_dir(home)?;
    if let Some(pid) = read_pid(home)
        && alive(pid)
    {
        outln!("rampart: a background server is already running (pid {pid})");
        return Ok(Outcome::Success);
    }
    let exe = std::env::current_exe().context("finding the rampart binary")?;
    let log_path = home.join("serve.log");
    let log = {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        log.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("setting mode 0600 on {}", log_path.display()))?;
        log
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("serve")
        .arg("--port")
        .arg(args.port.to_string())
        .arg("--addr")
        .arg(args.addr.to_string())
        .arg("--mode")
        .arg(args.mode.as_str())
        .arg("--approval-timeout")
        .arg(format!("{}ms", args.approval_timeout.as_millis()));
    if let Some(socket) = &args.socket {
        cmd.arg("--socket").arg(socket);
    }
    if let Some(dir) = &args.policies {
        cmd.arg("--policies").arg(dir);
    }
    if let Some(dir) = &args.audit_dir {
        cmd.arg("--audit-dir").arg(dir);
    }
    for spec in &args.export {
        cmd.arg("--export").arg(&spec.url);
    }
    if let Some(repo) = &args.policy_repo {
        cmd.arg("--policy-repo")
            .arg(repo)
            .arg("--policy-repo-interval")
            .arg(format!("{}ms", args.policy_repo_interval.as_millis()));
    }
    if let Some(branch) = &args.policy_repo_branch {
        cmd.arg("--policy-repo-branch").arg(branch);
    }
    for url in &args.notify {
        cmd.arg("--notify").arg(url);
    }
    // The server never runs under the preload library (it would check its own work).
    cmd.env_remove("LD_PRELOAD")
        .env("RAMPART_HOME", home)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log handle")?)
        .stderr(log);
    use std::os::unix::process::CommandExt;
    // Its own process group: Ctrl-C in the terminal that started it does not stop it.
    cmd.process_group(0);
    let mut child = cmd.spawn().context("starting the background server")?;
    let pid = child.id();
    rampart_server::token::write_owner_only(&pid_path(home), format!("{pid}\n").as_bytes())
        .context("writing serve.pid")?;

    let endpoint = Endpoint::Unix(
        args.socket
            .clone()
            .unwrap_or_else(|| home.join("rampart.sock")),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::fs::remove_file(pid_path(home));
            // The server's own one-line error is the reason: said once, not as a log
            // excerpt under a second error line.
            let last = last_lines(&log_path, 1);
            if let Some(reason) = last.strip_prefix("rampart: error: ") {
                bail!(
                    "the background server did not start: {reason} (log {})",
                    log_path.display()
                );
            }
            bail!(
                "the background server exited ({status}); last lines of {}:\n{}",
                log_path.display(),
                last_lines(&log_path, 5)
            );
        }
        if client::healthy(&endpoint) {
            outln!(
                "rampart: server started in the background (pid {pid}, port {}, log {})",
                args.port,
                log_path.display()
            );
            return Ok(Outcome::Success);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "the background server (pid {pid}) did not answer within 10 s; see {}",
        log_path.display()
    )
}

fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn stop() -> Result<Outcome> {
    let home = home::dir()?;
    let Some(pid) = read_pid(&home) else {
        outln!(
            "rampart: no background server (no {})",
            pid_path(&home).display()
        );
        return Ok(Outcome::Code(1));
    };
    if !alive(pid) {
        let _ = std::fs::remove_file(pid_path(&home));
        outln!("rampart: the background server (pid {pid}) is not running");
        return Ok(Outcome::Code(1));
    }
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("could not signal pid {pid}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && alive(pid) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        bail!("the server (pid {pid}) did not stop within 10 s");
    }
    let _ = std::fs::remove_file(pid_path(&home));
    outln!("rampart: server stopped (pid {pid})");
    Ok(Outcome::Success)
}

/// Reads the admin token; the error says how to get one.
pub fn token(home: &Path) -> Result<String> {
    if let Ok(token) = std::env::var("RAMPART_TOKEN")
        && !token.is_empty()
    {
        return Ok(token);
    }
    rampart_server::token::read(home).with_context(|| {
        format!(
            "reading the token {} (it is created by the first `rampart serve`)",
            rampart_server::token::path(home).display()
        )
    })
}

/// An authenticated JSON request to the running server.
pub fn call(
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(Endpoint, client::Response)> {
    let home = home::dir()?;
    let endpoint = home::running(&home)?;
    let token = token(&home)?;
    let response = client::request(
        &endpoint,
        method,
        path,
        Some(&token),
        body,
        Duration::from_secs(30),
    )
    .with_context(|| {
        format!(
            "no Rampart server answers at {} (start one with `rampart serve --background`)",
            endpoint.url()
        )
    })?;
    if response.status == 401 {
        bail!(
            "the server at {} refused the token in {} ({})",
            endpoint.url(),
            rampart_server::token::path(&home).display(),
            response.error_text()
        );
    }
    if response.status == 403 && token.starts_with(rampart_server::agents::PREFIX) {
        bail!(
            "{}: RAMPART_TOKEN holds an agent credential (given to programs run under `rampart preload`/`supervise`); admin commands need the admin token",
            response.error_text()
        );
    }
    Ok((endpoint, response))
}

fn reload() -> Result<Outcome> {
    let (_, response) = call("POST", "/v1/policy/reload", Some(&serde_json::json!({})))?;
    let result: rampart_server::wire::ReloadResult =
        serde_json::from_value(response.json().map_err(anyhow::Error::msg)?)
            .with_context(|| format!("unexpected reload answer ({})", response.status))?;
    if result.ok {
        outln!(
            "rampart: policies reloaded: {} from {}",
            rampart_server::wire::policies_and_rules(result.policies, result.rules),
            result.source
        );
        Ok(Outcome::Success)
    } else {
        eprintln!(
            "rampart: reload failed, the previous policy stays in force ({}): {}",
            rampart_server::wire::policies_and_rules(result.policies, result.rules),
            rampart_server::printable_string(result.error.unwrap_or_default().as_bytes())
        );
        Ok(Outcome::Code(1))
    }
}

fn status() -> Result<Outcome> {
    let home = home::dir()?;
    let endpoint = match home::running(&home) {
        Ok(endpoint) => endpoint,
        // Said on stdout, the answer to the question; an unusable URL stays an error.
        Err(e) if e.downcast_ref::<home::NotRunning>().is_some() => {
            outln!("rampart: {e}");
            return Ok(Outcome::Code(1));
        }
        Err(e) => return Err(e),
    };
    let (_, response) = call("GET", "/v1/status", None)?;
    let s: rampart_server::wire::Status =
        serde_json::from_value(response.json().map_err(anyhow::Error::msg)?)
            .with_context(|| format!("unexpected status answer ({})", response.status))?;
    outln!("rampart: running at {}", endpoint.url());
    if let Some(pid) = read_pid(&home).filter(|p| alive(*p)) {
        outln!("  pid:      {pid}");
    }
    outln!("  version:  {}", s.version);
    outln!("  mode:     {}", s.mode);
    outln!("  uptime:   {}s", s.uptime_secs);
    outln!(
        "  policy:   {} from {}",
        rampart_server::wire::policies_and_rules(s.policies, s.rules),
        s.policy_source
    );
    if let Some(err) = &s.last_reload_error {
        outln!(
            "  reload:   last reload failed: {}",
            rampart_server::printable_string(err.as_bytes())
        );
    }
    outln!("  pending:  {} approval(s)", s.pending_approvals);
    outln!(
        "  agents:   {} agent credential(s) alive",
        s.agent_credentials
    );
    outln!("  audit:    {}", s.audit_dir);
    for export in &s.exports {
        outln!(
            "  export:   {}: {} delivered, lag {} event(s){}",
            export.url,
            export.delivered,
            export.lag,
            match &export.last_error {
                Some(e) => format!(
                    ", last error: {}",
                    rampart_server::printable_string(e.as_bytes())
                ),
                None => String::new(),
            }
        );
    }
    if let Some(repo) = &s.policy_repo {
        outln!(
            "  repo:     {} at {}",
            repo.source,
            repo.adopted.as_deref().unwrap_or("(no commit adopted yet)")
        );
        if let Some(refused) = &repo.refused {
            outln!(
                "  refused:  commit {refused}: {}",
                rampart_server::printable_string(
                    repo.refused_reason.as_deref().unwrap_or("").as_bytes()
                )
            );
        }
        if let Some(e) = &repo.fetch_error {
            outln!(
                "  fetch:    {} (the adopted policy stays)",
                rampart_server::printable_string(e.as_bytes())
            );
        }
    }
    if s.notify_targets > 0 {
        outln!(
            "  notify:   {} target(s): {} sent, {} failed, {} dropped",
            s.notify_targets,
            s.notify_sent,
            s.notify_failed,
            s.notify_dropped
        );
        if let Some(err) = &s.notify_last_error {
            outln!(
                "  notify:   last error: {}",
                rampart_server::printable_string(err.as_bytes())
            );
        }
    }
    if s.unrecorded_refusals > 0 {
        outln!(
            "  unrecorded: {} refusal(s) answered while the audit trail could not be written (see the server's stderr)",
            s.unrecorded_refusals
        );
    }
    Ok(Outcome::Success)
}

/// The systemd user unit for `serve install`.
pub fn systemd_unit(exe: &Path, home: &Path, port: u16) -> String {
    format!(
        "[Unit]\n\
         Description=Rampart policy server (guards commands run by AI agents)\n\
         After=default.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         Environment=RAMPART_HOME={home}\n\
         ExecStart={exe} serve --port {port}\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=on-failure\n\
         RestartSec=1\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        home = home.display(),
        exe = exe.display(),
    )
}

/// The launchd agent for `serve install` on macOS.
pub fn launchd_plist(exe: &Path, home: &Path, port: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>dev.rampart.serve</string>
  <key>ProgramArguments</key>
  <array><string>{exe}</string><string>serve</string><string>--port</string><string>{port}</string></array>
  <key>EnvironmentVariables</key>
  <dict><key>RAMPART_HOME</key><string>{home}</string></dict>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><true/>
  <key>StandardOutPath</key><string>{home}/serve.log</string>
  <key>StandardErrorPath</key><string>{home}/serve.log</string>
</dict>
</plist>
"#,
        exe = exe.display(),
        home = home.display(),
    )
}

fn unit_path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("systemd/user/rampart.service"))
}

fn install(dry_run: bool, port: u16) -> Result<Outcome> {
    let home = home::dir()?;
    let exe = std::env::current_exe().context("finding the rampart binary")?;
    let text = if cfg!(target_os = "macos") {
        launchd_plist(&exe, &home, port)
    } else {
        systemd_unit(&exe, &home, port)
    };
    if dry_run {
        out!("{text}");
        return Ok(Outcome::Success);
    }
    if cfg!(target_os = "macos") {
        let plist = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join("Library/LaunchAgents/dev.rampart.serve.plist");
        write_file(&plist, &text)?;
        run_checked("launchctl", &["load", "-w", &plist.to_string_lossy()])?;
        outln!("rampart: installed and started {}", plist.display());
        return Ok(Outcome::Success);
    }
    let systemd_ok = std::process::Command::new("systemctl")
        .args(["--user", "show-environment"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !systemd_ok {
        bail!(
            "no systemd user session on this machine (`systemctl --user` is unavailable), so no service \
             was installed; run `rampart serve --background` instead, or print the unit with \
             `rampart serve install --dry-run`"
        );
    }
    let path = unit_path()?;
    write_file(&path, &text)?;
    run_checked("systemctl", &["--user", "daemon-reload"])?;
    run_checked(
        "systemctl",
        &["--user", "enable", "--now", "rampart.service"],
    )?;
    outln!(
        "rampart: installed and started {} (port {port})",
        path.display()
    );
    Ok(Outcome::Success)
}

fn uninstall() -> Result<Outcome> {
    if cfg!(target_os = "macos") {
        let plist = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join("Library/LaunchAgents/dev.rampart.serve.plist");
        let _ = run_checked("launchctl", &["unload", "-w", &plist.to_string_lossy()]);
        remove_if_exists(&plist)?;
        return Ok(Outcome::Success);
    }
    let path = unit_path()?;
    if !path.exists() {
        outln!(
            "rampart: no service installed ({} does not exist)",
            path.display()
        );
        return Ok(Outcome::Success);
    }
    let _ = run_checked(
        "systemctl",
        &["--user", "disable", "--now", "rampart.service"],
    );
    remove_if_exists(&path)?;
    let _ = run_checked("systemctl", &["--user", "daemon-reload"]);
    outln!("rampart: removed {}", path.display());
    Ok(Outcome::Success)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

fn run_checked(program: &str, args: &[&str]) -> Result<()> {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
