/**
 * The `postgres` engine against a real PostgreSQL that asks for passwords (issue 15): an admin
 * configures it with a root credential sealed to the engine key; a member device gets a role
 * under a lease that logs in and reads; revoked, it can no longer log in and its open session is
 * gone; with the target database down at expiry the revocation is retried and done once it is
 * back. Renewal stops at the policy's maximum; another device's lease, a template with a foreign
 * placeholder and a device over its lease cap are refused.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Replica } from '../../src/background/sync/replica.ts';
import type { SyncError, VaultClient } from '../../src/background/sync/vault-client.ts';
import type { EntryBody } from '../../src/core/sync/log.ts';
import type { EngineRoutes } from '../../src/server/engines/routes.ts';
import { FileKeyProvider } from '../../src/server/kms/file-provider.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import { engineVault, sealRoot } from '../harness/engines.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { device, login, post } from '../harness/sync.ts';
import { type RunningServer, startVaultServer } from '../harness/vault-server.ts';

const ROOT_PASSWORD = 'FAKE-root-password-9f3c';
const READ = [
  "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
  'GRANT SELECT ON orders TO "{{name}}"',
];

describe('the postgres engine', () => {
  let target: Postgres;
  let srv: RunningServer;
  let engines: EngineRoutes;
  let offset = 0;
  const now = () => Date.now() + offset;
  let admin: VaultClient;
  let member: VaultClient;
  let vault = '';
  let replica: Replica;
  let config: Record<string, unknown>;

  const connect = async (user: string, password: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port: target.port, database: 'app', user, password, connectionTimeoutMillis: 3000 });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  const token = async (who: VaultClient, body: unknown, engine = 'orders-db') =>
    post(srv.origin, `/v1/vaults/${vault}/engines/${engine}/token`, body, await login(srv.origin, who));
  const leaseCall = async (who: VaultClient, id: string, what: 'renew' | 'revoke', body: unknown = {}) =>
    post(srv.origin, `/v1/leases/${id}/${what}`, body, await login(srv.origin, who));

  beforeAll(async () => {
    target = await startPostgres({ password: ROOT_PASSWORD });
    const root = new pg.Client({ connectionString: target.url });
    await root.connect();
    await root.query('CREATE DATABASE app');
    await root.end();
    const app = new pg.Client({ connectionString: target.url.replace(/\/postgres$/, '/app') });
    await app.connect();
    await app.query("CREATE TABLE orders (id int, item text); INSERT INTO orders VALUES (1, 'FAKE widget')");
    await app.end();

    const dir = mkdtempSync(join(tmpdir(), 'keyhole-pgengine-'));
    const kms = new FileKeyProvider(join(dir, 'keys.json'), { create: true });
    await kms.init();
    srv = await startVaultServer(
      openSqlite(dir),
      { loginsPerMinute: 100_000, requestsPerMinute: 1_000_000, clockSkewMs: 3_600_000 },
      { kms, now, sweepIntervalMs: 0 },
    );
    engines = srv.engines as EngineRoutes;
    member = await device(srv.origin, 'agent');
    const engineKey = (await kms.status()).engineKey;
    config = { host: '127.0.0.1', port: target.port, database: 'app', defaultTtlSeconds: 60, roles: { reader: { creation: READ } } };
    ({ admin, vault, replica } = await engineVault(
      srv.origin,
      engineKey,
      async (v) => {
        const sealed = await sealRoot(engineKey, v, 'orders-db', 'postgres', { username: 'keyhole', password: ROOT_PASSWORD });
        return [
          { type: 'engine.config', engine: 'orders-db', kind: 'postgres', config, sealed },
          {
            type: 'engine.policy',
            engine: 'orders-db',
            policy: { role: 'reader', members: [member.device.public.id], maxTtlSeconds: 120, maxLeasesPerDevice: 3 },
          },
        ];
      },
      [member],
    ));
  });
  afterAll(async () => {
    await srv?.close();
    await target?.stop();
  });

  it('a leased role logs in and reads; revoked, it cannot log in and its open session is gone', async () => {
    const r = await token(member, { role: 'reader' });
    expect(r.status).toBe(200);
    const lease = (await r.json()) as { leaseId: string; expiresAt: number; credential: { username: string; password: string } };
    expect(lease.credential.username).toMatch(/^kh_reader_[0-9a-f]{12}$/);
    expect(lease.expiresAt - now()).toBeGreaterThan(55_000);
    const session = await connect(lease.credential.username, lease.credential.password);
    expect((await session.query('SELECT item FROM orders')).rows).toEqual([{ item: 'FAKE widget' }]);
    await expect(connect(lease.credential.username, 'FAKE-wrong')).rejects.toThrow(/password authentication failed/);

    expect((await leaseCall(admin, lease.leaseId, 'renew')).status).toBe(404); // not the admin's lease to renew
    expect((await leaseCall(member, lease.leaseId, 'revoke')).status).toBe(200);
    await expect(session.query('SELECT 1')).rejects.toThrow();
    await expect(connect(lease.credential.username, lease.credential.password)).rejects.toThrow(
      /password authentication failed|does not exist/,
    );
    await session.end().catch(() => {});
    const listed = (await (
      await fetch(`${srv.origin}/v1/vaults/${vault}/leases`, { headers: { authorization: `Bearer ${await login(srv.origin, member)}` } })
    ).json()) as {
      leases: { id: string; state: string }[];
    };
    expect(listed.leases.find((l) => l.id === lease.leaseId)?.state).toBe('revoked');
    expect(JSON.stringify(listed)).not.toContain(lease.credential.password);
  });

  it('renews up to the policy’s maximum TTL, then says to ask for a new one', async () => {
    const lease = (await (await token(member, { role: 'reader', ttlSeconds: 60 })).json()) as { leaseId: string; expiresAt: number };
    const renewed = (await (await leaseCall(member, lease.leaseId, 'renew', { ttlSeconds: 3600 })).json()) as {
      expiresAt: number;
      capped: boolean;
    };
    expect(renewed.capped).toBe(true);
    expect(renewed.expiresAt).toBeGreaterThan(lease.expiresAt);
    const again = await leaseCall(member, lease.leaseId, 'renew', { ttlSeconds: 3600 });
    expect([again.status, ((await again.json()) as { error: { code: string } }).error.code]).toEqual([409, 'max-ttl']);
    await leaseCall(member, lease.leaseId, 'revoke');
    await engines.sweeper.sweepOnce();
  });

  it('with the target database down at expiry, revocation is retried and done once it is back', async () => {
    const lease = (await (await token(member, { role: 'reader', ttlSeconds: 10 })).json()) as {
      leaseId: string;
      credential: { username: string; password: string };
    };
    await target.halt();
    offset += 11_000;
    await engines.sweeper.sweepOnce();
    const failing = await srv.store.leases.get(lease.leaseId);
    expect([failing?.state, failing?.lastError]).toEqual(['revoking', 'the target database cannot be reached']);
    await target.resume();
    offset += 2_000;
    await engines.sweeper.sweepOnce();
    expect((await srv.store.leases.get(lease.leaseId))?.state).toBe('revoked');
    await expect(connect(lease.credential.username, lease.credential.password)).rejects.toThrow(
      /password authentication failed|does not exist/,
    );
  });

  it('with the target database down, each issue fails clearly and leaves no live lease behind to count against the cap', async () => {
    const before = (await srv.store.leases.list(vault, member.device.public.id)).length;
    await target.halt();
    try {
      for (let i = 0; i < 4; i++) {
        const r = await token(member, { role: 'reader' }); // the policy's cap is 3: the fourth is refused alike
        expect([r.status, ((await r.json()) as { error: { code: string } }).error.code]).toEqual([503, 'engine-unavailable']);
      }
    } finally {
      await target.resume();
    }
    const tried = (await srv.store.leases.list(vault, member.device.public.id)).slice(before);
    expect(tried.map((l) => l.state)).toEqual(['revoked', 'revoked', 'revoked', 'revoked']);
    const lease = (await (await token(member, { role: 'reader' })).json()) as { leaseId: string };
    expect((await leaseCall(member, lease.leaseId, 'revoke')).status).toBe(200);
  });

  it('refuses at commit a template with a foreign placeholder and a policy for a role it has no statements for; a device over its lease cap', async () => {
    const refused = (body: EntryBody) =>
      admin.push(replica, [{ body }]).then(
        () => undefined,
        (e: unknown) => e as SyncError,
      );
    const badTemplate = await refused({
      type: 'engine.config',
      engine: 'bad-template',
      kind: 'postgres',
      config: { ...config, roles: { reader: { creation: ['CREATE ROLE "{{name}}" {{evil}}'] } } },
    });
    expect([badTemplate?.status, badTemplate?.message]).toEqual([
      400,
      'bad-engine-config: postgres engine: role reader: {{evil}} is not a placeholder (only {{name}}, {{password}}, {{expiration}})',
    ]);
    const noSuchRole = await refused({
      type: 'engine.policy',
      engine: 'orders-db',
      policy: { role: 'writer', members: ['*'], maxTtlSeconds: 60 },
    });
    expect(noSuchRole?.message).toBe(
      "bad-engine-config: engine orders-db: role writer: the engine's configuration has no creation statements for it",
    );
    // nothing of either landed, and the admin's next edit does
    expect(await token(member, { role: 'reader' }, 'bad-template').then((r) => r.status)).toBe(404);
    await admin.push(replica, [
      {
        body: {
          type: 'engine.policy',
          engine: 'orders-db',
          policy: { role: 'reader', members: [member.device.public.id], maxTtlSeconds: 120, maxLeasesPerDevice: 3 },
        },
      },
    ]);
    const held: string[] = [];
    for (let i = 0; i < 3; i++) held.push(((await (await token(member, { role: 'reader' })).json()) as { leaseId: string }).leaseId);
    const over = await token(member, { role: 'reader' });
    expect([over.status, ((await over.json()) as { error: { code: string } }).error.code]).toEqual([403, 'engine-not-allowed']);
    for (const id of held) await leaseCall(member, id, 'revoke');
    await engines.sweeper.sweepOnce();
  });
});
