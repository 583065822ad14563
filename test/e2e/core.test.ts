/**
 * The e2e core, one source run in Chromium and in Firefox ESR (issue 17, item 2): create, lock,
 * unlock, a secret, the background stopped as the browser stops it, a web page finding the
 * provider, consent denied and allowed (a held pointer), a brokered call streaming its answer, the
 * canary search over what a page gets back, and a transparent call. The Chromium-only suites go
 * deeper into each; this shows the same product works in both browsers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOLD_FOR_MS } from '../harness/provider.ts';
import { type ApiServer, apiServer, appServer, openaiServer } from '../harness/servers.ts';
import { type AnyBrowser, type AnyPage, type BrowserName, launchBrowser, rpc } from '../harness/two-browsers.ts';

const PASSPHRASE = 'core passphrase FAKE';
const CANARY = `sk-FAKE-core-canary-${crypto.randomUUID().slice(0, 8)}`;
const TRANSPARENT = `sk-FAKE-core-transparent-${crypto.randomUUID().slice(0, 8)}`;

type Answer<T> = { ok: true; result: T } | { ok: false; error: { code: number; message: string } };

/** provider.request in a web page, found as an app finds it; errors come back as data */
const request = <T>(p: AnyPage, method: string, params?: unknown) =>
  p.evaluate(
    ({ m, x }) =>
      new Promise((resolve) => {
        addEventListener(
          'keyhole:announceProvider',
          (e) =>
            (e as CustomEvent).detail.provider.request({ method: m, params: x }).then(
              (result: unknown) => resolve({ ok: true, result } as never),
              (err: { code: number; message: string }) => resolve({ ok: false, error: { code: err.code, message: err.message } }),
            ),
          { once: true },
        );
        dispatchEvent(new Event('keyhole:requestProvider'));
      }),
    { m: method, x: params },
  ) as Promise<Answer<T>>;

