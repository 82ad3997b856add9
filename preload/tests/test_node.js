// Node as the agent: run under LD_PRELOAD=librampart.so against tests/fake_server.py
// (normal mode). Prints one line per check and "N passed, N failed".
'use strict';
const cp = require('child_process');

let passed = 0;
let failed = 0;
function check(name, fn) {
  try {
    fn();
    passed++;
    console.log(`ok   node: ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL node: ${name} - ${e && e.message}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

check('spawnSync rm -rf is denied with EPERM', () => {
  const r = cp.spawnSync('rm', ['-rf', '/tmp/rampart-node-x']);
  assert(r.error && r.error.code === 'EPERM', `got ${r.error && r.error.code} status ${r.status}`);
});

check('spawnSync true is allowed', () => {
  const r = cp.spawnSync('true');
  assert(!r.error && r.status === 0, `error ${r.error} status ${r.status}`);
});

check('execSync of a denied command throws', () => {
  let threw = null;
  try {
    cp.execSync('/bin/echo denyme', { stdio: 'pipe' });
  } catch (e) {
    threw = e;
  }
  assert(threw, 'no exception');
  assert(threw.code === 'EPERM' || threw.status === 126, `code ${threw.code} status ${threw.status}`);
});

check('execSync of an allowed command runs', () => {
  const out = cp.execSync('echo node-ok').toString();
  assert(out.trim() === 'node-ok', out);
});

check('spawnSync with an empty env is still checked', () => {
  const r = cp.spawnSync('/bin/echo', ['denyme'], { env: {} });
  assert(r.error && r.error.code === 'EPERM', `got ${r.error && r.error.code}`);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
