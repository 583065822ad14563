/**
 * A local server shaped like Google's OAuth 2.0 token endpoint for service accounts, and a Google
 * API behind it. The token endpoint takes `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
 * with an `assertion` it verifies with jose against the service account's public key, as Google
 * does: RS256, `iss` the account's email, `aud` the token URL, a scope, at most an hour between
 * `iat` and `exp`, `iat` not in the future. It answers `{access_token: "ya29.…", expires_in,
 * token_type: "Bearer"}`, or 400 `invalid_grant` like Google. The API accepts only the tokens it
 * issued, until they expire (401 otherwise), and records what each request carried.
 */
import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { jwtVerify } from 'jose';
import { close, cors, listen, readBody } from './servers.ts';

export type GoogleServer = {
  readonly tokenUrl: string;
  readonly apiHost: string;
  /** token requests: all, and those refused */
  readonly tokenRequests: { total: number; refused: number };
  /** every access token issued, with its expiry and the claims it was issued for */
  readonly issued: Map<string, { exp: number; scope: string; sub?: string }>;
  /** API requests: whether the token was good */
  readonly apiRequests: { at: number; ok: boolean; via: string }[];
  readonly close: () => Promise<void>;
};

export async function startGoogleServer(opts: { publicKey: KeyObject; clientEmail: string; ttlSeconds: number }): Promise<GoogleServer> {
  const tokenRequests = { total: 0, refused: 0 };
  const issued = new Map<string, { exp: number; scope: string; sub?: string }>();
  const apiRequests: { at: number; ok: boolean; via: string }[] = [];
  let tokenUrl = '';
  const refuse = (res: import('node:http').ServerResponse, description: string) => {
    tokenRequests.refused++;
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'invalid_grant', error_description: description }));
  };
  const server = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token' && req.method === 'POST') {
      tokenRequests.total++;
      const form = new URLSearchParams((await readBody(req)).toString('utf8'));
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return refuse(res, 'Invalid grant_type.');
      try {
        const { payload, protectedHeader } = await jwtVerify(form.get('assertion') ?? '', opts.publicKey, {
          algorithms: ['RS256'],
          issuer: opts.clientEmail,
          audience: tokenUrl,
        });
        const iat = Number(payload.iat);
        const exp = Number(payload.exp);
        const now = Math.floor(Date.now() / 1000);
        if (protectedHeader.alg !== 'RS256' || typeof payload.scope !== 'string' || !payload.scope)
          return refuse(res, 'Invalid JWT: scope.');
        if (!(exp - iat <= 3600) || iat > now + 5)
          return refuse(res, 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.');
        const token = `ya29.FAKE-${randomBytes(18).toString('base64url')}`;
        issued.set(token, { exp: Date.now() + opts.ttlSeconds * 1000, scope: payload.scope, ...(payload.sub ? { sub: payload.sub } : {}) });
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
        return res.end(JSON.stringify({ access_token: token, expires_in: opts.ttlSeconds, token_type: 'Bearer' }));
      } catch {
        return refuse(res, 'Invalid JWT Signature.');
      }
    }
    // the API
    const { headers, answered } = cors(req, res, 'GET, POST, OPTIONS');
    if (answered) return;
    req.resume();
    const token = /^Bearer (\S+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    const entry = token ? issued.get(token) : undefined;
    const ok = entry !== undefined && entry.exp > Date.now();
    apiRequests.push({ at: Date.now(), ok, via: url.searchParams.get('via') ?? '' });
    res.writeHead(ok ? 200 : 401, { ...headers, 'content-type': 'application/json' });
    res.end(JSON.stringify(ok ? { kind: 'bigquery#projectList', projects: [] } : { error: { code: 401, status: 'UNAUTHENTICATED' } }));
  });
  const port = (server.address() as AddressInfo).port;
  tokenUrl = `http://127.0.0.1:${port}/token`;
  return {
    tokenUrl,
    // the API on another name for the same port: its own host for the secret's rule
    apiHost: `localhost:${port}`,
    tokenRequests,
    issued,
    apiRequests,
    close: () => close(server),
  };
}
