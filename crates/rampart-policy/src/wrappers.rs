//! Launchers (issue 14, family 3): programs that run another command — in this process
//! tree (`strace -f`, `valgrind`, `taskset`, `flock`, `xargs`-likes), somewhere the
//! guard cannot follow (`ssh host CMD`, `systemd-run`, `docker run`, `kubectl exec`,
//! `tmux send-keys`), or from a string (`script -c`, `awk 'BEGIN{system(…)}'`,
//! `tar --checkpoint-action=exec=…`, `git -c alias.x='!…'`, `find -exec`).
//!
//! Each keeps its own piece (so a policy can ask about the launcher itself) and adds the
//! pieces of the command it runs, as `sudo` does. Which words are that command is data
//! ([`LAUNCHERS`]): the launcher's options that take a value, where the command starts,
//! and which option values are command lines. Guessing wrong only shows more: an
//! unknown option is taken as a flag, so the command seems to start early.

use memchr::memchr;

use super::{MAX_DEPTH, Parser, Piece, WordList, emit};

// --- Transparent wrappers' options (`env`, `nice`, `timeout`, `sudo`, …), read by
// `Parser::command` in shell.rs. ---------------------------------------------------------

/// How one wrapper's options are spelt.
#[derive(Debug)]
pub(super) struct Spec {
    /// Short options that take an argument (attached or as the next word).
    pub(super) short_arg: &'static [u8],
    /// Long options that take the next word as argument when written without `=`.
    pub(super) long_arg: &'static [&'static [u8]],
    /// Long options recorded as the given short flag.
    pub(super) long_flag: &'static [(&'static [u8], u8)],
    /// `+o`-style options too (shells).
    pub(super) plus: bool,
    /// Positional operands before the command (timeout's DURATION, chrt's priority).
    pub(super) operands: usize,
}

pub(super) const NO_OPTIONS: Spec = Spec {
    short_arg: b"",
    long_arg: &[],
    long_flag: &[],
    plus: false,
    operands: 0,
};
pub(super) const NICE: Spec = Spec {
    short_arg: b"n",
    long_arg: &[b"adjustment"],
    ..NO_OPTIONS
};
pub(super) const TIMEOUT: Spec = Spec {
    short_arg: b"ks",
    long_arg: &[b"kill-after", b"signal"],
    operands: 1,
    ..NO_OPTIONS
};
pub(super) const STDBUF: Spec = Spec {
    short_arg: b"ioe",
    long_arg: &[b"input", b"output", b"error"],
    ..NO_OPTIONS
};
pub(super) const EXEC: Spec = Spec {
    short_arg: b"a",
    ..NO_OPTIONS
};
pub(super) const TIME: Spec = Spec {
    short_arg: b"fo",
    long_arg: &[b"format", b"output"],
    ..NO_OPTIONS
};
pub(super) const XARGS: Spec = Spec {
    short_arg: b"adEILnPs",
    long_arg: &[
        b"arg-file",
        b"delimiter",
        b"max-args",
        b"max-procs",
        b"max-chars",
        b"process-slot-var",
    ],
    ..NO_OPTIONS
};
pub(super) const IONICE: Spec = Spec {
    short_arg: b"cn",
    long_arg: &[b"class", b"classdata"],
    long_flag: &[(b"pid", b'p'), (b"pgid", b'P'), (b"uid", b'u')],
    ..NO_OPTIONS
};
pub(super) const CHRT: Spec = Spec {
    short_arg: b"TPD",
    long_arg: &[b"sched-runtime", b"sched-period", b"sched-deadline"],
    long_flag: &[(b"pid", b'p')],
    operands: 1,
    ..NO_OPTIONS
};
pub(super) const COMMAND: Spec = NO_OPTIONS;
pub(super) const SHELL: Spec = Spec {
    short_arg: b"oO",
    long_arg: &[b"rcfile", b"init-file"],
    plus: true,
    ..NO_OPTIONS
};
pub(super) const SUDO: Spec = Spec {
    short_arg: b"aCcDgpRrTtUu",
    long_arg: &[
        b"user",
        b"group",
        b"close-from",
        b"login-class",
        b"chdir",
        b"prompt",
        b"chroot",
        b"role",
        b"type",
        b"command-timeout",
        b"other-user",
        b"host",
        b"auth-type",
    ],
    long_flag: &[
        (b"edit", b'e'),
        (b"list", b'l'),
        (b"validate", b'v'),
        (b"version", b'V'),
        (b"help", b'h'),
        (b"remove-timestamp", b'K'),
    ],
    ..NO_OPTIONS
};
/// The dynamic loader (`ld.so --help`): `--list`, `--verify`, `--help`, `--version` and the
/// `--list-*` options only look at the program; recorded as the flags in `LOADER_NO_RUN`.
pub(super) const LOADER: Spec = Spec {
    long_arg: &[
        b"argv0",
        b"preload",
        b"library-path",
        b"audit",
        b"inhibit-rpath",
        b"glibc-hwcaps-prefix",
        b"glibc-hwcaps-mask",
    ],
    long_flag: &[
        (b"list", b'l'),
        (b"verify", b'v'),
        (b"help", b'h'),
        (b"version", b'V'),
        (b"list-tunables", b'l'),
        (b"list-diagnostics", b'l'),
    ],
    ..NO_OPTIONS
};
pub(super) const LOADER_NO_RUN: &[u8] = b"lvhV";

