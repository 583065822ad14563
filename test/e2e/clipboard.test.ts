/**
 * A copied value leaves the clipboard after the person's delay even when the options page that
 * copied it is closed, and at once when the vault locks. The clipboard is read from a plain
 * local web page that Playwright grants clipboard-read (it refuses to for extension origins).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc } from '../harness/browser.ts';

const PASSPHRASE = 'clipboard test passphrase FAKE';
const VALUE = 'sk-FAKE-clipboard-0123456789';

describe('clipboard clearing', () => {
  let h: Harness;
  let server: Server;
  let reader: Page;

  beforeAll(async () => {
    server = createServer((_req, res) => res.end('<!doctype html><title>clipboard reader</title>'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    h = await launch();
    await h.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
    reader = await h.context.newPage();
    await reader.goto(origin);
    const setup = await h.open(OPTIONS);
    await rpc(setup, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await rpc(setup, 'secrets.create', {
      name: 'clip-fake',
      value: VALUE,
      rule: { hosts: ['api.example.test'], header: 'Authorization', template: 'Bearer {value}' },
    });
    await setup.close();
  });
  afterAll(async () => {
    await h?.close();
    server?.close();
  });

  const readClipboard = async () => {
    await reader.bringToFront();
    return reader.evaluate(() => navigator.clipboard.readText());
  };
  const writeClipboard = async (text: string) => {
    await reader.bringToFront();
    await reader.evaluate((t) => navigator.clipboard.writeText(t), text);
  };

  async function copyFromOptions(clearSeconds: number): Promise<Page> {
    const options = await h.open(OPTIONS);
    await rpc(options, 'settings.set', { clipboardClearSeconds: clearSeconds });
    await options.reload();
    await options.getByRole('button', { name: 'Reveal clip-fake' }).click();
    await options.locator('dialog').getByLabel('Passphrase').fill(PASSPHRASE);
    await options.locator('dialog').getByRole('button', { name: 'Reveal' }).click();
    await expect.poll(() => options.locator('#revealed-value').textContent()).toBe(VALUE);
    await options.getByRole('button', { name: 'Copy' }).click();
    await expect.poll(() => options.getByText('Copied.').textContent()).toContain(`cleared in ${clearSeconds} s`);
    return options;
  }

  // Reads are few and spaced: in headless Chromium a clipboard read racing the offscreen
  // document's write can lose that write, which a tight polling loop provokes.
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('clears after the delay although the copying page has closed', async () => {
    await writeClipboard('something else');
    const options = await copyFromOptions(5);
    await options.close();
    expect(await readClipboard()).toBe(VALUE); // control: the copy really reached the clipboard
    await sleep(2_000);
    expect(await readClipboard()).toBe(VALUE); // not before the person's delay
    await sleep(5_000);
    expect(await readClipboard()).toBe('');
  });

  it('clears at once when the vault locks', async () => {
    const options = await copyFromOptions(300);
    expect(await readClipboard()).toBe(VALUE);
    await rpc(options, 'vault.lock');
    await sleep(2_500);
    expect(await readClipboard()).toBe('');
    await options.close();
  });
});
