import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scanDir } from '../harness/scan.ts';

// The scanner is what the profile test trusts to say "not there": check it finds every encoding.
describe('profile scanner', () => {
  const needle = 'sk-FAKE-scan-needle-12345';
  const forms: [string, Buffer][] = [
    ['utf8', Buffer.from(needle)],
    ['utf16le', Buffer.from(needle, 'utf16le')],
    ['utf16be', Buffer.from(needle, 'utf16le').swap16()],
    ['hex', Buffer.from(Buffer.from(needle).toString('hex'))],
    ['HEX', Buffer.from(Buffer.from(needle).toString('hex').toUpperCase())],
  ];
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.from('xyz'.slice(0, k)), Buffer.from(needle)]).toString('base64');
    forms.push([`base64@${k}`, Buffer.from(b64)]);
    forms.push([`base64url@${k}`, Buffer.from(b64.replaceAll('+', '-').replaceAll('/', '_'))]);
  }
  for (const [name, bytes] of forms) {
    it(`finds the ${name} form inside other bytes`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'scan-'));
      mkdirSync(join(dir, 'nested'));
      writeFileSync(join(dir, 'nested', 'f.bin'), Buffer.concat([Buffer.from([0, 1, 2, 255]), bytes, Buffer.from('tail')]));
      expect(scanDir(dir, needle).map((h) => h.encoding)).toContain(name);
    });
  }
  it('finds nothing where nothing is', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scan-'));
    writeFileSync(join(dir, 'f'), 'sk-FAKE-scan-needle-1234 (one character short)');
    expect(scanDir(dir, needle)).toEqual([]);
  });
});
