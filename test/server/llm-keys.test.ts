/**
 * The `llm-keys` engine against a local server shaped like OpenAI's organization admin API
 * (issue 15): each agent lease creates a project service account key there, and the key is
 * deleted at lease end: on revoke, at expiry by the sweeper, during a provider outage once it is
 * back, and after the server crashed holding live leases (a new server on the same store sweeps
 * them). The admin key never leaves the sealed root credential; the minted key goes to the device.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VaultClient } from '../../src/background/sync/vault-client.ts';
import type { EngineRoutes } from '../../src/server/engines/routes.ts';
import { FileKeyProvider } from '../../src/server/kms/file-provider.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import { engineVault, sealRoot } from '../harness/engines.ts';
import { gate } from '../harness/gate.ts';
import { type OpenAiAdmin, startOpenAiAdmin } from '../harness/openai-admin.ts';
import { freePort } from '../harness/servers.ts';
import { device, login, post, until } from '../harness/sync.ts';
import { type RunningServer, spawnVaultServer, startVaultServer } from '../harness/vault-server.ts';

/** The id of the first account the provider holds that is not in `known` (one being made now). */
async function newKey(known: ReadonlySet<string>, openai: OpenAiAdmin): Promise<string> {
  const made = () => [...openai.live.keys()].find((id) => !known.has(id));
  await until(async () => made() !== undefined, 10_000, 'a new key');
  return made() as string;
}

