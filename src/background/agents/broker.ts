/**
 * Brokered fetch (the strong mode): the worker makes the request with the credential and gives
 * the page only what came back, with every echo of the credential stripped.
 */

import { grantCovers, type StoredGrant } from '../../core/agents/grants.ts';
import { type BodyEncoding, type FetchResult, PageError, PageErrorCode } from '../../core/agents/page-api.ts';
import { checkMethodOverride, checkPageHeaders, checkRequestTarget, renderHeaderValue } from '../../core/agents/policy.ts';
import { REDACTED, type RedactionSet, Redactor } from '../../core/agents/redact.ts';
import type { SecretSummary } from '../../core/api.ts';
import type { AuditRecord } from '../../core/audit/audit.ts';
import { concat, fromBase64, fromUtf8, toBase64 } from '../../core/bytes.ts';
import { signingPlan } from '../../core/credentials/aws.ts';
import { usesMintedToken } from '../../core/credentials/kinds.ts';
import { signV4 } from '../../core/credentials/sigv4.ts';
import { CoreError } from '../../core/errors.ts';
import type { RateLimiter } from '../../core/rate-limit.ts';
import { type Credentials, CredentialUnavailable, type Handed } from '../credentials/credentials.ts';
import type { InUse, VaultService } from '../vault/vault-service.ts';
import type { GrantStore } from './grant-store.ts';
import type { Call } from './inflight.ts';

export const MAX_REQUEST_BODY = 1024 * 1024;
export const MAX_RESPONSE_BODY = 10 * 1024 * 1024;
export const REQUEST_TIMEOUT_MS = 60_000;
/** Streams (LLM answers) may run long; they are bounded by time and size all the same. */
export const STREAM_TIMEOUT_MS = 10 * 60_000;
export const MAX_STREAM_BODY = 64 * 1024 * 1024;

export type BrokerDeps = {
  readonly vault: VaultService;
  readonly grants: GrantStore;
  readonly credentials: Pick<Credentials, 'use' | 'rejected' | 'awsNow'>;
  readonly limiter: RateLimiter;
  readonly fetch: typeof fetch;
  readonly now: () => number;
  /**
   * Commits the audit record of a request about to be sent; rejects if it cannot be committed,
   * and then the request is not sent (-32603, fail-closed).
   */
  readonly commitAudit: (r: Omit<AuditRecord, 'time'>) => Promise<void>;
};

/** What the audit learns about a brokered request: never a value, never a query string. */
export type BrokerOutcome = {
  readonly secret: string;
  readonly grantId: string;
  readonly method: string;
  readonly host: string;
  readonly path: string;
};

const invalid = (field: string) => new PageError(PageErrorCode.invalidParams, { field });

type Prepared = {
  readonly grant: StoredGrant;
  readonly secret: SecretSummary;
  readonly request: Request;
  readonly redactor: Redactor;
  readonly outcome: BrokerOutcome;
  /** the page's origin, and the agent request's correlation id for the audit */
  readonly origin: string;
  readonly correlationId: string;
  /** what was put on the request */
  readonly used: InUse;
  /** the same request with the credential as it is now (after a 401 dropped a minted token) */
  readonly again: () => Promise<Prepared>;
};

/** The credential for one request; a minted one that cannot be had now is 4402 (with why, never a value). */
async function credentialFor(deps: BrokerDeps, grant: StoredGrant, secret: SecretSummary, cause: string | undefined): Promise<Handed> {
  try {
    return await deps.credentials.use(secret, cause, grant.narrow);
  } catch (e) {
    if (e instanceof CredentialUnavailable) throw new PageError(PageErrorCode.credentialUnavailable, { reason: e.reason });
    if (e instanceof CoreError && e.code === 'expired') throw new PageError(PageErrorCode.secretExpired);
    throw e;
  }
}

