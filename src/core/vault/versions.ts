/**
 * A secret's values over time (rotation), as pure transitions of its history (`ValueInfo[]`, kept
 * in the sealed metadata). Exactly one value is current. Rotation adds a staged value; promotion
 * makes it current in one write and keeps the old one as previous for a grace period (for roll
 * back) or, for a compromised key, destroys it at once. A value past its grace is destroyed.
 * "Destroyed" here is the history's word; the worker deletes the ciphertext and its data key.
 */
import { CoreError } from '../errors.ts';
import { MAX_VALUES_KEPT, type ValueInfo } from './secrets.ts';

export const DEFAULT_GRACE_SECONDS = 24 * 3600;

/** A secret's expiry is warned of a week ahead (the toolbar badge, the options page) and urgently a day ahead. */
export const EXPIRY_WARN_MS = 7 * 24 * 3600 * 1000;
export const EXPIRY_URGENT_MS = 24 * 3600 * 1000;
export type ExpiryWarning = 'soon' | 'urgent' | 'expired';

/** How near a secret is to its expiry, for the warnings: null when it has none or it is further than a week. */
export function expiryWarning(s: { readonly expiresAt?: number; readonly expired?: boolean }, now: number): ExpiryWarning | null {
  if (s.expired || (s.expiresAt !== undefined && s.expiresAt <= now)) return 'expired';
  if (s.expiresAt === undefined || s.expiresAt - now > EXPIRY_WARN_MS) return null;
  return s.expiresAt - now <= EXPIRY_URGENT_MS ? 'urgent' : 'soon';
}
export const MAX_GRACE_SECONDS = 90 * 24 * 3600;

const next = (values: readonly ValueInfo[]) => Math.max(0, ...values.map((v) => v.n)) + 1;
const bad = (message: string) => new CoreError('bad-input', message);

/** The history kept bounded: the oldest destroyed lines go first. */
function bounded(values: ValueInfo[]): ValueInfo[] {
  while (values.length > MAX_VALUES_KEPT) {
    const i = values.findIndex((v) => v.state === 'destroyed');
    if (i < 0) break;
    values.splice(i, 1);
  }
  return values;
}

export function current(values: readonly ValueInfo[]): ValueInfo {
  const c = values.find((v) => v.state === 'current');
  if (!c) throw new CoreError('bad-record', 'no current value');
  return c;
}

export function staged(values: readonly ValueInfo[]): ValueInfo | undefined {
  return values.find((v) => v.state === 'staged');
}

/** A new value, staged (replacing a value staged before, which is destroyed). */
export function stage(values: readonly ValueInfo[], now: number): { values: ValueInfo[]; n: number; dropped?: number } {
  const n = next(values);
  const old = staged(values);
  const kept = values.map((v) => (v === old ? { n: v.n, state: 'destroyed' as const, createdAt: v.createdAt, destroyedAt: now } : v));
  return { values: bounded([...kept, { n, state: 'staged', createdAt: now }]), n, ...(old ? { dropped: old.n } : {}) };
}

export type Promotion = { readonly graceSeconds?: number; readonly compromised?: boolean };

/**
 * The staged value becomes current. The one it replaces is kept as previous until the grace
 * ends, or destroyed at once when compromised. A value that was previous before is destroyed (one
 * roll back target at a time).
 */
export function promote(values: readonly ValueInfo[], now: number, p: Promotion = {}): { values: ValueInfo[]; destroyed: number[] } {
  const s = staged(values);
  if (!s) throw bad('nothing is staged: add the new value first');
  const grace = p.graceSeconds ?? DEFAULT_GRACE_SECONDS;
  if (!Number.isInteger(grace) || grace < 0 || grace > MAX_GRACE_SECONDS) throw bad('grace must be 0 s to 90 days');
  const destroyed: number[] = [];
  const out = values.map((v): ValueInfo => {
    if (v === s) return { n: v.n, state: 'current', createdAt: v.createdAt };
    if (v.state === 'current' && !p.compromised && grace > 0)
      return { n: v.n, state: 'previous', createdAt: v.createdAt, destroyAt: now + grace * 1000 };
    if (v.state === 'current' || v.state === 'previous') {
      destroyed.push(v.n);
      return {
        n: v.n,
        state: 'destroyed',
        createdAt: v.createdAt,
        destroyedAt: now,
        ...(p.compromised && v.state === 'current' ? { compromised: true } : {}),
      };
    }
    return v;
  });
  return { values: out, destroyed };
}

/** The previous value becomes current again (within its grace); the one rolled back from is staged, to promote again or drop. */
export function rollBack(values: readonly ValueInfo[], now: number): { values: ValueInfo[]; destroyed: number[] } {
  const prev = values.find((v) => v.state === 'previous' && (v.destroyAt === undefined || v.destroyAt > now));
  if (!prev) throw bad('there is no previous value to roll back to (its grace period ended, or it was destroyed)');
  const destroyed: number[] = [];
  const out = values.map((v): ValueInfo => {
    if (v === prev) return { n: v.n, state: 'current', createdAt: v.createdAt };
    if (v.state === 'current') return { n: v.n, state: 'staged', createdAt: v.createdAt };
    if (v.state === 'staged') {
      destroyed.push(v.n);
      return { n: v.n, state: 'destroyed', createdAt: v.createdAt, destroyedAt: now };
    }
    return v;
  });
  return { values: out, destroyed };
}

/** Value `n` destroyed now (never the current one: rotate first, or delete the secret). */
export function destroy(values: readonly ValueInfo[], n: number, now: number): ValueInfo[] {
  const v = values.find((x) => x.n === n);
  if (!v || v.state === 'destroyed') throw new CoreError('not-found', 'that value is already destroyed');
  if (v.state === 'current') throw bad('the current value cannot be destroyed: rotate to a new one, or delete the secret');
  return values.map((x) => (x === v ? { n: x.n, state: 'destroyed', createdAt: x.createdAt, destroyedAt: now } : x));
}

/** The history as it stands at `now`: a previous value past its grace, or one whose ciphertext is gone, reads as destroyed. */
export function asOf(values: readonly ValueInfo[], now: number, held: (n: number) => boolean): ValueInfo[] {
  return values.map((v) => {
    if (v.state === 'current' || v.state === 'destroyed') return v;
    const gone = (v.destroyAt !== undefined && v.destroyAt <= now) || !held(v.n);
    return gone ? { n: v.n, state: 'destroyed', createdAt: v.createdAt, destroyedAt: v.destroyAt ?? now } : v;
  });
}
