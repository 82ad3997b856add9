//! The configuration snapshot taken once when the library loads, and the real libc
//! functions resolved at the same time.
//!
//! Everything here is written exactly once, by the `.init_array` constructor (before
//! `main`, single-threaded) and is read-only afterwards, so the exec path reads it without
//! locks. Strings live in a fixed arena inside the snapshot: no heap.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::sink::{Sink, SliceWriter};
use crate::sys::{self, CArray};

use rampart_contract::url::{self, UrlError};
use rampart_contract::values;
pub use rampart_contract::values::Mode;

pub const DEFAULT_URL: &[u8] = url::DEFAULT_URL.as_bytes();

/// Where the policy server listens (the contract's `url::parse`, with the parts this
/// library needs copied into the snapshot's arena).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    Tcp {
        ip: [u8; 4],
        port: u16,
    },
    Unix,
    /// A URL we will not use: nothing is ever sent anywhere, and in enforce mode every
    /// exec is refused (a request that cannot be built is not "nobody answered").
    Invalid(UrlError),
}

/// A string in the arena: offset and length.
#[derive(Clone, Copy, Default)]
pub struct Str {
    off: usize,
    len: usize,
}

pub type ExecveFn =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
pub type FexecveFn =
    unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
pub type ExecveatFn = unsafe extern "C" fn(
    c_int,
    *const c_char,
    *const *const c_char,
    *const *const c_char,
    c_int,
) -> c_int;
pub type SystemFn = unsafe extern "C" fn(*const c_char) -> c_int;
pub type PopenFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE;
pub type SpawnFn = unsafe extern "C" fn(
    *mut libc::pid_t,
    *const c_char,
    *const libc::posix_spawn_file_actions_t,
    *const libc::posix_spawnattr_t,
    *const *const c_char,
    *const *const c_char,
) -> c_int;

/// The real functions the wrappers end in. `execv`, `execvp`, `execvpe` and the `execl*`
/// family are served by `execve` with an explicit (re-injected) environment — the
/// `execvp*` ones on the path this library resolved and checked, never on a name libc
/// would look up again — and `posix_spawnp` by `posix_spawn` on the resolved path, so
/// only these six are resolved.
#[derive(Clone, Copy, Default)]
pub struct Real {
    pub execve: Option<ExecveFn>,
    pub fexecve: Option<FexecveFn>,
    pub execveat: Option<ExecveatFn>,
    pub system: Option<SystemFn>,
    pub popen: Option<PopenFn>,
    pub posix_spawn: Option<SpawnFn>,
}

/// Variables whose snapshot value every child receives (they are removed from a child's
/// environment and replaced by ours). `LD_PRELOAD` is handled separately.
pub const INJECTED_KEYS: [&[u8]; 10] = [
    b"RAMPART_URL",
    b"RAMPART_TOKEN",
    b"RAMPART_MODE",
    b"RAMPART_FAIL_OPEN",
    b"RAMPART_PROTECT",
    b"RAMPART_AGENT",
    b"RAMPART_SESSION",
    b"RAMPART_DEBUG",
    b"RAMPART_ASK_TIMEOUT",
    b"RAMPART_DEBUG_LOADED",
];

/// Removed from every child's environment and never copied from the snapshot: the
/// count of programs that ran unchecked is handed only to the program that ran so (see
/// `unchecked`).
pub const UNCHECKED_KEY: &[u8] = b"RAMPART_UNCHECKED";

const ARENA: usize = 16 * 1024;
/// Longest value of one variable the snapshot keeps (a longer one makes the snapshot
/// incomplete, see `Config::incomplete`).
const VALUE_MAX: usize = 4096;

/// `repr(C)`, the arena last: the fields and the start of the arena, all the constructor
/// writes, share the first page (see `Global`).
#[repr(C)]
pub struct Config {
    pub mode: Mode,
    pub fail_open: bool,
    /// `RAMPART_PROTECT`: an unreachable server refuses whatever fail-open says.
    pub protect: bool,
    /// A value did not fit the snapshot (arena or per-value limit): what children would
    /// receive is not what this process runs with, so every exec is refused.
    pub incomplete: bool,
    /// `RAMPART_UNCHECKED` as this process found it at load.
    pub unchecked_at_load: u64,
    pub debug: bool,
    pub ask_timeout_ms: u64,
    /// `CI=true`: no person to ask (the ask timeout then defaults to 0).
    pub ci: bool,
    pub target: Target,
    pub url: Str,
    pub token: Str,
    pub agent: Str,
    pub session: Str,
    /// `host:port` for the Host header (or `localhost` for a Unix socket).
    pub host: Str,
    /// NUL-terminated socket path for `unix:` URLs.
    pub unix_path: Str,
    /// Absolute path of this library, as ld.so loaded it.
    pub lib_path: Str,
    /// NUL-terminated `KEY=VALUE` strings injected into every child environment.
    pub env: [*const c_char; INJECTED_KEYS.len()],
    pub env_len: usize,
    pub real: Real,
    used: usize,
    arena: [u8; ARENA],
}

