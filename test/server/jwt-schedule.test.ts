/**
 * The jwt engine's signing-key schedule under a slow or failing store (issue 15). A replica re-reads
 * the schedule every 5 s in case another replica changed it; that read must not hold the tokens
 * asked meanwhile (at a spike's rate, every request that arrived during the read waited for it). A
 * schedule with a change due, or one not re-read for a minute, is waited for, and a store that
 * stays down then fails the token, saying why. The store is real (SQLite) and so is the key provider;
 * the fault is injected in front of the store's one read.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineDef, EnginePolicy } from '../../src/core/sync/log.ts';
import { JwtEngine } from '../../src/server/engines/jwt.ts';
import { FileKeyProvider } from '../../src/server/kms/file-provider.ts';
import type { Store } from '../../src/server/store.ts';
import { gate } from '../harness/gate.ts';
import { openStore } from '../harness/vault-server.ts';

const ROTATION_SECONDS = 600;
const def: EngineDef = {
  kind: 'jwt',
  config: { audience: 'https://api.fake.example', rotationSeconds: ROTATION_SECONDS, tokenMaxSeconds: 60, roles: { reader: {} } },
  seq: 1,
  policies: {},
};
const policy: EnginePolicy = { role: 'reader', members: ['*'], maxTtlSeconds: 30 };

/** The store, with its schedule read held (`hold`) or failing (`failing`), and the reads counted. */
function faultyStore(store: Store) {
  const fault = { reads: 0, held: null as Promise<void> | null, failing: false };
  const proxy = new Proxy(store, {
    get(target, prop) {
      if (prop === 'getEngineRecord')
        return async (...args: Parameters<Store['getEngineRecord']>) => {
          fault.reads++;
          await fault.held;
          if (fault.failing) throw new Error('the store is unreachable (injected)');
          return target.getEngineRecord(...args);
        };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { store: proxy, fault };
}

/**
 * Whether `p` settles within `ms` while the store's read is held. A promise that waits for the read
 * cannot settle however long this waits, so a short wait only risks missing a wrong settle; one
 * that does not wait is given time enough for a signature on a loaded machine.
 */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  p.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  for (const deadline = Date.now() + ms; !settled && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
  return settled;
}

describe('the jwt engine’s signing-key schedule, with the store slow or down', () => {
  let base: Store;
  let kms: FileKeyProvider;
  beforeAll(async () => {
    base = await openStore('sqlite');
    kms = new FileKeyProvider(join(mkdtempSync(join(tmpdir(), 'keyhole-jwt-schedule-')), 'keys.json'), { create: true });
    await kms.init();
  });
  afterAll(async () => {
    await base?.close();
  });

  function engine(engineName: string) {
    const { store, fault } = faultyStore(base);
    let t = Date.UTC(2026, 11, 1, 12);
    const e = new JwtEngine({ kms, store, vault: 'vault-fake', engine: engineName, origin: 'https://vault.fake.example', now: () => t });
    return { e, fault, advance: (ms: number) => (t += ms), issue: () => e.issue(def, policy, 'device-fake', 'reader') };
  }

  it('a schedule older than 5 s is re-read behind the tokens, not before them', async () => {
    const { fault, advance, issue } = engine('behind');
    const first = await issue();
    expect(fault.reads).toBe(1);

    advance(6_000);
    const read = gate();
    fault.held = read.promise;
    const during = [issue(), issue(), issue()];
    expect(await settlesWithin(Promise.all(during), 10_000)).toBe(true);
    for (const t of await Promise.all(during)) expect(t.kid).toBe(first.kid);
    expect(fault.reads).toBe(2); // one re-read, shared by the three

    read.open();
    await new Promise((r) => setTimeout(r, 50));
    advance(1_000);
    await issue();
    expect(fault.reads).toBe(2); // read again 1 s ago: fresh
  });

  it('a key change that is due is waited for: no token is signed by a key whose turn is over', async () => {
    const { fault, advance, issue } = engine('due');
    const first = await issue();
    advance(ROTATION_SECONDS * 1000 + 1_000); // the next key's turn
    const read = gate();
    fault.held = read.promise;
    const after = issue();
    expect(await settlesWithin(after, 300)).toBe(false);
    read.open();
    expect((await after).kid).not.toBe(first.kid);
  });

  it('a store that stays down: tokens for a minute from the schedule last read, then a clear failure, then tokens again', async () => {
    const { fault, advance, issue } = engine('down');
    const first = await issue();
    fault.failing = true;
    advance(30_000);
    expect((await issue()).kid).toBe(first.kid);
    advance(31_000); // 61 s since the last read that worked
    await expect(issue()).rejects.toThrow(/unreachable/);
    fault.failing = false;
    expect((await issue()).kid).toBe(first.kid);
  });
});
