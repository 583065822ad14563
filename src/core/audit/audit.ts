/**
 * Audit records: every grant decision, request, unlock, lock and error. The record type has
 * no field that can hold a secret value: every field is a bounded enum, number, origin, host,
 * path without query, or a secret's name. Records are chained with HMAC-SHA-256 under the
 * vault's audit key; records written while locked are chained in at the next unlock.
 */
import { concat, utf8 } from '../bytes.ts';

export const AUDIT_KINDS = [
  'unlock',
  'lock',
  'grant.asked',
  'grant.given',
  'grant.denied',
  'grant.revoked',
  /**
   * A brokered request about to be sent, committed before it goes out: a request whose record
   * cannot be committed is not sent (fail-closed, as Vault's audit devices). Its `request`
   * record, with the status and latency, follows when it ends.
   */
  'request.sent',
  'request',
  'error',
  /** a token request for a minted credential: its endpoint's host, status, latency; never a token */
  'token.request',
  /** a secret's values: one staged, promoted, rolled back, destroyed; the secret expired (reason: v<n>, and why) */
  'secret.rotated',
  'secret.promoted',
  'secret.rolledBack',
  'secret.destroyed',
  'secret.expired',
] as const;
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
  /**
   * How many events this one record stands for, when more than one: refused calls a page makes
   * by the thousand are merged per origin, tab and outcome (fields that differed are left out).
   */
  readonly count?: number;
};

/** A stored entry: the record, and its chain MAC once chained (null while waiting for unlock). */
export type AuditEntry = { readonly seq: number; readonly record: AuditRecord; readonly mac: Uint8Array | null };

/** The fields a record may have, in the order exports list them. */
export const AUDIT_FIELDS = [
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
    count: typeof input.count === 'number' && Number.isInteger(input.count) && input.count >= 2 ? input.count : undefined,
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out as AuditRecord;
}

/**
 * Canonical bytes of a record: fields in a fixed order, JSON-encoded. `count` came later: it is
 * appended only when present, so records written before it keep their bytes and their MACs.
 */
export function canonical(r: AuditRecord): Uint8Array<ArrayBuffer> {
  const values: unknown[] = AUDIT_FIELDS.map((f) => r[f] ?? null);
  if (r.count !== undefined) values.push(r.count);
  return utf8(JSON.stringify(values));
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

/** How far a check got: the last chained entry verified (seq 0 before the first), and what it found. */
export type ChainProgress = {
  readonly seq: number;
  readonly mac: Uint8Array | null;
  readonly checked: number;
  readonly pending: number;
  readonly brokenAt?: number;
};
export const CHAIN_START: ChainProgress = { seq: 0, mac: null, checked: 0, pending: 0 };

/**
 * Checks the entries that follow `from`, in seq order, and says how far it got. A MAC that does
 * not match, a gap in seq (an edited, inserted, removed or reordered record), or a chained entry
 * after unchained ones marks where the chain breaks. Chunks of a long log are checked in turn.
 */
export async function continueChain(key: CryptoKey, from: ChainProgress, entries: readonly AuditEntry[]): Promise<ChainProgress> {
  let { seq, mac, checked, pending } = from;
  if (from.brokenAt !== undefined) return from;
  for (const e of entries) {
    if (e.mac === null) {
      pending++;
      continue;
    }
    const broken = pending > 0 || e.seq !== seq + 1 || !equal(await chainMac(key, mac, e.seq, e.record), e.mac);
    if (broken) return { seq, mac, checked, pending, brokenAt: e.seq };
    seq = e.seq;
    mac = e.mac;
    checked++;
  }
  return { seq, mac, checked, pending };
}

export function chainCheck(p: ChainProgress): ChainCheck {
  return p.brokenAt === undefined
    ? { ok: true, checked: p.checked, pending: p.pending }
    : { ok: false, checked: p.checked, pending: p.pending, brokenAt: p.brokenAt };
}

/** Checks a whole log from its first entry. */
export async function verifyChain(key: CryptoKey, entries: readonly AuditEntry[]): Promise<ChainCheck> {
  return chainCheck(await continueChain(key, CHAIN_START, entries));
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

/**
 * A CSV cell (RFC 4180) that no spreadsheet runs as a formula. Quoting alone does not stop one:
 * a quoted "=1+1" is still a formula to Excel and LibreOffice. A cell starting with = + - @, a
 * tab or a carriage return gets a leading apostrophe (OWASP's CSV injection advice), unless it is
 * a plain number (a negative status code stays a number).
 */
export function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  let s = String(v);
  if (/^[=+\-@\t\r]/.test(s) && !/^-?\d+(\.\d+)?$/.test(s)) s = `'${s}`;
  return /[",\r\n\t]/.test(s) || s.startsWith("'") ? `"${s.replaceAll('"', '""')}"` : s;
}

/** CSV (RFC 4180) with a header row. */
export function toCsv(entries: readonly AuditEntry[]): string {
  const cols = ['seq', ...AUDIT_FIELDS, 'count'] as const;
  const rows = entries.map((e) => cols.map((c) => csvCell(c === 'seq' ? e.seq : e.record[c])).join(','));
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

export function anomalies(
  records: readonly Pick<AuditRecord, 'kind' | 'decision' | 'origin' | 'secret' | 'time' | 'count'>[],
  now: number,
): Anomaly[] {
  const buckets = ANOMALY_BASELINE_MS / ANOMALY_WINDOW_MS; // 288 five-minute windows
  const per = new Map<string, number[]>();
  for (const r of records) {
    if (r.kind !== 'request' || r.decision !== 'allowed' || !r.origin || !r.secret) continue;
    const age = now - r.time;
    if (age < 0 || age >= ANOMALY_BASELINE_MS) continue;
    const key = `${r.origin}\n${r.secret}`;
    const counts = per.get(key) ?? new Array<number>(buckets).fill(0);
    counts[Math.floor(age / ANOMALY_WINDOW_MS)] = (counts[Math.floor(age / ANOMALY_WINDOW_MS)] ?? 0) + (r.count ?? 1);
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
