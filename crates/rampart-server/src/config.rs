//! What `rampart serve` was asked to do.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How decisions are applied (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Decisions are enforced.
    Enforce,
    /// Decisions are evaluated and audited, but every call is allowed.
    Monitor,
    /// Nothing is evaluated; everything is allowed.
    Disabled,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
            Mode::Disabled => "disabled",
        }
    }

    pub fn parse(word: &str) -> Option<Mode> {
        match word {
            "enforce" => Some(Mode::Enforce),
            "monitor" => Some(Mode::Monitor),
            "disabled" => Some(Mode::Disabled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `$RAMPART_HOME`: holds the token (created on first start).
    pub home: PathBuf,
    pub addr: IpAddr,
    /// 0 picks a free port; the chosen one is printed.
    pub port: u16,
    pub socket: PathBuf,
    pub mode: Mode,
    pub policies_dir: PathBuf,
    pub audit_dir: PathBuf,
    /// How long an `ask` may wait for a person at most.
    pub approval_timeout: Duration,
    /// `--export URL` targets (issue 17).
    pub exports: Vec<crate::export::ExportSpec>,
    /// `--policy-repo`: a git repository whose `*.yaml` are loaded alongside local files.
    pub policy_repo: Option<crate::policy_repo::RepoConfig>,
    /// Where notices go (`--notify`, `config.yaml`'s `notify:`).
    pub notify: Vec<crate::notify::Target>,
}

impl ServerConfig {
    /// The defaults of DESIGN.md §3/§4 for a given home.
    pub fn for_home(home: PathBuf) -> ServerConfig {
        ServerConfig {
            addr: IpAddr::from([127, 0, 0, 1]),
            port: 9090,
            socket: home.join("rampart.sock"),
            mode: Mode::Enforce,
            policies_dir: home.join("policies"),
            audit_dir: home.join("audit"),
            approval_timeout: Duration::from_secs(120),
            exports: Vec::new(),
            policy_repo: None,
            notify: Vec::new(),
            home,
        }
    }
}