/// Whether a program basename is a dynamic loader: `ld.so`, `ld-linux-x86-64.so.2`,
/// `ld-linux.so.2`, `ld-musl-x86_64.so.1`, `ld64.so.2`, `ld-2.31.so`.
pub fn is_loader(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b"ld") else {
        return false;
    };
    let after = rest.first().copied();
    (after == Some(b'-') || after == Some(b'.') || rest.starts_with(b"64."))
        && memchr::memmem::find(rest, b".so").is_some()
}

pub(super) const DOAS: Spec = Spec {
    short_arg: b"aCu",
    ..NO_OPTIONS
};

/// Result of reading a wrapper's options.
#[derive(Debug)]
pub(super) struct Opts {
    /// Index (in the wrapper's words) of the wrapped command.
    pub(super) next: usize,
    /// Short options seen, one bit per ASCII character.
    pub(super) flags: u128,
}

impl Opts {
    pub(super) fn has(&self, c: u8) -> bool {
        c < 128 && self.flags & (1u128 << c) != 0
    }
}

/// Reads the options after `words[0]`. Unknown options are taken as flags: guessing an
/// argument wrongly would hide the command, guessing a flag wrongly only shows more.
pub(super) fn options(words: WordList<'_>, spec: &Spec) -> Opts {
    let mut j = 1;
    let mut flags = 0u128;
    let mut set = |c: u8| {
        if c < 128 {
            flags |= 1u128 << c;
        }
    };
    while let Some(w) = words.get(j) {
        let t = w.text;
        if t == b"--" {
            j += 1;
            break;
        }
        if let Some(long) = t.strip_prefix(b"--") {
            let (name, has_value) = match memchr(b'=', long) {
                Some(k) => (&long[..k], true),
                None => (long, false),
            };
            if let Some((_, c)) = spec.long_flag.iter().find(|(n, _)| *n == name) {
                set(*c);
            }
            j += if !has_value && spec.long_arg.contains(&name) {
                2
            } else {
                1
            };
            continue;
        }
        let lead = t.first().copied();
        if t.len() > 1 && (lead == Some(b'-') || (spec.plus && lead == Some(b'+'))) {
            j += 1;
            for (k, &c) in t.iter().enumerate().skip(1) {
                set(c);
                if spec.short_arg.contains(&c) {
                    if k + 1 == t.len() {
                        j += 1;
                    }
                    break;
                }
            }
            continue;
        }
        break;
    }
    Opts {
        next: j.saturating_add(spec.operands),
        flags,
    }
}

#[derive(Debug)]
pub(super) enum EnvArgs<'w> {
    /// Index of the command after options and assignments.
    Inner(usize),
    /// `-S STRING`, and the index of the first word after it.
    Split(&'w [u8], usize),
}