/** Checks everything and builds the request; nothing is sent yet. `call` is this request's place among those in flight. */
export async function prepare(
  deps: BrokerDeps,
  origin: string,
  raw: unknown,
  call: Pick<Call, 'claim'>,
  signal: AbortSignal,
  cause?: string,
): Promise<Prepared> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('params');
  const p = raw as Record<string, unknown>;
  if (typeof p.secret !== 'string' || p.secret.length > 64) throw invalid('secret');
  if (!(await deps.vault.isUnlocked())) throw new PageError(PageErrorCode.locked);
  // "No grant" and "no such secret" answer alike.
  const secret = await deps.vault.findSecret(p.secret);
  const candidates = secret ? (await deps.grants.forSecret(origin, secret.id)).filter((g) => g.mode === 'broker') : [];
  if (!secret || candidates.length === 0) throw new PageError(PageErrorCode.unauthorized);

  let target: ReturnType<typeof checkRequestTarget>;
  let pageHeaders: Record<string, string>;
  try {
    target = checkRequestTarget(p.url, p.method, secret.rule);
    if (p.credentialHeaders !== undefined && p.credentialHeaders !== 'refuse' && p.credentialHeaders !== 'replace')
      throw invalid('credentialHeaders');
    pageHeaders = checkPageHeaders(p.headers, secret.rule, p.credentialHeaders ?? 'refuse');
  } catch (e) {
    if (e instanceof CoreError && e.code === 'not-allowed') throw new PageError(PageErrorCode.hostNotAllowed);
    if (e instanceof CoreError) throw new PageError(PageErrorCode.invalidParams, { reason: e.message });
    throw e;
  }
  const grant = candidates.find((g) => grantCovers(g, target.host, target.method));
  if (!grant) throw new PageError(PageErrorCode.hostNotAllowed);
  const body = requestBody(p, target.method);
  const aws = secret.aws;
  let plan: ReturnType<typeof signingPlan> | undefined;
  try {
    // an AWS request is signed in full by the worker: the page's own signature headers go
    plan = aws ? signingPlan(aws.service, pageHeaders, body?.length ?? 0) : undefined;
  } catch (e) {
    if (e instanceof CoreError) throw new PageError(PageErrorCode.invalidParams, { reason: e.message });
    throw e;
  }
  const contentType = Object.entries(pageHeaders).find(([k]) => k.toLowerCase() === 'content-type')?.[1];
  try {
    checkMethodOverride(target, body, contentType, secret.rule);
  } catch (e) {
    if (e instanceof CoreError) throw new PageError(PageErrorCode.hostNotAllowed);
    throw e;
  }
  if (!deps.limiter.take(grant.id, deps.now())) throw new PageError(PageErrorCode.rateLimited);
  call.claim(grant.id); // before the use is counted: a stream over its caps costs no use
  if (!(await deps.grants.use(grant.id))) throw new PageError(PageErrorCode.unauthorized);

  const outcome = { secret: secret.name, grantId: grant.id, method: target.method, host: target.host, path: target.url.pathname };
  const correlationId = cause ?? crypto.randomUUID();
  const build = async (): Promise<Prepared> => {
    const used = await credentialFor(deps, grant, secret, cause);
    let headers: Headers;
    if (aws && plan && used.aws) {
      const signed = await signV4(
        { method: target.method, url: target.url.href, headers: plan.headers, ...(body ? { body } : {}) },
        used.aws,
        {
          region: aws.region,
          service: aws.service,
          now: deps.credentials.awsNow(),
          unsignedPayload: plan.unsignedPayload,
          contentSha256Header: plan.contentSha256Header,
        },
      );
      headers = new Headers(signed.headers);
      headers.delete('host'); // signed as the browser will send it; the browser sets it
    } else {
      headers = new Headers(pageHeaders);
      headers.set(secret.rule.header, renderHeaderValue(secret.rule.template, used.value));
    }
    const request = new Request(target.url, {
      method: target.method,
      headers,
      ...(body ? { body } : {}),
      credentials: 'omit',
      redirect: 'manual', // a redirect is refused below: the credential never follows it elsewhere
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
      signal,
    });
    // compiled once per opened secret or minted token (Credentials.use)
    return { grant, secret, request, redactor: new Redactor(used.redaction), outcome, origin, correlationId, used, again: build };
  };
  return build();
}

