//! The program an exec really runs (issue 14, family 2), for the policy's `aliases`:
//! the canonical name of a symlink, the `#!` interpreter of a script, and the name of a
//! program a deny or ask rule names when the file is a renamed copy of it.
//!
//! The policy crate stays pure: the file reads happen here. They cost a `stat` per exec
//! (the answer is cached by path, device, inode, size and modification time); a copy is
//! compared byte for byte only with the named programs of the same size.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rampart_policy::PolicySet;

/// Directories where the programs rules name are looked up.
const PROGRAM_DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];

/// Entries kept before the cache is emptied (a bound, not a tuning knob).
const CACHE_LIMIT: usize = 4096;

/// How much of a file is read for its `#!` line.
const SHEBANG_MAX: usize = 256;

type Key = (String, u64, u64, u64, i64, i64);

/// What was worked out for one file, and for which policy's named programs.
struct Cached {
    policy: usize,
    aliases: Vec<String>,
}

/// Named programs of one policy: name, path, size.
struct Named {
    policy: usize,
    programs: Vec<(String, std::path::PathBuf, u64)>,
}

/// The aliases of `exe` under `policy`, through the server's one cache.
pub fn aliases(exe: Option<&str>, policy: &Arc<PolicySet>) -> Vec<String> {
    static PROGRAMS: std::sync::OnceLock<Programs> = std::sync::OnceLock::new();
    match exe {
        Some(exe) => PROGRAMS.get_or_init(Programs::default).aliases(exe, policy),
        None => Vec::new(),
    }
}

#[derive(Default)]
pub struct Programs {
    cache: Mutex<HashMap<Key, Cached>>,
    named: Mutex<Option<Arc<Named>>>,
}

impl Programs {
    /// Other names of the program at `exe` (absolute), as [`rampart_policy::Request`]
    /// `aliases` reads them; empty when it has none or cannot be looked at (the exec is
    /// still judged by its command).
    pub fn aliases(&self, exe: &str, policy: &Arc<PolicySet>) -> Vec<String> {
        if !exe.starts_with('/') {
            return Vec::new();
        }
        let Ok(meta) = std::fs::metadata(exe) else {
            return Vec::new();
        };
        let policy_id = Arc::as_ptr(policy) as usize;
        let key: Key = (
            exe.to_owned(),
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
        );
        if let Ok(cache) = self.cache.lock()
            && let Some(hit) = cache.get(&key)
            && hit.policy == policy_id
        {
            return hit.aliases.clone();
        }
        let named = self.named(policy);
        let aliases = work_out(exe, &meta, &named);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(
                key,
                Cached {
                    policy: policy_id,
                    aliases: aliases.clone(),
                },
            );
        }
        aliases
    }

    /// The programs `policy`'s deny/ask rules name, found on disk (computed once per
    /// loaded policy).
    fn named(&self, policy: &Arc<PolicySet>) -> Arc<Named> {
        let id = Arc::as_ptr(policy) as usize;
        if let Ok(named) = self.named.lock()
            && let Some(named) = named.as_ref()
            && named.policy == id
        {
            return named.clone();
        }
        let mut programs = Vec::new();
        for name in policy.named_programs() {
            for dir in PROGRAM_DIRS {
                let path = Path::new(dir).join(&name);
                if let Ok(meta) = std::fs::metadata(&path)
                    && meta.is_file()
                {
                    let canonical = std::fs::canonicalize(&path).unwrap_or(path);
                    programs.push((name.clone(), canonical, meta.size()));
                    break;
                }
            }
        }
        let named = Arc::new(Named {
            policy: id,
            programs,
        });
        if let Ok(mut slot) = self.named.lock() {
            *slot = Some(named.clone());
        }
        named
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn work_out(exe: &str, meta: &std::fs::Metadata, named: &Named) -> Vec<String> {
    let mut aliases = Vec::new();
    let name = basename(exe);
    // A symlink (or a hard-linked path through one): the name of what it points to.
    let canonical = std::fs::canonicalize(exe).ok();
    if let Some(canonical) = canonical.as_ref().and_then(|c| c.to_str())
        && basename(canonical) != name
    {
        aliases.push(basename(canonical).to_owned());
    }
    let Ok(mut file) = std::fs::File::open(exe) else {
        return aliases;
    };
    let mut head = [0u8; SHEBANG_MAX];
    let n = file.read(&mut head).unwrap_or(0);
    let head = head.get(..n).unwrap_or_default();
    // `#!/bin/rm -rf` runs `/bin/rm -rf SCRIPT ARGS…`.
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        if let Some(interpreter) = words.next() {
            let mut alias = basename(interpreter).to_owned();
            // One argument, as the kernel passes it (`env` then names the program).
            let arg: Vec<&str> = words.collect();
            if !arg.is_empty() {
                alias.push(' ');
                alias.push_str(&arg.join(" "));
            }
            alias.push(' ');
            alias.push_str(exe);
            aliases.push(alias);
        }
        return aliases;
    }
    // A renamed copy of a program a rule names: same size, same bytes.
    for (program, path, size) in &named.programs {
        if *size != meta.size() || program == name || aliases.contains(program) {
            continue;
        }
        if same_content(exe, path) {
            aliases.push(program.clone());
            break;
        }
    }
    aliases
}

fn same_content(a: &str, b: &Path) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let mut ba = [0u8; 64 * 1024];
    let mut bb = [0u8; 64 * 1024];
    loop {
        let (Ok(na), Ok(nb)) = (read_full(&mut fa, &mut ba), read_full(&mut fb, &mut bb)) else {
            return false;
        };
        if na != nb || ba.get(..na) != bb.get(..nb) {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(buf.get_mut(n..).unwrap_or_default())? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> Arc<PolicySet> {
        match rampart_policy::profiles::load("standard") {
            Some(Ok(set)) => Arc::new(set),
            _ => panic!("standard profile"),
        }
    }

    #[test]
    fn symlink_shebang_and_renamed_copy() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let programs = Programs::default();
        let policy = standard();
        let rm = std::fs::canonicalize("/usr/bin/rm").unwrap();

        let link = d.join("x");
        std::os::unix::fs::symlink(&rm, &link).unwrap();
        assert_eq!(programs.aliases(link.to_str().unwrap(), &policy), ["rm"]);

        let copy = d.join("y");
        std::fs::copy(&rm, &copy).unwrap();
        assert_eq!(programs.aliases(copy.to_str().unwrap(), &policy), ["rm"]);
        // Cached, and the same answer again.
        assert_eq!(programs.aliases(copy.to_str().unwrap(), &policy), ["rm"]);

        let script = d.join("s");
        std::fs::write(&script, "#!/bin/rm -rf\n").unwrap();
        let s = script.to_str().unwrap();
        assert_eq!(programs.aliases(s, &policy), [format!("rm -rf {s}")]);

        let other = d.join("ls-copy");
        std::fs::copy("/bin/ls", &other).unwrap();
        assert!(
            programs
                .aliases(other.to_str().unwrap(), &policy)
                .is_empty()
        );
        assert!(programs.aliases("/nonexistent/x", &policy).is_empty());
        assert!(programs.aliases("relative", &policy).is_empty());
    }
}
