// A Node "agent" for tests/long.rs: WORKERS worker_threads spawn programs for SECS seconds.
//
//   node long_spawn.js TAG WORKERS SECS SCRATCH RECORD
//
// Worker t's n-th spawn carries the marker TAG-t-n as its last argument and is, by n:
//   n % 7 == 6       touch SCRATCH/no/MARKER        denied by the test's policy; expected
//                    to fail with EPERM (spawnSync by name, found on PATH, and
//                    execFileSync of /bin/touch, by turns)
//   else n % 3 == 0  echo MARKER                    allowed (execFileSync by name); its
//                    stdout must be MARKER
//   else n % 3 == 1  /bin/touch SCRATCH/ok/MARKER   allowed (spawnSync)
//   else n % 3 == 2  /bin/touch SCRATCH/ok/MARKER   allowed (spawnSync with an empty
//                    environment: the library must put itself back)
// Programs are started from argv arrays (no shell), so one spawn is one exec. Their
// stderr is inherited, so Rampart's one line per denial reaches the test.
//
// RECORD gets one JSON line per spawn: {marker, expect: "ran"|"eperm", api, outcome,
// detail}, outcome being "ran" (exit status 0, and for echo the right output), "eperm",
// or what happened instead ("exit N", "signal S", "timeout", "error ..."). The test
// compares RECORD with the audit trail; this script only fails (exit 1) when a worker
// itself broke.
'use strict';

const cp = require('child_process');
const fs = require('fs');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

// A spawn that hangs is recorded as a timeout instead of hanging the worker for ever.
const SPAWN_TIMEOUT_MS = 60000;
// Bounds the loop even if the clock misbehaves.
const MAX_PER_WORKER = 1000000;
const STDIO = ['ignore', 'pipe', 'inherit'];

function outcomeOf(status, signal, error) {
  if (error) {
    if (error.code === 'EPERM') return 'eperm';
    if (error.code === 'ETIMEDOUT') return 'timeout';
    return `error ${error.code} ${error.message}`;
  }
  if (signal) return `signal ${signal}`;
  return status === 0 ? 'ran' : `exit ${status}`;
}

function spawnOnce(tag, scratch, t, n) {
  const marker = `${tag}-${t}-${n}`;
  let expect;
  let api;
  let argv;
  if (n % 7 === 6) {
    expect = 'eperm';
    api = Math.floor(n / 7) % 2 ? 'execFileSync' : 'spawnSync';
    argv = [api === 'spawnSync' ? 'touch' : '/bin/touch', `${scratch}/no/${marker}`];
  } else if (n % 3 === 0) {
    expect = 'ran';
    api = 'execFileSync';
    argv = ['echo', marker];
  } else {
    expect = 'ran';
    api = n % 3 === 1 ? 'spawnSync' : 'spawnSync-env';
    argv = ['/bin/touch', `${scratch}/ok/${marker}`];
  }
  const opts = { stdio: STDIO, timeout: SPAWN_TIMEOUT_MS, killSignal: 'SIGKILL' };
  if (api === 'spawnSync-env') opts.env = {};
  let outcome;
  let detail = '';
  if (api.startsWith('spawnSync')) {
    const r = cp.spawnSync(argv[0], argv.slice(1), opts);
    outcome = outcomeOf(r.status, r.signal, r.error);
  } else {
    try {
      const out = cp.execFileSync(argv[0], argv.slice(1), opts).toString();
      outcome = 'ran';
      if (argv[0] === 'echo' && out !== `${marker}\n`) {
        outcome = 'wrong output';
        detail = JSON.stringify(out);
      }
    } catch (e) {
      // A failed start throws the spawn error itself (e.code); a failed run throws an
      // error carrying status and signal (and e.error for a timeout).
      if (e.code) {
        outcome = outcomeOf(null, null, e);
      } else {
        outcome = outcomeOf(e.status, e.signal, e.error);
      }
      detail = String(e.message).split('\n')[0];
    }
  }
  return { marker, expect, api, outcome, detail };
}

function work({ tag, t, secs, scratch }) {
  const deadline = Date.now() + secs * 1000;
  const records = [];
  for (let n = 0; n < MAX_PER_WORKER && Date.now() < deadline; n++) {
    records.push(spawnOnce(tag, scratch, t, n));
  }
  parentPort.postMessage(records);
}

function main() {
  const [tag, workersArg, secsArg, scratch, record] = process.argv.slice(2);
  const workers = Number(workersArg);
  const secs = Number(secsArg);
  const started = Date.now();
  const broken = [];
  const all = [];
  let running = workers;
  const finish = () => {
    const elapsed = (Date.now() - started) / 1000;
    fs.writeFileSync(record, all.map((r) => JSON.stringify(r) + '\n').join(''));
    console.log(`node: ${workers} workers, ${all.length} spawns in ${elapsed.toFixed(1)} s`);
    for (const b of broken) console.error(b);
    process.exitCode = broken.length ? 1 : 0;
  };
  for (let t = 0; t < workers; t++) {
    const w = new Worker(__filename, { workerData: { tag, t, secs, scratch } });
    let got = false;
    w.on('message', (records) => {
      got = true;
      for (const r of records) all.push(r);
    });
    w.on('error', (e) => broken.push(`worker ${t}: ${e && e.stack}`));
    w.on('exit', (code) => {
      if (!got || code !== 0) broken.push(`worker ${t}: exit ${code}, records ${got}`);
      if (--running === 0) finish();
    });
  }
}

if (isMainThread) {
  main();
} else {
  work(workerData);
}