function requestBody(p: Record<string, unknown>, method: string): Uint8Array<ArrayBuffer> | undefined {
  if (p.body === undefined || p.body === null) return undefined;
  if (typeof p.body !== 'string') throw invalid('body');
  if (method === 'GET' || method === 'HEAD') throw invalid('body');
  const enc = p.bodyEncoding ?? 'utf8';
  let bytes: Uint8Array<ArrayBuffer>;
  if (enc === 'utf8') bytes = new TextEncoder().encode(p.body);
  else if (enc === 'base64') {
    try {
      bytes = fromBase64(p.body);
    } catch {
      throw invalid('body');
    }
  } else throw invalid('bodyEncoding');
  if (bytes.length > MAX_REQUEST_BODY) throw invalid('body');
  return bytes;
}

/** Why a call ended early: the lock or revoke that ended it (its own code), else the upstream failed. */
function failure(signal: AbortSignal, e: unknown): PageError {
  if (e instanceof PageError) return e;
  if (signal.aborted && signal.reason instanceof PageError) return signal.reason;
  return new PageError(PageErrorCode.upstreamFailed);
}

/**
 * Sends a prepared request; refuses redirects. A minted token answered 401 is dropped and the
 * request sent once more with a fresh one (the body is buffered, so it can be replayed).
 */
export async function send(deps: BrokerDeps, first: Prepared): Promise<{ res: Response; prepared: Prepared }> {
  const { origin, correlationId, outcome } = first;
  try {
    await deps.commitAudit({ kind: 'request.sent', correlationId, origin, mode: 'broker', ...outcome });
  } catch {
    throw new PageError(PageErrorCode.internal, { reason: 'audit' });
  }
  const res = await sendOnce(deps, first);
  // a minted token refused is minted again once; a static value or an AWS access key would be the same
  if (res.status !== 401 || !usesMintedToken(first.secret)) return { res, prepared: first };
  void res.body?.cancel().catch(() => {});
  await deps.credentials.rejected(first.secret, first.used.value);
  const prepared = await first.again();
  return { res: await sendOnce(deps, prepared), prepared };
}

async function sendOnce(deps: BrokerDeps, prepared: Prepared): Promise<Response> {
  let res: Response;
  try {
    res = await deps.fetch(prepared.request);
  } catch (e) {
    throw failure(prepared.request.signal, e);
  }
  if (res.type === 'opaqueredirect' || (res.status >= 300 && res.status < 400 && res.headers.has('location'))) {
    void res.body?.cancel();
    throw new PageError(PageErrorCode.redirectRefused);
  }
  return res;
}

// The body the page gets is already decoded and may change length when redacted.
const DROPPED_HEADERS = new Set(['content-encoding', 'content-length', 'transfer-encoding', 'set-cookie', 'set-cookie2']);

/**
 * The response headers a page may see. A header whose name holds the value is dropped (a name
 * cannot be redacted in place); values sent under one name arrive joined with ", ", so a value
 * split across them is looked for joined too, and such a header is replaced whole.
 */
export function redactedHeaders(res: Response, redactor: Redactor): Record<string, string> {
  const out: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    if (DROPPED_HEADERS.has(k) || redactor.text(k) !== k) return;
    const joined = v.replaceAll(', ', '');
    out[k] = joined !== v && redactor.text(joined) !== joined ? REDACTED : redactor.text(v);
  });
  return out;
}

const TEXT_TYPE = /^(text\/|application\/([\w.+-]*\+)?(json|xml|javascript|x-www-form-urlencoded|x-ndjson)\b)/i;

