import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/background/audit-log.ts';
import { openKeyholeDB } from '../../src/background/db.ts';
import { ANOMALY_WINDOW_MS, type AuditRecord, anomalies, auditRecord, toCsv, toJsonl, verifyChain } from '../../src/core/audit.ts';

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
    expect((await audit.view()).check).toEqual({ ok: true, checked: 5, pending: 0 });

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
    expect((await audit.view()).check).toEqual({ ok: true, checked: 1, pending: 2 });
    expect(await audit.chainPending()).toBe(2);
    await audit.append({ kind: 'unlock', correlationId: 'u' });
    const v = await audit.view();
    expect(v.check).toEqual({ ok: true, checked: 4, pending: 0 });
    expect(v.entries.map((e) => e.record.kind)).toEqual(['unlock', 'request', 'lock', 'request']);
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
    const v = await audit.view(); // reading writes what waits first
    expect(v.check).toEqual({ ok: true, checked: 6, pending: 0 });
  });

  it('filters', async () => {
    const { audit } = await log();
    await audit.append(rec(1));
    await audit.append({ ...rec(2), origin: 'https://b.example' });
    expect((await audit.view({ origin: 'https://b.example' })).entries).toHaveLength(1);
    expect((await audit.view({ kind: 'lock' })).total).toBe(0);
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
  it('writes CSV with quoting and no formula can start a cell', () => {
    const csv = toCsv(entries);
    expect(csv.split('\r\n')[0]).toBe(
      'seq,time,kind,correlationId,origin,tabId,secret,mode,method,host,path,decision,status,latencyMs,reason',
    );
    expect(csv).toContain('"/=cmd,""q"""');
    expect(csv.split('\r\n')).toHaveLength(4);
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
