/**
 * The audit at 100k records (issue 12, item 10), in Chromium with the built extension. The
 * records are written straight into the profile's IndexedDB while the vault is locked (as a flood
 * while locked would have, before records were bounded), so the unlock chains all of them:
 *
 * - audit.chain_100k_ms: unlock until the 100k records are chained and the unlock record written;
 * - audit.view_100k_p50_ms / _p95_ms: the options page's first page (200 newest);
 * - audit.view_filtered_100k_ms: a filter that matches nothing (the view scans at most 50k);
 * - audit.verify_100k_ms: a full chain verification by a freshly started worker;
 * - audit.status_during_verify_p95_ms against audit.status_idle_p95_ms, and their ratio: a
 *   status call answered while that verification runs (it yields between chunks).
 */
import type { Page } from 'playwright';
import { launch, OPTIONS, rpc } from '../test/harness/browser.ts';
import type { Suite } from './run.ts';
import { percentile, round } from './stats.ts';

const PASS = 'bench passphrase, not a secret (FAKE)';
const RECORDS = 100_000;

/** Writes `n` unchained request records straight into the extension's IndexedDB, from one of its pages. */
export function fill(page: Page, n: number): Promise<void> {
  return page.evaluate(async (count) => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open('keyhole');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const last = await new Promise<number>((resolve) => {
      const c = db.transaction('audit').objectStore('audit').openCursor(null, 'prev');
      c.onsuccess = () => resolve((c.result?.value as { seq: number } | undefined)?.seq ?? 0);
    });
    const now = Date.now();
    for (let start = 0; start < count; start += 10_000) {
      await new Promise<void>((resolve, reject) => {
        const tx = db.transaction('audit', 'readwrite');
        const store = tx.objectStore('audit');
        for (let i = start; i < Math.min(count, start + 10_000); i++) {
          const seq = last + 1 + i;
          store.put({
            seq,
            mac: null,
            record: {
              time: now - (count - i) * 800, // spread over the last day
              kind: 'request',
              correlationId: `bench-${seq}`,
              origin: `https://agent${i % 7}.example`,
              tabId: 1 + (i % 13),
              secret: `secret-${i % 5}`,
              mode: 'broker',
              method: 'POST',
              host: 'api.example.com',
              path: '/v1/chat/completions',
              decision: 'allowed',
              status: 200,
              latencyMs: 40,
            },
          });
        }
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
      });
    }
    db.close();
  }, n);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export const auditSuite: Suite = {
  name: 'audit',
  async run() {
    const h = await launch();
    try {
      const page = await h.open(OPTIONS);
      await rpc(page, 'vault.create', { passphrase: PASS, kdf: 'pbkdf2-sha256' });
      await rpc(page, 'vault.lock');
      await fill(page, RECORDS);
      const view = (params: Record<string, unknown>) => rpc<{ ok: boolean }>(page, 'audit.view', params);

      // unlock chains the records written while locked, then writes its own record after them
      const t0 = performance.now();
      await rpc(page, 'vault.unlock', { passphrase: PASS });
      for (;;) {
        const r = await rpc<{ result: { entries: { record: { kind: string } }[] } }>(page, 'audit.view', { limit: 1 });
        if (r.result.entries[0]?.record.kind === 'unlock') break;
        await new Promise((res) => setTimeout(res, 20));
      }
      const chainMs = performance.now() - t0;
      await rpc(page, 'audit.verify');

      const views: number[] = [];
      for (let i = 0; i < 15; i++) views.push(await timed(() => view({ limit: 200 })));
      const filtered = await timed(() => view({ limit: 200, filter: { origin: 'https://nobody.example' } }));

      const idle: number[] = [];
      for (let i = 0; i < 30; i++) idle.push(await timed(() => rpc(page, 'status')));
      // a fresh worker verifies from the first record
      const stop = await h.stopWorker();
      await rpc(page, 'status');
      if (!(await stop.restarted())) throw new Error('bench: the worker did not restart');
      const during: number[] = [];
      const verifyStart = performance.now();
      let verifyMs = 0;
      const verifying = rpc(page, 'audit.verify').then(() => {
        verifyMs = performance.now() - verifyStart;
      });
      while (verifyMs === 0) during.push(await timed(() => rpc(page, 'status')));
      await verifying;
      const idleP95 = percentile(idle, 95);
      const duringP95 = percentile(during, 95);
      return {
        metrics: {
          'audit.chain_100k_ms': round(chainMs),
          'audit.view_100k_p50_ms': round(percentile(views, 50)),
          'audit.view_100k_p95_ms': round(percentile(views, 95)),
          'audit.view_filtered_100k_ms': round(filtered),
          'audit.verify_100k_ms': round(verifyMs),
          'audit.status_idle_p95_ms': round(idleP95),
          'audit.status_during_verify_p95_ms': round(duringP95),
          'audit.status_during_verify_over_idle_p95': round(duringP95 / idleP95, 3),
        },
        meta: { records: RECORDS, statusSamplesDuringVerify: during.length },
      };
    } finally {
      await h.close();
    }
  },
};
