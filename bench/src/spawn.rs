//! Spawn-loop measurements: what Rampart adds to starting a program.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{PER_ROUND, ROUNDS, start_server};

/// One way of running the loop; `run` returns nanoseconds for `PER_ROUND` spawns.
struct Variant {
    name: String,
    argv: Vec<String>,
    /// Index of the variant this one is compared with (its "bare").
    baseline: usize,
}

pub fn run(root: &Path, rampart: &Path, library: &Path, table: &mut Vec<String>) -> Result<()> {
    let work = tempfile::Builder::new()
        .prefix("rampart-bench-spawn-")
        .tempdir()?;
    let spawn_loop = work.path().join("spawn_loop");
    let cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".to_owned()))
        .args(["-O2", "-o"])
        .arg(&spawn_loop)
        .arg(root.join("preload/bench/spawn_loop.c"))
        .status()
        .context("compiling preload/bench/spawn_loop.c")?;
    if !cc.success() {
        bail!("compiling spawn_loop.c failed");
    }

    // Two servers: an allow-all policy (every spawn still checked and audited) and the
    // embedded standard profile.
    let allow_home = work.path().join("allow-all");
    std::fs::create_dir_all(allow_home.join("policies"))?;
    std::fs::write(
        allow_home.join("policies/allow.yaml"),
        "version: \"1\"\ndefault_action: allow\npolicies: []\n",
    )?;
    let standard_home = work.path().join("standard");
    std::fs::create_dir_all(&standard_home)?;
    let (mut allow_server, allow_port) = start_server(rampart, &allow_home)?;
    let (mut standard_server, _) = start_server(rampart, &standard_home)?;

    let python = which_python()?;
    let n = PER_ROUND.to_string();
    let lp = spawn_loop.display().to_string();
    // What a user gets: `rampart preload -- CMD` with no transport flags, the home's
    // server found through RAMPART_HOME (its Unix socket, the fast path) and its token
    // file. `env` clears what the bench's own environment might add.
    let launcher = |home: &Path, how: &str, protect: bool, cmd: &[&str]| -> Vec<String> {
        let mut argv = vec![
            "/usr/bin/env".to_owned(),
            "-u".to_owned(),
            "RAMPART_URL".to_owned(),
            "-u".to_owned(),
            "RAMPART_TOKEN".to_owned(),
            format!("RAMPART_HOME={}", home.display()),
            rampart.display().to_string(),
            how.to_owned(),
            "--no-autostart".to_owned(),
        ];
        if protect {
            argv.push("--protect".to_owned());
        }
        argv.push("--".to_owned());
        argv.extend(cmd.iter().map(|s| s.to_string()));
        argv
    };
    let under = |home: &Path, how: &str, cmd: &[&str]| launcher(home, how, false, cmd);
    // --protect needs user namespaces; where the kernel forbids them its rows are left out.
    let probe = launcher(&allow_home, "preload", true, &["/bin/true"]);
    let protect_works = Command::new(&probe[0])
        .args(probe.get(1..).unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let py_loop = format!(
        "import subprocess,time\nt=time.perf_counter_ns()\nfor _ in range({n}): subprocess.run(['/bin/true'])\nprint(time.perf_counter_ns()-t)"
    );
    let node_loop = format!(
        "const {{spawnSync}}=require('child_process');const t=process.hrtime.bigint();\
         for(let i=0;i<{n};i++){{spawnSync('/bin/true')}};console.log(String(process.hrtime.bigint()-t))"
    );
    let lib = library.display().to_string();
    let supervise_works = Command::new(rampart)
        .args(["supervise", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());

    let mut variants = vec![
        Variant {
            name: "spawn /bin/true, bare".into(),
            argv: vec![lp.clone(), n.clone(), "/bin/true".into()],
            baseline: 0,
        },
        Variant {
            name: "library loaded in the child only (load cost)".into(),
            argv: vec![lp.clone(), n.clone(), "/bin/true".into(), lib.clone()],
            baseline: 0,
        },
        Variant {
            name: "rampart preload, allow-all policy (checked + audited)".into(),
            argv: under(&allow_home, "preload", &[&lp, &n, "/bin/true"]),
            baseline: 0,
        },
        Variant {
            name: "rampart preload --port (TCP, the HTTP stack), allow-all policy".into(),
            argv: {
                let mut argv = under(&allow_home, "preload", &[&lp, &n, "/bin/true"]);
                let at = argv.iter().position(|a| a == "--no-autostart").unwrap_or(0);
                argv.insert(at, allow_port.to_string());
                argv.insert(at, "--port".to_owned());
                argv
            },
            baseline: 0,
        },
        Variant {
            name: "rampart preload, standard profile".into(),
            argv: under(&standard_home, "preload", &[&lp, &n, "/bin/true"]),
            baseline: 0,
        },
    ];
    if protect_works {
        variants.push(Variant {
            name: "rampart preload --protect, allow-all policy".into(),
            argv: launcher(&allow_home, "preload", true, &[&lp, &n, "/bin/true"]),
            baseline: 0,
        });
    }
    if supervise_works {
        variants.push(Variant {
            name: "rampart supervise, allow-all policy".into(),
            argv: under(&allow_home, "supervise", &[&lp, &n, "/bin/true"]),
            baseline: 0,
        });
        if protect_works {
            variants.push(Variant {
                name: "rampart supervise --protect, allow-all policy".into(),
                argv: launcher(&allow_home, "supervise", true, &[&lp, &n, "/bin/true"]),
                baseline: 0,
            });
        }
    }
    let py_bare = variants.len();
    variants.push(Variant {
        name: "CPython subprocess.run, bare".into(),
        argv: vec![python.clone(), "-c".into(), py_loop.clone()],
        baseline: py_bare,
    });
    variants.push(Variant {
        name: "CPython subprocess.run, rampart preload (allow-all)".into(),
        argv: under(&allow_home, "preload", &[&python, "-c", &py_loop]),
        baseline: py_bare,
    });
    let has_node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_node {
        let node_bare = variants.len();
        variants.push(Variant {
            name: "Node spawnSync, bare".into(),
            argv: vec!["node".into(), "-e".into(), node_loop.clone()],
            baseline: node_bare,
        });
        variants.push(Variant {
            name: "Node spawnSync, rampart preload (allow-all)".into(),
            argv: under(&allow_home, "preload", &["node", "-e", &node_loop]),
            baseline: node_bare,
        });
    }

    // Warm-up, then interleaved rounds.
    for v in &variants {
        measure(v)?;
    }
    let mut per_spawn: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..ROUNDS {
        for (i, v) in variants.iter().enumerate() {
            let ns = measure(v)?;
            if let Some(samples) = per_spawn.get_mut(i) {
                samples.push(ns as f64 / PER_ROUND as f64 / 1000.0);
            }
        }
    }
    let medians: Vec<f64> = per_spawn.iter().map(|s| median(s)).collect();
    for (i, v) in variants.iter().enumerate() {
        let samples = &per_spawn[i];
        let (lo, hi) = min_max(samples);
        let ratio = medians[i] / medians[v.baseline];
        let ratio_text = if v.baseline == i {
            "1.00 (baseline)".to_owned()
        } else {
            format!("{ratio:.2}× bare")
        };
        eprintln!(
            "{:<55} {:>8.1} µs/spawn ({lo:.1}–{hi:.1})  {ratio_text}",
            v.name, medians[i]
        );
        table.push(format!(
            "| {} | {:.1} µs per spawn ({lo:.1}–{hi:.1}) | {ratio_text} |",
            v.name, medians[i]
        ));
    }
    if protect_works {
        launches(
            &launcher(&allow_home, "preload", false, &["/bin/true"]),
            &launcher(&allow_home, "preload", true, &["/bin/true"]),
            table,
        )?;
    }
    stop(&mut allow_server);
    stop(&mut standard_server);
    Ok(())
}

/// What `--protect` costs once per run: the median wall time of `rampart preload --
/// /bin/true` with and without it (namespaces, masks, a fresh /proc, two more processes).
fn launches(plain: &[String], protected: &[String], table: &mut Vec<String>) -> Result<()> {
    const LAUNCHES: usize = 30;
    let time = |argv: &[String]| -> Result<f64> {
        let (program, args) = argv.split_first().context("empty launcher")?;
        let started = std::time::Instant::now();
        let status = Command::new(program)
            .args(args)
            .env_remove("LD_PRELOAD")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("{} failed ({status})", argv.join(" "));
        }
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    let mut without = Vec::new();
    let mut with = Vec::new();
    for _ in 0..LAUNCHES {
        without.push(time(plain)?);
        with.push(time(protected)?);
    }
    let (a, b) = (median(&without), median(&with));
    eprintln!("launch: {a:.2} ms plain, {b:.2} ms with --protect");
    table.push(format!(
        "| rampart preload -- /bin/true, one launch | {a:.2} ms plain, {b:.2} ms with --protect | --protect adds {:.2} ms per launch |",
        b - a
    ));
    Ok(())
}

fn measure(v: &Variant) -> Result<u128> {
    let (program, args) = v.argv.split_first().context("empty variant")?;
    let out = Command::new(program)
        .args(args)
        .env_remove("LD_PRELOAD")
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {}", v.name))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            v.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("{} printed no nanosecond count", v.name))
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn min_max(samples: &[f64]) -> (f64, f64) {
    let lo = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = samples.iter().copied().fold(0.0, f64::max);
    (lo, hi)
}

/// The real interpreter (not a pyenv shim, which is a bash script that execs a dozen
/// helpers and would be measured instead).
fn which_python() -> Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .context("python3 is needed for the CPython loop")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}
