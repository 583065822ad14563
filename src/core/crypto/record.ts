/**
 * The sealed record, format version 1 (spec: docs/record-format.md).
 *
 *   offset size  field
 *   0      2     magic "KH"
 *   2      1     format version (1)
 *   3      1     kind (RecordKind)
 *   4      4     key epoch, u32 big-endian
 *   8      4     item version, u32 big-endian
 *   12     12    AES-GCM nonce
 *   24     n+16  AES-256-GCM ciphertext and tag
 *
 * Associated data = bytes 0..11 || vault id (16 bytes) || u16 length || item id (UTF-8),
 * so a record cannot move to another vault, item, version, epoch or kind.
 * `parseRecord` and `encodeRecord` are exact inverses.
 */
import { abytes, concat, utf8, uuidToBytes } from '../bytes.ts';
import { CoreError } from '../errors.ts';

export const RECORD_VERSION = 1;
export const HEADER_LENGTH = 12;
export const NONCE_LENGTH = 12;
export const TAG_LENGTH = 16;
const MAGIC0 = 0x4b; // K
const MAGIC1 = 0x48; // H
const MAX_U32 = 0xffff_ffff;
const MAX_ITEM_ID = 1024;

export const RecordKind = {
  /** vault root key under the passphrase KEK */
  rootKek: 1,
  /** vault root key under the session key (chrome.storage.session) */
  rootSession: 2,
  /** item metadata (name, injection rule) under the items key */
  itemMeta: 3,
  /** an item's data key under the items key */
  itemKey: 4,
  /** an item's value under its data key */
  itemValue: 5,
  /** a cached dynamic credential under the credentials key */
  credential: 6,
  /** one of this device's private keys (pkcs8) under the local items key */
  devicePrivate: 7,
  /** a synced vault's key for one epoch under the local items key */
  vaultKey: 8,
  /** vault root key under a passkey's PRF-derived key (core/vault/passkey.ts) */
  rootPasskey: 9,
  /** one secret in an encrypted backup, under the backup passphrase's key (core/vault/backup.ts) */
  backupItem: 10,
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];
const KINDS = new Set<number>(Object.values(RecordKind));

/** Where a record belongs. All of it is authenticated, none of it is secret. */
export type RecordContext = {
  readonly kind: RecordKind;
  readonly vaultId: string;
  readonly itemId: string;
  readonly epoch: number;
  readonly version: number;
};

export type ParsedRecord = {
  readonly kind: RecordKind;
  readonly epoch: number;
  readonly version: number;
  readonly nonce: Uint8Array;
  /** ciphertext followed by the 16-byte tag */
  readonly sealed: Uint8Array;
};

function checkU32(name: string, x: number): void {
  if (!Number.isSafeInteger(x) || x < 0 || x > MAX_U32) throw new CoreError('bad-input', `${name} must be a u32`);
}

export function encodeHeader(kind: RecordKind, epoch: number, version: number): Uint8Array<ArrayBuffer> {
  if (!KINDS.has(kind)) throw new CoreError('bad-input', 'unknown record kind');
  checkU32('epoch', epoch);
  checkU32('version', version);
  const h = new Uint8Array(HEADER_LENGTH);
  const v = new DataView(h.buffer);
  h[0] = MAGIC0;
  h[1] = MAGIC1;
  h[2] = RECORD_VERSION;
  h[3] = kind;
  v.setUint32(4, epoch);
  v.setUint32(8, version);
  return h;
}

export function encodeRecord(r: ParsedRecord): Uint8Array<ArrayBuffer> {
  abytes('nonce', r.nonce, NONCE_LENGTH);
  abytes('sealed', r.sealed);
  if (r.sealed.length < TAG_LENGTH) throw new CoreError('bad-input', 'sealed part shorter than a tag');
  return concat(encodeHeader(r.kind, r.epoch, r.version), r.nonce, r.sealed);
}

/** "Not a record" and "a record we cannot read" are both errors here: callers asked for a record. */
export function parseRecord(bytes: Uint8Array, item?: string): ParsedRecord {
  if (!(bytes instanceof Uint8Array) || bytes.length < HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH) {
    throw new CoreError('bad-record', 'record too short', item);
  }
  if (bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1) throw new CoreError('bad-record', 'not a keyhole record', item);
  if (bytes[2] !== RECORD_VERSION) throw new CoreError('unsupported-version', 'unsupported record version', item);
  const kind = bytes[3] as number;
  if (!KINDS.has(kind)) throw new CoreError('bad-record', 'unknown record kind', item);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    kind: kind as RecordKind,
    epoch: v.getUint32(4),
    version: v.getUint32(8),
    nonce: bytes.slice(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH),
    sealed: bytes.slice(HEADER_LENGTH + NONCE_LENGTH),
  };
}

export function associatedData(ctx: RecordContext): Uint8Array<ArrayBuffer> {
  const id = utf8(ctx.itemId);
  if (id.length === 0 || id.length > MAX_ITEM_ID) throw new CoreError('bad-input', 'item id length out of range');
  const len = new Uint8Array(2);
  new DataView(len.buffer).setUint16(0, id.length);
  return concat(encodeHeader(ctx.kind, ctx.epoch, ctx.version), uuidToBytes(ctx.vaultId), len, id);
}
