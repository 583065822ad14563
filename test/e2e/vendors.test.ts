/**
 * The vendors' current SDKs, unmodified, through Keyhole (issue 12, item 11): openai 7,
 * @anthropic-ai/sdk 1.x and @google/genai 3.x, each with a placeholder key, in transparent mode
 * (DNR sets the vendor's header and takes the SDK's own credential headers off) and in brokered
 * mode (the SDK takes the Keyhole SDK's fetchFor as its fetch). The local API answers like the
 * vendors' and accepts a request only with exactly the real key in the vendor's header and no
 * other credential header; a Keyhole refusal reaches the SDK as an API error with Keyhole's code.
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRESETS } from '../../src/core/agents/policy.ts';
import { type Harness, launch, OPTIONS, rpc } from '../harness/browser.ts';
import { approve, request } from '../harness/provider.ts';
import { type VendorId, vendorApis, vendorApp } from '../harness/vendors.ts';

const PASSPHRASE = 'vendors test passphrase FAKE';
const KEYS: Record<VendorId, string> = {
  openai: 'sk-FAKE-openai-vendor-7a7a',
  anthropic: 'sk-ant-FAKE-vendor-8b8b',
  'google-ai': 'AIzaFAKE-vendor-9c9c',
};
const VENDORS = Object.keys(KEYS) as VendorId[];

/** Runs one vendor's SDK in the page (placeholder key); `broker` passes keyhole.fetchFor(secret) as its fetch. */
function callVendor(
  page: Page,
  vendor: VendorId,
  base: string,
  broker: boolean,
  stream = false,
): Promise<{ ok: boolean; text: string; status?: number }> {
  return page.evaluate(
    async ([v, baseUrl, viaBroker, streaming]) => {
      const w = window as unknown as {
        vendors: Record<
          'OpenAI' | 'Anthropic' | 'GoogleGenAI',
          new (
            o: Record<string, unknown>,
          ) => Record<string, Record<string, (...a: unknown[]) => Promise<unknown>>>
        >;
        keyhole: { connect: () => Promise<{ fetchFor: (s: string) => typeof fetch }> };
      };
      const fetchFor = viaBroker ? (await w.keyhole.connect()).fetchFor(v) : undefined;
      try {
        if (v === 'openai') {
          const client = new w.vendors.OpenAI({
            apiKey: 'sk-placeholder',
            baseURL: `${baseUrl}/v1`,
            dangerouslyAllowBrowser: true,
            maxRetries: 0,
            ...(fetchFor ? { fetch: fetchFor } : {}),
          });
          const completions = (client as unknown as { chat: { completions: { create: (a: unknown) => Promise<unknown> } } }).chat
            .completions;
          if (streaming) {
            const s = (await completions.create({
              model: 'm',
              stream: true,
              messages: [{ role: 'user', content: 'hi' }],
            })) as AsyncIterable<{ choices: { delta: { content?: string } }[] }>;
            let text = '';
            for await (const chunk of s) text += chunk.choices[0]?.delta.content ?? '';
            return { ok: true, text: text.trim() };
          }
          const r = (await completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })) as {
            choices: { message: { content: string } }[];
          };
          return { ok: true, text: r.choices[0]?.message.content ?? '' };
        }
        if (v === 'anthropic') {
          const client = new w.vendors.Anthropic({
            apiKey: 'sk-ant-placeholder',
            baseURL: baseUrl,
            dangerouslyAllowBrowser: true,
            maxRetries: 0,
            ...(fetchFor ? { fetch: fetchFor } : {}),
          });
          const r = (await (client.messages as { create: (a: unknown) => Promise<unknown> }).create({
            model: 'm',
            max_tokens: 10,
            messages: [{ role: 'user', content: 'hi' }],
          })) as {
            content: { text: string }[];
          };
          return { ok: true, text: r.content[0]?.text ?? '' };
        }
        const client = new w.vendors.GoogleGenAI({
          apiKey: 'AIza-placeholder',
          httpOptions: { baseUrl, ...(fetchFor ? { fetch: fetchFor } : {}) },
        });
        const r = (await (client.models as { generateContent: (a: unknown) => Promise<unknown> }).generateContent({
          model: 'gemini-fake',
          contents: 'hi',
        })) as { text: string };
        return { ok: true, text: r.text };
      } catch (e) {
        const x = e as { status?: number; message?: string };
        return { ok: false, text: String(x.message), status: x.status };
      }
    },
    [vendor, base, broker, stream] as const,
  );
}

