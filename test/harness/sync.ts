/** Devices, sealed items and edits for the sync tests: the real client and core code, obvious fake values. */

import type { Replica } from '../../src/background/sync/replica.ts';
import type { Pending } from '../../src/background/sync/vault-client.ts';
import { VaultClient } from '../../src/background/sync/vault-client.ts';
import { newDevice } from '../../src/core/crypto/device.ts';
import { deriveVaultKeys, newRootBytes, type VaultKeys } from '../../src/core/crypto/keys.ts';
import { decodeItemBlob, encodeItemBlob } from '../../src/core/sync/item-blob.ts';
import { blobHash, type EntryBody } from '../../src/core/sync/log.ts';
import { signLogin } from '../../src/core/sync/login.ts';
import { openSecretValue, sealSecret } from '../../src/core/vault/secrets.ts';

export async function device(origin: string, name: string, opts: { fetch?: typeof fetch } = {}): Promise<VaultClient> {
  const c = new VaultClient(origin, await newDevice(name), opts);
  await c.register();
  return c;
}

/** The vault keys every member device holds (wrapping them to each device is core/crypto/share.ts's job). */
export async function vaultKeys(vault: string): Promise<VaultKeys> {
  return deriveVaultKeys(newRootBytes(), vault);
}

const rule = { hosts: ['api.example.test'], pathPrefixes: [], methods: [], header: 'Authorization', template: 'Bearer {value}' };

export async function putItem(keys: VaultKeys, r: Replica, item: string, value: string, version = 1): Promise<Pending> {
  const stored = await sealSecret(
    keys,
    { vaultId: r.vault, id: item, version, epoch: 1 },
    { name: item, rule, notes: '', createdAt: 1, updatedAt: 1 },
    value,
  );
  const blob = encodeItemBlob(stored);
  const body: EntryBody = { type: 'item.put', item, blob: blobHash(blob), parents: r.heads(item).map((h) => h.entry) };
  return { body, blob };
}

/** Every current version of an item, decrypted (more than one = a conflict). */
export async function values(keys: VaultKeys, r: Replica, item: string): Promise<string[]> {
  const out: string[] = [];
  for (const h of r.heads(item)) {
    const b = r.blob(h.blob);
    if (b === undefined) throw new Error(`blob missing for ${item}`);
    out.push(await openSecretValue(keys, r.vault, decodeItemBlob(b, item)));
  }
  return out.sort();
}

/** A JSON POST to the distant vault, with a session token if given. */
export const post = (origin: string, path: string, body: unknown, token?: string) =>
  fetch(`${origin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });

/** A session token by the real challenge login, for tests that speak raw HTTP. */
export async function login(origin: string, c: VaultClient): Promise<string> {
  const id = c.device.public.id;
  const { nonce } = (await (await post(origin, '/v1/auth/challenge', { device: id })).json()) as { nonce: string };
  const time = Date.now();
  const sig = await signLogin({ origin, device: id, nonce, time }, c.device.sign);
  return ((await (await post(origin, '/v1/auth/login', { device: id, nonce, time, sig })).json()) as { token: string }).token;
}

export async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Polls `cond` (which may ask a browser or a server) every 250 ms until it holds; `what` names it in the timeout. */
export async function until(cond: () => Promise<boolean>, ms = 20_000, what = 'a condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
