//! The admin bearer token: `rampart_` + 64 lowercase hex characters in
//! `$RAMPART_HOME/token`, mode 0600, created by the first `serve`.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const PREFIX: &str = "rampart_";

pub fn path(home: &Path) -> PathBuf {
    home.join("token")
}

/// A fresh token from the kernel's CSPRNG.
pub fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let mut token = String::with_capacity(PREFIX.len() + 64);
    token.push_str(PREFIX);
    for b in bytes {
        token.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        token.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    Ok(token)
}

/// True for `rampart_` followed by exactly 64 lowercase hex digits.
pub fn is_well_formed(token: &str) -> bool {
    prefixed_hex64(token, PREFIX)
}

/// True for `prefix` followed by exactly 64 lowercase hex digits (the admin token and
/// agent credentials share this shape, with different prefixes).
pub(crate) fn prefixed_hex64(token: &str, prefix: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Reads the token file, trimmed.
pub fn read(home: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path(home))?.trim().to_owned())
}

/// Writes `token` atomically with mode 0600.
pub fn write(home: &Path, token: &str) -> std::io::Result<()> {
    write_private_atomically(&path(home), token.as_bytes())
}

/// Replaces `path` with `contents` and a newline, readable by its owner only: written to
/// a `.NAME.tmp` beside it (created 0600, never following an existing file), synced, then
/// renamed over it, so a reader sees the old file or the new one, never half of one.
pub fn write_private_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Writes a small file in the home readable by its owner only (`serve.port`,
/// `serve.pid`): created with mode 0600, and an older file's mode is tightened too.
pub fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)
}

/// The token, created if the file does not exist yet.
pub fn ensure(home: &Path) -> std::io::Result<String> {
    match read(home) {
        Ok(token) if !token.is_empty() => Ok(token),
        Ok(_) => {
            let token = generate()?;
            write(home, &token)?;
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = generate()?;
            write(home, &token)?;
            Ok(token)
        }
        Err(e) => Err(e),
    }
}

/// A home directory or token file that other users can write (or, for the token, read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPrivate {
    pub path: PathBuf,
    /// The permission bits found (`& 0o7777`).
    pub mode: u32,
    /// What others can do, e.g. "other users can write in it".
    pub why: &'static str,
    /// The shell command that fixes it.
    pub fix: String,
}

impl std::fmt::Display for NotPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} has mode {:04o}: {}; fix: {}",
            self.path.display(),
            self.mode,
            self.why,
            self.fix
        )
    }
}

impl std::error::Error for NotPrivate {}

fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// The rule the server starts under (like ssh's for private keys): the home must not be
/// writable by group or others (they could replace the token or add policies), and the
/// token file must be neither writable nor readable by them (a token others may have
/// read is no secret any more, so the fix rotates it). Missing files pass: the server
/// creates them privately. A home that others can merely read is no error here: the
/// server tightens it to 0700 itself.
pub fn check_private(home: &Path) -> Result<(), NotPrivate> {
    check_home(home)?;
    check_file(home)
}

/// The home half of [`check_private`]: not writable by group or others.
pub fn check_home(home: &Path) -> Result<(), NotPrivate> {
    match mode_of(home) {
        Some(mode) if mode & 0o022 != 0 => Err(NotPrivate {
            path: home.to_path_buf(),
            mode,
            why: "other users can write in it (replace the admin token, add policies)",
            fix: format!("chmod 700 {}", home.display()),
        }),
        _ => Ok(()),
    }
}

/// The token half of [`check_private`]: no permission bits for group or others.
pub fn check_file(home: &Path) -> Result<(), NotPrivate> {
    let token = path(home);
    match mode_of(&token) {
        Some(mode) if mode & 0o077 != 0 => Err(NotPrivate {
            why: if mode & 0o022 != 0 {
                "other users can write the admin token"
            } else {
                "other users can read the admin token"
            },
            fix: format!("chmod 600 {} && rampart token rotate", token.display()),
            path: token,
            mode,
        }),
        _ => Ok(()),
    }
}

/// Compares in time independent of where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn private_means_no_write_for_others_on_the_home_and_no_access_for_others_to_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        // Missing token: fine (the server creates it).
        chmod(home, 0o700);
        assert_eq!(check_private(home), Ok(()));
        for (mode, ok) in [
            (0o700, true),
            (0o750, true),
            (0o755, true),
            (0o720, false),
            (0o702, false),
            (0o777, false),
            (0o1777, false),
        ] {
            chmod(home, mode);
            let result = check_home(home);
            assert_eq!(result.is_ok(), ok, "home {mode:o}: {result:?}");
            if let Err(e) = result {
                assert_eq!(
                    e.to_string(),
                    format!(
                        "{} has mode {mode:04o}: other users can write in it (replace the admin \
                         token, add policies); fix: chmod 700 {}",
                        home.display(),
                        home.display()
                    )
                );
            }
        }
        chmod(home, 0o700);
        write(home, &generate().unwrap()).unwrap();
        for (mode, why) in [
            (0o600, None),
            (0o400, None),
            (0o700, None),
            (0o640, Some("read")),
            (0o604, Some("read")),
            (0o610, Some("read")),
            (0o620, Some("write")),
            (0o602, Some("write")),
            (0o666, Some("write")),
        ] {
            chmod(&path(home), mode);
            match (check_private(home), why) {
                (Ok(()), None) => {}
                (Err(e), Some(verb)) => {
                    assert_eq!(e.path, path(home));
                    assert_eq!(e.mode, mode);
                    assert_eq!(e.why, format!("other users can {verb} the admin token"));
                    assert_eq!(
                        e.fix,
                        format!("chmod 600 {} && rampart token rotate", path(home).display())
                    );
                }
                (result, _) => panic!("token {mode:o}: {result:?}"),
            }
        }
    }

    #[test]
    fn write_owner_only_tightens_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.port");
        std::fs::write(&file, "1\n").unwrap();
        chmod(&file, 0o644);
        write_owner_only(&file, b"2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "2\n");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
