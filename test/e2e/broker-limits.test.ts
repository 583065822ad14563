/**
 * Brokered calls that hold connections (issue 12, items 1 and 8): one origin may hold only a few
 * streams at once, so the browser's six connections per host stay shared; lock and revoke end
 * the streams in flight at once. The API server tells which streams ran to their end and which
 * were cut off, so nothing here depends on how long anything took.
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc } from '../harness/browser.ts';
import { grantForPeriod, request } from '../harness/provider.ts';
import { type ApiServer, apiServer, appServer } from '../harness/servers.ts';

const PASSPHRASE = 'broker limits passphrase FAKE';
const VALUE = 'sk-FAKE-broker-limits-77aa';

/** In the page: opens `n` streams of `events` events; resolves with each one's status or error code once all have answered. */
function openStreams(page: Page, url: string, n: number): Promise<(number | string)[]> {
  return page.evaluate(
    ([u, count]) =>
      new Promise<(number | string)[]>((resolve) => {
        window.addEventListener(
          'keyhole:announceProvider',
          (e) => {
            const { provider } = (e as CustomEvent).detail;
            const held: ReadableStreamDefaultReader<Uint8Array>[] = [];
            const errors: number[] = [];
            Object.assign(window, { held, streamErrors: errors });
            const heads = Array.from({ length: count }, () =>
              provider.fetchStream({ secret: 'limits', url: u }).then(
                (res: { status: number; body: ReadableStream<Uint8Array> }) => {
                  const reader = res.body.getReader();
                  held.push(reader);
                  // keep reading, so a stream ends only when the worker or the server ends it
                  const pump = (): Promise<void> =>
                    reader.read().then(
                      (r) => (r.done ? undefined : pump()),
                      (err: { code?: number }) => {
                        errors.push(err.code ?? -1);
                      },
                    );
                  void pump();
                  return res.status;
                },
                (err: { code: number }) => `error ${err.code}`,
              ),
            );
            void Promise.all(heads).then(resolve);
          },
          { once: true },
        );
        window.dispatchEvent(new Event('keyhole:requestProvider'));
      }),
    [url, n] as const,
  );
}

describe('brokered calls that hold connections', () => {
  let h: Harness;
  let api: ApiServer;
  let app: Awaited<ReturnType<typeof appServer>>;
  let options: Page;

  beforeAll(async () => {
    [api, app] = await Promise.all([apiServer(), appServer()]);
    h = await launch();
    options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await rpc(options, 'secrets.create', {
      name: 'limits',
      value: VALUE,
      rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
    });
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([api?.close(), app?.close()]);
  });

  async function grantedPage(origin: string): Promise<Page> {
    const page = await h.context.newPage();
    await page.goto(`${origin}/`);
    expect((await grantForPeriod(h.context, page, { secrets: ['limits'] })).ok).toBe(true);
    return page;
  }

  // 600 events 100 ms apart: a minute, far longer than anything below waits
  const longStream = () => `http://${api.host}/v1/stream?n=600&gap=100`;

  it('one origin holding streams cannot starve another origin calling the same host', async () => {
    const hog = await grantedPage(`http://127.0.0.1:${app.port}`);
    const fair = await grantedPage(`http://localhost:${app.port}`);
    const heads = await openStreams(hog, longStream(), 6);
    const admitted = heads.filter((x) => x === 200).length;
    expect(heads.filter((x) => x === 'error 4429').length).toBe(6 - admitted);
    expect(admitted).toBeGreaterThan(0);
    expect(admitted).toBeLessThan(6);
    // the other origin's call to the same host is answered while the hog's streams still run
    const answer = await request<{ status: number }>(fair, 'keyhole_fetch', { secret: 'limits', url: `http://${api.host}/v1/echo` });
    expect(answer).toMatchObject({ ok: true, result: { status: 200 } });
    await hog.close();
    // every admitted stream was cut off by the close, none had run to its end
    await expect.poll(() => api.abandoned()).toBe(admitted);
    await fair.close();
  });

  it('lock ends the brokered streams in flight: the page hears 4900 and the API connection closes', async () => {
    const before = api.abandoned();
    const page = await grantedPage(`http://127.0.0.1:${app.port}`);
    expect(await openStreams(page, longStream(), 2)).toEqual([200, 200]);
    expect(await rpc(options, 'vault.lock')).toMatchObject({ ok: true });
    await expect.poll(() => page.evaluate(() => (window as unknown as { streamErrors: number[] }).streamErrors)).toEqual([4900, 4900]);
    await expect.poll(() => api.abandoned()).toBe(before + 2);
    await rpc(options, 'vault.unlock', { passphrase: PASSPHRASE });
    await page.close();
  });

  it('revoking a grant ends its streams in flight (4100)', async () => {
    const before = api.abandoned();
    const page = await grantedPage(`http://127.0.0.1:${app.port}`);
    expect(await openStreams(page, longStream(), 1)).toEqual([200]);
    const grants = await request<{ id: string }[]>(page, 'keyhole_getGrants');
    const id = grants.ok ? grants.result[0]?.id : undefined;
    expect(await rpc(options, 'grants.revoke', { id })).toMatchObject({ ok: true });
    await expect.poll(() => page.evaluate(() => (window as unknown as { streamErrors: number[] }).streamErrors)).toEqual([4100]);
    await expect.poll(() => api.abandoned()).toBe(before + 1);
    await page.close();
  });
});
