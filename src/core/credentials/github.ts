/**
 * GitHub Apps (issue 14): the app's JWT (RS256, signed in the worker with the app's private key)
 * that asks GitHub for an installation token. Claims as GitHub documents them and as
 * universal-github-app-jwt (Octokit's signer) writes them, byte for byte: `iat` 30 s in the past
 * for clock drift, `exp` ten minutes after it (GitHub's maximum), `iss` the app id (a number) or
 * the client id (a string, `Iv…`). And the installation token it asks for: the request
 * (optionally narrowed to repositories and permissions) and GitHub's answer.
 */
import { CredentialError } from './errors.ts';
import { signJwt } from './jwt.ts';
import { checkTokenEndpoint, headerSafe, type TokenRequest, type TokenSet } from './oauth2.ts';
import type { SigningKey } from './pem.ts';

export const APP_JWT_BACKDATE_S = 30;
export const APP_JWT_LIFETIME_S = 600;

/** An app id is sent as a number, a client id as the string it is. */
export function appIssuer(id: string): string | number {
  return /^[1-9]\d{0,15}$/.test(id) ? Number(id) : id;
}

export function appJwtClaims(id: string, now: number): { iat: number; exp: number; iss: string | number } {
  const iat = Math.floor(now / 1000) - APP_JWT_BACKDATE_S;
  return { iat, exp: iat + APP_JWT_LIFETIME_S, iss: appIssuer(id) };
}

/** The app JWT: `{ alg: "RS256", typ: "JWT" }` over the claims above. */
export function appJwt(key: SigningKey, id: string, now: number): Promise<string> {
  return signJwt(appJwtClaims(id, now), key);
}

export const GITHUB_API = 'https://api.github.com';
/** GitHub documents installation tokens as valid for an hour; an answer saying more than two is refused. */
export const MAX_INSTALLATION_TOKEN_S = 2 * 3600;
export const GITHUB_PERMISSION_LEVELS = ['read', 'write', 'admin'] as const;
export type GithubPermissionLevel = (typeof GITHUB_PERMISSION_LEVELS)[number];

/** A grant's narrowing of an installation token: some of the installation's repositories and permissions. */
export type InstallationNarrowing = {
  readonly repositories?: readonly string[];
  readonly permissions?: Readonly<Record<string, GithubPermissionLevel>>;
};

/**
 * The installation-token endpoint: `{api}/app/installations/{id}/access_tokens` (GitHub Enterprise
 * Server: `https://HOST/api/v3`). Checked as any token endpoint: https, or http on loopback.
 */
export function installationTokenUrl(apiBase: string, installationId: string): string {
  if (!/^[1-9]\d{0,15}$/.test(installationId)) throw new CredentialError('bad-endpoint');
  const base = checkTokenEndpoint(apiBase.replace(/\/+$/, '')).href.replace(/\/+$/, '');
  return checkTokenEndpoint(`${base}/app/installations/${installationId}/access_tokens`).href;
}

/** The request for an installation token, signed by the app JWT, narrowed if the grant says so. */
export function installationTokenRequest(url: string, jwt: string, narrowing: InstallationNarrowing = {}): TokenRequest {
  const body: Record<string, unknown> = {};
  if (narrowing.repositories?.length) body.repositories = [...narrowing.repositories];
  if (narrowing.permissions && Object.keys(narrowing.permissions).length > 0) body.permissions = { ...narrowing.permissions };
  return {
    url: checkTokenEndpoint(url).href,
    headers: {
      authorization: `Bearer ${jwt}`,
      accept: 'application/vnd.github+json',
      'x-github-api-version': '2022-11-28',
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  };
}

/** An installation token as GitHub answers it (201), with what it may do. */
export type InstallationToken = TokenSet & {
  readonly permissions?: Readonly<Record<string, string>>;
  readonly repositories?: readonly string[];
};

/**
 * What GitHub's answer means. 401 (the app JWT refused: wrong key or app id) and 404 (no such
 * installation) need the person: `invalid-grant`. 422 (a narrowing the installation does not
 * have) is `oauth-error`. A token that cannot go in a header, or an expiry that is past, missing
 * or over two hours away, is refused.
 */
export function parseInstallationToken(status: number, body: string, now: number): InstallationToken {
  if (status === 401 || status === 404) throw new CredentialError('invalid-grant', { status });
  if (status === 422 || status === 403) throw new CredentialError('oauth-error', { status });
  if (status !== 201 && status !== 200) throw new CredentialError('http-status', { status });
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new CredentialError('not-json', { status });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CredentialError('not-json', { status });
  const j = json as Record<string, unknown>;
  if (j.token === undefined) throw new CredentialError('no-access-token');
  if (!headerSafe(j.token)) throw new CredentialError('bad-token');
  const notAfter = typeof j.expires_at === 'string' && /^\d{4}-\d\d-\d\dT/.test(j.expires_at) ? Date.parse(j.expires_at) : Number.NaN;
  if (!Number.isFinite(notAfter) || notAfter <= now || notAfter > now + MAX_INSTALLATION_TOKEN_S * 1000)
    throw new CredentialError('bad-expires-in');
  const permissions =
    typeof j.permissions === 'object' && j.permissions !== null && !Array.isArray(j.permissions)
      ? Object.fromEntries(Object.entries(j.permissions).filter((e): e is [string, string] => typeof e[1] === 'string'))
      : undefined;
  const repositories = Array.isArray(j.repositories)
    ? j.repositories.flatMap((r) => (typeof (r as { name?: unknown })?.name === 'string' ? [(r as { name: string }).name] : []))
    : undefined;
  return {
    accessToken: j.token,
    tokenType: 'Bearer',
    expiresIn: Math.floor((notAfter - now) / 1000),
    notAfter,
    ...(permissions ? { permissions } : {}),
    ...(repositories ? { repositories } : {}),
  };
}
