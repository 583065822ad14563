/** Devices, sealed items and edits for the sync tests: the real client and core code, obvious fake values. */

import type { Replica } from '../../src/background/replica.ts';
import type { Pending } from '../../src/background/vault-client.ts';
import { VaultClient } from '../../src/background/vault-client.ts';
import { newDevice } from '../../src/core/device.ts';
import { decodeItemBlob, encodeItemBlob } from '../../src/core/item-blob.ts';
import { deriveVaultKeys, newRootBytes, type VaultKeys } from '../../src/core/keys.ts';
import { blobHash, type EntryBody } from '../../src/core/log.ts';
import { openSecretValue, sealSecret } from '../../src/core/secrets.ts';

export async function device(origin: string, name: string, opts: { fetch?: typeof fetch } = {}): Promise<VaultClient> {
  const c = new VaultClient(origin, await newDevice(name), opts);
  await c.register();
  return c;
}

/** The vault keys every member device holds (wrapping them to each device is core/share.ts's job). */
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
