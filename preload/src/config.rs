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

pub const DEFAULT_URL: &[u8] = b"http://127.0.0.1:9090";
pub const DEFAULT_ASK_TIMEOUT_MS: u64 = 120_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Enforce,
    Monitor,
    Disabled,
}

impl Mode {
    pub fn name(self) -> &'static [u8] {
        match self {
            Mode::Enforce => b"enforce",
            Mode::Monitor => b"monitor",
            Mode::Disabled => b"disabled",
        }
    }
}

/// Where the policy server listens.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    Tcp {
        ip: [u8; 4],
        port: u16,
    },
    Unix,
    /// A URL we will not use, with the reason: every check is then a transport failure,
    /// so fail-open decides, and nothing is ever sent anywhere.
    Invalid(&'static [u8]),
}

/// Why a URL is refused: not one of the three forms.
pub const URL_UNSUPPORTED: &[u8] =
    b"not a supported URL (use http://127.0.0.1:PORT, http://localhost:PORT or unix:/path; no https, no host names)";
/// Why a URL is refused: an IPv4 address outside 127.0.0.0/8. The token travels in plain
/// HTTP, so it must never leave the machine.
pub const URL_NOT_LOOPBACK: &[u8] =
    b"not a loopback address (plain HTTP with the token is only sent to 127.0.0.0/8, localhost or a unix: socket)";

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

/// The real functions the wrappers end in. `execv`, `execvp` and the `execl*` family are
/// served by `execve`/`execvpe` with an explicit (re-injected) environment, so only these
/// eight are resolved.
#[derive(Clone, Copy, Default)]
pub struct Real {
    pub execve: Option<ExecveFn>,
    pub execvpe: Option<ExecveFn>,
    pub fexecve: Option<FexecveFn>,
    pub execveat: Option<ExecveatFn>,
    pub system: Option<SystemFn>,
    pub popen: Option<PopenFn>,
    pub posix_spawn: Option<SpawnFn>,
    pub posix_spawnp: Option<SpawnFn>,
}

/// Variables whose snapshot value every child receives (they are removed from a child's
/// environment and replaced by ours). `LD_PRELOAD` is handled separately.
pub const INJECTED_KEYS: [&[u8]; 9] = [
    b"RAMPART_URL",
    b"RAMPART_TOKEN",
    b"RAMPART_MODE",
    b"RAMPART_FAIL_OPEN",
    b"RAMPART_AGENT",
    b"RAMPART_SESSION",
    b"RAMPART_DEBUG",
    b"RAMPART_ASK_TIMEOUT",
    b"RAMPART_DEBUG_LOADED",
];

const ARENA: usize = 12 * 1024;

pub struct Config {
    pub mode: Mode,
    pub fail_open: bool,
    pub debug: bool,
    pub ask_timeout_ms: u64,
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
    arena: [u8; ARENA],
    used: usize,
}

impl Config {
    /// A default snapshot (no token, no URL) for unit tests of code that takes a `Config`.
    #[cfg(test)]
    pub fn for_tests() -> Box<Self> {
        Box::new(Self::new())
    }

