/**
 * Searches a directory's files for a string in the encodings a browser or a careless program
 * might store it in: UTF-8, UTF-16 (LE and BE), hex (both cases), base64 and base64url at all
 * three byte alignments, percent-encoding and JSON \u escapes.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';

export function encodings(needle: string): Map<string, Buffer> {
  const raw = Buffer.from(needle, 'utf8');
  const out = new Map<string, Buffer>([
    ['utf8', raw],
    ['utf16le', Buffer.from(needle, 'utf16le')],
    ['utf16be', Buffer.from(needle, 'utf16le').swap16()],
    ['hex', Buffer.from(raw.toString('hex'))],
    ['HEX', Buffer.from(raw.toString('hex').toUpperCase())],
  ]);
  // The base64 characters that depend only on the needle's bits, for each of the three offsets
  // at which it can start inside a longer encoded buffer.
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k), raw]).toString('base64');
    const inner = b64.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + raw.length)) / 6));
    out.set(`base64@${k}`, Buffer.from(inner));
    out.set(`base64url@${k}`, Buffer.from(inner.replaceAll('+', '-').replaceAll('/', '_')));
  }
  out.set('percent', Buffer.from([...raw].map((x) => `%${x.toString(16).padStart(2, '0')}`).join('')));
  out.set('PERCENT', Buffer.from([...raw].map((x) => `%${x.toString(16).padStart(2, '0').toUpperCase()}`).join('')));
  out.set('json-u', Buffer.from([...needle].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')));
  return out;
}

/** The encodings of `needle` found in `data` (a string is searched as its UTF-8 bytes). */
export function findEncodings(data: Buffer | Uint8Array | string, needle: string): string[] {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  return [...encodings(needle)].filter(([, b]) => buf.indexOf(b) !== -1).map(([e]) => e);
}

// The HTML named references for printable ASCII (WHATWG's list), which a page decodes back.
const NAMED: Record<string, string> = {
  excl: '!',
  quot: '"',
  QUOT: '"',
  num: '#',
  dollar: '$',
  percnt: '%',
  amp: '&',
  AMP: '&',
  apos: "'",
  lpar: '(',
  rpar: ')',
  ast: '*',
  midast: '*',
  plus: '+',
  comma: ',',
  period: '.',
  sol: '/',
  colon: ':',
  semi: ';',
  lt: '<',
  LT: '<',
  equals: '=',
  gt: '>',
  GT: '>',
  quest: '?',
  commat: '@',
  lsqb: '[',
  lbrack: '[',
  bsol: '\\',
  rsqb: ']',
  rbrack: ']',
  Hat: '^',
  lowbar: '_',
  UnderBar: '_',
  grave: '`',
  DiacriticalGrave: '`',
  lcub: '{',
  lbrace: '{',
  verbar: '|',
  vert: '|',
  VerticalLine: '|',
  rcub: '}',
  rbrace: '}',
  nbsp: ' ',
  NewLine: '\n',
  Tab: '\t',
};

/** Every per-character escape a page could undo, undone at once (mixed forms included). */
function undoCharEscapes(s: string): string {
  return s
    .replace(/&#[xX]0*([0-9a-fA-F]{1,6});?/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)))
    .replace(/&#0*([0-9]{1,7});?/g, (_, d: string) => String.fromCharCode(Number(d)))
    .replace(/&([A-Za-z]+);/g, (m, n: string) => NAMED[n] ?? m)
    .replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)))
    .replace(/\\([/"\\])/g, '$1')
    .replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

/** Compressed streams anywhere in `buf` (gzip, zlib), inflated. */
function inflated(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length - 2; i++) {
    const gzip = buf[i] === 0x1f && buf[i + 1] === 0x8b;
    const zlib = buf[i] === 0x78 && [0x01, 0x5e, 0x9c, 0xda].includes(buf[i + 1] as number);
    if (!gzip && !zlib) continue;
    try {
      out.push((gzip ? gunzipSync : inflateSync)(buf.subarray(i)));
    } catch {
      // not a stream after all
    }
  }
  return out;
}

/**
 * The encodings of `needle` found in `data` or in any view a page could decode it into: HTML
 * entities, JSON escapes, percent and form encoding (mixed per character), hex in any case,
 * UTF-16 of either order, and gzip or zlib streams anywhere in it (two levels deep).
 */
export function findAnyForm(data: Buffer | Uint8Array | string, needle: string, depth = 2): string[] {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  const text = buf.toString('latin1');
  const views: [string, Buffer][] = [
    ['bytes', buf],
    ['unescaped', Buffer.from(undoCharEscapes(text), 'latin1')],
    ['form', Buffer.from(undoCharEscapes(text.replaceAll('+', ' ')), 'latin1')],
    ['lowercase', Buffer.from(text.toLowerCase(), 'latin1')],
    ['utf16le', Buffer.from(buf.toString('utf16le'), 'latin1')],
    ['utf16le+1', Buffer.from(buf.subarray(1).toString('utf16le'), 'latin1')],
  ];
  const hits = views.flatMap(([view, b]) => findEncodings(b, needle).map((e) => `${view}:${e}`));
  if (depth > 0) for (const inner of inflated(buf)) hits.push(...findAnyForm(inner, needle, depth - 1).map((e) => `inflated:${e}`));
  return [...new Set(hits)];
}

export type Hit = { file: string; encoding: string };

export function scanDir(dir: string, needle: string): Hit[] {
  const hits: Hit[] = [];
  const enc = encodings(needle);
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(p);
      } catch {
        continue; // a socket or a link that points nowhere
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        const data = readFileSync(p);
        for (const [e, b] of enc) if (data.indexOf(b) !== -1) hits.push({ file: relative(dir, p), encoding: e });
      }
    }
  };
  walk(dir);
  return hits;
}

/**
 * Every place any needle shows in any form (findAnyForm) across named haystacks: where, which
 * needle (by index: a needle is a secret and never printed), in which forms. Empty when clean.
 */
export function findEverywhere(
  haystacks: Record<string, string>,
  needles: readonly string[],
): { where: string; needle: number; forms: string[] }[] {
  const hits: { where: string; needle: number; forms: string[] }[] = [];
  for (const [where, text] of Object.entries(haystacks))
    needles.forEach((needle, i) => {
      const forms = findAnyForm(text, needle);
      if (forms.length > 0) hits.push({ where, needle: i, forms });
    });
  return hits;
}