/// GNU/BSD `env` options, then `NAME=value` assignments (quoted or not: env sees them
/// after the shell removed quotes).
pub(super) fn env_options(words: WordList<'_>) -> EnvArgs<'_> {
    let mut j = 1;
    while let Some(w) = words.get(j) {
        let t = w.text;
        if t == b"--" {
            j += 1;
            break;
        }
        if t == b"-" {
            j += 1;
            continue;
        }
        if let Some(long) = t.strip_prefix(b"--") {
            if let Some(string) = long.strip_prefix(b"split-string=") {
                return EnvArgs::Split(string, j + 1);
            }
            match long {
                b"split-string" => {
                    return match words.get(j + 1) {
                        Some(s) => EnvArgs::Split(s.text, j + 2),
                        None => EnvArgs::Inner(j + 1),
                    };
                }
                b"unset" | b"chdir" => j += 2,
                _ => j += 1,
            }
            continue;
        }
        if t.len() > 1 && t[0] == b'-' {
            j += 1;
            for (k, &c) in t.iter().enumerate().skip(1) {
                match c {
                    b'S' => {
                        return match t.get(k + 1..).filter(|s| !s.is_empty()) {
                            Some(string) => EnvArgs::Split(string, j),
                            None => match words.get(j) {
                                Some(s) => EnvArgs::Split(s.text, j + 1),
                                None => EnvArgs::Inner(j),
                            },
                        };
                    }
                    b'u' | b'C' => {
                        if k + 1 == t.len() {
                            j += 1;
                        }
                        break;
                    }
                    _ => {}
                }
            }
            continue;
        }
        break;
    }
    while words
        .get(j)
        .is_some_and(|w| memchr(b'=', w.text).is_some_and(|k| k > 0))
    {
        j += 1;
    }
    EnvArgs::Inner(j)
}

// --- Launchers ---------------------------------------------------------------------------

/// Where the launched command is in a launcher's words.
#[derive(Debug, Clone, Copy)]
enum Inner {
    /// The words after the options (and `spec.operands` positional words).
    Rest,
    /// The words after this word (`gdb … --args CMD`, `kubectl exec POD -- CMD`).
    After(&'static [u8]),
    /// The words after the options and operands, joined and read as a command line: a
    /// shell runs them (`watch`, `ssh HOST CMD`, `tmux send-keys`, `parallel … :::`).
    Line,
    /// The words after this word, joined and read as a command line (`screen -X stuff`).
    LineAfter(&'static [u8]),
    /// The first operand is a program in the launcher's own language (`awk`).
    Script(fn(&[u8]) -> Vec<Vec<u8>>),
    /// Only option values hold commands (`script -c`, `tar`, `git -c`, `su -c`), or the
    /// command is not in the words at all (`at`, `batch` read it from standard input).
    Options,
}

/// One launcher.
#[derive(Debug)]
struct Launcher {
    names: &'static [&'static [u8]],
    /// A sub-command that must follow the program for it to launch anything (`docker
    /// run`, `kubectl exec`, `tmux send-keys`); empty when any use launches.
    sub: &'static [&'static [u8]],
    spec: Spec,
    inner: Inner,
    /// Options whose value is a command line or a program: `(option as written, how to
    /// read it)`; short options as `-c`, long ones as `--command`.
    line: &'static [(&'static [u8], Value)],
    /// Short flags with which nothing is launched (`taskset -p` acts on a running pid).
    no_run: &'static [u8],
    /// Words that end the command (`find -exec CMD ;`); for a command line (`Line`),
    /// words that are left out of it (`parallel CMD ::: ARGS` runs `CMD ARGS`).
    until: &'static [&'static [u8]],
}

/// How to get the command out of an option's value.
type Extract = fn(&[u8]) -> Option<&[u8]>;

/// What an option's value is.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// A shell command line (after `Extract`).
    Shell(Extract),
    /// A program in an interpreter's language: [`code_commands`] says what it runs.
    Code,
}

use Value::{Code, Shell};

fn whole(value: &[u8]) -> Option<&[u8]> {
    Some(value)
}

/// `--checkpoint-action=exec=CMD` (other actions run nothing).
fn after_exec(value: &[u8]) -> Option<&[u8]> {
    value.strip_prefix(b"exec=")
}

/// `git -c alias.NAME=!CMD`: a shell alias.
fn git_alias(value: &[u8]) -> Option<&[u8]> {
    let rest = value.strip_prefix(b"alias.")?;
    let eq = rest.iter().position(|&b| b == b'=')?;
    rest.get(eq + 1..)?.strip_prefix(b"!")
}

const fn launcher(names: &'static [&'static [u8]], spec: Spec, inner: Inner) -> Launcher {
    Launcher {
        names,
        sub: &[],
        spec,
        inner,
        line: &[],
        no_run: b"",
        until: &[],
    }
}

const fn spec(
    short_arg: &'static [u8],
    long_arg: &'static [&'static [u8]],
    operands: usize,
) -> Spec {
    Spec {
        short_arg,
        long_arg,
        operands,
        ..NO_OPTIONS
    }
}