for (const name of ['chromium', 'firefox'] as BrowserName[]) {
  describe(`the e2e core in ${name}`, () => {
    let b: AnyBrowser;
    let api: ApiServer;
    let app: Awaited<ReturnType<typeof appServer>>;
    /** an API that answers pages (CORS), for the transparent call */
    let openai: Awaited<ReturnType<typeof openaiServer>>;
    let options: AnyPage;
    let web: AnyPage;
    const rule = () => ({ hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' });

    beforeAll(async () => {
      [api, app, openai] = await Promise.all([apiServer(), appServer(), openaiServer()]);
      b = await launchBrowser(name);
      options = await b.extensionPage('src/options/index.html');
    }, 90_000);
    afterAll(async () => {
      await b?.close();
      await Promise.all([api?.close(), app?.close(), openai?.close()]);
    });

    it('creates a vault, locks it, refuses a wrong passphrase and unlocks with the right one', async () => {
      expect((await rpc<{ state: string }>(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' })).result.state).toBe(
        'unlocked',
      );
      expect((await rpc<{ state: string }>(options, 'vault.lock')).result.state).toBe('locked');
      expect((await rpc(options, 'vault.unlock', { passphrase: 'not it FAKE' })).error?.code).toBe('wrong-passphrase');
      expect((await rpc<{ state: string }>(options, 'vault.unlock', { passphrase: PASSPHRASE })).result.state).toBe('unlocked');
    });

    it('keeps secrets', async () => {
      for (const [n, value] of [
        ['canary', CANARY],
        ['denied-fake', 'sk-FAKE-core-denied'],
      ])
        expect((await rpc(options, 'secrets.create', { name: n, value, rule: rule() })).ok).toBe(true);
      const openaiRule = { hosts: [openai.host], header: 'Authorization', template: 'Bearer {value}' };
      expect((await rpc(options, 'secrets.create', { name: 'transparent-fake', value: TRANSPARENT, rule: openaiRule })).ok).toBe(true);
      expect((await rpc<{ secrets: { name: string }[] }>(options, 'secrets.list')).result.secrets.map((s) => s.name)).toEqual([
        'canary',
        'denied-fake',
        'transparent-fake',
      ]);
    });

    it('the background stopped as the browser stops it comes back on the next call, the vault as it was', async () => {
      await options.close();
      const restarted = await b.suspend();
      options = await b.extensionPage('src/options/index.html');
      expect((await rpc<{ state: string }>(options, 'status')).result.state).toBe('unlocked');
      expect(await restarted()).toBe(true);
      expect((await rpc<{ secrets: unknown[] }>(options, 'secrets.list')).result.secrets).toHaveLength(3);
    }, 60_000);

    it('a web page finds the provider; a denial in the consent window answers 4001', async () => {
      web = await b.webPage(`http://127.0.0.1:${app.port}/`);
      expect(await request(web, 'keyhole_status')).toEqual({ ok: true, result: { state: 'unlocked', version: '0.1.0' } });
      const consent = b.nextConsent();
      const answer = request(web, 'keyhole_requestGrant', { secrets: ['denied-fake'], reason: 'core test' });
      const window = await consent;
      await window.waitFor('#deny');
      await window.click('#deny');
      expect(await answer).toMatchObject({ ok: false, error: { code: 4001 } });
    }, 60_000);

    it('allowed by a held pointer, a brokered call streams its answer, and the page never holds the key', async () => {
      const consent = b.nextConsent();
      const answer = request<{ grants: { secret: string }[] }>(web, 'keyhole_requestGrant', { secrets: ['canary'], reason: 'core test' });
      const window = await consent;
      await window.waitFor('#allow-period:not([disabled])');
      await window.hold('#allow-period', HOLD_FOR_MS);
      expect(await answer).toMatchObject({ ok: true });
      // extension frames the page gets: the lane's, after the first brokered call (Chromium only)
      await web.evaluate(() => {
        const added: string[] = [];
        (window as unknown as { lanes: string[] }).lanes = added;
        new MutationObserver((records) => {
          for (const r of records) for (const n of r.addedNodes) if (n instanceof HTMLIFrameElement) added.push(n.src);
        }).observe(document, { childList: true, subtree: true });
      }, null);

      const streamed = await web.evaluate(
        (url) =>
          new Promise((resolve) => {
            addEventListener(
              'keyhole:announceProvider',
              async (e) => {
                try {
                  const res = await (e as CustomEvent).detail.provider.fetchStream({ secret: 'canary', url });
                  const reader = res.body.getReader();
                  let text = '';
                  let chunks = 0;
                  for (;;) {
                    const { done, value } = await reader.read();
                    if (done) break;
                    chunks++;
                    text += new TextDecoder().decode(value);
                  }
                  resolve({ status: res.status, chunks, text });
                } catch (err) {
                  resolve({ error: (err as { code?: number }).code ?? String(err) });
                }
              },
              { once: true },
            );
            dispatchEvent(new Event('keyhole:requestProvider'));
          }),
        `http://${api.host}/v1/stream?n=5&gap=50`,
      );
      expect(streamed).toMatchObject({ status: 200 });
      const { chunks, text } = streamed as { chunks: number; text: string };
      expect(chunks).toBeGreaterThanOrEqual(2);
      expect(text.match(/data:/g)).toHaveLength(6); // five events and [DONE]
      expect(text).not.toContain(CANARY); // each event echoes the key: it reaches the page redacted
      expect(api.received.at(-1)?.headers.authorization).toBe(`Bearer ${CANARY}`);
    }, 60_000);

    it('the canary search: an API echoing the key in many encodings gives the page none of them', async () => {
      const echoed = await request<{ status: number; body: string; headers: Record<string, string> }>(web, 'keyhole_fetch', {
        secret: 'canary',
        url: `http://${api.host}/v1/echo-encoded`,
      });
      expect(echoed.ok).toBe(true);
      const seen =
        JSON.stringify(echoed) + (await web.evaluate(() => document.documentElement.outerHTML + JSON.stringify(localStorage), null));
      const b64 = Buffer.from(CANARY).toString('base64');
      for (const form of [
        CANARY,
        b64,
        b64.replace(/=+$/, ''),
        Buffer.from(CANARY).toString('hex'),
        Buffer.from(CANARY).toString('base64url'),
      ])
        expect(seen.includes(form), form.slice(0, 12)).toBe(false);
      expect(api.received.at(-1)?.headers.authorization).toBe(`Bearer ${CANARY}`);
    });

    it(name === 'chromium' ? 'brokered calls moved to a lane' : 'brokered calls stayed on the page port: Firefox has no lane', async () => {
      for (let i = 0; i < 3; i++)
        expect((await request(web, 'keyhole_fetch', { secret: 'canary', url: `http://${api.host}/v1/echo` })).ok).toBe(true);
      const frames = await web.evaluate(() => (window as unknown as { lanes: string[] }).lanes, null);
      if (name === 'chromium') expect(frames.filter((f) => f.endsWith('/src/content/lane.html'))).toHaveLength(1);
      else expect(frames).toEqual([]);
    });

    it('a transparent grant: the page’s own fetch reaches the API with the key added on the way', async () => {
      const consent = b.nextConsent();
      const answer = request(web, 'keyhole_requestGrant', { secrets: ['transparent-fake'], mode: 'transparent', reason: 'core test' });
      const window = await consent;
      await window.waitFor('#allow-period:not([disabled])');
      await window.hold('#allow-period', HOLD_FOR_MS);
      expect(await answer).toMatchObject({ ok: true });
      const status = await web.evaluate(
        (url) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.status),
        `http://${openai.host}/v1/chat/completions`,
      );
      expect(status).toBe(200);
      // the CORS preflight goes without it; the call itself carries the key
      expect(openai.seen.filter((r) => r.method === 'POST').map((r) => r.auth)).toEqual([`Bearer ${TRANSPARENT}`]);
    }, 60_000);
  });
}
