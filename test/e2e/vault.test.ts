/**
 * The foundation's end-to-end path in Debian's Chromium with the built extension:
 * create -> add secret -> lock -> stop worker -> unlock -> list and reveal; unlock survives a
 * worker stop; a browser restart comes back locked; a wrong passphrase fails clearly.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { type Harness, launch, newProfileDir, OPTIONS, POPUP, rpc } from '../harness/browser.ts';

const PASSPHRASE = 'correct horse battery staple FAKE';
const VALUE = 'sk-FAKE-e2e-0123456789abcdef';

describe('vault in the real extension', () => {
  const profile = newProfileDir();
  let h: Harness;
  afterAll(async () => {
    await h?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  it('creates a vault in the popup', async () => {
    h = await launch({ profile });
    const popup = await h.open(POPUP);
    await expect.poll(() => popup.locator('#app').getAttribute('data-state')).toBe('uninitialized');
    await popup.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
    await popup.getByLabel('Confirm passphrase').fill(PASSPHRASE);
    await popup.getByRole('button', { name: 'Create vault' }).click();
    await expect.poll(() => popup.locator('#app').getAttribute('data-state')).toBe('unlocked');
    await popup.close();
  });

  it('adds a secret in the options page with a preset', async () => {
    const options = await h.open(OPTIONS);
    await options.getByRole('button', { name: 'Add secret' }).click();
    await options.getByLabel('Name', { exact: true }).fill('openai-fake');
    await options.getByLabel('Preset', { exact: true }).selectOption('openai');
    await options.getByLabel('Value', { exact: true }).fill(VALUE);
    await options.getByRole('button', { name: 'Save secret' }).click();
    const row = options.locator('tr[data-secret="openai-fake"]');
    await expect.poll(() => row.count()).toBe(1);
    expect(await row.textContent()).toContain('api.openai.com');
    expect(await options.content()).not.toContain(VALUE); // listing shows metadata only
    await options.close();
  });

  it('locks, survives a worker stop locked, then unlocks and reveals', async () => {
    const popup = await h.open(POPUP);
    await expect.poll(() => popup.locator('#app').getAttribute('data-state')).toBe('unlocked');
    await popup.getByRole('button', { name: 'Lock' }).click();
    await expect.poll(() => popup.locator('#app').getAttribute('data-state')).toBe('locked');
    const stop = await h.stopWorker();
    await popup.reload();
    await expect.poll(() => popup.locator('#app').getAttribute('data-state')).toBe('locked');
    expect(await stop.restarted()).toBe(true);
    await popup.getByLabel('Passphrase').fill(PASSPHRASE);
    await popup.getByRole('button', { name: 'Unlock' }).click();
    await expect.poll(() => popup.locator('#app').getAttribute('data-state')).toBe('unlocked');

    const options = await h.open(OPTIONS);
    await expect.poll(() => options.locator('tr[data-secret="openai-fake"]').count()).toBe(1);
    await options.getByRole('button', { name: 'Reveal openai-fake' }).click();
    await options.locator('dialog').getByLabel('Passphrase').fill(PASSPHRASE);
    await options.locator('dialog').getByRole('button', { name: 'Reveal' }).click();
    await expect.poll(() => options.locator('#revealed-value').textContent()).toBe(VALUE);
    await options.close();
    await popup.close();
  });

  it('stays unlocked across a worker stop', async () => {
    const page = await h.open(POPUP);
    expect((await rpc<{ result: { state: string } }>(page, 'status')).result.state).toBe('unlocked');
    const stop = await h.stopWorker();
    const res = await rpc<{ ok: boolean; result: { secrets: { name: string }[] } }>(page, 'secrets.list');
    expect(await stop.restarted()).toBe(true); // a new worker answered, with no keys in its memory
    expect(res.ok).toBe(true);
    expect(res.result.secrets.map((s) => s.name)).toEqual(['openai-fake']);
    await page.close();
  });

  it('comes back locked after a browser restart on the same profile', async () => {
    await h.close();
    h = await launch({ profile });
    const page = await h.open(POPUP);
    await expect.poll(() => page.locator('#app').getAttribute('data-state')).toBe('locked');
    const res = await rpc<{ ok: boolean; error: { code: string } }>(page, 'secrets.list');
    expect(res).toMatchObject({ ok: false, error: { code: 'locked' } });
  });

  it('a wrong passphrase fails clearly, leaves the vault untouched, and the right one still works', async () => {
    const popup = await h.open(POPUP);
    await popup.getByLabel('Passphrase').fill('not the passphrase at all');
    await popup.getByRole('button', { name: 'Unlock' }).click();
    await expect.poll(() => popup.getByRole('alert').textContent()).toContain('Wrong passphrase');
    expect(await popup.locator('#app').getAttribute('data-state')).toBe('locked');
    const ok = await rpc<{ ok: boolean; result: { state: string } }>(popup, 'vault.unlock', { passphrase: PASSPHRASE });
    expect(ok.result.state).toBe('unlocked');
    const list = await rpc<{ result: { secrets: { name: string }[] } }>(popup, 'secrets.list');
    expect(list.result.secrets.map((s) => s.name)).toEqual(['openai-fake']);
  });
});
