/**
 * Audit records: every grant decision, request, unlock, lock and error. The record type has
 * no field that can hold a secret value: every field is a bounded enum, number, origin, host,
 * path without query, or a secret's name. Records are chained with HMAC-SHA-256 under the
 * vault's audit key; records written while locked are chained in at the next unlock.
 */
import { concat, utf8 } from './bytes.ts';

export const AUDIT_KINDS = ['unlock', 'lock', 'grant.asked', 'grant.given', 'grant.denied', 'grant.revoked', 'request', 'error'] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];
export type AuditDecision = 'allowed' | 'denied' | 'failed';
export type AuditMode = 'broker' | 'transparent';

export type AuditRecord = {
  readonly time: number;
  readonly kind: AuditKind;
  readonly correlationId: string;
  readonly origin?: string;
  readonly tabId?: number;
  readonly secret?: string;
  readonly mode?: AuditMode;
  readonly method?: string;
  readonly host?: string;
  /** the path only: query strings and fragments are never recorded */
  readonly path?: string;
  readonly decision?: AuditDecision;
  /** the HTTP status, or the page error code for a refusal */
  readonly status?: number;
  readonly latencyMs?: number;
  /** why: a lock reason or an error code name, from a fixed vocabulary */
  readonly reason?: string;
};

/** A stored entry: the record, and its chain MAC once chained (null while waiting for unlock). */
export type AuditEntry = { readonly seq: number; readonly record: AuditRecord; readonly mac: Uint8Array | null };

const FIELDS = [
  'time',
  'kind',
  'correlationId',
  'origin',
  'tabId',
  'secret',
  'mode',
  'method',
  'host',
  'path',
  'decision',
  'status',
  'latencyMs',
  'reason',
] as const;
const MAX_TEXT = 256;

/**
 * Normalises a record to the type's rules, dropping anything else: unknown fields, long text,
 * a query string in a path. What an audit can hold is decided here, not by the caller.
 */
