/**
 * Accessibility (issue 17, item 7): axe-core (@axe-core/playwright) over the popup in each state
 * of the vault, the consent window, and every section of the options page with content in it.
 * No serious or critical violation is allowed; the others are printed for a person to read.
 */

import { join } from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, POPUP, rpcOk, showSection } from '../harness/browser.ts';
import { openConsent } from '../harness/provider.ts';
import { appServer } from '../harness/servers.ts';

const PASSPHRASE = 'accessibility passphrase FAKE';
const rule = (host: string) => ({ hosts: [host], header: 'Authorization', template: 'Bearer {value}' });

/** The serious and critical violations on `page` now, each with where it is; the rest logged. */
async function violations(page: Page, where: string): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  if (result.passes.length < 5) return [`${where}: axe checked almost nothing (${result.passes.length} rules passed)`];
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const minor = result.violations.filter((v) => !bad.includes(v));
  if (minor.length > 0) console.log(`${where}: minor: ${minor.map((v) => `${v.id} (${v.nodes.length})`).join(', ')}`);
  return bad.map((v) => `${where}: ${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).join(' | ')}`);
}

describe('accessibility (axe-core): no serious or critical violations', () => {
  let h: Harness;
  let app: Awaited<ReturnType<typeof appServer>>;

  beforeAll(async () => {
    h = await launch();
    app = await appServer();
  });
  afterAll(async () => {
    await h?.close();
    await app?.close();
  });

  it('the checker works on an extension page: an unlabelled field and an image without text are found', async () => {
    const page = await h.open(POPUP);
    await page.waitForSelector('form, main');
    await page.evaluate(() => {
      const bad = document.createElement('div');
      bad.innerHTML = '<input type="text"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">';
      document.body.append(bad);
    });
    const found = await violations(page, 'popup with two faults');
    await page.close();
    expect(found.some((f) => f.includes(': label (critical)'))).toBe(true);
    expect(found.some((f) => f.includes(': image-alt (critical)'))).toBe(true);
  });

  it('the popup: a new vault, locked, unlocked', async () => {
    const popup = await h.open(POPUP);
    await popup.waitForSelector('form, main');
    const found = await violations(popup, 'popup (new)');
    await rpcOk(popup, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await rpcOk(popup, 'secrets.create', { name: 'openai', value: 'sk-FAKE-a11y-1', rule: rule('api.openai.com') });
    await popup.reload();
    await popup.waitForSelector('main');
    found.push(...(await violations(popup, 'popup (unlocked)')));
    await rpcOk(popup, 'vault.lock');
    await popup.reload();
    await popup.waitForSelector('main');
    found.push(...(await violations(popup, 'popup (locked)')));
    await rpcOk(popup, 'vault.unlock', { passphrase: PASSPHRASE });
    await popup.close();
    expect(found).toEqual([]);
  });

  it('the consent window', async () => {
    const page = await h.context.newPage();
    await page.goto(`http://127.0.0.1:${app.port}/`);
    const { consent, answer } = await openConsent(h.context, page, { secrets: ['openai'], mode: 'broker', reason: 'Summarise the inbox' });
    const found = await violations(consent, 'consent');
    await consent.close(); // the person closes it: a refusal
    await answer;
    await page.close();
    expect(found).toEqual([]);
  });

  it('the options page, every section, and a secret’s own view', async () => {
    const page = await h.open(OPTIONS);
    const found: string[] = [];
    for (const section of ['secrets', 'sites', 'sync', 'audit', 'settings'] as const) {
      await showSection(page, section);
      found.push(...(await violations(page, `options #${section}`)));
    }
    await showSection(page, 'secrets');
    await page.locator('tr[data-secret="openai"] a.secret-link').click();
    await page.waitForFunction(() => document.getElementById('app')?.dataset.section === 'secret');
    found.push(...(await violations(page, 'options: a secret')));
    // an import's preview, with secrets to create and entries skipped
    await showSection(page, 'secrets');
    await page.locator('#import-file').setInputFiles(join(import.meta.dirname, '../fixtures/import/keys.env'));
    await page.locator('#import-preview').waitFor();
    found.push(...(await violations(page, 'options: an import preview')));
    // the settings with the passkey form drawn (Chromium offers passkeys)
    await showSection(page, 'settings');
    await page.locator('#add-passkey').waitFor();
    found.push(...(await violations(page, 'options: settings with passkeys')));
    await page.close();
    expect(found).toEqual([]);
  });
});
