/**
 * Minted credentials in Chromium against a real OAuth 2.0 server (oidc-provider, JWT access
 * tokens of 6 s, verified by the API with jose): an agent page calls the API continuously, brokered
 * and transparent, over several token lifetimes without a failed call and with about one token
 * request per lifetime; 50 concurrent cold calls make one token request; a 401 drops the token and
 * the call is retried once with a fresh one; with the token endpoint down, calls go on until the
 * cached token's notAfter minus the skew, then fail with 4402, and recover when it is back; a
 * rotating refresh token is stored as it rotates and never spent twice.
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc } from '../harness/browser.ts';
import { callContinuously, type Outcome } from '../harness/continuous.ts';
import { type OAuthServer, RESOURCE, startOAuthServer } from '../harness/oauth2-server.ts';
import { grantForPeriod, request } from '../harness/provider.ts';
import { appServer } from '../harness/servers.ts';
import { startTokenApi, type TokenApi } from '../harness/token-api.ts';

const PASSPHRASE = 'lifetimes test passphrase FAKE';
const TTL_S = 6;

describe('minted OAuth 2.0 credentials in the browser', () => {
  let h: Harness;
  let as: OAuthServer;
  let api: TokenApi;
  let app: Awaited<ReturnType<typeof appServer>>;
  let options: Page;
  let agent: Page;

  const ccSecret = (name: string, clientId = 'cc-basic') => ({
    name,
    kind: 'oauth2-client-credentials',
    rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
    oauth2: { tokenEndpoint: as.tokenUrl, clientId, clientAuth: 'client_secret_basic', resource: RESOURCE },
    material: { clientSecret: as.secrets.basic },
  });
  const ccRequests = () => as.tokenRequests.byGrant.client_credentials ?? 0;

  async function create(input: unknown): Promise<{ id: string; version: number }> {
    const r = await rpc<{ ok: boolean; result: { id: string; version: number }; error?: unknown }>(options, 'secrets.create', input);
    if (!r.ok) throw new Error(`create failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  async function grant(secret: string, mode: 'broker' | 'transparent'): Promise<void> {
    const r = await grantForPeriod(h.context, agent, { secrets: [secret], mode });
    if (!r.ok) throw new Error(`grant failed: ${r.error.code}`);
  }

  beforeAll(async () => {
    as = await startOAuthServer({ accessTokenTtlSeconds: TTL_S });
    [api, app] = await Promise.all([startTokenApi(as.issuer, as.jwksUrl, RESOURCE), appServer()]);
    h = await launch();
    options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    // these agents call far faster than the default rate limit (600 a minute per grant) allows
    await rpc(options, 'settings.set', { requestsPerMinute: 100_000 });
    agent = await h.context.newPage();
    await agent.goto(`http://127.0.0.1:${app.port}/`);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([as?.close(), api?.close(), app?.close()]);
  });
  beforeEach(() => {
    delete as.faults.status; // a failed test does not leave the endpoint down for the next
  });

  it('refuses a minted kind without what it needs, with a clear error and nothing stored', async () => {
    const bad = [
      { ...ccSecret('bad-1'), oauth2: { ...ccSecret('x').oauth2, tokenEndpoint: 'http://auth.example.com/token' } },
      { ...ccSecret('bad-2'), material: {} },
      { ...ccSecret('bad-3'), oauth2: { ...ccSecret('x').oauth2, clientAuth: 'private_key_jwt' }, material: { privateKeyPem: 'nope' } },
      { ...ccSecret('bad-4'), kind: 'oauth2-magic' },
    ];
    for (const input of bad) {
      const r = await rpc<{ ok: boolean; error?: { code: string; message: string } }>(options, 'secrets.create', input);
      expect(r.ok).toBe(false);
      expect(r.error?.code).toBe('bad-input');
      expect(r.error?.message).not.toContain(as.secrets.basic);
    }
    const list = await rpc<{ result: { secrets: unknown[] } }>(options, 'secrets.list');
    expect(list.result.secrets).toHaveLength(0);
  });

  it('an agent calls the API continuously, brokered and transparent, for three lifetimes: no failure, a token request per lifetime', async () => {
    await create(ccSecret('svc'));
    await grant('svc', 'broker');
    await grant('svc', 'transparent');
    const before = ccRequests();
    const started = Date.now();
    const outcomes = await callContinuously(agent, api.host, 'svc', 3.3 * TTL_S * 1000, ['broker', 'transparent']);
    const elapsed = Date.now() - started;
    const failed = outcomes.filter((o) => !o.ok);
    if (failed.length)
      console.log(
        JSON.stringify({ failed: failed.slice(0, 5), n: failed.length, started, api: api.requests.filter((r) => !r.ok).slice(0, 5) }),
      );
    expect(failed).toEqual([]);
    const byMode = (m: Outcome['mode']) => outcomes.filter((o) => o.mode === m).length;
    expect(byMode('broker')).toBeGreaterThan(40);
    expect(byMode('transparent')).toBeGreaterThan(40);
    // one token for both modes, replaced at 75-90% of its life: lifetimes / 0.9 to lifetimes / 0.75, plus the first
    const made = ccRequests() - before;
    const lifetimes = elapsed / (TTL_S * 1000);
    expect(made).toBeGreaterThanOrEqual(Math.floor(lifetimes / 0.9));
    expect(made).toBeLessThanOrEqual(Math.ceil(lifetimes / 0.75) + 1);
    // the API saw that many distinct tokens, each verified against the server's keys
    const seen = new Set(api.requests.filter((r) => r.at >= started && r.ok).map((r) => r.jti));
    expect(seen.size).toBeGreaterThanOrEqual(made - 1);
  });

  it('50 concurrent first calls make one token request', async () => {
    // another client, authenticated in the body this time
    await create({
      ...ccSecret('cold', 'cc-post'),
      oauth2: { ...ccSecret('x').oauth2, clientId: 'cc-post', clientAuth: 'client_secret_post' },
      material: { clientSecret: as.secrets.post },
    });
    await grant('cold', 'broker');
    const before = ccRequests();
    const answers = await agent.evaluate(
      async ([host]) => {
        const provider = await new Promise<{ request(a: { method: string; params?: unknown }): Promise<{ status: number }> }>((resolve) => {
          window.addEventListener('keyhole:announceProvider', (e) => resolve((e as CustomEvent).detail.provider), { once: true });
          window.dispatchEvent(new Event('keyhole:requestProvider'));
        });
        const calls = Array.from({ length: 50 }, () =>
          provider.request({ method: 'keyhole_fetch', params: { secret: 'cold', url: `http://${host}/v1/ping?via=cold` } }).then(
            (x) => x.status,
            (e: { code: number }) => e.code,
          ),
        );
        return Promise.all(calls);
      },
      [api.host] as const,
    );
    expect(answers).toEqual(Array(50).fill(200));
    expect(ccRequests() - before).toBe(1);
  });

  it('an API answering 401 to a minted token: the token is dropped, one is minted and the call retried once', async () => {
    const first = await request<{ status: number; body: string }>(agent, 'keyhole_fetch', {
      secret: 'cold',
      url: `http://${api.host}/v1/ping?via=401`,
    });
    if (!first.ok) throw new Error('first call failed');
    const jti = (JSON.parse(first.result.body) as { jti: string }).jti;
    api.revoked.add(jti);
    const before = ccRequests();
    const again = await request<{ status: number; body: string }>(agent, 'keyhole_fetch', {
      secret: 'cold',
      url: `http://${api.host}/v1/ping?via=401`,
    });
    expect(again.ok && again.result.status).toBe(200);
    if (again.ok) expect((JSON.parse(again.result.body) as { jti: string }).jti).not.toBe(jti);
    expect(ccRequests() - before).toBe(1);
    const refused = api.requests.filter((r) => r.via === '401' && r.refused === 'revoked');
    expect(refused).toHaveLength(1); // retried once, not in a loop
  });

  it('with the token endpoint down, calls go on until notAfter minus the skew, then 4402; they recover when it is back', async () => {
    // a fresh token, then the endpoint fails
    await rpc(options, 'credentials.refresh', { id: await idOf('svc') });
    const status = await rpc<{ result: Record<string, { validUntil?: number }> }>(options, 'credentials.status');
    const validUntil = status.result[await idOf('svc')]?.validUntil as number;
    expect(validUntil).toBeGreaterThan(Date.now());
    as.faults.status = 503;
    const outcomes = await callContinuously(agent, api.host, 'svc', validUntil - Date.now() + 2000, ['broker', 'transparent']).finally(
      () => {
        delete as.faults.status; // back for the next test whatever happens here
      },
    );
    const broker = outcomes.filter((o) => o.mode === 'broker');
    const lastOk = Math.max(...broker.filter((o) => o.ok).map((o) => o.at));
    const firstFail = Math.min(...broker.filter((o) => !o.ok).map((o) => o.at));
    const skew = TTL_S * 1000 * 0.05;
    expect(lastOk).toBeGreaterThan(validUntil - skew - 1500); // served on the cached token through the outage...
    expect(lastOk).toBeLessThan(validUntil); // ...never past its notAfter
    expect(firstFail).toBeGreaterThan(validUntil - skew - 1000);
    expect(broker.filter((o) => !o.ok).every((o) => o.code === 4402)).toBe(true);
    expect(broker.some((o) => !o.ok)).toBe(true);
    // the transparent rule was withdrawn with its token: the API never got an expired token
    const transparentRefusals = api.requests.filter((r) => r.via === 'transparent' && !r.ok);
    expect(transparentRefusals.filter((r) => r.refused !== 'no-token')).toEqual([]);
    // the person sees why
    const seen = await rpc<{ result: Record<string, { state: string; lastError?: string }> }>(options, 'credentials.status');
    const view = seen.result[await idOf('svc')];
    expect(['unavailable', 'refreshing']).toContain(view?.state); // 'refreshing' while one of its retries is under way
    expect(view?.lastError).toBeDefined();
    // back: the breaker half-opens after its cool-down and the next call mints
    delete as.faults.status;
    await expect
      .poll(
        async () => {
          const r = await request<{ status: number }>(agent, 'keyhole_fetch', {
            secret: 'svc',
            url: `http://${api.host}/v1/ping?via=back`,
          });
          return r.ok ? r.result.status : r.error.code;
        },
        { timeout: 70_000, interval: 1000 },
      )
      .toBe(200);
  }, 120_000);

  it('a rotating refresh token is stored as it rotates and never spent twice: its family stays valid', async () => {
    const rt = await as.mintRefreshToken();
    const created = await create({
      name: 'rt',
      kind: 'oauth2-refresh-token',
      rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
      oauth2: { tokenEndpoint: as.tokenUrl, clientId: 'rt-client', clientAuth: 'client_secret_basic' },
      material: { clientSecret: as.secrets.rt, refreshToken: rt },
    });
    await grant('rt', 'broker');
    const before = as.tokenRequests.byGrant.refresh_token ?? 0;
    const outcomes = await callContinuously(agent, api.host, 'rt', 2.5 * TTL_S * 1000, ['broker']);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    const refreshes = (as.tokenRequests.byGrant.refresh_token ?? 0) - before;
    expect(refreshes).toBeGreaterThanOrEqual(2);
    // each refresh rotated the refresh token and the vault stored it: one new version per refresh
    // (read together until they agree: a refresh ahead of expiry may land between the two reads)
    const version = async () =>
      (await rpc<{ result: { secrets: { name: string; version: number }[] } }>(options, 'secrets.list')).result.secrets.find(
        (s) => s.name === 'rt',
      )?.version ?? 0;
    await expect
      .poll(async () => (await version()) - created.version - ((as.tokenRequests.byGrant.refresh_token ?? 0) - before), { timeout: 5000 })
      .toBe(0);
    // had an old refresh token been sent again, the server would have revoked the family: the next refresh would fail
    const r = await rpc<{ result: { state: string; lastError?: string } }>(options, 'credentials.refresh', { id: created.id });
    expect(r.result.lastError).toBeUndefined();
  }, 60_000);

  it('the person adds a minted credential in the options page and sees its state, never its material', async () => {
    const page = await h.open(OPTIONS);
    await page.click('#add-secret');
    await page.fill('#secret-name', 'from-form');
    await page.selectOption('#secret-kind', 'oauth2-client-credentials');
    expect(await page.isVisible('#secret-value')).toBe(false);
    await page.fill('#secret-hosts', api.host);
    await page.fill('#secret-header', 'Authorization');
    await page.fill('#secret-template', 'Bearer {value}');
    await page.fill('#oauth-endpoint', as.tokenUrl);
    await page.fill('#oauth-client-id', 'cc-basic');
    await page.fill('#oauth-resource', RESOURCE);
    await page.fill('#oauth-client-secret', as.secrets.basic);
    await page.click('#save-secret');
    const cell = page.locator('[data-credential="from-form"]');
    await expect.poll(() => cell.textContent()).toContain('OAuth 2.0 client credentials');
    await cell.getByRole('button', { name: 'Refresh from-form now' }).click();
    await expect.poll(() => page.locator('[data-credential="from-form"]').textContent()).toContain('token valid until');
    await page.screenshot({ path: 'test/.tmp/options-minted.png', fullPage: true });
    const html = await page.content();
    expect(html).not.toContain(as.secrets.basic);
    for (const token of api.tokens) expect(html).not.toContain(token);
    await page.close();
  });

  async function idOf(name: string): Promise<string> {
    const list = await rpc<{ result: { secrets: { id: string; name: string }[] } }>(options, 'secrets.list');
    return list.result.secrets.find((s) => s.name === name)?.id as string;
  }
});
