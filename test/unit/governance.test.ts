/**
 * Roles and engines in the signed log (issue 15): the creator is admin from genesis; only admins
 * grant and revoke roles, pin the engine key and configure engines and their policies; the last
 * admin can neither step down nor be removed; a root credential cannot be sealed before the engine
 * key is pinned; a policy names members only. The server applies the same rules (it imports this
 * code), so it cannot forge any of it either.
 */
import { describe, expect, it } from 'vitest';
import { type DeviceKeys, newDevice } from '../../src/core/crypto/device.ts';
import {
  applyEntries,
  checkEntry,
  type EntryBody,
  genesisEntry,
  governance,
  hasRole,
  isLogError,
  KeyCache,
  type Membership,
  nextEntry,
  policyFor,
  signEntry,
} from '../../src/core/sync/log.ts';
import { membershipFrom, membersJson } from '../../src/server/store.ts';

const VAULT = '1c6c1f4e-9a57-4c2b-8f0e-3d2a1b4c5d6e';
const SPKI = 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE'.padEnd(120, 'A');

async function team() {
  const [a, b, c] = await Promise.all([newDevice('creator'), newDevice('member'), newDevice('outsider')]);
  const keys = new KeyCache();
  let state = await applyEntries(undefined, [await signEntry(genesisEntry(VAULT, a.public, 1), a.sign)], keys);
  state = await applyEntries(
    state,
    [await signEntry(nextEntry(state, a.public.id, { type: 'member.add', device: b.public }, 2), a.sign)],
    keys,
  );
  return { a, b, c, keys, state };
}

