/**
 * A browser killed (SIGKILL) in the middle of a stream of writes leaves, for every item, either
 * the old or the new state: nothing half-written, nothing damaged, and every write the worker
 * acknowledged before the kill is still there.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { type Harness, launch, newProfileDir, OPTIONS, rpc } from '../harness/browser.ts';

const PASS = 'crash test passphrase (FAKE)';
const rule = { hosts: ['api.example.test'], header: 'Authorization', template: 'Bearer {value}' };
type Res<T> = { ok: boolean; result: T; error?: { code: string } };

describe('killed mid-write', () => {
  let h: Harness | undefined;
  const profile = newProfileDir('crash-');
  afterAll(async () => {
    await h?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  it('keeps old-or-new for every item and every acknowledged write', async () => {
    h = await launch({ profile });
    const page = await h.open(OPTIONS);
    await rpc(page, 'vault.create', { passphrase: PASS, kdf: 'pbkdf2-sha256' });
    const counter = await rpc<Res<{ id: string }>>(page, 'secrets.create', { name: 'counter', value: 'FAKE-v0', rule });

    // Writes run in the page, one after another, each counted only once the worker answered.
    await page.evaluate(
      ({ id, rule }) => {
        const w = window as unknown as { acked: number; created: number };
        w.acked = 0;
        w.created = 0;
        void (async () => {
          for (let i = 1; i < 10_000; i++) {
            const send = (method: string, params: unknown) => chrome.runtime.sendMessage({ kh: 1, method, params });
            const u = await send('secrets.update', { id, value: `FAKE-v${i}` });
            if (u?.ok) w.acked = i;
            const c = await send('secrets.create', { name: `n-${i}`, value: `FAKE-n${i}`, rule });
            if (c?.ok) w.created = i;
          }
        })();
      },
      { id: counter.result.id, rule },
    );
    await expect.poll(() => page.evaluate(() => (window as unknown as { acked: number }).acked), { timeout: 30_000 }).toBeGreaterThan(20);
    const ackedBefore = await page.evaluate(() => {
      const w = window as unknown as { acked: number; created: number };
      return { acked: w.acked, created: w.created };
    });
    await h.kill();
    h = undefined;

    h = await launch({ profile });
    const again = await h.open(OPTIONS);
    expect((await rpc<Res<{ state: string }>>(again, 'vault.unlock', { passphrase: PASS })).result.state).toBe('unlocked');
    const list = await rpc<Res<{ secrets: { id: string; name: string; version: number }[]; damaged: unknown[] }>>(again, 'secrets.list');
    expect(list.result.damaged).toEqual([]);

    const value = (await rpc<Res<{ value: string }>>(again, 'secrets.reveal', { id: counter.result.id, passphrase: PASS })).result.value;
    const n = Number(/^FAKE-v(\d+)$/.exec(value)?.[1]);
    expect(n).toBeGreaterThanOrEqual(ackedBefore.acked); // acknowledged writes survived
    const c = list.result.secrets.find((s) => s.id === counter.result.id);
    expect(c?.version).toBe(n + 1); // value and version moved together

    const created = list.result.secrets.filter((s) => s.name.startsWith('n-'));
    expect(created.length).toBeGreaterThanOrEqual(ackedBefore.created);
    for (const s of created.slice(-3)) {
      const v = await rpc<Res<{ value: string }>>(again, 'secrets.reveal', { id: s.id, passphrase: PASS });
      expect(v.result.value).toBe(`FAKE-n${s.name.slice(2)}`);
    }
  });
});
