/**
 * The pure credential code (core/credentials): PEM import, JWT signing, token requests, hostile
 * token answers, lifetimes. Keys come from node:crypto; signatures are verified with jose, so
 * neither side checks itself. Every value here is an obvious fake.
 */
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, importSPKI, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { CredentialError } from '../../src/core/credentials/errors.ts';
import { clientAssertionClaims, signJwt } from '../../src/core/credentials/jwt.ts';
import {
  afterRequest,
  BREAKER_COOLDOWN_MS,
  BREAKER_FAILURES,
  CLOSED,
  expirySkew,
  mayRequest,
  refreshAt,
  retryDelayMs,
  usable,
} from '../../src/core/credentials/lifetime.ts';
import {
  checkTokenEndpoint,
  DEFAULT_EXPIRES_IN_S,
  parseTokenResponse,
  type TokenEndpoint,
  tokenRequest,
} from '../../src/core/credentials/oauth2.ts';
import { importSigningKeyPem } from '../../src/core/credentials/pem.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = {
  rsaPkcs8: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  rsaPkcs1: rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
  rsaSpki: rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  ecPkcs8: ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  ecSec1: ec.privateKey.export({ type: 'sec1', format: 'pem' }) as string,
  ecSpki: ec.publicKey.export({ type: 'spki', format: 'pem' }) as string,
};

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ok';
  } catch (e) {
    if (e instanceof CredentialError) return e.code;
    throw e;
  }
}

describe('private keys pasted as PEM', () => {
  for (const [name, text, alg] of [
    ['RSA PKCS#8', pem.rsaPkcs8, 'RS256'],
    ['RSA PKCS#1 (as GitHub hands it out)', pem.rsaPkcs1, 'RS256'],
    ['EC P-256 PKCS#8', pem.ecPkcs8, 'ES256'],
    ['EC P-256 SEC1', pem.ecSec1, 'ES256'],
  ] as const) {
    it(`imports ${name} as a non-extractable ${alg} key that signs verifiably`, async () => {
      const key = await importSigningKeyPem(`some text before\n${text}\nand after`);
      expect(key.alg).toBe(alg);
      expect(key.key.extractable).toBe(false);
      await expect(crypto.subtle.exportKey('pkcs8', key.key)).rejects.toThrow();
      const jwt = await signJwt({ sub: 'FAKE' }, key);
      const pub = await importSPKI(alg === 'RS256' ? pem.rsaSpki : pem.ecSpki, alg);
      expect((await jwtVerify(jwt, pub)).payload.sub).toBe('FAKE');
    });
  }

  it('refuses what is not a usable private key, with a typed error', async () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const encrypted = rsa.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'FAKE pass' }) as string;
    const legacyEncrypted = rsa.privateKey.export({
      type: 'pkcs1',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'FAKE pass',
    }) as string;
    expect(await code(importSigningKeyPem(weak))).toBe('weak-key');
    expect(await code(importSigningKeyPem(p384))).toBe('bad-key');
    expect(await code(importSigningKeyPem(encrypted))).toBe('encrypted-key');
    expect(await code(importSigningKeyPem(legacyEncrypted))).toBe('encrypted-key');
    expect(await code(importSigningKeyPem(pem.rsaSpki))).toBe('bad-key');
    expect(await code(importSigningKeyPem('-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----'))).toBe('bad-key');
    expect(await code(importSigningKeyPem('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----'))).toBe('bad-key');
    expect(await code(importSigningKeyPem('sk-FAKE-not-a-pem'))).toBe('bad-key');
    expect(await code(importSigningKeyPem('x'.repeat(70_000)))).toBe('bad-key');
  });

  it('never puts the key in an error message', async () => {
    const broken = pem.rsaPkcs8.replace(/\n.{10}/, '\n!!!!!!!!!!');
    try {
      await importSigningKeyPem(broken);
    } catch (e) {
      expect(String((e as Error).message)).not.toMatch(/MII|BEGIN/);
    }
  });
});

