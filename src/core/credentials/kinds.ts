/**
 * What kind of credential a secret is, and what each kind keeps where.
 *
 * - `static`: the value goes on the request as it is (every secret before this issue).
 * - `oauth2-client-credentials` and `oauth2-refresh-token`: the value is the material the worker
 *   mints access tokens with (a client secret, a private key PEM, a refresh token), as one JSON
 *   object sealed like any value; only the minted access token goes on a request.
 * - `google-service-account`: a service account's private key (the material) signs a JWT-bearer
 *   assertion (RFC 7523 §2.1) for its token endpoint; `clientId` is the account's email, `scope`
 *   the scopes, `subject` the user it acts for (domain-wide delegation), if any.
 * - `github-app`: a GitHub App's private key (the material) signs the app JWT that asks for an
 *   installation token; `tokenEndpoint` is the installation's access_tokens URL, `clientId` the
 *   app id (or the app's client id).
 * - `aws`: an access key (the material) signs each request with SigV4 in the worker, brokered
 *   only; with an AssumeRole configuration it mints session credentials at STS first, and those
 *   sign. Its configuration is `aws` (region, service, the role), not `oauth2`.
 * - `distant`: a role of an engine of the synced vault's distant vault (issue 15); the device
 *   logs in with its own key and asks for a credential there. No material: its configuration
 *   `distant` (engine, role, TTL) is all.
 *
 * The configuration (token endpoint, client id, how the client authenticates, scope) is not
 * secret: it lives in the secret's metadata, so the options page and the consent window can show
 * it without opening a value. Pure: parsing and checking only.
 */
import { CoreError } from '../errors.ts';
import { type AwsConfig, checkAwsConfig, checkAwsKeys } from './aws.ts';
import { CredentialError } from './errors.ts';
import { EMAIL } from './google.ts';
import { checkTokenEndpoint } from './oauth2.ts';

export const SECRET_KINDS = [
  'static',
  'oauth2-client-credentials',
  'oauth2-refresh-token',
  'google-service-account',
  'github-app',
  'aws',
  'distant',
] as const;
export type SecretKind = (typeof SECRET_KINDS)[number];
/** A kind whose value is material the worker mints or signs with: it never goes on a request as it is. */
export type MintedKind = Exclude<SecretKind, 'static'>;
/** The kinds configured by `oauth2` settings: they mint a bearer token at a token endpoint. */
export type OAuth2Kind = Exclude<MintedKind, 'aws' | 'distant'>;

/** A role of an engine of the distant vault, and the TTL to ask for (the policy caps it). */
export type DistantConfig = { readonly engine: string; readonly role: string; readonly ttlSeconds?: number };

const ENGINE_NAME = /^[a-z][a-z0-9-]{0,31}$/;

export function checkDistantConfig(v: unknown): DistantConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('distant settings (engine, role) are required for this kind');
  const c = v as Record<string, unknown>;
  if (typeof c.engine !== 'string' || !ENGINE_NAME.test(c.engine)) throw bad('the engine is the name an admin gave it (a-z, 0-9, -)');
  if (typeof c.role !== 'string' || !ENGINE_NAME.test(c.role)) throw bad('the role is a name of the engine’s policy (a-z, 0-9, -)');
  const ttl = c.ttlSeconds;
  if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 5 || ttl > 30 * 86_400))
    throw bad('the TTL is 5 seconds to 30 days');
  return { engine: c.engine, role: c.role, ...(typeof ttl === 'number' ? { ttlSeconds: ttl } : {}) };
}

export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type ClientAuthMethod = (typeof CLIENT_AUTH_METHODS)[number];

/** The non-secret half of an OAuth 2.0 credential, kept in its metadata. */
export type OAuth2Config = {
  readonly tokenEndpoint: string;
  readonly clientId: string;
  readonly clientAuth: ClientAuthMethod;
  readonly scope?: string;
  readonly resource?: string;
  readonly audience?: string;
  /** the authorization server's issuer identifier: the client assertion's audience (default: the token endpoint) */
  readonly issuer?: string;
  /**
   * oauth2-refresh-token only: the device that may spend the refresh token (its local vault id).
   * A rotated refresh token spent twice revokes its whole family, so synced devices never both do.
   */
  readonly refresher?: string;
  /** google-service-account only: the user the account acts for (domain-wide delegation) */
  readonly subject?: string;
};

