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