describe('token requests', () => {
  const ep = (auth: TokenEndpoint['auth']): TokenEndpoint => ({ url: 'https://auth.example.test/token', clientId: 'client:1', auth });
  const form = (body: string) => Object.fromEntries(new URLSearchParams(body));

  it('client_secret_basic form-encodes id and secret before joining them (RFC 6749 §2.3.1)', async () => {
    const r = await tokenRequest(
      ep({ method: 'client_secret_basic', secret: 'FAKE p@ss w' }),
      { type: 'client_credentials', scope: 'read' },
      0,
      'j',
    );
    expect(r.headers.authorization).toBe(`Basic ${Buffer.from('client%3A1:FAKE+p%40ss+w').toString('base64')}`);
    expect(form(r.body)).toEqual({ grant_type: 'client_credentials', scope: 'read' });
  });

  it('client_secret_post puts them in the body; resource and audience go along', async () => {
    const r = await tokenRequest(
      ep({ method: 'client_secret_post', secret: 'FAKE-secret' }),
      { type: 'client_credentials', resource: 'https://api.example.test', audience: 'api' },
      0,
      'j',
    );
    expect(r.headers.authorization).toBeUndefined();
    expect(form(r.body)).toEqual({
      grant_type: 'client_credentials',
      resource: 'https://api.example.test',
      audience: 'api',
      client_id: 'client:1',
      client_secret: 'FAKE-secret',
    });
  });

  it('private_key_jwt signs an RFC 7523 assertion for the issuer', async () => {
    const key = await importSigningKeyPem(pem.rsaPkcs8);
    const now = 1_800_000_000_000;
    const r = await tokenRequest(
      { ...ep({ method: 'private_key_jwt', key }), issuer: 'https://auth.example.test' },
      { type: 'client_credentials' },
      now,
      'jti-1',
    );
    const f = form(r.body);
    expect(f.client_assertion_type).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    const { payload } = await jwtVerify(f.client_assertion as string, await importSPKI(pem.rsaSpki, 'RS256'), {
      currentDate: new Date(now),
    });
    expect(payload).toEqual({
      iss: 'client:1',
      sub: 'client:1',
      aud: 'https://auth.example.test',
      jti: 'jti-1',
      iat: 1_800_000_000,
      exp: 1_800_000_060,
    });
    expect(decodeProtectedHeader(f.client_assertion as string)).toEqual({ alg: 'RS256', typ: 'JWT' });
    // without an issuer, the audience is the token endpoint
    const r2 = await tokenRequest(ep({ method: 'private_key_jwt', key }), { type: 'client_credentials' }, now, 'jti-2');
    expect(decodeJwt(form(r2.body).client_assertion as string).aud).toBe('https://auth.example.test/token');
    expect(clientAssertionClaims({ clientId: 'c', audience: 'a', now: 1000, jti: 'x' })).toMatchObject({ iat: 1, exp: 61 });
  });

  it('refresh sends the refresh token', async () => {
    const r = await tokenRequest(ep({ method: 'none' }), { type: 'refresh_token', refreshToken: 'FAKE-rt' }, 0, 'j');
    expect(form(r.body)).toEqual({ grant_type: 'refresh_token', refresh_token: 'FAKE-rt', client_id: 'client:1' });
  });

  it('a JWT-bearer grant (Google service accounts) sends the assertion alone, as Google’s client does', async () => {
    const r = await tokenRequest(ep({ method: 'none' }), { type: 'jwt-bearer', assertion: 'FAKE.assertion.sig' }, 0, 'j');
    expect(form(r.body)).toEqual({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: 'FAKE.assertion.sig' });
    expect(r.headers.authorization).toBeUndefined();
  });

  it('takes only an https token endpoint, or http on loopback', async () => {
    expect(checkTokenEndpoint('http://127.0.0.1:9000/token').port).toBe('9000');
    expect(checkTokenEndpoint('http://auth.localhost/token').hostname).toBe('auth.localhost');
    for (const bad of [
      'http://auth.example.test/token',
      'https://u:p@auth.example.test/t',
      'https://auth.example.test/t#x',
      'javascript:alert(1)',
      'ftp://x/',
      '',
      42,
    ])
      expect(await code(() => checkTokenEndpoint(bad))).toBe('bad-endpoint');
  });
});

