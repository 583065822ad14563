import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/core/canonical.ts';
import { type DeviceKeys, newDevice } from '../../src/core/crypto/device.ts';
import {
  applyEntries,
  checkEntry,
  type EntryBody,
  entryHash,
  entryText,
  genesisEntry,
  isLogError,
  KeyCache,
  type LogEntry,
  type Membership,
  nextEntry,
  signEntry,
} from '../../src/core/sync/log.ts';

const VAULT = '0b6c1f4e-9a57-4c2b-8f0e-3d2a1b4c5d6e';

async function chain(): Promise<{ a: DeviceKeys; b: DeviceKeys; c: DeviceKeys; state: Membership; keys: KeyCache; entries: LogEntry[] }> {
  const [a, b, c] = await Promise.all([newDevice('a'), newDevice('b'), newDevice('c')]);
  const keys = new KeyCache();
  const g = await signEntry(genesisEntry(VAULT, a.public, 1), a.sign);
  let state = await applyEntries(undefined, [g], keys);
  const add = await signEntry(nextEntry(state, a.public.id, { type: 'member.add', device: b.public }, 2), a.sign);
  state = await applyEntries(state, [add], keys);
  return { a, b, c, state, keys, entries: [g, add] };
}

const put = (item: string): EntryBody => ({ type: 'item.put', item, blob: 'ab'.repeat(32), parents: [] });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (isLogError(e)) return e.code;
    throw e;
  }
}

describe('canonical JSON', () => {
  it('sorts keys at every depth and has one form', () => {
    expect(canonicalJson({ b: 1, a: { d: [true, null, 's'], c: 'x' } })).toBe('{"a":{"c":"x","d":[true,null,"s"]},"b":1}');
  });
  it('refuses what two encoders could disagree on', () => {
    for (const bad of [1.5, Number.NaN, 2 ** 60, { a: undefined }, new Date(0), new Uint8Array(1)])
      expect(() => canonicalJson(bad)).toThrow();
  });
});

describe("an entry's canonical text", () => {
  it('is exactly canonicalJson of the entry, with and without its signature, for every body and awkward names', async () => {
    const d = await newDevice('a "quoted", \\ name,"time":1 with \u2028 and ünïcödé');
    const bodies: EntryBody[] = [
      { type: 'genesis', device: d.public },
      { type: 'member.add', device: { ...d.public, name: '},"time":0,"v":{' } },
      { type: 'member.remove', device: 'cd'.repeat(32) },
      { type: 'key.wrap', to: 'ef'.repeat(32), wrapped: 'AAEC+/==' },
      { type: 'item.put', item: 'item_1-x', blob: 'ab'.repeat(32), parents: ['01'.repeat(32), '23'.repeat(32)] },
      { type: 'item.destroy', item: 'gone', blobs: [] },
      { type: 'item.prune', item: 'item_1-x', blobs: ['cd'.repeat(32)] },
    ];
    for (const [i, body] of bodies.entries()) {
      const e = {
        v: 1 as const,
        vault: VAULT,
        seq: i + 1,
        prev: '0'.repeat(64),
        author: d.public.id,
        time: 1_700_000_000_000 + i,
        epoch: 3,
        body,
      };
      const sig = 'c2lnbmF0dXJl+/=';
      const { sig: _, ...unsignedOnly } = { ...e, sig };
      expect(entryText(e)).toBe(canonicalJson(unsignedOnly));
      expect(entryText(e, sig)).toBe(canonicalJson({ ...e, sig }));
    }
    // numbers no encoder could agree on are refused, as canonicalJson refuses them
    expect(() =>
      entryText({
        v: 1,
        vault: VAULT,
        seq: 1.5,
        prev: '0'.repeat(64),
        author: d.public.id,
        time: 1,
        epoch: 1,
        body: bodies[2] as EntryBody,
      }),
    ).toThrow();
  });
});