const DOCKER_SHORT: &[u8] = b"aceEhlmpuvw";
const DOCKER_LONG: &[&[u8]] = &[
    b"add-host",
    b"attach",
    b"cap-add",
    b"cap-drop",
    b"cgroup-parent",
    b"cidfile",
    b"cpus",
    b"cpu-shares",
    b"cpuset-cpus",
    b"device",
    b"dns",
    b"entrypoint",
    b"env",
    b"env-file",
    b"expose",
    b"gpus",
    b"group-add",
    b"health-cmd",
    b"hostname",
    b"ipc",
    b"label",
    b"log-driver",
    b"log-opt",
    b"memory",
    b"mount",
    b"name",
    b"network",
    b"net",
    b"pid",
    b"platform",
    b"publish",
    b"pull",
    b"restart",
    b"runtime",
    b"security-opt",
    b"shm-size",
    b"stop-signal",
    b"tmpfs",
    b"ulimit",
    b"user",
    b"userns",
    b"uts",
    b"volume",
    b"volumes-from",
    b"workdir",
];

/// The launchers. Shells, `env`, `nice`, `timeout`, `xargs`, `sudo` and the dynamic
/// loader are handled in `shell.rs`.
const LAUNCHERS: &[Launcher] = &[
    launcher(
        &[b"strace", b"ltrace"],
        spec(
            b"abeEIoOpPsSuUXn",
            &[b"output", b"signal", b"trace", b"user"],
            0,
        ),
        Inner::Rest,
    ),
    launcher(&[b"gdb", b"cgdb"], NO_OPTIONS, Inner::After(b"--args")),
    launcher(&[b"valgrind", b"perf-trace"], NO_OPTIONS, Inner::Rest),
    Launcher {
        no_run: b"p",
        ..launcher(&[b"taskset"], spec(b"", &[], 1), Inner::Rest)
    },
    Launcher {
        line: &[(b"-c", Shell(whole)), (b"--command", Shell(whole))],
        ..launcher(
            &[b"flock"],
            spec(b"wE", &[b"timeout", b"conflict-exit-code"], 1),
            Inner::Rest,
        )
    },
    launcher(
        &[b"unshare"],
        spec(b"SGRw", &[b"setuid", b"setgid", b"root", b"wd"], 0),
        Inner::Rest,
    ),
    launcher(
        &[b"chroot"],
        spec(b"", &[b"userspec", b"groups"], 1),
        Inner::Rest,
    ),
    launcher(&[b"nsenter"], spec(b"tSGw", &[b"target"], 0), Inner::Rest),
    Launcher {
        line: &[(b"-c", Shell(whole)), (b"--command", Shell(whole))],
        ..launcher(
            &[b"script"],
            spec(
                b"EIOBTm",
                &[b"echo", b"log-in", b"log-out", b"log-io", b"log-timing"],
                0,
            ),
            Inner::Options,
        )
    },
    launcher(&[b"watch"], spec(b"n", &[b"interval"], 0), Inner::Line),
    launcher(
        &[b"xvfb-run"],
        spec(
            b"nsefpw",
            &[
                b"server-num",
                b"server-args",
                b"error-file",
                b"auth-file",
                b"xauth-protocol",
                b"wait",
            ],
            0,
        ),
        Inner::Rest,
    ),
    Launcher {
        until: &[b":::", b"::::", b":::+", b"::::+"],
        ..launcher(
            &[b"parallel", b"sem"],
            spec(
                b"jSdIaEn",
                &[b"jobs", b"sshlogin", b"delimiter", b"arg-file", b"results"],
                0,
            ),
            Inner::Line,
        )
    },
    launcher(
        &[b"ssh", b"autossh"],
        spec(b"BbcDEeFIiJLlmOoPpQRSWw", &[], 1),
        Inner::Line,
    ),
    launcher(&[b"at", b"batch"], spec(b"qfmMtv", &[], 0), Inner::Options),
    launcher(
        &[b"systemd-run"],
        spec(
            b"upEMHs",
            &[
                b"unit",
                b"property",
                b"setenv",
                b"uid",
                b"gid",
                b"nice",
                b"working-directory",
                b"slice",
                b"description",
                b"machine",
                b"host",
                b"on-active",
                b"on-boot",
                b"on-startup",
                b"on-unit-active",
                b"on-unit-inactive",
                b"on-calendar",
                b"timer-property",
                b"path-property",
                b"socket-property",
                b"service-type",
            ],
            0,
        ),
        Inner::Rest,
    ),
    Launcher {
        sub: &[b"send-keys", b"send"],
        ..launcher(&[b"tmux"], spec(b"tN", &[], 0), Inner::Line)
    },
    launcher(&[b"screen"], NO_OPTIONS, Inner::LineAfter(b"stuff")),
    Launcher {
        sub: &[b"run"],
        ..launcher(
            &[b"docker", b"podman", b"nerdctl"],
            spec(DOCKER_SHORT, DOCKER_LONG, 1),
            Inner::Rest,
        )
    },
    Launcher {
        sub: &[b"exec"],
        ..launcher(
            &[b"docker", b"podman", b"nerdctl"],
            spec(b"eituw", &[b"env", b"env-file", b"user", b"workdir"], 1),
            Inner::Rest,
        )
    },
    Launcher {
        sub: &[b"exec", b"run", b"debug"],
        ..launcher(&[b"kubectl", b"oc"], NO_OPTIONS, Inner::After(b"--"))
    },
    launcher(
        &[b"awk", b"gawk", b"mawk", b"nawk", b"busybox-awk"],
        spec(b"vFf", &[b"assign", b"field-separator", b"file"], 0),
        Inner::Script(awk_commands),
    ),
    Launcher {
        line: &[
            (b"--checkpoint-action", Shell(after_exec)),
            (b"--to-command", Shell(whole)),
            (b"--use-compress-program", Shell(whole)),
            (b"-I", Shell(whole)),
            (b"--info-script", Shell(whole)),
            (b"--new-volume-script", Shell(whole)),
            (b"-F", Shell(whole)),
        ],
        ..launcher(&[b"tar", b"bsdtar"], NO_OPTIONS, Inner::Options)
    },
    Launcher {
        line: &[(b"-c", Shell(git_alias))],
        ..launcher(&[b"git"], NO_OPTIONS, Inner::Options)
    },
    Launcher {
        line: &[(b"-c", Shell(whole)), (b"--command", Shell(whole))],
        ..launcher(&[b"su", b"runuser"], NO_OPTIONS, Inner::Options)
    },
    Launcher {
        until: &[b";", b"+"],
        ..launcher(&[b"find"], NO_OPTIONS, Inner::After(b"-exec"))
    },
    // Interpreter one-liners (family 5): what the code runs, deletes or chmods.
    Launcher {
        line: &[(b"-c", Code)],
        ..launcher(
            &[
                b"python",
                b"python2",
                b"python3",
                b"python3.8",
                b"python3.9",
                b"python3.10",
                b"python3.11",
                b"python3.12",
                b"python3.13",
                b"pypy3",
            ],
            NO_OPTIONS,
            Inner::Options,
        )
    },
    Launcher {
        line: &[
            (b"-e", Code),
            (b"--eval", Code),
            (b"-p", Code),
            (b"--print", Code),
        ],
        ..launcher(
            &[b"node", b"nodejs", b"bun", b"deno"],
            NO_OPTIONS,
            Inner::Options,
        )
    },
    Launcher {
        line: &[(b"-e", Code), (b"-E", Code)],
        ..launcher(&[b"perl", b"ruby"], NO_OPTIONS, Inner::Options)
    },
    Launcher {
        line: &[(b"-r", Code)],
        ..launcher(&[b"php"], NO_OPTIONS, Inner::Options)
    },
    Launcher {
        line: &[(b"-e", Code)],
        ..launcher(&[b"osascript"], NO_OPTIONS, Inner::Options)
    },
];