describe('the llm-keys engine', () => {
  let openai: OpenAiAdmin;
  let dir: string;
  let kms: FileKeyProvider;
  let srv: RunningServer;
  let offset = 0;
  const now = () => Date.now() + offset;
  let member: VaultClient;
  let vault = '';
  const limits = { loginsPerMinute: 100_000, requestsPerMinute: 1_000_000, clockSkewMs: 3_600_000 };
  const engines = () => srv.engines as EngineRoutes;
  const mint = async () => {
    const r = await post(
      srv.origin,
      `/v1/vaults/${vault}/engines/agent-keys/token`,
      { role: 'agent', ttlSeconds: 30 },
      await login(srv.origin, member),
    );
    expect(r.status).toBe(200);
    return (await r.json()) as { leaseId: string; credential: { apiKey: string; keyId: string } };
  };

  beforeAll(async () => {
    openai = await startOpenAiAdmin();
    dir = mkdtempSync(join(tmpdir(), 'keyhole-llmkeys-'));
    kms = new FileKeyProvider(join(dir, 'keys.json'), { create: true });
    await kms.init();
    srv = await startVaultServer(openSqlite(dir), limits, { kms, now, sweepIntervalMs: 0 });
    member = await device(srv.origin, 'agent');
    ({ vault } = await engineVault(
      srv.origin,
      (await kms.status()).engineKey,
      async (v) => [
        {
          type: 'engine.config',
          engine: 'agent-keys',
          kind: 'llm-keys',
          config: { provider: 'openai', apiBase: openai.apiBase, projectId: openai.projectId },
          sealed: await sealRoot((await kms.status()).engineKey, v, 'agent-keys', 'llm-keys', { adminKey: openai.adminKey }),
        },
        {
          type: 'engine.policy',
          engine: 'agent-keys',
          policy: { role: 'agent', members: ['*'], maxTtlSeconds: 60, maxLeasesPerDevice: 50 },
        },
      ],
      [member],
    ));
  });
  afterAll(async () => {
    await srv?.close();
    await openai?.close();
  });

  it('a lease creates a key at the provider; revoking the lease deletes it there, once', async () => {
    const lease = await mint();
    expect(openai.live.get(lease.credential.keyId)).toBe(lease.credential.apiKey);
    const r = await post(srv.origin, `/v1/leases/${lease.leaseId}/revoke`, {}, await login(srv.origin, member));
    expect(r.status).toBe(200);
    expect(openai.live.has(lease.credential.keyId)).toBe(false);
    expect(openai.deleted.get(lease.credential.keyId)).toBe(1);
  });

  it('at expiry the sweeper deletes the key; during an outage it retries and deletes it when the provider is back', async () => {
    const a = await mint();
    const b = await mint();
    openai.down = true;
    offset += 31_000;
    await engines().sweeper.sweepOnce();
    expect([openai.live.has(a.credential.keyId), openai.live.has(b.credential.keyId)]).toEqual([true, true]);
    expect((await srv.store.leases.get(a.leaseId))?.state).toBe('revoking');
    openai.down = false;
    offset += 2_000;
    await engines().sweeper.sweepOnce();
    expect([openai.deleted.get(a.credential.keyId), openai.deleted.get(b.credential.keyId)]).toEqual([1, 1]);
  });

  it('after a crash with live leases, a new server on the same store deletes their keys at expiry', async () => {
    const held = [await mint(), await mint(), await mint()];
    await srv.close(); // the server goes away holding three live leases
    srv = await startVaultServer(openSqlite(dir), limits, { kms: new FileKeyProvider(join(dir, 'keys.json')), now, sweepIntervalMs: 0 });
    offset += 31_000;
    await engines().sweeper.sweepOnce();
    expect(held.map((l) => openai.deleted.get(l.credential.keyId))).toEqual([1, 1, 1]);
    expect(held.some((l) => openai.live.has(l.credential.keyId))).toBe(false);
    const logs = srv.logs.join('\n');
    for (const l of held) expect(logs).not.toContain(l.credential.apiKey);
    expect(logs).not.toContain(openai.adminKey);
  });

  it('a server killed after the provider made a key, before it recorded the key’s id: the next server’s sweeper deletes the key by its name', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'keyhole-llmkeys-crash-'));
    const keyFile = join(dataDir, 'keys.json');
    const doomed = await spawnVaultServer({ port: await freePort(), dataDir, keyFile, loginsPerMinute: 100_000, quiet: true });
    const agent = await device(doomed.origin, 'agent');
    const { spki } = (await (await fetch(`${doomed.origin}/v1/engine-key`)).json()) as { spki: string };
    const crashVault = (
      await engineVault(
        doomed.origin,
        spki,
        async (v) => [
          {
            type: 'engine.config',
            engine: 'agent-keys',
            kind: 'llm-keys',
            config: { provider: 'openai', apiBase: openai.apiBase, projectId: openai.projectId },
            sealed: await sealRoot(spki, v, 'agent-keys', 'llm-keys', { adminKey: openai.adminKey }),
          },
          { type: 'engine.policy', engine: 'agent-keys', policy: { role: 'agent', members: ['*'], maxTtlSeconds: 60 } },
        ],
        [agent],
      )
    ).vault;
    const answer = gate();
    openai.holdCreates = answer.promise;
    const known = new Set(openai.live.keys());
    const asked = post(
      doomed.origin,
      `/v1/vaults/${crashVault}/engines/agent-keys/token`,
      { role: 'agent' },
      await login(doomed.origin, agent),
    ).catch(
      () => undefined, // the server dies before it answers
    );
    const made = await newKey(known, openai);
    await doomed.stop('SIGKILL');
    answer.open();
    openai.holdCreates = null;
    await asked;
    expect(openai.live.has(made)).toBe(true); // the key exists and no device holds it

    let later = 0;
    const next = await startVaultServer(openSqlite(dataDir), limits, {
      kms: new FileKeyProvider(keyFile),
      now: () => Date.now() + later,
      sweepIntervalMs: 0,
    });
    try {
      const [lease] = await next.store.leases.list(crashVault);
      expect([lease?.state, lease?.attempts]).toEqual(['revoking', 0]);
      later += 21_000; // past the two call timeouts its making may take
      await (next.engines as EngineRoutes).sweeper.sweepOnce();
      expect(openai.live.has(made)).toBe(false);
      expect(openai.deleted.get(made)).toBe(1);
      expect((await next.store.leases.get(lease?.id as string))?.state).toBe('revoked');
    } finally {
      await next.close();
    }
  });

  it('a key whose making outlasts its lease’s window: the sweeper deletes it by name, and the device gets no key', async () => {
    const answer = gate();
    openai.holdCreates = answer.promise;
    const known = new Set(openai.live.keys());
    const asked = post(srv.origin, `/v1/vaults/${vault}/engines/agent-keys/token`, { role: 'agent' }, await login(srv.origin, member));
    const made = await newKey(known, openai);
    offset += 21_000;
    await engines().sweeper.sweepOnce(); // the lease is claimed: its key, found by name, deleted
    expect(openai.live.has(made)).toBe(false);
    answer.open();
    openai.holdCreates = null;
    const r = await asked;
    expect([r.status, ((await r.json()) as { error: { code: string } }).error.code]).toEqual([503, 'engine-unavailable']);
    expect(openai.deleted.get(made)).toBe(1);
  });

  it('operators: /metrics counts leases by engine and state, mints and revocations; /readyz says which dependency fails', async () => {
    const lease = await mint(); // this server's own request, for the histogram
    await post(srv.origin, `/v1/leases/${lease.leaseId}/revoke`, {}, await login(srv.origin, member));
    const text = await (await fetch(`${srv.origin}/metrics`)).text();
    expect(text).toMatch(/^keyhole_leases\{engine="agent-keys",state="revoked"\} \d+$/m);
    expect(text).toMatch(/^keyhole_lease_revocations_total\{engine="agent-keys"\} \d+$/m);
    expect(text).toMatch(/^keyhole_request_duration_seconds_bucket\{code="2xx",route="engine\.token",le="0\.05"\} 1$/m);
    expect(text).toContain('# TYPE keyhole_request_duration_seconds histogram');
    expect(text).not.toContain(vault); // no vault ids, devices or keys in labels
    expect(text).not.toContain(openai.adminKey);
    expect(await (await fetch(`${srv.origin}/readyz`)).json()).toEqual({ ok: true, database: true, keyProvider: true });
    const broken = await startVaultServer(openSqlite(mkdtempSync(join(tmpdir(), 'keyhole-notready-'))), limits, {
      kms: new FileKeyProvider(join(dir, 'no-such-keys.json')),
      sweepIntervalMs: 0,
    });
    try {
      const r = await fetch(`${broken.origin}/readyz`);
      expect([r.status, await r.json()]).toEqual([503, { ok: false, database: true, keyProvider: false }]);
    } finally {
      await broken.close();
    }
  });
});
