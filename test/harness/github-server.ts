/**
 * A local server shaped like GitHub's API for GitHub Apps. `POST /app/installations/{id}/access_tokens`
 * verifies the app JWT with jose against the app's public key, as GitHub does (RS256, `iss` the
 * app id, at most ten minutes between `iat` and `exp`, `iat` not in the future), knows one
 * installation with its repositories and permissions, refuses a narrowing outside them (422), and
 * answers 201 `{token: "ghs_…", expires_at, permissions, repositories}`. The rest of the API takes
 * only the installation tokens it issued, until they expire, within their repositories (404
 * outside), and writes contents only with `contents: write` (403 otherwise).
 */
import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jwtVerify } from 'jose';
import { close, cors, listen, readBody } from './servers.ts';

export type GithubServer = {
  readonly apiBase: string;
  readonly apiHost: string;
  /** the installation a test uses; `otherInstallationId` is a second one of the same app, same rights */
  readonly installationId: string;
  readonly otherInstallationId: string;
  readonly tokenRequests: { total: number; refused: number; byInstallation: Record<string, number> };
  readonly issued: Map<string, { exp: number; repositories: string[]; permissions: Record<string, string> }>;
  readonly apiRequests: { at: number; ok: boolean; via: string; status: number }[];
  readonly close: () => Promise<void>;
};

export async function startGithubServer(opts: {
  publicKey: KeyObject;
  appId: number;
  ttlSeconds: number;
  repositories: string[];
  permissions: Record<string, string>;
}): Promise<GithubServer> {
  const installationId = '77';
  const otherInstallationId = '78';
  const tokenRequests = { total: 0, refused: 0, byInstallation: {} as Record<string, number> };
  const issued = new Map<string, { exp: number; repositories: string[]; permissions: Record<string, string> }>();
  const apiRequests: { at: number; ok: boolean; via: string; status: number }[] = [];
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  };
  const server = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const install = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(url.pathname);
    if (install && req.method === 'POST') {
      tokenRequests.total++;
      tokenRequests.byInstallation[install[1] ?? ''] = (tokenRequests.byInstallation[install[1] ?? ''] ?? 0) + 1;
      const refuse = (status: number, message: string) => {
        tokenRequests.refused++;
        json(res, status, { message, documentation_url: 'https://docs.github.com/rest' });
      };
      const jwt = /^Bearer (\S+)$/.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(jwt, opts.publicKey, { algorithms: ['RS256'] }));
      } catch {
        return refuse(401, 'A JSON web token could not be decoded');
      }
      const now = Math.floor(Date.now() / 1000);
      if (payload.iss !== opts.appId) return refuse(401, "'Issuer' claim ('iss') must be an Integer");
      if (Number(payload.exp) - Number(payload.iat) > 660 || Number(payload.iat) > now + 60)
        return refuse(401, "'Expiration time' claim ('exp') is too far in the future");
      if (install[1] !== installationId && install[1] !== otherInstallationId) return refuse(404, 'Not Found');
      const body = JSON.parse((await readBody(req)).toString('utf8') || '{}') as {
        repositories?: string[];
        permissions?: Record<string, string>;
      };
      const repositories = body.repositories ?? opts.repositories;
      const permissions = body.permissions ?? opts.permissions;
      const order = ['read', 'write', 'admin'];
      if (!repositories.every((r) => opts.repositories.includes(r)))
        return refuse(422, 'There is at least one repository that does not exist or is not accessible to the parent installation.');
      if (
        !Object.entries(permissions).every(
          ([k, v]) => order.indexOf(v) <= order.indexOf(opts.permissions[k] ?? '') && k in opts.permissions,
        )
      )
        return refuse(422, 'The permissions requested are not granted to this installation.');
      const token = `ghs_FAKE${randomBytes(15).toString('hex')}`;
      const exp = Date.now() + opts.ttlSeconds * 1000;
      issued.set(token, { exp, repositories, permissions });
      return json(res, 201, {
        token,
        expires_at: new Date(exp).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        permissions,
        repository_selection: body.repositories ? 'selected' : 'all',
        repositories: repositories.map((name, i) => ({ id: i + 1, name, full_name: `fake-org/${name}` })),
      });
    }
    const { headers, answered } = cors(req, res, 'GET, POST, PUT, OPTIONS');
    if (answered) return;
    req.resume();
    const token = /^(?:Bearer|token) (\S+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    const entry = token ? issued.get(token) : undefined;
    const repo = /^\/repos\/[^/]+\/([^/]+)/.exec(url.pathname)?.[1];
    // writing contents takes contents: write (or admin), as GitHub's permission model says
    const writes = req.method !== 'GET' && req.method !== 'HEAD' && /\/contents(\/|$)/.test(url.pathname);
    const mayWrite = entry?.permissions.contents === 'write' || entry?.permissions.contents === 'admin';
    const status =
      !entry || entry.exp <= Date.now() ? 401 : repo && !entry.repositories.includes(repo) ? 404 : writes && !mayWrite ? 403 : 200;
    apiRequests.push({ at: Date.now(), ok: status === 200, via: url.searchParams.get('via') ?? '', status });
    json(
      res,
      status,
      status === 200
        ? { full_name: repo ? `fake-org/${repo}` : undefined }
        : { message: status === 401 ? 'Bad credentials' : status === 403 ? 'Resource not accessible by integration' : 'Not Found' },
      headers,
    );
  });
  const port = (server.address() as AddressInfo).port;
  return {
    apiBase: `http://127.0.0.1:${port}`,
    apiHost: `localhost:${port}`,
    installationId,
    otherInstallationId,
    tokenRequests,
    issued,
    apiRequests,
    close: () => close(server),
  };
}