/** The secret half, sealed as the secret's value. Never leaves the worker. */
export type OAuth2Material = {
  readonly clientSecret?: string;
  readonly privateKeyPem?: string;
  readonly refreshToken?: string;
  /** aws: the access key (long-lived, or temporary with its session token) */
  readonly accessKeyId?: string;
  readonly secretAccessKey?: string;
  readonly sessionToken?: string;
};

export const isMinted = (kind: SecretKind | undefined): kind is MintedKind => kind !== undefined && kind !== 'static';

/**
 * Whether a secret's requests carry a token minted for it (cached, refreshed, minted again when
 * refused), rather than a value of its own: every minted kind but an AWS access key without a
 * role, which signs with itself.
 */
export const usesMintedToken = (s: { readonly kind?: SecretKind; readonly aws?: AwsConfig }): boolean =>
  isMinted(s.kind) && !(s.kind === 'aws' && !s.aws?.assumeRole);

/** A secret's non-secret configuration, by kind: `oauth2` for the OAuth 2.0 kinds, `aws` for AWS. */
/**
 * Whether a secret's minted tokens are shared through the team tier (issue 16): every minted kind
 * but a distant credential (issued to one device's own login). A rotating refresh token is spent
 * only under the team's refresh lock (background/credentials/team-tier.ts).
 */
export const sharedByTeam = (s: { readonly kind?: SecretKind; readonly aws?: AwsConfig }): boolean =>
  usesMintedToken(s) && s.kind !== 'distant';

export type CredentialConfig = { readonly oauth2?: OAuth2Config; readonly aws?: AwsConfig; readonly distant?: DistantConfig };

/** The configuration `kind` needs from `raw` (a static secret: none), checked. */
export function checkCredentialConfig(kind: SecretKind, raw: { oauth2?: unknown; aws?: unknown; distant?: unknown }): CredentialConfig {
  if (kind === 'static') return {};
  if (kind === 'aws') return { aws: checkAwsConfig(raw.aws) };
  if (kind === 'distant') return { distant: checkDistantConfig(raw.distant) };
  return { oauth2: checkOAuth2Config(kind, raw.oauth2) };
}

/** The material for a configuration, checked: exactly what the kind and its configuration need. */
export function checkMaterial(kind: MintedKind, config: CredentialConfig, raw: unknown): OAuth2Material {
  if (kind === 'distant') return {}; // the device's own login is its credential at the distant vault
  if (kind === 'aws') {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('the access key id and secret access key are required');
    try {
      return checkAwsKeys(raw as Record<string, unknown>);
    } catch (e) {
      if (e instanceof CredentialError) throw bad(e.message);
      throw e;
    }
  }
  if (!config.oauth2) throw bad('oauth2 settings are required for this kind');
  return checkOAuth2Material(kind, config.oauth2, raw);
}

const bad = (message: string) => new CoreError('bad-input', message);

function optionalText(v: unknown, field: string, max: number): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || v.length > max || /[^\x20-\x7e]/.test(v)) throw bad(`${field} must be at most ${max} printable characters`);
  return v;
}

export function checkKind(v: unknown): SecretKind {
  if (v === undefined) return 'static';
  if (typeof v !== 'string' || !(SECRET_KINDS as readonly string[]).includes(v))
    throw bad(`kind must be one of ${SECRET_KINDS.join(', ')}`);
  return v as SecretKind;
}

/** The configuration of a minted kind, checked (the endpoint: https, or http on loopback). */
export function checkOAuth2Config(kind: OAuth2Kind, v: unknown): OAuth2Config {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('oauth2 settings are required for this kind');
  const c = v as Record<string, unknown>;
  let tokenEndpoint: string;
  try {
    tokenEndpoint = checkTokenEndpoint(c.tokenEndpoint).href;
  } catch {
    throw bad('the token endpoint must be an https URL (http only on a loopback host), without credentials or fragment');
  }
  const clientId = optionalText(c.clientId, 'client id', 256);
  if (!clientId) throw bad('client id is required');
  if (kind === 'google-service-account') return checkGoogleConfig(tokenEndpoint, clientId, c);
  if (kind === 'github-app') {
    if (!/\/app\/installations\/[1-9]\d{0,15}\/access_tokens$/.test(new URL(tokenEndpoint).pathname))
      throw bad('the token endpoint of a GitHub App is its installation’s /app/installations/{id}/access_tokens URL');
    if (!/^([1-9]\d{0,15}|Iv[0-9A-Za-z.]{1,64})$/.test(clientId)) throw bad('the app id is a number, or the app’s client id (Iv…)');
    return { tokenEndpoint, clientId, clientAuth: 'none' };
  }
  const clientAuth = c.clientAuth ?? (kind === 'oauth2-refresh-token' ? 'none' : undefined);
  if (typeof clientAuth !== 'string' || !(CLIENT_AUTH_METHODS as readonly string[]).includes(clientAuth))
    throw bad(`client authentication must be one of ${CLIENT_AUTH_METHODS.join(', ')}`);
  if (kind === 'oauth2-client-credentials' && clientAuth === 'none') throw bad('client credentials need a client secret or a private key');
  if (kind === 'oauth2-refresh-token' && clientAuth === 'private_key_jwt')
    throw bad('a refresh-token credential authenticates by secret or not at all');
  const out: Record<string, string> = { tokenEndpoint, clientId, clientAuth };
  for (const [field, max] of [
    ['scope', 1024],
    ['resource', 2048],
    ['audience', 2048],
    ['issuer', 2048],
    ['refresher', 64],
  ] as const) {
    const x = optionalText(c[field], field, max);
    if (x !== undefined) out[field] = x;
  }
  if (kind === 'oauth2-refresh-token') {
    delete out.resource;
    delete out.audience;
  } else delete out.refresher;
  return out as OAuth2Config;
}

