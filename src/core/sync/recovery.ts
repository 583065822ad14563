/**
 * The recovery key (docs/sync.md): 160 random bits the person writes down when a vault starts
 * syncing, shown once. It stands for a member device of its own ("recovery key") whose private
 * keys the distant vault keeps sealed under a key derived from it, filed under a lookup id
 * derived from it too. With the recovery key alone, a new device fetches that sealed device,
 * opens it, and as that member adds itself: no existing device needs to be at hand.
 * The server sees a hash and ciphertext, never the key.
 */
import { fromBase64, fromUtf8, toBase64, toHex, utf8 } from '../bytes.ts';
import type { SealedDevice } from '../crypto/device.ts';
import { CoreError } from '../errors.ts';
import { checkDevice } from './log.ts';

export const RECOVERY_BYTES = 20;
const ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789'; // no 0/O, 1/I/L: easy to read and type
const PREFIX = 'KH1';

export function newRecoverySecret(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(RECOVERY_BYTES));
}

/** "KH1-" and the secret in a 31-letter alphabet, in groups of five. */
export function formatRecoveryKey(secret: Uint8Array): string {
  let n = 0n;
  for (const b of secret) n = (n << 8n) | BigInt(b);
  let s = '';
  const base = BigInt(ALPHABET.length);
  for (let i = 0; i < 33; i++) {
    s = ALPHABET[Number(n % base)] + s;
    n /= base;
  }
  return `${PREFIX}-${(s.match(/.{1,5}/g) ?? []).join('-')}`;
}

/** The secret a typed recovery key stands for, or null (spaces, dashes and case do not matter). */
export function parseRecoveryKey(text: string): Uint8Array<ArrayBuffer> | null {
  const t = text.toUpperCase().replace(/[\s-]/g, '');
  if (!t.startsWith(PREFIX) || t.length !== PREFIX.length + 33) return null;
  let n = 0n;
  const base = BigInt(ALPHABET.length);
  for (const c of t.slice(PREFIX.length)) {
    const d = ALPHABET.indexOf(c);
    if (d < 0) return null;
    n = n * base + BigInt(d);
  }
  if (n >> BigInt(RECOVERY_BYTES * 8) !== 0n) return null;
  const out = new Uint8Array(RECOVERY_BYTES);
  for (let i = RECOVERY_BYTES - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

async function hkdf(secret: Uint8Array<ArrayBuffer>, purpose: string) {
  const base = await crypto.subtle.importKey('raw', secret, 'HKDF', false, ['deriveBits', 'deriveKey']);
  return { base, params: { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info: utf8(`keyhole/v1/recovery/${purpose}`) } };
}

/** Where the server files the sealed recovery device: a hash of the secret, nothing more. */
export async function recoveryLookup(secret: Uint8Array<ArrayBuffer>): Promise<string> {
  const { base, params } = await hkdf(secret, 'lookup');
  return toHex(new Uint8Array(await crypto.subtle.deriveBits(params, base, 256)));
}

/** The key the recovery device's private keys are wrapped under. */
export async function recoverySealKey(secret: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  const { base, params } = await hkdf(secret, 'seal');
  return crypto.subtle.deriveKey(params, base, { name: 'AES-GCM', length: 256 }, false, ['wrapKey', 'unwrapKey']);
}

/** The sealed recovery device as the server keeps it (bytes of JSON). */
export function encodeSealedDevice(d: SealedDevice): Uint8Array<ArrayBuffer> {
  return utf8(JSON.stringify({ public: d.public, sign: toBase64(d.sign), ecdh: toBase64(d.ecdh) }));
}

export function decodeSealedDevice(bytes: Uint8Array): SealedDevice {
  try {
    const x = JSON.parse(fromUtf8(bytes)) as { public: unknown; sign: string; ecdh: string };
    return { public: checkDevice(x.public), sign: fromBase64(x.sign), ecdh: fromBase64(x.ecdh) };
  } catch {
    throw new CoreError('bad-record', 'sealed device malformed');
  }
}
