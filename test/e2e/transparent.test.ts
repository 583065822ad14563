/**
 * Transparent mode in Chromium with the real `openai` package and a placeholder key: the
 * local OpenAI-shaped API receives the real key only from the granted origin's tab. Other
 * origins and tabs, a third-party iframe, a locked vault and a revoked or used-up grant all
 * send the placeholder. Rules survive a worker stop and come back after unlock.
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc, showSection } from '../harness/browser.ts';
import { approve, request } from '../harness/provider.ts';
import { openaiApp, openaiServer } from '../harness/servers.ts';

const PASSPHRASE = 'transparent test passphrase FAKE';
const VALUE = 'sk-FAKE-transparent-0f9e8d7c';
const PLACEHOLDER = 'Bearer sk-placeholder-not-a-key';
const REAL = `Bearer ${VALUE}`;

describe('transparent mode', () => {
  let h: Harness;
  let api: Awaited<ReturnType<typeof openaiServer>>;
  let app: Awaited<ReturnType<typeof openaiApp>>;
  let other: Awaited<ReturnType<typeof openaiApp>>;
  let options: Page;
  let agent: Page;
  let grantId: string;

  beforeAll(async () => {
    [api, app, other] = await Promise.all([openaiServer(), openaiApp(), openaiApp()]);
    h = await launch();
    options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await rpc(options, 'secrets.create', {
      name: 'openai-local',
      value: VALUE,
      rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
    });
    agent = await openApp(`http://127.0.0.1:${app.port}/`);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([api?.close(), app?.close(), other?.close()]);
  });

  async function openApp(url: string): Promise<Page> {
    const page = await h.context.newPage();
    await page.goto(url);
    await page.waitForFunction(() => (window as { openaiReady?: boolean }).openaiReady === true);
    return page;
  }

  /** Runs the openai SDK in `page` and returns the Authorization the API received. */
  async function ask(page: Page | ReturnType<Page['frames']>[number]): Promise<string> {
    const before = api.auths.length;
    const answer = await page.evaluate(
      (base) => (window as unknown as { askOpenAI: (b: string) => Promise<string> }).askOpenAI(base),
      `http://${api.host}/v1`,
    );
    expect(answer).toBe('hello from the fake API');
    expect(api.auths.length).toBe(before + 1);
    return api.auths.at(-1) as string;
  }

  async function grantTransparent(page: Page, answer: 'once' | 'period'): Promise<string> {
    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('consent.html') });
    const result = request<{ grants: { id: string; mode: string }[] }>(page, 'keyhole_requestGrant', {
      secrets: ['openai-local'],
      mode: 'transparent',
    });
    const consent = await shown;
    // the person is told what transparent mode means
    expect(await consent.locator('.warn').first().textContent()).toContain('Any script running in those tabs can use the key');
    await approve(consent, answer === 'once' ? '#allow-once' : '#allow-period');
    const r = await result;
    if (!r.ok) throw new Error(`grant failed: ${r.error.code}`);
    expect(r.result.grants[0]?.mode).toBe('transparent');
    return r.result.grants[0]?.id as string;
  }

  it('without a grant the API gets the placeholder (control)', async () => {
    expect(await ask(agent)).toBe(PLACEHOLDER);
  });

  it('with a grant the unmodified openai SDK reaches the API with the real key', async () => {
    grantId = await grantTransparent(agent, 'period');
    await expect.poll(() => ask(agent)).toBe(REAL);
    const rules = await (await h.worker()).evaluate(() => chrome.declarativeNetRequest.getSessionRules());
    expect(rules[0]?.condition).toMatchObject({
      urlFilter: `|http://${api.host}/`,
      initiatorDomains: ['127.0.0.1'],
      resourceTypes: ['xmlhttprequest'],
    });
  });

  it('another origin in another tab, and another port of the same host, get nothing', async () => {
    const otherHost = await openApp(`http://localhost:${app.port}/`);
    expect(await ask(otherHost)).toBe(PLACEHOLDER);
    const otherPort = await openApp(`http://127.0.0.1:${other.port}/`);
    expect(await ask(otherPort)).toBe(PLACEHOLDER); // initiatorDomains ignores ports; tabIds does not
    expect(await ask(agent)).toBe(REAL);
    await Promise.all([otherHost.close(), otherPort.close()]);
  });

  it('a third-party iframe in the granted tab gets nothing', async () => {
    const framed = await h.context.newPage();
    const html = `<!doctype html><h1>granted</h1><iframe src="http://localhost:${other.port}/"></iframe>`;
    await framed.goto(`http://127.0.0.1:${app.port}/?html=${encodeURIComponent(html)}`);
    await expect.poll(() => framed.frames().length).toBe(2);
    const frame = framed.frames()[1] as ReturnType<Page['frames']>[number];
    await frame.waitForFunction(() => (window as { openaiReady?: boolean }).openaiReady === true);
    expect(await ask(frame)).toBe(PLACEHOLDER);
    await framed.close();
  });

  it('survives a worker stop, is removed at lock and restored at unlock', async () => {
    const stop = await h.stopWorker();
    expect(await ask(agent)).toBe(REAL); // DNR rules work while the worker sleeps
    await rpc(options, 'status');
    expect(await stop.restarted()).toBe(true);
    expect(await ask(agent)).toBe(REAL); // and the restarted worker kept them
    await rpc(options, 'vault.lock');
    expect(await ask(agent)).toBe(PLACEHOLDER);
    expect(await (await h.worker()).evaluate(() => chrome.declarativeNetRequest.getSessionRules())).toEqual([]);
    await rpc(options, 'vault.unlock', { passphrase: PASSPHRASE });
    await expect.poll(() => ask(agent)).toBe(REAL);
  });

  it('follows the tab: navigating it to another origin drops the key for that tab', async () => {
    const tab = await openApp(`http://127.0.0.1:${app.port}/`);
    await expect.poll(() => ask(tab)).toBe(REAL);
    await tab.goto(`http://127.0.0.1:${other.port}/`);
    await tab.waitForFunction(() => (window as { openaiReady?: boolean }).openaiReady === true);
    await expect.poll(() => ask(tab)).toBe(PLACEHOLDER);
    await tab.close();
  });

  it('transparent requests are audited from webRequest observation', async () => {
    const view = await rpc<{ result: { entries: { record: Record<string, unknown> }[] } }>(options, 'audit.view', {
      filter: { kind: 'request' },
    });
    expect(view.result.entries[0]?.record).toMatchObject({
      kind: 'request',
      mode: 'transparent',
      origin: `http://127.0.0.1:${app.port}`,
      secret: 'openai-local',
      method: 'POST',
      host: api.host,
      path: '/v1/chat/completions',
      decision: 'allowed',
      status: 200,
    });
  });

  it('revoking the grant in the options page removes the key at once', async () => {
    expect(await rpc(options, 'grants.revoke', { id: grantId })).toMatchObject({ ok: true });
    await expect.poll(() => ask(agent)).toBe(PLACEHOLDER);
  });

  it('a site that knows nothing of Keyhole can be allowed from the options page', async () => {
    const byo = await openApp(`http://byo.localhost:${app.port}/`);
    expect(await ask(byo)).toBe(PLACEHOLDER);
    await options.reload();
    await showSection(options, 'sites');
    await options.getByLabel('Site', { exact: true }).fill(`http://byo.localhost:${app.port}`);
    await options.getByLabel('Secret', { exact: true }).selectOption({ label: `openai-local (${api.host})` });
    await options.getByRole('button', { name: 'Allow this site' }).click();
    await expect.poll(() => options.locator('#grants-table tbody tr').count()).toBe(1);
    await expect.poll(() => ask(byo)).toBe(REAL);
    await options.getByRole('button', { name: `Revoke http://byo.localhost:${app.port} using openai-local` }).click();
    await expect.poll(() => ask(byo)).toBe(PLACEHOLDER);
    await byo.close();
  });

  it('grants expire: the brokered call is refused and the transparent rule is withdrawn', async () => {
    const page = await openApp(`http://expiry.localhost:${app.port}/`);
    for (const mode of ['transparent', 'broker']) {
      const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('consent.html') });
      const result = request(page, 'keyhole_requestGrant', { secrets: ['openai-local'], mode, ttlSeconds: 60 });
      const consent = await shown;
      expect(await consent.locator('#period option:checked').textContent()).toBe('1 minute (asked by the site)');
      await approve(consent, '#allow-period');
      expect((await result).ok).toBe(true);
    }
    const brokered = () => request(page, 'keyhole_fetch', { secret: 'openai-local', url: `http://${api.host}/v1/models` });
    await expect.poll(() => ask(page)).toBe(REAL);
    expect((await brokered()).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 61_000));
    // the expiry alarm withdrew the rule on its own, before any request could observe the expiry
    const rules = () => h.worker().then((w) => w.evaluate(() => chrome.declarativeNetRequest.getSessionRules()));
    await expect.poll(rules, { timeout: 10_000 }).toEqual([]);
    expect(await ask(page)).toBe(PLACEHOLDER);
    expect(await brokered()).toMatchObject({ ok: false, error: { code: 4100 } });
    expect(await request(page, 'keyhole_getGrants')).toEqual({ ok: true, result: [] });
    await page.close();
  });

  it('"Allow once": requests aborted right after they start still spend the grant, and each one is audited', async () => {
    const page = await openApp(`http://once.localhost:${app.port}/`);
    expect(await grantTransparent(page, 'once')).toBeTruthy();
    // 30 requests, each aborted 150 ms after it starts; the API answers only after 1 s. A page has
    // six connections per host, so only the first few are sent before they are aborted.
    await page.evaluate(async (base) => {
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => {
          const abort = new AbortController();
          setTimeout(() => abort.abort(), 150);
          return fetch(`${base}/v1/aborted/${i}?delay=1000`, { signal: abort.signal }).catch(() => 'aborted');
        }),
      );
    }, `http://${api.host}`);
    await new Promise((r) => setTimeout(r, 1000)); // anything still on its way has arrived
    const withKey = api.seen
      .filter((s) => s.url.startsWith('/v1/aborted/') && s.auth === REAL)
      .map((s) => new URL(s.url, 'http://x').pathname);
    expect(withKey.length).toBeGreaterThan(0);
    // the grant is spent, whatever became of the requests
    await expect.poll(() => request(page, 'keyhole_getGrants')).toEqual({ ok: true, result: [] });
    expect(await ask(page)).toBe(PLACEHOLDER);
    // every request that reached the API with the key is in the audit (Chrome reports a request's
    // headers as sent before it has a connection, so ones aborted while queued are audited too)
    const audited = async () => {
      const view = await rpc<{ result: { entries: { record: Record<string, unknown> }[] } }>(options, 'audit.view', {
        filter: { kind: 'request', origin: `http://once.localhost:${app.port}` },
      });
      return view.result.entries.filter((e) => String(e.record.path).startsWith('/v1/aborted/'));
    };
    const missing = async () => {
      const paths = new Set((await audited()).map((e) => e.record.path));
      return withKey.filter((p) => !paths.has(p));
    };
    await expect.poll(missing).toEqual([]);
    expect((await audited()).every((e) => e.record.mode === 'transparent' && e.record.secret === 'openai-local')).toBe(true);
    expect((await audited()).some((e) => e.record.reason === 'aborted')).toBe(true);
    await page.close();
  });

  it('a secret for POST only: no key on a ?_method= request, and method-override headers are removed', async () => {
    await rpc(options, 'secrets.create', {
      name: 'post-only-local',
      value: VALUE,
      rule: { hosts: [api.host], methods: ['POST'], header: 'Authorization', template: 'Bearer {value}' },
    });
    const page = await openApp(`http://post.localhost:${app.port}/`);
    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('consent.html') });
    const result = request(page, 'keyhole_requestGrant', { secrets: ['post-only-local'], mode: 'transparent' });
    await approve(await shown, '#allow-period');
    expect((await result).ok).toBe(true);
    const send = (path: string, headers: Record<string, string> = {}) =>
      page.evaluate(([u, hs]) => fetch(u, { method: 'POST', headers: hs, body: '{}' }).then((r) => r.status), [
        `http://${api.host}${path}`,
        headers,
      ] as const);
    const seen = (path: string) => api.seen.filter((s) => s.url === path).at(-1);
    const plain = async () => {
      await send('/v1/plain');
      return seen('/v1/plain')?.auth;
    };
    await expect.poll(plain).toBe(REAL);
    await send('/v1/override?_method=DELETE');
    expect(seen('/v1/override?_method=DELETE')?.auth).toBe('');
    await send('/v1/override?X-HTTP-Method-Override=DELETE');
    expect(seen('/v1/override?X-HTTP-Method-Override=DELETE')?.auth).toBe('');
    await send('/v1/header', { 'x-http-method-override': 'DELETE' });
    expect(seen('/v1/header')).toMatchObject({ auth: REAL, method: 'POST' });
    expect(seen('/v1/header')?.headers['x-http-method-override']).toBeUndefined();
    await page.close();
  });

  it('a grant made in a normal window does not reach an incognito window (Keyhole does not run there)', async () => {
    const origin = `http://incog.localhost:${app.port}`;
    const page = await openApp(`${origin}/`);
    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('consent.html') });
    const result = request(page, 'keyhole_requestGrant', { secrets: ['openai-local'], mode: 'transparent' });
    await approve(await shown, '#allow-period');
    expect((await result).ok).toBe(true);
    // the same page, calling the API 1.5 s after it loads, in a normal tab and in an incognito window
    const loadAndCall = (tag: string) =>
      `${origin}/?html=${encodeURIComponent(`<!doctype html><script>setTimeout(() => fetch('http://${api.host}/v1/tag/${tag}', { method: 'POST', body: '{}' }), 1500)</script>`)}`;
    const normal = await h.context.newPage();
    await normal.goto(loadAndCall('normal-window'));
    await expect.poll(() => api.seen.find((x) => x.url === '/v1/tag/normal-window')?.auth, { timeout: 10_000 }).toBe(REAL);
    // the extension opens it, cannot see it (not allowed in incognito), and puts no key on its requests
    const opened = await options.evaluate(
      (url) => chrome.windows.create({ incognito: true, url }).then((w) => w?.id ?? null),
      loadAndCall('incognito-window'),
    );
    expect(opened).toBeNull();
    await expect.poll(() => api.seen.some((x) => x.url === '/v1/tag/incognito-window'), { timeout: 15_000 }).toBe(true);
    expect(api.seen.find((x) => x.url === '/v1/tag/incognito-window')?.auth).toBe('');
    await Promise.all([normal.close(), page.close()]);
  });

  it('over its rate, a transparent grant has its rule withdrawn', async () => {
    await rpc(options, 'settings.set', { requestsPerMinute: 1 }); // bursts of 10, then 1 a minute
    const page = await openApp(`http://rate.localhost:${app.port}/`);
    await grantTransparent(page, 'period');
    await expect.poll(() => ask(page)).toBe(REAL);
    const seen: string[] = [];
    for (let i = 0; i < 14; i++) seen.push(await ask(page));
    await expect.poll(() => ask(page), { timeout: 5000 }).toBe(PLACEHOLDER);
    expect(seen.filter((a) => a === REAL).length).toBeGreaterThanOrEqual(9); // the burst went through
    await rpc(options, 'settings.set', { requestsPerMinute: 600 });
    await page.close();
  });

  it('"Allow once" is withdrawn after its use is observed', async () => {
    const page = await openApp(`http://once.localhost:${app.port}/`);
    await grantTransparent(page, 'once');
    await expect.poll(() => ask(page)).toBe(REAL);
    await expect.poll(() => ask(page), { timeout: 5000 }).toBe(PLACEHOLDER);
    await page.close();
  });
});
