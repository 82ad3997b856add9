//! `rampart dashboard`: prints the live dashboard's URL with the token in its fragment
//! (`#token=…`, which browsers never send to the server) and tries to open it.
//!
//! The port comes from `$RAMPART_HOME/serve.port`, written by the running server, so a
//! server on `--port 0` or a custom port is found too; `RAMPART_URL=http://…` wins.

use std::path::Path;

use anyhow::Result;
use rampart_server::client::Endpoint;

use crate::Outcome;
use crate::home;
use crate::serve_cmd::token;

const DEFAULT_PORT: u16 = 9090;

pub fn run() -> Result<Outcome> {
    let home = home::dir()?;
    // Not running: said before the token is read (a fresh home has none yet), and no URL
    // is printed that would lead to whatever else listens on the default port.
    home::running(&home)?;
    let token = token(&home)?;
    let base = base_url(&home);
    let url = format!("{base}/dashboard/#token={token}");
    outln!("{url}");
    if let Some(opener) = open_in_browser(&url) {
        eprintln!("rampart: opened the dashboard with {opener}");
    }
    Ok(Outcome::Success)
}

/// `http://127.0.0.1:PORT`: from RAMPART_URL when it is an http URL, else the port the
/// running server wrote, else the default port.
fn base_url(home: &Path) -> String {
    if let Ok(url) = std::env::var("RAMPART_URL")
        && let Ok(Endpoint::Tcp(hostport)) = Endpoint::parse(&url)
    {
        return format!("http://{hostport}");
    }
    let port = std::fs::read_to_string(home.join("serve.port"))
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_PORT);
    format!("http://127.0.0.1:{port}")
}

/// Starts the desktop's URL opener when there is a desktop; never fails the command.
fn open_in_browser(url: &str) -> Option<&'static str> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        let display = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
        if !display {
            return None;
        }
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
        .map(|_| opener)
}
