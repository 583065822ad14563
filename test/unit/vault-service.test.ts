import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openKeyholeDB } from '../../src/background/db.ts';
import type { SessionBlob } from '../../src/background/vault/session.ts';
import { delayAfter } from '../../src/background/vault/throttle.ts';
import { VaultService } from '../../src/background/vault/vault-service.ts';
import type { InjectionRule } from '../../src/core/agents/policy.ts';
import { memorySession } from '../harness/session.ts';

const PASS = 'a long enough passphrase (FAKE)';
const rule: InjectionRule = {
  hosts: ['api.openai.com'],
  pathPrefixes: [],
  methods: [],
  header: 'Authorization',
  template: 'Bearer {value}',
};

async function setup(opts: { clock?: { t: number } } = {}) {
  const db = await openKeyholeDB(`kh-${crypto.randomUUID()}`);
  const session = memorySession();
  const clock = opts.clock ?? { t: 1_700_000_000_000 };
  const vault = new VaultService(db, session, 'test', () => clock.t);
  await vault.create(PASS, 'pbkdf2-sha256');
  return { db, session, vault, clock, fresh: () => new VaultService(db, session, 'test', () => clock.t) };
}

describe('VaultService', () => {
  it('a new service over the same storage resumes the session (a worker restart)', async () => {
    const { vault, fresh } = await setup();
    await vault.createSecret({ name: 'a', value: 'FAKE-a', rule });
    const restarted = fresh();
    expect((await restarted.status()).state).toBe('unlocked');
    expect((await restarted.listSecrets()).secrets.map((s) => s.name)).toEqual(['a']);
  });

  it('without the memory half of the session (browser restart) it is locked', async () => {
    const { session, fresh } = await setup();
    await session.clear();
    const restarted = fresh();
    expect((await restarted.status()).state).toBe('locked');
    await expect(restarted.listSecrets()).rejects.toMatchObject({ code: 'locked' });
  });

  it('lock removes both halves of the session', async () => {
    const { vault, db, session } = await setup();
    await vault.lock();
    expect(session.blob).toBeUndefined();
    expect(await db.get('session', 'key')).toBeUndefined();
    await expect(vault.listSecrets()).rejects.toMatchObject({ code: 'locked' });
  });

  it('the memory half is sealed: it holds no raw root and does not open under another session key', async () => {
    const { vault, session, db, fresh } = await setup();
    const blob = session.blob as SessionBlob;
    expect(blob.sealedRoot).toMatch(/^[A-Za-z0-9+/=]+$/);
    await vault.lock();
    await vault.unlock(PASS); // a new session key
    await session.set(blob); // the old blob
    const other = fresh();
    expect((await other.status()).state).toBe('locked');
    expect(await db.get('session', 'key')).toBeUndefined(); // a blob that does not open ends the session
  });

  it('wrong passphrases: typed error, growing delay that survives a restart, vault untouched', async () => {
    const { vault, clock, fresh } = await setup();
    await vault.createSecret({ name: 'keep', value: 'FAKE-keep', rule });
    await vault.lock();
    await expect(vault.unlock('wrong one (FAKE)')).rejects.toMatchObject({ code: 'wrong-passphrase' });
    const second = await vault.unlock('wrong two (FAKE)').catch((e) => e);
    expect(second).toMatchObject({ code: 'wrong-passphrase', data: { retryAfterMs: delayAfter(2) } });
    // too soon: refused without trying, even by a restarted worker
    await expect(fresh().unlock(PASS)).rejects.toMatchObject({ code: 'throttled' });
    expect((await vault.status()).retryAfterMs).toBe(delayAfter(2));
    clock.t += delayAfter(2);
    expect((await vault.unlock(PASS)).state).toBe('unlocked');
    expect((await vault.listSecrets()).secrets.map((s) => s.name)).toEqual(['keep']);
    // success reset the counter
    await vault.lock();
    await expect(vault.unlock('wrong again (FAKE)')).rejects.toMatchObject({ data: { retryAfterMs: 0 } });
  });

  it('delays grow and are capped', () => {
    const d = [1, 2, 3, 4, 5, 30].map(delayAfter);
    expect(d).toEqual([0, 1000, 2000, 4000, 8000, 300_000]);
  });

  it('a tampered record names its item; every other secret still opens', async () => {
    const { vault, db } = await setup();
    const a = await vault.createSecret({ name: 'a', value: 'FAKE-a', rule });
    const b = await vault.createSecret({ name: 'b', value: 'FAKE-b', rule });
    const stored = await db.get('secrets', b.id);
    if (!stored) throw new Error('missing');
    const meta = stored.meta.slice();
    meta[meta.length - 1] = (meta[meta.length - 1] as number) ^ 1;
    await db.put('secrets', { ...stored, meta });
    const { secrets, damaged } = await vault.listSecrets();
    expect(secrets.map((s) => s.id)).toEqual([a.id]);
    expect(damaged).toEqual([{ id: b.id, damaged: true, reason: 'decrypt-failed' }]);
    expect(await vault.reveal(a.id, PASS)).toEqual({ value: 'FAKE-a' });
    // a value swapped in from another item is refused, naming the item
    const sa = await db.get('secrets', a.id);
    if (!sa) throw new Error('missing');
    await db.put('secrets', { ...sa, value: stored.value, key: stored.key });
    await expect(vault.reveal(a.id, PASS)).rejects.toMatchObject({ code: 'decrypt-failed', item: a.id });
  });

  it('change passphrase re-wraps the root only; secrets are untouched and the old passphrase stops working', async () => {
    const { vault, db } = await setup();
    const s = await vault.createSecret({ name: 'a', value: 'FAKE-a', rule });
    const before = await db.get('secrets', s.id);
    const NEXT = 'another long passphrase (FAKE)';
    await expect(vault.changePassphrase('wrong current (FAKE)', NEXT)).rejects.toMatchObject({ code: 'wrong-passphrase' });
    await vault.changePassphrase(PASS, NEXT);
    expect(await db.get('secrets', s.id)).toEqual(before);
    await vault.lock();
    await expect(vault.unlock(PASS)).rejects.toMatchObject({ code: 'wrong-passphrase' });
  });

  it('create refuses weak passphrases and a second vault', async () => {
    const db = await openKeyholeDB(`kh-${crypto.randomUUID()}`);
    const vault = new VaultService(db, memorySession(), 'test');
    await expect(vault.create('short', 'pbkdf2-sha256')).rejects.toMatchObject({ code: 'weak-passphrase' });
    expect((await vault.status()).state).toBe('uninitialized');
    await vault.create(PASS, 'pbkdf2-sha256');
    await expect(vault.create(PASS, 'pbkdf2-sha256')).rejects.toMatchObject({ code: 'already-initialized' });
  });

  it('the name index follows renames and deletes without re-reading the vault', async () => {
    const { vault } = await setup();
    const a = await vault.createSecret({ name: 'a', value: 'FAKE-a', rule });
    await vault.updateSecret({ id: a.id, name: 'renamed' });
    expect(await vault.findSecret('a')).toBeNull();
    expect((await vault.findSecret('renamed'))?.id).toBe(a.id);
    await vault.createSecret({ name: 'a', value: 'FAKE-new-a', rule }); // the old name is free again
    await expect(vault.createSecret({ name: 'renamed', value: 'FAKE', rule })).rejects.toMatchObject({ code: 'name-taken' });
    await vault.deleteSecret(a.id);
    expect(await vault.findSecret('renamed')).toBeNull();
    expect((await vault.useSecret((await vault.findSecret('a'))?.id ?? '')).value).toBe('FAKE-new-a');
  });

  it('update re-seals at version + 1, keeps the value unless given, and refuses taken names', async () => {
    const { vault } = await setup();
    const a = await vault.createSecret({ name: 'a', value: 'FAKE-a', rule });
    await vault.createSecret({ name: 'b', value: 'FAKE-b', rule });
    await expect(vault.createSecret({ name: 'a', value: 'FAKE-x', rule })).rejects.toMatchObject({ code: 'name-taken' });
    await expect(vault.updateSecret({ id: a.id, name: 'b' })).rejects.toMatchObject({ code: 'name-taken' });
    const u = await vault.updateSecret({ id: a.id, notes: 'now with notes', rule: { ...rule, pathPrefixes: ['/v1/'] } });
    expect(u).toMatchObject({ version: 2, notes: 'now with notes', rule: { pathPrefixes: ['/v1/'] } });
    expect(await vault.reveal(a.id, PASS)).toEqual({ value: 'FAKE-a' });
    await vault.updateSecret({ id: a.id, value: 'FAKE-a2' });
    expect(await vault.reveal(a.id, PASS)).toEqual({ value: 'FAKE-a2' });
    await vault.deleteSecret(a.id);
    await expect(vault.reveal(a.id, PASS)).rejects.toMatchObject({ code: 'not-found' });
  });

  it('bad input is refused with a typed error and nothing is stored', async () => {
    const { vault, db } = await setup();
    const bads = [
      { name: '', value: 'FAKE', rule },
      { name: 'ok', value: '', rule },
      { name: 'ok', value: 'FAKE', rule: { ...rule, hosts: ['https://api.host@evil.test'] } },
      { name: 'ok', value: 'FAKE', rule: { ...rule, header: 'Cookie' } },
      { name: 'ok', value: 'FAKE', rule: { ...rule, template: 'Bearer' } },
      { name: 'ok', value: 'FAKE', rule: null as unknown as InjectionRule },
    ];
    for (const b of bads) await expect(vault.createSecret(b)).rejects.toMatchObject({ code: 'bad-input' });
    expect(await db.count('secrets')).toBe(0);
  });

  it('settings are validated and kept', async () => {
    const { vault } = await setup();
    expect(await vault.setSettings({ autoLockMinutes: 5 })).toMatchObject({ autoLockMinutes: 5, lockOnSystemLock: true });
    await expect(vault.setSettings({ autoLockMinutes: 0 })).rejects.toMatchObject({ code: 'bad-input' });
    await expect(vault.setSettings({ lockOnSystemLock: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'bad-input' });
    expect((await vault.getSettings()).autoLockMinutes).toBe(5);
  });

  it('a write transaction that dies part-way leaves the old state (IndexedDB atomicity)', async () => {
    const { vault, db } = await setup();
    const a = await vault.createSecret({ name: 'a', value: 'FAKE-a', rule });
    const headerBefore = await db.get('header', 'vault');
    const tx = db.transaction(['header', 'secrets'], 'readwrite');
    const writes = [
      tx.objectStore('header').put({ ...(headerBefore as NonNullable<typeof headerBefore>), rootVersion: 99 }, 'vault'),
      tx.objectStore('secrets').delete(a.id),
    ].map((p) => p.catch(() => 'aborted'));
    const done = tx.done.then(
      () => 'committed',
      () => 'aborted',
    );
    tx.abort();
    expect(await Promise.all(writes)).toEqual(['aborted', 'aborted']);
    expect(await done).toBe('aborted');
    expect(await db.get('header', 'vault')).toEqual(headerBefore);
    expect(await vault.reveal(a.id, PASS)).toEqual({ value: 'FAKE-a' });
  });
});

describe('VaultService: minted kinds', () => {
  const oauth2 = { tokenEndpoint: 'https://auth.example.com/token', clientId: 'client-FAKE', clientAuth: 'client_secret_basic' };
  const CLIENT_SECRET = 'FAKE-client-secret-4f3e2d1c';
  const REFRESH = 'FAKE-refresh-token-0a1b2c3d';

  it('keeps the configuration in metadata and the material sealed; the material never serves as a value', async () => {
    const { vault, db } = await setup();
    const s = await vault.createSecret({
      name: 'svc',
      rule,
      kind: 'oauth2-client-credentials',
      oauth2: { ...oauth2, scope: 'read' },
      material: { clientSecret: CLIENT_SECRET },
    } as never);
    expect(s).toMatchObject({ kind: 'oauth2-client-credentials', oauth2: { ...oauth2, scope: 'read' } });
    expect(JSON.stringify(await db.getAll('secrets'))).not.toContain('client-FAKE'); // even the config is sealed at rest
    expect(await vault.openMaterial(s.id)).toEqual({ clientSecret: CLIENT_SECRET });
    await expect(vault.useSecret(s.id)).rejects.toMatchObject({ code: 'bad-input' });
    await expect(vault.updateSecret({ id: s.id, value: 'FAKE-other' })).rejects.toMatchObject({ code: 'bad-input' });
  });

  it.each([
    ['an http endpoint off loopback', { oauth2: { ...oauth2, tokenEndpoint: 'http://auth.example.com/token' } }],
    ['no client secret for Basic', { material: {} }],
    [
      'a private key that is not one',
      {
        oauth2: { ...oauth2, clientAuth: 'private_key_jwt' },
        material: { privateKeyPem: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----' },
      },
    ],
    ['no client authentication for client credentials', { oauth2: { ...oauth2, clientAuth: 'none' }, material: {} }],
    ['an unknown kind', { kind: 'oauth2-device-code' }],
  ])('refuses %s with bad-input and stores nothing', async (_, change) => {
    const { vault, db } = await setup();
    const input = { name: 'svc', rule, kind: 'oauth2-client-credentials', oauth2, material: { clientSecret: CLIENT_SECRET }, ...change };
    const err = await vault.createSecret(input as never).catch((e: unknown) => e as { code: string; message: string });
    expect(err).toMatchObject({ code: 'bad-input' });
    expect((err as { message: string }).message).not.toContain(CLIENT_SECRET);
    expect(await db.count('secrets')).toBe(0);
  });

  it('a rotated refresh token replaces the old one at once, as a new version; the refresher role is this device until taken', async () => {
    const { vault, fresh } = await setup();
    const s = await vault.createSecret({
      name: 'rt',
      rule,
      kind: 'oauth2-refresh-token',
      oauth2: { ...oauth2, clientAuth: 'none' },
      material: { refreshToken: REFRESH },
    } as never);
    expect(s.oauth2?.refresher).toBe(await vault.deviceId());
    const next = await vault.setRefreshToken(s.id, 'FAKE-refresh-token-rotated-1');
    expect(next.version).toBe(s.version + 1);
    expect(await fresh().openMaterial(s.id)).toEqual({ refreshToken: 'FAKE-refresh-token-rotated-1' });
    // another device's role (as sync would bring it), then taken back here
    const elsewhere = await vault.updateSecret({ id: s.id, oauth2: { ...oauth2, clientAuth: 'none', refresher: 'other-device' } } as never);
    expect(elsewhere.oauth2?.refresher).toBe('other-device');
    expect((await vault.takeRefresherRole(s.id)).oauth2?.refresher).toBe(await vault.deviceId());
  });
});

describe('VaultService: versions, rotation and expiry', () => {
  const V1 = 'FAKE-value-one-1111';
  const V2 = 'FAKE-value-two-2222';
  const states = (s: { values: readonly { n: number; state: string }[] }) => s.values.map((v) => `${v.n}:${v.state}`).join(' ');

  it('rotate stages a value unused until promoted; promotion keeps the old one for the grace, then it is destroyed', async () => {
    const clock = { t: 1_700_000_000_000 };
    const { vault, db } = await setup({ clock });
    const s = await vault.createSecret({ name: 'k', value: V1, rule });
    const staged = await vault.rotate(s.id, { value: V2 });
    expect(states(staged)).toBe('1:current 2:staged');
    expect((await vault.useSecret(s.id)).value).toBe(V1);
    expect(await vault.stagedValue(s.id)).toBe(V2);
    const promoted = await vault.promote(s.id, { graceSeconds: 3600 });
    expect(states(promoted)).toBe('1:previous 2:current');
    expect((await vault.useSecret(s.id)).value).toBe(V2);
    const back = await vault.rollBack(s.id);
    expect(states(back)).toBe('1:current 2:staged');
    expect((await vault.useSecret(s.id)).value).toBe(V1);
    await vault.promote(s.id, { graceSeconds: 3600 });
    // the grace ends: the old value's ciphertext and data key are deleted (no key needed: locked)
    await vault.lock();
    clock.t += 3600_000;
    const done = await vault.destroyDue();
    expect(done).toEqual([{ id: s.id, expired: false, values: [1] }]);
    const stored = await db.get('secrets', s.id);
    expect(stored?.others).toBeUndefined();
    await vault.unlock(PASS);
    expect(states((await vault.listSecrets()).secrets[0] as never)).toBe('1:destroyed 2:current');
    await expect(vault.rollBack(s.id)).rejects.toMatchObject({ code: 'bad-input' });
  });

  it('a compromised rotation destroys the old value at once: its record is gone', async () => {
    const { vault, db } = await setup();
    const s = await vault.createSecret({ name: 'k', value: V1, rule });
    await vault.rotate(s.id, { value: V2 });
    const before = await db.get('secrets', s.id);
    expect(before?.others).toHaveLength(1);
    const after = await vault.promote(s.id, { compromised: true });
    expect(after.values.find((v) => v.n === 1)).toMatchObject({ state: 'destroyed', compromised: true });
    const stored = await db.get('secrets', s.id);
    expect(stored?.others).toBeUndefined();
    // the old ciphertext is nowhere in the store: none of its bytes remain
    const old = before?.value as Uint8Array;
    const all = JSON.stringify(await db.getAll('secrets'), (_, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
    expect(all).not.toContain(Buffer.from(old).toString('hex'));
    await expect(vault.rollBack(s.id)).rejects.toMatchObject({ code: 'bad-input' });
  });

  it('at expiry a secret is unusable at once, and its values are destroyed even while locked', async () => {
    const clock = { t: 1_700_000_000_000 };
    const { vault, db } = await setup({ clock });
    const s = await vault.createSecret({ name: 'k', value: V1, rule, expiresAt: clock.t + 60_000 });
    expect(s.expiresAt).toBe(clock.t + 60_000);
    expect((await vault.useSecret(s.id)).value).toBe(V1);
    clock.t += 60_000;
    await expect(vault.useSecret(s.id)).rejects.toMatchObject({ code: 'expired' }); // cached value or not
    await vault.lock();
    expect(await vault.destroyDue()).toEqual([{ id: s.id, expired: true, values: [] }]);
    const stored = await db.get('secrets', s.id);
    expect(stored?.value.length).toBe(0);
    expect(stored?.key.length).toBe(0);
    await vault.unlock(PASS);
    const listed = (await vault.listSecrets()).secrets[0];
    expect(listed).toMatchObject({ name: 'k', expired: true });
    await expect(vault.reveal(s.id, PASS)).rejects.toMatchObject({ code: 'expired' });
  });

  it('refuses an expiry in the past and a grace out of bounds, changing nothing', async () => {
    const clock = { t: 1_700_000_000_000 };
    const { vault } = await setup({ clock });
    await expect(vault.createSecret({ name: 'k', value: V1, rule, expiresAt: clock.t - 1 })).rejects.toMatchObject({ code: 'bad-input' });
    const s = await vault.createSecret({ name: 'k', value: V1, rule });
    await vault.rotate(s.id, { value: V2 });
    await expect(vault.promote(s.id, { graceSeconds: -5 })).rejects.toMatchObject({ code: 'bad-input' });
    expect((await vault.useSecret(s.id)).value).toBe(V1);
  });
});
