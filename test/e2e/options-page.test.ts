/**
 * The options page (issue 13, item 9) in Chromium: sections reached from the navigation, by
 * keyboard too, with the focus on the new view's heading; the secrets search; expiry warnings
 * highlighted; a secret's own view with its values: stage, promote, roll back, destroy, and a
 * compromised rotation. Every control has an accessible name. Screenshots of each view are saved
 * under test/.tmp/screens for a person to look at.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpcOk, showSection, TMP } from '../harness/browser.ts';

const PASSPHRASE = 'options page passphrase FAKE';
const SCREENS = join(TMP, 'screens');
const HOUR = 3600 * 1000;

type Summary = { id: string; name: string; values: { n: number; state: string; compromised?: boolean }[] };

describe('the options page', () => {
  let h: Harness;
  let page: Page;

  const ok = <T>(method: string, params?: unknown) => rpcOk<T>(page, method, params);
  const secret = async (name: string) => (await ok<{ secrets: Summary[] }>('secrets.list')).secrets.find((s) => s.name === name) as Summary;
  const rule = (host: string) => ({ hosts: [host], header: 'Authorization', template: 'Bearer {value}' });

  /** Controls without an accessible name (label, aria-label, aria-labelledby or text), by id or tag. */
  const unnamed = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('input, select, textarea, button, a[href]')]
        .filter((el) => !(el as HTMLElement).closest('[hidden]') && (el as HTMLInputElement).type !== 'hidden')
        .filter((el) => {
          const labelled = (el as HTMLInputElement).labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
          return !labelled && !(el.textContent ?? '').trim();
        })
        .map((el) => el.id || el.tagName),
    );

  beforeAll(async () => {
    mkdirSync(SCREENS, { recursive: true });
    h = await launch();
    page = await h.open(OPTIONS);
    await page.setViewportSize({ width: 1100, height: 900 });
    await ok('vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await ok('secrets.create', { name: 'openai-prod', value: 'sk-FAKE-options-1', rule: rule('api.openai.com'), notes: 'the team key' });
    await ok('secrets.create', {
      name: 'stripe-test',
      value: 'sk_test_FAKE-options-2',
      rule: rule('api.stripe.com'),
      expiresAt: Date.now() + 12 * HOUR,
    });
    await ok('secrets.create', {
      name: 'github-ci',
      value: 'ghp_FAKE-options-3',
      rule: rule('api.github.com'),
      expiresAt: Date.now() + 3 * 24 * HOUR,
    });
    await ok('secrets.create', {
      name: 'far-off',
      value: 'FAKE-options-4',
      rule: rule('api.example.com'),
      expiresAt: Date.now() + 60 * 24 * HOUR,
    });
    await page.reload();
    await page.waitForFunction(() => document.getElementById('app')?.dataset.section === 'secrets');
  });
  afterAll(async () => {
    await h?.close();
  });

  it('navigates between its sections, by mouse and by keyboard, with the focus on the new heading', async () => {
    const links = page.locator('nav#sections a');
    expect(await links.allTextContents()).toEqual(['Secrets', 'Sites and grants', 'Sync and team', 'Audit', 'Settings']);
    expect(await page.locator('nav#sections a[aria-current="page"]').textContent()).toBe('Secrets');
    await page.screenshot({ path: join(SCREENS, 'secrets.png'), fullPage: true });
    for (const [id, heading] of [
      ['sites', 'Sites and grants'],
      ['sync', 'Sync and team'],
      ['audit', 'Audit'],
      ['settings', 'Settings'],
    ] as const) {
      await showSection(page, id);
      expect(await page.locator('nav#sections a[aria-current="page"]').getAttribute('id')).toBe(`nav-${id}`);
      await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe(heading);
      expect(await unnamed()).toEqual([]);
      await page.screenshot({ path: join(SCREENS, `${id}.png`), fullPage: true });
    }
    // keyboard: focus the Secrets link and press Enter
    await page.locator('#nav-secrets').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('app')?.dataset.section === 'secrets');
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('section-h');
    // the browser's back button goes to the section before
    await page.goBack();
    await page.waitForFunction(() => document.getElementById('app')?.dataset.section === 'settings');
  });

  it('searches secrets by name, host, notes and kind, and says how many match', async () => {
    await showSection(page, 'secrets');
    const visible = () =>
      page.locator('#secrets tbody tr:not([hidden])').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-secret')));
    await expect.poll(visible).toHaveLength(4); // the section is shown before its list arrives
    await page.getByLabel('Search secrets').fill('stripe');
    expect(await visible()).toEqual(['stripe-test']);
    expect(await page.locator('#secret-count').textContent()).toBe('1 of 4 secrets match');
    await page.getByLabel('Search secrets').fill('api.github');
    expect(await visible()).toEqual(['github-ci']);
    await page.getByLabel('Search secrets').fill('TEAM KEY');
    expect(await visible()).toEqual(['openai-prod']);
    await page.getByLabel('Search secrets').fill('nothing like this');
    expect(await visible()).toEqual([]);
    expect(await page.locator('#secret-count').textContent()).toBe('0 of 4 secrets match');
    await page.getByLabel('Search secrets').fill('');
    expect(await visible()).toHaveLength(4);
  });

  it('highlights secrets near their expiry: within a day, within a week; not one two months away', async () => {
    const expiry = (name: string) => page.locator(`tr[data-secret="${name}"]`).getAttribute('data-expiry');
    expect(await expiry('stripe-test')).toBe('urgent');
    expect(await expiry('github-ci')).toBe('soon');
    expect(await expiry('far-off')).toBeNull();
    expect(await expiry('openai-prod')).toBeNull();
    expect(await page.locator('#expiry-warning').textContent()).toContain('2 secrets expire within 7 days');
    expect(await page.locator('tr[data-secret="stripe-test"] .expiry').textContent()).toMatch(/\(in \d+ hours\)/);
    // the toolbar badge counts them too
    const badge = await (await h.worker()).evaluate(() => chrome.action.getBadgeText({}));
    expect(badge).toBe('2');
  });

  it('a secret’s own view: stage, promote, roll back, destroy, and a compromised rotation', async () => {
    await page.locator('tr[data-secret="openai-prod"] a.secret-link').click();
    await page.waitForFunction(() => document.getElementById('app')?.dataset.section === 'secret');
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe('openai-prod');
    const states = () =>
      page
        .locator('#versions tbody tr')
        .evaluateAll((rows) => rows.map((r) => `v${r.getAttribute('data-value')}:${r.getAttribute('data-state')}`));
    expect(await states()).toEqual(['v1:current']);

    await page.getByLabel('New value').fill('sk-FAKE-options-1-v2');
    await page.getByRole('button', { name: 'Stage new value' }).click();
    await expect.poll(states).toEqual(['v2:staged', 'v1:current']);
    expect(await page.getByLabel('New value').count()).toBe(0); // no rotate form while one is staged
    expect(await unnamed()).toEqual([]);
    await page.screenshot({ path: join(SCREENS, 'secret-staged.png'), fullPage: true });

    await page.getByLabel('Keep the current value for roll back (hours)').fill('48');
    await page.getByRole('button', { name: 'Promote v2' }).click();
    await expect.poll(states).toEqual(['v2:current', 'v1:previous']);
    expect(await page.locator('#versions tr[data-value="1"]').textContent()).toContain('unless rolled back');

    await page.getByRole('button', { name: 'Roll back to v1' }).click();
    await expect.poll(states).toEqual(['v2:staged', 'v1:current']);
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Destroy v2' }).click();
    await expect.poll(states).toEqual(['v2:destroyed', 'v1:current']);

    // a compromised rotation: the old value is destroyed at once
    await page.getByLabel('New value').fill('sk-FAKE-options-1-v3');
    await page.getByRole('button', { name: 'Stage new value' }).click();
    await expect.poll(states).toEqual(['v3:staged', 'v2:destroyed', 'v1:current']);
    await page.getByLabel('The current value is compromised: destroy it now').check();
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Promote v3' }).click();
    await expect.poll(states).toEqual(['v3:current', 'v2:destroyed', 'v1:destroyed']);
    expect((await secret('openai-prod')).values.find((v) => v.n === 1)?.compromised).toBe(true);
    expect(await page.locator('#versions tr[data-value="1"]').textContent()).toContain('(compromised)');
    await page.screenshot({ path: join(SCREENS, 'secret-view.png'), fullPage: true });
  });

  it('sets and removes a secret’s expiry from its view', async () => {
    const far = await secret('far-off');
    await page.goto(page.url().replace(/#.*$/, `#secret/${far.id}`));
    await page.waitForFunction(() => document.getElementById('app')?.dataset.section === 'secret');
    const at = new Date(Date.now() + 5 * HOUR);
    const local = new Date(at.getTime() - at.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await page.getByLabel('Expires at').fill(local);
    await page.getByRole('button', { name: 'Change expiry' }).click();
    await expect.poll(() => page.locator('#expiry').getAttribute('data-expiry')).toBe('urgent');
    const stored = (await ok<{ secrets: { name: string; expiresAt?: number }[] }>('secrets.list')).secrets.find(
      (s) => s.name === 'far-off',
    );
    expect(Math.abs((stored?.expiresAt ?? 0) - at.getTime())).toBeLessThan(60_000);
    await page.getByRole('button', { name: 'Remove expiry' }).click();
    await expect.poll(() => page.locator('#expiry').textContent()).toContain('No expiry.');
    // a time in the past is refused with a clear error, and nothing changes
    await page.getByLabel('Expires at').fill('2001-01-01T00:00');
    await page.getByRole('button', { name: 'Set expiry' }).click();
    await expect.poll(() => page.locator('#expiry [role="alert"]').count()).toBe(1);
    expect(
      (await ok<{ secrets: { name: string; expiresAt?: number }[] }>('secrets.list')).secrets.find((s) => s.name === 'far-off')?.expiresAt,
    ).toBeUndefined();
  });
});
