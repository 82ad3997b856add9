// A Node "agent" for tests/preload.rs, run under `rampart preload` with the real library.
//
// Careful: the seed policy asks for any command containing "nc" (spawnSync, concurrent),
// so nothing this agent runs may contain those letters.
//
//   node agent.js spawns VICTIM   spawnSync / execSync / exec, allowed and denied
//   node agent.js parallel N M    N parallel spawn('true') chains, M each
//
// One line per case: "<case> allow ok" / "<case> deny ok", or "<case> ... FAILED: why";
// the exit status counts the failures.
'use strict';

const cp = require('child_process');
const fs = require('fs');

let failures = 0;
function report(name, what, ok, detail) {
  if (ok) {
    console.log(`${name} ${what} ok`);
  } else {
    failures++;
    console.log(`${name} ${what} FAILED: ${detail}`);
  }
}

function spawns(victim) {
  let r = cp.spawnSync('echo', ['spawnS ran'], { stdio: 'inherit' });
  report('spawnSync', 'allow', !r.error && r.status === 0, String(r.error || r.status));
  r = cp.spawnSync('rm', ['-rf', victim], { stdio: 'inherit' });
  report('spawnSync', 'deny', r.error && r.error.code === 'EPERM' && r.error.errno === -1,
    String(r.error));

  r = cp.spawnSync('echo', ['spawnS-env ran'], { stdio: 'inherit', env: {} });
  report('spawnSync-env', 'allow', !r.error && r.status === 0, String(r.error || r.status));
  r = cp.spawnSync('/usr/bin/rm', ['-rf', victim], { stdio: 'inherit', env: {} });
  report('spawnSync-env', 'deny', r.error && r.error.code === 'EPERM', String(r.error));

  const out = cp.execSync('echo execS ran').toString();
  report('execSync', 'allow', out === 'execS ran\n', JSON.stringify(out));
  try {
    cp.execSync(`rm -rf ${victim}`, { stdio: 'inherit' });
    report('execSync', 'deny', false, 'no exception');
  } catch (e) {
    // execSync runs `/bin/sh -c CMD`; the policy reads the body, so the shell is refused.
    report('execSync', 'deny', e.code === 'EPERM' && e.status === null, `${e.code} ${e.status}`);
  }

  cp.exec('echo exec ran', (err, stdout) => {
    report('exec', 'allow', !err && stdout === 'exec ran\n', String(err));
    const finish = (ok, detail) => {
      report('spawn', 'deny', ok, detail);
      report('victim', 'kept', fs.existsSync(victim), 'the victim directory is gone');
      process.exitCode = failures;
    };
    // libuv reports a failed exec synchronously: spawn() throws rather than emitting.
    try {
      const child = cp.spawn('rm', ['-rf', victim]);
      child.on('error', (e) => finish(e.code === 'EPERM', String(e)));
      child.on('exit', (code) => finish(false, `it ran: exit ${code}`));
    } catch (e) {
      finish(e.code === 'EPERM' && e.syscall === 'spawn', String(e));
    }
  });
}

async function parallel(n, m) {
  const once = () =>
    new Promise((resolve) => {
      const child = cp.spawn('true');
      child.on('error', (e) => resolve(String(e)));
      child.on('exit', (code) => resolve(code === 0 ? null : `exit ${code}`));
    });
  const errors = [];
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (let i = 0; i < m; i++) {
        const err = await once();
        if (err) errors.push(err);
      }
    }),
  );
  console.log(`${n * m} spawns, ${errors.length} errors ${JSON.stringify(errors.slice(0, 3))}`);
  process.exitCode = errors.length ? 1 : 0;
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'spawns') {
  spawns(args[0]);
} else if (cmd === 'parallel') {
  parallel(Number(args[0]), Number(args[1]));
} else {
  console.error(`unknown case ${cmd}`);
  process.exitCode = 100;
}
