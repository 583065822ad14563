/**
 * The audit log in IndexedDB: appends records, chains them with the vault's audit key while
 * unlocked, and chains the ones written while locked at the next unlock. It stays cheap under a
 * page's flood (issue 12, item 10):
 * - refused calls are merged per origin, tab and outcome over REFUSAL_WINDOW_MS into one record
 *   with a count; a page making 1,500 refused calls a second writes about one record a second;
 * - while locked (nothing can chain), at most MAX_PENDING_WHILE_LOCKED records are kept, and one
 *   last record counts the rest;
 * - reading is paged, newest first; the chain is verified incrementally from a checkpoint, in
 *   chunks that yield to the worker's other work, and apart from the view (`verify`).
 */
import {
  ANOMALY_BASELINE_MS,
  type Anomaly,
  type AuditEntry,
  type AuditFilter,
  type AuditKind,
  type AuditRecord,
  anomalies,
  auditRecord,
  CHAIN_START,
  type ChainCheck,
  type ChainProgress,
  chainCheck,
  chainMac,
  continueChain,
  matches,
} from '../../core/audit/audit.ts';
import type { KeyholeDB } from '../db.ts';

/**
 * Records of the kinds a page can cause at its own pace (requests, and errors such as refused
 * calls) wait up to this long to share one transaction with the ones after them; every other
 * kind is written at once, taking the waiting ones along. A browser killed in that window loses
 * those records; an MV3 worker is never stopped with a timer this short pending (it idles 30 s
 * first).
 */
export const AUDIT_BATCH_MS = 50;
/** Refused calls alike in origin, tab, kind, decision and status are merged over this window. */
export const REFUSAL_WINDOW_MS = 1000;
/** Records kept while locked; past it, one record at the end counts what was not kept. */
export const MAX_PENDING_WHILE_LOCKED = 1000;
/** Entries verified per step before yielding to the worker's other events. */
const VERIFY_CHUNK = 500;
/** Entries read per step when paging newest first. */
const PAGE_CHUNK = 1000;
/** A view reads at most this many entries looking for matches before it answers with `more`. */
const MAX_VIEW_SCAN = 50_000;
const BATCHED: ReadonlySet<AuditKind> = new Set(['request', 'error']);
const MAX_BATCH = 256;
/** While writes fail, how often the log tries one again on its own (a brokered request tries at once). */
export const AUDIT_RETRY_MS = 5000;
/** Fields a merged refusal keeps only if every merged record agreed on them. */
const MERGED_FIELDS = ['secret', 'mode', 'method', 'host', 'path', 'reason'] as const;

export type AuditView = {
  readonly entries: AuditEntry[];
  /** older matching entries may exist: ask again with `before: next` */
  readonly more: boolean;
  readonly next?: number;
  /** the chain check, if already verified up to the newest entry; else null (call verify) */
  readonly check: ChainCheck | null;
  readonly anomalies: Anomaly[];
};

type Group = { record: AuditRecord; count: number; differs: Set<string>; written: Promise<void> };

const isRefusal = (r: AuditRecord) => r.kind === 'error' || (r.kind === 'request' && r.decision === 'denied');
type Deferred = { readonly promise: Promise<void>; resolve(): void; reject(e: unknown): void };
function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // a batch nobody waits on may fail: its failure is counted, not thrown
  return { promise, resolve, reject };
}
const yieldToWorker = () => new Promise<void>((r) => setTimeout(r, 0));

export class AuditLog {
  private queue: Promise<unknown> = Promise.resolve();
  /** the newest entry, known once read: this worker is the only writer */
  private head: AuditEntry | null | undefined;
  /** appended, not yet written, in order */
  private waiting: AuditRecord[] = [];
  /** the flush the waiting request records are due in */
  private due: Promise<void> | null = null;
  /** settles when the waiting records are written, or fail to be */
  private batch: Deferred | null = null;
  /** a write failed and none committed since; how many records were lost meanwhile */
  private failing = false;
  private lost = 0;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private probe: AuditRecord | null = null;
  private readonly listeners: ((healthy: boolean) => void)[] = [];
  /** refusals being merged, by what makes them alike */
  private readonly groups = new Map<string, Group>();
  /** unchained entries in the store (known once counted), and the overflow record's seq if written */
  private pending: number | undefined;
  private overflowSeq: number | null = null;
  /** verified through this entry (its MAC, and how many chained entries up to it) */
  private checkpoint: ChainProgress = CHAIN_START;
  private verifying: Promise<ChainCheck> | null = null;
  /** allowed requests of the last 24 h, by time, as the verifier read them (for anomalies) */
  private recent: Pick<AuditRecord, 'kind' | 'decision' | 'origin' | 'secret' | 'time' | 'count'>[] = [];
  private lastCheck: ChainCheck | null = null;