impl Config {
    /// A default snapshot (no token, no URL) for unit tests of code that takes a `Config`.
    #[cfg(test)]
    pub fn for_tests() -> Box<Self> {
        Box::new(Self::new())
    }

    #[cfg(test)]
    fn new() -> Self {
        Config {
            fail_open: true,
            ask_timeout_ms: values::DEFAULT_ASK_TIMEOUT_MS,
            target: Target::Invalid(UrlError::Unsupported),
            ..Self::zero()
        }
    }

    /// The value before the constructor ran, every byte zero (`init` sets every field
    /// before `ready`): the 16 KiB snapshot then lives in `.bss`, not in the file's
    /// `.data`, so the pages the constructor writes are fresh zero pages rather than
    /// copies of the file.
    const fn zero() -> Self {
        Config {
            mode: Mode::Enforce,
            fail_open: false,
            protect: false,
            incomplete: false,
            unchecked_at_load: 0,
            debug: false,
            ask_timeout_ms: 0,
            ci: false,
            target: Target::Tcp {
                ip: [0; 4],
                port: 0,
            },
            url: Str { off: 0, len: 0 },
            token: Str { off: 0, len: 0 },
            agent: Str { off: 0, len: 0 },
            session: Str { off: 0, len: 0 },
            host: Str { off: 0, len: 0 },
            unix_path: Str { off: 0, len: 0 },
            lib_path: Str { off: 0, len: 0 },
            env: [core::ptr::null(); INJECTED_KEYS.len()],
            env_len: 0,
            real: Real {
                execve: None,
                fexecve: None,
                execveat: None,
                system: None,
                popen: None,
                posix_spawn: None,
            },
            arena: [0; ARENA],
            used: 0,
        }
    }

    pub fn s(&self, s: Str) -> &[u8] {
        self.arena.get(s.off..s.off + s.len).unwrap_or(&[])
    }

    /// Stores `parts` concatenated plus a NUL; returns the string without the NUL.
    fn store(&mut self, parts: &[&[u8]]) -> Str {
        let off = self.used;
        let mut w = SliceWriter::new(self.arena.get_mut(off..).unwrap_or(&mut []));
        for p in parts {
            w.put(p);
        }
        w.put(b"\0");
        if w.truncated {
            self.incomplete = true;
            return Str { off, len: 0 };
        }
        let len = w.len - 1;
        self.used += w.len;
        Str { off, len }
    }

    /// Stores `key=<val>` plus a NUL, `val` being a string already in the arena.
    fn store_kv(&mut self, key: &[u8], val: Str) -> Str {
        let off = self.used;
        let total = key.len() + 1 + val.len + 1;
        let value_at = off + key.len() + 1;
        if off + total > ARENA || val.off + val.len > off {
            self.incomplete = true;
            return Str { off, len: 0 };
        }
        if let Some(k) = self.arena.get_mut(off..off + key.len()) {
            k.copy_from_slice(key);
        }
        if let Some(eq) = self.arena.get_mut(off + key.len()) {
            *eq = b'=';
        }
        self.arena.copy_within(val.off..val.off + val.len, value_at);
        if let Some(nul) = self.arena.get_mut(off + total - 1) {
            *nul = 0;
        }
        self.used += total;
        Str {
            off,
            len: total - 1,
        }
    }

    fn cptr(&self, s: Str) -> *const c_char {
        self.arena.as_ptr().wrapping_add(s.off).cast()
    }

    pub fn env_entries(&self) -> &[*const c_char] {
        self.env.get(..self.env_len).unwrap_or(&[])
    }

    pub fn session(&self) -> &[u8] {
        self.s(self.session)
    }
}

/// A value written once before any reader exists, read-only afterwards.
///
/// Page-aligned, with its flags first: the constructor's first access to it is a write
/// (`begun`), and everything it writes (flags, fields, the start of the arena) is on that
/// one page. A fresh `.bss` page whose first access is a read is mapped twice (the zero
/// page, then a copy on the write); this way it is one page fault, not three.
#[repr(C, align(4096))]
struct Global {
    /// Set by the first `init`, before anything is read.
    begun: AtomicBool,
    /// Set by `init` when the snapshot is complete.
    ready: AtomicBool,
    config: UnsafeCell<Config>,
}

