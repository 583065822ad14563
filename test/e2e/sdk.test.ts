/**
 * The SDK and the demo agent: the whole loop a newcomer sees with `npm start`, plus the SDK's
 * own promises: fetch() returns a real streaming Response, errors are typed, and a browser
 * without Keyhole gets a clear "not installed" error.
 */
import { chromium } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, CHROMIUM_ARGS, type Harness, launch, OPTIONS, rpc } from '../harness/browser.ts';
import { DEMO_SECRET, DEMO_VALUE, type Demo, SDK_PATH, startDemo } from '../harness/demo.ts';
import { approve } from '../harness/provider.ts';

/** Imports the built SDK into the page as a web app would, exposing it as window.__sdk. */
async function loadSdk(page: import('playwright').Page): Promise<void> {
  await page.addScriptTag({ type: 'module', content: `import * as sdk from '${SDK_PATH}'; window.__sdk = sdk;` });
  await page.waitForFunction(() => '__sdk' in window);
}

describe('SDK and demo agent', () => {
  let h: Harness;
  let demo: Demo;

  beforeAll(async () => {
    demo = await startDemo();
    h = await launch();
    const options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: 'sdk demo passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await rpc(options, 'secrets.create', {
      name: DEMO_SECRET,
      value: DEMO_VALUE,
      rule: { hosts: [demo.apiHost], header: 'Authorization', template: 'Bearer {value}' },
    });
  });
  afterAll(async () => {
    await h?.close();
    await demo?.close();
  });

  it('the demo agent discovers Keyhole, gets a grant and streams an answer through it', async () => {
    const page = await h.context.newPage();
    await page.goto(demo.appUrl);
    await expect.poll(() => page.locator('#status').textContent()).toBe('Keyhole found (vault unlocked).');
    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('consent.html') });
    await page.getByRole('button', { name: 'Ask for access' }).click();
    const consent = await shown;
    expect(await consent.locator('#reason').textContent()).toBe('The demo agent calls the model for you.');
    await consent.waitForSelector('#allow-period:not([disabled])');
    await approve(consent, '#allow-period');
    await expect.poll(() => page.locator('#status').textContent()).toContain('Access granted');
    await page.getByRole('button', { name: 'Ask the model' }).click();
    await expect.poll(() => page.locator('#status').textContent()).toBe('Answer streamed through Keyhole (HTTP 200).');
    expect(await page.locator('#answer').textContent()).toBe(
      'Hello, newcomer! This answer came from the API, and the page never saw the key.',
    );
    expect(demo.keysSeen.at(-1)).toBe(`Bearer ${DEMO_VALUE}`);
    expect(await page.content()).not.toContain(DEMO_VALUE);
  });

  it('fetch() returns a real Response with a streaming body; refusals are KeyholeError with the code', async () => {
    const page = await h.context.newPage();
    await page.goto(demo.appUrl);
    await loadSdk(page);
    const out = await page.evaluate(
      async ([secret, api]) => {
        // biome-ignore lint/suspicious/noExplicitAny: the SDK module as the page sees it
        const sdk = (window as any).__sdk;
        const keyhole = await sdk.connect();
        const res: Response = await keyhole.fetch(secret, `http://${api}/v1/chat/completions`, { method: 'POST', body: '{}' });
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        let chunks = 0;
        for (;;) {
          const { done } = await reader.read();
          if (done) break;
          chunks++;
        }
        let refused: unknown;
        try {
          await keyhole.fetch('no-such-secret', `http://${api}/`);
        } catch (e) {
          refused = { isKeyholeError: e instanceof sdk.KeyholeError, code: (e as { code: number }).code };
        }
        return { isResponse: res instanceof Response, status: res.status, type: res.headers.get('content-type'), chunks, refused };
      },
      [DEMO_SECRET, demo.apiHost] as const,
    );
    expect(out).toMatchObject({ isResponse: true, status: 200, type: 'text/event-stream', refused: { isKeyholeError: true, code: 4100 } });
    expect(out.chunks).toBeGreaterThan(1);
  });

  it('in a browser without Keyhole, connect() fails with KeyholeNotInstalledError', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      await page.goto(demo.appUrl);
      await expect.poll(() => page.locator('#status').textContent(), { timeout: 5000 }).toBe('Keyhole is not installed in this browser.');
      await loadSdk(page);
      const err = await page.evaluate(async () => {
        const sdk = (window as unknown as { __sdk: { connect(o: unknown): Promise<unknown> } }).__sdk;
        return sdk.connect({ timeoutMs: 200 }).then(
          () => null,
          (e: Error) => e.name,
        );
      });
      expect(err).toBe('KeyholeNotInstalledError');
    } finally {
      await browser.close();
    }
  });
});
