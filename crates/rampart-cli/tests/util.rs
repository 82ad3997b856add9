//! Test fixture: a throw-away `RAMPART_HOME` and a way to run the real `rampart` binary
//! in it. Tests never touch the real `~/.rampart`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SEED_POLICY: &str = include_str!("../../../examples/seed-policy.yaml");

pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::Builder::new()
                .prefix("rampart-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn policies(&self) -> PathBuf {
        self.path().join("policies")
    }

    /// Writes `policies/<name>` and returns its path.
    pub fn policy(&self, name: &str, yaml: &str) -> PathBuf {
        std::fs::create_dir_all(self.policies()).unwrap();
        let path = self.policies().join(name);
        std::fs::write(&path, yaml).unwrap();
        path
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
        cmd.env("RAMPART_HOME", self.path())
            .env_remove("RAMPART_URL")
            .env_remove("RAMPART_TOKEN")
            .env_remove("LD_PRELOAD");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.cmd().args(args).output().unwrap())
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
}