// SAFETY: the config is only mutated by `init`, which runs before any other thread can
// observe it (library constructor) and publishes it with a Release store of `ready`;
// readers Acquire-load `ready` first (see `get`).
unsafe impl Sync for Global {}

static CONFIG: Global = Global {
    begun: AtomicBool::new(false),
    ready: AtomicBool::new(false),
    config: UnsafeCell::new(Config::zero()),
};

unsafe extern "C" {
    static mut environ: *const *const c_char;
}

/// The current process environment pointer (what `execv` and `system` use).
pub fn environ_ptr() -> *const *const c_char {
    // SAFETY: reading the pointer value of libc's `environ` global.
    unsafe { environ }
}

/// Swaps libc's `environ`; used only around `system`/`popen`, see `exports.rs`.
///
/// # Safety
/// `new` must be a valid NULL-terminated environment for as long as it is installed.
pub unsafe fn set_environ(new: *const *const c_char) {
    // SAFETY: plain store to libc's `environ` global; caller guarantees validity.
    unsafe { environ = new };
}

/// The snapshot, initialising it from `environ` if the constructor has not run yet (a
/// program that execs from an earlier library constructor).
pub fn get() -> &'static Config {
    if !CONFIG.ready.load(Ordering::Acquire) {
        // SAFETY: reached only before our constructor ran, i.e. during start-up.
        unsafe { init(environ_ptr()) };
    }
    // SAFETY: after `ready` the config is never written again.
    unsafe { &*CONFIG.config.get() }
}

/// Reads the configuration from `envp`, resolves the real functions and prints the debug
/// banner. Runs once.
///
/// # Safety
/// Must run single-threaded, before any reader (the library constructor), with `envp`
/// NULL or a valid environment array.
pub unsafe fn init(envp: *const *const c_char) {
    // A write first (see `Global`). "Begun" is "done" in a single-threaded start-up;
    // should another thread be filling the snapshot (a thread started by an earlier
    // constructor), wait the few microseconds that takes (bounded: never hang an exec).
    if CONFIG.begun.swap(true, Ordering::AcqRel) {
        for _ in 0..10_000_000 {
            if CONFIG.ready.load(Ordering::Acquire) {
                break;
            }
            core::hint::spin_loop();
        }
        return;
    }
    // SAFETY: single-threaded start-up, nobody else holds a reference (function contract).
    let cfg = unsafe { &mut *CONFIG.config.get() };
    // SAFETY: envp is a valid environment (function contract).
    let env = unsafe { CArray::new(envp) };
    // One pass over the environment, measuring only the `RAMPART_*` entries: this runs in
    // every process of the agent's tree, most of which never start anything, and nine
    // lookups that each measured every entry were a tenth of a preloaded `/bin/true`'s
    // instructions. The first entry of a name wins, as with getenv.
    let mut ours: [&'static [u8]; 32] = [b""; 32];
    let mut n_ours = 0usize;
    // `CI` too (one more prefix test per entry): in CI there is no person to ask.
    let mut ci: Option<&'static [u8]> = None;
    for i in 0..env.len() {
        if ci.is_none() && sys::has_prefix(env.raw(i), b"CI=") {
            ci = env.get(i).get(3..);
        }
        if n_ours < ours.len()
            && sys::has_prefix(env.raw(i), b"RAMPART_")
            && let Some(slot) = ours.get_mut(n_ours)
        {
            *slot = env.get(i);
            n_ours += 1;
        }
    }
    let ours = ours.get(..n_ours).unwrap_or(&[]);
    let var = |key: &[u8]| -> Option<&'static [u8]> {
        ours.iter().find_map(|e| {
            let rest = e.strip_prefix(key)?;
            rest.strip_prefix(b"=")
        })
    };

    let url = var(b"RAMPART_URL")
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_URL);
    cfg.url = cfg.store(&[url]);
    let token = var(b"RAMPART_TOKEN").unwrap_or(b"");
    cfg.token = cfg.store(&[token]);
    let mode_raw = var(b"RAMPART_MODE").unwrap_or(b"enforce");
    cfg.mode = values::mode_or_enforce(mode_raw);
    cfg.fail_open = values::fail_open(var(b"RAMPART_FAIL_OPEN"));
    cfg.protect = values::protect(var(b"RAMPART_PROTECT"));
    cfg.debug = values::debug(var(b"RAMPART_DEBUG"));
    cfg.ci = values::ci(ci);
    cfg.ask_timeout_ms = var(b"RAMPART_ASK_TIMEOUT")
        .and_then(values::duration_ms)
        .unwrap_or(values::default_ask_timeout_ms(cfg.ci));
    cfg.unchecked_at_load = var(UNCHECKED_KEY).map_or(0, parse_count);
    let agent = var(b"RAMPART_AGENT")
        .filter(|a| !a.is_empty())
        .unwrap_or(values::DEFAULT_AGENT.as_bytes());
    cfg.agent = cfg.store(&[agent]);
    let pid = sys::getpid();
    crate::unchecked::init(pid, cfg.unchecked_at_load);
    let mut pidbuf = [0u8; 20];
    cfg.session = match var(b"RAMPART_SESSION").filter(|s| !s.is_empty()) {
        Some(s) => cfg.store(&[s]),
        None => cfg.store(&[b"preload-", sys::fmt_u64(pid as u64, &mut pidbuf)]),
    };
    for v in [url, token, agent, var(b"RAMPART_SESSION").unwrap_or(b"")] {
        if v.len() > VALUE_MAX {
            cfg.incomplete = true;
        }
    }
    let url_copy = cfg.url;
    parse_url(cfg, url_copy);
    find_lib_path(cfg);
    // Without our own path (or with one too long for the `LD_PRELOAD` entry) children
    // could not be given the library back: every exec is refused instead.
    if cfg.lib_path.len == 0 || cfg.lib_path.len > VALUE_MAX {
        cfg.incomplete = true;
    }
    resolve_real(&mut cfg.real);
    build_env(cfg);

    let banner = cfg.debug && var(b"RAMPART_DEBUG_LOADED").is_none();
    CONFIG.ready.store(true, Ordering::Release);
    if banner {
        let cfg: &Config = cfg;
        debug(&[b"Library loaded"]);
        debug(&[b"URL: ", cfg.s(cfg.url)]);
        if let Target::Invalid(why) = cfg.target {
            debug(&[b"URL unusable: ", why.reason().as_bytes()]);
        }
        debug(&[b"Mode: ", cfg.mode.name().as_bytes()]);
        debug(&[
            b"Fail-open: ",
            if cfg.fail_open { b"true" } else { b"false" },
        ]);
        if cfg.protect {
            debug(&[b"Protect: true"]);
        }
    }
}

