/**
 * A vault with engines, as the engine tests and the bench set one up: an admin device creates the
 * vault on a distant vault, adds members, pins the engine key and writes the engines' entries,
 * which are made knowing the vault id (a root credential is sealed to the engine key for that
 * vault, engine and kind).
 */
import type { Replica } from '../../src/background/sync/replica.ts';
import type { VaultClient } from '../../src/background/sync/vault-client.ts';
import { utf8 } from '../../src/core/bytes.ts';
import { sealToEngine } from '../../src/core/sync/engine-seal.ts';
import type { EngineKind, EntryBody } from '../../src/core/sync/log.ts';
import { device } from './sync.ts';

export async function engineVault(
  origin: string,
  engineKey: string,
  entries: (vault: string) => Promise<EntryBody[]> | EntryBody[],
  members: readonly VaultClient[] = [],
): Promise<{ admin: VaultClient; replica: Replica; vault: string }> {
  const admin = await device(origin, 'admin');
  const replica = await admin.createVault();
  const bodies: EntryBody[] = [
    ...members.map((m): EntryBody => ({ type: 'member.add', device: m.device.public })),
    { type: 'engine.key', spki: engineKey },
    ...(await entries(replica.vault)),
  ];
  await admin.push(
    replica,
    bodies.map((body) => ({ body })),
  );
  return { admin, replica, vault: replica.vault };
}

/** A root credential sealed on the admin's side to the engine key, for one vault's engine. */
export const sealRoot = (engineKey: string, vault: string, engine: string, kind: EngineKind, root: unknown): Promise<string> =>
  sealToEngine(engineKey, utf8(JSON.stringify(root)), { vault, engine, kind });