/// Calls that run a shell command given as a string (or a list of strings).
const EXEC_CALLS: &[&[u8]] = &[
    b"system(",
    b"system (",
    b"system ",
    b"popen(",
    b"subprocess.run(",
    b"subprocess.call(",
    b"subprocess.Popen(",
    b"subprocess.check_call(",
    b"subprocess.check_output(",
    b"subprocess.getoutput(",
    b"subprocess.getstatusoutput(",
    b"os.execv(",
    b"os.execvp(",
    b"os.spawnv(",
    b"os.spawnvp(",
    b"execSync(",
    b"execFileSync(",
    b"spawnSync(",
    b"exec(",
    b"execFile(",
    b"spawn(",
    b"shell_exec(",
    b"passthru(",
    b"proc_open(",
    b"Open3.capture2(",
    b"Open3.popen3(",
    b"do shell script ",
];

/// Calls that delete the path they are given, in-process (no exec to check).
const DELETE_CALLS: &[&[u8]] = &[
    b"rmtree(",
    b"os.remove(",
    b"os.unlink(",
    b"os.rmdir(",
    b"os.removedirs(",
    b"unlink(",
    b"rmdir(",
    b"rmSync(",
    b"rmdirSync(",
    b"unlinkSync(",
    b"fs.rm(",
    b"rimraf(",
    b"rm_rf(",
    b"rm_r(",
    b"remove_tree(",
    b"File.delete(",
    b"Dir.rmdir(",
];

