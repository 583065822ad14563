/**
 * The README recipe for an agent harness that drives a browser with Playwright: Chromium with
 * Keyhole on a prepared profile. The harness (trusted code) unlocks the vault and grants the
 * site transparent access; the model it serves only ever acts on and reads web pages, and
 * nothing it can read holds the key.
 */
import { rmSync } from 'node:fs';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch, newProfileDir, OPTIONS, rpc } from '../harness/browser.ts';
import { findEncodings } from '../harness/scan.ts';
import { openaiApp, openaiServer } from '../harness/servers.ts';

const PASSPHRASE = 'harness recipe passphrase FAKE';
const VALUE = 'sk-FAKE-harness-recipe-77aa';

describe('agent harness recipe (README)', () => {
  const profile = newProfileDir('harness-');
  let api: Awaited<ReturnType<typeof openaiServer>>;
  let app: Awaited<ReturnType<typeof openaiApp>>;

  beforeAll(async () => {
    [api, app] = await Promise.all([openaiServer(), openaiApp()]);
    // Once, by the person: a profile with a vault and the secret (here through the same RPC the options page uses).
    const h = await launch({ profile });
    const options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await rpc(options, 'secrets.create', {
      name: 'openai',
      value: VALUE,
      rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
    });
    await h.close();
  });
  afterAll(async () => {
    await Promise.all([api?.close(), app?.close()]);
    rmSync(profile, { recursive: true, force: true });
  });

  it('the harness unlocks and grants; the model drives the page; the API gets the key, the model never sees it', async () => {
    // 1. The harness starts Chromium with Keyhole on the prepared profile: the vault is locked.
    const h = await launch({ profile });
    try {
      const ext = await h.open(OPTIONS);
      expect(await rpc(ext, 'status')).toMatchObject({ result: { state: 'locked' } });
      // 2. Trusted harness code unlocks (its passphrase comes from the harness's own config, never from the model)
      //    and lets the site the model will work on use the secret, in transparent mode.
      await rpc(ext, 'vault.unlock', { passphrase: PASSPHRASE });
      const secrets = await rpc<{ result: { secrets: { id: string }[] } }>(ext, 'secrets.list');
      const site = `http://127.0.0.1:${app.port}`;
      await rpc(ext, 'grants.create', { origin: site, secretId: secrets.result.secrets[0]?.id, ttlSeconds: 3600 });
      await ext.close();

      // 3. The model's tools: navigate, click, type, read the page. That is all it gets.
      const seen: string[] = [];
      const page: Page = await h.context.newPage();
      const tools = {
        navigate: async (url: string) => {
          await page.goto(url);
          await page.waitForFunction(() => (window as { openaiReady?: boolean }).openaiReady === true);
        },
        // the page's own code calls the API with a placeholder key, as any bring-your-own-key app does
        run: async () =>
          page.evaluate(
            (base) => (window as unknown as { askOpenAI(b: string): Promise<string> }).askOpenAI(base),
            `http://${api.host}/v1`,
          ),
        read: async () => page.content(),
      };
      await tools.navigate(`${site}/`);
      await expect
        .poll(async () => {
          seen.push(await tools.run());
          return api.auths.at(-1);
        })
        .toBe(`Bearer ${VALUE}`);
      seen.push(await tools.read());
      seen.push(JSON.stringify(await page.evaluate(() => ({ ...localStorage, ...sessionStorage, cookie: document.cookie }))));
      expect(seen[0]).toBe('hello from the fake API');
      expect(findEncodings(seen.join('\n'), VALUE)).toEqual([]);
    } finally {
      await h.close();
    }
  });
});
