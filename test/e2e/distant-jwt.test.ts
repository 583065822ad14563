/**
 * The distant vault's jwt engine used by the extension (issue 15): this browser's device creates
 * the vault (admin from genesis), syncs it to a real distant vault with a key provider, pins the
 * engine key after comparing its fingerprint, configures a jwt engine and a policy for itself, and
 * adds a `distant` secret naming the engine's role. An agent page then calls an API that verifies
 * every JWT through the distant vault's JWKS (jose), brokered and transparent, for more than two
 * token lifetimes and through a signing-key rotation: zero failures.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pg from 'pg';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyProvider } from '../../src/server/kms/file-provider.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import { type Harness, launch, OPTIONS, rpc, rpcOk } from '../harness/browser.ts';
import { callContinuously } from '../harness/continuous.ts';
import { type OpenAiAdmin, startOpenAiAdmin } from '../harness/openai-admin.ts';
import { startPostgres } from '../harness/postgres.ts';
import { grantForPeriod, request } from '../harness/provider.ts';
import { appServer, close, cors, listen } from '../harness/servers.ts';
import { type RunningServer, startVaultServer } from '../harness/vault-server.ts';

const AUDIENCE = 'https://orders.fake.example';
const TOKEN_S = 5;
const ROTATION_S = 10;

describe('a jwt engine of the distant vault, used by an agent page', () => {
  let srv: RunningServer;
  let kms: FileKeyProvider;
  let h: Harness;
  let options: Page;
  let agent: Page;
  let app: Awaited<ReturnType<typeof appServer>>;
  let base = '';
  const seen: { at: number; ok: boolean; kid?: string; via: string }[] = [];
  let api: Awaited<ReturnType<typeof listen>>;
  let apiHost = '';

  const ok = <T>(method: string, params?: unknown) => rpcOk<T>(options, method, params);

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyhole-distant-'));
    kms = new FileKeyProvider(join(dir, 'keys.json'), { create: true });
    await kms.init();
    srv = await startVaultServer(openSqlite(dir), { requestsPerMinute: 1_000_000, loginsPerMinute: 100_000 }, { kms });
    app = await appServer();
    // an API that takes only tokens it can verify through the distant vault's JWKS
    let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
    api = await listen(async (req, res) => {
      const { headers, answered } = cors(req, res, 'GET, OPTIONS');
      if (answered) return;
      const url = new URL(req.url ?? '/', 'http://x');
      const token = /^Bearer (\S+)$/.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
      let good = false;
      let kid: string | undefined;
      try {
        jwks ??= createRemoteJWKSet(new URL(`${base}/jwks.json`));
        await jwtVerify(token, jwks, { issuer: base, audience: AUDIENCE, algorithms: ['ES256'] });
        kid = decodeProtectedHeader(token).kid;
        good = true;
      } catch {
        good = false;
      }
      seen.push({ at: Date.now(), ok: good, ...(kid ? { kid } : {}), via: url.searchParams.get('via') ?? '' });
      res.writeHead(good ? 200 : 401, { ...headers, 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: good }));
    });
    apiHost = `localhost:${(api.address() as { port: number }).port}`;

    h = await launch();
    options = await h.open(OPTIONS);
    await ok('vault.create', { passphrase: 'distant test passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await ok('settings.set', { requestsPerMinute: 100_000 });
    await ok('sync.enable', { server: srv.origin, deviceName: 'agent browser' });
    agent = await h.context.newPage();
    await agent.goto(`http://127.0.0.1:${app.port}/`);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([srv?.close(), app?.close(), api ? close(api) : undefined]);
  });

  it('an admin pins the engine key only with the operator’s fingerprint, then configures the engine and a policy', async () => {
    const wrong = await rpc<{ ok: boolean; error?: { code: string; message: string } }>(options, 'engines.pinKey', {
      fingerprint: '0000 1111 2222 3333',
    });
    expect(wrong.ok).toBe(false);
    expect(wrong.error?.message).toContain('nothing was pinned');
    const { engineFingerprint } = await kms.status();
    let team = await ok<{ me: string; engineKeyFingerprint?: string; members: { id: string; roles: string[] }[] }>('engines.pinKey', {
      fingerprint: engineFingerprint,
    });
    expect(team.engineKeyFingerprint).toBe(engineFingerprint);
    expect(team.members.find((m) => m.id === team.me)?.roles).toEqual(['admin']);
    await ok('engines.configure', {
      engine: 'orders-api',
      kind: 'jwt',
      config: { audience: AUDIENCE, tokenMaxSeconds: 10, rotationSeconds: ROTATION_S, roles: { caller: { scope: 'orders:read' } } },
    });
    // what does not hold is refused on the admin's own device, saying why, before anything is signed
    const tooLong = await rpc<{ ok: boolean; error?: { code: string; message: string } }>(options, 'engines.setPolicy', {
      engine: 'orders-api',
      policy: { role: 'caller', members: [team.me], maxTtlSeconds: 11 },
    });
    expect(tooLong.error).toEqual({
      code: 'bad-input',
      message: "engine orders-api: role caller: maxTtlSeconds 11 is above the engine's tokenMaxSeconds 10",
    });
    const rootless = await rpc<{ ok: boolean; error?: { code: string; message: string } }>(options, 'engines.configure', {
      engine: 'keys',
      kind: 'llm-keys',
      config: { provider: 'openai', apiBase: 'https://api.openai.example/v1', projectId: 'proj_FAKE' },
      rootCredential: { apiKey: 'sk-FAKE-not-the-admin-key-field' },
    });
    expect(rootless.error?.message).toBe('llm-keys engine: the root credential is {adminKey}');
    team = await ok('engines.setPolicy', {
      engine: 'orders-api',
      policy: { role: 'caller', members: [team.me], maxTtlSeconds: TOKEN_S },
    });
    expect((await ok<{ engines: { name: string }[] }>('team.view')).engines.map((e) => e.name)).toEqual(['orders-api']);
    const vault = (await ok<{ vault?: string }>('sync.status')).vault;
    base = `${srv.origin}/v1/vaults/${vault}/engines/orders-api`;
    expect((await (await fetch(`${base}/.well-known/openid-configuration`)).json()).issuer).toBe(base);
  });

  it('an agent page calls the API with the engine’s tokens, brokered and transparent, over two lifetimes and a key rotation: zero failures', async () => {
    await ok('secrets.create', {
      name: 'orders',
      kind: 'distant',
      distant: { engine: 'orders-api', role: 'caller' },
      rule: { hosts: [apiHost], header: 'Authorization', template: 'Bearer {value}' },
      material: {},
    });
    for (const mode of ['broker', 'transparent'] as const)
      expect((await grantForPeriod(h.context, agent, { secrets: ['orders'], mode })).ok).toBe(true);
    const started = Date.now();
    const outcomes = await callContinuously(agent, apiHost, 'orders', (ROTATION_S + 4) * 1000, ['broker', 'transparent']);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(outcomes.filter((o) => o.mode === 'transparent').length).toBeGreaterThan(20);
    const during = seen.filter((s) => s.at >= started);
    expect(during.filter((s) => !s.ok)).toEqual([]);
    expect(new Set(during.map((s) => s.kid)).size).toBeGreaterThanOrEqual(2); // signed by two keys: a rotation happened
    expect((Date.now() - started) / 1000 / TOKEN_S).toBeGreaterThan(2);
  });

  /** An llm-keys engine on the local provider, a policy giving this device its `agent` role, and a distant secret of it for `llmHost`. */
  async function llmKeysSecret(
    openai: OpenAiAdmin,
    llmHost: string,
    o: { engine: string; secret: string; maxTtlSeconds: number; ttlSeconds?: number },
  ): Promise<void> {
    const me = (await ok<{ me: string }>('team.view')).me;
    await ok('engines.configure', {
      engine: o.engine,
      kind: 'llm-keys',
      config: { provider: 'openai', apiBase: openai.apiBase, projectId: openai.projectId },
      rootCredential: { adminKey: openai.adminKey },
    });
    await ok('engines.setPolicy', { engine: o.engine, policy: { role: 'agent', members: [me], maxTtlSeconds: o.maxTtlSeconds } });
    await ok('secrets.create', {
      name: o.secret,
      kind: 'distant',
      distant: { engine: o.engine, role: 'agent', ...(o.ttlSeconds ? { ttlSeconds: o.ttlSeconds } : {}) },
      rule: { hosts: [llmHost], header: 'Authorization', template: 'Bearer {value}' },
      material: {},
    });
  }

  it('an llm-keys engine: the agent’s calls carry a key minted under a lease; lock deletes it at the provider', async () => {
    const openai: OpenAiAdmin = await startOpenAiAdmin();
    const { llm, llmHost } = await llmApi(openai);
    try {
      await llmKeysSecret(openai, llmHost, { engine: 'agent-keys', secret: 'llm', maxTtlSeconds: 600 });
      expect((await grantForPeriod(h.context, agent, { secrets: ['llm'], mode: 'broker' })).ok).toBe(true);
      const outcomes = await callContinuously(agent, llmHost, 'llm', 1500, ['broker']);
      expect(outcomes.length).toBeGreaterThan(3);
      expect(outcomes.filter((o) => !o.ok)).toEqual([]);
      expect(openai.live.size).toBe(1); // one key, minted once, used by every call
      const { leases } = await ok<{ leases: { engine: string; state: string }[] }>('leases.list');
      expect(leases.filter((l) => l.engine === 'agent-keys' && l.state === 'active')).toHaveLength(1);
      // the admin key went to the server sealed: nowhere in the log a member pulls
      expect(JSON.stringify(await ok('team.view'))).not.toContain(openai.adminKey);

      await ok('vault.lock');
      await expect.poll(() => openai.live.size, { timeout: 10_000 }).toBe(0);
      expect([...openai.deleted.values()]).toEqual([1]);
      await ok('vault.unlock', { passphrase: 'distant test passphrase FAKE' });
    } finally {
      await close(llm);
      await openai.close();
    }
  });

  it('a leased key in use is renewed, not minted again, up to its maximum, then replaced; ending its grant revokes its lease', async () => {
    const openai: OpenAiAdmin = await startOpenAiAdmin();
    const { llm, llmHost } = await llmApi(openai);
    const minted = () => openai.requests.filter((r) => r.method === 'POST' && r.status === 200).length;
    try {
      await llmKeysSecret(openai, llmHost, { engine: 'short-keys', secret: 'llm-short', maxTtlSeconds: 12, ttlSeconds: 5 });
      expect((await grantForPeriod(h.context, agent, { secrets: ['llm-short'], mode: 'broker' })).ok).toBe(true);
      const outcomes = await callContinuously(agent, llmHost, 'llm-short', 13_000, ['broker']);
      expect(outcomes.filter((o) => !o.ok)).toEqual([]);
      // 5 s leases refreshed at 75-90 % for 13 s: renewed up to the 12 s maximum, then one new lease (not one per 4 s)
      expect(minted()).toBe(2);
      const { leases } = await ok<{ leases: { engine: string; state: string; issued: number; expires: number }[] }>('leases.list');
      const mine = leases.filter((l) => l.engine === 'short-keys').sort((a, b) => a.issued - b.issued);
      expect(mine).toHaveLength(2);
      expect((mine[0] as { expires: number }).expires - (mine[0] as { issued: number }).issued).toBeGreaterThan(5000); // renewed past its first 5 s

      // the grant ends: its lease is revoked now, before it would have expired
      const current = mine[1] as { expires: number; state: string };
      expect(current.state).toBe('active');
      const newest = [...openai.live.keys()].at(-1) as string;
      const grants = await ok<{ id: string; secret: string }[]>('grants.list');
      for (const g of grants.filter((x) => x.secret === 'llm-short')) await ok('grants.revoke', { id: g.id });
      await expect.poll(() => openai.live.has(newest), { timeout: 2500 }).toBe(false);
      expect(Date.now()).toBeLessThan(current.expires);
    } finally {
      await close(llm);
      await openai.close();
    }
  });

  it('a database login is never injected: the person reveals one (passphrase again), it works, and lock ends it', async () => {
    const target = await startPostgres({ password: 'FAKE-e2e-root' });
    try {
      const me = (await ok<{ me: string }>('team.view')).me;
      await ok('engines.configure', {
        engine: 'orders-db',
        kind: 'postgres',
        config: {
          host: '127.0.0.1',
          port: target.port,
          database: 'postgres',
          defaultTtlSeconds: 600,
          roles: { reader: { creation: ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"] } },
        },
        rootCredential: { username: 'keyhole', password: 'FAKE-e2e-root' },
      });
      await ok('engines.setPolicy', { engine: 'orders-db', policy: { role: 'reader', members: [me], maxTtlSeconds: 900 } });
      const s = await ok<{ id: string }>('secrets.create', {
        name: 'orders-db',
        kind: 'distant',
        distant: { engine: 'orders-db', role: 'reader' },
        rule: { hosts: [apiHost], header: 'Authorization', template: 'Bearer {value}' },
        material: {},
      });
      // an agent asking for it gets a refusal, not a login
      expect((await grantForPeriod(h.context, agent, { secrets: ['orders-db'], mode: 'broker' })).ok).toBe(true);
      const refused = await request(agent, 'keyhole_fetch', { secret: 'orders-db', url: `http://${apiHost}/v1/ping` });
      expect(refused.ok === false && [refused.error.code, refused.error.data]).toEqual([4402, { reason: 'distant-refused' }]);
      // the person reveals one
      const wrong = await rpc<{ ok: boolean }>(options, 'secrets.reveal', { id: s.id, passphrase: 'FAKE wrong passphrase' });
      expect(wrong.ok).toBe(false);
      const { value } = await ok<{ value: string }>('secrets.reveal', { id: s.id, passphrase: 'distant test passphrase FAKE' });
      const url = /^(postgresql:\/\/\S+)/.exec(value)?.[1] ?? '';
      expect(url).toMatch(/^postgresql:\/\/kh_reader_[0-9a-f]{12}:/);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      expect((await c.query('SELECT current_user AS u')).rows[0].u).toMatch(/^kh_reader_/);
      await c.end();
      await ok('vault.lock');
      const login = async () => {
        const after = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
        after.on('error', () => {});
        return after.connect().then(
          () => after.end().then(() => 'logged in'),
          (e: Error) => e.message,
        );
      };
      await expect.poll(login, { timeout: 10_000 }).toMatch(/password authentication failed|does not exist/);
      await ok('vault.unlock', { passphrase: 'distant test passphrase FAKE' });
    } finally {
      await target.stop();
    }
  });
});

/** An API that takes only keys live at the (local) provider. */
async function llmApi(openai: OpenAiAdmin) {
  const llm = await listen((req, res) => {
    const { headers, answered } = cors(req, res, 'GET, OPTIONS');
    if (answered) return;
    const key = /^Bearer (\S+)$/.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
    const good = [...openai.live.values()].includes(key);
    res.writeHead(good ? 200 : 401, { ...headers, 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: good }));
  });
  return { llm, llmHost: `localhost:${(llm.address() as { port: number }).port}` };
}
