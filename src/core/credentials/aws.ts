/**
 * AWS credentials (issue 14), pure: the long-lived access keys a person enters (checked by shape),
 * and STS AssumeRole, which mints short-lived session credentials with them: the request, signed
 * with SigV4, and STS's XML answer, read without a DOM (a service worker has no DOMParser) by
 * looking for exactly one of each element it needs. An answer that is not exactly usable
 * credentials is a typed CredentialError, never a guess; none holds a key.
 */
import { CoreError } from '../errors.ts';
import { CredentialError } from './errors.ts';
import { checkTokenEndpoint } from './oauth2.ts';
import { type AwsCredentials, signV4 } from './sigv4.ts';

/** AKIA… (long-lived) or ASIA… (temporary) and 16 to 128 characters in all, as IAM documents. */
const ACCESS_KEY_ID = /^(AKIA|ASIA)[A-Z0-9]{12,124}$/;
const SECRET_ACCESS_KEY = /^[A-Za-z0-9/+]{40}$/;
const SESSION_TOKEN = /^[A-Za-z0-9/+=]{16,4096}$/;
/** AssumeRole allows 15 minutes to 12 hours. */
export const MIN_SESSION_S = 900;
export const MAX_SESSION_S = 12 * 3600;
/** What an STS answer may be at most: a few kilobytes. */
export const MAX_STS_RESPONSE_BYTES = 64 * 1024;
export const STS_VERSION = '2011-06-15';

/** The long-lived keys, checked by shape: `bad-aws-key` otherwise, saying nothing of them. */
export function checkAwsKeys(x: { accessKeyId?: unknown; secretAccessKey?: unknown; sessionToken?: unknown }): AwsCredentials {
  const { accessKeyId, secretAccessKey, sessionToken } = x;
  if (typeof accessKeyId !== 'string' || !ACCESS_KEY_ID.test(accessKeyId)) throw new CredentialError('bad-aws-key');
  if (typeof secretAccessKey !== 'string' || !SECRET_ACCESS_KEY.test(secretAccessKey)) throw new CredentialError('bad-aws-key');
  if (sessionToken !== undefined && (typeof sessionToken !== 'string' || !SESSION_TOKEN.test(sessionToken)))
    throw new CredentialError('bad-aws-key');
  return { accessKeyId, secretAccessKey, ...(typeof sessionToken === 'string' ? { sessionToken } : {}) };
}

const bad = (message: string) => new CoreError('bad-input', message);

/** What a secret of kind `aws` keeps in its metadata (nothing secret): where and how it signs. */
export type AwsConfig = {
  /** the region and service requests are signed for (e.g. eu-west-1, s3) */
  readonly region: string;
  readonly service: string;
  /** mint session credentials with the access key first (absent: the access key signs itself) */
  readonly assumeRole?: AssumeRoleConfig;
};

export type AssumeRoleConfig = {
  /** the STS endpoint, https (http only on a loopback host); by default the region's own */
  readonly endpoint: string;
  readonly roleArn: string;
  readonly sessionName: string;
  readonly durationSeconds: number;
};

const REGION = /^[a-z]{2}(-[a-z0-9]+){1,4}$/;
const SERVICE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ROLE_ARN = /^arn:aws[a-z-]{0,16}:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
/** AWS packs a session policy into at most 2048 characters (of its own compression); this bounds the JSON. */
export const MAX_SESSION_POLICY = 2048;

