/**
 * Three Chromium profiles in one team (issue 16): one synced vault on a real distant vault (its
 * own process on SQLite; or two replicas on PostgreSQL, the profiles spread over both), one OAuth
 * 2.0 client-credentials secret, an agent page in each profile
 * calling an API that verifies the token. The token endpoint is asked once per lifetime for the
 * whole team (the team tier, background/credentials/team-tier.ts), no call fails, the distant
 * vault's files hold no token, and its entries are gone once past their notAfter.
 */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pgModule from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TeamView } from '../../src/core/api.ts';
import { newProfileDir, OPTIONS } from '../harness/browser.ts';
import { callContinuously, type Outcome } from '../harness/continuous.ts';
import { type OAuthServer, RESOURCE, startOAuthServer } from '../harness/oauth2-server.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { grantForPeriod, request } from '../harness/provider.ts';
import { findAnyForm } from '../harness/scan.ts';
import { appServer, freePort } from '../harness/servers.ts';
import { call, type Device, formTeam, spread } from '../harness/team.ts';
import { startTokenApi, type TokenApi } from '../harness/token-api.ts';
import { type ServerProcess, spawnVaultServer } from '../harness/vault-server.ts';

const PASS = `FAKE-passphrase-${crypto.randomUUID().slice(0, 8)}`;
const TTL_S = 6;
const LIFETIMES = 3;
const RT_TTL_S = 3;

