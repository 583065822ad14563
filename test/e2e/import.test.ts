/**
 * Import in the options page (issue 17, item 4), in Chromium: each format from a fixture file in
 * its maker's shape (test/fixtures/import/), the preview (what is created, with the preset guessed
 * and from what; what is skipped and why; no value shown), then the import. Bad files get a report
 * and change nothing; an import that fails at the worker writes none of it. A screenshot of each
 * preview is saved under test/.tmp/screens for a person to look at.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpcOk, showSection, TMP } from '../harness/browser.ts';

const PASSPHRASE = 'import passphrase FAKE';
const SCREENS = join(TMP, 'screens');
const FIXTURES = join(import.meta.dirname, '../fixtures/import');

describe('import in the options page', () => {
  let h: Harness;
  let page: Page;
  const names = async () => (await rpcOk<{ secrets: { name: string }[] }>(page, 'secrets.list')).secrets.map((s) => s.name).sort();
  const choose = async (file: string | { name: string; mimeType: string; buffer: Buffer }) => {
    await showSection(page, 'secrets');
    await page
      .locator('#import-file')
      .setInputFiles(typeof file === 'string' ? (file.startsWith('/') ? file : join(FIXTURES, file)) : file);
  };

  beforeAll(async () => {
    mkdirSync(SCREENS, { recursive: true });
    h = await launch();
    page = await h.open(OPTIONS);
    await page.setViewportSize({ width: 1100, height: 1000 });
    await rpcOk(page, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await page.reload();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a .env file: the preview lists what will be created and what is skipped, then all of it is imported', async () => {
    await choose('keys.env');
    await page.locator('#import-preview').waitFor();
    expect(await page.locator('#import-create tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-import')))).toEqual([
      'OPENAI_API_KEY',
      'ANTHROPIC_API_KEY',
      'GITHUB_TOKEN',
      'GEMINI_API_KEY',
      'STRIPE_SECRET_KEY',
    ]);
    expect(await page.locator('#import-create tr[data-import="ANTHROPIC_API_KEY"] td').allTextContents()).toEqual([
      'ANTHROPIC_API_KEY',
      'Anthropic',
      'the key’s shape',
      'line 3',
    ]);
    expect(await page.locator('#import-skip tbody tr').count()).toBe(6);
    // no value is on the page
    expect(await page.locator('#import-preview').textContent()).not.toMatch(/FAKEFAKE/);
    await page.locator('#import-preview').screenshot({ path: join(SCREENS, 'import-preview-dotenv.png') });
    await page.getByRole('button', { name: 'Import 5' }).click();
    await page.locator('#import-errors', { hasText: 'Imported 5 secrets.' }).waitFor({ timeout: 15_000 });
    expect(await names()).toEqual(['ANTHROPIC_API_KEY', 'GEMINI_API_KEY', 'GITHUB_TOKEN', 'OPENAI_API_KEY', 'STRIPE_SECRET_KEY']);
    const list = (await rpcOk<{ secrets: { id: string; name: string; rule: { hosts: string[] } }[] }>(page, 'secrets.list')).secrets;
    const anthropic = list.find((s) => s.name === 'ANTHROPIC_API_KEY');
    expect(anthropic?.rule.hosts).toEqual(['api.anthropic.com']);
    expect((await rpcOk<{ value: string }>(page, 'secrets.reveal', { id: anthropic?.id, passphrase: PASSPHRASE })).value).toBe(
      'sk-ant-api03-FAKEFAKEFAKEFAKEFAKEFAKE-0002',
    );
  });

  it('the same file again: every entry is skipped as a name the vault has, and nothing can be imported', async () => {
    await choose('keys.env');
    await page.locator('#import-preview').waitFor();
    expect(await page.locator('#import-create').count()).toBe(0);
    expect(await page.locator('#import-skip tr[data-skip="line 2"]').textContent()).toContain(
      'a secret named OPENAI_API_KEY exists in the vault',
    );
    expect(await page.locator('#import-go').isDisabled()).toBe(true);
  });

  it('a Bitwarden JSON export and a 1Password CSV export', async () => {
    await choose('bitwarden.json');
    await page.locator('#import-preview').waitFor();
    await page.locator('#import-preview').screenshot({ path: join(SCREENS, 'import-preview-bitwarden.png') });
    expect(await page.locator('#import-skip tr[data-skip="item “Company card”"]').textContent()).toContain('a card is not an API key');
    await page.getByRole('button', { name: 'Import 2' }).click();
    await page.locator('#import-errors', { hasText: 'Imported 2 secrets.' }).waitFor({ timeout: 15_000 });

    await choose('1password.csv');
    await page.locator('#import-preview').waitFor();
    await page.locator('#import-preview').screenshot({ path: join(SCREENS, 'import-preview-1password.png') });
    await page.getByRole('button', { name: 'Import 4' }).click();
    await page.locator('#import-errors', { hasText: 'Imported 4 secrets.' }).waitFor({ timeout: 15_000 });
    expect(await names()).toEqual(
      expect.arrayContaining([
        'OpenAI-platform-admin-key',
        'Anthropic-API-key',
        'Stripe-test',
        'GitHub-deploy-token',
        'Gemini',
        'Old-OpenAI-key',
      ]),
    );
  });

  it('bad files get a report and change nothing', async () => {
    const before = await names();
    const bad = async (name: string, buffer: Buffer) => {
      // from a file on disk, as a person picks one (Playwright refuses buffers of 50 MB)
      const path = join(TMP, `import-bad-${name}`);
      writeFileSync(path, buffer);
      await choose(path);
      const error = page.locator('#import-errors .msg.error');
      await error.waitFor();
      const text = (await error.textContent()) ?? '';
      expect(await page.locator('#import-preview').count()).toBe(0);
      rmSync(path);
      return text;
    };
    expect(await bad('photo.env', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]))).toBe(
      'Nothing was imported: the file is binary, not a text export.',
    );
    expect(await bad('huge.env', Buffer.alloc(50 * 1024 * 1024, 0x41))).toBe('Nothing was imported: the file is larger than 10 MB.');
    expect(await bad('notes.txt', Buffer.from('Dear diary, today I rotated nothing.'))).toMatch(
      /^Nothing was imported: the file is not a \.env file/,
    );
    expect(await bad('export.json', Buffer.from('{"encrypted": true, "items": []}'))).toMatch(/this Bitwarden export is encrypted/);
    expect(await names()).toEqual(before);
  });

  it('an import the worker refuses writes none of it (a name taken after the preview)', async () => {
    const file = {
      name: 'late.env',
      mimeType: 'text/plain',
      buffer: Buffer.from('OPENAI_KEY_A=sk-FAKEFAKEFAKEFAKEFAKEFAKE00A\nOPENAI_KEY_B=sk-FAKEFAKEFAKEFAKEFAKEFAKE00B\n'),
    };
    await choose(file);
    await page.locator('#import-preview').waitFor();
    // another page takes one of the names before the person clicks Import
    const other = await h.open(OPTIONS);
    await rpcOk(other, 'secrets.create', {
      name: 'OPENAI_KEY_B',
      value: 'sk-FAKE-elsewhere',
      rule: { hosts: ['api.openai.com'], header: 'Authorization', template: 'Bearer {value}' },
    });
    await other.close();
    await page.getByRole('button', { name: 'Import 2' }).click();
    await page.locator('#import-status .msg.error').waitFor({ timeout: 15_000 });
    expect(await page.locator('#import-status .msg.error').textContent()).toBe(
      'Nothing was imported: A secret with this name already exists.',
    );
    const all = await names();
    expect(all).toContain('OPENAI_KEY_B');
    expect(all).not.toContain('OPENAI_KEY_A');
    writeFileSync(join(SCREENS, 'import-names.txt'), all.join('\n'));
  });
});

describe('an encrypted backup, downloaded in one profile and restored into a new one', () => {
  const BACKUP_PASSPHRASE = 'backup passphrase FAKE';
  let from: Harness;
  let to: Harness;
  afterAll(async () => {
    await from?.close();
    await to?.close();
  });

  it('holds every secret, opens only with its passphrase, and restores all of them', async () => {
    from = await launch();
    const a = await from.open(OPTIONS);
    await rpcOk(a, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    const rule = { hosts: ['api.openai.com'], header: 'Authorization', template: 'Bearer {value}' };
    for (const [name, value] of [
      ['openai', 'sk-FAKE-backup-one'],
      ['openai-admin', 'sk-admin-FAKE-backup-two'],
    ])
      await rpcOk(a, 'secrets.create', { name, value, rule });
    await a.reload();
    await showSection(a, 'settings');
    await a.locator('#backup-form').getByLabel('Vault passphrase').fill(PASSPHRASE);
    await a.locator('#backup-form').getByLabel('Backup passphrase', { exact: true }).fill(BACKUP_PASSPHRASE);
    await a.locator('#backup-form').getByLabel('Repeat backup passphrase').fill(BACKUP_PASSPHRASE);
    const [download] = await Promise.all([a.waitForEvent('download'), a.getByRole('button', { name: 'Download a backup' }).click()]);
    expect(download.suggestedFilename()).toMatch(/^keyhole-backup-\d{4}-\d{2}-\d{2}\.json$/);
    const path = join(TMP, `restore-${Date.now()}.json`);
    await download.saveAs(path);
    await a.locator('#backup-status', { hasText: 'Backed up 2 secrets.' }).waitFor();

    to = await launch();
    const b = await to.open(OPTIONS);
    await rpcOk(b, 'vault.create', { passphrase: 'another profile passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await b.reload();
    await showSection(b, 'secrets');
    await b.locator('#import-file').setInputFiles(path);
    await b.locator('#restore-form').getByLabel('Backup passphrase').fill('not the backup passphrase FAKE');
    await b.getByRole('button', { name: 'Restore' }).click();
    await b.locator('#import-status .msg.error').waitFor({ timeout: 20_000 });
    expect(await b.locator('#import-status .msg.error').textContent()).toBe('Nothing was restored: Wrong passphrase.');
    expect((await rpcOk<{ secrets: unknown[] }>(b, 'secrets.list')).secrets).toEqual([]);

    await b.locator('#restore-form').getByLabel('Backup passphrase').fill(BACKUP_PASSPHRASE);
    await b.getByRole('button', { name: 'Restore' }).click();
    await b.locator('#import-errors', { hasText: 'Restored 2 secrets.' }).waitFor({ timeout: 20_000 });
    const list = (await rpcOk<{ secrets: { id: string; name: string }[] }>(b, 'secrets.list')).secrets;
    expect(list.map((x) => x.name)).toEqual(['openai', 'openai-admin']);
    const admin = list.find((x) => x.name === 'openai-admin');
    expect(
      (await rpcOk<{ value: string }>(b, 'secrets.reveal', { id: admin?.id, passphrase: 'another profile passphrase FAKE' })).value,
    ).toBe('sk-admin-FAKE-backup-two');
    rmSync(path);
  });
});
