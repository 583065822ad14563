/**
 * The key providers (issue 15) against one contract: the `file` provider on a real key file, and
 * the `pkcs11` provider on a real SoftHSM2 token. Wrapping binds its associated data; rotation keeps
 * old wraps readable until re-wrapped and retired; the engine key agrees with a peer as Node's own
 * ECDH does; signatures verify with jose. On the token, no master or private key can be read out,
 * and a missing token or a wrong PIN stops the provider saying which.
 */
import { createECDH, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactVerify, importJWK } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { openFromEngine, sealToEngine } from '../../src/core/sync/engine-seal.ts';
import { openEngineRecord, rewrapEngineRecord, sealEngineRecord } from '../../src/server/kms/envelope.ts';
import { FileKeyProvider } from '../../src/server/kms/file-provider.ts';
import { Pkcs11KeyProvider } from '../../src/server/kms/pkcs11-provider.ts';
import { type KeyProvider, KmsError } from '../../src/server/kms/provider.ts';
import { softhsmToken, type TestToken } from '../harness/softhsm.ts';

const dir = mkdtempSync(join(tmpdir(), 'keyhole-kms-'));
const tokens: TestToken[] = [];
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  for (const t of tokens) t.remove();
});

const codeOf = async (f: () => Promise<unknown> | unknown) => {
  try {
    await f();
  } catch (e) {
    if (e instanceof KmsError) return e.code;
    throw e;
  }
  return 'accepted';
};
const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const place = { vault: 'v1', engine: 'jwt', record: 'config', version: 3 };

const providers: [string, () => KeyProvider][] = [
  ['file', () => new FileKeyProvider(join(dir, `keys-${randomBytes(4).toString('hex')}.json`), { create: true })],
  [
    'pkcs11',
    () => {
      const t = softhsmToken(`kh-${randomBytes(3).toString('hex')}`);
      tokens.push(t);
      return new Pkcs11KeyProvider(t);
    },
  ],
];

