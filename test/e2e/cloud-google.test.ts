/**
 * A Google service account in Chromium (issue 14): the worker signs the JWT-bearer assertion with
 * the account's key (kept as a non-extractable key, the PEM sealed), mints access tokens at a local
 * Google-shaped token endpoint that verifies every assertion with jose, and an agent page calls a
 * Google-shaped API brokered and transparent for over two token lifetimes: no failed call, about
 * one mint per lifetime, concurrent first calls coalesced into one.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc, rpcOk } from '../harness/browser.ts';
import { pageAndAudit } from '../harness/canary.ts';
import { callContinuously } from '../harness/continuous.ts';
import { type GoogleServer, startGoogleServer } from '../harness/google-server.ts';
import { grantForPeriod, request } from '../harness/provider.ts';
import { findEverywhere } from '../harness/scan.ts';
import { appServer } from '../harness/servers.ts';

const TTL_S = 5;
const EMAIL = 'agent@keyhole-fake.iam.gserviceaccount.com';
const SCOPE = 'https://www.googleapis.com/auth/bigquery.readonly';

describe('Google service account credentials in the browser', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  let h: Harness;
  let google: GoogleServer;
  let app: Awaited<ReturnType<typeof appServer>>;
  let options: Page;
  let agent: Page;

  const ok = <T>(method: string, params?: unknown) => rpcOk<T>(options, method, params);
  const account = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    kind: 'google-service-account',
    rule: { hosts: [google.apiHost], header: 'Authorization', template: 'Bearer {value}' },
    oauth2: { tokenEndpoint: google.tokenUrl, clientId: EMAIL, scope: SCOPE, ...extra },
    material: { privateKeyPem: pem },
  });

  beforeAll(async () => {
    [google, app] = await Promise.all([
      startGoogleServer({ publicKey: rsa.publicKey, clientEmail: EMAIL, ttlSeconds: TTL_S }),
      appServer(),
    ]);
    h = await launch();
    options = await h.open(OPTIONS);
    await ok('vault.create', { passphrase: 'google test passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await ok('settings.set', { requestsPerMinute: 100_000 });
    agent = await h.context.newPage();
    await agent.goto(`http://127.0.0.1:${app.port}/`);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([google?.close(), app?.close()]);
  });

  it('refuses a service account without what it needs, with a clear error and nothing stored', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const bad = [
      { ...account('bad-1'), oauth2: { tokenEndpoint: google.tokenUrl, clientId: 'not-an-email', scope: SCOPE } },
      { ...account('bad-2'), oauth2: { tokenEndpoint: google.tokenUrl, clientId: EMAIL } },
      { ...account('bad-3'), material: { privateKeyPem: 'FAKE not a key' } },
      { ...account('bad-4'), material: { privateKeyPem: ec } },
      { ...account('bad-5'), oauth2: { tokenEndpoint: 'http://oauth2.example.com/token', clientId: EMAIL, scope: SCOPE } },
    ];
    for (const input of bad) {
      const r = await rpc<{ ok: boolean; error?: { code: string; message: string } }>(options, 'secrets.create', input);
      expect(r.ok).toBe(false);
      expect(r.error?.code).toBe('bad-input');
      expect(r.error?.message).not.toContain('PRIVATE KEY');
    }
    expect((await ok<{ secrets: unknown[] }>('secrets.list')).secrets).toHaveLength(0);
  });

  it('an agent calls the API brokered and transparent for over two lifetimes: no failure, a mint per lifetime', async () => {
    await ok('secrets.create', account('bq'));
    for (const mode of ['broker', 'transparent'] as const)
      expect((await grantForPeriod(h.context, agent, { secrets: ['bq'], mode })).ok).toBe(true);
    const before = google.tokenRequests.total;
    const started = Date.now();
    const outcomes = await callContinuously(agent, google.apiHost, 'bq', 2.3 * TTL_S * 1000, ['broker', 'transparent']);
    const lifetimes = (Date.now() - started) / (TTL_S * 1000);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(outcomes.filter((o) => o.mode === 'transparent').length).toBeGreaterThan(20);
    expect(outcomes.filter((o) => o.mode === 'broker').length).toBeGreaterThan(20);
    const mints = google.tokenRequests.total - before;
    expect(mints).toBeGreaterThanOrEqual(Math.floor(lifetimes / 0.9));
    expect(mints).toBeLessThanOrEqual(Math.ceil(lifetimes / 0.75) + 1);
    expect(google.tokenRequests.refused).toBe(0); // every assertion verified against the account's public key
    expect([...google.issued.values()].every((t) => t.scope === SCOPE && t.sub === undefined)).toBe(true);
    expect(google.apiRequests.filter((r) => r.at >= started && !r.ok)).toEqual([]);
  });

  it('concurrent first calls make one token request; a delegation subject goes in the assertion', async () => {
    await ok('secrets.create', account('drive', { subject: 'person@keyhole-fake.example' }));
    expect((await grantForPeriod(h.context, agent, { secrets: ['drive'], mode: 'broker' })).ok).toBe(true);
    const answers = await Promise.all(
      Array.from({ length: 30 }, () =>
        request<{ status: number }>(agent, 'keyhole_fetch', { secret: 'drive', url: `http://${google.apiHost}/drive?via=cold` }),
      ),
    );
    expect(answers.map((a) => (a.ok ? a.result.status : a.error.code))).toEqual(Array(30).fill(200));
    // counted by subject: 'bq' may refresh meanwhile
    const delegated = [...google.issued.values()].filter((t) => t.sub === 'person@keyhole-fake.example');
    expect(delegated).toHaveLength(1);
  });

  it('the person imports the key file in the options page: checked, its key sealed, never shown', async () => {
    const page = await h.open(OPTIONS);
    await page.click('#add-secret');
    await page.fill('#secret-name', 'from-key-file');
    await page.selectOption('#secret-kind', 'google-service-account');
    expect(await page.isVisible('#oauth-auth')).toBe(false);
    // a file that is not a service account key: a clear error, nothing taken from it
    await page.setInputFiles('#google-key-file', {
      name: 'wrong.json',
      mimeType: 'application/json',
      buffer: Buffer.from('{"type":"authorized_user"}'),
    });
    await expect.poll(() => page.locator('#google-key-status').textContent()).toContain('not a service account key file');
    const keyFile = {
      type: 'service_account',
      client_email: EMAIL,
      private_key: pem,
      private_key_id: 'abc123',
      token_uri: google.tokenUrl,
    };
    await page.setInputFiles('#google-key-file', {
      name: 'key.json',
      mimeType: 'application/json',
      buffer: Buffer.from(JSON.stringify(keyFile)),
    });
    await expect.poll(() => page.locator('#google-key-status').textContent()).toContain(`Key of ${EMAIL} read`);
    expect(await page.inputValue('#oauth-client-id')).toBe(EMAIL);
    expect(await page.inputValue('#oauth-endpoint')).toBe(google.tokenUrl);
    await page.fill('#oauth-scope', SCOPE);
    await page.fill('#secret-hosts', google.apiHost);
    await page.fill('#secret-header', 'Authorization');
    await page.fill('#secret-template', 'Bearer {value}');
    await page.click('#save-secret');
    const cell = page.locator('[data-credential="from-key-file"]');
    await expect.poll(() => cell.count()).toBe(1);
    await cell.getByRole('button', { name: 'Refresh from-key-file now' }).click();
    await expect.poll(() => page.locator('[data-credential="from-key-file"]').textContent()).toContain('token valid until');
    expect(await page.content()).not.toContain('PRIVATE KEY');
    await page.close();
  });

  it('the options page and the page API show its kind and state, never the key', async () => {
    const grants = await request<{ secret: string; credential?: { kind: string; state: string; validUntil?: number } }[]>(
      agent,
      'keyhole_getGrants',
    );
    expect(grants.ok).toBe(true);
    const bq = grants.ok ? grants.result.find((g) => g.secret === 'bq') : undefined;
    expect(bq?.credential).toMatchObject({ kind: 'google-service-account', state: expect.stringMatching(/ok|expiring|refreshing/) });
    expect(JSON.stringify(grants)).not.toContain('PRIVATE KEY');
    const listed = JSON.stringify(await ok('secrets.list'));
    expect(listed).not.toContain('PRIVATE KEY');
    expect(listed).toContain(EMAIL);
  });

  it('canary: no Google access token nor the private key anywhere the page observed, nor in the audit export', async () => {
    const url = `http://${google.apiHost}/bigquery?via=canary`;
    const haystacks = await pageAndAudit(agent, options, [
      ['keyhole_getGrants', undefined],
      ['keyhole_fetch', { secret: 'bq', url }],
      ['keyhole_refresh', { secret: 'bq' }],
      ['keyhole_fetch', { secret: 'bq', url, headers: { accept: 'application/json' } }],
    ]);
    expect(haystacks.auditJsonl).toContain('token.request');
    const keyBody = pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    const needles = [...google.issued.keys(), keyBody, keyBody.slice(64, 128)];
    expect(needles.length).toBeGreaterThan(5);
    expect(findEverywhere(haystacks, needles)).toEqual([]);
  });
});