/** A service account: its email as the client id, scopes (space separated), an optional subject; no client authentication. */
function checkGoogleConfig(tokenEndpoint: string, clientId: string, c: Record<string, unknown>): OAuth2Config {
  if (!EMAIL.test(clientId)) throw bad('the client id of a service account is its email (client_email)');
  const scope = optionalText(c.scope, 'scope', 1024);
  if (!scope) throw bad('a service account needs at least one scope');
  const subject = optionalText(c.subject, 'subject', 256);
  if (subject !== undefined && !EMAIL.test(subject)) throw bad('the subject is the email of the user the account acts for');
  return { tokenEndpoint, clientId, clientAuth: 'none', scope, ...(subject ? { subject } : {}) };
}

/** A pasted PEM, bounded, with its line breaks made plain (`missing`: the error if it is not one). */
function checkPem(pem: unknown, missing: string): string {
  if (typeof pem !== 'string' || pem.length === 0 || pem.length > 12_000 || !pem.includes('-----BEGIN ')) throw bad(missing);
  return pem.replace(/\r\n?/g, '\n').trim();
}

/** The material for a configuration, checked: exactly what its client authentication and kind need. */
export function checkOAuth2Material(kind: OAuth2Kind, config: OAuth2Config, v: unknown): OAuth2Material {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('the credential material is required');
  const m = v as Record<string, unknown>;
  const out: { clientSecret?: string; privateKeyPem?: string; refreshToken?: string } = {};
  if (kind === 'github-app') return { privateKeyPem: checkPem(m.privateKeyPem, 'the app’s private key (PEM) is required') };
  if (kind === 'google-service-account')
    return { privateKeyPem: checkPem(m.privateKeyPem, 'the service account private key (private_key, in PEM) is required') };
  if (config.clientAuth === 'client_secret_basic' || config.clientAuth === 'client_secret_post') {
    const s = optionalText(m.clientSecret, 'client secret', 4096);
    if (!s) throw bad('a client secret is required for this client authentication');
    out.clientSecret = s;
  }
  if (config.clientAuth === 'private_key_jwt')
    out.privateKeyPem = checkPem(m.privateKeyPem, 'a private key in PEM is required for private_key_jwt');
  if (kind === 'oauth2-refresh-token') {
    const rt = optionalText(m.refreshToken, 'refresh token', 8192);
    if (!rt || /\s/.test(rt)) throw bad('a refresh token is required');
    out.refreshToken = rt;
  }
  return out;
}

/** The material as stored: one JSON object (printable ASCII: the PEM's line breaks are escaped). */
export const encodeMaterial = (m: OAuth2Material): string => JSON.stringify(m);

export function decodeMaterial(value: string): OAuth2Material {
  try {
    const m = JSON.parse(value) as unknown;
    if (typeof m === 'object' && m !== null && !Array.isArray(m)) return m as OAuth2Material;
  } catch {
    // falls through
  }
  throw new CoreError('bad-record', 'credential material does not parse');
}

/** The strings inside the material a response must never echo (redacted like a static value). */
export const materialValues = (m: OAuth2Material): string[] =>
  [m.clientSecret, m.refreshToken, m.secretAccessKey, m.sessionToken].filter((x): x is string => typeof x === 'string' && x.length >= 8);
