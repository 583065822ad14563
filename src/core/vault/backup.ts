/**
 * An encrypted backup: the vault's secrets, each as one record (docs/record-format.md, kind 10)
 * under a key derived from a passphrase the person types for the backup alone, in a JSON file.
 *
 *   { "format": "keyhole-backup", "version": 1, "id": <uuid>, "createdAt": <ms>,
 *     "kdf": <encodeKdfParams text>, "items": [<base64 record>, ...] }
 *
 * Record i of n is bound to the backup id, its place `backup:<i>/<n>` and the KDF text: a record
 * moved, dropped, added or put in another backup, or weaker KDF parameters written in, opens none.
 * Each record holds one secret as JSON: what createSecret takes (its current value only).
 */
import { BACKUP_FORMAT } from '../api.ts';
import { fromBase64, fromUtf8, toBase64, utf8, wipe } from '../bytes.ts';
import { checkKdfParams, defaultKdfParams, deriveKek, encodeKdfParams, type KdfAlg, parseKdfParams } from '../crypto/kdf.ts';
import { type RecordContext, RecordKind } from '../crypto/record.ts';
import { openRecord, sealRecord } from '../crypto/seal.ts';
import { CoreError, isCoreError } from '../errors.ts';

export const MAX_BACKUP_ITEMS = 5000;

/** One secret as backed up: the fields of SecretInput it needs to be made again. */
export type BackupEntry = { readonly name: string } & Record<string, unknown>;

type BackupFile = { format: string; version: number; id: string; createdAt: number; kdf: string; items: string[] };

const context = (id: string, kdf: string, i: number, n: number): RecordContext => ({
  kind: RecordKind.backupItem,
  vaultId: id,
  itemId: `backup:${i}/${n}:${kdf}`,
  epoch: 1,
  version: 1,
});

/** The backup file's text for `entries` under `passphrase`. */
export async function sealBackup(
  entries: readonly BackupEntry[],
  passphrase: string,
  opts: { alg?: KdfAlg; now: number },
): Promise<string> {
  if (entries.length > MAX_BACKUP_ITEMS) throw new CoreError('bad-input', `a backup holds at most ${MAX_BACKUP_ITEMS} secrets`);
  const id = crypto.randomUUID();
  const kdf = encodeKdfParams(checkKdfParams(defaultKdfParams(opts.alg)));
  const key = await deriveKek(passphrase, parseKdfParams(kdf));
  const items: string[] = [];
  for (const [i, e] of entries.entries()) {
    const plain = utf8(JSON.stringify(e));
    try {
      items.push(toBase64(await sealRecord(key, context(id, kdf, i, entries.length), plain)));
    } finally {
      wipe(plain);
    }
  }
  const file: BackupFile = { format: BACKUP_FORMAT, version: 1, id, createdAt: opts.now, kdf, items };
  return `${JSON.stringify(file, null, 1)}\n`;
}

/**
 * The entries of a backup file's text, or CoreError: 'bad-input' for a file that is not a
 * backup, 'wrong-passphrase' for another passphrase or a file changed after it was written.
 */
export async function openBackup(text: string, passphrase: string): Promise<BackupEntry[]> {
  const file = parseBackup(text);
  const key = await deriveKek(passphrase, parseKdfParams(file.kdf));
  const out: BackupEntry[] = [];
  for (const [i, b64] of file.items.entries()) {
    let plain: Uint8Array<ArrayBuffer>;
    try {
      plain = await openRecord(key, context(file.id, file.kdf, i, file.items.length), fromBase64(b64));
    } catch (e) {
      if (isCoreError(e, 'decrypt-failed') || e instanceof TypeError || isCoreError(e, 'bad-record'))
        throw i === 0
          ? new CoreError('wrong-passphrase', 'wrong backup passphrase')
          : new CoreError('decrypt-failed', 'the backup file was changed after it was written');
      throw e;
    }
    try {
      const entry = JSON.parse(fromUtf8(plain)) as BackupEntry;
      if (typeof entry !== 'object' || entry === null || typeof entry.name !== 'string')
        throw new CoreError('bad-input', `backup entry ${i + 1} is malformed`);
      out.push(entry);
    } finally {
      wipe(plain);
    }
  }
  return out;
}

function parseBackup(text: string): BackupFile {
  let f: BackupFile;
  try {
    f = JSON.parse(text) as BackupFile;
  } catch {
    throw new CoreError('bad-input', 'the file is not a Keyhole backup (not JSON)');
  }
  if (typeof f !== 'object' || f === null || f.format !== BACKUP_FORMAT)
    throw new CoreError('bad-input', 'the file is not a Keyhole backup');
  if (f.version !== 1) throw new CoreError('unsupported-version', 'this backup was written by a newer Keyhole');
  if (
    typeof f.id !== 'string' ||
    !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(f.id) ||
    typeof f.kdf !== 'string' ||
    !Array.isArray(f.items) ||
    f.items.some((x) => typeof x !== 'string')
  )
    throw new CoreError('bad-input', 'the backup file is malformed');
  if (f.items.length > MAX_BACKUP_ITEMS) throw new CoreError('bad-input', `a backup holds at most ${MAX_BACKUP_ITEMS} secrets`);
  checkKdfParams(parseKdfParams(f.kdf)); // weaker parameters than allowed: refused before any work
  return f;
}
