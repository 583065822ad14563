/**
 * Fail-closed audit in Chromium (issue 13, item 8): a brokered request whose audit record cannot
 * be committed is not sent (-32603), transparent rules are withdrawn while the audit cannot write,
 * and both come back once it writes again, with a record counting what was lost.
 *
 * The fault is real: another connection to the worker's IndexedDB takes the audit store's next
 * sequence number, so the worker's next audit transaction aborts with a ConstraintError, as it
 * would if the store changed under it.
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpcOk } from '../harness/browser.ts';
import { grantForPeriod, request } from '../harness/provider.ts';
import { type ApiServer, apiServer, appServer } from '../harness/servers.ts';

const PASSPHRASE = 'audit fail-closed passphrase FAKE';
const KEY = 'sk-FAKE-audit-fail-closed-0000';

describe('audit fails closed', () => {
  let h: Harness;
  let api: ApiServer;
  let app: Awaited<ReturnType<typeof appServer>>;
  let options: Page;
  let agent: Page;

  const ok = <T>(method: string, params?: unknown) => rpcOk<T>(options, method, params);

  /** Takes the audit store's next place from another connection, as a second writer would. */
  async function breakAudit(): Promise<void> {
    await (await h.worker()).evaluate(
      () =>
        new Promise<void>((resolve, reject) => {
          const open = indexedDB.open('keyhole');
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const tx = open.result.transaction('audit', 'readwrite');
            const store = tx.objectStore('audit');
            const last = store.openCursor(null, 'prev');
            last.onsuccess = () => {
              const seq = ((last.result?.value as { seq: number } | undefined)?.seq ?? 0) + 1;
              store.add({ seq, record: { time: Date.now(), kind: 'error', correlationId: 'second-writer', reason: 'x' }, mac: null });
            };
            tx.oncomplete = () => {
              open.result.close();
              resolve();
            };
            tx.onerror = () => reject(tx.error);
          };
        }),
    );
  }

  const sessionRules = async () =>
    (await h.worker()).evaluate(async () => (await chrome.declarativeNetRequest.getSessionRules()).filter((r) => r.id < 1_000_000).length);

  const call = () => request<{ status: number }>(agent, 'keyhole_fetch', { secret: 'k', url: `http://${api.host}/v1/echo` });

  beforeAll(async () => {
    [api, app] = await Promise.all([apiServer(), appServer()]);
    h = await launch();
    options = await h.open(OPTIONS);
    await ok('vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await ok('secrets.create', { name: 'k', value: KEY, rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' } });
    agent = await h.context.newPage();
    await agent.goto(`http://127.0.0.1:${app.port}/`);
    for (const mode of ['broker', 'transparent'] as const)
      expect((await grantForPeriod(h.context, agent, { secrets: ['k'], mode })).ok).toBe(true);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([api?.close(), app?.close()]);
  });

  it('a request whose record cannot be committed is not sent; transparent rules wait for the audit; both come back', async () => {
    expect((await call()).ok).toBe(true);
    expect(api.received).toHaveLength(1);
    await expect.poll(sessionRules).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 300)); // the request's own record is written (batched up to 50 ms)

    await breakAudit();
    const refused = await call();
    expect(refused).toMatchObject({ ok: false, error: { code: -32603, data: { reason: 'audit' } } });
    expect(api.received).toHaveLength(1); // never sent
    await expect.poll(sessionRules).toBe(0); // fail-closed: no header is added while nothing can be audited

    // the worker reads the store again at its next write (a retry within 5 s, or this call)
    await expect.poll(async () => (await call()).ok, { timeout: 10_000, interval: 500 }).toBe(true);
    await expect.poll(sessionRules, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(api.received.length).toBeGreaterThanOrEqual(2);
    expect(api.received.every((r) => r.headers.authorization === `Bearer ${KEY}`)).toBe(true);

    const audit = await ok<{ entries: { record: { kind: string; status?: number; reason?: string; decision?: string } }[] }>(
      'audit.view',
      {},
    );
    const records = audit.entries.map((e) => e.record);
    // the refused call is recorded as failed with its code; the records lost in the failed write are counted
    expect(records.some((r) => r.kind === 'request' && r.status === -32603 && r.decision === 'failed')).toBe(true);
    expect(records.some((r) => r.kind === 'error' && r.reason === 'audit-unavailable')).toBe(true);
    // every request that went out has its request.sent record, committed before it did
    expect(records.filter((r) => r.kind === 'request.sent').length).toBe(api.received.filter((r) => r.url.startsWith('/v1/echo')).length);
  });
});
