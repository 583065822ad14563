/**
 * Keyhole's OAuth 2.0 client code (core/credentials/oauth2.ts, background/credentials/
 * token-client.ts) against a real authorization server (oidc-provider, test/harness/
 * oauth2-server.ts): client credentials with each client authentication, access tokens that
 * verify against the server's JWKS with jose, refresh-token rotation and the family revocation a
 * reused refresh token causes; and against hostile endpoints (a redirect, 10 MB, a slow drip).
 */
import { generateKeyPairSync } from 'node:crypto';
import type { Server } from 'node:http';
import { createRemoteJWKSet, exportJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestToken } from '../../src/background/credentials/token-client.ts';
import { CredentialError } from '../../src/core/credentials/errors.ts';
import { type TokenEndpoint, type TokenGrant, tokenRequest } from '../../src/core/credentials/oauth2.ts';
import { importSigningKeyPem } from '../../src/core/credentials/pem.ts';
import { type OAuthServer, RESOURCE, startOAuthServer } from '../harness/oauth2-server.ts';
import { listen } from '../harness/servers.ts';

const fetchFn = (url: string, init: RequestInit) => fetch(url, init);

async function mint(ep: TokenEndpoint, grant: TokenGrant, timeoutMs?: number) {
  return requestToken(fetchFn, await tokenRequest(ep, grant, Date.now(), crypto.randomUUID()), Date.now, timeoutMs);
}

async function failure(p: Promise<unknown>): Promise<{ code: string; oauthError?: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CredentialError) return { code: e.code, ...(e.detail.oauthError ? { oauthError: e.detail.oauthError } : {}) };
    throw e;
  }
  return { code: 'accepted' };
}

describe('against a real OAuth 2.0 server (oidc-provider)', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let as: OAuthServer;
  let jwks: ReturnType<typeof createRemoteJWKSet>;

  beforeAll(async () => {
    const publicJwk = { ...(await exportJWK(rsa.publicKey)), alg: 'RS256', use: 'sig', kid: 'client-key' };
    as = await startOAuthServer({ accessTokenTtlSeconds: 60, clientJwks: { keys: [publicJwk] } });
    jwks = createRemoteJWKSet(new URL(as.jwksUrl));
  });
  afterAll(async () => {
    await as?.close();
  });

  /** The access token is a JWT the server signed, for the API, valid as long as it said. */
  async function verifies(accessToken: string, expiresIn: number) {
    const { payload } = await jwtVerify(accessToken, jwks, { issuer: as.issuer, audience: RESOURCE });
    expect((payload.exp as number) - (payload.iat as number)).toBe(expiresIn);
    return payload;
  }

  it('client credentials, the client authenticated with HTTP Basic', async () => {
    const before = as.tokenRequests.total;
    const t = await mint(
      { url: as.tokenUrl, clientId: 'cc-basic', auth: { method: 'client_secret_basic', secret: as.secrets.basic } },
      { type: 'client_credentials', scope: 'read' },
    );
    expect(t.tokenType).toBe('Bearer');
    expect(t.expiresIn).toBe(60);
    expect(t.refreshToken).toBeUndefined(); // client credentials issue none (RFC 6749 §4.4.3)
    expect((await verifies(t.accessToken, 60)).client_id).toBe('cc-basic');
    expect(as.tokenRequests.total).toBe(before + 1);
  });

  it('client credentials, the client authenticated in the body', async () => {
    const t = await mint(
      { url: as.tokenUrl, clientId: 'cc-post', auth: { method: 'client_secret_post', secret: as.secrets.post } },
      { type: 'client_credentials' },
    );
    expect((await verifies(t.accessToken, 60)).client_id).toBe('cc-post');
  });

  it('client credentials, the client authenticated by a private_key_jwt assertion signed in WebCrypto', async () => {
    const key = await importSigningKeyPem(rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string);
    const t = await mint(
      { url: as.tokenUrl, clientId: 'cc-jwt', auth: { method: 'private_key_jwt', key }, issuer: as.issuer },
      { type: 'client_credentials', resource: RESOURCE },
    );
    expect((await verifies(t.accessToken, 60)).client_id).toBe('cc-jwt');
  });

  it('a wrong client secret is an OAuth error, invalid_client', async () => {
    expect(
      await failure(
        mint(
          { url: as.tokenUrl, clientId: 'cc-basic', auth: { method: 'client_secret_basic', secret: 'FAKE-wrong' } },
          { type: 'client_credentials' },
        ),
      ),
    ).toEqual({
      code: 'oauth-error',
      oauthError: 'invalid_client',
    });
  });

  it('refresh tokens rotate; a reused one is invalid_grant and revokes the whole family', async () => {
    const ep: TokenEndpoint = { url: as.tokenUrl, clientId: 'rt-client', auth: { method: 'client_secret_basic', secret: as.secrets.rt } };
    const first = await as.mintRefreshToken();
    const a = await mint(ep, { type: 'refresh_token', refreshToken: first });
    await verifies(a.accessToken, 60);
    expect(a.refreshToken).toBeDefined();
    expect(a.refreshToken).not.toBe(first); // rotated: the old one must never be sent again
    const b = await mint(ep, { type: 'refresh_token', refreshToken: a.refreshToken as string });
    expect(b.refreshToken).not.toBe(a.refreshToken);
    // sending a spent one: the server takes it for theft and revokes the family
    expect(await failure(mint(ep, { type: 'refresh_token', refreshToken: first }))).toEqual({
      code: 'invalid-grant',
      oauthError: 'invalid_grant',
    });
    expect(await failure(mint(ep, { type: 'refresh_token', refreshToken: b.refreshToken as string }))).toEqual({
      code: 'invalid-grant',
      oauthError: 'invalid_grant',
    });
  });

  it('an endpoint answering 503 or too slowly fails with a typed error', async () => {
    const ep: TokenEndpoint = { url: as.tokenUrl, clientId: 'cc-basic', auth: { method: 'client_secret_basic', secret: as.secrets.basic } };
    as.faults.status = 503;
    expect(await failure(mint(ep, { type: 'client_credentials' }))).toEqual({ code: 'oauth-error', oauthError: 'temporarily_unavailable' });
    delete as.faults.status;
    as.faults.delayMs = 1000;
    expect(await failure(mint(ep, { type: 'client_credentials' }, 200))).toEqual({ code: 'timeout' });
    delete as.faults.delayMs;
    expect((await mint(ep, { type: 'client_credentials' })).tokenType).toBe('Bearer'); // and it recovers
  });
});

