/**
 * Encrypted backups (core/vault/backup.ts) from the vault and back into one: written after the
 * vault's passphrase is checked again, under a passphrase the person types for the backup; read
 * back all or none (VaultService.importSecrets), into a new profile or beside what a vault has.
 */
import { MIN_PASSPHRASE_LENGTH, type SecretInput } from '../../core/api.ts';
import { decodeMaterial, isMinted } from '../../core/credentials/kinds.ts';
import { type BackupEntry, openBackup, sealBackup } from '../../core/vault/backup.ts';
import type { SecretMeta } from '../../core/vault/secrets.ts';
import { RpcError } from '../errors.ts';
import type { VaultService } from './vault-service.ts';

/** What a backup keeps of a secret: what createSecret needs to make it again, current value only. */
function entryOf(meta: SecretMeta, value: string): BackupEntry {
  const { name, rule, notes, kind, aws, distant, expiresAt } = meta;
  // the device that spends a refresh token is the one that restores it, not this one
  const oauth2 = meta.oauth2 ? { ...meta.oauth2, refresher: undefined } : undefined;
  const secret = isMinted(kind) ? { material: decodeMaterial(value) } : { value };
  // through JSON: the undefined fields go
  return JSON.parse(JSON.stringify({ name, rule, notes, kind, oauth2, aws, distant, expiresAt, ...secret }));
}

export async function exportBackup(
  vault: VaultService,
  passphrase: string,
  backupPassphrase: string,
  now: number,
): Promise<{ text: string; count: number; left: number }> {
  if (typeof backupPassphrase !== 'string' || [...backupPassphrase].length < MIN_PASSPHRASE_LENGTH)
    throw new RpcError('weak-passphrase', `a backup passphrase is at least ${MIN_PASSPHRASE_LENGTH} characters`);
  const { secrets, left } = await vault.exportable(passphrase);
  const text = await sealBackup(
    secrets.map((s) => entryOf(s.meta, s.value)),
    backupPassphrase,
    { now },
  );
  return { text, count: secrets.length, left };
}

export async function restoreBackup(
  vault: VaultService,
  text: string,
  backupPassphrase: string,
  progress: (sealed: number, total: number) => void,
): Promise<number> {
  await vault.requireUnlocked(); // before the key derivation, not after
  const entries = await openBackup(text, backupPassphrase);
  return (await vault.importSecrets(entries as unknown as SecretInput[], (n) => progress(n, entries.length))).length;
}
