//! Loading policy files: YAML → [`PolicyFile`] with strict validation. Every error names
//! `file:line:column` and, for misspelt keys or actions, the word that was probably meant.

use std::path::Path;

use crate::error::PolicyError;
use crate::model::PolicyFile;

/// Parses policy YAML `text`; `file` is only used to name locations.
pub fn parse_str(file: &Path, text: &str) -> Result<PolicyFile, PolicyError> {
    let _ = (file, text);
    Err(PolicyError::Invalid {
        file: file.to_path_buf(),
        line: 1,
        column: 1,
        message: "not implemented".into(),
        hint: Default::default(),
    })
}

/// Reads and parses one policy file.
pub fn load_file(path: &Path) -> Result<PolicyFile, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(path, &text)
}

/// Loads every `*.yaml` / `*.yml` file of `dir`, sorted by file name. A missing
/// directory is an empty list.
pub fn load_dir(dir: &Path) -> Result<Vec<PolicyFile>, PolicyError> {
    let mut paths = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PolicyError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| PolicyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        );
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|p| load_file(p)).collect()
}
