/**
 * The assertions of issue 14's kinds against the reference clients no one here wrote: a GitHub
 * App JWT byte-identical to universal-github-app-jwt's (Octokit's signer), and a Google service
 * account assertion identical (header, claims and signature) to what google-auth-library sends
 * for the same key and time. Keys are generated for the test; the key file is an obvious fake.
 */
import { generateKeyPairSync } from 'node:crypto';
import { JWT } from 'google-auth-library';
import githubAppJwt from 'universal-github-app-jwt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CredentialError } from '../../src/core/credentials/errors.ts';
import {
  appJwt,
  appJwtClaims,
  installationTokenRequest,
  installationTokenUrl,
  parseInstallationToken,
} from '../../src/core/credentials/github.ts';
import { GOOGLE_TOKEN_URL, googleAssertion, googleAssertionClaims, parseServiceAccountKey } from '../../src/core/credentials/google.ts';
import { importSigningKeyPem } from '../../src/core/credentials/pem.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PKCS8 = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const PKCS1 = rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
const NOW = Date.UTC(2026, 10, 30, 2, 0, 0) + 789;

describe('GitHub App JWT', () => {
  it('is byte-identical to universal-github-app-jwt’s, for an app id and for a client id', async () => {
    const key = await importSigningKeyPem(PKCS8);
    const byId = await githubAppJwt({ id: 123456, privateKey: PKCS8, now: Math.floor(NOW / 1000) });
    expect(await appJwt(key, '123456', NOW)).toBe(byId.token);
    const byClient = await githubAppJwt({ id: 'Iv23liFAKEclient01', privateKey: PKCS8, now: Math.floor(NOW / 1000) });
    expect(await appJwt(key, 'Iv23liFAKEclient01', NOW)).toBe(byClient.token);
    expect(appJwtClaims('123456', NOW).exp).toBe(byId.expiration);
  });

  it('takes the PKCS#1 PEM GitHub hands out (wrapped into PKCS#8 on entry) and signs the same token', async () => {
    const fromPkcs1 = await importSigningKeyPem(PKCS1);
    const reference = await githubAppJwt({ id: 42, privateKey: PKCS8, now: Math.floor(NOW / 1000) });
    expect(await appJwt(fromPkcs1, '42', NOW)).toBe(reference.token);
  });
});

describe('Google service account assertion', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const KEY_FILE = {
    type: 'service_account',
    project_id: 'keyhole-fake',
    private_key_id: 'abcdef0123456789',
    private_key: PKCS8,
    client_email: 'agent@keyhole-fake.iam.gserviceaccount.com',
    client_id: '1000000000000000000',
    token_uri: GOOGLE_TOKEN_URL,
  };

  /** What google-auth-library posts to the token endpoint, captured at its fetch (Google is not called). */
  async function referenceAssertion(scopes: string[], subject?: string): Promise<string> {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW);
    let assertion = '';
    const client = new JWT({
      email: KEY_FILE.client_email,
      key: KEY_FILE.private_key,
      scopes,
      ...(subject ? { subject } : {}),
      transporterOptions: {
        fetchImplementation: (async (url: string, init?: { body?: unknown }) => {
          expect(String(url)).toBe(GOOGLE_TOKEN_URL);
          const body = new URLSearchParams(String(init?.body));
          expect(body.get('grant_type')).toBe('urn:ietf:params:oauth:grant-type:jwt-bearer');
          assertion = body.get('assertion') ?? '';
          return new Response(JSON.stringify({ access_token: 'ya29.FAKE-token', expires_in: 3599, token_type: 'Bearer' }), {
            headers: { 'content-type': 'application/json' },
          });
        }) as unknown as typeof fetch,
      },
    });
    await client.getAccessToken();
    vi.useRealTimers();
    return assertion;
  }

  it('signs the same assertion as google-auth-library: header, claims and signature', async () => {
    const sa = parseServiceAccountKey(JSON.stringify(KEY_FILE));
    const key = await importSigningKeyPem(sa.privateKeyPem);
    const scopes = ['https://www.googleapis.com/auth/cloud-platform', 'https://www.googleapis.com/auth/bigquery.readonly'];
    const theirs = await referenceAssertion(scopes);
    const ours = await googleAssertion(
      key,
      googleAssertionClaims({ clientEmail: sa.clientEmail, scopes, tokenUri: sa.tokenUri, now: NOW }),
    );
    const part = (jwt: string, i: number) => JSON.parse(Buffer.from(jwt.split('.')[i] as string, 'base64url').toString('utf8'));
    expect(part(ours, 0)).toEqual(part(theirs, 0));
    expect(part(ours, 1)).toEqual(part(theirs, 1));
    expect(ours).toBe(theirs); // RS256 is deterministic: the same bytes signed the same way
  });

  it('with a subject (domain-wide delegation), the same as google-auth-library’s too', async () => {
    const key = await importSigningKeyPem(PKCS8);
    const theirs = await referenceAssertion(['https://www.googleapis.com/auth/drive.readonly'], 'person@keyhole-fake.example');
    const ours = await googleAssertion(
      key,
      googleAssertionClaims({
        clientEmail: KEY_FILE.client_email,
        scopes: ['https://www.googleapis.com/auth/drive.readonly'],
        tokenUri: GOOGLE_TOKEN_URL,
        now: NOW,
        subject: 'person@keyhole-fake.example',
      }),
    );
    expect(ours).toBe(theirs);
  });

  it('refuses what is not a service account key file, with a typed error that holds nothing of it', () => {
    const bad: unknown[] = [
      'not json at all',
      JSON.stringify([]),
      JSON.stringify({ ...KEY_FILE, type: 'authorized_user' }),
      JSON.stringify({ ...KEY_FILE, client_email: 'not an email' }),
      JSON.stringify({ ...KEY_FILE, private_key: 'FAKE-not-a-pem' }),
      JSON.stringify({ ...KEY_FILE, token_uri: 'http://oauth2.example.com/token' }),
      JSON.stringify({ ...KEY_FILE, client_email: undefined }),
      42,
      'x'.repeat(70 * 1024),
    ];
    for (const input of bad) {
      let caught: unknown;
      try {
        parseServiceAccountKey(input);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(CredentialError);
      expect((caught as CredentialError).code).toBe('bad-key-file');
      expect(String((caught as Error).message)).not.toContain('PRIVATE KEY');
    }
    // a key file without token_uri uses Google's
    const { token_uri: _, ...noUri } = KEY_FILE;
    expect(parseServiceAccountKey(JSON.stringify(noUri)).tokenUri).toBe(GOOGLE_TOKEN_URL);
  });
});

