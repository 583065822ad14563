/**
 * Who else can reach Keyhole: another extension gets nothing (message or port); provider
 * events reach only origins holding a grant; a grant's rate limit answers 4429 and the next
 * request after the limit is lifted succeeds.
 */
import { join } from 'node:path';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, ROOT, rpc, unpackedExtensionId } from '../harness/browser.ts';
import { grantForPeriod, request } from '../harness/provider.ts';
import { type ApiServer, apiServer, appServer } from '../harness/servers.ts';

const OTHER = join(ROOT, 'test/fixtures/other-extension');

describe('isolation', () => {
  let h: Harness;
  let api: ApiServer;
  let app: Awaited<ReturnType<typeof appServer>>;
  let options: Page;

  beforeAll(async () => {
    [api, app] = await Promise.all([apiServer(), appServer()]);
    h = await launch({ otherExtensions: [OTHER] });
    options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: 'isolation test passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await rpc(options, 'secrets.create', {
      name: 'iso-fake',
      value: 'sk-FAKE-isolation-4242',
      rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
    });
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([api?.close(), app?.close()]);
  });

  async function grantedPage(host: string): Promise<Page> {
    const page = await h.context.newPage();
    await page.goto(`http://${host}:${app.port}/`);
    expect((await grantForPeriod(h.context, page, { secrets: ['iso-fake'] })).ok).toBe(true);
    return page;
  }

  it('refuses another extension, by message and by port', async () => {
    const otherId = unpackedExtensionId(OTHER);
    const other =
      h.context.serviceWorkers().find((w) => w.url().startsWith(`chrome-extension://${otherId}/`)) ??
      (await h.context.waitForEvent('serviceworker', { predicate: (w) => w.url().includes(otherId) }));
    const tried = await other.evaluate(
      (id) => (self as unknown as { tryKeyhole(id: string): Promise<unknown> }).tryKeyhole(id),
      h.extensionId,
    );
    expect(tried).toEqual({
      message: { ok: false, error: { code: 'forbidden', message: 'not allowed' } },
      port: { disconnected: true, got: null },
    });
  });

  it('sends lock, unlock and grantsChanged only to origins holding a grant', async () => {
    const granted = await grantedPage('127.0.0.1');
    const stranger = await h.context.newPage();
    await stranger.goto(`http://localhost:${app.port}/`);
    expect((await request(stranger, 'keyhole_status')).ok).toBe(true); // it talked to the provider too
    const listen = (page: Page) =>
      page.evaluate(() => {
        const got: string[] = [];
        (window as unknown as { got: string[] }).got = got;
        window.addEventListener(
          'keyhole:announceProvider',
          (e) => {
            const { provider } = (e as CustomEvent).detail;
            for (const name of ['lock', 'unlock', 'grantsChanged']) provider.on(name, () => got.push(name));
          },
          { once: true },
        );
        window.dispatchEvent(new Event('keyhole:requestProvider'));
      });
    await Promise.all([listen(granted), listen(stranger)]);
    await rpc(options, 'vault.lock');
    await rpc(options, 'vault.unlock', { passphrase: 'isolation test passphrase FAKE' });
    const grants = await request<{ id: string }[]>(granted, 'keyhole_getGrants');
    if (!grants.ok) throw new Error('getGrants failed');
    await rpc(options, 'grants.revoke', { id: grants.result[0]?.id });
    const got = (page: Page) => page.evaluate(() => (window as unknown as { got: string[] }).got);
    await expect.poll(() => got(granted)).toEqual(['lock', 'unlock', 'grantsChanged']);
    expect(await got(stranger)).toEqual([]);
    await Promise.all([granted.close(), stranger.close()]);
  });

  it('rate-limits each grant (4429), and the limit is the person’s setting', async () => {
    await rpc(options, 'settings.set', { requestsPerMinute: 1 }); // bursts of 10, then 1 a minute
    const page = await grantedPage('rate.localhost');
    const results: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await request(page, 'keyhole_fetch', { secret: 'iso-fake', url: `http://${api.host}/v1/echo` });
      results.push(r.ok ? 200 : r.error.code);
    }
    expect(results.slice(0, 10)).toEqual(Array(10).fill(200));
    expect(results.slice(10)).toEqual([4429, 4429]);
    await rpc(options, 'settings.set', { requestsPerMinute: 600 }); // a new limit starts fresh buckets
    expect((await request(page, 'keyhole_fetch', { secret: 'iso-fake', url: `http://${api.host}/v1/echo` })).ok).toBe(true);
    await page.close();
  });
});
