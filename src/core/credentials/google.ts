/**
 * Google service accounts (issue 14): the key file a person imports, and the JWT-bearer assertion
 * (RFC 7523 §2.1) the worker signs to mint an access token. Header and claims are those Google's
 * own client (google-auth-library) sends: `{ alg: "RS256" }`; `iss` the service account,
 * `scope`, `aud` the token endpoint, `exp` an hour after `iat`, and `sub` when acting for a user
 * (domain-wide delegation).
 */
import { CredentialError } from './errors.ts';
import { signJws } from './jwt.ts';
import { checkTokenEndpoint } from './oauth2.ts';
import type { SigningKey } from './pem.ts';

export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
/** Google accepts assertions of at most an hour. */
export const GOOGLE_ASSERTION_LIFETIME_S = 3600;

/** What Keyhole keeps of a key file: the private key goes into the sealed material, the rest is configuration. */
export type ServiceAccountKey = {
  readonly clientEmail: string;
  readonly privateKeyPem: string;
  readonly privateKeyId?: string;
  readonly projectId?: string;
  readonly tokenUri: string;
};

/** An email as a service account's client_email or a delegation subject is written. */
export const EMAIL = /^[^\s@]{1,128}@[A-Za-z0-9.-]{1,128}$/;

/**
 * Checks a key file as Google's console hands it out (JSON, `type: "service_account"`), without
 * importing the key yet. Anything else is `bad-key-file`, saying nothing of what the file held.
 */
export function parseServiceAccountKey(text: unknown): ServiceAccountKey {
  if (typeof text !== 'string' || text.length > 64 * 1024) throw new CredentialError('bad-key-file');
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch {
    throw new CredentialError('bad-key-file');
  }
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new CredentialError('bad-key-file');
  const f = x as Record<string, unknown>;
  if (f.type !== 'service_account') throw new CredentialError('bad-key-file');
  if (typeof f.client_email !== 'string' || !EMAIL.test(f.client_email)) throw new CredentialError('bad-key-file');
  if (typeof f.private_key !== 'string' || !f.private_key.includes('PRIVATE KEY-----')) throw new CredentialError('bad-key-file');
  const tokenUri = f.token_uri === undefined ? GOOGLE_TOKEN_URL : f.token_uri;
  try {
    checkTokenEndpoint(tokenUri);
  } catch {
    throw new CredentialError('bad-key-file');
  }
  return {
    clientEmail: f.client_email,
    privateKeyPem: f.private_key,
    tokenUri: tokenUri as string,
    ...(typeof f.private_key_id === 'string' && /^[0-9a-f]{1,64}$/i.test(f.private_key_id) ? { privateKeyId: f.private_key_id } : {}),
    ...(typeof f.project_id === 'string' && f.project_id.length <= 128 ? { projectId: f.project_id } : {}),
  };
}

/** The assertion's claims, in the order google-auth-library writes them. */
export function googleAssertionClaims(a: {
  clientEmail: string;
  scopes: readonly string[];
  tokenUri: string;
  now: number;
  subject?: string;
}): Record<string, unknown> {
  const iat = Math.floor(a.now / 1000);
  return {
    iss: a.clientEmail,
    scope: a.scopes.join(' '),
    aud: a.tokenUri,
    exp: iat + GOOGLE_ASSERTION_LIFETIME_S,
    iat,
    ...(a.subject ? { sub: a.subject } : {}),
  };
}

/** The signed assertion for the token request (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`). */
export function googleAssertion(key: SigningKey, claims: Record<string, unknown>): Promise<string> {
  return signJws({ alg: 'RS256' }, claims, key);
}
