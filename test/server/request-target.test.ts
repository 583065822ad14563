/**
 * The server reads plain request paths without the URL parser (src/server/http.ts). That is only
 * sound if it reads every target exactly as the parser does: a path the parser would normalise
 * (dot segments, `//`, `%`, `\`) must take the parser's path, or a route could be reached by a
 * spelling the checks did not expect.
 */
import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { requestTarget } from '../../src/server/http.ts';

/** What a reading gives, or that it refused (`//` and a bad host, say: the request then fails as before). */
function outcome(read: () => { pathname: string; searchParams: { get(name: string): string | null } }) {
  try {
    const t = read();
    return { pathname: t.pathname, query: t.searchParams.get('after') };
  } catch (e) {
    return { refused: (e as Error).name };
  }
}
const parsed = (raw: string) => outcome(() => new URL(raw, 'http://x'));
const read = (raw: string) => outcome(() => requestTarget(raw));

describe('request targets', () => {
  it('reads the usual paths as the URL parser does', () => {
    for (const raw of [
      '/',
      '/healthz',
      '/v1/vaults/0b8f5d1e-8f2a-4c1e-9c3e-1234567890ab/engines/api/token',
      '/v1/vaults/0b8f5d1e-8f2a-4c1e-9c3e-1234567890ab/engines/api/.well-known/openid-configuration',
      '/v1/vaults/0b8f5d1e-8f2a-4c1e-9c3e-1234567890ab/entries?after=12&limit=5',
    ])
      expect(read(raw)).toEqual(parsed(raw));
  });

  it('leaves every spelling the parser would change to the parser', () => {
    for (const raw of [
      '/v1/vaults/x/../../v1/recovery/ab',
      '/v1/./vaults',
      '/v1/vaults/..',
      '//evil.example/v1/vaults',
      '/v1//vaults',
      '/v1/vaults/%2e%2e/head',
      '/v1\\vaults',
      '/v1/vaults/{x}',
      '/v1/vaults/é',
      'http://other.example/v1/vaults',
      '/v1/vaults#head',
    ])
      expect(read(raw)).toEqual(parsed(raw));
  });

  it('agrees with the URL parser on 20,000 random targets', () => {
    // slashes and dots weigh more: dot segments and empty segments are what the parser changes
    const alphabet = [...'///..aZ0-_~%2e?#\\ @:\'"{|^`=&é!$()*+,;[]'];
    for (let n = 0; n < 20_000; n++) {
      const raw = `/${Array.from({ length: randomInt(0, 12) }, () => alphabet[randomInt(alphabet.length)]).join('')}`;
      expect(read(raw), raw).toEqual(parsed(raw));
    }
  });
});