/** The whole brokered fetch, buffered: at most MAX_RESPONSE_BODY bytes. */
export async function brokeredFetch(
  deps: BrokerDeps,
  origin: string,
  params: unknown,
  call: Pick<Call, 'claim' | 'signal'>,
  cause?: string,
): Promise<{ result: FetchResult; outcome: BrokerOutcome; status: number }> {
  const signal = AbortSignal.any([call.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
  const { res, prepared } = await send(deps, await prepare(deps, origin, params, call, signal, cause));
  const chunks: Uint8Array[] = [];
  await pipeRedacted(res, prepared.redactor, MAX_RESPONSE_BODY, signal, (c) => chunks.push(c));
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    bytes.set(c, o);
    o += c.length;
  }
  const headers = redactedHeaders(res, prepared.redactor);
  const { body, bodyEncoding } = encodeBody(bytes, res.headers.get('content-type') ?? '');
  return {
    result: { status: res.status, statusText: prepared.redactor.text(res.statusText), headers, body, bodyEncoding },
    outcome: prepared.outcome,
    status: res.status,
  };
}

function encodeBody(bytes: Uint8Array, contentType: string): { body: string; bodyEncoding: BodyEncoding } {
  if (TEXT_TYPE.test(contentType) || contentType === '') {
    try {
      return { body: fromUtf8(bytes), bodyEncoding: 'utf8' };
    } catch {
      // not valid UTF-8: fall through to base64
    }
  }
  return { body: toBase64(bytes), bodyEncoding: 'base64' };
}

/**
 * How long the body is, when the server said so and the bytes read are the bytes it counted
 * (no content coding, which fetch undoes). HTTP framing guarantees no more arrive; fewer is a
 * network error fetch reports.
 */
export function declaredLength(headers: Headers): number | null {
  if (headers.has('content-encoding')) return null;
  const v = headers.get('content-length');
  return v !== null && /^\d{1,15}$/.test(v) ? Number(v) : null;
}

/**
 * Reads a response body through the redactor, handing on every non-empty redacted chunk; at most
 * `limit` bytes (then 4303). Returns how many bytes came from upstream.
 *
 * A body of declared length is complete once that many bytes are in: the stream's end signal
 * comes later in its own message (0.2 ms at p50 and 0.8 ms at p95 here), so the rest is drained
 * after the answer, not before it.
 *
 * A body that starts like a gzip or zlib stream though no Content-Encoding said so is compressed
 * bytes fetch did not decode: the redactor cannot see into them, so the whole body is read and
 * inflated first, and refused (4304) if the value is inside.
 */
async function pipeRedacted(
  res: Response,
  redactor: Redactor,
  limit: number,
  signal: AbortSignal,
  onChunk: (bytes: Uint8Array) => void,
): Promise<number> {
  const expected = declaredLength(res.headers);
  let bytes = 0;
  try {
    const reader = res.body?.getReader();
    let held: Uint8Array[] | null = null; // a body that may be undecoded compressed bytes, read whole first
    while (reader && bytes !== expected) {
      const { value, done } = await reader.read();
      if (done) break;
      if (bytes === 0 && !res.headers.has('content-encoding') && looksCompressed(value)) held = [];
      bytes += value.length;
      if (bytes > limit) {
        void reader.cancel();
        throw new PageError(PageErrorCode.responseTooLarge);
      }
      if (held) {
        held.push(value);
        continue;
      }
      const out = redactor.push(value);
      if (out.length > 0) onChunk(out);
    }
    if (reader && bytes === expected) void drain(reader);
    if (held) {
      const body = concat(...held);
      if (await holdsValue(body, redactor.set, limit)) throw new PageError(PageErrorCode.responseRefused);
      const out = redactor.push(body);
      if (out.length > 0) onChunk(out);
    }
    const tail = redactor.end();
    if (tail.length > 0) onChunk(tail);
  } catch (e) {
    throw failure(signal, e);
  }
  return bytes;
}

/** gzip (1f 8b 08) or zlib (78 01 / 5e / 9c / da) magic. */
export function looksCompressed(b: Uint8Array): boolean {
  if (b.length < 2) return false;
  if (b[0] === 0x1f && b[1] === 0x8b) return true;
  return b[0] === 0x78 && (b[1] === 0x01 || b[1] === 0x5e || b[1] === 0x9c || b[1] === 0xda);
}

/**
 * Whether compressed `body` holds the value in any form the redactor knows, inflated up to two
 * levels deep. Inflating stops at 4x `limit` (a zip bomb), which counts as holding it: Keyhole
 * cannot tell, so the body is not passed on.
 */
export async function holdsValue(body: Uint8Array, set: RedactionSet, limit: number, depth = 2): Promise<boolean> {
  const inner = await inflate(body, limit * 4);
  if (inner === null) return false; // not compressed after all: the redactor saw it as it is
  if (inner === 'too-large') return true;
  const probe = new Redactor(set);
  probe.push(inner);
  probe.end();
  if (probe.hits > 0) return true;
  return depth > 1 && looksCompressed(inner) && holdsValue(inner, set, limit, depth - 1);
}

async function inflate(body: Uint8Array, cap: number): Promise<Uint8Array | null | 'too-large'> {
  const format = body[0] === 0x1f ? 'gzip' : 'deflate';
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    const reader = new Blob([body as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream(format)).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > cap) {
        void reader.cancel();
        return 'too-large';
      }
      chunks.push(value);
    }
  } catch {
    // a truncated or corrupt stream: what was inflated before the error is still looked at
    if (chunks.length === 0) return null;
  }
  return concat(...chunks);
}