describe('GitHub installation tokens: the request and GitHub’s answer', () => {
  const now = Date.UTC(2026, 10, 30, 3, 0, 0);
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e instanceof CredentialError ? e.code : 'other';
    }
    return 'accepted';
  };

  it('asks the installation’s endpoint, on github.com or a GitHub Enterprise Server', () => {
    expect(installationTokenUrl('https://api.github.com', '123')).toBe('https://api.github.com/app/installations/123/access_tokens');
    expect(installationTokenUrl('https://ghe.example.com/api/v3/', '9')).toBe(
      'https://ghe.example.com/api/v3/app/installations/9/access_tokens',
    );
    expect(installationTokenUrl('http://127.0.0.1:8080', '5')).toBe('http://127.0.0.1:8080/app/installations/5/access_tokens');
    for (const [base, id] of [
      ['http://api.github.com', '1'],
      ['https://api.github.com', '0'],
      ['https://api.github.com', '12a'],
      ['https://user:pw@api.github.com', '1'],
    ] as const)
      expect(code(() => installationTokenUrl(base, id))).toBe('bad-endpoint');
  });

  it('signs with the app JWT and narrows only when asked', () => {
    const plain = installationTokenRequest('https://api.github.com/app/installations/1/access_tokens', 'FAKE.app.jwt');
    expect(plain.headers).toMatchObject({ authorization: 'Bearer FAKE.app.jwt', accept: 'application/vnd.github+json' });
    expect(JSON.parse(plain.body)).toEqual({});
    const narrowed = installationTokenRequest('https://api.github.com/app/installations/1/access_tokens', 'FAKE.app.jwt', {
      repositories: ['keyhole'],
      permissions: { contents: 'read' },
    });
    expect(JSON.parse(narrowed.body)).toEqual({ repositories: ['keyhole'], permissions: { contents: 'read' } });
  });

  it('takes GitHub’s 201 answer: the token, its expiry, what it may do', () => {
    const t = parseInstallationToken(
      201,
      JSON.stringify({
        token: 'ghs_FAKEinstallationtoken000000000000000',
        expires_at: '2026-11-30T04:00:00Z',
        permissions: { contents: 'read', metadata: 'read' },
        repository_selection: 'selected',
        repositories: [{ id: 1, name: 'keyhole', full_name: 'fake/keyhole' }],
      }),
      now,
    );
    expect(t).toMatchObject({ tokenType: 'Bearer', expiresIn: 3600, notAfter: Date.UTC(2026, 10, 30, 4), repositories: ['keyhole'] });
    expect(t.permissions).toEqual({ contents: 'read', metadata: 'read' });
  });

  it('refuses hostile or broken answers with a typed error that holds no token', () => {
    const good = { token: 'ghs_FAKE0000', expires_at: '2026-11-30T04:00:00Z' };
    const cases: [number, string, string][] = [
      [401, '{"message":"A JSON web token could not be decoded"}', 'invalid-grant'],
      [404, '{"message":"Not Found"}', 'invalid-grant'],
      [422, '{"message":"The permissions requested are not granted to this installation."}', 'oauth-error'],
      [500, 'oops', 'http-status'],
      [201, '<html>ghs_FAKE-in-html</html>', 'not-json'],
      [201, '[]', 'not-json'],
      [201, JSON.stringify({ expires_at: good.expires_at }), 'no-access-token'],
      [201, JSON.stringify({ ...good, token: 'ghs FAKE with space' }), 'bad-token'],
      [201, JSON.stringify({ ...good, token: 42 }), 'bad-token'],
      [201, JSON.stringify({ ...good, expires_at: '2026-11-30T02:00:00Z' }), 'bad-expires-in'],
      [201, JSON.stringify({ ...good, expires_at: '2026-11-30T09:00:00Z' }), 'bad-expires-in'],
      [201, JSON.stringify({ ...good, expires_at: 'soon' }), 'bad-expires-in'],
      [201, JSON.stringify({ token: good.token }), 'bad-expires-in'],
    ];
    for (const [status, body, expected] of cases) {
      let caught: unknown;
      try {
        parseInstallationToken(status, body, now);
      } catch (e) {
        caught = e;
      }
      expect({ body, code: (caught as CredentialError)?.code }).toEqual({ body, code: expected });
      expect((caught as Error).message).not.toContain('ghs_');
    }
  });
});