  constructor(
    private readonly db: KeyholeDB,
    /** the audit HMAC key while unlocked, else null */
    private readonly key: () => Promise<CryptoKey | null>,
    private readonly now: () => number = Date.now,
    private readonly retryMs = AUDIT_RETRY_MS,
  ) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Appends one record (normalised by auditRecord: nothing outside the type is kept). The
   * promise settles once it is written (a merged refusal: once its merged record is).
   */
  append(input: Omit<AuditRecord, 'time'> & { time?: number }): Promise<void> {
    const record = auditRecord({ ...input, time: input.time ?? this.now() } as AuditRecord);
    if (isRefusal(record)) return this.merge(record);
    // a lock, an unlock, a grant: the refusals merged so far go before it, as they came before it
    if (!BATCHED.has(record.kind)) for (const k of [...this.groups.keys()]) this.close(k);
    return this.enqueue(record);
  }

  /**
   * Appends one record and writes it at once, with whatever waits (a group commit). Resolves once
   * the transaction holding it committed; rejects if it could not be: the caller must then not
   * do what the record describes (fail-closed).
   */
  commit(input: Omit<AuditRecord, 'time'> & { time?: number }): Promise<void> {
    const record = auditRecord({ ...input, time: input.time ?? this.now() } as AuditRecord);
    const written = this.join(record);
    void this.flush().catch(() => {});
    return written;
  }

  /** Whether the last write committed; false from a failed write until one commits again. */
  get healthy(): boolean {
    return !this.failing;
  }

  /** Told each time the log starts failing to write, and when it writes again. */
  onHealth(listener: (healthy: boolean) => void): void {
    this.listeners.push(listener);
  }

  /** Adds a record to the waiting batch; the promise settles when that batch is written or fails. */
  private join(record: AuditRecord): Promise<void> {
    this.waiting.push(record);
    this.batch ??= deferred();
    return this.batch.promise;
  }

  private enqueue(record: AuditRecord): Promise<void> {
    const written = this.join(record);
    if (!BATCHED.has(record.kind) || this.waiting.length >= MAX_BATCH) void this.flush().catch(() => {});
    else
      this.due ??= new Promise((r) => setTimeout(r, AUDIT_BATCH_MS)).then(() => {
        this.due = null;
        return this.flush().catch(() => {});
      });
    return written;
  }

  /** A refusal joins the open group of its kind, or opens one that is written REFUSAL_WINDOW_MS later. */
  private merge(record: AuditRecord): Promise<void> {
    const key = [record.kind, record.origin, record.tabId, record.decision, record.status].join('\n');
    const open = this.groups.get(key);
    if (open) {
      open.count += record.count ?? 1;
      for (const f of MERGED_FIELDS) if (record[f] !== open.record[f]) open.differs.add(f);
      return open.written;
    }
    const group: Group = { record, count: record.count ?? 1, differs: new Set(), written: Promise.resolve() };
    group.written = new Promise<void>((r) => setTimeout(r, REFUSAL_WINDOW_MS)).then(() => {
      this.close(key);
      return this.flush();
    });
    this.groups.set(key, group);
    return group.written;
  }

  /** Moves a merged group into the waiting records, with its count and only the fields all agreed on. */
  private close(key: string): void {
    const g = this.groups.get(key);
    if (!g) return;
    this.groups.delete(key);
    const merged: Record<string, unknown> = { ...g.record, ...(g.count > 1 ? { count: g.count } : {}) };
    for (const f of g.differs) delete merged[f];
    void this.join(auditRecord(merged as AuditRecord));
  }

  /**
   * Writes every waiting record, chained in order, in one transaction. A failed write loses that
   * batch (its callers hear of it), marks the log failing and counts what was lost; a record
   * saying how many is written once a write commits again (tried every AUDIT_RETRY_MS meanwhile).
   */
  flush(): Promise<void> {
    return this.serial(async () => {
      const records = this.waiting.splice(0);
      const batch = this.batch;
      this.batch = null;
      if (records.length === 0) return batch?.resolve();
      try {
        await this.write(records);
      } catch (e) {
        this.failed(records);
        batch?.reject(e);
        throw e;
      }
      batch?.resolve();
      if (this.failing) this.recovered(records);
    });
  }

