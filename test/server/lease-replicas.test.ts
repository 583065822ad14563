/**
 * Two distant vault replicas as real processes over one PostgreSQL (issue 15): 1,000 leases expire
 * while both sweep; one replica is killed (SIGKILL) in the middle of it. What the killed replica
 * had claimed is taken over by the other once its claim times out. Two engines:
 *
 * - llm-keys: every key is deleted at the (local) provider exactly once, none missed;
 * - postgres: 1,000 real roles on a target cluster that logs its DDL; every role is dropped by
 *   exactly one DROP ROLE (a revocation retried after the kill finds its role gone and issues
 *   none), none is left, and no lease is left unrevoked.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EntryBody } from '../../src/core/sync/log.ts';
import { engineVault, sealRoot } from '../harness/engines.ts';
import { type OpenAiAdmin, startOpenAiAdmin } from '../harness/openai-admin.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { freePort } from '../harness/servers.ts';
import { login, post } from '../harness/sync.ts';
import { type ServerProcess, spawnVaultServer } from '../harness/vault-server.ts';

const LEASES = 1000;

describe('lease sweeping across replicas', () => {
  let db: Postgres;
  let replicas: ServerProcess[] = [];

  beforeAll(async () => {
    db = await startPostgres();
  });
  afterEach(async () => {
    for (const r of replicas) await r.stop().catch(() => {});
    replicas = [];
  });
  afterAll(async () => {
    await db?.stop();
  });

  /** Two replicas over the store, sharing one key file (replicas share their key provider). */
  async function startReplicas(): Promise<[ServerProcess, ServerProcess]> {
    const keyFile = join(mkdtempSync(join(tmpdir(), 'keyhole-replicas-')), 'keys.json');
    const flags = ['--sweep-interval-ms', '250', '--lease-claim-ms', '4000', '--max-leases-per-vault', '5000'];
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
    const [a, b] = replicas as [ServerProcess, ServerProcess];
    return [a, b];
  }

  /** An engine of `kind` with leases of 2 s, and LEASES of them issued through both replicas: their answers. */
  async function issueAll(
    [a, b]: [ServerProcess, ServerProcess],
    engine: (spki: string, vault: string) => Promise<EntryBody>,
  ): Promise<Record<string, unknown>[]> {
    const { spki } = (await (await fetch(`${a.origin}/v1/engine-key`)).json()) as { spki: string };
    expect(((await (await fetch(`${b.origin}/v1/engine-key`)).json()) as { spki: string }).spki).toBe(spki);
    const { admin, replica } = await engineVault(a.origin, spki, async (vault) => {
      const config = await engine(spki, vault);
      const name = (config as { engine: string }).engine;
      return [
        config,
        { type: 'engine.policy', engine: name, policy: { role: 'agent', members: ['*'], maxTtlSeconds: 2, maxLeasesPerDevice: 2000 } },
      ];
    });
    const name = ((await engine(spki, replica.vault)) as { engine: string }).engine;
    const sessions = [await login(a.origin, admin), await login(b.origin, admin)];
    const answers: Record<string, unknown>[] = [];
    for (let i = 0; i < LEASES; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(25, LEASES - i) }, async (_, j) => {
          const on = (i + j) % 2;
          const r = await post((on ? b : a).origin, `/v1/vaults/${replica.vault}/engines/${name}/token`, { role: 'agent' }, sessions[on]);
          expect(r.status).toBe(200);
          return (await r.json()) as Record<string, unknown>;
        }),
      );
      answers.push(...batch);
    }
    expect(new Set(answers.map((x) => x.leaseId)).size).toBe(LEASES);
    return answers;
  }

  /** Every lease row is revoked, in the end. */
  async function allRevoked(): Promise<void> {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const states = async () =>
        (await c.query<{ state: string; n: string }>('SELECT state, COUNT(*) AS n FROM leases GROUP BY state')).rows.map((r) => [
          r.state,
          Number(r.n),
        ]);
      await expect.poll(states, { timeout: 30_000 }).toEqual([['revoked', LEASES]]);
      await c.query('DELETE FROM leases'); // the next case counts its own
    } finally {
      await c.end();
    }
  }

  /** Kills `a` once the sweep has `started()`, and waits until it is `done()`; it was killed mid-sweep (not after). */
  async function killOneWhen(a: ServerProcess, started: () => boolean, done: () => boolean): Promise<void> {
    const deadline = Date.now() + 90_000;
    while (!started() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await a.stop('SIGKILL');
    expect(done()).toBe(false);
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  }

  it('llm-keys: 1,000 expiring leases, one replica killed mid-sweep: every key deleted exactly once, none missed', async () => {
    const openai: OpenAiAdmin = await startOpenAiAdmin();
    try {
      const both = await startReplicas();
      await issueAll(both, async (spki, vault) => ({
        type: 'engine.config',
        engine: 'agent-keys',
        kind: 'llm-keys',
        config: { provider: 'openai', apiBase: openai.apiBase, projectId: openai.projectId },
        sealed: await sealRoot(spki, vault, 'agent-keys', 'llm-keys', { adminKey: openai.adminKey }),
      }));
      expect(openai.live.size + openai.deleted.size).toBe(LEASES);
      await killOneWhen(
        both[0],
        () => openai.deleted.size >= 200,
        () => openai.deleted.size >= LEASES,
      );
      expect(openai.live.size).toBe(0);
      expect(openai.deleted.size).toBe(LEASES);
      expect([...openai.deleted.values()].filter((n) => n !== 1)).toEqual([]);
      await allRevoked();
    } finally {
      await openai.close();
    }
  }, 180_000);

  it('postgres: 1,000 expiring roles, one replica killed mid-sweep: each dropped by exactly one DROP ROLE, none left', async () => {
    // the target logs its DDL; the template sets no password, so the log holds none
    const target = await startPostgres({ password: 'FAKE-replicas-root', settings: { log_statement: 'ddl' } });
    const roles = new pg.Client({ connectionString: target.url });
    try {
      const both = await startReplicas();
      const answers = await issueAll(both, async (spki, vault) => ({
        type: 'engine.config',
        engine: 'orders-db',
        kind: 'postgres',
        config: {
          host: '127.0.0.1',
          port: target.port,
          database: 'postgres',
          defaultTtlSeconds: 10, // the policy caps leases at 2 s
          roles: { agent: { creation: ['CREATE ROLE "{{name}}" WITH LOGIN VALID UNTIL \'{{expiration}}\''] } },
        },
        sealed: await sealRoot(spki, vault, 'orders-db', 'postgres', { username: 'keyhole', password: 'FAKE-replicas-root' }),
      }));
      const names = answers.map((x) => (x.credential as { username: string }).username);
      expect(new Set(names).size).toBe(LEASES);
      await roles.connect();
      const left = async () =>
        Number((await roles.query<{ n: string }>("SELECT COUNT(*) AS n FROM pg_roles WHERE rolname LIKE 'kh\\_%'")).rows[0]?.n);
      let remaining = LEASES;
      const poll = setInterval(() => void left().then((n) => (remaining = n)), 100);
      try {
        await killOneWhen(
          both[0],
          () => remaining <= LEASES - 200,
          () => remaining === 0,
        );
      } finally {
        clearInterval(poll);
      }
      expect(await left()).toBe(0);
      const drops = new Map<string, number>();
      for (const m of target.log().matchAll(/statement: DROP ROLE IF EXISTS "(kh_[a-z0-9_]+)"/g))
        drops.set(m[1] as string, (drops.get(m[1] as string) ?? 0) + 1);
      expect(drops.size).toBe(LEASES);
      expect(names.filter((n) => drops.get(n) !== 1)).toEqual([]);
      expect(target.log()).not.toContain('FAKE-replicas-root');
      await allRevoked();
    } finally {
      await roles.end().catch(() => {});
      await target.stop();
    }
  }, 240_000);
});
