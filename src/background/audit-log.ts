/**
 * The audit log in IndexedDB: appends records, chains them with the vault's audit key while
 * unlocked, and chains the ones written while locked at the next unlock. Reading checks the
 * whole chain and flags unusual use.
 */
import {
  type AuditEntry,
  type AuditFilter,
  type AuditKind,
  type AuditRecord,
  anomalies,
  auditRecord,
  type ChainCheck,
  chainMac,
  matches,
  verifyChain,
} from '../core/audit.ts';
import type { KeyholeDB } from './db.ts';

/**
 * Records of the kinds a page can cause at its own pace (requests, and errors such as refused
 * calls) wait up to this long to share one transaction with the ones after them; every other
 * kind is written at once, taking the waiting ones along. A browser killed in that window loses
 * those records; an MV3 worker is never stopped with a timer this short pending (it idles 30 s
 * first).
 */
export const AUDIT_BATCH_MS = 50;
const BATCHED: ReadonlySet<AuditKind> = new Set(['request', 'error']);
const MAX_BATCH = 256;

export type AuditView = {
  readonly entries: AuditEntry[];
  readonly total: number;
  readonly check: ChainCheck;
  readonly anomalies: ReturnType<typeof anomalies>;
};

export class AuditLog {
  private queue: Promise<unknown> = Promise.resolve();
  /** the newest entry, known once read: this worker is the only writer */
  private head: AuditEntry | null | undefined;
  /** appended, not yet written, in order */
  private waiting: AuditRecord[] = [];
  /** the flush the waiting request records are due in */
  private due: Promise<void> | null = null;

  constructor(
    private readonly db: KeyholeDB,
    /** the audit HMAC key while unlocked, else null */
    private readonly key: () => Promise<CryptoKey | null>,
    private readonly now: () => number = Date.now,
  ) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Appends one record (normalised by auditRecord: nothing outside the type is kept). The
   * promise settles once it is written.
   */
  append(input: Omit<AuditRecord, 'time'> & { time?: number }): Promise<void> {
    const record = auditRecord({ ...input, time: input.time ?? this.now() } as AuditRecord);
    this.waiting.push(record);
    if (!BATCHED.has(record.kind) || this.waiting.length >= MAX_BATCH) return this.flush();
    this.due ??= new Promise((r) => setTimeout(r, AUDIT_BATCH_MS)).then(() => {
      this.due = null;
      return this.flush();
    });
    return this.due;
  }

  /** Writes every waiting record, chained in order, in one transaction. */
  flush(): Promise<void> {
    return this.serial(async () => {
      const records = this.waiting.splice(0);
      if (records.length === 0) return;
      const key = await this.key();
      let last = await this.last();
      if (key && last && last.mac === null) {
        await this.chainPendingWith(key); // catch up first
        last = await this.last();
      }
      const entries: AuditEntry[] = [];
      for (const record of records) {
        const seq = (last?.seq ?? 0) + 1;
        last = { seq, record, mac: key ? await chainMac(key, last?.mac ?? null, seq, record) : null };
        entries.push(last);
      }
      const tx = this.db.transaction('audit', 'readwrite');
      await Promise.all([...entries.map((e) => tx.store.add(e)), tx.done]);
      this.head = last;
    });
  }

  /** At unlock: chain every record written while locked, in order. */
  chainPending(): Promise<number> {
    return this.serial(async () => {
      const key = await this.key();
      return key ? this.chainPendingWith(key) : 0;
    });
  }

  private async chainPendingWith(key: CryptoKey): Promise<number> {
    const all = await this.db.getAll('audit');
    let prev: Uint8Array | null = null;
    let done = 0;
    for (const e of all) {
      if (e.mac !== null) {
        prev = e.mac;
        continue;
      }
      const mac = await chainMac(key, prev, e.seq, e.record);
      await this.db.put('audit', { ...e, mac });
      prev = mac;
      done++;
    }
    this.head = undefined;
    return done;
  }

  private async last(): Promise<AuditEntry | null> {
    if (this.head === undefined) {
      const cursor = await this.db.transaction('audit').store.openCursor(null, 'prev');
      this.head = cursor?.value ?? null;
    }
    return this.head;
  }

  /** Newest first, filtered, with the whole chain checked. Requires the key (unlocked). */
  async view(filter: AuditFilter = {}, limit = 500): Promise<AuditView> {
    await this.flush();
    const key = await this.key();
    if (!key) throw new Error('locked');
    const all = await this.db.getAll('audit');
    const check = await verifyChain(key, all);
    const hits = all.filter((e) => matches(e.record, filter));
    return {
      entries: hits.slice(-limit).reverse(),
      total: hits.length,
      check,
      anomalies: anomalies(
        all.map((e) => e.record),
        this.now(),
      ),
    };
  }

  /** Every matching entry, oldest first (for export). */
  async export(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    await this.flush();
    return (await this.db.getAll('audit')).filter((e) => matches(e.record, filter));
  }
}
