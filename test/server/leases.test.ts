/**
 * Leases and their sweeper (issue 15) on both store engines. Two replicas sweep 1,000 expired
 * leases at once: each is revoked exactly once, none is missed; a replica that dies holding
 * claims leaves them to the other after the visibility timeout; a backend that fails is retried
 * with back-off, a lease that keeps failing becomes irrevocable and is still retried hourly;
 * renewal stops at the maximum TTL and only for the lease's own device.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lease, LeaseStore } from '../../src/server/leases/lease-store.ts';
import { IRREVOCABLE_RETRY_MS, LeaseSweeper } from '../../src/server/leases/sweeper.ts';
import type { Store } from '../../src/server/store.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { type Engine, openStore } from '../harness/vault-server.ts';

let pg: Postgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

const T0 = Date.UTC(2026, 10, 30, 6, 0, 0);
const lease = (over: Partial<Lease> = {}): Lease => ({
  id: randomUUID(),
  vault: 'v-fake',
  engine: 'db',
  role: 'reader',
  device: 'dev-a',
  issued: T0,
  expires: T0 + 60_000,
  maxExpires: T0 + 600_000,
  renewable: true,
  state: 'active',
  attempts: 0,
  nextAttempt: T0 + 60_000,
  revokeData: '{"FAKE":"sealed"}',
  ...over,
});

describe.each<Engine>(['sqlite', 'postgres'])('leases on %s', (engine) => {
  let stores: Store[];
  let leases: LeaseStore;
  beforeAll(async () => {
    // two stores over one database: two replicas (SQLite: two connections to one file)
    const first = await openStore(engine, pg.url);
    stores = [first];
    if (engine === 'postgres') stores.push(await openStore(engine, pg.url));
    leases = first.leases;
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
  });

  it('renews only the device’s own active lease, and never past its maximum', async () => {
    const l = lease({ vault: `v-${engine}-renew` });
    await leases.insert(l);
    expect(await leases.renew(l.id, 'dev-b', T0 + 120_000, T0)).toBe(false); // another device
    expect(await leases.renew(l.id, 'dev-a', T0 + 700_000, T0)).toBe(false); // past max TTL
    expect(await leases.renew(l.id, 'dev-a', T0 + 120_000, T0 + 61_000)).toBe(false); // already expired
    expect(await leases.renew(l.id, 'dev-a', T0 + 120_000, T0)).toBe(true);
    expect((await leases.get(l.id))?.expires).toBe(T0 + 120_000);
    expect(await leases.countLive(l.vault, 'dev-a')).toBe(1);
    expect(await leases.markRevoking(l.id, T0)).toBe(true);
    expect(await leases.renew(l.id, 'dev-a', T0 + 130_000, T0)).toBe(false); // not active any more
  });

  it('two replicas sweep 1,000 expired leases: each revoked exactly once, none missed', async () => {
    const vault = `v-${engine}-sweep`;
    const all = Array.from({ length: 1000 }, (_, i) => lease({ vault, expires: T0 + i, nextAttempt: T0 + i }));
    for (const l of all) await leases.insert(l);
    const calls = new Map<string, number>();
    const revoke = async (l: Lease) => {
      calls.set(l.id, (calls.get(l.id) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, Math.random() * 2));
    };
    const replicas = (engine === 'postgres' ? stores : [stores[0] as Store, stores[0] as Store]).map(
      (s) => new LeaseSweeper({ leases: s.leases, revoke, now: () => T0 + 10 * 60_000, batch: 40, concurrency: 8 }),
    );
    const results = await Promise.all(replicas.map((r) => r.sweepOnce()));
    const mine = all.map((l) => calls.get(l.id) ?? 0);
    expect(mine.filter((n) => n !== 1)).toEqual([]);
    expect(results.reduce((n, r) => n + r.revoked, 0)).toBeGreaterThanOrEqual(1000);
    expect(results.every((r) => r.revoked > 0)).toBe(true); // both took part
    expect((await leases.list(vault)).filter((l) => l.state !== 'revoked')).toEqual([]);
  });

  it('a replica that dies holding claims leaves them to the other after the visibility timeout', async () => {
    const vault = `v-${engine}-dead`;
    const all = Array.from({ length: 30 }, () => lease({ vault, nextAttempt: T0 }));
    for (const l of all) await leases.insert(l);
    let now = T0 + 120_000;
    // the dying replica claims a batch and never finishes it
    const claimed = await leases.claimDue(now, 10, 60_000);
    expect(claimed.length).toBeGreaterThan(0);
    const revoked: string[] = [];
    const other = new LeaseSweeper({
      leases: (stores.at(-1) as Store).leases,
      revoke: async (l) => void revoked.push(l.id),
      now: () => now,
    });
    await other.sweepOnce();
    expect(revoked.some((id) => claimed.some((c) => c.id === id))).toBe(false); // hidden while claimed
    now += 61_000;
    await other.sweepOnce();
    expect(new Set(revoked)).toEqual(new Set(all.map((l) => l.id)));
    expect(revoked).toHaveLength(all.length);
  });

  it('a failing backend is retried with back-off; a lease that keeps failing is irrevocable, retried hourly, and revoked when it can be', async () => {
    const vault = `v-${engine}-failing`;
    const l = lease({ vault, nextAttempt: T0 });
    await leases.insert(l);
    let now = T0;
    let down = true;
    const sweeper = new LeaseSweeper({
      leases,
      now: () => now,
      maxAttempts: 3,
      revoke: async () => {
        if (down) throw new Error('target database unreachable');
      },
    });
    const states: string[] = [];
    for (let i = 0; i < 4; i++) {
      await sweeper.sweepOnce();
      const s = (await leases.get(l.id)) as Lease;
      states.push(`${s.state}:${s.attempts}:${s.nextAttempt - now}`);
      now = s.nextAttempt;
    }
    expect(states).toEqual([
      'revoking:1:1000',
      'revoking:2:2000',
      `irrevocable:3:${IRREVOCABLE_RETRY_MS}`,
      `irrevocable:4:${IRREVOCABLE_RETRY_MS}`,
    ]);
    expect((await leases.get(l.id))?.lastError).toBe('target database unreachable');
    down = false;
    await sweeper.sweepOnce();
    expect((await leases.get(l.id))?.state).toBe('revoked');
  });
});