describe.each(providers)('the %s key provider', (_kind, make) => {
  it('wraps data keys bound to their associated data, seals records, and rotates without losing one', async () => {
    const kms = make();
    try {
      await kms.init();
      await kms.init(); // idempotent
      const first = await kms.status();
      expect(first.masterKey).toMatch(/^mk-[0-9a-f]{16}$/);
      expect(first.engineFingerprint).toMatch(/^([0-9a-f]{4} ){9}[0-9a-f]{4}$/);

      const dataKey = randomBytes(32);
      const aad = Buffer.from('FAKE associated data');
      const w = await kms.wrapDataKey(dataKey, aad);
      expect(Buffer.from(await kms.unwrapDataKey(w, aad))).toEqual(dataKey);
      expect(await codeOf(() => kms.unwrapDataKey(w, Buffer.from('other data')))).toBe('unwrap-failed');
      const tampered = Buffer.from(w.wrapped, 'base64');
      tampered[0] = (tampered[0] ?? 0) ^ 1;
      expect(await codeOf(() => kms.unwrapDataKey({ ...w, wrapped: tampered.toString('base64') }, aad))).toBe('unwrap-failed');

      const sealed = await sealEngineRecord(kms, place, Buffer.from('{"FAKE":"root credential"}'));
      expect(Buffer.from(await openEngineRecord(kms, place, sealed)).toString()).toBe('{"FAKE":"root credential"}');
      for (const moved of [
        { ...place, record: 'other' },
        { ...place, version: 4 },
        { ...place, engine: 'postgres' },
        { ...place, vault: 'v2' },
      ])
        expect(await codeOf(() => openEngineRecord(kms, moved, sealed))).toBe('unwrap-failed');

      const next = await kms.rotateMasterKey();
      const rotated = await kms.status();
      expect([rotated.masterKey, rotated.previousMasterKeys]).toEqual([next, [first.masterKey]]);
      expect(rotated.engineFingerprint).toBe(first.engineFingerprint); // the engine key is not the master key
      expect(Buffer.from(await openEngineRecord(kms, place, sealed)).toString()).toContain('root credential'); // the old wrap still opens
      const rewrapped = await rewrapEngineRecord(kms, place, sealed);
      expect([rewrapped.key.keyId, rewrapped.data]).toEqual([next, sealed.data]); // only the data key is re-wrapped
      await kms.retireMasterKey(first.masterKey);
      expect(await codeOf(() => openEngineRecord(kms, place, sealed))).toBe('unknown-key');
      expect(Buffer.from(await openEngineRecord(kms, place, rewrapped)).toString()).toContain('root credential');
      expect(await codeOf(() => kms.retireMasterKey(next))).toBe('unknown-key'); // never the current one
    } finally {
      await kms.close();
    }
  });

  it('agrees with a peer as ECDH P-256 does, and signs ES256 that jose verifies', async () => {
    const kms = make();
    try {
      await kms.init();
      const peer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const ours = await kms.engineAgree(new Uint8Array(peer.publicKey.export({ type: 'spki', format: 'der' })));
      const engine = createPublicKey({ key: Buffer.from(await kms.enginePublicKey()), format: 'der', type: 'spki' });
      expect(Buffer.from(ours)).toEqual(diffieHellman({ privateKey: peer.privateKey, publicKey: engine }));
      expect(ours.length).toBe(32);
      expect(await codeOf(() => kms.engineAgree(new Uint8Array(createECDH('prime256v1').generateKeys())))).toBe('bad-public-key');

      // a root credential an admin's device seals to the engine key opens through the provider's ECDH, for that engine only
      const engineKey = (await kms.status()).engineKey;
      const rootPlace = { vault: 'v1', engine: 'db', kind: 'postgres' };
      const sealed = await sealToEngine(engineKey, Buffer.from('{"password":"FAKE-root"}'), rootPlace);
      const agree = (p: Uint8Array) => kms.engineAgree(p);
      expect(Buffer.from(await openFromEngine(sealed, engineKey, agree, rootPlace)).toString()).toContain('FAKE-root');
      for (const other of [
        { ...rootPlace, engine: 'db2' },
        { ...rootPlace, kind: 'jwt' },
        { ...rootPlace, vault: 'v2' },
      ])
        await expect(openFromEngine(sealed, engineKey, agree, other)).rejects.toMatchObject({ code: 'decrypt-failed' });
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .publicKey.export({ type: 'spki', format: 'der' })
        .toString('base64');
      await expect(
        openFromEngine(await sealToEngine(stranger, Buffer.from('x'), rootPlace), engineKey, agree, rootPlace),
      ).rejects.toMatchObject({
        code: 'decrypt-failed',
      });

      const kid = await kms.createSigningKey();
      expect((await kms.status()).signingKeys).toContain(kid);
      const header = b64url(Buffer.from(JSON.stringify({ alg: 'ES256', kid, typ: 'JWT' })));
      const payload = b64url(Buffer.from(JSON.stringify({ sub: 'FAKE-member', exp: 2_000_000_000 })));
      const signature = await kms.sign(kid, Buffer.from(`${header}.${payload}`));
      expect(signature.length).toBe(64);
      const key = await importJWK({ ...(await kms.signingPublicKey(kid)), alg: 'ES256' }, 'ES256');
      const verified = await compactVerify(`${header}.${payload}.${b64url(signature)}`, key);
      expect(JSON.parse(Buffer.from(verified.payload).toString()).sub).toBe('FAKE-member');
      await kms.deleteSigningKey(kid);
      expect(await codeOf(() => kms.sign(kid, Buffer.from('x')))).toBe('unknown-key');
    } finally {
      await kms.close();
    }
  });
});

