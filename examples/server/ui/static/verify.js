// Verification of the audit log in the browser, trusting nothing but the
// log's public key: the C2SP signed-note checkpoint (Ed25519 over the note
// text, WebCrypto), RFC 6962 leaf and node hashes (SHA-256), and the
// RFC 9162 inclusion and consistency proof algorithms.
//
// Every function throws a VerifyError whose message says what failed; a
// caller shows "verified" only when the function returned.

export class VerifyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'VerifyError';
  }
}

const enc = new TextEncoder();

/** decodes standard or URL-safe base64 (padding optional) to bytes. */
export function b64decode(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) {
    throw new VerifyError('not base64');
  }
  let t = s.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  if (t.length % 4 === 1) throw new VerifyError('bad base64 length');
  while (t.length % 4) t += '=';
  const bin = atob(t);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * decodes canonical standard base64 (with padding, no stray bits): the
 * encoding of checkpoints, signatures, hashes and keys. Any other spelling
 * of the same bytes is refused, as the log's own parser does.
 */
export function b64strict(s) {
  if (typeof s !== 'string' || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
    throw new VerifyError('not canonical base64');
  }
  const out = b64decode(s);
  if (b64encode(out) !== s) throw new VerifyError('not canonical base64');
  return out;
}

export function b64encode(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/** RFC 6962 leaf hash: SHA-256(0x00 || entry). */
export function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), entry));
}

/** RFC 6962 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function hash32(s, what) {
  const h = b64strict(s);
  if (h.length !== 32) throw new VerifyError(what + ' is not a 32-byte hash');
  return h;
}

/**
 * parses a C2SP verifier key "<name>+<key hash hex>+<base64(0x01 || Ed25519
 * public key)>" and checks its key hash. Returns {name, keyHash, publicKey}.
 */
export async function parseVerifierKey(vkey) {
  // the key's base64 may itself contain '+': split at the first two only
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(String(vkey));
  if (!m) throw new VerifyError('malformed verifier key');
  const [, name, hashHex, keyB64] = m;
  const key = b64strict(keyB64);
  if (key.length !== 33 || key[0] !== 0x01) {
    throw new VerifyError('verifier key is not an Ed25519 key');
  }
  const id = (await sha256(concat(enc.encode(name + '\n'), key))).slice(0, 4);
  if (hex(id) !== hashHex) throw new VerifyError('verifier key hash does not match its key');
  return { name, keyHash: id, publicKey: key.slice(1) };
}

/**
 * verifies a signed checkpoint note (the bytes of GET /v1/audit/checkpoint)
 * with the verifier key and parses it: {origin, size (BigInt), root
 * (bytes), rootB64, note}. The origin must be the key's name.
 */
export async function verifyCheckpoint(noteText, vkey) {
  const key = await parseVerifierKey(vkey);
  if (typeof noteText !== 'string' || noteText.length > 1 << 20) {
    throw new VerifyError('checkpoint note too large');
  }
  const split = noteText.lastIndexOf('\n\n');
  if (split < 0) throw new VerifyError('checkpoint note has no signature block');
  const text = noteText.slice(0, split + 1);
  const sigBlock = noteText.slice(split + 2);
  if (!sigBlock.endsWith('\n')) throw new VerifyError('signature block must end with a newline');
  const lines = sigBlock.slice(0, -1).split('\n');
  const pub = await crypto.subtle.importKey('raw', key.publicKey, { name: 'Ed25519' }, false, ['verify']);
  let verified = false;
  for (const line of lines) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) throw new VerifyError('malformed signature line');
    if (m[1] !== key.name) continue;
    let sig;
    try {
      sig = b64strict(m[2]);
    } catch {
      continue; // not a signature of this key
    }
    if (sig.length !== 68 || !equal(sig.slice(0, 4), key.keyHash)) continue;
    if (await crypto.subtle.verify({ name: 'Ed25519' }, pub, sig.slice(4), enc.encode(text))) {
      verified = true;
      break;
    }
  }
  if (!verified) throw new VerifyError('no valid signature of the log key on the checkpoint');
  const body = text.slice(0, -1).split('\n');
  if (body.length < 3) throw new VerifyError('checkpoint body needs origin, size and hash');
  const [origin, sizeLine, rootB64] = body;
  if (origin !== key.name) throw new VerifyError('checkpoint origin is not the log key name');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine)) throw new VerifyError('bad checkpoint size');
  const root = hash32(rootB64, 'checkpoint root');
  return { origin, size: BigInt(sizeLine), root, rootB64, note: noteText };
}

/**
 * checks the RFC 9162 section 2.1.3.2 inclusion proof of the leaf with hash
 * leaf at index in the tree of size with root hash root. proof is the list
 * of base64 hashes of GET /v1/audit/proofs/inclusion.
 */
export async function verifyInclusion(proof, index, size, leaf, root) {
  index = BigInt(index);
  size = BigInt(size);
  if (index >= size) throw new VerifyError('index outside the tree');
  if (!Array.isArray(proof) || proof.length > 64) throw new VerifyError('bad proof');
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    const h = hash32(p, 'proof hash');
    if (sn === 0n) throw new VerifyError('inclusion proof too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(h, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, h);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !equal(r, root)) {
    throw new VerifyError('inclusion proof does not lead to the checkpoint root');
  }
}

/**
 * checks the RFC 9162 section 2.1.4.2 consistency proof that the tree of
 * newer (a verified checkpoint) extends the tree of older.
 */
export async function verifyConsistency(proof, older, newer) {
  if (older.origin !== newer.origin) throw new VerifyError('checkpoints of different logs');
  const m = older.size;
  const n = newer.size;
  if (m > n) throw new VerifyError('older checkpoint is larger');
  if (!Array.isArray(proof) || proof.length > 128) throw new VerifyError('bad proof');
  if (m === n) {
    if (proof.length !== 0 || !equal(older.root, newer.root)) {
      throw new VerifyError('two different trees of one size (split view)');
    }
    return;
  }
  if (m === 0n) {
    if (proof.length !== 0) throw new VerifyError('proof from the empty tree must be empty');
    return;
  }
  let path = proof.map((p) => hash32(p, 'proof hash'));
  if ((m & (m - 1n)) === 0n) path = [older.root, ...path];
  if (path.length === 0) throw new VerifyError('empty consistency proof');
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new VerifyError('consistency proof too long');
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !equal(fr, older.root) || !equal(sr, newer.root)) {
    throw new VerifyError('consistency proof does not verify');
  }
}

/**
 * RFC 8785 (JCS) canonical JSON of a parsed value: sorted keys, no
 * whitespace, ECMAScript number and string serialization.
 */
export function canonicalJSON(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(canonicalJSON).join(',') + ']';
  const keys = Object.keys(v).sort((a, b) => {
    // JCS sorts by UTF-16 code units, which is JavaScript's default order.
    return a < b ? -1 : a > b ? 1 : 0;
  });
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJSON(v[k])).join(',') + '}';
}

/** hex SHA-256 of the canonical JSON of v (a config document digest). */
export async function documentDigest(v) {
  return hex(await sha256(enc.encode(canonicalJSON(v))));
}
