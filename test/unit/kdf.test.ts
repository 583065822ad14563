import { argon2id as nobleArgon2id } from '@noble/hashes/argon2.js';
import { argon2id as wasmArgon2id } from 'hash-wasm';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex, utf8 } from '../../src/core/bytes.ts';
import {
  checkKdfParams,
  defaultKdfParams,
  deriveKekBytes,
  encodeKdfParams,
  type KdfParams,
  parseKdfParams,
} from '../../src/core/crypto/kdf.ts';
import { isCoreError } from '../../src/core/errors.ts';
import rfc from '../vectors/argon2id-rfc9106.json' with { type: 'json' };

describe('Argon2id known answers (RFC 9106 §5.3)', () => {
  for (const v of rfc.cases) {
    it(`@noble/hashes matches: ${v.description}`, () => {
      const tag = nobleArgon2id(fromHex(v.password), fromHex(v.salt), {
        m: v.m,
        t: v.t,
        p: v.p,
        version: v.version,
        key: fromHex(v.secret),
        personalization: fromHex(v.associatedData),
        dkLen: 32,
      });
      expect(toHex(tag)).toBe(v.tag);
    });
  }

  // hash-wasm (the production implementation) cannot take associated data, so it is checked
  // against @noble/hashes, itself checked above, on identical inputs.
  const inputs = [
    { m: 32, t: 3, p: 4, pw: fromHex(rfc.cases[0]?.password ?? ''), secret: true },
    { m: 19 * 1024, t: 2, p: 1, pw: utf8('a passphrase (FAKE)'), secret: false },
    { m: 64 * 1024, t: 3, p: 4, pw: utf8('pässwörd \u{1F511} (FAKE)'), secret: false },
  ];
  for (const c of inputs) {
    it(`hash-wasm equals @noble/hashes at m=${c.m} t=${c.t} p=${c.p}`, async () => {
      const salt = fromHex('02020202020202020202020202020202');
      const secret = fromHex('0303030303030303');
      const noble = nobleArgon2id(c.pw, salt, { m: c.m, t: c.t, p: c.p, dkLen: 32, ...(c.secret ? { key: secret } : {}) });
      const wasm = await wasmArgon2id({
        password: c.pw,
        salt,
        memorySize: c.m,
        iterations: c.t,
        parallelism: c.p,
        hashLength: 32,
        outputType: 'binary',
        ...(c.secret ? { secret } : {}),
      });
      expect(toHex(wasm)).toBe(toHex(noble));
    });
  }
});

describe('deriveKekBytes', () => {
  const salt = fromHex('0102030405060708090a0b0c0d0e0f10');

  it('argon2id at the default parameters equals @noble/hashes on the NFC passphrase', async () => {
    const params: KdfParams = { alg: 'argon2id', m: 65536, t: 3, p: 4, salt };
    const ours = await deriveKekBytes('cafe\u0301 (FAKE)', params); // decomposed é
    const ref = nobleArgon2id(utf8('caf\u00e9 (FAKE)'), salt, { m: 65536, t: 3, p: 4, dkLen: 32 });
    expect(toHex(ours)).toBe(toHex(ref));
  });

  it('pbkdf2 is deterministic and separates passphrases', async () => {
    const params: KdfParams = { alg: 'pbkdf2-sha256', iterations: 600_000, salt };
    const a = await deriveKekBytes('one (FAKE)', params);
    expect(toHex(await deriveKekBytes('one (FAKE)', params))).toBe(toHex(a));
    expect(toHex(await deriveKekBytes('two (FAKE)', params))).not.toBe(toHex(a));
    expect(a.length).toBe(32);
  });

  it('refuses an empty passphrase', async () => {
    await expect(deriveKekBytes('', defaultKdfParams('pbkdf2-sha256'))).rejects.toSatisfy((e) => isCoreError(e, 'bad-input'));
  });
});

describe('KDF parameters', () => {
  it('defaults are Argon2id m=64 MiB, t=3, p=4 with a 16-byte salt', () => {
    const p = defaultKdfParams();
    expect(p).toMatchObject({ alg: 'argon2id', m: 65536, t: 3, p: 4 });
    expect(p.salt.length).toBe(16);
  });

  it('encode and parse are inverses', () => {
    for (const p of [defaultKdfParams('argon2id'), defaultKdfParams('pbkdf2-sha256')]) {
      const s = encodeKdfParams(p);
      expect(encodeKdfParams(parseKdfParams(s))).toBe(s);
    }
  });

  const salt = new Uint8Array(16);
  const weak: KdfParams[] = [
    { alg: 'argon2id', m: 1024, t: 3, p: 4, salt },
    { alg: 'argon2id', m: 65536, t: 1, p: 4, salt },
    { alg: 'argon2id', m: 4 * 1024 * 1024, t: 3, p: 4, salt },
    { alg: 'argon2id', m: 65536, t: 3, p: 0, salt },
    { alg: 'argon2id', m: 65536, t: 3, p: 4, salt: new Uint8Array(8) },
    { alg: 'pbkdf2-sha256', iterations: 100_000, salt },
    { alg: 'pbkdf2-sha256', iterations: 1e12, salt },
    { alg: 'scrypt', salt } as unknown as KdfParams,
  ];
  for (const p of weak) {
    it(`refuses ${JSON.stringify({ ...p, salt: p.salt.length })}`, () => {
      expect(() => checkKdfParams(p)).toThrow(expect.objectContaining({ code: 'bad-kdf-params' }));
    });
  }

  it('refuses text that is not a parameter string', () => {
    for (const s of ['', 'argon2id$v=19$m=65536,t=3,p=4$', 'argon2id$v=16$m=65536,t=3,p=4$AAAAAAAAAAAAAAAAAAAAAA==', 'md5$x']) {
      expect(() => parseKdfParams(s)).toThrow(expect.objectContaining({ code: 'bad-kdf-params' }));
    }
  });
});
