/**
 * Two Chromium profiles with the extension and one real distant vault (its own process, on
 * SQLite): pairing by code typed in the options page, a secret added on one appearing on the
 * other (live, over the event stream), edits on both while the server is down converging with
 * nothing lost, and a copied profile that without the passphrase can neither log in nor decrypt.
 */
import { cpSync, rmSync } from 'node:fs';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SecretSummary, SyncStatus } from '../../src/core/api.ts';
import { newDevice } from '../../src/core/crypto/device.ts';
import { signLogin } from '../../src/core/sync/login.ts';
import { type Harness, launch, newProfileDir, OPTIONS, POPUP, rpc, showSection } from '../harness/browser.ts';
import { freePort } from '../harness/servers.ts';
import { post } from '../harness/sync.ts';
import { type ServerProcess, spawnVaultServer } from '../harness/vault-server.ts';

const PASS = `FAKE-passphrase-${crypto.randomUUID().slice(0, 8)}`;
const rule = { hosts: ['api.example.test'], pathPrefixes: [], methods: [], header: 'Authorization', template: 'Bearer {value}' };
type Res<T> = { ok: boolean; result: T; error: { code: string; message: string } };

let port: number;
let dataDir: string;
let server: ServerProcess | undefined;
const start = async () => {
  server = await spawnVaultServer({ port, dataDir, loginsPerMinute: 10_000, requestsPerMinute: 100_000 });
};

type Device = { h: Harness; page: Page; name: string };
const devices: Device[] = [];
let laptop: Device;
let recoveryKey = '';
let rescuedDevice: Device | undefined;
let desktop: Device;

/** directories this file makes (profiles, the server's data), removed at the end */
const made: string[] = [];
const dirFor = (prefix: string) => {
  const dir = newProfileDir(prefix);
  made.push(dir);
  return dir;
};

async function device(name: string, profile = dirFor(`sync-${name}-`)): Promise<Device> {
  const h = await launch({ profile });
  const page = await h.open(`${OPTIONS}#sync`);
  const d = { h, page, name };
  devices.push(d);
  return d;
}
const call = async <T>(d: Device, method: string, params?: unknown): Promise<T> => {
  const r = await rpc<Res<T>>(d.page, method, params);
  if (!r.ok) throw new Error(`${d.name} ${method}: ${r.error.code} ${r.error.message}`);
  return r.result;
};
const names = async (d: Device) => (await call<{ secrets: SecretSummary[] }>(d, 'secrets.list')).secrets.map((s) => s.name).sort();
const byName = async (d: Device, n: string) => {
  const s = (await call<{ secrets: SecretSummary[] }>(d, 'secrets.list')).secrets.find((x) => x.name === n);
  if (!s) throw new Error(`${d.name} has no ${n}`);
  return s;
};
const value = async (d: Device, n: string) =>
  (await call<{ value: string }>(d, 'secrets.reveal', { id: (await byName(d, n)).id, passphrase: PASS })).value;
const edit = async (d: Device, n: string, v: string) => call(d, 'secrets.update', { id: (await byName(d, n)).id, value: v });
const syncNow = (d: Device) => call<SyncStatus>(d, 'sync.now');

