// Checks static/verify.js (the dashboard's in-browser verifier) against
// vectors made by the audit package in Go (TestDashboardVerifierVectors):
// every inclusion proof and every consistency proof of a log at each size
// verifies, and each kind of tampering fails. Usage:
//   node e2e/verify_vectors.mjs vectors.json
// It ends with the line "verifier vectors: N passed, N failed".

import { readFileSync } from 'node:fs';
import { b64decode, b64encode, leafHash, verifyCheckpoint, verifyConsistency, verifyInclusion } from '../static/verify.js';

const v = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let passed = 0;
let failed = 0;
const fail = (msg) => {
  failed++;
  if (failed <= 20) process.stderr.write(`FAIL ${msg}\n`);
};
async function ok(name, fn) {
  try {
    await fn();
    passed++;
  } catch (e) {
    fail(`${name}: ${e.message}`);
  }
}
async function refused(name, fn) {
  try {
    await fn();
  } catch (e) {
    if (e.name === 'VerifyError') {
      passed++;
      return;
    }
    fail(`${name}: threw ${e.name} ${e.message}, not a VerifyError`);
    return;
  }
  fail(`${name}: accepted`);
}

const cps = {};
for (const note of v.checkpoints) {
  const cp = await verifyCheckpoint(note, v.verifier_key);
  cps[cp.size] = cp;
  passed++;
}
const entries = v.entries.map(b64decode);
for (const p of v.inclusion) {
  const cp = cps[p.tree_size];
  const leaf = await leafHash(entries[p.index]);
  await ok(`inclusion ${p.index} in ${p.tree_size}`, () => verifyInclusion(p.proof, p.index, p.tree_size, leaf, cp.root));
  // another entry's bytes at this index
  const other = await leafHash(entries[(p.index + 1) % entries.length]);
  if (p.tree_size > 1) await refused(`wrong leaf at ${p.index} in ${p.tree_size}`, () => verifyInclusion(p.proof, p.index, p.tree_size, other, cp.root));
  // one flipped byte of the entry
  const bad = entries[p.index].slice();
  bad[bad.length >> 1] ^= 1;
  await refused(`tampered entry ${p.index} in ${p.tree_size}`, async () => verifyInclusion(p.proof, p.index, p.tree_size, await leafHash(bad), cp.root));
  if (p.proof.length) {
    await refused(`short proof ${p.index} in ${p.tree_size}`, () => verifyInclusion(p.proof.slice(1), p.index, p.tree_size, leaf, cp.root));
    await refused(`long proof ${p.index} in ${p.tree_size}`, () => verifyInclusion([...p.proof, p.proof[0]], p.index, p.tree_size, leaf, cp.root));
  }
  if (p.tree_size > 1) await refused(`other index ${p.index} in ${p.tree_size}`, () => verifyInclusion(p.proof, (p.index + 1) % p.tree_size, p.tree_size, leaf, cp.root));
}
await refused('index outside the tree', () => verifyInclusion([], 3, 3, new Uint8Array(32), new Uint8Array(32)));
for (const c of v.consistency) {
  const older = cps[c.old_size];
  const newer = cps[c.tree_size];
  await ok(`consistency ${c.old_size} → ${c.tree_size}`, () => verifyConsistency(c.proof, older, newer));
  if (c.old_size > 0 && c.old_size < c.tree_size) {
    await refused(`swapped ${c.old_size} → ${c.tree_size}`, () => verifyConsistency(c.proof, newer, older));
    if (c.proof.length) {
      const bad = c.proof.slice();
      const h = b64decode(bad[bad.length - 1]);
      h[0] ^= 1;
      bad[bad.length - 1] = b64encode(h);
      await refused(`altered proof ${c.old_size} → ${c.tree_size}`, () => verifyConsistency(bad, older, newer));
      await refused(`short proof ${c.old_size} → ${c.tree_size}`, () => verifyConsistency(c.proof.slice(0, -1), older, newer));
    }
    // a rewritten history: the newer root of another size
    const fake = { ...newer, root: cps[c.tree_size - 1 || 1].root };
    await refused(`forged newer root ${c.old_size} → ${c.tree_size}`, () => verifyConsistency(c.proof, older, fake));
  }
}
for (const [i, note] of v.bad_checkpoints.entries()) {
  await refused(`bad checkpoint ${i}`, () => verifyCheckpoint(note, v.verifier_key));
}
await refused('checkpoint under another key', () => verifyCheckpoint(v.checkpoints[0], v.other_verifier_key));

// Random mutations of a signed note (a deterministic PRNG): each one that
// changes the note is refused with a VerifyError, never accepted and never
// another exception.
let seed = 0x1234567;
const rand = (n) => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % n;
};
const alphabet = 'abz019+/=\n \u2014-.:AZ';
const note = v.checkpoints[v.checkpoints.length - 1];
for (let i = 0; i < 3000; i++) {
  let m = note;
  for (let k = 1 + rand(3); k > 0; k--) {
    const at = rand(m.length + 1);
    const c = alphabet[rand(alphabet.length)];
    switch (rand(3)) {
      case 0:
        m = m.slice(0, at) + c + m.slice(at + 1);
        break;
      case 1:
        m = m.slice(0, at) + m.slice(at + 1);
        break;
      default:
        m = m.slice(0, at) + c + m.slice(at);
    }
  }
  if (m === note) continue;
  await refused(`mutated note ${i}`, () => verifyCheckpoint(m, v.verifier_key));
}
// Malformed verifier keys are refused too.
for (const k of ['', 'name', 'name+0011aabb', 'name+zz+AAAA', v.verifier_key.replace(/\+([0-9a-f]{8})\+/, '+00000000+'), v.verifier_key + 'AA']) {
  await refused(`verifier key ${JSON.stringify(k).slice(0, 30)}`, () => verifyCheckpoint(note, k));
}
process.stdout.write(`verifier vectors: ${passed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
