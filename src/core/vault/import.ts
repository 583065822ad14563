/**
 * Reading other tools' exports into an import plan: a `.env` file, a Bitwarden unencrypted JSON
 * export, a 1Password CSV export. Pure: the options page reads the file and shows the plan (what
 * will be created, with the preset guessed for each, and what is skipped and why); the worker
 * creates the chosen secrets in one transaction. A file that cannot be read at all is a
 * CoreError 'bad-input' that names the problem, never a value.
 *
 * Formats, as their makers describe them:
 * - `.env`: `NAME=value` lines, optional `export `, `#` comments, values bare or in single or
 *   double quotes (a quoted value may span lines: skipped, values are one line).
 * - Bitwarden (bitwarden.com/help/condition-bitwarden-import): `{ encrypted: false, folders, items }`,
 *   items of `type` 1 login (`login.password`, `login.uris[].uri`), 2 secure note, 3 card,
 *   4 identity, 5 SSH key; custom `fields[]` of `type` 0 text, 1 hidden, 2 boolean, 3 linked.
 * - 1Password 8 CSV (login items only): header `Title,Url,Username,Password,OTPAuth,Favorite,
 *   Archived,Tags,Notes`, RFC 4180 quoting.
 */
import { type InjectionRule, MAX_VALUE_LENGTH, NAME_PATTERN, PRESETS } from '../agents/policy.ts';
import { CoreError } from '../errors.ts';

export const MAX_IMPORT_BYTES = 10 * 1024 * 1024;
export const MAX_IMPORT_ITEMS = 5000;

export type ImportFormat = 'dotenv' | 'bitwarden-json' | '1password-csv';
/** One secret to create: its value, the preset guessed (and why), where in the file it was. */
export type ImportCandidate = {
  readonly name: string;
  readonly value: string;
  readonly preset: string;
  readonly rule: InjectionRule;
  readonly guessedFrom: 'value' | 'name' | 'url';
  readonly source: string;
};
export type ImportSkip = { readonly source: string; readonly name?: string; readonly reason: string };
export type ImportPlan = {
  readonly format: ImportFormat;
  readonly create: readonly ImportCandidate[];
  readonly skip: readonly ImportSkip[];
};

/**
 * An entry as read from a file, before checks: a proposed name, a value, a URL if the format has
 * one. `named`: its name says it is a key (a .env variable always does; a password manager's item
 * must say "API", "key", "token" or "secret", or else only a known key shape makes its password one:
 * a website's password is not an API key).
 */
type Entry = {
  /** where in the file, for the plan's order */
  readonly at: number;
  readonly source: string;
  readonly name: string;
  readonly value: string;
  readonly url?: string;
  readonly hint?: string;
  readonly named: boolean;
};
const SAYS_KEY = /(^|[^a-z])(api|keys?|tokens?|secrets?|pat)([^a-z]|$)/i;
type Skip = ImportSkip & { readonly at: number };
type Read = { readonly entries: Entry[]; readonly skip: Skip[] };

const bad = (message: string): never => {
  throw new CoreError('bad-input', message);
};

/** The plan for `bytes` (the file as read), given the names the vault already has. */
export function planImport(fileName: string, bytes: Uint8Array, taken: ReadonlySet<string>): ImportPlan {
  if (bytes.length > MAX_IMPORT_BYTES)
    bad(`the file is larger than ${MAX_IMPORT_BYTES / 1024 / 1024} MB: no export of API keys is that big`);
  if (bytes.includes(0)) bad('the file is binary, not a text export');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
  } catch {
    return bad('the file is not UTF-8 text');
  }
  const format = detect(fileName, text);
  const read = format === 'bitwarden-json' ? readBitwarden(text) : format === '1password-csv' ? readOnePasswordCsv(text) : readDotenv(text);
  if (read.entries.length + read.skip.length > MAX_IMPORT_ITEMS) bad(`the file has more than ${MAX_IMPORT_ITEMS} entries`);
  return { format, ...check(read, taken) };
}

function detect(fileName: string, text: string): ImportFormat {
  const start = text.trimStart();
  const lower = fileName.toLowerCase();
  if (start.startsWith('{') || lower.endsWith('.json')) return 'bitwarden-json';
  const header = (start.split(/\r?\n/, 1)[0] ?? '').toLowerCase();
  if (lower.endsWith('.csv') || (/(^|,)"?title"?(,|$)/.test(header) && header.includes('password'))) return '1password-csv';
  if (/^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_.-]*\s*=/m.test(text)) return 'dotenv';
  return bad('the file is not a .env file, a Bitwarden JSON export or a 1Password CSV export');
}

// --- .env ----------------------------------------------------------------------------------

