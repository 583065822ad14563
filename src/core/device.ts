/**
 * A device's two key pairs: ECDSA P-256 signs its log entries and logins, ECDH P-256 receives
 * vault keys wrapped to it (core/share.ts). Its id is the hash of both public keys (core/log.ts).
 * Private keys are non-extractable unless the caller must wrap them once for storage.
 */
import { toBase64 } from './bytes.ts';
import { type DevicePublic, deviceId } from './log.ts';

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