    const fn new() -> Self {
        Config {
            mode: Mode::Enforce,
            fail_open: true,
            debug: false,
            ask_timeout_ms: DEFAULT_ASK_TIMEOUT_MS,
            target: Target::Invalid(URL_UNSUPPORTED),
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
                execvpe: None,
                fexecve: None,
                execveat: None,
                system: None,
                popen: None,
                posix_spawn: None,
                posix_spawnp: None,
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
            return Str { off, len: 0 };
        }
        let len = w.len - 1;
        self.used += w.len;
        Str { off, len }
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
struct Global(UnsafeCell<Config>);

// SAFETY: the config is only mutated by `init`, which runs before any other thread can
// observe it (library constructor) and publishes it with a Release store of `READY`;
// readers Acquire-load `READY` first (see `get`).
unsafe impl Sync for Global {}

static CONFIG: Global = Global(UnsafeCell::new(Config::new()));
static READY: AtomicBool = AtomicBool::new(false);

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
    if !READY.load(Ordering::Acquire) {
        // SAFETY: reached only before our constructor ran, i.e. during start-up.
        unsafe { init(environ_ptr()) };
    }
    // SAFETY: after READY the config is never written again.
    unsafe { &*CONFIG.0.get() }
}

/// Reads the configuration from `envp`, resolves the real functions and prints the debug
/// banner. Runs once.
///
/// # Safety
/// Must run single-threaded, before any reader (the library constructor), with `envp`
/// NULL or a valid environment array.
pub unsafe fn init(envp: *const *const c_char) {
    if READY.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: single-threaded start-up, nobody else holds a reference (function contract).
    let cfg = unsafe { &mut *CONFIG.0.get() };
    // SAFETY: envp is a valid environment (function contract).
    let env = unsafe { CArray::new(envp) };
    // One pass over the environment, measuring only the `RAMPART_*` entries: this runs in
    // every process of the agent's tree, most of which never start anything, and nine
    // lookups that each measured every entry were a tenth of a preloaded `/bin/true`'s
    // instructions. The first entry of a name wins, as with getenv.
    let mut ours: [&'static [u8]; 32] = [b""; 32];
    let mut n_ours = 0usize;
    for i in 0..env.len() {
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
    cfg.mode = parse_mode(mode_raw);
    cfg.fail_open = var(b"RAMPART_FAIL_OPEN").is_none_or(|v| !is_false(v));
    cfg.debug = var(b"RAMPART_DEBUG").is_some_and(|v| !v.is_empty() && !is_false(v));
    cfg.ask_timeout_ms = var(b"RAMPART_ASK_TIMEOUT")
        .and_then(parse_duration_ms)
        .unwrap_or(DEFAULT_ASK_TIMEOUT_MS);
    let agent = var(b"RAMPART_AGENT")
        .filter(|a| !a.is_empty())
        .unwrap_or(b"preload");
    cfg.agent = cfg.store(&[agent]);
    let mut pidbuf = [0u8; 20];
    cfg.session = match var(b"RAMPART_SESSION").filter(|s| !s.is_empty()) {
        Some(s) => cfg.store(&[s]),
        None => cfg.store(&[b"preload-", sys::fmt_u64(sys::getpid() as u64, &mut pidbuf)]),
    };
    let url_copy = cfg.url;
    parse_url(cfg, url_copy);
    find_lib_path(cfg);
    resolve_real(&mut cfg.real);
    build_env(cfg);

    let banner = cfg.debug && var(b"RAMPART_DEBUG_LOADED").is_none();
    READY.store(true, Ordering::Release);
    if banner {
        let cfg: &Config = cfg;
        debug(&[b"Library loaded"]);
        debug(&[b"URL: ", cfg.s(cfg.url)]);
        if let Target::Invalid(why) = cfg.target {
            debug(&[b"URL unusable: ", why]);
        }
        debug(&[b"Mode: ", cfg.mode.name()]);
        debug(&[
            b"Fail-open: ",
            if cfg.fail_open { b"true" } else { b"false" },
        ]);
    }
}

/// One `rampart: [DEBUG] ...` line on stderr (the caller checks `debug`).
pub fn debug(parts: &[&[u8]]) {
    line(b"rampart: [DEBUG] ", parts);
}

/// One stderr line made of a prefix and parts, written through a small stack buffer.
pub fn line(prefix: &[u8], parts: &[&[u8]]) {
    let mut buf = [0u8; 512];
    let mut w = crate::sink::BufWriter::new(&mut buf, |c: &[u8]| {
        sys::write_all(2, c);
        true
    });
    w.put(prefix);
    for p in parts {
        w.put(p);
    }
    w.put(b"\n");
    w.flush();
}

fn is_false(v: &[u8]) -> bool {
    [&b"false"[..], b"0", b"no", b"off"]
        .iter()
        .any(|f| v.eq_ignore_ascii_case(f))
}

/// Unknown modes enforce: a typo must not silently switch protection off.
pub fn parse_mode(v: &[u8]) -> Mode {
    if v.eq_ignore_ascii_case(b"monitor") {
        Mode::Monitor
    } else if v.eq_ignore_ascii_case(b"disabled") {
        Mode::Disabled
    } else {
        Mode::Enforce
    }
}

/// `2m`, `30s`, `500ms`, `1h`, or a plain number of seconds. `0` turns waiting off.
pub fn parse_duration_ms(v: &[u8]) -> Option<u64> {
    let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v.get(..digits)? {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let unit: u64 = match v.get(digits..)? {
        b"" | b"s" => 1000,
        b"ms" => 1,
        b"m" => 60_000,
        b"h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// `http://127.x.x.x[:port][/...]`, `http://localhost[:port]`, `unix:/path` (also
/// `unix://`). `localhost` is 127.0.0.1 without asking DNS or `/etc/hosts`; any other
/// IPv4 address is refused (`URL_NOT_LOOPBACK`), anything else is unsupported.
pub fn parse_target(url: &[u8]) -> (Target, &[u8]) {
    if let Some(path) = url.strip_prefix(b"unix:") {
        let path = path.strip_prefix(b"//").unwrap_or(path);
        return if path.starts_with(b"/") {
            (Target::Unix, path)
        } else {
            (Target::Invalid(URL_UNSUPPORTED), b"")
        };
    }
    let Some(rest) = url.strip_prefix(b"http://") else {
        return (Target::Invalid(URL_UNSUPPORTED), b"");
    };
    let hostport = rest.split(|&b| b == b'/').next().unwrap_or(b"");
    let (host, port) = match hostport.iter().rposition(|&b| b == b':') {
        Some(i) => (
            hostport.get(..i).unwrap_or(b""),
            hostport.get(i + 1..).unwrap_or(b""),
        ),
        None => (hostport, &b"80"[..]),
    };
    let Some(port) = parse_u16(port) else {
        return (Target::Invalid(URL_UNSUPPORTED), b"");
    };
    let ip = if host.eq_ignore_ascii_case(b"localhost") {
        Some([127, 0, 0, 1])
    } else {
        parse_ipv4(host)
    };
    match ip {
        Some(ip @ [127, ..]) => (Target::Tcp { ip, port }, hostport),
        Some(_) => (Target::Invalid(URL_NOT_LOOPBACK), b""),
        None => (Target::Invalid(URL_UNSUPPORTED), b""),
    }
}

fn parse_u16(v: &[u8]) -> Option<u16> {
    if v.is_empty() || v.len() > 5 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = v.iter().fold(0u32, |n, &b| n * 10 + u32::from(b - b'0'));
    u16::try_from(n).ok().filter(|&p| p != 0)
}

fn parse_ipv4(v: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = v.split(|&b| b == b'.');
    for slot in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = p.iter().fold(0u32, |n, &b| n * 10 + u32::from(b - b'0'));
        *slot = u8::try_from(n).ok()?;
    }
    if parts.next().is_some() {
        None
    } else {
        Some(out)
    }
}

fn parse_url(cfg: &mut Config, url: Str) {
    let mut copy = [0u8; 1024];
    let raw = cfg.s(url);
    let n = raw.len().min(copy.len());
    if let (Some(dst), Some(src)) = (copy.get_mut(..n), raw.get(..n)) {
        dst.copy_from_slice(src);
    }
    let (target, rest) = parse_target(copy.get(..n).unwrap_or(&[]));
    cfg.target = target;
    match target {
        Target::Unix => {
            cfg.unix_path = cfg.store(&[rest]);
            cfg.host = cfg.store(&[b"localhost"]);
        }
        Target::Tcp { .. } => cfg.host = cfg.store(&[rest]),
        Target::Invalid(_) => {}
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
    real.execvpe = sym!("execvpe", ExecveFn);
    real.fexecve = sym!("fexecve", FexecveFn);
    real.execveat = sym!("execveat", ExecveatFn);
    real.system = sym!("system", SystemFn);
    real.popen = sym!("popen", PopenFn);
    real.posix_spawn = sym!("posix_spawn", SpawnFn);
    real.posix_spawnp = sym!("posix_spawnp", SpawnFn);
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
    let mut add = |cfg: &mut Config, key: &[u8], val: &[u8]| {
        let s = cfg.store(&[key, b"=", val]);
        if s.len > 0 {
            let ptr = cfg.cptr(s);
            if let Some(slot) = cfg.env.get_mut(n) {
                *slot = ptr;
                n += 1;
            }
        }
    };
    let (url, agent, session, token) = (cfg.url, cfg.agent, cfg.session, cfg.token);
    let mut tmp = [0u8; 2048];
    macro_rules! put {
        ($key:literal, $s:expr) => {{
            let v = cfg.s($s);
            let l = v.len().min(tmp.len());
            if let (Some(d), Some(s)) = (tmp.get_mut(..l), v.get(..l)) {
                d.copy_from_slice(s);
            }
            add(cfg, $key, tmp.get(..l).unwrap_or(&[]));
        }};
    }
    put!(b"RAMPART_URL", url);
    if token.len > 0 {
        put!(b"RAMPART_TOKEN", token);
    }
    let mode = cfg.mode.name();
    add(cfg, b"RAMPART_MODE", mode);
    add(
        cfg,
        b"RAMPART_FAIL_OPEN",
        if cfg.fail_open { b"true" } else { b"false" },
    );
    put!(b"RAMPART_AGENT", agent);
    put!(b"RAMPART_SESSION", session);
    add(cfg, b"RAMPART_DEBUG", if cfg.debug { b"1" } else { b"0" });
    add(cfg, b"RAMPART_ASK_TIMEOUT", ask);
    if cfg.debug {
        add(cfg, b"RAMPART_DEBUG_LOADED", b"1");
    }
    cfg.env_len = n;
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms(b"2m"), Some(120_000));
        assert_eq!(parse_duration_ms(b"30s"), Some(30_000));
        assert_eq!(parse_duration_ms(b"500ms"), Some(500));
        assert_eq!(parse_duration_ms(b"7"), Some(7000));
        assert_eq!(parse_duration_ms(b"0"), Some(0));
        assert_eq!(parse_duration_ms(b"x"), None);
        assert_eq!(parse_duration_ms(b"5d"), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_target(b"http://127.0.0.1:9090"),
            (
                Target::Tcp {
                    ip: [127, 0, 0, 1],
                    port: 9090
                },
                &b"127.0.0.1:9090"[..]
            )
        );
        assert_eq!(
            parse_target(b"http://localhost:19090/"),
            (
                Target::Tcp {
                    ip: [127, 0, 0, 1],
                    port: 19090
                },
                &b"localhost:19090"[..]
            )
        );
        assert_eq!(
            parse_target(b"unix:/run/r.sock"),
            (Target::Unix, &b"/run/r.sock"[..])
        );
        assert_eq!(
            parse_target(b"unix:///run/r.sock"),
            (Target::Unix, &b"/run/r.sock"[..])
        );
        assert_eq!(
            parse_target(b"http://127.8.9.10:80"),
            (
                Target::Tcp {
                    ip: [127, 8, 9, 10],
                    port: 80
                },
                &b"127.8.9.10:80"[..]
            )
        );
        let unsupported = (Target::Invalid(URL_UNSUPPORTED), &b""[..]);
        for url in [
            &b"https://x"[..],
            b"http://example.com:80",
            b"http://1.2.3.4:99999",
            b"http://localhost.example.com:9090",
            b"http://127.0.0.1.example.com:9090",
            b"http://127.1:9090",
            b"http://0177.0.0.1:9090",
            b"http://[::1]:9090",
            b"http://127.0.0.1:9090@10.1.2.3:80/",
            b"http://10.1.2.3:80@127.0.0.1:9090/",
            b"http://127.0.0.1:9090#@10.1.2.3",
            b"unix:relative.sock",
            b"",
        ] {
            assert_eq!(
                parse_target(url),
                unsupported,
                "{}",
                String::from_utf8_lossy(url)
            );
        }
        let remote = (Target::Invalid(URL_NOT_LOOPBACK), &b""[..]);
        for url in [
            &b"http://10.1.2.3:9090"[..],
            b"http://192.0.2.2:9090/",
            b"http://0.0.0.0:9090",
            b"http://128.0.0.1:9090",
            b"http://126.255.255.255:9090",
            b"http://255.255.255.255:9090",
        ] {
            assert_eq!(
                parse_target(url),
                remote,
                "{}",
                String::from_utf8_lossy(url)
            );
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode(b"monitor"), Mode::Monitor);
        assert_eq!(parse_mode(b"disabled"), Mode::Disabled);
        assert_eq!(parse_mode(b"enforce"), Mode::Enforce);
        assert_eq!(parse_mode(b"typo"), Mode::Enforce);
    }
}
