/**
 * A team of Chromium profiles on one distant vault, for the team e2e tests and the team bench:
 * each profile creates a vault, the first enables sync, the others join with a pairing code the
 * first approves, and each has an agent page ready.
 */
import type { Page } from 'playwright';
import type { SecretSummary, SyncStatus } from '../../src/core/api.ts';
import { type Harness, launch, newProfileDir, OPTIONS, rpc } from './browser.ts';
import { until } from './sync.ts';

export type Device = { readonly h: Harness; readonly options: Page; readonly agent: Page; readonly name: string; readonly profile: string };
type Res<T> = { ok: boolean; result: T; error: { code: string; message: string } };

/** An RPC from the device's options page; its error thrown, naming the device. */
export async function call<T>(d: Device, method: string, params?: unknown): Promise<T> {
  const r = await rpc<Res<T>>(d.options, method, params);
  if (!r.ok) throw new Error(`${d.name} ${method}: ${r.error.code} ${r.error.message}`);
  return r.result;
}

/** A profile with a new vault of its own (not synced). */
export async function soloDevice(name: string, passphrase: string): Promise<Device> {
  const profile = newProfileDir(`team-${name}-`);
  const h = await launch({ profile });
  const options = await h.open(OPTIONS);
  const agent = await h.context.newPage();
  const d = { h, options, agent, name, profile };
  await call(d, 'vault.create', { passphrase, kdf: 'pbkdf2-sha256' });
  await call(d, 'settings.set', { requestsPerMinute: 100_000 });
  return d;
}

/**
 * Profiles named `names`, one synced vault; device i talks to `serverOf(i)`. Each device is added
 * to `devices` as soon as it is launched, so the caller closes what was made even if this fails.
 */
export async function formTeam(
  names: readonly string[],
  serverOf: (i: number) => string,
  passphrase: string,
  devices: Device[] = [],
): Promise<Device[]> {
  for (const name of names) devices.push(await soloDevice(name, passphrase));
  const [first, ...others] = devices as [Device, ...Device[]];
  await call(first, 'sync.enable', { server: serverOf(0), deviceName: first.name });
  for (const [i, d] of others.entries()) {
    await call(d, 'sync.join', { server: serverOf(i + 1), deviceName: d.name });
    const code = (await call<SyncStatus>(d, 'sync.status')).device?.pairingCode as string;
    await call(first, 'sync.approve', { code });
    await until(async () => (await call<SyncStatus>(d, 'sync.now')).vault !== undefined);
  }
  return devices;
}

/** Pushes from `from` and syncs the others until each holds every secret named. */
export async function spread(from: Device, others: readonly Device[], names: readonly string[]): Promise<void> {
  await call(from, 'sync.now');
  for (const d of others)
    await until(async () => {
      await call(d, 'sync.now');
      const held = new Set((await call<{ secrets: SecretSummary[] }>(d, 'secrets.list')).secrets.map((s) => s.name));
      return names.every((n) => held.has(n));
    }, 60_000);
}