beforeAll(async () => {
  port = await freePort();
  dataDir = dirFor('sync-server-'); // a fresh directory under test/.tmp (made if missing)
  await start();
  [laptop, desktop] = await Promise.all([device('laptop'), device('desktop')]);
  for (const d of [laptop, desktop]) await call(d, 'vault.create', { passphrase: PASS, kdf: 'pbkdf2-sha256' });
  await call(laptop, 'secrets.create', { name: 'openai', value: 'sk-FAKE-first', rule });
  for (const d of [laptop, desktop]) await d.page.reload();
});
afterAll(async () => {
  for (const d of devices) await d.h.close().catch(() => {});
  await server?.stop();
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe('sync between two Chromium profiles', () => {
  it('pairs the second device by the code typed in the options page, and it receives the secret', async () => {
    const origin = `http://127.0.0.1:${port}`;
    const a = laptop.page;
    await a.locator('#sync-enable').getByLabel('Server').fill(origin);
    await a.locator('#sync-enable').getByLabel('Device name').fill('laptop');
    await a.locator('#sync-enable').getByRole('button', { name: 'Start syncing' }).click();
    await expect.poll(() => a.locator('#head-fingerprint').textContent(), { timeout: 15_000 }).toMatch(/^\d+:/);
    // the recovery key, shown once
    recoveryKey = (await a.locator('#recovery-key').textContent()) ?? '';
    expect(recoveryKey).toMatch(/^KH1(-[A-Z2-9]{1,5}){7}$/);
    await a.getByRole('button', { name: 'I have written it down' }).click();
    expect(await a.locator('#recovery-key').count()).toBe(0);

    const b = desktop.page;
    await b.locator('#sync-join').getByLabel('Server').fill(origin);
    await b.locator('#sync-join').getByLabel('Device name').fill('desktop');
    await b.locator('#sync-join').getByRole('button', { name: 'Join a vault' }).click();
    const code = (await b.locator('#pairing-code').textContent({ timeout: 15_000 })) ?? '';
    expect(code).toMatch(/^[0-9A-F]{4}(-[0-9A-F]{4}){4}$/);

    await a.locator('#add-device').getByLabel('Pairing code').fill(code);
    await a.locator('#add-device').getByRole('button', { name: 'Add device' }).click();
    await expect.poll(() => a.locator('#members tbody tr').count(), { timeout: 15_000 }).toBe(2);

    // no "Check now": the open page's watch notices the approval by itself
    await showSection(b, 'secrets');
    await expect
      .poll(() => b.locator('tr[data-secret="openai"]').count(), { timeout: 15_000 })
      .toBe(1)
      .catch(async (e: unknown) => {
        const status = await call<SyncStatus>(desktop, 'sync.status').catch((x: unknown) => String(x));
        throw new Error(`${String(e)}; desktop's sync status: ${JSON.stringify(status)}; holds: ${await names(desktop).catch(String)}`);
      });
    await showSection(b, 'sync');
    expect(await value(desktop, 'openai')).toBe('sk-FAKE-first');
    // both show the same head fingerprint, and each member's fingerprint matches the device's own
    const [sa, sb] = [await syncNow(laptop), await syncNow(desktop)];
    expect(sa.head?.fingerprint).toBe(sb.head?.fingerprint);
    expect(sa.members.find((m) => m.name === 'desktop')?.pairingCode).toBe(sb.device?.pairingCode);
    // the person reads the laptop's head off its page and types it on the desktop's
    const shown = (await a.locator('#head-fingerprint').textContent()) ?? '';
    await b.locator('#compare-head').getByLabel('Another device’s head').fill(shown);
    await b.locator('#compare-head').getByRole('button', { name: 'Compare' }).click();
    await expect.poll(() => b.locator('#compare-result').getAttribute('data-result'), { timeout: 10_000 }).toBe('same');
  });

  it('a secret added on one appears on the other by itself (event stream to the open options page)', async () => {
    await showSection(desktop.page, 'secrets'); // the sync status is followed from every section
    await call(laptop, 'secrets.create', { name: 'anthropic', value: 'sk-FAKE-second', rule });
    await expect.poll(() => desktop.page.locator('tr[data-secret="anthropic"]').count(), { timeout: 20_000 }).toBe(1);
    expect(await value(desktop, 'anthropic')).toBe('sk-FAKE-second');
  });

  it('keeps working after the worker is stopped (device keys unwrapped again from the session)', async () => {
    const stopped = await desktop.h.stopWorker();
    await call(desktop, 'secrets.create', { name: 'after-restart', value: 'FAKE-after-restart', rule });
    expect(await stopped.restarted()).toBe(true);
    const s = await syncNow(desktop);
    expect(s.lastError).toBeUndefined();
    await syncNow(laptop);
    expect(await names(laptop)).toContain('after-restart');
  });

  it('a stopped worker pulls when it wakes, with no page watching and no sync asked for', async () => {
    await desktop.page.close(); // no options page: no event stream
    const stopped = await desktop.h.stopWorker();
    await call(laptop, 'secrets.create', { name: 'while-asleep', value: 'FAKE-asleep', rule });
    await syncNow(laptop);
    // any event wakes the worker; opening the popup is one. The pull on wake does the rest.
    desktop.page = await desktop.h.open(POPUP);
    expect(await stopped.restarted()).toBe(true);
    await expect.poll(() => names(desktop), { timeout: 15_000 }).toContain('while-asleep');
    // and between wakes, the alarm that runs the same pull every minute is set
    const alarm = await desktop.page.evaluate(() => chrome.alarms.get('keyhole.sync'));
    expect(alarm?.periodInMinutes).toBe(1);
    await desktop.page.close();
    desktop.page = await desktop.h.open(`${OPTIONS}#sync`);
  });

  it('edits on both while the server is down converge with nothing lost', async () => {
    await server?.stop();
    await edit(laptop, 'openai', 'sk-FAKE-from-laptop');
    await edit(desktop, 'openai', 'sk-FAKE-from-desktop');
    await call(laptop, 'secrets.create', { name: 'only-laptop', value: 'FAKE-l', rule });
    await call(desktop, 'secrets.create', { name: 'only-desktop', value: 'FAKE-d', rule });
    const down = await syncNow(laptop);
    expect(down.lastError?.code).toBe('network');
    await expect.poll(() => laptop.page.locator('#sync-error').getAttribute('data-code'), { timeout: 10_000 }).toBe('network');

    await start();
    for (const d of [laptop, desktop, laptop, desktop]) await syncNow(d);
    const all = ['after-restart', 'anthropic', 'only-desktop', 'only-laptop', 'openai', 'while-asleep'];
    expect(await names(laptop)).toEqual(all);
    expect(await names(desktop)).toEqual(all);

    // the concurrent edit is a conflict with both versions, chosen in the options page
    await desktop.page.reload();
    const keep = desktop.page.getByRole('button', { name: 'Keep openai from laptop' });
    await keep.click({ timeout: 15_000 });
    await expect.poll(() => desktop.page.locator('#conflicts').count(), { timeout: 15_000 }).toBe(0);
    await syncNow(laptop);
    expect((await syncNow(desktop)).conflicts).toEqual([]);
    expect(await value(laptop, 'openai')).toBe('sk-FAKE-from-laptop');
    expect(await value(desktop, 'openai')).toBe('sk-FAKE-from-laptop');
    const [sa, sb] = [await syncNow(laptop), await syncNow(desktop)];
    expect(sa.head?.fingerprint).toBe(sb.head?.fingerprint);
  });

  it('a third profile joins with the recovery key alone, typed in the options page', async () => {
    const rescued = await device('rescued');
    await call(rescued, 'vault.create', { passphrase: PASS, kdf: 'pbkdf2-sha256' });
    await rescued.page.reload();
    const form = rescued.page.locator('#sync-recover');
    await form.getByLabel('Server').fill(`http://127.0.0.1:${port}`);
    await form.getByLabel('Recovery key').fill(recoveryKey);
    await form.getByLabel('Device name').fill('rescued');
    await form.getByRole('button', { name: 'Recover' }).click();
    await showSection(rescued.page, 'secrets');
    await expect.poll(() => rescued.page.locator('tr[data-secret="openai"]').count(), { timeout: 20_000 }).toBe(1);
    expect(await value(rescued, 'openai')).toBe('sk-FAKE-from-laptop');
    expect((await syncNow(laptop)).members.map((m) => m.name).sort()).toEqual(['desktop', 'laptop', 'recovery key', 'rescued']);
    rescuedDevice = rescued;
  });

  it('removing a member in the options page starts a new key epoch and asks to rotate what it could read', async () => {
    const a = laptop.page;
    await a.reload();
    a.once('dialog', (d) => void d.accept()); // "Remove rescued? ..."
    await a.getByRole('button', { name: 'Remove rescued' }).click();
    await expect.poll(() => a.locator('#rotate').textContent(), { timeout: 20_000 }).toContain('openai');
    const s = await syncNow(laptop);
    expect(s.head?.epoch).toBe(2);
    expect(s.members.map((m) => m.name)).not.toContain('rescued');
    // the removed profile is refused from now on and keeps only what it already had
    const refused = await syncNow(rescuedDevice as Device);
    expect(refused.lastError?.message).toMatch(/removed/);
    // the other member reads what is written in the new epoch
    await call(laptop, 'secrets.create', { name: 'epoch-two', value: 'FAKE-epoch-two', rule });
    await syncNow(laptop);
    await syncNow(desktop);
    expect(await value(desktop, 'epoch-two')).toBe('FAKE-epoch-two');
    expect(await names(rescuedDevice as Device)).not.toContain('epoch-two');
    await a.getByRole('button', { name: 'Done' }).click(); // rotated (here: nothing to rotate for fakes)
    await expect.poll(() => a.locator('#rotate').count()).toBe(0);
  });

  it('a copied profile without the passphrase can neither log in nor decrypt', async () => {
    const id = (await syncNow(desktop)).device?.id ?? '';
    const copy = dirFor('sync-copy-');
    await desktop.h.kill(); // unlocked when killed: the worst moment to be copied
    cpSync(desktop.h.profile, copy, { recursive: true });
    devices.splice(devices.indexOf(desktop), 1);
    const stolen = await device('stolen', copy);

    expect((await rpc<Res<{ state: string }>>(stolen.page, 'status')).result.state).toBe('locked');
    expect(await rpc<Res<unknown>>(stolen.page, 'sync.now')).toMatchObject({ ok: false, error: { code: 'locked' } });
    expect(await rpc<Res<unknown>>(stolen.page, 'secrets.list')).toMatchObject({ ok: false, error: { code: 'locked' } });

    // What the copy holds of the device: public keys, and private keys only wrapped. Neither
    // imports as a key, and nothing else on disk opens them.
    const held = await stolen.page.evaluate(async () => {
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const r = indexedDB.open('keyhole');
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      const get = (store: string, key: string) =>
        new Promise<unknown>((resolve) => {
          const r = db.transaction(store).objectStore(store).get(key);
          r.onsuccess = () => resolve(r.result);
        });
      const link = (await get('syncLink', 'link')) as { device: { sign: Uint8Array<ArrayBuffer>; ecdh: Uint8Array<ArrayBuffer> } };
      const tries: string[] = [];
      for (const bytes of [link.device.sign, link.device.ecdh]) {
        for (const alg of [
          { name: 'ECDSA', namedCurve: 'P-256' },
          { name: 'ECDH', namedCurve: 'P-256' },
        ]) {
          try {
            await crypto.subtle.importKey('pkcs8', bytes, alg, false, alg.name === 'ECDSA' ? ['sign'] : ['deriveBits']);
            tries.push('imported');
          } catch {
            tries.push('refused');
          }
        }
      }
      return { tries, memory: await chrome.storage.session.get(null) };
    });
    expect(held.tries).toEqual(['refused', 'refused', 'refused', 'refused']);
    expect(held.memory['keyhole.session']).toBeUndefined(); // the other half of a session never reached disk

    // The server lets no one in as that device without its key: a login signed by any other key fails.
    const origin = `http://127.0.0.1:${port}`;
    const impostor = await newDevice('stolen');
    const { nonce } = (await (await post(origin, '/v1/auth/challenge', { device: id })).json()) as { nonce: string };
    const time = Date.now();
    const sig = await signLogin({ origin, device: id, nonce, time }, impostor.sign);
    expect((await post(origin, '/v1/auth/login', { device: id, nonce, time, sig })).status).toBe(401);

    // With the passphrase it is the same device again: it logs in and syncs.
    await call(stolen, 'vault.unlock', { passphrase: PASS });
    const s = await syncNow(stolen);
    expect(s.lastError).toBeUndefined();
    expect(await value(stolen, 'openai')).toBe('sk-FAKE-from-laptop');
  });
});
