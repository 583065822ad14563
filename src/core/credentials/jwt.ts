/**
 * Compact JWS (RFC 7515) signed in WebCrypto with a non-extractable key: RS256 (RSASSA-PKCS1-v1_5
 * with SHA-256) or ES256 (ECDSA P-256 with SHA-256, whose raw r||s output is exactly JOSE's form,
 * RFC 7518 §3.4). And the client assertion of RFC 7523 §2.2 for `private_key_jwt`.
 */
import { toBase64, utf8 } from '../bytes.ts';
import type { SigningKey } from './pem.ts';

export const b64url = (bytes: Uint8Array) => toBase64(bytes).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');

/** Signs `claims` with `key`; the header is `{ alg, typ: 'JWT' }` plus `extraHeader` (e.g. kid), in that order. */
export function signJwt(claims: Record<string, unknown>, key: SigningKey, extraHeader: Record<string, unknown> = {}): Promise<string> {
  return signJws({ alg: key.alg, typ: 'JWT', ...extraHeader }, claims, key);
}

/** Signs `claims` under exactly `header` (its `alg` must be the key's), for issuers whose clients send a header of their own shape. */
export async function signJws(header: Record<string, unknown>, claims: Record<string, unknown>, key: SigningKey): Promise<string> {
  if (header.alg !== key.alg) throw new TypeError('the header names another algorithm than the key');
  const input = `${b64url(utf8(JSON.stringify(header)))}.${b64url(utf8(JSON.stringify(claims)))}`;
  const algorithm = key.alg === 'RS256' ? { name: 'RSASSA-PKCS1-v1_5' } : { name: 'ECDSA', hash: 'SHA-256' };
  const sig = new Uint8Array(await crypto.subtle.sign(algorithm, key.key, utf8(input)));
  return `${input}.${b64url(sig)}`;
}

/** How long a client assertion is good for: RFC 7523 asks for a short life. */
export const ASSERTION_LIFETIME_S = 60;

/**
 * The claims of a client assertion (RFC 7523 §3): `iss` and `sub` are the client id, `aud` the
 * authorization server (its issuer identifier, as rfc7523bis asks, else the token endpoint),
 * a short `exp`, and a `jti` used once.
 */
export function clientAssertionClaims(a: { clientId: string; audience: string; now: number; jti: string }): Record<string, unknown> {
  const iat = Math.floor(a.now / 1000);
  return { iss: a.clientId, sub: a.clientId, aud: a.audience, jti: a.jti, iat, exp: iat + ASSERTION_LIFETIME_S };
}
