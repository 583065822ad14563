/**
 * The distant vault as real processes (`src/server/main.ts`): two replicas over one
 * PostgreSQL, and a server SIGKILLed in the middle of a commit and started again.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replica } from '../../src/background/sync/replica.ts';
import { SyncError, VaultClient } from '../../src/background/sync/vault-client.ts';
import { nextEntry, signEntry } from '../../src/core/sync/log.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { freePort } from '../harness/servers.ts';
import { device, login, post, putItem, values, vaultKeys, waitFor } from '../harness/sync.ts';
import { type ServerProcess, spawnVaultServer } from '../harness/vault-server.ts';

describe('two server processes over one PostgreSQL', () => {
  let pg: Postgres;
  let s1: ServerProcess;
  let s2: ServerProcess;
  beforeAll(async () => {
    pg = await startPostgres();
    [s1, s2] = await Promise.all([
      spawnVaultServer({ port: await freePort(), databaseUrl: pg.url }),
      spawnVaultServer({ port: await freePort(), databaseUrl: pg.url }),
    ]);
  });
  afterAll(async () => {
    await s1?.stop();
    await s2?.stop();
    await pg?.stop();
  });

  it('serve one vault consistently: racing commits have exactly one winner, and live updates reach clients of both', async () => {
    const a = await device(s1.origin, 'a'); // talks to replica 1
    const b = new VaultClient(s2.origin, (await device(s2.origin, 'b')).device); // talks to replica 2
    const ra = await a.createVault();
    await a.push(ra, [{ body: { type: 'member.add', device: b.device.public } }]);
    const rb = new Replica(ra.vault);
    await b.pull(rb); // replica 2 serves what replica 1 wrote
    expect(rb.head).toEqual(ra.head);

    const heard: number[] = [];
    const ctl = new AbortController();
    const stream = b.events(ra.vault, (h) => heard.push(h.seq), ctl.signal); // on replica 2

    const keys = await vaultKeys(ra.vault);
    const [ta, tb] = [await login(s1.origin, a), await login(s2.origin, b)];
    let winners = 0;
    for (let round = 0; round < 10; round++) {
      await a.pull(ra);
      await b.pull(rb);
      const bodies = await Promise.all([putItem(keys, ra, `a${round}`, 'sk-FAKE-a'), putItem(keys, rb, `b${round}`, 'sk-FAKE-b')]);
      const reqs = await Promise.all(
        [
          [a, ra, bodies[0], s1.origin, ta],
          [b, rb, bodies[1], s2.origin, tb],
        ].map(async ([c, r, p, origin, token]) => {
          const client = c as VaultClient;
          const rep = r as Replica;
          const pending = p as (typeof bodies)[0];
          const e = await signEntry(
            nextEntry(rep.membership as NonNullable<Replica['membership']>, client.device.public.id, pending.body),
            client.device.sign,
          );
          const blob = pending.body.type === 'item.put' ? pending.body.blob : '';
          return {
            origin: origin as string,
            token: token as string,
            body: { expect: rep.head, entries: [e], blobs: { [blob]: Buffer.from(pending.blob as Uint8Array).toString('base64') } },
          };
        }),
      );
      const statuses = await Promise.all(
        reqs.map((x) => post(x.origin, `/v1/vaults/${ra.vault}/commits`, x.body, x.token).then((r) => r.status)),
      );
      expect(statuses.sort()).toEqual([200, 409]);
      winners++;
    }
    expect(winners).toBe(10);
    await a.pull(ra);
    await b.pull(rb);
    expect(rb.head).toEqual(ra.head);
    expect(ra.seq).toBe(12);
    // Replica 2's stream heard commits that went through replica 1 (LISTEN/NOTIFY).
    await waitFor(() => heard.includes(12));
    ctl.abort();
    await stream;
    // A session is a database row, good on either replica.
    expect((await fetch(`${s2.origin}/v1/vaults`, { headers: { authorization: `Bearer ${ta}` } })).status).toBe(200);
  });
});

describe('a server killed in the middle of a commit', () => {
  it('the client retries: nothing lost, nothing duplicated, whether or not the commit had landed', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'keyhole-kill-'));
    const port = await freePort();
    let server = await spawnVaultServer({ port, dataDir });
    try {
      const origin = server.origin;
      let killAt: 'after-commit' | 'before-commit' | undefined;
      // The network as the client sees it: on the armed commit the server dies, and the answer never comes.
      const flaky: typeof fetch = async (input, init) => {
        const isCommit = String(input).endsWith('/commits');
        if (isCommit && killAt === 'before-commit') {
          killAt = undefined;
          await server.stop('SIGKILL');
          throw new TypeError('fetch failed');
        }
        const res = await fetch(input, init);
        if (isCommit && killAt === 'after-commit') {
          killAt = undefined;
          await server.stop('SIGKILL');
          throw new TypeError('fetch failed');
        }
        return res;
      };
      const a = new VaultClient(origin, (await device(origin, 'a')).device, { fetch: flaky });
      const ra = await a.createVault();
      const keys = await vaultKeys(ra.vault);

      for (const when of ['after-commit', 'before-commit'] as const) {
        const pending = [
          await putItem(keys, ra, `${when}-1`, `sk-FAKE-${when}-1`),
          await putItem(keys, ra, `${when}-2`, `sk-FAKE-${when}-2`),
        ];
        killAt = when;
        const err = await a.push(ra, pending).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SyncError);
        expect((err as SyncError).code).toBe('network');
        server = await spawnVaultServer({ port, dataDir }); // the operator restarts it
        await a.resume(ra, pending);
      }

      const fresh = new Replica(ra.vault);
      await new VaultClient(origin, a.device).pull(fresh);
      expect(fresh.head).toEqual(ra.head);
      expect(fresh.seq).toBe(5); // genesis + 2 edits x 2: each landed exactly once
      for (const item of ['after-commit-1', 'after-commit-2', 'before-commit-1', 'before-commit-2']) {
        expect(fresh.heads(item)).toHaveLength(1);
        expect(await values(keys, fresh, item)).toEqual([`sk-FAKE-${item}`]);
      }
    } finally {
      await server.stop();
    }
  });
});