  private failed(records: readonly AuditRecord[]): void {
    this.head = undefined; // read again: the write may have failed because the store changed under it
    this.pending = undefined;
    this.lost += records.filter((r) => r !== this.probe).reduce((n, r) => n + (r.count ?? 1), 0);
    if (!this.failing) {
      this.failing = true;
      for (const l of this.listeners) l(false);
    }
    this.retry ??= setTimeout(() => {
      this.retry = null;
      if (!this.failing) return;
      // the probe: the record of what was lost; if it commits, the log writes again
      this.probe = this.writeLost();
    }, this.retryMs);
  }

  /** Writes (now, with what waits) the record of how many records were lost, and returns it. */
  private writeLost(): AuditRecord {
    const record = auditRecord({
      time: this.now(),
      kind: 'error',
      correlationId: crypto.randomUUID(),
      reason: 'audit-unavailable',
      count: this.lost,
    });
    void this.join(record).catch(() => {});
    void this.flush().catch(() => {});
    return record;
  }

  private recovered(written: readonly AuditRecord[]): void {
    this.failing = false;
    const noted = this.probe !== null && written.includes(this.probe);
    if (!noted && this.lost > 0) this.writeLost();
    this.lost = 0;
    this.probe = null;
    for (const l of this.listeners) l(true);
  }

  private async write(records: AuditRecord[]): Promise<void> {
    const key = await this.key();
    if (!key) return this.writeUnchained(records);
    let last = await this.last();
    if (last && last.mac === null) {
      await this.chainPendingWith(key); // catch up first
      last = await this.last();
    }
    const entries: AuditEntry[] = [];
    for (const record of records) {
      const seq = (last?.seq ?? 0) + 1;
      last = { seq, record, mac: await chainMac(key, last?.mac ?? null, seq, record) };
      entries.push(last);
    }
    const tx = this.db.transaction('audit', 'readwrite');
    await Promise.all([...entries.map((e) => tx.store.add(e)), tx.done]);
    this.head = last;
  }

  /** While locked: kept up to the bound, then counted in one overflow record at the end. */
  private async writeUnchained(records: AuditRecord[]): Promise<void> {
    this.pending ??= await this.countPending();
    const room = Math.max(0, MAX_PENDING_WHILE_LOCKED - this.pending);
    const kept = records.slice(0, room);
    const over = records.slice(room).reduce((n, r) => n + (r.count ?? 1), 0);
    let last = await this.last();
    const before = over > 0 && this.overflowSeq !== null ? await this.db.get('audit', this.overflowSeq) : undefined;
    // every read is done: the writes go in one transaction, issued without awaiting anything else
    const tx = this.db.transaction('audit', 'readwrite');
    const writes: Promise<unknown>[] = [];
    for (const record of kept) {
      last = { seq: (last?.seq ?? 0) + 1, record, mac: null };
      writes.push(tx.store.add(last));
    }
    if (over > 0) {
      // a record without count stands for one event
      const count = (before ? (before.record.count ?? 1) : 0) + over;
      const record = auditRecord({ time: this.now(), kind: 'error', correlationId: 'audit-overflow', reason: 'audit-overflow', count });
      const seq = before ? before.seq : (last?.seq ?? 0) + 1;
      const entry = { seq, record, mac: null };
      writes.push(tx.store.put(entry));
      if (!before) last = entry;
      this.overflowSeq = seq;
    }
    await Promise.all([...writes, tx.done]);
    this.pending += kept.length;
    this.head = last;
  }

  /** Unchained entries at the end of the log (they are only ever at the end). */
  private async countPending(): Promise<number> {
    let n = 0;
    let cursor = await this.db.transaction('audit').store.openCursor(null, 'prev');
    while (cursor && cursor.value.mac === null) {
      if (cursor.value.record.reason === 'audit-overflow') this.overflowSeq ??= cursor.value.seq;
      else n++;
      cursor = await cursor.continue();
    }
    return n;
  }

  /** At unlock: chain every record written while locked, in order. */
  chainPending(): Promise<number> {
    return this.serial(async () => {
      const key = await this.key();
      return key ? this.chainPendingWith(key) : 0;
    });
  }