async function by(state: Membership, who: DeviceKeys, body: EntryBody, keys: KeyCache): Promise<Membership> {
  return applyEntries(state, [await signEntry(nextEntry(state, who.public.id, body, state.seq + 1), who.sign)], keys);
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    if (isLogError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
}

const jwt: EntryBody = {
  type: 'engine.config',
  engine: 'api-tokens',
  kind: 'jwt',
  config: { issuer: 'https://vault.example', audience: 'api' },
};

describe('roles in the log', () => {
  it('the creator is admin from genesis; an admin grants and revokes; a member cannot', async () => {
    const { a, b, keys, state: s0 } = await team();
    expect([hasRole(s0, s0.creator, 'admin'), hasRole(s0, b.public.id, 'admin')]).toEqual([true, false]);
    expect(await refusal(by(s0, b, { type: 'role.grant', device: b.public.id, role: 'admin' }, keys))).toMatch(
      /^bad-membership: role.grant needs an admin/,
    );
    const s1 = await by(s0, a, { type: 'role.grant', device: b.public.id, role: 'audit' }, keys);
    expect(hasRole(s1, b.public.id, 'audit')).toBe(true);
    expect(await refusal(by(s1, a, { type: 'role.grant', device: b.public.id, role: 'audit' }, keys))).toMatch(/already has/);
    const s2 = await by(s1, a, { type: 'role.grant', device: b.public.id, role: 'admin' }, keys);
    const s3 = await by(s2, b, { type: 'role.revoke', device: a.public.id, role: 'admin' }, keys); // another admin may
    expect([hasRole(s3, a.public.id, 'admin'), hasRole(s3, b.public.id, 'admin')]).toEqual([false, true]);
    expect(await refusal(by(s3, b, { type: 'role.revoke', device: b.public.id, role: 'admin' }, keys))).toMatch(
      /last admin cannot step down/,
    );
    expect(await refusal(by(s3, a, { type: 'member.remove', device: b.public.id }, keys))).toMatch(/last admin cannot be removed/);
  });

  it('a role goes with the member removed, and only members get one', async () => {
    const { a, b, c, keys, state: s0 } = await team();
    expect(await refusal(by(s0, a, { type: 'role.grant', device: c.public.id, role: 'audit' }, keys))).toMatch(/^not-member/);
    const s1 = await by(s0, a, { type: 'role.grant', device: b.public.id, role: 'audit' }, keys);
    const s2 = await by(s1, a, { type: 'member.remove', device: b.public.id }, keys);
    expect(governance(s2).roles[b.public.id]).toBeUndefined();
  });
});

describe('engines in the log', () => {
  it('only an admin pins the engine key and configures an engine; a sealed root credential needs the key pinned first', async () => {
    const { a, b, keys, state: s0 } = await team();
    expect(await refusal(by(s0, b, { type: 'engine.key', spki: SPKI }, keys))).toMatch(/needs an admin/);
    expect(await refusal(by(s0, b, jwt, keys))).toMatch(/needs an admin/);
    expect(await refusal(by(s0, a, { ...jwt, sealed: 'c2VhbGVk' } as EntryBody, keys))).toMatch(/before the engine key is pinned/);
    const s1 = await by(s0, a, { type: 'engine.key', spki: SPKI }, keys);
    const s2 = await by(s1, a, { ...jwt, sealed: 'c2VhbGVk' } as EntryBody, keys);
    expect(governance(s2).engines['api-tokens']).toMatchObject({ kind: 'jwt', sealed: 'c2VhbGVk', seq: s2.seq, policies: {} });
    const s3 = await by(s2, a, { type: 'engine.remove', engine: 'api-tokens' }, keys);
    expect(governance(s3).engines).toEqual({});
  });

  it('a policy names an engine that exists and members only; who it allows is what policyFor says', async () => {
    const { a, b, c, keys, state: s0 } = await team();
    const policy = { role: 'reader', members: [b.public.id], maxTtlSeconds: 3600 };
    expect(await refusal(by(s0, a, { type: 'engine.policy', engine: 'api-tokens', policy }, keys))).toMatch(/not configured/);
    const s1 = await by(s0, a, jwt, keys);
    expect(
      await refusal(by(s1, a, { type: 'engine.policy', engine: 'api-tokens', policy: { ...policy, members: [c.public.id] } }, keys)),
    ).toMatch(/^not-member/);
    expect(await refusal(by(s1, b, { type: 'engine.policy', engine: 'api-tokens', policy }, keys))).toMatch(/needs an admin/);
    const s2 = await by(s1, a, { type: 'engine.policy', engine: 'api-tokens', policy }, keys);
    expect(policyFor(s2, 'api-tokens', 'reader', b.public.id)).toEqual(policy);
    expect(policyFor(s2, 'api-tokens', 'reader', a.public.id)).toBeUndefined();
    expect(policyFor(s2, 'api-tokens', 'writer', b.public.id)).toBeUndefined();
    const s3 = await by(s2, a, { type: 'engine.policy', engine: 'api-tokens', policy: { ...policy, members: ['*'] } }, keys);
    expect(policyFor(s3, 'api-tokens', 'reader', a.public.id)?.maxTtlSeconds).toBe(3600);
    expect(policyFor(s3, 'api-tokens', 'reader', c.public.id)).toBeUndefined(); // '*' means members
  });

  it('parses only well-formed governance entries', async () => {
    const { a, state } = await team();
    const base = nextEntry(state, a.public.id, { type: 'engine.key', spki: SPKI }, 3);
    const entry = await signEntry(base, a.sign);
    expect(checkEntry(JSON.parse(JSON.stringify(entry)))).toEqual(entry);
    for (const body of [
      { type: 'role.grant', device: a.public.id, role: 'owner' },
      { type: 'engine.config', engine: 'Bad Name', kind: 'jwt', config: {} },
      { type: 'engine.config', engine: 'x', kind: 'mysql', config: {} },
      { type: 'engine.config', engine: 'x', kind: 'jwt', config: { big: 'x'.repeat(20_000) } },
      { type: 'engine.policy', engine: 'x', policy: { role: 'r', members: [], maxTtlSeconds: 60 } },
      { type: 'engine.policy', engine: 'x', policy: { role: 'r', members: ['*'], maxTtlSeconds: 0 } },
      { type: 'engine.policy', engine: 'x', policy: { role: 'r', members: ['*'], maxTtlSeconds: 60, extra: 1 } },
    ])
      expect(() => checkEntry({ ...entry, body })).toThrow(/malformed|unknown|bad/);
  });
});

describe('stored by the server', () => {
  it('keeps roles and engines in the vault row, and reads a row written before them as the creator being admin', async () => {
    const { a, b, keys, state: s0 } = await team();
    const s1 = await by(s0, a, { type: 'role.grant', device: b.public.id, role: 'audit' }, keys);
    const s2 = await by(s1, a, jwt, keys);
    const row = { vault: s2.vault, seq: s2.seq, head: s2.head, epoch: s2.epoch, creator: s2.creator };
    expect(membershipFrom(row, membersJson(s2))).toEqual(s2);
    const old = membershipFrom(row, JSON.stringify([...s2.members.values()]));
    expect(old.gov).toBeUndefined();
    expect(governance(old)).toEqual({ roles: { [s2.creator]: ['admin'] }, engines: {} });
  });
});
