/**
 * Grants: origin x secret x hosts (x methods), with an expiry and an optional use count.
 * Pure decisions over plain data; the worker stores grants and asks these functions.
 */
import type { SecretKind } from '../credentials/kinds.ts';
import type { Narrowing } from '../credentials/narrowing.ts';
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
  narrow?: Narrowing;
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
    ...(a.narrow ? { narrow: a.narrow } : {}),
  };
}

export function isLive(g: Grant, now: number): boolean {
  return g.expiresAt > now && (g.usesLeft === null || g.usesLeft > 0);
}

/** Whether a grant covers this host and method (the secret's own rule is checked separately). */
export function grantCovers(g: Grant, host: string, method: HttpMethod): boolean {
  return g.hosts.includes(host) && (g.methods.length === 0 || g.methods.includes(method));
}

/**
 * Characters a page could use to make its text look like Keyhole's own or push it out of place:
 * controls, format characters (bidi overrides and isolates, zero-width, soft hyphen, tags), line
 * and paragraph separators, variation selectors, the combining grapheme joiner, and blank
 * "filler" letters (Hangul fillers, the halfwidth filler, the braille blank).
 */
const INVISIBLE =
  // biome-ignore lint/suspicious/noMisleadingCharacterClass: each code point is matched (and removed) on its own, combining ones included
  /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0\u{1d159}\u{1d173}-\u{1d17a}\u{e0100}-\u{e01ef}]/gu;

/**
 * The person-facing form of any text a page supplied: one line of visible characters, runs of
 * spaces of any width collapsed to one, capped at `max` characters (by code point), never
 * interpreted as markup.
 */
export function cleanPageText(text: unknown, max: number): string {
  if (typeof text !== 'string') return '';
  const flat = text
    .replace(INVISIBLE, ' ')
    .replace(/\p{Zs}+/gu, ' ')
    .trim();
  const chars = [...flat];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : flat;
}

/** The person-facing text of an untrusted reason: one line, capped, never interpreted. */
export function cleanReason(reason: unknown): string {
  return cleanPageText(reason, MAX_REASON_LENGTH);
}

/**
 * What a consent window shows and answers (between the worker and popup/consent.html). Only
 * secrets the vault can give this site appear: a name the page asked for that does not exist, or
 * is not bound to the hosts it asked for, is not shown at all (and, if nothing is left, the window
 * offers only Deny), so the answer a page gets tells it nothing about what exists.
 */
export type ConsentSecret = {
  readonly name: string;
  readonly id: string;
  readonly hosts: readonly string[];
  readonly header: string;
  /** a minted credential: its kind, and the token endpoint's host (Keyhole needs access to it too) */
  readonly kind?: SecretKind;
  readonly tokenHost?: string;
};

export type ConsentRequest = {
  readonly id: string;
  readonly origin: string;
  /** the tab and document that asked: the prompt ends when they do */
  readonly tabId: number;
  readonly documentId?: string;
  readonly mode: GrantMode;
  /** the period the site asked for, or Keyhole's default if it named none (`ttlAsked`) */
  readonly ttlSeconds: number;
  readonly ttlAsked: boolean;
  readonly reason: string;
  readonly secrets: readonly ConsentSecret[];
  /** what the site asks to narrow the credentials to (shown; the grants carry it) */
  readonly narrow?: Narrowing;
  /** AWS secrets asked for in transparent mode: Keyhole signs their requests itself, brokered only */
  readonly brokeredOnly?: readonly string[];
  readonly createdAt: number;
};

/** The period preselected in the consent window: the site's ask when it is short, else an hour. Never longer than asked. */
export const PRESELECTED_TTL_SECONDS = 3600;

export type ConsentDecision =
  | { readonly kind: 'deny' }
  | { readonly kind: 'once' }
  | { readonly kind: 'period'; readonly ttlSeconds: number };
