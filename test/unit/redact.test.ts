import { describe, expect, it } from 'vitest';
import { REDACTED, Redactor, redactionForms } from '../../src/core/redact.ts';
import { findEncodings } from '../harness/scan.ts';

const SECRET = 'sk-FAKE-canary-7f3a9c1e5b';

// Each way an API (or a prompt injection) might echo the credential, with surrounding bytes so
// the value lands at every base64 alignment.
const b = (s: string) => Buffer.from(s, 'utf8');
const ECHOES: Record<string, (prefix: string) => string> = {
  raw: (p) => `${p}${SECRET}`,
  bearer: (p) => `${p}Authorization: Bearer ${SECRET}`,
  base64: (p) => b(`${p}${SECRET}!`).toString('base64'),
  base64url: (p) => b(`${p}${SECRET}?>`).toString('base64url'),
  hex: (p) => b(`${p}${SECRET}`).toString('hex'),
  HEX: (p) => b(`${p}${SECRET}`).toString('hex').toUpperCase(),
  percent: (p) => encodeURIComponent(`${p}${SECRET}`),
  percentAll: (p) => [...b(`${p}${SECRET}`)].map((x) => `%${x.toString(16).padStart(2, '0')}`).join(''),
  json: (p) => JSON.stringify({ echo: `${p}${SECRET}` }),
  jsonUnicode: (p) => `"${[...`${p}${SECRET}`].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`,
};

function chunked(data: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  let k = 0;
  while (i < data.length) {
    const n = sizes[k++ % sizes.length] as number;
    out.push(data.subarray(i, i + n));
    i += n;
  }
  return out;
}

function redactStream(data: Uint8Array, sizes: number[]): Buffer {
  const r = Redactor.forValues([SECRET]);
  return Buffer.concat([...chunked(data, sizes).map((c) => r.push(c)), r.end()]);
}

describe('redaction', () => {
  for (const [name, echo] of Object.entries(ECHOES)) {
    it(`strips the ${name} echo at every alignment and chunking`, () => {
      for (const prefix of ['', 'a', 'ab', 'abc', 'data: ']) {
        const body = b(`{"before":1}\n${echo(prefix)}\n{"after":2}`);
        expect(findEncodings(body, SECRET).length).toBeGreaterThan(0); // control: the oracle sees it
        for (const sizes of [[body.length], [1], [3, 5], [7, 1, 13]]) {
          const out = redactStream(body, sizes);
          expect(findEncodings(out, SECRET)).toEqual([]);
          expect(out.toString('latin1')).toContain(REDACTED);
          expect(out.toString('latin1')).toContain('{"after":2}');
        }
      }
    });
  }

  it('passes other bytes through unchanged, binary included', () => {
    const data = new Uint8Array(4096).map((_, i) => (i * 131) & 255);
    expect(Buffer.compare(redactStream(data, [100, 7]), Buffer.from(data))).toBe(0);
  });

  it('counts what it removed and redacts header strings whole', () => {
    const r = Redactor.forValues([SECRET]);
    expect(r.text(`x ${SECRET} y ${SECRET}`)).toBe(`x ${REDACTED} y ${REDACTED}`);
    expect(r.hits).toBe(2);
  });

  it('lists no form shorter than a safe fragment besides exact encodings', () => {
    for (const f of redactionForms(SECRET)) expect(f.length).toBeGreaterThanOrEqual(6);
  });
});
