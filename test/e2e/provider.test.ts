/**
 * The page provider end to end in Chromium: discovery, grants through the consent window
 * (approve, deny, once, revoke), brokered fetch reaching a local API with the right header,
 * other origins and hosts getting nothing, a locked vault answering 4900, and frames and
 * forged messages ignored.
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc } from '../harness/browser.ts';
import { type Answer, approve, discover, request, stream } from '../harness/provider.ts';
import { type ApiServer, apiServer, appServer } from '../harness/servers.ts';

const PASSPHRASE = 'provider test passphrase FAKE';
const VALUE = 'sk-FAKE-provider-canary-5e1f';

describe('page provider and brokered fetch', () => {
  let h: Harness;
  let api: ApiServer;
  let app: Awaited<ReturnType<typeof appServer>>;
  let other: Awaited<ReturnType<typeof appServer>>;
  let agent: Page;
  let options: Page;
  let appOrigin: string;

  beforeAll(async () => {
    api = await apiServer();
    app = await appServer();
    other = await appServer();
    appOrigin = `http://127.0.0.1:${app.port}`;
    h = await launch();
    options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    const rule = { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' };
    await rpc(options, 'secrets.create', { name: 'echo-fake', value: VALUE, rule });
    await rpc(options, 'secrets.create', { name: 'second-fake', value: 'sk-FAKE-second-000111', rule });
    agent = await h.context.newPage();
    await agent.goto(`${appOrigin}/`);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([api?.close(), app?.close(), other?.close()]);
  });

  /** Asks for a grant from `page` and answers the consent window as the person would. */
  async function grant(
    page: Page,
    params: unknown,
    answer: 'deny' | 'once' | 'period' | 'close',
  ): Promise<Answer<{ grants: { id: string }[] }>> {
    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('/src/popup/consent.html'), timeout: 10_000 });
    const result = request<{ grants: { id: string }[] }>(page, 'keyhole_requestGrant', params);
    const consent = await shown;
    await consent.waitForSelector('#deny');
    if (answer === 'close') await consent.close();
    else if (answer === 'deny') await consent.click('#deny');
    else {
      await approve(consent, answer === 'once' ? '#allow-once' : '#allow-period');
    }
    return result;
  }

  const fetchEcho = (page: Page, secret = 'echo-fake', path = '/v1/echo') =>
    request<{ status: number; body: string; headers: Record<string, string> }>(page, 'keyhole_fetch', {
      secret,
      url: `http://${api.host}${path}`,
    });

  it('announces a frozen provider on request', async () => {
    const found = await discover(agent);
    expect(found?.info.name).toBe('Keyhole');
    expect(found?.info.rdns).toBe('dev.keyhole');
    expect(found?.frozen).toBe(true);
  });

  it('answers a request made the moment the provider loads, before the content script listens', async () => {
    // The provider announces itself as it is injected, before the content-script bridge is; a
    // request made from that announcement waits for the bridge instead of failing.
    const page = await h.context.newPage();
    await page.addInitScript(() => {
      addEventListener(
        'keyhole:announceProvider',
        (e) => {
          const w = window as unknown as { early: unknown };
          (e as CustomEvent).detail.provider.request({ method: 'keyhole_status' }).then(
            (r: { state: string }) => (w.early = r.state),
            (err: { code: number }) => (w.early = err.code),
          );
        },
        { once: true },
      );
    });
    await page.goto(`http://early.localhost:${app.port}/`);
    await expect.poll(() => page.evaluate(() => (window as unknown as { early?: unknown }).early)).toBe('unlocked');
    await page.close();
  });

  it('tells any origin the vault state, and nothing else without a grant', async () => {
    expect(await request(agent, 'keyhole_status')).toEqual({ ok: true, result: { state: 'unlocked', version: '0.1.0' } });
    expect(await request(agent, 'keyhole_getGrants')).toEqual({ ok: true, result: [] });
    expect(await request(agent, 'keyhole_nope')).toMatchObject({ ok: false, error: { code: 4200 } });
  });

  it('answers "no grant" and "no such secret" alike (4100)', async () => {
    const noGrant = await fetchEcho(agent);
    const noSecret = await fetchEcho(agent, 'does-not-exist');
    expect(noGrant).toMatchObject({ ok: false, error: { code: 4100 } });
    expect(noSecret).toEqual(noGrant);
    expect(api.received).toHaveLength(0);
  });

  it('shows the consent window with Deny focused and Allow disabled at first', async () => {
    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('/src/popup/consent.html') });
    const result = request(agent, 'keyhole_requestGrant', { secrets: ['echo-fake'], reason: 'Summarise\u202e my <b>mail</b>' });
    const consent = await shown;
    await consent.waitForSelector('#deny');
    expect(await consent.locator('#allow-period').isDisabled()).toBe(true);
    expect(await consent.evaluate(() => document.activeElement?.id)).toBe('deny');
    expect(await consent.locator('#origin').textContent()).toBe(appOrigin);
    // the reason is the site's text, apart from Keyhole's: markup is not interpreted and bidi overrides are removed
    expect(await consent.locator('#reason').textContent()).toBe('Summarise my <b>mail</b>');
    await consent.waitForSelector('#allow-period:not([disabled])');
    // Enter on a focused Allow button does not approve
    await consent.focus('#allow-period');
    await consent.keyboard.press('Enter');
    await new Promise((r) => setTimeout(r, 300));
    expect(consent.isClosed()).toBe(false);
    await consent.click('#deny');
    expect(await result).toMatchObject({ ok: false, error: { code: 4001 } });
  });

  it('remembers a denial: asking again is refused without a prompt', async () => {
    let prompted = false;
    const listener = (p: Page) => {
      if (p.url().includes('consent.html')) prompted = true;
    };
    h.context.on('page', listener);
    expect(await request(agent, 'keyhole_requestGrant', { secrets: ['echo-fake'] })).toMatchObject({ ok: false, error: { code: 4001 } });
    h.context.off('page', listener);
    expect(prompted).toBe(false);
  });

  it('a closed consent window is a denial', async () => {
    expect(await grant(agent, { secrets: ['second-fake'] }, 'close')).toMatchObject({ ok: false, error: { code: 4001 } });
  });

  it('grants, then fetches through the broker with the injected header', async () => {
    // a fresh origin: the earlier denial is remembered for app's origin
    const page = await h.context.newPage();
    await page.goto(`http://localhost:${app.port}/`);
    const granted = await grant(page, { secrets: ['echo-fake'], ttlSeconds: 3600 }, 'period');
    expect(granted.ok).toBe(true);
    const grants = await request<{ secret: string; origin: string; hosts: string[] }[]>(page, 'keyhole_getGrants');
    expect(grants).toMatchObject({
      ok: true,
      result: [{ secret: 'echo-fake', origin: `http://localhost:${app.port}`, hosts: [api.host] }],
    });

    const res = await fetchEcho(page);
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.result.status).toBe(200);
    const last = api.received.at(-1);
    expect(last?.headers.authorization).toBe(`Bearer ${VALUE}`); // the API got the credential
    expect(last?.headers.cookie).toBeUndefined();
    expect(JSON.stringify(res)).not.toContain(VALUE); // the page did not
    expect(JSON.parse(res.result.body).auth).toBe('Bearer [REDACTED]');

    // another origin (another port, another tab) and another host get nothing
    const otherPort = await h.context.newPage();
    await otherPort.goto(`http://localhost:${other.port}/`);
    const before = api.received.length;
    expect(await fetchEcho(otherPort)).toMatchObject({ ok: false, error: { code: 4100 } });
    expect(await request(otherPort, 'keyhole_getGrants')).toEqual({ ok: true, result: [] });
    expect(await fetchEcho(agent)).toMatchObject({ ok: false, error: { code: 4100 } }); // 127.0.0.1, not localhost
    expect(api.received.length).toBe(before);

    // revoke from the page: the next call is refused
    const id = (granted as { result: { grants: { id: string }[] } }).result.grants[0]?.id;
    expect(await request(page, 'keyhole_revokeGrant', { grantId: id })).toEqual({ ok: true, result: true });
    expect(await fetchEcho(page)).toMatchObject({ ok: false, error: { code: 4100 } });
    await Promise.all([page.close(), otherPort.close()]);
  });

  it('"Allow once" allows exactly one request', async () => {
    const page = await h.context.newPage();
    await page.goto(`http://once.localhost:${app.port}/`);
    expect((await grant(page, { secrets: ['echo-fake'] }, 'once')).ok).toBe(true);
    expect((await fetchEcho(page)).ok).toBe(true);
    expect(await fetchEcho(page)).toMatchObject({ ok: false, error: { code: 4100 } });
    await page.close();
  });

  it('ignores a third-party iframe and forged messages from it', async () => {
    const page = await h.context.newPage();
    const frameUrl = `http://localhost:${other.port}/`;
    const html = `<!doctype html><h1>granted app</h1><iframe src="${frameUrl}"></iframe>`;
    await page.goto(`http://framed.localhost:${app.port}/?html=${encodeURIComponent(html)}`);
    expect((await grant(page, { secrets: ['echo-fake'] }, 'period')).ok).toBe(true);
    await expect.poll(() => page.frames().length).toBe(2);
    const frame = page.frames()[1] as NonNullable<ReturnType<Page['frames']>[number]>;
    await frame.waitForLoadState();
    expect(await discover(frame, 500)).toBeNull(); // no provider in frames
    const before = api.received.length;
    // the frame forges the bridge's message format towards its parent
    await frame.evaluate(
      ([url]) =>
        parent.postMessage(
          { target: 'keyhole:content', id: 'forged-1', method: 'keyhole_fetch', params: { secret: 'echo-fake', url } },
          '*',
        ),
      [`http://${api.host}/v1/echo`] as const,
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(api.received.length).toBe(before);
    // the granted top frame still works
    expect((await fetchEcho(page)).ok).toBe(true);
    await page.close();
  });

  it('streams: cancelling the body cancels the request', async () => {
    const page = await h.context.newPage();
    await page.goto(`http://stream.localhost:${app.port}/`);
    expect((await grant(page, { secrets: ['echo-fake'] }, 'period')).ok).toBe(true);
    const cancelled = await stream(
      page,
      { secret: 'echo-fake', url: `http://${api.host}/v1/stream?n=50&gap=100` },
      { cancelAfterChunks: 2 },
    );
    expect(cancelled.ok).toBe(true);
    await expect.poll(() => api.abandoned()).toBe(1);
    // A call longer than Chrome's 30 s idle limit: worker-lifetime.test.ts, without a debugger
    // attached to the worker (one attached here by Playwright keeps it alive by itself).
    await page.close();
  });

  it('answers 4900 while locked, for status-changing calls too', async () => {
    await rpc(options, 'vault.lock');
    expect(await request(agent, 'keyhole_status')).toMatchObject({ ok: true, result: { state: 'locked' } });
    expect(await fetchEcho(agent)).toMatchObject({ ok: false, error: { code: 4900 } });
    expect(await request(agent, 'keyhole_requestGrant', { secrets: ['echo-fake'] })).toMatchObject({ ok: false, error: { code: 4900 } });
    await rpc(options, 'vault.unlock', { passphrase: PASSPHRASE });
  });

  it('a page making 20,000 refused calls while locked leaves a few counted records, and the audit reads at once after unlock', async () => {
    await rpc(options, 'vault.lock');
    const page = await h.context.newPage();
    await page.goto(`http://localhost:${app.port}/`);
    const refused = await page.evaluate(
      (n) =>
        new Promise<number>((resolve) => {
          window.addEventListener(
            'keyhole:announceProvider',
            async (e) => {
              const { provider } = (e as CustomEvent).detail;
              let codes = 0;
              for (let i = 0; i < n; i += 500) {
                const batch = Array.from({ length: 500 }, (_, k) =>
                  provider.request({ method: 'keyhole_fetch', params: { secret: `probe-${i + k}`, url: 'https://api.example/' } }).then(
                    () => 0,
                    (err: { code: number }) => (err.code === 4900 ? 1 : 0),
                  ),
                );
                codes += (await Promise.all(batch)).reduce((a: number, b: number) => a + b, 0);
              }
              resolve(codes);
            },
            { once: true },
          );
          window.dispatchEvent(new Event('keyhole:requestProvider'));
        }),
      20_000,
    );
    expect(refused).toBe(20_000);
    await rpc(options, 'vault.unlock', { passphrase: PASSPHRASE });
    type Rec = { record: { origin?: string; status?: number; count?: number } };
    const mine = async () => {
      const view = await rpc<{ result: { entries: Rec[] } }>(options, 'audit.view', {
        filter: { origin: `http://localhost:${app.port}` },
        limit: 5000,
      });
      return view.result.entries.filter((e) => e.record.status === 4900);
    };
    // every refusal is accounted for, in a handful of records
    await expect.poll(async () => (await mine()).reduce((n, e) => n + (e.record.count ?? 1), 0), { timeout: 15_000 }).toBe(20_000);
    expect((await mine()).length).toBeLessThan(100);
    expect((await rpc<{ result: { check: unknown } }>(options, 'audit.verify')).result.check).toMatchObject({ ok: true });
    await page.close();
  });

  it('audited every decision: grants asked, given, denied and revoked, requests, lock and unlock', async () => {
    type View = { result: { entries: { record: { kind: string; reason?: string } }[] } };
    const latest = () => rpc<View>(options, 'audit.view', {});
    // the unlock record is appended once the records made while locked are chained
    await expect.poll(async () => (await latest()).result.entries[0]?.record.kind).toBe('unlock');
    const view = await latest();
    // the 4900 refusals made while locked were chained at unlock
    expect((await rpc<{ result: { check: unknown } }>(options, 'audit.verify')).result.check).toMatchObject({ ok: true, pending: 0 });
    const kinds = new Set(view.result.entries.map((e) => `${e.record.kind}${e.record.reason ? `:${e.record.reason}` : ''}`));
    for (const k of [
      'unlock',
      'lock:person',
      'grant.asked',
      'grant.given:period',
      'grant.given:once',
      'grant.denied:person',
      'grant.denied:remembered',
      'grant.revoked:page',
      'request',
      'error', // e.g. the 4900 answered to keyhole_requestGrant while locked
    ]) {
      expect(kinds.has(k), k).toBe(true);
    }
  });
});
