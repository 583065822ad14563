/**
 * OAuth 2.0 token requests and answers, pure: what to send to a token endpoint (RFC 6749 §4.4
 * client credentials, §6 refresh), with the client authenticated as §2.3.1 (Basic or in the
 * body) or by a signed assertion (RFC 7523 §2.2), and what to make of the answer (§5.1, §5.2).
 * Sending is the worker's (background/credentials), with no redirects, a size bound and a timeout.
 * An answer that is not exactly a usable bearer token is a typed CredentialError, never a guess.
 */
import { isLoopbackHost } from '../agents/policy.ts';
import { toBase64, utf8 } from '../bytes.ts';
import { CredentialError } from './errors.ts';
import { clientAssertionClaims, signJwt } from './jwt.ts';
import type { SigningKey } from './pem.ts';

export type ClientAuth =
  | { readonly method: 'client_secret_basic'; readonly secret: string }
  | { readonly method: 'client_secret_post'; readonly secret: string }
  | { readonly method: 'private_key_jwt'; readonly key: SigningKey }
  | { readonly method: 'none' };

export type TokenEndpoint = {
  readonly url: string;
  readonly clientId: string;
  readonly auth: ClientAuth;
  /** the authorization server's issuer identifier: the client assertion's audience (else the token URL) */
  readonly issuer?: string;
};

export type TokenGrant =
  | { readonly type: 'client_credentials'; readonly scope?: string; readonly resource?: string; readonly audience?: string }
  | { readonly type: 'refresh_token'; readonly refreshToken: string; readonly scope?: string }
  /** RFC 7523 §2.1: a signed assertion is the grant (Google service accounts); no client authentication */
  | { readonly type: 'jwt-bearer'; readonly assertion: string };

export const JWT_BEARER_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** What a token endpoint may answer at most; a token answer is a few kilobytes. */
export const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
export const TOKEN_TIMEOUT_MS = 10_000;
/** An access token for longer than a week is not short-lived: refused rather than trusted. */
export const MAX_EXPIRES_IN_S = 7 * 24 * 3600;
/** An answer without expires_in (RFC 6749 makes it RECOMMENDED only): treated as this short. */
export const DEFAULT_EXPIRES_IN_S = 300;
const MAX_TOKEN_LENGTH = 16 * 1024;

/** The token endpoint's URL, checked: https, or http on a loopback host; no userinfo, no fragment. */
export function checkTokenEndpoint(raw: unknown): URL {
  if (typeof raw !== 'string' || raw.length > 2048) throw new CredentialError('bad-endpoint');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CredentialError('bad-endpoint');
  }
  const ok = url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
  if (!ok || url.username || url.password || url.hash) throw new CredentialError('bad-endpoint');
  return url;
}

/** RFC 6749 §2.3.1: the id and secret are form-urlencoded before they are joined for Basic. */
const formEncode = (s: string) => new URLSearchParams({ x: s }).toString().slice(2);

export type TokenRequest = { readonly url: string; readonly headers: Record<string, string>; readonly body: string };

/** The request to make. `jti` is a fresh random id (used once, for an assertion). */
export async function tokenRequest(ep: TokenEndpoint, grant: TokenGrant, now: number, jti: string): Promise<TokenRequest> {
  const url = checkTokenEndpoint(ep.url).href;
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (grant.type === 'jwt-bearer') {
    // as Google's own client sends it: the assertion says who the client is
    return { url, headers, body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT_TYPE, assertion: grant.assertion }).toString() };
  }
  const form = new URLSearchParams({ grant_type: grant.type });
  if (grant.type === 'refresh_token') form.set('refresh_token', grant.refreshToken);
  if (grant.scope) form.set('scope', grant.scope);
  if (grant.type === 'client_credentials') {
    if (grant.resource) form.set('resource', grant.resource);
    if (grant.audience) form.set('audience', grant.audience);
  }
  switch (ep.auth.method) {
    case 'client_secret_basic':
      headers.authorization = `Basic ${toBase64(utf8(`${formEncode(ep.clientId)}:${formEncode(ep.auth.secret)}`))}`;
      break;
    case 'client_secret_post':
      form.set('client_id', ep.clientId);
      form.set('client_secret', ep.auth.secret);
      break;
    case 'private_key_jwt': {
      const claims = clientAssertionClaims({ clientId: ep.clientId, audience: ep.issuer ?? url, now, jti });
      form.set('client_id', ep.clientId);
      form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      form.set('client_assertion', await signJwt(claims, ep.auth.key));
      break;
    }
    case 'none':
      form.set('client_id', ep.clientId);
      break;
  }
  return { url, headers, body: form.toString() };
}

/** A minted token and when it stops being valid (ms since the epoch, from the answer's expires_in). */
export type TokenSet = {
  readonly accessToken: string;
  readonly tokenType: 'Bearer';
  readonly expiresIn: number;
  readonly notAfter: number;
  /** a new refresh token (rotation): the old one must never be sent again */
  readonly refreshToken?: string;
  readonly scope?: string;
};

/** A token that can be put in a header: printable ASCII, bounded. */
export function headerSafe(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_TOKEN_LENGTH && /^[\x21-\x7e]+$/.test(v);
}

/** The answer's `error` (RFC 6749 §5.2), if it is a plain code word. */
function oauthErrorOf(json: unknown): string | undefined {
  const e = (json as { error?: unknown } | null)?.error;
  return typeof e === 'string' && /^[a-z_]{1,40}$/.test(e) ? e : undefined;
}

/**
 * What the token endpoint's answer (its status and body text, already bounded) means: a TokenSet,
 * or a CredentialError saying why not. `now` dates `notAfter`.
 */
export function parseTokenResponse(status: number, body: string, now: number): TokenSet {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  if (status !== 200) {
    const oauthError = oauthErrorOf(json);
    if (oauthError === 'invalid_grant') throw new CredentialError('invalid-grant', { status, oauthError });
    if (oauthError) throw new CredentialError('oauth-error', { status, oauthError });
    throw new CredentialError('http-status', { status });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CredentialError('not-json', { status });
  const j = json as Record<string, unknown>;
  if (j.access_token === undefined) throw new CredentialError('no-access-token');
  if (!headerSafe(j.access_token)) throw new CredentialError('bad-token');
  if (typeof j.token_type !== 'string' || j.token_type.toLowerCase() !== 'bearer') throw new CredentialError('bad-token-type'); // §5.1: case-insensitive
  let expiresIn = DEFAULT_EXPIRES_IN_S;
  if (j.expires_in !== undefined) {
    if (typeof j.expires_in !== 'number' || !Number.isFinite(j.expires_in) || j.expires_in < 1 || j.expires_in > MAX_EXPIRES_IN_S)
      throw new CredentialError('bad-expires-in');
    expiresIn = Math.floor(j.expires_in);
  }
  if (j.refresh_token !== undefined && !headerSafe(j.refresh_token)) throw new CredentialError('bad-token');
  return {
    accessToken: j.access_token,
    tokenType: 'Bearer',
    expiresIn,
    notAfter: now + expiresIn * 1000,
    ...(typeof j.refresh_token === 'string' ? { refreshToken: j.refresh_token } : {}),
    ...(typeof j.scope === 'string' && j.scope.length <= 1024 ? { scope: j.scope } : {}),
  };
}