/// One `rampart: [DEBUG] ...` line on stderr (the caller checks `debug`).
pub fn debug(parts: &[&[u8]]) {
    line(b"rampart: [DEBUG] ", parts);
}

/// One stderr line made of a prefix and parts, written through a small stack buffer;
/// the parts go through the contract's `printable` (they carry URLs, names and commands).
pub fn line(prefix: &[u8], parts: &[&[u8]]) {
    let mut buf = [0u8; 512];
    let mut w = crate::sink::BufWriter::new(&mut buf, |c: &[u8]| {
        sys::write_all(2, c);
        true
    });
    w.put(prefix);
    {
        let mut p = crate::sink::Printable::new(&mut w);
        for part in parts {
            p.put(part);
        }
        p.finish();
    }
    w.put(b"\n");
    w.flush();
}

/// `RAMPART_UNCHECKED`: a decimal count; anything else is 0 (a count is only a report,
/// never a permission).
fn parse_count(v: &[u8]) -> u64 {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    v.iter().fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'))
}

fn parse_url(cfg: &mut Config, url: Str) {
    let mut copy = [0u8; 1024];
    let raw = cfg.s(url);
    let n = raw.len().min(copy.len());
    if let (Some(dst), Some(src)) = (copy.get_mut(..n), raw.get(..n)) {
        dst.copy_from_slice(src);
    }
    if raw.len() > copy.len() {
        cfg.incomplete = true;
    }
    match url::parse(copy.get(..n).unwrap_or(&[])) {
        Ok(url::Target::Unix { path }) => {
            cfg.target = Target::Unix;
            cfg.unix_path = cfg.store(&[path]);
            cfg.host = cfg.store(&[b"localhost"]);
        }
        Ok(url::Target::Tcp { ip, port, host }) => {
            cfg.target = Target::Tcp { ip, port };
            cfg.host = cfg.store(&[host]);
        }
        Err(why) => cfg.target = Target::Invalid(why),
    }
}