describe.each(['sqlite', 'postgres'] as const)('a team of three browsers sharing minted credentials (%s)', (engine) => {
  const servers: ServerProcess[] = [];
  let pg: Postgres | undefined;
  let as: OAuthServer;
  let api: TokenApi;
  /** the rotating refresh token's server: short lifetimes, so ten of them pass in 30 s */
  let rtServer: OAuthServer;
  let rtApi: TokenApi;
  let app: Awaited<ReturnType<typeof appServer>>;
  const devices: Device[] = [];
  const made: string[] = [];
  let dataDir: string;

  /** Rows of the distant vault's store (SQLite beside the running server, or PostgreSQL); `write`: a change behind the server's back. */
  async function query(sql: string, write = false): Promise<Record<string, unknown>[]> {
    if (pg) {
      const c = new pgModule.Client({ connectionString: pg.url });
      await c.connect();
      try {
        return (await c.query(sql)).rows;
      } finally {
        await c.end();
      }
    }
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(join(dataDir, 'keyhole.sqlite'), { readonly: !write, timeout: 5000 });
    try {
      const statement = db.prepare(sql);
      if (write) {
        statement.run();
        return [];
      }
      return statement.all() as Record<string, unknown>[];
    } finally {
      db.close();
    }
  }

  beforeAll(async () => {
    dataDir = newProfileDir('team-server-');
    made.push(dataDir);
    const limits = { loginsPerMinute: 10_000, requestsPerMinute: 1_000_000 };
    if (engine === 'sqlite') servers.push(await spawnVaultServer({ port: await freePort(), dataDir, ...limits }));
    else {
      pg = await startPostgres();
      const keyFile = join(dataDir, 'keys.json');
      for (let i = 0; i < 2; i++) servers.push(await spawnVaultServer({ port: await freePort(), databaseUrl: pg.url, keyFile, ...limits }));
    }
    /** the replica a device talks to: the profiles are spread over them */
    const serverOf = (i: number) => (servers[i % servers.length] as ServerProcess).origin;
    as = await startOAuthServer({ accessTokenTtlSeconds: TTL_S });
    rtServer = await startOAuthServer({ accessTokenTtlSeconds: RT_TTL_S });
    [api, rtApi, app] = await Promise.all([
      startTokenApi(as.issuer, as.jwksUrl, RESOURCE),
      startTokenApi(rtServer.issuer, rtServer.jwksUrl, RESOURCE),
      appServer(),
    ]);
    await formTeam(['one', 'two', 'three'], serverOf, PASS, devices);
    made.push(...devices.map((d) => d.profile));
    const [first, ...others] = devices as [Device, ...Device[]];
    await call(first, 'secrets.create', {
      name: 'orders',
      kind: 'oauth2-client-credentials',
      rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
      oauth2: { tokenEndpoint: as.tokenUrl, clientId: 'cc-basic', clientAuth: 'client_secret_basic', resource: RESOURCE },
      material: { clientSecret: as.secrets.basic },
    });
    await spread(first, others, ['orders']);
    for (const d of devices) {
      await d.agent.goto(`http://127.0.0.1:${app.port}/`);
      const g = await grantForPeriod(d.h.context, d.agent, { secrets: ['orders'], mode: 'broker' });
      if (!g.ok) throw new Error(`${d.name}: grant failed`);
    }
  }, 180_000);
  afterAll(async () => {
    for (const d of devices) await d.h.close().catch(() => {});
    for (const s of servers) await s.stop();
    await pg?.stop();
    await Promise.all([as?.close(), api?.close(), rtServer?.close(), rtApi?.close(), app?.close()]);
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  });

  it(`agent pages in all three call the API for ${LIFETIMES} token lifetimes: one token request per lifetime in total, no failure`, async () => {
    const before = as.tokenRequests.byGrant.client_credentials ?? 0;
    const started = Date.now();
    const outcomes: Outcome[][] = await Promise.all(
      devices.map((d) => callContinuously(d.agent, api.host, 'orders', LIFETIMES * TTL_S * 1000, ['broker'])),
    );
    const elapsed = Date.now() - started;
    for (const o of outcomes) {
      expect(o.filter((x) => !x.ok)).toEqual([]);
      expect(o.length).toBeGreaterThan(10);
    }
    const asked = (as.tokenRequests.byGrant.client_credentials ?? 0) - before;
    // a token refreshed at 75-90% of its life: at most one request per 0.75 lifetime, plus the first;
    // three browsers minting each for themselves would ask three times that
    expect(asked).toBeGreaterThanOrEqual(LIFETIMES);
    expect(asked).toBeLessThanOrEqual(Math.ceil(elapsed / (0.75 * TTL_S * 1000)) + 1);
    expect(api.requests.filter((r) => !r.ok)).toEqual([]);
  }, 120_000);

  it('a rotating refresh token shared by the three, refreshed by all at once, for ten lifetimes: never spent twice, its family valid', async () => {
    const [first, ...others] = devices as [Device, ...Device[]];
    await call(first, 'secrets.create', {
      name: 'rt',
      kind: 'oauth2-refresh-token',
      rule: { hosts: [rtApi.host], header: 'Authorization', template: 'Bearer {value}' },
      oauth2: { tokenEndpoint: rtServer.tokenUrl, clientId: 'rt-client', clientAuth: 'client_secret_basic' },
      material: { clientSecret: rtServer.secrets.rt, refreshToken: await rtServer.mintRefreshToken() },
    });
    await spread(first, others, ['rt']);
    for (const d of devices) {
      const g = await grantForPeriod(d.h.context, d.agent, { secrets: ['rt'], mode: 'broker' });
      if (!g.ok) throw new Error(`${d.name}: grant failed`);
    }
    const ms = 10 * RT_TTL_S * 1000;
    const calls = Promise.all(devices.map((d) => callContinuously(d.agent, rtApi.host, 'rt', ms, ['broker'])));
    // besides their own timers (each at 75-90% of a lifetime), all three ask for a refresh at the
    // same moment, as often as keyhole_refresh allows (once per 10 s)
    const forced: boolean[] = [];
    const start = Date.now();
    for (const at of [2_000, 12_500, 23_000]) {
      await new Promise((r) => setTimeout(r, Math.max(0, start + at - Date.now())));
      const answers = await Promise.all(devices.map((d) => request(d.agent, 'keyhole_refresh', { secret: 'rt' })));
      forced.push(...answers.map((a) => a.ok));
    }
    const outcomes = await calls;
    for (const o of outcomes) expect(o.filter((x) => !x.ok)).toEqual([]);
    expect(forced.every(Boolean)).toBe(true);
    expect(rtServer.grantErrors).toEqual({}); // no refresh token was ever refused: none was reused
    const refreshes = rtServer.tokenRequests.byGrant.refresh_token ?? 0;
    expect(refreshes).toBeGreaterThanOrEqual(10);
    expect(rtServer.issued.refreshTokens.size).toBe(refreshes + 1); // the first, and one rotated in by each refresh
    expect(rtApi.requests.filter((r) => !r.ok)).toEqual([]);
  }, 120_000);

  it('an admin manages roles, the engine key, an engine and its policy in the options page; what does not hold is refused', async () => {
    const [first, second] = devices as [Device, Device];
    const page = await first.h.open(`${OPTIONS}#sync`);
    const team = () => call<TeamView>(first, 'team.view');
    // roles: this device (the creator, an admin) takes the audit role too
    await page.locator('#roles tr', { hasText: 'one (this device)' }).locator('input[data-role="audit"]').check();
    await expect
      .poll(async () => (await team()).members.find((m) => m.name === 'one')?.roles, { timeout: 15_000 })
      .toEqual(['admin', 'audit']);
    // the engine key, pinned with the fingerprint the operator read
    const { fingerprint } = (await (await fetch(`${servers[0]?.origin}/v1/engine-key`)).json()) as { fingerprint: string };
    await page.locator('#pin-engine-key input').fill(fingerprint);
    await page.locator('#pin-engine-key button').click();
    await expect.poll(() => page.locator('#engine-key code').textContent(), { timeout: 15_000 }).toBe(fingerprint);
    // an engine and a policy
    const form = page.locator('#configure-engine');
    await form.getByLabel('Engine name').fill('api-tokens');
    await form.getByLabel('Kind').selectOption('jwt');
    await form.getByLabel('Configuration (JSON)').fill('{"audience": "https://api.team.example", "tokenMaxSeconds": 600}');
    await form.getByRole('button', { name: 'Save the engine' }).click();
    // It failed once in CI (the engine never drawn in 30 s) with no clue: say what the page and the
    // worker showed if it happens again.
    await expect
      .poll(
        async () =>
          (await page
            .locator('[data-engine="api-tokens"] h4')
            .textContent({ timeout: 2_000 })
            .catch(() => null)) ?? '',
        {
          timeout: 30_000,
        },
      )
      .toContain('api-tokens (jwt)')
      .catch(async (e: unknown) => {
        const errors = await page.locator('#team-admin-errors').textContent({ timeout: 2_000 }).catch(String);
        const engines = await team().then((t) => t.engines.map((x) => x.name), String);
        throw new Error(`${String(e)}; the page said: ${JSON.stringify(errors)}; team.view engines: ${JSON.stringify(engines)}`);
      });
    const policy = page.locator('#engine-policy');
    await policy.getByLabel('Role').fill('caller');
    await policy.getByLabel('Max TTL (seconds)').fill('900'); // above the engine's 600
    await policy.getByRole('button', { name: 'Save the policy' }).click();
    await expect
      .poll(async () => (await page.locator('#team-admin-errors').textContent()) ?? '', { timeout: 15_000 })
      .toContain('above the engine');
    await policy.getByLabel('Max TTL (seconds)').fill('300');
    await policy.getByRole('button', { name: 'Save the policy' }).click();
    await expect
      .poll(async () => (await page.locator('[data-engine="api-tokens"] tr[data-policy="caller"]').textContent()) ?? '', {
        timeout: 15_000,
      })
      .toContain('every member');
    expect((await team()).engines.find((e) => e.name === 'api-tokens')?.policies).toEqual([
      { role: 'caller', members: ['*'], maxTtlSeconds: 300 },
    ]);
    // another member sees it all, and changes nothing
    await call(second, 'sync.now');
    const theirs = await second.h.open(`${OPTIONS}#sync`);
    await expect.poll(() => theirs.locator('#engine-key code').textContent(), { timeout: 15_000 }).toBe(fingerprint);
    expect(await theirs.locator('#roles input:not([disabled])').count()).toBe(0);
    expect(await theirs.locator('#configure-engine').count()).toBe(0);
    await Promise.all([page.close(), theirs.close()]);
  }, 90_000);

  it('team audit: the records of all three devices appear in one view, each with its device, every chain intact', async () => {
    const [first] = devices as [Device]; // the audit role: granted in the options page by the test before
    for (const d of devices) await call(d, 'sync.now'); // each pushes its records
    const view = await call<{
      entries: { device: string; deviceName: string; record: { kind: string; secret?: string } }[];
      chains: { deviceName: string; findings: unknown[]; through: number }[];
    }>(first, 'team.audit');
    expect(view.chains.map((c) => c.deviceName).sort()).toEqual(['one', 'three', 'two']);
    expect(view.chains.every((c) => c.findings.length === 0 && c.through > 10)).toBe(true);
    for (const name of ['one', 'two', 'three'])
      expect(
        view.entries.filter((e) => e.deviceName === name && e.record.kind === 'request' && e.record.secret === 'orders').length,
      ).toBeGreaterThan(10);
    // the options page shows it to the person
    const page = await first.h.open(`${OPTIONS}#audit`);
    await expect.poll(() => page.locator('#team-audit-table tbody tr').count(), { timeout: 15_000 }).toBeGreaterThan(30);
    const shownDevices = await page.locator('#team-audit-table tbody tr td:nth-child(2)').allTextContents();
    expect(new Set(shownDevices)).toEqual(new Set(['one', 'two', 'three']));
    const alerts = await page.locator('#team-audit-status [role="alert"]').allTextContents();
    expect(alerts.filter((a) => a.includes('cannot be trusted'))).toEqual([]); // every chain holds
    // the agents' calls, hundreds in seconds from one origin, are flagged across the team
    expect(alerts.some((a) => a.startsWith('Unusual use across the team') && a.includes('orders'))).toBe(true);
    await page.close();
  }, 60_000);

  it('team audit: a record the server drops is found and shown to the reader, naming the device', async () => {
    const [first] = devices as [Device];
    const view = await call<{ entries: { device: string; deviceName: string }[] }>(first, 'team.audit');
    const two = view.entries.find((e) => e.deviceName === 'two')?.device as string;
    expect(two).toMatch(/^[A-Za-z0-9_-]+$/);
    await query(`DELETE FROM team_audit WHERE device = '${two}' AND seq = 3`, true);
    const page = await first.h.open(`${OPTIONS}#audit`);
    const distrust = async () =>
      (await page.locator('#team-audit-status [role="alert"]').allTextContents()).filter((a) => a.includes('cannot be trusted'));
    await expect.poll(distrust, { timeout: 15_000 }).toHaveLength(1);
    expect((await distrust())[0]).toMatch(/^two: at record 3, /);
    await page.close();
  }, 60_000);

  it('the distant vault’s store holds none of the tokens, and its entries are gone after their notAfter', async () => {
    // SQLite: every file under its data directory; PostgreSQL: every row of the team cache
    const stored =
      engine === 'sqlite'
        ? walk(dataDir).map((f) => readFileSync(f))
        : [Buffer.from(JSON.stringify(await query('SELECT * FROM team_cache')))];
    expect(stored.length).toBeGreaterThan(0);
    const tokens = [...as.issued.accessTokens, ...rtServer.issued.accessTokens, ...rtServer.issued.refreshTokens];
    expect(rtServer.issued.refreshTokens.size).toBeGreaterThan(0);
    for (const token of tokens) for (const data of stored) expect(findAnyForm(data, token)).toEqual([]);
    // one more call makes a live entry; then none: its notAfter passes, and the server's sweep (every 5 s) deletes it.
    // The rotating refresh token's chain entry is kept a day past its last spend (docs/sync.md), sealed as the rest.
    const rows = async () =>
      Number((await query("SELECT COUNT(*) AS n FROM team_cache WHERE sealed IS NOT NULL AND slot NOT LIKE '%#rt'"))[0]?.n);
    expect((await query("SELECT slot FROM team_cache WHERE sealed IS NOT NULL AND slot LIKE '%#rt'")).length).toBe(1);
    const one = devices[0] as Device;
    expect(
      (await request<{ status: number }>(one.agent, 'keyhole_fetch', { secret: 'orders', url: `http://${api.host}/v1/ping` })).ok,
    ).toBe(true);
    expect(await rows()).toBeGreaterThan(0);
    await expect.poll(rows, { timeout: (TTL_S + 12) * 1000, interval: 500 }).toBe(0);
  }, 60_000);

  it('the refresher killed while holding the lock: nobody refreshes until it lapses, then one device does', async () => {
    const [one, two, three] = devices as [Device, Device, Device];
    const tokenRequests = () => as.tokenRequests.byGrant.client_credentials ?? 0;
    const heldLock = async () =>
      Number((await query("SELECT lock_until FROM team_cache WHERE lock_until IS NOT NULL AND slot NOT LIKE '%#rt'"))[0]?.lock_until ?? 0);
    as.faults.delayMs = 60_000; // the holder sits in its token request...
    let lockUntil = 0;
    try {
      const arrived = as.tokenRequests.total;
      void request(one.agent, 'keyhole_refresh', { secret: 'orders' }).catch(() => {});
      await expect.poll(heldLock, { timeout: 8_000, interval: 100 }).toBeGreaterThan(Date.now());
      lockUntil = await heldLock();
      // killed before its request reached the server, it could arrive once the delay is lifted, and be
      // answered (and counted) as if a live device had refreshed
      await expect.poll(() => as.tokenRequests.total, { timeout: 8_000, interval: 50 }).toBeGreaterThan(arrived);
      await one.h.kill(); // ...and its browser dies there
    } finally {
      delete as.faults.delayMs;
    }
    const before = tokenRequests();
    const answers = await Promise.all([two, three].map((d) => request(d.agent, 'keyhole_refresh', { secret: 'orders' })));
    const answeredAt = Date.now();
    expect(answers.map((a) => a.ok)).toEqual([true, true]);
    expect(answeredAt).toBeGreaterThanOrEqual(lockUntil); // they waited for the dead holder's lock to lapse
    expect(tokenRequests() - before).toBe(1); // then one of them refreshed, for both
    for (const d of [two, three])
      expect(
        (await request<{ status: number }>(d.agent, 'keyhole_fetch', { secret: 'orders', url: `http://${api.host}/v1/ping` })).ok,
      ).toBe(true);
  }, 60_000);
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}