/// Calls that change a path's permissions or owner in-process.
const CHMOD_CALLS: &[&[u8]] = &[
    b"chmod(",
    b"chmodSync(",
    b"chown(",
    b"chownSync(",
    b"lchown(",
];

/// Spellings of the home directory in code, read as `~`.
const HOME_SPELLINGS: &[&[u8]] = &[
    b"os.environ['HOME']",
    b"os.environ[\"HOME\"]",
    b"os.getenv('HOME')",
    b"os.getenv(\"HOME\")",
    b"process.env.HOME",
    b"os.homedir()",
    b"Path.home()",
    b"ENV['HOME']",
    b"ENV[\"HOME\"]",
    b"$ENV{HOME}",
    b"$ENV{'HOME'}",
    b"Dir.home",
    b"getenv('HOME')",
    b"getenv(\"HOME\")",
];

/// What a one-liner runs, as command lines: the command strings given to `system()`-like
/// calls (argv lists are left to the exec check), backtick commands, and in-process
/// deletes and
/// permission changes written as the `rm -rf PATH` / `chmod 0 PATH` they amount to, so
/// the place rules judge them.
pub(super) fn code_commands(code: &[u8]) -> Vec<Vec<u8>> {
    let code = home_as_tilde(code);
    let mut out = Vec::new();
    // Where each call's arguments start: `shell_exec(` is also `exec(`, read once.
    let mut opens: std::collections::HashSet<usize> = std::collections::HashSet::new();
    for (calls, prefix) in [
        (EXEC_CALLS, &b""[..]),
        (DELETE_CALLS, &b"rm -rf "[..]),
        (CHMOD_CALLS, &b"chmod 0 "[..]),
    ] {
        for call in calls {
            let mut from = 0;
            while let Some(k) = memchr::memmem::find(code.get(from..).unwrap_or_default(), call) {
                let open = from + k + call.len();
                from = open;
                if !opens.insert(open) {
                    continue;
                }
                let args = call_args(&code, open);
                let literals = string_literals(args);
                // An argv list (`subprocess.run(['touch', f])`, `spawn('rm', [...])`)
                // runs no shell: that exec is checked when it happens, and the program
                // gets the refusal (PermissionError) as it would for any spawn. A
                // command string runs a shell, and is read here.
                let argv_form =
                    prefix.is_empty() && (literals.len() > 1 || trim_start(args).starts_with(b"["));
                if !literals.is_empty() && !argv_form {
                    let mut command = prefix.to_vec();
                    // `rmtree(a)` deletes one path: its first string.
                    let take = 1;
                    for (n, literal) in literals.into_iter().take(take).enumerate() {
                        if n > 0 {
                            command.push(b' ');
                        }
                        command.extend_from_slice(&literal);
                    }
                    out.push(command);
                }
            }
        }
    }
    // Backticks (`perl -e 'print `id`'`): the segments between a pair.
    let segments: Vec<&[u8]> = code.split(|&b| b == b'`').collect();
    for (n, segment) in segments.iter().enumerate() {
        if n % 2 == 1 && n + 1 < segments.len() && !segment.is_empty() {
            out.push(segment.to_vec());
        }
    }
    out
}

/// `code` with the home directory's spellings replaced by the string `"~"`.
fn home_as_tilde(code: &[u8]) -> Vec<u8> {
    let mut text = code.to_vec();
    for spelling in HOME_SPELLINGS {
        if memchr::memmem::find(&text, spelling).is_none() {
            continue;
        }
        let mut replaced = Vec::with_capacity(text.len());
        let mut last = 0;
        for k in memchr::memmem::find_iter(&text, spelling) {
            replaced.extend_from_slice(text.get(last..k).unwrap_or_default());
            replaced.extend_from_slice(b"\"~\"");
            last = k + spelling.len();
        }
        replaced.extend_from_slice(text.get(last..).unwrap_or_default());
        text = replaced;
    }
    text
}

/// How far a call's arguments are looked at: a one-liner's calls are short, and a
/// bound keeps hostile input (thousands of unclosed calls) linear.
const MAX_ARGS: usize = 4096;

