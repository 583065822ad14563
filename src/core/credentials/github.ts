/**
 * GitHub Apps (issue 14): the app's JWT (RS256, signed in the worker with the app's private key)
 * that asks GitHub for an installation token. Claims as GitHub documents them and as
 * universal-github-app-jwt (Octokit's signer) writes them, byte for byte: `iat` 30 s in the past
 * for clock drift, `exp` ten minutes after it (GitHub's maximum), `iss` the app id (a number) or
 * the client id (a string, `Iv…`).
 */
import { signJwt } from './jwt.ts';
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
