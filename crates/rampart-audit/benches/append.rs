//! Append throughput of the audit writer: `cargo bench -p rampart-audit --bench append`
//! (or `make bench`). The server needs ≥ 30 000 appends/s from 8 threads on 2 cores.
//! Each iteration is one `append` (redaction, id, hash, one write(2)); fsyncs run in the
//! background as in production. Events/s = 1 / the reported time per iteration.

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
    }
}

#[divan::bench(threads = [1, 8], sample_count = 50, sample_size = 200)]
fn append(bencher: Bencher) {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot create a temporary directory: {e}");
            std::process::exit(1)
        }
    };
    let log = match AuditLog::open(dir.path()) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    };
    bencher
        .counter(divan::counter::ItemsCount::new(1usize))
        .bench(|| black_box(log.append(event(7))));
}
