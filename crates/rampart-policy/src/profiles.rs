//! The shipped profiles (`policies/*.yaml` in the repository), embedded in the binary, and
//! the rule for which policy is in force: the files of the policy directory, or the
//! embedded `standard` profile when that directory holds no policy file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::PolicyError;
use crate::eval::PolicySet;
use crate::load;

/// Name and YAML text of every shipped profile.
pub const PROFILES: &[(&str, &str)] = &[
    ("standard", include_str!("../../../policies/standard.yaml")),
    ("paranoid", include_str!("../../../policies/paranoid.yaml")),
    ("yolo", include_str!("../../../policies/yolo.yaml")),
];

/// The YAML of a shipped profile.
pub fn text(name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Loads a shipped profile; its locations read `embedded:<name>.yaml:<line>`.
pub fn load(name: &str) -> Option<Result<PolicySet, PolicyError>> {
    let text = text(name)?;
    let path = PathBuf::from(format!("embedded:{name}.yaml"));
    Some(load::parse_str(&path, text).and_then(|file| PolicySet::new(vec![file])))
}

/// Where the policy in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The files of this directory.
    Directory(PathBuf),
    /// The directory held no policy file: the embedded standard profile.
    EmbeddedStandard,
}

/// The policy in force for a policy directory: its files, or the embedded standard
/// profile when it has none.
pub fn load_effective(dir: &Path) -> Result<(Arc<PolicySet>, Source), PolicyError> {
    let files = load::load_dir(dir)?;
    if files.is_empty() {
        let set = match load("standard") {
            Some(result) => result?,
            // Unreachable by construction (PROFILES names it); kept as an error, not a panic.
            None => PolicySet::new(Vec::new())?,
        };
        return Ok((Arc::new(set), Source::EmbeddedStandard));
    }
    Ok((
        Arc::new(PolicySet::new(files)?),
        Source::Directory(dir.to_path_buf()),
    ))
}