/** An `aws` secret's configuration, checked; `bad-input` saying which field otherwise. */
export function checkAwsConfig(v: unknown): AwsConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('aws settings (region, service) are required for this kind');
  const c = v as Record<string, unknown>;
  if (typeof c.region !== 'string' || !REGION.test(c.region)) throw bad('the region is an AWS region name, e.g. eu-west-1');
  if (typeof c.service !== 'string' || !SERVICE.test(c.service)) throw bad('the service is an AWS signing name, e.g. s3 or execute-api');
  if (c.assumeRole === undefined || c.assumeRole === null) return { region: c.region, service: c.service };
  if (typeof c.assumeRole !== 'object' || Array.isArray(c.assumeRole)) throw bad('assumeRole must be an object');
  const r = c.assumeRole as Record<string, unknown>;
  let endpoint: string;
  try {
    endpoint = checkTokenEndpoint(r.endpoint ?? `https://sts.${c.region}.amazonaws.com/`).href;
  } catch {
    throw bad('the STS endpoint must be an https URL (http only on a loopback host)');
  }
  if (typeof r.roleArn !== 'string' || !ROLE_ARN.test(r.roleArn)) throw bad('the role ARN is arn:aws:iam::<account>:role/<name>');
  const sessionName = r.sessionName ?? 'keyhole';
  if (typeof sessionName !== 'string' || !SESSION_NAME.test(sessionName))
    throw bad('the session name is 2 to 64 characters of letters, digits and +=,.@_-');
  const durationSeconds = r.durationSeconds ?? 3600;
  if (
    typeof durationSeconds !== 'number' ||
    !Number.isInteger(durationSeconds) ||
    durationSeconds < MIN_SESSION_S ||
    durationSeconds > MAX_SESSION_S
  )
    throw bad(`the session duration is ${MIN_SESSION_S} to ${MAX_SESSION_S} seconds`);
  return { region: c.region, service: c.service, assumeRole: { endpoint, roleArn: r.roleArn, sessionName, durationSeconds } };
}

/**
 * A session policy a grant narrows an assumed role with: an IAM policy document (JSON text or an
 * object) with a Statement, re-serialised compactly, at most MAX_SESSION_POLICY characters.
 */
export function checkSessionPolicy(v: unknown): string {
  let doc: unknown = v;
  if (typeof v === 'string') {
    try {
      doc = JSON.parse(v);
    } catch {
      throw bad('the session policy is not JSON');
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || !('Statement' in doc))
    throw bad('the session policy is an IAM policy document with a Statement');
  const text = JSON.stringify(doc);
  if (text.length > MAX_SESSION_POLICY || /[^\x20-\x7e]/.test(text))
    throw bad(`the session policy is at most ${MAX_SESSION_POLICY} printable characters`);
  return text;
}

/**
 * How a request to an AWS service is signed. The page's own signature headers (a placeholder
 * key's, from an unmodified AWS SDK) are dropped. The payload: S3 takes `UNSIGNED-PAYLOAD` for a
 * body over UNSIGNED_ABOVE_BYTES (or when the SDK itself asked for it, or streams its body with
 * unsigned trailing checksums), else the body's SHA-256, which every other service requires.
 * A body chunk-signed with the placeholder key (aws-chunked with signatures) cannot be re-signed
 * without rewriting it: refused.
 */
export const UNSIGNED_ABOVE_BYTES = 64 * 1024;
const PLACEHOLDER_HEADERS = new Set(['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256']);
const UNSIGNED_MARKERS = new Set(['UNSIGNED-PAYLOAD', 'STREAMING-UNSIGNED-PAYLOAD-TRAILER']);

export function signingPlan(
  service: string,
  pageHeaders: Readonly<Record<string, string>>,
  bodyLength: number,
): { headers: Record<string, string>; unsignedPayload: boolean; contentSha256Header: boolean } {
  const headers: Record<string, string> = {};
  let claimed: string | undefined;
  for (const [k, v] of Object.entries(pageHeaders)) {
    const name = k.toLowerCase();
    if (name === 'x-amz-content-sha256') claimed = v.trim();
    if (!PLACEHOLDER_HEADERS.has(name)) headers[name] = v;
  }
  if (claimed?.startsWith('STREAMING-') && !UNSIGNED_MARKERS.has(claimed))
    throw bad('a body chunk-signed with the SDK’s own key cannot be re-signed: use unsigned trailing checksums');
  const s3 = service === 's3';
  if (!s3) return { headers, unsignedPayload: false, contentSha256Header: false };
  if (claimed && UNSIGNED_MARKERS.has(claimed)) {
    headers['x-amz-content-sha256'] = claimed; // what the signature says of the body
    return { headers, unsignedPayload: true, contentSha256Header: true };
  }
  return { headers, unsignedPayload: bodyLength > UNSIGNED_ABOVE_BYTES, contentSha256Header: true };
}

export type AssumeRole = {
  /** the regional STS endpoint, e.g. https://sts.eu-west-1.amazonaws.com/ */
  readonly endpoint: string;
  readonly region: string;
  readonly roleArn: string;
  readonly sessionName: string;
  readonly durationSeconds: number;
  /** a session policy that narrows the role (JSON), per grant */
  readonly policy?: string;
};

/** The signed AssumeRole request (form-encoded POST, SigV4 for `sts`). */
export async function assumeRoleRequest(
  role: AssumeRole,
  keys: AwsCredentials,
  now: number,
): Promise<{ url: string; headers: Record<string, string>; body: string }> {
  const form = new URLSearchParams({
    Action: 'AssumeRole',
    Version: STS_VERSION,
    RoleArn: role.roleArn,
    RoleSessionName: role.sessionName,
    DurationSeconds: String(role.durationSeconds),
  });
  if (role.policy) form.set('Policy', role.policy);
  const body = form.toString();
  const signed = await signV4(
    { method: 'POST', url: role.endpoint, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }, body },
    keys,
    { region: role.region, service: 'sts', now },
  );
  return { url: role.endpoint, headers: signed.headers, body };
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** The text of the one `<tag>` element in `xml`; null if there is none; `not-json` (not our shape) if more than one. */
function only(xml: string, tag: string): string | null {
  const re = new RegExp(`<${tag}>([^<]*)</${tag}>`, 'g');
  const found = [...xml.matchAll(re)];
  if (found.length === 0) return null;
  if (found.length > 1) throw new CredentialError('not-json');
  return (found[0]?.[1] ?? '').replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ENTITIES[e] ?? '');
}

