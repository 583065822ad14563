/**
 * AWS credentials (issue 14), pure: the long-lived access keys a person enters (checked by shape),
 * and STS AssumeRole, which mints short-lived session credentials with them: the request, signed
 * with SigV4, and STS's XML answer, read without a DOM (a service worker has no DOMParser) by
 * looking for exactly one of each element it needs. An answer that is not exactly usable
 * credentials is a typed CredentialError, never a guess; none holds a key.
 */
import { CredentialError } from './errors.ts';
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