describe('the pkcs11 provider on a real token', () => {
  it('keeps every key on the token: none can be read out; the keys survive a restart', async () => {
    const t = softhsmToken('kh-restart');
    tokens.push(t);
    let kms = new Pkcs11KeyProvider(t);
    await kms.init();
    const kid = await kms.createSigningKey();
    const before = await kms.status();
    expect([kms.readableValue('master'), kms.readableValue('engine'), kms.readableValue('signing', kid)]).toEqual([false, false, false]);
    const sealed = await sealEngineRecord(kms, place, Buffer.from('FAKE'));
    await kms.close();
    kms = new Pkcs11KeyProvider(t); // the server restarts
    try {
      const after = await kms.status();
      expect(after).toEqual(before);
      expect(Buffer.from(await openEngineRecord(kms, place, sealed)).toString()).toBe('FAKE');
      expect((await kms.sign(kid, Buffer.from('x'))).length).toBe(64);
    } finally {
      await kms.close();
    }
  });

  it('signs many at once off the event loop, each verifying; a deleted key signs no more; close waits for signatures in line', async () => {
    const t = softhsmToken('kh-concurrent');
    tokens.push(t);
    const kms = new Pkcs11KeyProvider(t);
    await kms.init();
    const [a, b] = [await kms.createSigningKey(), await kms.createSigningKey()];
    const keyOf = async (kid: string) => createPublicKey({ key: { ...(await kms.signingPublicKey(kid)) }, format: 'jwk' });
    const [pa, pb] = [await keyOf(a), await keyOf(b)];
    const messages = Array.from({ length: 40 }, (_, i) => Buffer.from(`header.claims-${i}`));
    const sigs = await Promise.all(messages.map((m, i) => kms.sign(i % 2 ? b : a, m)));
    for (const [i, sig] of sigs.entries()) {
      const [own, other] = i % 2 ? [pb, pa] : [pa, pb];
      expect(verify('sha256', messages[i] as Buffer, { key: own, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
      expect(verify('sha256', messages[i] as Buffer, { key: other, dsaEncoding: 'ieee-p1363' }, sig)).toBe(false);
    }
    await kms.deleteSigningKey(a);
    expect(await codeOf(() => kms.sign(a, Buffer.from('x')))).toBe('unknown-key');
    // the failure above does not stop the line behind it
    const inLine = messages.slice(0, 8).map((m) => kms.sign(b, m));
    await kms.close();
    for (const [i, sig] of (await Promise.all(inLine)).entries())
      expect(verify('sha256', messages[i] as Buffer, { key: pb, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
  });

  it('signs on as many sessions as it is given, one signature at a time on each, each verifying; refuses a count it cannot use', async () => {
    const t = softhsmToken('kh-sessions');
    tokens.push(t);
    for (const bad of [0, 1.5, Number.NaN, 65]) expect(() => new Pkcs11KeyProvider({ ...t, signSessions: bad })).toThrow(RangeError);
    for (const signSessions of [3, 1]) {
      // a session asked for a second signature while it signs one refuses it (CKR_OPERATION_ACTIVE)
      const kms = new Pkcs11KeyProvider({ ...t, signSessions });
      try {
        await kms.init();
        const kid = await kms.createSigningKey();
        const key = createPublicKey({ key: { ...(await kms.signingPublicKey(kid)) }, format: 'jwk' });
        const messages = Array.from({ length: 30 }, (_, i) => Buffer.from(`header.claims-${i}`));
        const sigs = await Promise.all(messages.map((m) => kms.sign(kid, m)));
        for (const [i, sig] of sigs.entries())
          expect(verify('sha256', messages[i] as Buffer, { key, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
      } finally {
        await kms.close();
      }
    }
  });

  it('refuses to start without its token, with a wrong PIN, or without its library, saying which', async () => {
    const t = softhsmToken('kh-pin');
    tokens.push(t);
    expect(await codeOf(() => new Pkcs11KeyProvider({ ...t, tokenLabel: 'no-such-token' }))).toBe('token-missing');
    expect(await codeOf(() => new Pkcs11KeyProvider({ ...t, pin: 'FAKE-wrong' }))).toBe('wrong-pin');
    expect(await codeOf(() => new Pkcs11KeyProvider({ ...t, library: '/nonexistent/libpkcs11.so' }))).toBe('no-library');
    const kms = new Pkcs11KeyProvider(t); // and then it starts
    expect(await codeOf(() => kms.status())).toBe('not-initialised');
    await kms.close();
  });
});

describe('the file provider', () => {
  it('creates its key file with mode 0600, refuses one others may read, and one that is missing', async () => {
    const path = join(dir, 'mode.json');
    const kms = new FileKeyProvider(path, { create: true });
    await kms.init();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    chmodSync(path, 0o644);
    expect(await codeOf(() => new FileKeyProvider(path).status())).toBe('bad-key-file');
    expect(await codeOf(() => new FileKeyProvider(join(dir, 'missing.json')).status())).toBe('no-key-file');
    const junk = join(dir, 'junk.json');
    writeFileSync(junk, '{"v":1}', { mode: 0o600 });
    expect(await codeOf(() => new FileKeyProvider(junk).status())).toBe('bad-key-file');
  });
});