export type SessionCredentials = AwsCredentials & { readonly sessionToken: string; readonly notAfter: number };

/**
 * STS's answer: the session credentials and their expiry, or why not. An error answer is
 * `aws-error` with its code word, or `clock-skew` (RequestExpired, or a signature refused with the
 * server's Date far from ours) carrying the server's time to sign again with.
 */
export function parseAssumeRoleResponse(status: number, body: string, now: number, serverDate?: string | null): SessionCredentials {
  if (status !== 200) {
    const code = only(body, 'Code');
    const word = code && /^[A-Za-z.]{1,64}$/.test(code) ? code : undefined;
    const server = serverDate ? Date.parse(serverDate) : Number.NaN;
    const skewed = Number.isFinite(server) && Math.abs(server - now) > 5 * 60_000;
    if (word === 'RequestExpired' || (skewed && (word === 'SignatureDoesNotMatch' || word === 'InvalidSignatureException')))
      throw new CredentialError('clock-skew', { status, ...(Number.isFinite(server) ? { serverTime: server } : {}) });
    if (word === 'ExpiredToken' || word === 'InvalidClientTokenId' || word === 'AccessDenied')
      throw new CredentialError('invalid-grant', { status, awsError: word });
    if (word) throw new CredentialError('aws-error', { status, awsError: word });
    throw new CredentialError('http-status', { status });
  }
  if (!/<AssumeRoleResponse[\s>]/.test(body)) throw new CredentialError('not-json', { status });
  const accessKeyId = only(body, 'AccessKeyId');
  const secretAccessKey = only(body, 'SecretAccessKey');
  const sessionToken = only(body, 'SessionToken');
  const expiration = only(body, 'Expiration');
  if (accessKeyId === null || secretAccessKey === null || sessionToken === null) throw new CredentialError('no-access-token');
  if (!ACCESS_KEY_ID.test(accessKeyId) || !SECRET_ACCESS_KEY.test(secretAccessKey) || !SESSION_TOKEN.test(sessionToken))
    throw new CredentialError('bad-token');
  const notAfter = expiration && /^\d{4}-\d\d-\d\dT[\d:.]+Z$/.test(expiration) ? Date.parse(expiration) : Number.NaN;
  if (!Number.isFinite(notAfter) || notAfter <= now || notAfter > now + MAX_SESSION_S * 1000) throw new CredentialError('bad-expires-in');
  return { accessKeyId, secretAccessKey, sessionToken, notAfter };
}