export function auditRecord(input: AuditRecord): AuditRecord {
  const text = (v: unknown, pattern: RegExp) => (typeof v === 'string' && v.length <= MAX_TEXT && pattern.test(v) ? v : undefined);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : undefined);
  const out: Record<string, unknown> = {
    time: num(input.time) ?? 0,
    kind: (AUDIT_KINDS as readonly string[]).includes(input.kind) ? input.kind : 'error',
    correlationId: text(input.correlationId, /^[\w-]{1,64}$/) ?? 'none',
    origin: text(input.origin, /^[a-z][a-z0-9+.-]*:\/\/[^\s/?#]+$/),
    tabId: num(input.tabId),
    secret: text(input.secret, /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
    mode: input.mode === 'broker' || input.mode === 'transparent' ? input.mode : undefined,
    method: text(input.method, /^[A-Z]{3,7}$/),
    host: text(input.host, /^[a-z0-9.[\]:-]+$/),
    path: text(typeof input.path === 'string' ? input.path.split(/[?#]/)[0] : undefined, /^\/[^\s]*$/),
    decision: input.decision === 'allowed' || input.decision === 'denied' || input.decision === 'failed' ? input.decision : undefined,
    status: num(input.status),
    latencyMs: num(input.latencyMs),
    reason: text(input.reason, /^[a-z0-9.-]{1,40}$/),
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out as AuditRecord;
}

/** Canonical bytes of a record: fields in a fixed order, JSON-encoded. */
export function canonical(r: AuditRecord): Uint8Array<ArrayBuffer> {
  return utf8(JSON.stringify(FIELDS.map((f) => r[f] ?? null)));
}

const seqBytes = (seq: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(seq));
  return b;
};

/** MAC of entry `seq`: HMAC(audit key, previous MAC || seq || canonical record). */
export async function chainMac(key: CryptoKey, prev: Uint8Array | null, seq: number, r: AuditRecord): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign('HMAC', key, concat(prev ?? new Uint8Array(32), seqBytes(seq), canonical(r))));
}

export type ChainCheck = { readonly ok: boolean; readonly checked: number; readonly pending: number; readonly brokenAt?: number };

/**
 * Checks a run of entries in seq order from the start of the log. A MAC that does not match
 * (an edited, inserted, removed or reordered record) marks where the chain breaks.
 */
export async function verifyChain(key: CryptoKey, entries: readonly AuditEntry[]): Promise<ChainCheck> {
  let prev: Uint8Array | null = null;
  let checked = 0;
  let pending = 0;
  for (const e of entries) {
    if (e.mac === null) {
      pending++;
      continue;
    }
    if (pending > 0) return { ok: false, checked, pending, brokenAt: e.seq }; // a chained entry after unchained ones
    const expect = await chainMac(key, prev, e.seq, e.record);
    if (!equal(expect, e.mac)) return { ok: false, checked, pending, brokenAt: e.seq };
    prev = e.mac;
    checked++;
  }
  return { ok: true, checked, pending };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] as number) ^ (b[i] as number);
  return d === 0;
}

/** JSON Lines: one record per line, with its seq. */
export function toJsonl(entries: readonly AuditEntry[]): string {
  return entries.map((e) => JSON.stringify({ seq: e.seq, ...e.record })).join('\n') + (entries.length ? '\n' : '');
}

/** CSV (RFC 4180) with a header row; every field quoted when needed. */
export function toCsv(entries: readonly AuditEntry[]): string {
  const cols = ['seq', ...FIELDS] as const;
  const cell = (v: unknown) => {
    if (v === undefined || v === null) return '';
    const s = String(v);
    // quote separators, and neutralise spreadsheet formulas (CSV injection)
    return /[",\r\n]/.test(s) || /^[=+\-@]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const rows = entries.map((e) => cols.map((c) => cell(c === 'seq' ? e.seq : e.record[c])).join(','));
  return `${[cols.join(','), ...rows].join('\r\n')}\r\n`;
}

export type AuditFilter = {
  readonly origin?: string;
  readonly secret?: string;
  readonly kind?: AuditKind;
  readonly decision?: AuditDecision;
  readonly since?: number;
  readonly until?: number;
};

export function matches(r: AuditRecord, f: AuditFilter): boolean {
  return (
    (f.origin === undefined || r.origin === f.origin) &&
    (f.secret === undefined || r.secret === f.secret) &&
    (f.kind === undefined || r.kind === f.kind) &&
    (f.decision === undefined || r.decision === f.decision) &&
    (f.since === undefined || r.time >= f.since) &&
    (f.until === undefined || r.time < f.until)
  );
}

/**
 * Unusual use: an origin's uses of a secret in the last 5 minutes above 10x its own median
 * 5-minute count over the last 24 h, and at least 50 uses. Returns the flagged pairs.
 */
export const ANOMALY_WINDOW_MS = 5 * 60 * 1000;
export const ANOMALY_BASELINE_MS = 24 * 3600 * 1000;
export const ANOMALY_FACTOR = 10;
export const ANOMALY_MIN_USES = 50;

export type Anomaly = { readonly origin: string; readonly secret: string; readonly recent: number; readonly median: number };

export function anomalies(records: readonly AuditRecord[], now: number): Anomaly[] {
  const buckets = ANOMALY_BASELINE_MS / ANOMALY_WINDOW_MS; // 288 five-minute windows
  const per = new Map<string, number[]>();
  for (const r of records) {
    if (r.kind !== 'request' || r.decision !== 'allowed' || !r.origin || !r.secret) continue;
    const age = now - r.time;
    if (age < 0 || age >= ANOMALY_BASELINE_MS) continue;
    const key = `${r.origin}\n${r.secret}`;
    const counts = per.get(key) ?? new Array<number>(buckets).fill(0);
    counts[Math.floor(age / ANOMALY_WINDOW_MS)] = (counts[Math.floor(age / ANOMALY_WINDOW_MS)] ?? 0) + 1;
    per.set(key, counts);
  }
  const out: Anomaly[] = [];
  for (const [key, counts] of per) {
    const recent = counts[0] ?? 0;
    const sorted = counts.slice(1).sort((a, b) => a - b);
    const median =
      sorted.length % 2
        ? (sorted[(sorted.length - 1) / 2] as number)
        : ((sorted[sorted.length / 2 - 1] as number) + (sorted[sorted.length / 2] as number)) / 2;
    if (recent >= ANOMALY_MIN_USES && recent > ANOMALY_FACTOR * median) {
      const [origin, secret] = key.split('\n') as [string, string];
      out.push({ origin, secret, recent, median });
    }
  }
  return out;
}
