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
    token.strip_prefix(PREFIX).is_some_and(|hex| {
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
    let final_path = path(home);
    let tmp = home.join(".token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, &final_path)?;
    std::fs::set_permissions(&final_path, std::fs::Permissions::from_mode(0o600))
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
