/**
 * Import plans from the three formats (issue 17, item 4), read from fixture files written in the
 * shapes their makers document: test/fixtures/import/. Values are obvious fakes.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { guessPreset, type ImportPlan, MAX_IMPORT_BYTES, parseCsv, planImport } from '../../src/core/vault/import.ts';

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../fixtures/import/${name}`, import.meta.url)));
const created = (p: ImportPlan) => p.create.map((c) => [c.name, c.preset, c.guessedFrom]);
const skipped = (p: ImportPlan) => p.skip.map((s) => [s.source, s.reason]);
const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'no error';
  } catch (e) {
    return `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
};

describe('import plans', () => {
  it('a .env file: presets from key shapes and variable names; what is skipped says why', () => {
    const plan = planImport('keys.env', fixture('keys.env'), new Set());
    expect(plan.format).toBe('dotenv');
    expect(created(plan)).toEqual([
      ['OPENAI_API_KEY', 'openai', 'value'],
      ['ANTHROPIC_API_KEY', 'anthropic', 'value'],
      ['GITHUB_TOKEN', 'github', 'name'],
      ['GEMINI_API_KEY', 'google-ai', 'value'],
      ['STRIPE_SECRET_KEY', 'stripe', 'value'],
    ]);
    expect(plan.create[3]?.value).toBe('AIzaFAKEFAKEFAKEFAKEFAKEFAKEFAKE0000004'); // the trailing comment is not the value
    expect(plan.create[1]?.rule.hosts).toEqual(['api.anthropic.com']);
    expect(skipped(plan)).toEqual([
      ['line 8', 'no preset fits (no known key shape, name or site): add it by hand with its API host'],
      ['line 9', 'the value spans several lines: a secret here is one line'],
      ['line 12', 'the value has a line break: a secret here is one line'],
      ['line 13', 'OPENAI_API_KEY appears more than once in the file'],
      ['line 14', 'the value is empty'],
      ['line 15', 'not a NAME=value line'],
    ]);
  });

  it('a Bitwarden JSON export: hidden fields and key-shaped passwords; notes, cards and website passwords are skipped', () => {
    const plan = planImport('bitwarden_export_20261130.json', fixture('bitwarden.json'), new Set());
    expect(plan.format).toBe('bitwarden-json');
    expect(created(plan)).toEqual([
      ['OpenAI-platform-admin-key', 'openai', 'value'],
      ['Anthropic-API-key', 'anthropic', 'value'],
    ]);
    expect(skipped(plan)).toEqual([
      ['item “OpenAI platform”', 'not an API key by its shape or its name (a website password?)'],
      ['item “Recovery codes”', 'a secure note is not an API key'],
      ['item “Company card”', 'a card is not an API key'],
      ['item “Intranet wiki”', 'not an API key by its shape or its name (a website password?)'],
      ['item “GitHub bot”', 'no password or hidden field'],
    ]);
  });

  it('a 1Password CSV export: quoted commas, doubled quotes and line breaks inside a field', () => {
    const plan = planImport('1PasswordExport.csv', fixture('1password.csv'), new Set(['Stripe-test']));
    expect(plan.format).toBe('1password-csv');
    expect(created(plan)).toEqual([
      ['GitHub-deploy-token', 'github', 'name'],
      ['Gemini', 'google-ai', 'value'],
      ['Old-OpenAI-key', 'openai', 'name'],
    ]);
    expect(plan.create[0]?.value).toBe('FAKE-github-deploy-token-0022');
    expect(skipped(plan)).toEqual([
      ['row 2 (“Stripe (test)”)', 'a secret named Stripe-test exists in the vault'],
      ['row 5 (“Bank”)', 'not an API key by its shape or its name (a website password?)'],
      ['row 6 (“Empty”)', 'no password'],
    ]);
  });

  it('bad files are refused whole, with a reason and no value in it', () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    expect(codeOf(() => planImport('x.env', new Uint8Array(MAX_IMPORT_BYTES + 1), new Set()))).toMatch(
      /^bad-input: the file is larger than 10 MB/,
    );
    expect(codeOf(() => planImport('x.env', Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0, 1, 2), new Set()))).toBe(
      'bad-input: the file is binary, not a text export',
    );
    expect(codeOf(() => planImport('x.env', Uint8Array.of(0x4b, 0x3d, 0xff, 0xfe), new Set()))).toBe(
      'bad-input: the file is not UTF-8 text',
    );
    expect(codeOf(() => planImport('notes.txt', bytes('just some prose, sk-FAKE-not-here'), new Set()))).toMatch(
      /^bad-input: the file is not a \.env file/,
    );
    expect(codeOf(() => planImport('x.json', bytes('{"items": [ {"name": "sk-FAKE-cut'), new Set()))).toBe(
      'bad-input: the file is not valid JSON',
    );
    expect(
      codeOf(() => planImport('x.json', bytes('{"encrypted": true, "encKeyValidation_DO_NOT_EDIT": "2.FAKE", "items": []}'), new Set())),
    ).toMatch(/^bad-input: this Bitwarden export is encrypted/);
    expect(codeOf(() => planImport('x.csv', bytes('Name,Secret\nk,"sk-FAKE-unclosed'), new Set()))).toBe(
      'bad-input: the CSV file ends inside a quoted field',
    );
    expect(codeOf(() => planImport('x.csv', bytes('Name,Secret\nk,sk-FAKE-value\n'), new Set()))).toMatch(
      /needs “Title” and “Password” columns/,
    );
    const many = Array.from({ length: 5001 }, (_, i) => `K${i}=sk-FAKE${i}`).join('\n');
    expect(codeOf(() => planImport('many.env', bytes(many), new Set()))).toBe('bad-input: the file has more than 5000 entries');
  });

  it('knows GitHub tokens by shape (built here, so no token-shaped string sits in the source)', () => {
    const token = (prefix: string, n: number) => `${prefix}_${'F'.repeat(n)}`;
    for (const value of [token('ghp', 36), token('gho', 36), token('github_pat', 82)])
      expect(guessPreset(value, 'unnamed')).toMatchObject({ preset: { id: 'github' }, from: 'value' });
    expect(guessPreset(token('ghp', 12), 'unnamed')).toBeNull(); // too short to be one
  });

  it('parses RFC 4180 CSV', () => {
    expect(parseCsv('a,"b,c","d""e"\r\n"f\ng",,h\n')).toEqual([
      ['a', 'b,c', 'd"e'],
      ['f\ng', '', 'h'],
    ]);
  });
});
