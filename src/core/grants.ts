/**
 * Grants: origin x secret x hosts (x methods), with an expiry and an optional use count.
 * Pure decisions over plain data; the worker stores grants and asks these functions.
 */
import type { Grant, GrantMode } from './page-api.ts';
import { type HttpMethod, isLoopbackHost } from './policy.ts';

/** A stored grant: the public `Grant` plus the secret's id (names can change, ids do not). */
export type StoredGrant = Grant & { readonly secretId: string };

/** A remembered "Deny": the same origin asking for the same secret is refused without a prompt. */
export type Denial = { readonly origin: string; readonly secret: string; readonly until: number };

export const DENIAL_MEMORY_MS = 10 * 60 * 1000;
export const ALLOW_ONCE_MS = 5 * 60 * 1000;
export const MAX_GRANT_TTL_SECONDS = 30 * 24 * 3600;
export const DEFAULT_GRANT_TTL_SECONDS = 8 * 3600;
export const MAX_REASON_LENGTH = 280;

/**
 * The caller's origin as the browser reported it, if Keyhole talks to it at all:
 * https, or http on a loopback host. `null`, `file:`, extension and other schemes are refused.
 */
export function callerOrigin(reported: unknown): string | null {
  if (typeof reported !== 'string' || reported === 'null' || reported.length > 300) return null;
  let url: URL;
  try {
    url = new URL(reported);
  } catch {
    return null;
  }
  if (url.origin !== reported) return null; // not a serialised origin
  if (url.protocol === 'https:') return url.origin;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url.origin;
  return null;
}

/** A new grant of `secret` to `origin`: for `ttlMs` from `now`, and `uses` times (null: unlimited). */
export function newGrant(a: {
  origin: string;
  secret: { id: string; name: string };
  mode: GrantMode;
  hosts: readonly string[];
  now: number;
  ttlMs: number;
  uses: number | null;
}): StoredGrant {
  return {
    id: crypto.randomUUID(),
    origin: a.origin,
    secret: a.secret.name,
    secretId: a.secret.id,
    mode: a.mode,
    hosts: [...a.hosts],
    methods: [],
    createdAt: a.now,
    expiresAt: a.now + a.ttlMs,
    usesLeft: a.uses,
  };
}

export function isLive(g: Grant, now: number): boolean {
  return g.expiresAt > now && (g.usesLeft === null || g.usesLeft > 0);
}

/** Whether a grant covers this host and method (the secret's own rule is checked separately). */
export function grantCovers(g: Grant, host: string, method: HttpMethod): boolean {
  return g.hosts.includes(host) && (g.methods.length === 0 || g.methods.includes(method));
}

/** The person-facing text of an untrusted reason: one line, capped, never interpreted. */
export function cleanReason(reason: unknown): string {
  if (typeof reason !== 'string') return '';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  const flat = reason.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, ' ').trim();
  return flat.length > MAX_REASON_LENGTH ? `${flat.slice(0, MAX_REASON_LENGTH - 1)}…` : flat;
}

/** What a consent window shows and answers (between the worker and popup/consent.html). */
export type ConsentSecret = {
  readonly name: string;
  /** absent when the vault has no secret by this name (the person sees that; only Deny is possible) */
  readonly id?: string;
  readonly hosts: readonly string[];
  readonly header: string;
};

export type ConsentRequest = {
  readonly id: string;
  readonly origin: string;
  readonly mode: GrantMode;
  readonly ttlSeconds: number;
  readonly reason: string;
  readonly secrets: readonly ConsentSecret[];
  readonly createdAt: number;
};

export type ConsentDecision =
  | { readonly kind: 'deny' }
  | { readonly kind: 'once' }
  | { readonly kind: 'period'; readonly ttlSeconds: number };
