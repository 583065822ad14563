/**
 * A GitHub App in Chromium (issue 14): the person pastes the app's private key as GitHub hands it
 * out (PKCS#1); the worker signs the app JWT and mints installation tokens at a local GitHub-shaped
 * API that verifies every JWT with jose; an agent page calls the API brokered and transparent for
 * over two token lifetimes: no failed call, about one mint per lifetime, concurrent first calls
 * coalesced into one.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc, rpcOk } from '../harness/browser.ts';
import { pageAndAudit } from '../harness/canary.ts';
import { callContinuously } from '../harness/continuous.ts';
import { type GithubServer, startGithubServer } from '../harness/github-server.ts';
import { approve, grantForPeriod, openConsent, request } from '../harness/provider.ts';
import { findEverywhere } from '../harness/scan.ts';
import { appServer } from '../harness/servers.ts';
import { vendorApp } from '../harness/vendors.ts';

const TTL_S = 5;
const APP_ID = 4242;

describe('GitHub App credentials in the browser', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pkcs1 = rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
  let h: Harness;
  let gh: GithubServer;
  let app: Awaited<ReturnType<typeof appServer>>;
  let sdkApp: Awaited<ReturnType<typeof vendorApp>>;
  let options: Page;
  let agent: Page;

  const ok = <T>(method: string, params?: unknown) => rpcOk<T>(options, method, params);
  const githubApp = (name: string, extra: { tokenEndpoint?: string; clientId?: string; pem?: string; installation?: string } = {}) => ({
    name,
    kind: 'github-app',
    rule: { hosts: [gh.apiHost], header: 'Authorization', template: 'Bearer {value}' },
    oauth2: {
      tokenEndpoint: extra.tokenEndpoint ?? `${gh.apiBase}/app/installations/${extra.installation ?? gh.installationId}/access_tokens`,
      clientId: extra.clientId ?? String(APP_ID),
    },
    material: { privateKeyPem: extra.pem ?? pkcs1 },
  });

  beforeAll(async () => {
    [gh, app] = await Promise.all([
      startGithubServer({
        publicKey: rsa.publicKey,
        appId: APP_ID,
        ttlSeconds: TTL_S,
        repositories: ['keyhole', 'other'],
        permissions: { contents: 'write', metadata: 'read' },
      }),
      appServer(),
    ]);
    sdkApp = await vendorApp('cloud');
    h = await launch();
    options = await h.open(OPTIONS);
    await ok('vault.create', { passphrase: 'github test passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await ok('settings.set', { requestsPerMinute: 100_000 });
    agent = await h.context.newPage();
    await agent.goto(`http://127.0.0.1:${app.port}/`);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([gh?.close(), app?.close(), sdkApp?.close()]);
  });

  it('refuses an app without what it needs, with a clear error and nothing stored', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
    const bad = [
      githubApp('bad-1', { tokenEndpoint: `${gh.apiBase}/login/oauth/access_token` }),
      githubApp('bad-2', { clientId: 'not an id' }),
      githubApp('bad-3', { pem: ec }),
      githubApp('bad-4', { pem: weak }),
      githubApp('bad-5', { pem: 'FAKE not a key' }),
    ];
    for (const input of bad) {
      const r = await rpc<{ ok: boolean; error?: { code: string; message: string } }>(options, 'secrets.create', input);
      expect({ name: input.name, ok: r.ok, code: r.error?.code }).toEqual({ name: input.name, ok: false, code: 'bad-input' });
      expect(r.error?.message).not.toContain('PRIVATE KEY');
    }
    expect((await ok<{ secrets: unknown[] }>('secrets.list')).secrets).toHaveLength(0);
  });

  it('an agent calls the API brokered and transparent for over two lifetimes: no failure, a mint per lifetime', async () => {
    await ok('secrets.create', githubApp('gh'));
    for (const mode of ['broker', 'transparent'] as const)
      expect((await grantForPeriod(h.context, agent, { secrets: ['gh'], mode })).ok).toBe(true);
    const before = gh.tokenRequests.total;
    const started = Date.now();
    const outcomes = await callContinuously(agent, gh.apiHost, 'gh', 2.3 * TTL_S * 1000, ['broker', 'transparent']);
    const lifetimes = (Date.now() - started) / (TTL_S * 1000);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(outcomes.filter((o) => o.mode === 'transparent').length).toBeGreaterThan(20);
    const mints = gh.tokenRequests.total - before;
    expect(mints).toBeGreaterThanOrEqual(Math.floor(lifetimes / 0.9));
    expect(mints).toBeLessThanOrEqual(Math.ceil(lifetimes / 0.75) + 1);
    expect(gh.tokenRequests.refused).toBe(0); // every app JWT verified against the app's public key
    expect(gh.apiRequests.filter((r) => r.at >= started && !r.ok)).toEqual([]);
  });

  it('concurrent first calls make one installation-token request; the page learns the kind, never a token or the key', async () => {
    // an installation of its own, so that 'gh' refreshing meanwhile is not counted
    const installation = gh.otherInstallationId;
    await ok('secrets.create', githubApp('gh-cold', { installation }));
    expect((await grantForPeriod(h.context, agent, { secrets: ['gh-cold'], mode: 'broker' })).ok).toBe(true);
    const before = gh.tokenRequests.byInstallation[installation] ?? 0;
    const answers = await Promise.all(
      Array.from({ length: 30 }, () =>
        request<{ status: number; body: string }>(agent, 'keyhole_fetch', {
          secret: 'gh-cold',
          url: `http://${gh.apiHost}/repos/fake-org/keyhole`,
        }),
      ),
    );
    expect(answers.map((a) => (a.ok ? a.result.status : a.error.code))).toEqual(Array(30).fill(200));
    expect((gh.tokenRequests.byInstallation[installation] ?? 0) - before).toBe(1);
    const grants = await request<{ secret: string; credential?: { kind: string } }[]>(agent, 'keyhole_getGrants');
    expect(grants.ok && grants.result.find((g) => g.secret === 'gh-cold')?.credential?.kind).toBe('github-app');
    const seen = JSON.stringify([answers, grants]);
    for (const token of gh.issued.keys()) expect(seen).not.toContain(token);
    expect(seen).not.toContain('PRIVATE KEY');
  });

  it('the options page puts the token endpoint together from the installation id', async () => {
    const page = await h.open(OPTIONS);
    await page.click('#add-secret');
    await page.selectOption('#secret-kind', 'github-app');
    expect(await page.isVisible('#github-installation')).toBe(true);
    await page.fill('#github-api', gh.apiBase);
    await page.fill('#github-installation', gh.installationId);
    expect(await page.inputValue('#oauth-endpoint')).toBe(`${gh.apiBase}/app/installations/${gh.installationId}/access_tokens`);
    await page.fill('#github-installation', '12x');
    await expect.poll(() => page.locator('#github-status').textContent()).toContain('installation id is a number');
    await page.close();
  });

  it('a grant narrowed to one repository and contents: read gets exactly that token; outside it, GitHub says no', async () => {
    await ok('secrets.create', githubApp('gh-narrow'));
    const narrow = { repositories: ['keyhole'], permissions: { contents: 'read' } };
    const { consent, answer } = await openConsent(h.context, agent, { secrets: ['gh-narrow'], mode: 'broker', narrow });
    const shown = await consent.locator('#narrowing').textContent();
    expect(shown).toContain('repositories: keyhole');
    expect(shown).toContain('permissions: contents: read');
    await approve(consent, '#allow-period');
    const granted = await answer;
    expect(granted.ok && granted.result.grants[0]).toMatchObject({ narrow });
    const issuedBefore = new Set(gh.issued.keys());
    const call = (path: string, method = 'GET') =>
      request<{ status: number }>(agent, 'keyhole_fetch', {
        secret: 'gh-narrow',
        url: `http://${gh.apiHost}${path}`,
        method,
        ...(method === 'PUT' ? { body: '{"message":"FAKE","content":"RkFLRQ=="}' } : {}),
      });
    const statuses = [];
    for (const [path, method] of [
      ['/repos/fake-org/keyhole', 'GET'],
      ['/repos/fake-org/keyhole/contents/README.md', 'GET'],
      ['/repos/fake-org/other', 'GET'],
      ['/repos/fake-org/keyhole/contents/README.md', 'PUT'],
    ] as const) {
      const r = await call(path, method);
      statuses.push(r.ok ? r.result.status : r.error.code);
    }
    // inside the narrowing: 200; another repository: 404 and a write: 403, both from the API
    expect(statuses).toEqual([200, 200, 404, 403]);
    const minted = [...gh.issued.entries()].filter(([t]) => !issuedBefore.has(t)).map(([, e]) => e);
    expect(minted.map((e) => ({ repositories: e.repositories, permissions: e.permissions }))).toEqual([narrow]);
    // the unnarrowed grant of the same app still reaches the other repository
    const wide = await request<{ status: number }>(agent, 'keyhole_fetch', {
      secret: 'gh',
      url: `http://${gh.apiHost}/repos/fake-org/other`,
    });
    expect(wide.ok && wide.result.status).toBe(200);
  });

  it('asking to narrow beyond the installation: GitHub refuses the mint, the call fails with the reason, nothing wider is used', async () => {
    await ok('secrets.create', githubApp('gh-too-wide'));
    const narrow = { repositories: ['not-installed'] };
    expect((await grantForPeriod(h.context, agent, { secrets: ['gh-too-wide'], mode: 'broker', narrow })).ok).toBe(true);
    const r = await request(agent, 'keyhole_fetch', { secret: 'gh-too-wide', url: `http://${gh.apiHost}/repos/fake-org/keyhole` });
    expect(r.ok === false && [r.error.code, r.error.data]).toEqual([4402, { reason: 'oauth-error' }]);
  });

  it('the real @octokit/rest in a page, with a transparent grant: Keyhole adds the installation token', async () => {
    const page = await h.context.newPage();
    await page.goto(`http://127.0.0.1:${sdkApp.port}/`);
    await page.waitForFunction(() => (window as unknown as { vendorsReady?: boolean }).vendorsReady === true);
    expect((await grantForPeriod(h.context, page, { secrets: ['gh'], mode: 'transparent' })).ok).toBe(true);
    const before = gh.apiRequests.length;
    const result = await page.evaluate(
      async (baseUrl) => {
        type Octokit = {
          rest: { repos: { get(p: { owner: string; repo: string }): Promise<{ status: number; data: { full_name: string } }> } };
        };
        const { Octokit } = (window as unknown as { vendors: { Octokit: new (o: unknown) => Octokit } }).vendors;
        const octokit = new Octokit({ baseUrl });
        const r = await octokit.rest.repos.get({ owner: 'fake-org', repo: 'keyhole' });
        return { status: r.status, fullName: r.data.full_name };
      },
      gh.apiBase.replace('127.0.0.1', 'localhost'),
    );
    expect(result).toEqual({ status: 200, fullName: 'fake-org/keyhole' });
    expect(gh.apiRequests.slice(before).map((r) => r.status)).toEqual([200]);
    await page.close();
  });

  it('canary: no installation token nor the private key anywhere the page observed, nor in the audit export', async () => {
    const url = `http://${gh.apiHost}/repos/fake-org/keyhole`;
    const haystacks = await pageAndAudit(agent, options, [
      ['keyhole_getGrants', undefined],
      ['keyhole_fetch', { secret: 'gh', url }],
      ['keyhole_refresh', { secret: 'gh' }],
      ['keyhole_fetch', { secret: 'gh', url, headers: { accept: 'application/json' } }],
    ]);
    expect(haystacks.auditJsonl).toContain('token.request');
    const keyBody = pkcs1.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    const needles = [...gh.issued.keys(), keyBody, keyBody.slice(64, 128)];
    expect(needles.length).toBeGreaterThan(5);
    expect(findEverywhere(haystacks, needles)).toEqual([]);
  });
});