/// This library's own path, made absolute, from `dladdr` on one of our functions.
fn find_lib_path(cfg: &mut Config) {
    // SAFETY: Dl_info is plain data; zeroed is a valid value.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let me = find_lib_path as fn(&mut Config) as *const c_void;
    // SAFETY: `me` is an address inside this library; dladdr fills `info`.
    if unsafe { libc::dladdr(me, &mut info) } == 0 || info.dli_fname.is_null() {
        return;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by ld.so for the library's life.
    let name = unsafe { sys::cstr(info.dli_fname) };
    if name.starts_with(b"/") {
        cfg.lib_path = cfg.store(&[name]);
        return;
    }
    let mut cwd = [0u8; 4096];
    if crate::path::getcwd(&mut cwd).is_some() {
        let len = cwd.iter().position(|&b| b == 0).unwrap_or(0);
        let dir = cwd.get(..len).unwrap_or(&[]);
        let name = name.strip_prefix(b"./").unwrap_or(name);
        cfg.lib_path = cfg.store(&[dir, b"/", name]);
    } else {
        cfg.lib_path = cfg.store(&[name]);
    }
}

fn resolve_real(real: &mut Real) {
    macro_rules! sym {
        ($name:literal, $ty:ty) => {{
            // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name.
            let p = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($name, "\0").as_ptr().cast()) };
            if p.is_null() {
                None
            } else {
                // SAFETY: the symbol is the libc function of that name, whose C signature
                // matches the function-pointer type of the field it is stored in.
                Some(unsafe { core::mem::transmute::<*mut c_void, $ty>(p) })
            }
        }};
    }
    real.execve = sym!("execve", ExecveFn);
    real.fexecve = sym!("fexecve", FexecveFn);
    real.execveat = sym!("execveat", ExecveatFn);
    real.system = sym!("system", SystemFn);
    real.popen = sym!("popen", PopenFn);
    real.posix_spawn = sym!("posix_spawn", SpawnFn);
}

/// Adds the stored `KEY=VALUE` string `s` to the injected entries.
fn push(cfg: &mut Config, n: &mut usize, s: Str) {
    if s.len == 0 {
        cfg.incomplete = true;
        return;
    }
    let ptr = cfg.cptr(s);
    match cfg.env.get_mut(*n) {
        Some(slot) => {
            *slot = ptr;
            *n += 1;
        }
        None => cfg.incomplete = true,
    }
}

fn build_env(cfg: &mut Config) {
    let mut ms = [0u8; 20];
    let ask = sys::fmt_u64(cfg.ask_timeout_ms, &mut ms);
    let mut ask_copy = [0u8; 22];
    let ask_len = ask.len();
    if let Some(dst) = ask_copy.get_mut(..ask_len) {
        dst.copy_from_slice(ask);
    }
    if let Some(dst) = ask_copy.get_mut(ask_len..ask_len + 2) {
        dst.copy_from_slice(b"ms");
    }
    let ask = ask_copy.get(..ask_len + 2).unwrap_or(b"");
    let mut n = 0;
    let add = |cfg: &mut Config, n: &mut usize, key: &[u8], val: &[u8]| {
        let s = cfg.store(&[key, b"=", val]);
        push(cfg, n, s);
    };
    let (url, agent, session, token) = (cfg.url, cfg.agent, cfg.session, cfg.token);
    // Values already in the arena are copied within it: no stack buffer to clear in
    // every process that loads the library.
    let put = |cfg: &mut Config, n: &mut usize, key: &[u8], val: Str| {
        let s = cfg.store_kv(key, val);
        push(cfg, n, s);
    };
    put(cfg, &mut n, b"RAMPART_URL", url);
    if token.len > 0 {
        put(cfg, &mut n, b"RAMPART_TOKEN", token);
    }
    let mode = cfg.mode.name().as_bytes();
    add(cfg, &mut n, b"RAMPART_MODE", mode);
    add(
        cfg,
        &mut n,
        b"RAMPART_FAIL_OPEN",
        if cfg.fail_open { b"true" } else { b"false" },
    );
    if cfg.protect {
        add(cfg, &mut n, b"RAMPART_PROTECT", b"true");
    }
    put(cfg, &mut n, b"RAMPART_AGENT", agent);
    put(cfg, &mut n, b"RAMPART_SESSION", session);
    add(
        cfg,
        &mut n,
        b"RAMPART_DEBUG",
        if cfg.debug { b"1" } else { b"0" },
    );
    add(cfg, &mut n, b"RAMPART_ASK_TIMEOUT", ask);
    if cfg.debug {
        add(cfg, &mut n, b"RAMPART_DEBUG_LOADED", b"1");
    }
    cfg.env_len = n;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count(b"3"), 3);
        assert_eq!(parse_count(b""), 0);
        assert_eq!(parse_count(b"-1"), 0);
        assert_eq!(parse_count(b"99999999999999999999"), 0);
    }
}
