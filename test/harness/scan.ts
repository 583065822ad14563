/**
 * Searches a directory's files for a string in the encodings a browser or a careless program
 * might store it in: UTF-8, UTF-16 (LE and BE), hex (both cases), base64 and base64url at all
 * three byte alignments, percent-encoding and JSON \u escapes.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

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
