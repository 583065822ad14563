/**
 * What a copied profile gives away. With the vault unlocked, the browser is SIGKILLed and its
 * profile copied: the copy holds neither the passphrase nor the secret value in any encoding
 * (while a planted control string is found, so the scan sees what the profile stores), and
 * the copy opened without the passphrase is locked and decrypts nothing.
 */
import { cpSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { type Harness, launch, newProfileDir, OPTIONS, POPUP, rpc } from '../harness/browser.ts';
import { scanDir } from '../harness/scan.ts';

const PASSPHRASE = `FAKE-passphrase-${crypto.randomUUID().slice(0, 8)}`;
const VALUE = `sk-FAKE-canary-${crypto.randomUUID().replaceAll('-', '')}`;
const CONTROL = `FAKE-control-${crypto.randomUUID().replaceAll('-', '')}`;

type Res<T> = { ok: boolean; result: T; error: { code: string } };

describe('a copied profile', () => {
  let h: Harness | undefined;
  const original = newProfileDir('atrest-');
  const copy = newProfileDir('atrest-copy-');
  afterAll(async () => {
    await h?.close();
    for (const dir of [original, copy]) rmSync(dir, { recursive: true, force: true });
  });

  it('is taken from a browser killed while unlocked, after real typing in the popup and options', async () => {
    h = await launch({ profile: original });
    const popup = await h.open(POPUP);
    await popup.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
    await popup.getByLabel('Confirm passphrase').fill(PASSPHRASE);
    await popup.getByRole('button', { name: 'Create vault' }).click();
    await expect.poll(() => popup.locator('#app').getAttribute('data-state')).toBe('unlocked');

    const options = await h.open(OPTIONS);
    await options.getByRole('button', { name: 'Add secret' }).click();
    await options.getByLabel('Name', { exact: true }).fill('canary');
    await options.getByLabel('Value', { exact: true }).fill(VALUE);
    await options.getByRole('button', { name: 'Save secret' }).click();
    await expect.poll(() => options.locator('tr[data-secret="canary"]').count()).toBe(1);
    // reveal it once, so the value has been in a page's DOM
    await options.getByRole('button', { name: 'Reveal canary' }).click();
    await options.locator('dialog').getByLabel('Passphrase').fill(PASSPHRASE);
    await options.locator('dialog').getByRole('button', { name: 'Reveal' }).click();
    await expect.poll(() => options.locator('#revealed-value').textContent()).toBe(VALUE);

    // Positive control: the same kind of string, stored in plain text in the extension's own
    // IndexedDB (where the vault lives) and in chrome.storage.local.
    await options.evaluate(async (control) => {
      await chrome.storage.local.set({ control });
      await new Promise<void>((resolve, reject) => {
        const req = indexedDB.open('scan-control', 1);
        req.onupgradeneeded = () => req.result.createObjectStore('s');
        req.onsuccess = () => {
          const tx = req.result.transaction('s', 'readwrite');
          tx.objectStore('s').put({ control }, 'k');
          tx.oncomplete = () => resolve();
          tx.onerror = () => reject(tx.error);
        };
      });
    }, CONTROL);
    expect((await rpc<Res<{ state: string }>>(popup, 'status')).result.state).toBe('unlocked');

    await h.kill();
    h = undefined;
    cpSync(original, copy, { recursive: true });
  });

  it('does contain the control string (the scan sees what the profile stores)', () => {
    const hits = scanDir(copy, CONTROL);
    expect(hits.length).toBeGreaterThan(0);
    expect(hits.some((x) => x.file.includes('IndexedDB'))).toBe(true);
  });

  it('contains neither the secret value nor the passphrase, in any encoding', () => {
    expect(scanDir(copy, VALUE)).toEqual([]);
    expect(scanDir(copy, PASSPHRASE)).toEqual([]);
  });

  it('opens locked without the passphrase and decrypts nothing', async () => {
    h = await launch({ profile: copy });
    const page = await h.open(OPTIONS);
    expect((await rpc<Res<{ state: string }>>(page, 'status')).result.state).toBe('locked');
    expect(await rpc<Res<unknown>>(page, 'secrets.list')).toMatchObject({ ok: false, error: { code: 'locked' } });
    expect(await rpc<Res<unknown>>(page, 'vault.unlock', { passphrase: 'a guess that is wrong' })).toMatchObject({
      ok: false,
      error: { code: 'wrong-passphrase' },
    });
    const session = await page.evaluate(() => chrome.storage.session.get(null));
    expect(JSON.stringify(session)).not.toContain(VALUE);
    expect(session['keyhole.session']).toBeUndefined(); // no session survived the kill
    expect(await page.evaluate(() => chrome.declarativeNetRequest.getSessionRules())).toEqual([]);
    // and the copy is the real vault: only the passphrase opens it
    expect((await rpc<Res<{ state: string }>>(page, 'vault.unlock', { passphrase: PASSPHRASE })).result.state).toBe('unlocked');
    const list = await rpc<Res<{ secrets: { name: string }[] }>>(page, 'secrets.list');
    expect(list.result.secrets.map((s) => s.name)).toEqual(['canary']);
  });
});