/** Reads a finished body's end signal; anything past the declared length is not passed on. */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  try {
    if (!(await reader.read()).done) await reader.cancel();
  } catch {
    // the answer is already complete
  }
}

/** What the page gets first on a stream: the response head, already redacted. */
export type StreamHead = { readonly status: number; readonly statusText: string; readonly headers: Record<string, string> };

/**
 * A streamed brokered fetch (server-sent events, as LLM APIs use): the head, then redacted
 * chunks as they arrive, carried over by `emit`. Stops when `signal` aborts (the page went away).
 */
export async function brokeredStream(
  deps: BrokerDeps,
  origin: string,
  params: unknown,
  call: Pick<Call, 'claim' | 'signal'>,
  emit: { head(h: StreamHead): void; chunk(bytes: Uint8Array): void },
  cause?: string,
): Promise<{ outcome: BrokerOutcome; status: number; bytes: number }> {
  const signal = AbortSignal.any([call.signal, AbortSignal.timeout(STREAM_TIMEOUT_MS)]);
  const { res, prepared } = await send(deps, await prepare(deps, origin, params, call, signal, cause));
  emit.head({ status: res.status, statusText: prepared.redactor.text(res.statusText), headers: redactedHeaders(res, prepared.redactor) });
  const bytes = await pipeRedacted(res, prepared.redactor, MAX_STREAM_BODY, signal, (c) => emit.chunk(c));
  return { outcome: prepared.outcome, status: res.status, bytes };
}

/**
 * One GET with `value` on `secret`'s rule to `url` (inside the rule's hosts and paths), for a
 * person testing a staged value before promoting it. Its status, or 0 when no answer came (or a
 * redirect, which is not followed). Nothing of the answer is kept.
 */
export async function testRequest(fetchFn: typeof fetch, secret: SecretSummary, value: string, url: string): Promise<number> {
  let target: ReturnType<typeof checkRequestTarget>;
  try {
    target = checkRequestTarget(url, 'GET', secret.rule);
  } catch (e) {
    if (e instanceof CoreError) throw new CoreError('bad-input', 'the test URL must be an https URL within the secret’s hosts');
    throw e;
  }
  try {
    const res = await fetchFn(target.url, {
      headers: { [secret.rule.header]: renderHeaderValue(secret.rule.template, value) },
      credentials: 'omit',
      redirect: 'manual',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
      signal: AbortSignal.timeout(10_000),
    });
    void res.body?.cancel().catch(() => {});
    return res.type === 'opaqueredirect' ? 0 : res.status;
  } catch {
    return 0;
  }
}