describe('against hostile token endpoints', () => {
  let hostile: Server;
  let elsewhere: Server;
  let port = 0;
  const reachedElsewhere: string[] = [];

  beforeAll(async () => {
    elsewhere = await listen((req, res) => {
      reachedElsewhere.push(String(req.headers.authorization ?? ''));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: 'FAKE-from-elsewhere', token_type: 'Bearer', expires_in: 60 }));
    });
    const elsewherePort = (elsewhere.address() as { port: number }).port;
    hostile = await listen((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/redirect') {
        res.writeHead(307, { location: `http://127.0.0.1:${elsewherePort}/token` });
        return res.end();
      }
      if (path === '/huge') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"access_token":"');
        const chunk = 'A'.repeat(64 * 1024);
        let sent = 0;
        const pump = () => {
          while (sent < 10 * 1024 * 1024) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end('","token_type":"Bearer"}');
        };
        res.on('close', () => {
          sent = Number.POSITIVE_INFINITY;
        });
        return pump();
      }
      if (path === '/drip') {
        res.writeHead(200, { 'content-type': 'application/json' });
        const body = JSON.stringify({ access_token: 'FAKE-drip', token_type: 'Bearer', expires_in: 60 });
        let i = 0;
        const t = setInterval(() => {
          if (i >= body.length || res.destroyed) return clearInterval(t);
          res.write(body[i++]);
        }, 100);
        return;
      }
      res.writeHead(404);
      res.end();
    });
    port = (hostile.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of [hostile, elsewhere]) {
      s?.closeAllConnections();
      await new Promise((r) => s?.close(r));
    }
  });

  const ep = (path: string): TokenEndpoint => ({
    url: `http://127.0.0.1:${port}${path}`,
    clientId: 'c',
    auth: { method: 'client_secret_basic', secret: 'FAKE-client-secret-hostile' },
  });

  it('a redirect is refused and never followed with the client secret', async () => {
    expect(await failure(mint(ep('/redirect'), { type: 'client_credentials' }))).toEqual({ code: 'redirect' });
    expect(reachedElsewhere).toEqual([]);
  });

  it('a 10 MB answer is cut off at the bound', async () => {
    expect(await failure(mint(ep('/huge'), { type: 'client_credentials' }))).toEqual({ code: 'too-large' });
  });

  it('an answer dripping past the timeout is given up', async () => {
    expect(await failure(mint(ep('/drip'), { type: 'client_credentials' }, 1000))).toEqual({ code: 'timeout' });
  });
});