describe('token answers from a hostile or broken endpoint', () => {
  const now = 1_000_000;
  const ok = { access_token: 'FAKE-at-123', token_type: 'Bearer', expires_in: 3600 };
  const j = (o: unknown) => JSON.stringify(o);

  it('takes a good answer, with bearer in any case, a rotated refresh token and a scope', () => {
    expect(parseTokenResponse(200, j({ ...ok, token_type: 'bearer', refresh_token: 'FAKE-rt-2', scope: 'read' }), now)).toEqual({
      accessToken: 'FAKE-at-123',
      tokenType: 'Bearer',
      expiresIn: 3600,
      notAfter: now + 3_600_000,
      refreshToken: 'FAKE-rt-2',
      scope: 'read',
    });
    const { expires_in: _, ...noExpiry } = ok;
    expect(parseTokenResponse(200, j(noExpiry), now).notAfter).toBe(now + DEFAULT_EXPIRES_IN_S * 1000);
  });

  const hostile: [string, number, string, string][] = [
    ['not JSON', 200, 'access_token=FAKE', 'not-json'],
    ['an HTML error page with 200', 200, '<html><body>Service Unavailable</body></html>', 'not-json'],
    ['a JSON array', 200, '[1]', 'not-json'],
    ['access_token missing', 200, j({ token_type: 'Bearer', expires_in: 60 }), 'no-access-token'],
    ['access_token not a string', 200, j({ ...ok, access_token: 42 }), 'bad-token'],
    ['access_token with a CRLF', 200, j({ ...ok, access_token: 'FAKE\r\nX-Evil: 1' }), 'bad-token'],
    ['access_token with a space', 200, j({ ...ok, access_token: 'FAKE at' }), 'bad-token'],
    ['access_token too long', 200, j({ ...ok, access_token: 'A'.repeat(20_000) }), 'bad-token'],
    ['token_type missing', 200, j({ access_token: 'FAKE', expires_in: 60 }), 'bad-token-type'],
    ['token_type mac', 200, j({ ...ok, token_type: 'mac' }), 'bad-token-type'],
    ['token_type DPoP', 200, j({ ...ok, token_type: 'DPoP' }), 'bad-token-type'],
    ['expires_in negative', 200, j({ ...ok, expires_in: -5 }), 'bad-expires-in'],
    ['expires_in zero', 200, j({ ...ok, expires_in: 0 }), 'bad-expires-in'],
    ['expires_in huge', 200, j({ ...ok, expires_in: 10 ** 12 }), 'bad-expires-in'],
    ['expires_in a string', 200, j({ ...ok, expires_in: '3600' }), 'bad-expires-in'],
    ['expires_in null', 200, j({ ...ok, expires_in: null }), 'bad-expires-in'],
    ['a refresh token that cannot be sent back', 200, j({ ...ok, refresh_token: 'FAKE\nrt' }), 'bad-token'],
    ['invalid_grant (a revoked or reused refresh token)', 400, j({ error: 'invalid_grant' }), 'invalid-grant'],
    ['invalid_client', 401, j({ error: 'invalid_client', error_description: 'FAKE-secret-from-desc' }), 'oauth-error'],
    ['503 with an HTML page', 503, '<html>down</html>', 'http-status'],
    ['500 with a JSON error of its own shape', 500, j({ message: 'boom' }), 'http-status'],
  ];
  for (const [name, status, body, expected] of hostile) {
    it(`refuses ${name} as ${expected}, saying nothing of what it held`, async () => {
      try {
        parseTokenResponse(status, body, now);
        throw new Error('accepted');
      } catch (e) {
        expect(e).toBeInstanceOf(CredentialError);
        expect((e as CredentialError).code).toBe(expected);
        expect(JSON.stringify({ m: (e as Error).message, d: (e as CredentialError).detail })).not.toMatch(/FAKE/);
      }
    });
  }

  it('keeps only a plain OAuth error code as detail', () => {
    try {
      parseTokenResponse(400, j({ error: 'invalid_scope' }), now);
    } catch (e) {
      expect((e as CredentialError).detail).toEqual({ status: 400, oauthError: 'invalid_scope' });
    }
    try {
      parseTokenResponse(400, j({ error: 'Bad <b>things</b> FAKE' }), now);
    } catch (e) {
      expect((e as CredentialError).detail).toEqual({ status: 400 });
    }
  });
});