describe('the vendors’ SDKs as they are', () => {
  let h: Harness;
  let api: Awaited<ReturnType<typeof vendorApis>>;
  let app: Awaited<ReturnType<typeof vendorApp>>;
  let options: Page;

  beforeAll(async () => {
    [api, app] = await Promise.all([vendorApis(KEYS), vendorApp()]);
    h = await launch();
    options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    // each secret uses its vendor's preset, bound to the local API in place of the vendor's host
    for (const vendor of VENDORS) {
      const preset = PRESETS.find((p) => p.id === vendor)?.rule;
      await rpc(options, 'secrets.create', { name: vendor, value: KEYS[vendor], rule: { ...preset, hosts: [api.host(vendor)] } });
    }
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([api?.close(), app?.close()]);
  });

  async function openApp(name: string): Promise<Page> {
    const page = await h.context.newPage();
    await page.goto(`http://${name}.localhost:${app.port}/`);
    await page.waitForFunction(() => (window as { vendorsReady?: boolean }).vendorsReady === true);
    return page;
  }

  async function grant(page: Page, mode: 'broker' | 'transparent'): Promise<void> {
    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('/src/popup/consent.html') });
    const answer = request(page, 'keyhole_requestGrant', { secrets: VENDORS, mode });
    await approve(await shown, '#allow-period');
    expect((await answer).ok).toBe(true);
  }

  const base = (vendor: VendorId) => `http://${api.host(vendor)}`;

  for (const mode of ['transparent', 'broker'] as const) {
    it(`${mode}: each SDK, with a placeholder key, reaches its API with the real key and nothing else`, async () => {
      const page = await openApp(mode);
      await grant(page, mode);
      for (const vendor of VENDORS) {
        const before = api.calls.length;
        const result = await callVendor(page, vendor, base(vendor), mode === 'broker');
        const call = api.calls.at(-1);
        expect({ vendor, result, calls: api.calls.length - before, accepted: call?.accepted }).toEqual({
          vendor,
          result: { ok: true, text: 'hello from the fake vendor API' },
          calls: 1,
          accepted: true,
        });
        // the SDK's own placeholder went nowhere
        expect(JSON.stringify(call?.headers)).not.toContain('placeholder');
      }
      await page.close();
    });
  }

  it('broker: a streamed completion from the openai SDK through fetchFor', async () => {
    const page = await openApp('stream');
    await grant(page, 'broker');
    expect(await callVendor(page, 'openai', base('openai'), true, true)).toEqual({ ok: true, text: 'hello from the fake vendor API' });
    await page.close();
  });

  it('broker: a Keyhole refusal reaches the SDK as an API error with Keyhole’s code and message', async () => {
    const page = await openApp('refused'); // no grant
    for (const vendor of VENDORS) {
      const r = await callVendor(page, vendor, base(vendor), true);
      expect(r.ok).toBe(false);
      expect(r.text).toContain('Keyhole 4100');
      expect(r.text).not.toMatch(/connection error/i);
    }
    const openai = await callVendor(page, 'openai', base('openai'), true);
    expect(openai.status).toBe(403);
    // locked: 423, "The Keyhole vault is locked."
    await rpc(options, 'vault.lock');
    const locked = await callVendor(page, 'anthropic', base('anthropic'), true);
    expect(locked).toMatchObject({ ok: false, status: 423 });
    expect(locked.text).toContain('Keyhole 4900');
    await rpc(options, 'vault.unlock', { passphrase: PASSPHRASE });
    await page.close();
  });
});
