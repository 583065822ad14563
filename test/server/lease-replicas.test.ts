/**
 * Two distant vault replicas as real processes over one PostgreSQL (issue 15): 1,000 llm-keys
 * leases expire while both sweep; one replica is killed (SIGKILL) in the middle of it. Every key
 * is deleted at the provider exactly once and none is missed: what the killed replica had claimed
 * is taken over by the other once its claim times out.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineVault, sealRoot } from '../harness/engines.ts';
import { type OpenAiAdmin, startOpenAiAdmin } from '../harness/openai-admin.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { freePort } from '../harness/servers.ts';
import { login, post } from '../harness/sync.ts';
import { type ServerProcess, spawnVaultServer } from '../harness/vault-server.ts';

const LEASES = 1000;

describe('lease sweeping across replicas', () => {
  let db: Postgres;
  let openai: OpenAiAdmin;
  const replicas: ServerProcess[] = [];

  beforeAll(async () => {
    [db, openai] = await Promise.all([startPostgres(), startOpenAiAdmin()]);
    const keyFile = join(mkdtempSync(join(tmpdir(), 'keyhole-replicas-')), 'keys.json');
    const flags = ['--sweep-interval-ms', '250', '--lease-claim-ms', '4000', '--max-leases-per-vault', '5000'];
    // the first makes the key file; the second shares it (replicas share their key provider)
    for (let i = 0; i < 2; i++)
      replicas.push(
        await spawnVaultServer({
          port: await freePort(),
          databaseUrl: db.url,
          keyFile,
          extraArgs: flags,
          loginsPerMinute: 100_000,
          requestsPerMinute: 1_000_000,
        }),
      );
  });
  afterAll(async () => {
    for (const r of replicas) await r.stop().catch(() => {});
    await openai?.close();
    await db?.stop();
  });

  it('1,000 expiring leases, one replica killed mid-sweep: every key deleted exactly once, none missed', async () => {
    const [a, b] = replicas as [ServerProcess, ServerProcess];
    const { spki } = (await (await fetch(`${a.origin}/v1/engine-key`)).json()) as { spki: string };
    expect(((await (await fetch(`${b.origin}/v1/engine-key`)).json()) as { spki: string }).spki).toBe(spki);
    const { admin, replica } = await engineVault(a.origin, spki, async (vault) => [
      {
        type: 'engine.config',
        engine: 'agent-keys',
        kind: 'llm-keys',
        config: { provider: 'openai', apiBase: openai.apiBase, projectId: openai.projectId },
        sealed: await sealRoot(spki, vault, 'agent-keys', 'llm-keys', { adminKey: openai.adminKey }),
      },
      {
        type: 'engine.policy',
        engine: 'agent-keys',
        policy: { role: 'agent', members: ['*'], maxTtlSeconds: 2, maxLeasesPerDevice: 2000 },
      },
    ]);

    // 1,000 leases of 2 s, through both replicas
    const sessions = [await login(a.origin, admin), await login(b.origin, admin)];
    const ids: string[] = [];
    for (let i = 0; i < LEASES; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(25, LEASES - i) }, async (_, j) => {
          const on = (i + j) % 2;
          const r = await post(
            (on ? b : a).origin,
            `/v1/vaults/${replica.vault}/engines/agent-keys/token`,
            { role: 'agent' },
            sessions[on],
          );
          expect(r.status).toBe(200);
          return ((await r.json()) as { leaseId: string }).leaseId;
        }),
      );
      ids.push(...batch);
    }
    expect(new Set(ids).size).toBe(LEASES);
    expect(openai.live.size + [...openai.deleted.values()].length).toBe(LEASES);

    // kill one replica while the sweep is under way
    const deadline = Date.now() + 60_000;
    while (openai.deleted.size < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await a.stop('SIGKILL');
    while (openai.deleted.size < LEASES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));

    expect(openai.live.size).toBe(0);
    expect(openai.deleted.size).toBe(LEASES);
    expect([...openai.deleted.values()].filter((n) => n !== 1)).toEqual([]);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const states = async () =>
      (await c.query<{ state: string; n: string }>('SELECT state, COUNT(*) AS n FROM leases GROUP BY state')).rows.map((r) => [
        r.state,
        Number(r.n),
      ]);
    await expect.poll(states, { timeout: 20_000 }).toEqual([['revoked', LEASES]]);
    await c.end();
  }, 120_000);
});