describe('lifetimes', () => {
  it('refreshes between 75% and 90% of the lifetime', () => {
    expect(refreshAt(0, 1000, () => 0)).toBe(750);
    expect(refreshAt(0, 1000, () => 0.999999)).toBe(899);
    for (let i = 0; i < 100; i++) {
      const t = refreshAt(10_000, 70_000, Math.random);
      expect(t).toBeGreaterThanOrEqual(55_000);
      expect(t).toBeLessThan(64_000);
    }
  });

  it('stops using a token the skew before it expires', () => {
    expect(usable(100_000, 69_999)).toBe(true);
    expect(usable(100_000, 70_000)).toBe(false);
    expect(usable(100_000, 99_000, 0)).toBe(true);
  });

  it('keeps the skew short of the refresh point for short-lived tokens', () => {
    expect(expirySkew(0, 3_600_000)).toBe(30_000); // an hour: 30 s
    expect(expirySkew(0, 60_000)).toBe(3_000); // a minute: 3 s, after the latest refresh point (54 s)
    for (const life of [5_000, 60_000, 600_000, 86_400_000])
      expect(life - expirySkew(0, life)).toBeGreaterThan(refreshAt(0, life, () => 0.999999));
  });

  it('retries with jittered, doubling delays up to 5 minutes', () => {
    expect(retryDelayMs(1, () => 1)).toBe(1000);
    expect(retryDelayMs(1, () => 0)).toBe(500);
    expect(retryDelayMs(4, () => 1)).toBe(8000);
    expect(retryDelayMs(30, () => 1)).toBe(300_000);
  });

  it('opens after repeated failures, half-opens after the cool-down, and closes on a success', () => {
    let b = CLOSED;
    for (let i = 0; i < BREAKER_FAILURES - 1; i++) b = afterRequest(b, false, 0);
    expect(b.state).toBe('closed');
    b = afterRequest(b, false, 0);
    expect(b.state).toBe('open');
    expect(mayRequest(b, BREAKER_COOLDOWN_MS - 1).allowed).toBe(false);
    // the person's "Refresh now" half-opens it before the cool-down ends
    expect(mayRequest(b, 1, true)).toMatchObject({ allowed: true, breaker: { state: 'half-open' } });
    expect(mayRequest(CLOSED, 1, true)).toEqual({ allowed: true, breaker: CLOSED });
    const half = mayRequest(b, BREAKER_COOLDOWN_MS);
    expect(half).toMatchObject({ allowed: true, breaker: { state: 'half-open' } });
    // the trial fails: open again, for twice as long
    const again = afterRequest(half.breaker, false, BREAKER_COOLDOWN_MS);
    expect(again).toMatchObject({ state: 'open', until: BREAKER_COOLDOWN_MS + 2 * BREAKER_COOLDOWN_MS });
    // a trial that succeeds closes it
    expect(afterRequest(mayRequest(again, again.until).breaker, true, again.until)).toEqual(CLOSED);
  });
});
