/**
 * The add-on's Firefox build in Firefox ESR (issue 17, first part): installed from dist-firefox/,
 * its event page holds the vault as Chromium's worker does: create, a secret, lock, a wrong and
 * a right passphrase, the options page drawn from it, and the vault as it was after longer than
 * the event page's idle timeout without a call; the settings' Firefox notes (no locked-screen lock,
 * no passkey). The shared e2e core in both browsers is later work.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIST } from '../harness/browser.ts';
import { FIREFOX_DIST, type FirefoxHarness, launchFirefox, rpc } from '../harness/firefox.ts';

const PASSPHRASE = 'firefox passphrase FAKE';
const OPTIONS = 'src/options/index.html';
type Res<T> = { ok: boolean; result: T; error?: { code: string } };

const manifestOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
const files = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));

describe('one source, two manifests', () => {
  it('Firefox gets an event page, the gecko settings and no Chromium-only key or API; Chromium gets none of Firefox’s', () => {
    const ff = manifestOf(FIREFOX_DIST);
    expect(ff.background.scripts).toHaveLength(1);
    expect(ff.background.service_worker).toBeUndefined();
    expect(ff.browser_specific_settings.gecko).toEqual({
      id: 'keyhole@keyhole.dev',
      strict_min_version: '140.0',
      data_collection_permissions: { required: ['none'] },
    });
    expect(ff.minimum_chrome_version).toBeUndefined();
    expect(ff.permissions).not.toContain('offscreen');
    const scripts = files(FIREFOX_DIST).filter((f) => f.endsWith('.js'));
    expect(scripts.filter((f) => readFileSync(f, 'utf8').includes('chrome.offscreen'))).toEqual([]);
    const chrome = manifestOf(DIST);
    expect(chrome.browser_specific_settings).toBeUndefined();
    expect(chrome.background.service_worker).toBeDefined();
    expect(chrome.permissions).toContain('offscreen');
    expect(ff.version).toBe(chrome.version);
  });
});

describe('the Firefox build in Firefox ESR', () => {
  let ff: FirefoxHarness;

  beforeAll(async () => {
    // the event page is suspended after 3 s idle here (30 s by default; the pref is in ms), to show it comes back
    ff = await launchFirefox({ prefs: { 'extensions.background.idle.timeout': 3000 } });
  }, 60_000);
  afterAll(async () => {
    await ff?.close();
  });

  it('creates a vault, keeps a secret, locks, refuses a wrong passphrase and unlocks with the right one', async () => {
    const page = await ff.open(OPTIONS);
    const call = <T>(method: string, params?: unknown) => rpc<Res<T>>(page, method, params);
    expect((await call<{ state: string }>('status')).result.state).toBe('uninitialized');
    expect((await call<{ state: string }>('vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' })).result.state).toBe('unlocked');
    const rule = { hosts: ['api.example.com'], header: 'Authorization', template: 'Bearer {value}' };
    expect((await call('secrets.create', { name: 'openai', value: 'sk-FAKE-firefox-1', rule })).ok).toBe(true);
    expect((await call<{ secrets: { name: string }[] }>('secrets.list')).result.secrets.map((s) => s.name)).toEqual(['openai']);
    expect((await call<{ state: string }>('vault.lock')).result.state).toBe('locked');
    expect((await call('secrets.list')).error?.code).toBe('locked');
    expect((await call('vault.unlock', { passphrase: 'not the passphrase FAKE' })).error?.code).toBe('wrong-passphrase');
    expect((await call<{ state: string }>('vault.unlock', { passphrase: PASSPHRASE })).result.state).toBe('unlocked');
    // the options page, drawn from the event page's answers, lists it
    const shown = await ff.open(OPTIONS);
    await shown.waitForSelector('tr[data-secret="openai"]', { timeout: 15_000 });
    await Promise.all([page.close(), shown.close()]);
  });

  it('after longer than the event page’s idle timeout without a call, the next call is answered and the vault is as it was', async () => {
    const page = await ff.open(OPTIONS);
    const call = <T>(method: string, params?: unknown) => rpc<Res<T>>(page, method, params);
    // no call for a while: Firefox suspends the event page (its idle timeout is 3 s here)
    await new Promise((r) => setTimeout(r, 8_000));
    expect((await call<{ state: string }>('status')).result.state).toBe('unlocked');
    expect((await call<{ secrets: { name: string }[] }>('secrets.list')).result.secrets.map((s) => s.name)).toEqual(['openai']);
    await page.close();
  });

  it('the settings say Firefox cannot lock on a locked screen, and offer no passkey (none from an add-on in ESR)', async () => {
    const page = await ff.open(`${OPTIONS}#settings`);
    await page.waitForSelector('#lock-system-hint', { timeout: 15_000 });
    expect(await page.$eval('#lock-system', (e) => [(e as HTMLInputElement).disabled, e.getAttribute('aria-describedby')])).toEqual([
      true,
      'lock-system-hint',
    ]);
    await page.waitForSelector('#settings-form');
    expect(await page.$$eval('#passkeys *', (els) => els.length)).toBe(0);
    expect(await page.$('#unlock-passkey')).toBeNull();
    await page.close();
  });
});
