/**
 * The worker's lifetime as Chrome manages it, with no debugger attached to it (Playwright would
 * attach one, and Chrome never stops a worker being debugged): a brokered call whose upstream is
 * silent for longer than Chrome's 30 s idle limit completes because the broker keeps the worker
 * awake, and once idle the worker is stopped, which shows this harness does not keep it alive
 * by itself. The profile is prepared with Playwright, then run in a browser driven by raw-cdp.ts.
 *
 * The silence matters: each message the worker sends on a port also resets Chrome's idle timer
 * (Chrome 114+), so a stream whose events come less than 30 s apart would live without help.
 */

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIST, launch, newProfileDir, OPTIONS, rpc, unpackedExtensionId } from '../harness/browser.ts';
import { grantForPeriod } from '../harness/provider.ts';
import { launchRaw, type RawBrowser } from '../harness/raw-cdp.ts';
import { type ApiServer, apiServer, appServer } from '../harness/servers.ts';

const PASSPHRASE = 'worker lifetime passphrase FAKE';
/**
 * One event, then 95 s of silence before the end: longer than the 60 s between the sync alarm's
 * wake-ups plus the 30 s idle limit, so no other event can carry the worker through it.
 */
const SILENCE_MS = 95_000;

describe('the worker, with no debugger attached', () => {
  let api: ApiServer;
  let app: Awaited<ReturnType<typeof appServer>>;
  let profile: string;
  let raw: RawBrowser | undefined;
  const workerPrefix = `chrome-extension://${unpackedExtensionId(DIST)}/`;

  beforeAll(async () => {
    api = await apiServer();
    app = await appServer();
    profile = newProfileDir('lifetime-');
    const h = await launch({ profile });
    try {
      const options = await h.open(OPTIONS);
      await rpc(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
      await rpc(options, 'secrets.create', {
        name: 'echo-fake',
        value: 'sk-FAKE-lifetime-7c2d',
        rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
      });
      const page = await h.context.newPage();
      await page.goto(`http://127.0.0.1:${app.port}/`);
      expect((await grantForPeriod(h.context, page, { secrets: ['echo-fake'], ttlSeconds: 3600 })).ok).toBe(true);
    } finally {
      await h.close(); // the profile, with its vault and grant, stays
    }
  });
  afterAll(async () => {
    await raw?.close();
    rmSync(profile, { recursive: true, force: true });
    await Promise.all([api?.close(), app?.close()]);
  });

  it('lives through a brokered call silent for longer than 30 s, and is stopped when idle after it', async () => {
    raw = await launchRaw(profile);
    const options = await raw.open(`${workerPrefix}${OPTIONS}`);
    const unlocked = await options.evaluate<{ ok: boolean }>(
      `chrome.runtime.sendMessage({ kh: 1, method: 'vault.unlock', params: { passphrase: ${JSON.stringify(PASSPHRASE)} } })`,
    );
    expect(unlocked.ok).toBe(true);
    await options.close();
    const page = await raw.open(`http://127.0.0.1:${app.port}/`);

    // Watch the worker's target through the call: a stopped worker has none.
    let watching = true;
    let missing = 0;
    const watcher = (async () => {
      while (watching) {
        if ((await raw.workers(workerPrefix)).length === 0) missing++;
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const started = Date.now();
    const result = await page.evaluate<{ ok: boolean; text?: string; error?: { code: number } }>(`new Promise((resolve) => {
      addEventListener('keyhole:announceProvider', async (e) => {
        try {
          const res = await e.detail.provider.fetchStream({ secret: 'echo-fake', url: 'http://${api.host}/v1/stream?n=1&gap=${SILENCE_MS}' });
          resolve({ ok: true, text: await new Response(res.body).text() });
        } catch (err) {
          resolve({ ok: false, error: { code: err.code } });
        }
      }, { once: true });
      dispatchEvent(new Event('keyhole:requestProvider'));
    })`);
    watching = false;
    await watcher;
    const took = Date.now() - started;
    expect(result.ok, JSON.stringify(result.error)).toBe(true);
    expect(result.text?.split('\n\n').filter(Boolean)).toHaveLength(2); // the event and [DONE]
    expect(took).toBeGreaterThan(SILENCE_MS);
    expect(missing).toBe(0);

    // The control: with nothing to do, Chrome stops the same worker in this same browser.
    const idleFrom = Date.now();
    let stopped = false;
    while (!stopped && Date.now() - idleFrom < 75_000) {
      await new Promise((r) => setTimeout(r, 1000));
      stopped = (await raw.workers(workerPrefix)).length === 0;
    }
    expect(stopped).toBe(true);
  }, 240_000);
});
