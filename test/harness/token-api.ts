/**
 * An API that accepts only access tokens the test's OAuth 2.0 server issued (oidc-provider, JWT
 * access tokens): each bearer token is verified with jose against the server's JWKS, issuer,
 * audience and expiry, as a resource server does. Answers 200 with the token's `jti` (never the
 * token), or 401. Records every request, and each token it saw, so the tests can search for them.
 */
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { cors, listen } from './servers.ts';

export type TokenApiRequest = {
  readonly at: number;
  readonly ok: boolean;
  readonly jti?: string;
  /** why it was refused: jose's error code, or 'no-token' */
  readonly refused?: string;
  readonly via: string;
};

export type TokenApi = {
  readonly host: string;
  readonly requests: TokenApiRequest[];
  /** every distinct bearer token received (for the canary search) */
  readonly tokens: Set<string>;
  /** tokens (by jti) to answer 401 from now on, as a resource server does for a revoked token */
  readonly revoked: Set<string>;
  readonly close: () => Promise<void>;
};

export async function startTokenApi(issuer: string, jwksUrl: string, audience: string): Promise<TokenApi> {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const requests: TokenApiRequest[] = [];
  const tokens = new Set<string>();
  const revoked = new Set<string>();
  const bearer = (req: IncomingMessage) => /^Bearer ([\x21-\x7e]+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
  const server = await listen((req, res) => {
    const { headers, answered } = cors(req, res, 'GET, POST, OPTIONS');
    if (answered) return;
    req.resume();
    req.on('end', async () => {
      const via = new URL(req.url ?? '/', 'http://x').searchParams.get('via') ?? '';
      const token = bearer(req);
      let entry: TokenApiRequest;
      if (!token) entry = { at: Date.now(), ok: false, refused: 'no-token', via };
      else {
        tokens.add(token);
        try {
          // one second of leeway, as resource servers allow for clocks and transit (the tokens here live 6 s)
          const { payload } = await jwtVerify(token, jwks, { issuer, audience, clockTolerance: 1 });
          const jti = String(payload.jti);
          entry = revoked.has(jti) ? { at: Date.now(), ok: false, jti, refused: 'revoked', via } : { at: Date.now(), ok: true, jti, via };
        } catch (e) {
          entry = { at: Date.now(), ok: false, refused: (e as { code?: string }).code ?? 'invalid', via };
        }
      }
      requests.push(entry);
      res.writeHead(entry.ok ? 200 : 401, { ...headers, 'content-type': 'application/json' });
      res.end(JSON.stringify(entry.ok ? { ok: true, jti: entry.jti } : { error: 'invalid_token' }));
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    tokens,
    revoked,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