function readDotenv(text: string): Read {
  const entries: Entry[] = [];
  const skip: Skip[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const [at, source] = [i, `line ${i + 1}`];
    const line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) {
      skip.push({ at, source, reason: 'not a NAME=value line' });
      continue;
    }
    const [, name, rest] = m as unknown as [string, string, string];
    const quote = rest[0] === '"' || rest[0] === "'" ? rest[0] : null;
    if (quote === null) {
      entries.push({ at, source, name, value: rest.replace(/\s+#.*$/, '').trim(), named: true });
      continue;
    }
    const close = rest.indexOf(quote, 1);
    if (close === -1) {
      // a quoted value that goes on over the next lines (a PEM key, say): find its end, skip it whole
      let j = i + 1;
      while (j < lines.length && !(lines[j] as string).includes(quote)) j++;
      skip.push({ at, source, name, reason: 'the value spans several lines: a secret here is one line' });
      i = j;
      continue;
    }
    let value = rest.slice(1, close);
    if (quote === '"') value = value.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    entries.push({ at, source, name, value, named: true });
  }
  return { entries, skip };
}

// --- Bitwarden unencrypted JSON --------------------------------------------------------------

type BitwardenItem = {
  type?: unknown;
  name?: unknown;
  login?: { password?: unknown; uris?: { uri?: unknown }[] | null } | null;
  fields?: { name?: unknown; value?: unknown; type?: unknown }[] | null;
};
const BITWARDEN_TYPES: Record<number, string> = { 2: 'a secure note', 3: 'a card', 4: 'an identity', 5: 'an SSH key' };

function readBitwarden(text: string): Read {
  let json: { encrypted?: unknown; items?: unknown };
  try {
    json = JSON.parse(text);
  } catch {
    return bad('the file is not valid JSON');
  }
  if (typeof json !== 'object' || json === null) return bad('the file is not a Bitwarden export');
  if (json.encrypted === true) bad('this Bitwarden export is encrypted: export again as “.json” (not “.json (Encrypted)”)');
  if (!Array.isArray(json.items)) bad('the file is not a Bitwarden export (no "items" list)');
  const entries: Entry[] = [];
  const skip: Skip[] = [];
  for (const [at, item] of (json.items as BitwardenItem[]).entries()) {
    const title = typeof item?.name === 'string' ? item.name : `item ${at + 1}`;
    const source = `item “${title}”`;
    const kind = typeof item?.type === 'number' ? BITWARDEN_TYPES[item.type] : undefined;
    if (kind) {
      skip.push({ at, source, reason: `${kind} is not an API key` });
      continue;
    }
    const url = item?.login?.uris?.find((u) => typeof u?.uri === 'string')?.uri as string | undefined;
    const found: Entry[] = [];
    if (typeof item?.login?.password === 'string' && item.login.password !== '')
      found.push({ at, source, name: title, value: item.login.password, named: SAYS_KEY.test(title), ...(url ? { url } : {}) });
    for (const f of item?.fields ?? []) {
      // hidden fields hold secrets; text, boolean and linked ones do not
      if (f?.type !== 1 || typeof f.value !== 'string' || f.value === '') continue;
      const field = typeof f.name === 'string' ? f.name : 'field';
      const named = SAYS_KEY.test(title) || SAYS_KEY.test(field);
      found.push({
        at,
        source: `${source}, field “${field}”`,
        name: `${title}-${field}`,
        value: f.value,
        hint: field,
        named,
        ...(url ? { url } : {}),
      });
    }
    if (found.length === 0) skip.push({ at, source, reason: 'no password or hidden field' });
    entries.push(...found);
  }
  return { entries, skip };
}

// --- 1Password CSV ---------------------------------------------------------------------------

/** RFC 4180 records: quoted fields may hold commas, doubled quotes and line breaks. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (quoted) bad('the CSV file ends inside a quoted field');
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

function readOnePasswordCsv(text: string): Read {
  const [header, ...rows] = parseCsv(text);
  const columns = (header ?? []).map((h) => h.trim().toLowerCase());
  const col = (...names: string[]) => columns.findIndex((c) => names.includes(c));
  const [title, password, url] = [col('title', 'name'), col('password'), col('url', 'website', 'urls')];
  if (title === -1 || password === -1) bad('the CSV file is not a 1Password export (it needs “Title” and “Password” columns)');
  const entries: Entry[] = [];
  const skip: Skip[] = [];
  for (const [at, r] of rows.entries()) {
    const name = (r[title] ?? '').trim() || `row ${at + 2}`;
    const source = `row ${at + 2} (“${name}”)`;
    const value = r[password] ?? '';
    if (value === '') {
      skip.push({ at, source, reason: 'no password' });
      continue;
    }
    const site = url === -1 ? '' : (r[url] ?? '').trim();
    entries.push({ at, source, name, value, named: SAYS_KEY.test(name), ...(site ? { url: site } : {}) });
  }
  return { entries, skip };
}

// --- checks and presets --------------------------------------------------------------------

function check(read: Read, taken: ReadonlySet<string>): { create: ImportCandidate[]; skip: ImportSkip[] } {
  const create: ImportCandidate[] = [];
  const skip = [...read.skip];
  const seen = new Set<string>();
  for (const e of read.entries) {
    const name = secretName(e.name);
    const no = (reason: string) => skip.push({ at: e.at, source: e.source, ...(name === null ? {} : { name }), reason });
    if (name === null) {
      no('no usable name');
      continue;
    }
    const problem = valueProblem(e.value);
    if (problem) no(problem);
    else if (taken.has(name)) no(`a secret named ${name} exists in the vault`);
    else if (seen.has(name)) no(`${name} appears more than once in the file`);
    else {
      const guess = guessPreset(e.value, `${e.name} ${e.hint ?? ''}`, e.url);
      if (guess?.from !== 'value' && !e.named) no('not an API key by its shape or its name (a website password?)');
      else if (!guess) no('no preset fits (no known key shape, name or site): add it by hand with its API host');
      else {
        seen.add(name);
        create.push({ name, value: e.value, preset: guess.preset.id, rule: guess.preset.rule, guessedFrom: guess.from, source: e.source });
      }
    }
  }
  // in the file's order; a stable sort keeps an item's own entries in theirs
  return { create, skip: skip.sort((a, b) => a.at - b.at).map(({ at: _, ...rest }) => rest) };
}

/** A secret name from a title or variable name: invalid characters become `-`, at most 64. */
function secretName(raw: string): string | null {
  const name = raw
    .trim()
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[._-]+/, '')
    .slice(0, 64)
    .replace(/[-.]+$/, '');
  return NAME_PATTERN.test(name) ? name : null;
}

function valueProblem(v: string): string | null {
  if (v.trim() === '') return 'the value is empty';
  if (/[\r\n]/.test(v)) return 'the value has a line break: a secret here is one line';
  if (v.length > MAX_VALUE_LENGTH) return 'the value is longer than 16 KiB';
  if (/[^\x20-\x7e]/.test(v)) return 'the value has characters other than printable ASCII';
  return null;
}

/** Key shapes vendors document, most specific first (Anthropic's `sk-ant-` before OpenAI's `sk-`). */
const SHAPES: readonly [RegExp, string][] = [
  [/^sk-ant-[A-Za-z0-9_-]{20,}$/, 'anthropic'],
  [/^sk-(proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}$/, 'openai'],
  [/^(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}$|^github_pat_[A-Za-z0-9_]{40,}$/, 'github'],
  [/^AIza[0-9A-Za-z_-]{35}$/, 'google-ai'],
  [/^(sk|rk)_(live|test)_[A-Za-z0-9]{16,}$/, 'stripe'],
];
const NAMES: readonly [RegExp, string][] = [
  [/anthropic|claude/i, 'anthropic'],
  [/openai/i, 'openai'],
  [/github|\bgh_token\b/i, 'github'],
  [/gemini|google[_-]?(ai|genai|api)/i, 'google-ai'],
  [/stripe/i, 'stripe'],
];
const SITES: readonly [RegExp, string][] = [
  [/(^|\.)anthropic\.com$/, 'anthropic'],
  [/(^|\.)openai\.com$/, 'openai'],
  [/(^|\.)github\.com$/, 'github'],
  [/^(aistudio\.google\.com|generativelanguage\.googleapis\.com|makersuite\.google\.com)$/, 'google-ai'],
  [/(^|\.)stripe\.com$/, 'stripe'],
];

export function guessPreset(
  value: string,
  name: string,
  url?: string,
): { preset: (typeof PRESETS)[number]; from: 'value' | 'name' | 'url' } | null {
  const byId = (id: string) => PRESETS.find((p) => p.id === id);
  const shape = SHAPES.find(([re]) => re.test(value));
  if (shape) return { preset: byId(shape[1]) as (typeof PRESETS)[number], from: 'value' };
  const named = NAMES.find(([re]) => re.test(name));
  if (named) return { preset: byId(named[1]) as (typeof PRESETS)[number], from: 'name' };
  let host = '';
  try {
    host = url ? new URL(/^[a-z][a-z0-9+.-]*:/i.test(url) ? url : `https://${url}`).hostname : '';
  } catch {
    // not a URL: no guess from it
  }
  const site = host ? SITES.find(([re]) => re.test(host)) : undefined;
  if (site) return { preset: byId(site[1]) as (typeof PRESETS)[number], from: 'url' };
  return null;
}
