//! Append throughput of the audit writer: `cargo bench -p rampart-audit --bench append`
//! (or `make bench`). The server needs ≥ 30 000 appends/s from 8 threads on 2 cores.
//! An append is redaction, id, hash and one write(2); fsyncs run in the background as in
//! production. Read the items/s columns.

use divan::{Bencher, black_box};
use rampart_audit::{AuditLog, NewEvent};

fn main() {
    divan::main();
}

fn event(i: usize) -> NewEvent {
    NewEvent {
        agent: "claude-code".into(),
        session: "bench-session".into(),
        tool: "exec".into(),
        command: format!("git commit -m 'change {i}' --author 'Bench <b@example.invalid>'"),
        argv: vec![
            "git".into(),
            "commit".into(),
            "-m".into(),
            format!("change {i}"),
        ],
        exe: Some("/usr/bin/git".into()),
        cwd: Some("/home/user/project".into()),
        pid: Some(4243),
        ppid: Some(4242),
        via: Some("execve".into()),
        decision: "allow".into(),
        policy: "allow-git".into(),
        message: "git is allowed".into(),
        eval_us: 3,
        approval: None,
        mode: Some("enforce".into()),
        unchecked: None,
        quiet: false,
    }
}

fn open_log() -> (tempfile::TempDir, AuditLog) {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot create a temporary directory: {e}");
            std::process::exit(1)
        }
    };
    match AuditLog::open(dir.path()) {
        Ok(log) => (dir, log),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

/// One append per iteration, one thread.
#[divan::bench(sample_count = 50, sample_size = 200)]
fn single_thread(bencher: Bencher) {
    let (_dir, log) = open_log();
    bencher
        .counter(divan::counter::ItemsCount::new(1usize))
        .bench(|| black_box(log.append(event(7))));
}

const PER_THREAD: usize = 1_000;

/// 8 threads × 1 000 appends per iteration; the items/s column is the aggregate rate,
/// measured on the wall clock (divan's own `threads =` reports per-thread latency).
#[divan::bench(args = [8], sample_count = 20, sample_size = 1)]
fn threads(bencher: Bencher, threads: usize) {
    let (_dir, log) = open_log();
    bencher
        .counter(divan::counter::ItemsCount::new(threads * PER_THREAD))
        .bench(|| {
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let log = &log;
                    scope.spawn(move || {
                        for i in 0..PER_THREAD {
                            black_box(log.append(event(t * PER_THREAD + i)).is_ok());
                        }
                    });
                }
            });
        });
}
