/**
 * AWS Signature Version 4 with WebCrypto (pure: no browser API but crypto.subtle), for requests
 * the worker signs on an agent's behalf. Canonicalised as AWS specifies and as
 * `@smithy/signature-v4` (the AWS SDK v3's signer) does, so both reach the same signature:
 * - the path is normalised (empty and dot segments removed) and URI-encoded a second time, except
 *   for S3, whose path is signed as sent;
 * - query parameters are decoded, re-encoded per RFC 3986, sorted by name then value;
 * - every header is signed except those a proxy or the browser may change (authorization,
 *   user-agent, connection, expect, ... and proxy-* / sec-*); values trimmed, inner runs of
 *   spaces collapsed;
 * - the payload is the SHA-256 of the body, or `UNSIGNED-PAYLOAD` when asked (S3 allows it).
 */
import { toHex, utf8 } from '../bytes.ts';

export type AwsCredentials = {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** temporary credentials (STS) add X-Amz-Security-Token */
  readonly sessionToken?: string;
};

export type SigV4Request = {
  readonly method: string;
  /** the URL as sent: its path and query percent-encoded as on the wire */
  readonly url: string;
  /** the headers to send (host is taken from the URL when absent) */
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Uint8Array | string;
};

export type SigV4Options = {
  readonly region: string;
  readonly service: string;
  /** signing time, ms since the epoch */
  readonly now: number;
  /** sign `UNSIGNED-PAYLOAD` instead of the body's hash (S3 streams) */
  readonly unsignedPayload?: boolean;
  /** add `x-amz-content-sha256` (S3 requires it) */
  readonly contentSha256Header?: boolean;
};

export type Signed = {
  /** the headers to send, the signature's among them */
  readonly headers: Record<string, string>;
  /** for tests and diagnostics; none holds a secret */
  readonly canonicalRequest: string;
  readonly stringToSign: string;
  readonly signature: string;
};

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/** Never signed: a proxy, the browser or the HTTP stack may add or change them (smithy's list). */
const UNSIGNABLE = new Set([
  'authorization',
  'cache-control',
  'connection',
  'expect',
  'from',
  'keep-alive',
  'max-forwards',
  'pragma',
  'referer',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'x-amzn-trace-id',
]);
const unsignable = (name: string) => UNSIGNABLE.has(name) || name.startsWith('proxy-') || name.startsWith('sec-');

/** RFC 3986 percent-encoding: everything but A-Z a-z 0-9 - _ . ~ */
export function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** YYYYMMDDTHHMMSSZ */
export function amzDate(now: number): string {
  return new Date(now)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function canonicalPath(pathname: string, service: string): string {
  if (service === 's3') return pathname || '/';
  const segments: string[] = [];
  for (const s of pathname.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') segments.pop();
    else segments.push(s);
  }
  const normalized = `${pathname.startsWith('/') ? '/' : ''}${segments.join('/')}${segments.length > 0 && pathname.endsWith('/') ? '/' : ''}`;
  return escapeUri(normalized).replace(/%2F/g, '/') || '/';
}

function canonicalQuery(search: string): string {
  const pairs: [string, string][] = [];
  for (const [k, v] of new URLSearchParams(search)) {
    if (k.toLowerCase() === 'x-amz-signature') continue;
    pairs.push([escapeUri(k), escapeUri(v)]);
  }
  pairs.sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

/** Line breaks and runs of spaces or tabs become one space; one space is trimmed from each end (as smithy does). */
const canonicalValue = (v: string) =>
  v
    .replace(/[\r\n]/g, ' ')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ | $/g, '');

async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === 'string' ? utf8(data) : data;
  return toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)));
}

async function hmac(key: Uint8Array, data: string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, utf8(data) as Uint8Array<ArrayBuffer>));
}

/** kSigning = HMAC chain over the date, region, service and "aws4_request", from "AWS4" + secret. */
export async function signingKey(secret: string, shortDate: string, region: string, service: string): Promise<Uint8Array> {
  let k = await hmac(utf8(`AWS4${secret}`), shortDate);
  for (const part of [region, service, 'aws4_request']) k = await hmac(k, part);
  return k;
}

/** Signs a request: the headers to send (with Authorization, X-Amz-Date and, for temporary credentials, X-Amz-Security-Token). */
export async function signV4(req: SigV4Request, creds: AwsCredentials, opts: SigV4Options): Promise<Signed> {
  const url = new URL(req.url);
  const date = amzDate(opts.now);
  const shortDate = date.slice(0, 8);
  const scope = `${shortDate}/${opts.region}/${opts.service}/aws4_request`;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    const name = k.toLowerCase();
    if (name === 'authorization' || name === 'x-amz-date' || name === 'x-amz-security-token') continue; // ours to set
    headers[name] = v;
  }
  headers.host ??= url.host;
  headers['x-amz-date'] = date;
  if (creds.sessionToken) headers['x-amz-security-token'] = creds.sessionToken;
  const payloadHash =
    headers['x-amz-content-sha256'] ?? (opts.unsignedPayload ? UNSIGNED_PAYLOAD : await sha256Hex(req.body ?? new Uint8Array()));
  if (opts.contentSha256Header) headers['x-amz-content-sha256'] = payloadHash;

  const names = Object.keys(headers)
    .filter((n) => !unsignable(n))
    .sort();
  const canonicalHeaders = names.map((n) => `${n}:${canonicalValue(String(headers[n]))}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [
    req.method.toUpperCase(),
    canonicalPath(url.pathname, opts.service),
    canonicalQuery(url.search),
    canonicalHeaders,
    signedHeaders,
    payloadHash,
  ].join('\n');
  const stringToSign = [ALGORITHM, date, scope, await sha256Hex(canonicalRequest)].join('\n');
  const key = await signingKey(creds.secretAccessKey, shortDate, opts.region, opts.service);
  const signature = toHex(await hmac(key, stringToSign));
  headers.authorization = `${ALGORITHM} Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { headers, canonicalRequest, stringToSign, signature };
}