  /** Reads the unchained tail once, computes the MACs, writes them back in one transaction. */
  private async chainPendingWith(key: CryptoKey): Promise<number> {
    const tx = this.db.transaction('audit');
    let cursor = await tx.store.openCursor(null, 'prev');
    const tail: AuditEntry[] = [];
    while (cursor && cursor.value.mac === null) {
      tail.push(cursor.value);
      cursor = await cursor.continue();
    }
    const prev = cursor?.value ?? null;
    await tx.done;
    tail.reverse();
    let mac = prev?.mac ?? null;
    const chained: AuditEntry[] = [];
    for (const e of tail) {
      mac = await chainMac(key, mac, e.seq, e.record);
      chained.push({ ...e, mac });
    }
    if (chained.length > 0) {
      const w = this.db.transaction('audit', 'readwrite');
      await Promise.all([...chained.map((e) => w.store.put(e)), w.done]);
    }
    this.head = undefined;
    this.pending = 0;
    this.overflowSeq = null;
    return chained.length;
  }

  private async last(): Promise<AuditEntry | null> {
    if (this.head === undefined) {
      const cursor = await this.db.transaction('audit').store.openCursor(null, 'prev');
      this.head = cursor?.value ?? null;
    }
    return this.head;
  }

  /** Merged refusals and waiting records are written now (before a read). */
  private async settle(): Promise<void> {
    for (const k of [...this.groups.keys()]) this.close(k);
    await this.flush();
  }

  /**
   * Newest first, filtered, a page at a time: up to `limit` entries older than `before` (a seq).
   * Requires the key (unlocked). The chain check comes along only if it is already known up to
   * the newest entry; `verify` brings it up to date.
   */
  async view(filter: AuditFilter = {}, limit = 500, before?: number): Promise<AuditView> {
    await this.settle();
    if (!(await this.key())) throw new Error('locked');
    const top = (await this.last())?.seq ?? 0;
    let hi = Math.min(before ?? top + 1, top + 1); // exclusive
    const entries: AuditEntry[] = [];
    let scanned = 0;
    while (hi > 1 && entries.length < limit && scanned < MAX_VIEW_SCAN) {
      const lo = Math.max(1, hi - PAGE_CHUNK);
      const page = await this.db.getAll('audit', IDBKeyRange.bound(lo, hi, false, true));
      scanned += page.length;
      for (let i = page.length - 1; i >= 0 && entries.length < limit; i--) {
        const e = page[i] as AuditEntry;
        if (matches(e.record, filter)) entries.push(e);
      }
      hi = entries.length >= limit ? (entries.at(-1) as AuditEntry).seq : lo;
    }
    void this.verify().catch(() => {}); // keep the check and the anomalies current for the next view
    // known when the last verification reached the newest entry (unchained ones follow the checkpoint)
    const last = this.lastCheck;
    const known = last && (!last.ok || this.checkpoint.seq + last.pending >= top) ? last : null;
    return {
      entries,
      more: hi > 1,
      ...(hi > 1 ? { next: hi } : {}),
      check: known,
      anomalies: this.anomalies(),
    };
  }

  /**
   * Verifies the chain from the checkpoint to the newest entry, a chunk at a time, yielding to the
   * worker between chunks; a fresh worker starts from the first entry. Calls while one runs
   * share it. Also keeps the last 24 h of allowed requests for the anomaly flags.
   */
  verify(): Promise<ChainCheck> {
    this.verifying ??= this.runVerify().finally(() => {
      this.verifying = null;
    });
    return this.verifying;
  }

  /** The anomaly flags over the last 24 h, as of the last verification. */
  anomalies(): Anomaly[] {
    return anomalies(this.recent, this.now());
  }

  private async runVerify(): Promise<ChainCheck> {
    await this.settle();
    const key = await this.key();
    if (!key) throw new Error('locked');
    const since = this.now() - ANOMALY_BASELINE_MS;
    this.recent = this.recent.filter((r) => r.time >= since);
    let at = this.checkpoint;
    for (;;) {
      if (at.brokenAt !== undefined) break;
      const chunk = await this.db.getAll('audit', IDBKeyRange.lowerBound(at.seq + at.pending, true), VERIFY_CHUNK);
      if (chunk.length === 0) break;
      at = await continueChain(key, at, chunk);
      for (const e of chunk) {
        const r = e.record;
        if (e.mac !== null && e.seq <= at.seq && r.kind === 'request' && r.decision === 'allowed' && r.time >= since) this.recent.push(r);
      }
      // only chained, verified entries move the checkpoint: unchained ones are read again once chained
      this.checkpoint = { ...at, pending: 0 };
      await yieldToWorker();
    }
    this.lastCheck = chainCheck(at);
    if (at.brokenAt !== undefined) this.checkpoint = at; // stays broken
    return this.lastCheck;
  }

  /** Every matching entry, oldest first (for export). */
  async export(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    await this.settle();
    return (await this.db.getAll('audit')).filter((e) => matches(e.record, filter));
  }
}
