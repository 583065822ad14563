/**
 * How a sealed secret travels to the distant vault: one blob holding its three records
 * (core/vault/secrets.ts). The blob is addressed by its SHA-256, which the signed log entry names;
 * the records inside are bound by their associated data to vault, item, version and epoch,
 * so a blob served under another item's entry neither matches the hash nor decrypts.
 */
import { fromBase64, fromUtf8, toBase64, utf8 } from '../bytes.ts';
import { CoreError } from '../errors.ts';
import type { StoredSecret } from '../vault/secrets.ts';

const FORMAT = 'keyhole-item/1';

export function encodeItemBlob(s: StoredSecret): Uint8Array<ArrayBuffer> {
  return utf8(
    JSON.stringify({
      f: FORMAT,
      id: s.id,
      version: s.version,
      epoch: s.epoch,
      meta: toBase64(s.meta),
      key: toBase64(s.key),
      value: toBase64(s.value),
    }),
  );
}

/** The stored secret in a blob, which must be item `item`; CoreError 'bad-record' otherwise. */
export function decodeItemBlob(bytes: Uint8Array, item: string): StoredSecret {
  let x: Record<string, unknown>;
  try {
    x = JSON.parse(fromUtf8(bytes)) as Record<string, unknown>;
  } catch {
    throw new CoreError('bad-record', 'item blob does not parse', item);
  }
  const { f, id, version, epoch, meta, key, value } = x;
  if (f !== FORMAT || id !== item || typeof version !== 'number' || typeof epoch !== 'number') {
    throw new CoreError('bad-record', 'item blob is not this item', item);
  }
  if (typeof meta !== 'string' || typeof key !== 'string' || typeof value !== 'string')
    throw new CoreError('bad-record', 'item blob malformed', item);
  try {
    return { id, version, epoch, meta: fromBase64(meta), key: fromBase64(key), value: fromBase64(value) };
  } catch {
    throw new CoreError('bad-record', 'item blob malformed', item);
  }
}
