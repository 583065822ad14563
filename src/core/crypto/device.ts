/**
 * A device's two key pairs: ECDSA P-256 signs its log entries and logins, ECDH P-256 receives
 * vault keys wrapped to it (core/crypto/share.ts). Its id is the hash of both public keys (core/sync/log.ts).
 * Private keys are non-extractable unless the caller must wrap them once for storage.
 */
import { toBase64 } from '../bytes.ts';
import { type DevicePublic, deviceId } from '../sync/log.ts';
import { type RecordContext, RecordKind } from './record.ts';
import { type KeyShape, unwrapKeyRecord, wrapKeyRecord } from './seal.ts';

export type DeviceKeys = {
  readonly public: DevicePublic;
  /** ECDSA P-256 private key */
  readonly sign: CryptoKey;
  /** ECDH P-256 private key */
  readonly ecdh: CryptoKey;
};

const spki = async (k: CryptoKey) => new Uint8Array(await crypto.subtle.exportKey('spki', k));

export async function newDevice(name: string, opts: { extractable?: boolean } = {}): Promise<DeviceKeys> {
  const extractable = opts.extractable ?? false;
  const [s, e] = await Promise.all([
    crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, extractable, ['sign', 'verify']) as Promise<CryptoKeyPair>,
    crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, extractable, ['deriveBits']) as Promise<CryptoKeyPair>,
  ]);
  const [signSpki, ecdhSpki] = await Promise.all([spki(s.publicKey), spki(e.publicKey)]);
  return {
    public: { id: deviceId(signSpki, ecdhSpki), name, sign: toBase64(signSpki), ecdh: toBase64(ecdhSpki) },
    sign: s.privateKey,
    ecdh: e.privateKey,
  };
}

/** A device as stored: public keys, and each private key wrapped under the local items key. */
export type SealedDevice = { readonly public: DevicePublic; readonly sign: Uint8Array; readonly ecdh: Uint8Array };

const SIGN: KeyShape = { format: 'pkcs8', alg: { name: 'ECDSA', namedCurve: 'P-256' }, usages: ['sign'] };
const AGREE: KeyShape = { format: 'pkcs8', alg: { name: 'ECDH', namedCurve: 'P-256' }, usages: ['deriveBits'] };
const place = (vaultId: string, d: DevicePublic, which: 'sign' | 'ecdh'): RecordContext => ({
  kind: RecordKind.devicePrivate,
  vaultId,
  itemId: `device:${d.id}:${which}`,
  epoch: 0,
  version: 1,
});

/** Wrap a freshly made (extractable) device for storage. The caller drops `d` afterwards. */
export async function sealDevice(d: DeviceKeys, wrappingKey: CryptoKey, vaultId: string): Promise<SealedDevice> {
  const [sign, ecdh] = await Promise.all([
    wrapKeyRecord(d.sign, wrappingKey, place(vaultId, d.public, 'sign'), 'pkcs8'),
    wrapKeyRecord(d.ecdh, wrappingKey, place(vaultId, d.public, 'ecdh'), 'pkcs8'),
  ]);
  return { public: d.public, sign, ecdh };
}

/** The device's keys, non-extractable, or CoreError 'decrypt-failed' under any other key or place. */
export async function openDevice(s: SealedDevice, wrappingKey: CryptoKey, vaultId: string): Promise<DeviceKeys> {
  const [sign, ecdh] = await Promise.all([
    unwrapKeyRecord(wrappingKey, place(vaultId, s.public, 'sign'), s.sign, SIGN),
    unwrapKeyRecord(wrappingKey, place(vaultId, s.public, 'ecdh'), s.ecdh, AGREE),
  ]);
  return { public: s.public, sign, ecdh };
}

/** What a person reads out to pair this device: the first 80 bits of its id, in five groups. */
export function pairingCode(d: DevicePublic): string {
  return (d.id.slice(0, 20).match(/.{4}/g) ?? []).join('-').toUpperCase();
}

/** A typed pairing code as the id prefix it stands for, or null if it is not one. */
export function parsePairingCode(code: string): string | null {
  const hex = code.replace(/[\s-]/g, '').toLowerCase();
  return /^[0-9a-f]{20}$/.test(hex) ? hex : null;
}