/// The text of a call's arguments: from `open` (just past the call's opening) to the
/// matching `)`, or a line's end for `do shell script "..."`.
fn call_args(code: &[u8], open: usize) -> &[u8] {
    let rest = code.get(open..).unwrap_or_default();
    let rest = rest.get(..rest.len().min(MAX_ARGS)).unwrap_or_default();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    for (k, &b) in rest.iter().enumerate() {
        match (quote, b) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'(' | b'[') => depth += 1,
            (None, b')' | b']') if depth == 0 => return rest.get(..k).unwrap_or_default(),
            (None, b')' | b']') => depth -= 1,
            (None, b'\n' | b';') if depth == 0 => return rest.get(..k).unwrap_or_default(),
            _ => {}
        }
    }
    rest
}

/// The contents of the quoted strings in `text` (single or double quotes; a backslash
/// keeps the next character).
fn string_literals(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut k = 0;
    while let Some(&b) = text.get(k) {
        k += 1;
        if b != b'"' && b != b'\'' {
            continue;
        }
        let mut literal = Vec::new();
        while let Some(&c) = text.get(k) {
            k += 1;
            if c == b {
                break;
            }
            if c == b'\\' {
                if let Some(&next) = text.get(k) {
                    literal.push(next);
                }
                k += 1;
                continue;
            }
            literal.push(c);
        }
        out.push(literal);
    }
    out
}

/// `find`'s other ways to run a command (`-exec` is in the table).
const FIND_EXEC: &[&[u8]] = &[b"-exec", b"-execdir", b"-ok", b"-okdir"];

/// The launcher `words` (program first) start, if any.
fn find_launcher(words: WordList<'_>) -> Option<&'static Launcher> {
    let name = words.get(0)?.program_name();
    let sub = words.get(1).map(|w| w.text);
    LAUNCHERS.iter().find(|l| {
        l.names.contains(&name) && (l.sub.is_empty() || sub.is_some_and(|s| l.sub.contains(&s)))
    })
}

/// The command lines an awk program runs: string literals passed to `system(…)`, piped
/// to (`print … | "cmd"`) or read from (`"cmd" | getline`).
fn awk_commands(program: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut k = 0;
    while let Some(&b) = program.get(k) {
        if b != b'"' {
            k += 1;
            continue;
        }
        let start = k + 1;
        let mut end = start;
        let mut literal = Vec::new();
        while let Some(&c) = program.get(end) {
            match c {
                b'\\' => {
                    if let Some(&next) = program.get(end + 1) {
                        literal.push(next);
                    }
                    end += 2;
                }
                b'"' => break,
                _ => {
                    literal.push(c);
                    end += 1;
                }
            }
        }
        let before = trim_end(program.get(..k).unwrap_or_default());
        let after = trim_start(program.get(end + 1..).unwrap_or_default());
        if before.ends_with(b"system(")
            || before.ends_with(b"system (")
            || before.ends_with(b"|")
            || after.starts_with(b"|")
        {
            out.push(literal);
        }
        k = end + 1;
    }
    out
}

/// The value of short option `option` (`-c`) in `word`: attached (`-cCMD`, `-qcCMD`)
/// or, when the option ends a cluster of flags (`-qc`), the `next` word.
fn short_value<'w>(word: &'w [u8], option: &[u8], next: Option<&'w [u8]>) -> Option<&'w [u8]> {
    let letter = *option.get(1)?;
    let flags = word.strip_prefix(b"-").filter(|f| !f.starts_with(b"-"))?;
    let at = flags.iter().position(|&c| c == letter)?;
    match flags.get(at + 1..) {
        Some(value) if !value.is_empty() => Some(value),
        _ if word.len() > 2 => next,
        _ => None,
    }
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |k| k + 1);
    s.get(..n).unwrap_or_default()
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    s.get(n..).unwrap_or_default()
}