describe('log rules', () => {
  it('accepts a genesis and a member added by a member; the head is the last entry’s hash', async () => {
    const { b, state, entries } = await chain();
    expect(state.seq).toBe(2);
    expect(state.head).toBe(entryHash(entries[1] as LogEntry));
    expect([...state.members.keys()].sort()).toEqual([entries[0]?.author, b.public.id].sort());
  });

  it('refuses a stranger’s entry, a forged signature, a gap and a broken chain', async () => {
    const { a, c, state, keys } = await chain();
    const stranger = await signEntry(nextEntry(state, c.public.id, put('x')), c.sign);
    expect(await code(applyEntries(state, [stranger], keys))).toBe('not-member');
    const forged = await signEntry(nextEntry(state, a.public.id, put('x')), c.sign);
    expect(await code(applyEntries(state, [forged], keys))).toBe('bad-signature');
    const good = await signEntry(nextEntry(state, a.public.id, put('x')), a.sign);
    expect(await code(applyEntries(state, [{ ...good, body: put('y') }], keys))).toBe('bad-signature');
    expect(await code(applyEntries(state, [{ ...good, seq: 4 }], keys))).toBe('gap');
    expect(await code(applyEntries(state, [{ ...good, prev: '0'.repeat(64) }], keys))).toBe('bad-chain');
    expect(await code(applyEntries(state, [good], keys))).toBe('ok');
  });

  it('a removed member can no longer write, and removal starts a new key epoch', async () => {
    const { a, b, state, keys } = await chain();
    const rm = await signEntry(nextEntry(state, a.public.id, { type: 'member.remove', device: b.public.id }), a.sign);
    const after = await applyEntries(state, [rm], keys);
    expect(after.epoch).toBe(2);
    const late = await signEntry(nextEntry(after, b.public.id, put('x')), b.sign);
    expect(await code(applyEntries(after, [late], keys))).toBe('not-member');
    const oldEpoch = await signEntry({ ...nextEntry(after, a.public.id, put('x')), epoch: 1 }, a.sign);
    expect(await code(applyEntries(after, [oldEpoch], keys))).toBe('bad-membership');
  });

  it('a key substituted under a device id is refused (ids bind both keys)', async () => {
    const { a, c, state, keys } = await chain();
    const swapped = { ...c.public, sign: a.public.sign };
    const add = await signEntry(nextEntry(state, a.public.id, { type: 'member.add', device: swapped }), a.sign);
    expect(await code(applyEntries(state, [add], keys))).toBe('bad-membership');
  });

  it('a genesis must name its own author, and only once', async () => {
    const { a, b, state, keys } = await chain();
    const fake = await signEntry({ ...genesisEntry(VAULT, a.public), author: b.public.id }, b.sign);
    expect(await code(applyEntries(undefined, [fake], keys))).toBe('bad-membership');
    const again = await signEntry(nextEntry(state, a.public.id, { type: 'genesis', device: a.public }), a.sign);
    expect(await code(applyEntries(state, [again], keys))).toBe('bad-membership');
  });

  it('all or nothing: one bad entry in a batch rejects the batch', async () => {
    const { a, c, state, keys } = await chain();
    const e1 = await signEntry(nextEntry(state, a.public.id, put('x')), a.sign);
    const s1 = { ...state, seq: e1.seq, head: entryHash(e1) };
    const e2 = await signEntry(nextEntry(s1, a.public.id, put('y')), c.sign);
    expect(await code(applyEntries(state, [e1, e2], keys))).toBe('bad-signature');
    expect(state.seq).toBe(2);
  });

  it('parses only well-formed entries', async () => {
    const { entries } = await chain();
    const g = entries[0] as LogEntry;
    expect(checkEntry(JSON.parse(JSON.stringify(g)))).toEqual(g);
    for (const bad of [
      { ...g, extra: 1 },
      { ...g, seq: 0 },
      { ...g, prev: 'zz' },
      { ...g, vault: 'x' },
      { ...g, body: { type: 'nope' } },
      null,
      [],
    ]) {
      expect(() => checkEntry(bad)).toThrow();
    }
  });
});

describe('the server cannot decrypt', () => {
  it('nothing under src/server imports key, seal, vault or secret code', () => {
    // whole capabilities: everything that derives, wraps or opens keys, and the vault's records
    const forbidden = (f: string) => f.startsWith('core/crypto/') || f.startsWith('core/vault/') || f === 'core/sync/item-blob.ts';
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      // `from '…'`, bare `import '…'` and `import('…')`
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) visit(resolve(dirname(file), m[1] as string));
    };
    for (const f of ['app.ts', 'main.ts', 'sqlite.ts', 'postgres.ts', 'store.ts', 'kms/commands.ts']) visit(resolve('src/server', f));
    const reached = [...seen].map((f) => f.slice(f.indexOf('src/') + 4));
    expect(reached).toContain('core/sync/log.ts'); // control: the walk does reach the core
    expect(reached.filter(forbidden)).toEqual([]);
    // and the folders it forbids are where that code lives
    expect(existsSync(resolve('src/core/crypto/keys.ts')) && existsSync(resolve('src/core/vault/secrets.ts'))).toBe(true);
  });
});
