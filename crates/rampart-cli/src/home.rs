//! Where Rampart keeps its files: `$RAMPART_HOME`, default `~/.rampart` (DESIGN.md §3).
//! Every command goes through here, so tests can point everything at a temp directory.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// The Rampart home directory (not created here).
pub fn dir() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("RAMPART_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".rampart")),
        None => bail!(
            "neither RAMPART_HOME nor HOME is set; set RAMPART_HOME to choose where Rampart keeps its files"
        ),
    }
}

pub fn policies_dir() -> Result<PathBuf> {
    Ok(dir()?.join("policies"))
}

/// Creates `path` (and parents) with mode 0700, as DESIGN.md §3 asks for the home.
pub fn create_private_dir(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting mode 0700 on {}", path.display()))
}

/// Refuses a home or token file other users could write (or, for the token, read); the
/// error names the path, its mode and the command that fixes it. Checked before a server
/// starts on this home (`rampart serve`, `--background`, and the autostart of
/// `rampart preload`/`supervise`); `rampart doctor` reports the same rule.
pub fn check_private(home: &std::path::Path) -> Result<()> {
    rampart_server::token::check_private(home)
        .map_err(|e| anyhow::anyhow!("refusing to start the server: {e}"))
}

/// The server's endpoint for this home: `url` (from `--url`) or `RAMPART_URL` if given,
/// else the home's Unix socket. Never the default TCP port: whatever answers there may be
/// another home's server, and admin commands would hand it this home's token.
pub fn endpoint(
    home: &std::path::Path,
    url: Option<&str>,
) -> Result<rampart_server::client::Endpoint> {
    use rampart_server::client::Endpoint;
    let env_url = std::env::var("RAMPART_URL").ok();
    if let Some(url) = url.or(env_url.as_deref()).filter(|u| !u.is_empty()) {
        return Endpoint::parse(url).map_err(anyhow::Error::msg);
    }
    Ok(Endpoint::Unix(home.join("rampart.sock")))
}

/// This home's server is not running (or not answering): said by `serve status`,
/// `pending`, `approve`/`deny`, `serve --reload` and `dashboard` as one line with the
/// command that starts it (exit 1).
#[derive(Debug)]
pub struct NotRunning {
    pub url: String,
}

impl std::fmt::Display for NotRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not running (nothing answers at {}); start it with `rampart serve --background`",
            self.url
        )
    }
}

impl std::error::Error for NotRunning {}

/// The endpoint of this home's running server, or [`NotRunning`].
pub fn running(home: &std::path::Path) -> Result<rampart_server::client::Endpoint> {
    let endpoint = endpoint(home, None)?;
    if !rampart_server::client::healthy(&endpoint) {
        return Err(NotRunning {
            url: endpoint.url(),
        }
        .into());
    }
    Ok(endpoint)
}
