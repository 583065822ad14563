/**
 * How a sealed secret travels to the distant vault: one blob holding its three records
 * (core/vault/secrets.ts). The blob is addressed by its SHA-256, which the signed log entry names;
 * the records inside are bound by their associated data to vault, item, version and epoch,
 * so a blob served under another item's entry neither matches the hash nor decrypts.
 */
import { fromBase64, fromUtf8, toBase64, utf8 } from '../bytes.ts';
import { CoreError } from '../errors.ts';
import type { StoredSecret, StoredValue } from '../vault/secrets.ts';

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
      // staged and previous values travel with it (absent: none); destroyed ones do not
      ...(s.others?.length
        ? {
            others: s.others.map((o) => ({
              n: o.n,
              ...(o.destroyAt !== undefined ? { destroyAt: o.destroyAt } : {}),
              key: toBase64(o.key),
              value: toBase64(o.value),
            })),
          }
        : {}),
      ...(s.expiresAt !== undefined ? { expiresAt: s.expiresAt } : {}),
    }),
  );
}

function othersOf(raw: unknown, item: string): StoredValue[] | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw) || raw.length > 64) throw new CoreError('bad-record', 'item blob malformed', item);
  return raw.map((o: Record<string, unknown>) => {
    const ok =
      typeof o === 'object' &&
      o !== null &&
      Number.isSafeInteger(o.n) &&
      typeof o.key === 'string' &&
      typeof o.value === 'string' &&
      (o.destroyAt === undefined || Number.isSafeInteger(o.destroyAt));
    if (!ok) throw new CoreError('bad-record', 'item blob malformed', item);
    return {
      n: o.n as number,
      ...(o.destroyAt !== undefined ? { destroyAt: o.destroyAt as number } : {}),
      key: fromBase64(o.key as string),
      value: fromBase64(o.value as string),
    };
  });
}

/** The stored secret in a blob, which must be item `item`; CoreError 'bad-record' otherwise. */
export function decodeItemBlob(bytes: Uint8Array, item: string): StoredSecret {
  let x: Record<string, unknown>;
  try {
    x = JSON.parse(fromUtf8(bytes)) as Record<string, unknown>;
  } catch {
    throw new CoreError('bad-record', 'item blob does not parse', item);
  }
  const { f, id, version, epoch, meta, key, value, expiresAt } = x;
  if (f !== FORMAT || id !== item || typeof version !== 'number' || typeof epoch !== 'number') {
    throw new CoreError('bad-record', 'item blob is not this item', item);
  }
  if (typeof meta !== 'string' || typeof key !== 'string' || typeof value !== 'string')
    throw new CoreError('bad-record', 'item blob malformed', item);
  if (expiresAt !== undefined && !Number.isSafeInteger(expiresAt)) throw new CoreError('bad-record', 'item blob malformed', item);
  try {
    const others = othersOf(x.others, item);
    return {
      id,
      version,
      epoch,
      meta: fromBase64(meta),
      key: fromBase64(key),
      value: fromBase64(value),
      ...(others ? { others } : {}),
      ...(expiresAt !== undefined ? { expiresAt: expiresAt as number } : {}),
    };
  } catch (e) {
    if (e instanceof CoreError) throw e;
    throw new CoreError('bad-record', 'item blob malformed', item);
  }
}