impl Parser<'_> {
    /// If `rest` starts a launcher: emits its piece and the pieces of what it launches,
    /// and returns true.
    pub(super) fn launcher(
        &mut self,
        rest: WordList<'_>,
        redirs: &[Vec<u8>],
        privileged: bool,
        out: &mut Vec<Piece>,
    ) -> bool {
        let Some(l) = find_launcher(rest) else {
            return false;
        };
        emit(rest, redirs, privileged, out);
        // Options are read after the sub-command, if there is one.
        let skip = usize::from(!l.sub.is_empty());
        let words = rest.from(skip).unwrap_or_default();
        let o = options(words, &l.spec);
        if l.no_run.iter().any(|&c| o.has(c)) {
            return true;
        }
        let region = match l.inner {
            Inner::Options => words.len(),
            _ => o.next.min(words.len()),
        };
        self.option_lines(l, words, region, privileged, out);
        match l.inner {
            Inner::Rest => {
                let inner = words.from(o.next).unwrap_or_default();
                // `flock FILE -c CMD`, `su USER -c CMD`: the value is the command.
                let first = inner.get(0).map(|w| w.text);
                if first.is_some_and(|f| l.line.iter().any(|(opt, _)| *opt == f)) {
                    self.option_lines(l, inner, 1, privileged, out);
                } else {
                    self.nested(inner, l.until, privileged, out);
                }
            }
            Inner::After(marker) => {
                let markers: &[&[u8]] = if marker == b"-exec" {
                    FIND_EXEC
                } else {
                    &[marker]
                };
                let mut k = 1;
                while let Some(w) = words.get(k) {
                    k += 1;
                    if markers.contains(&w.text) {
                        let inner = words.from(k).unwrap_or_default();
                        let used = self.nested(inner, l.until, privileged, out);
                        k += used;
                        if l.until.is_empty() {
                            break;
                        }
                    }
                }
            }
            Inner::Line => {
                let inner = words.from(o.next).unwrap_or_default();
                self.line(inner, l.until, privileged, out);
            }
            Inner::LineAfter(marker) => {
                if let Some(k) = words.iter().position(|w| w.text == marker) {
                    let inner = words.from(k + 1).unwrap_or_default();
                    self.line(inner, l.until, privileged, out);
                }
            }
            Inner::Script(commands) => {
                // With `-f FILE` the program is in a file; the first operand is data.
                if !o.has(b'f')
                    && let Some(program) = words.get(o.next)
                {
                    for command in commands(program.text) {
                        self.reparse(&command, privileged, out);
                    }
                }
            }
            Inner::Options => {}
        }
        true
    }

    /// Re-parses the values of `l`'s command-line options among `words[1..end]`.
    fn option_lines(
        &mut self,
        l: &Launcher,
        words: WordList<'_>,
        end: usize,
        privileged: bool,
        out: &mut Vec<Piece>,
    ) {
        if l.line.is_empty() {
            return;
        }
        let mut k = 0;
        while k < end {
            let Some(w) = words.get(k) else { break };
            k += 1;
            for (option, value_kind) in l.line {
                let value = if w.text == *option {
                    words.get(k).map(|v| v.text)
                } else if option.starts_with(b"--") {
                    w.text
                        .strip_prefix(*option)
                        .and_then(|v| v.strip_prefix(b"="))
                } else {
                    short_value(w.text, option, words.get(k).map(|v| v.text))
                };
                match (value, value_kind) {
                    (Some(value), Shell(extract)) => {
                        if let Some(command) = extract(value) {
                            self.reparse(command, privileged, out);
                        }
                    }
                    (Some(code), Code) => {
                        for command in code_commands(code) {
                            self.reparse(&command, privileged, out);
                        }
                    }
                    (None, _) => {}
                }
            }
        }
    }

    /// Emits `words` (up to an `until` word) as a command of its own; returns how many
    /// words that was.
    fn nested(
        &mut self,
        words: WordList<'_>,
        until: &[&[u8]],
        privileged: bool,
        out: &mut Vec<Piece>,
    ) -> usize {
        let n = words
            .iter()
            .position(|w| until.contains(&w.text))
            .unwrap_or(words.len());
        let inner = words.take(n);
        if inner.is_empty() {
            return n;
        }
        let cost = inner.iter().map(|w| w.text.len() + 1).sum::<usize>();
        if self.depth < MAX_DEPTH && self.budget >= cost {
            self.budget -= cost;
            self.depth += 1;
            self.command(inner, &[], privileged, false, out);
            self.depth -= 1;
        } else {
            self.truncated = true;
        }
        n
    }

    /// Joins `words` (but the `skip` words) with spaces and parses them as a command
    /// line, as the shell the launcher hands them to would.
    fn line(
        &mut self,
        words: WordList<'_>,
        skip: &[&[u8]],
        privileged: bool,
        out: &mut Vec<Piece>,
    ) {
        let mut text = Vec::new();
        for w in words.iter() {
            if skip.contains(&w.text) {
                continue;
            }
            if !text.is_empty() {
                text.push(b' ');
            }
            text.extend_from_slice(w.text);
        }
        if !text.is_empty() {
            self.reparse(&text, privileged, out);
        }
    }
}
