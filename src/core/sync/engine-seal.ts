/**
 * An engine's root credential, sealed by an admin's device to the distant vault's engine key (an
 * `engine.config` entry's `sealed`), the way core/crypto/share.ts seals a vault key to a member:
 *
 *   byte 0       format (1)
 *   1..65        ephemeral ECDH P-256 public key, raw uncompressed
 *   66..77       AES-GCM nonce
 *   78..         the credential (JSON), AES-256-GCM sealed (with its tag)
 *
 * key = HKDF-SHA-256(ECDH(ephemeral, engine key), salt = ephemeral public key,
 *                    info = "keyhole/v1/engine-root\n" || canonical({vault, engine, kind, engineKey}))
 * and the same info is the associated data: it opens only with that engine key (named by the
 * SHA-256 of its SPKI), as that vault's engine of that name and kind. The server opens it through
 * its key provider's ECDH (the engine's private key may be on an HSM), so `open` takes the
 * agreement as a function. Nothing here touches a vault key: the server may import it.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, fromBase64, randomBytes, toBase64, toHex, utf8 } from '../bytes.ts';
import { canonicalJson } from '../canonical.ts';
import { CoreError } from '../errors.ts';
import { fingerprint } from './log.ts';

const FORMAT = 1;
const POINT = 65;
const NONCE = 12;
const ECDH: EcKeyImportParams = { name: 'ECDH', namedCurve: 'P-256' };
/** the DER prefix of a P-256 SubjectPublicKeyInfo, before its uncompressed point */
export const P256_SPKI_PREFIX = fromBase64('MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgA=');

/**
 * The engine key's fingerprint, as `kms status` prints it and an admin compares it before pinning
 * the key: its SHA-256, the first 20 bytes in groups of four (log.ts `fingerprint`).
 */
export const engineKeyFingerprint = (spki: Uint8Array): string => fingerprint(toHex(sha256(spki)));
export const MAX_ROOT_CREDENTIAL = 8 * 1024;

export type EnginePlace = { readonly vault: string; readonly engine: string; readonly kind: string };

const infoOf = (p: EnginePlace, engineSpki: Uint8Array) =>
  utf8(
    `keyhole/v1/engine-root\n${canonicalJson({ vault: p.vault, engine: p.engine, kind: p.kind, engineKey: toHex(sha256(engineSpki)) })}`,
  );

async function aesKey(shared: ArrayBuffer | Uint8Array, salt: Uint8Array, info: Uint8Array, usage: KeyUsage): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey('raw', shared as Uint8Array<ArrayBuffer>, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: salt as Uint8Array<ArrayBuffer>, info: info as Uint8Array<ArrayBuffer> },
    ikm,
    { name: 'AES-GCM', length: 256 },
    false,
    [usage],
  );
}

/** Seals `credential` to the engine key (SPKI, base64) the log pins. */
export async function sealToEngine(engineKey: string, credential: Uint8Array, place: EnginePlace): Promise<string> {
  if (credential.length > MAX_ROOT_CREDENTIAL) throw new CoreError('bad-input', 'the root credential is too large');
  const spki = fromBase64(engineKey);
  const recipient = await crypto.subtle.importKey('spki', spki, ECDH, false, []);
  const eph = (await crypto.subtle.generateKey(ECDH, false, ['deriveBits'])) as CryptoKeyPair;
  const ephPublic = new Uint8Array(await crypto.subtle.exportKey('raw', eph.publicKey));
  const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: recipient }, eph.privateKey, 256);
  const info = infoOf(place, spki);
  const k = await aesKey(shared, ephPublic, info, 'encrypt');
  const nonce = randomBytes(NONCE);
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: nonce, additionalData: info as Uint8Array<ArrayBuffer> },
      k,
      credential as Uint8Array<ArrayBuffer>,
    ),
  );
  return toBase64(concat(new Uint8Array([FORMAT]), ephPublic, nonce, sealed));
}

/**
 * Opens a sealed root credential with the engine key's agreement (`agree(peerSpki)` returns the
 * raw ECDH secret); CoreError 'decrypt-failed' for another key, vault, engine or kind, or tampering.
 */
export async function openFromEngine(
  sealed: string,
  engineKey: string,
  agree: (peerSpki: Uint8Array) => Promise<Uint8Array>,
  place: EnginePlace,
): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(sealed);
  } catch {
    throw new CoreError('bad-record', 'sealed credential is not base64');
  }
  if (bytes.length < 1 + POINT + NONCE + 16 || bytes[0] !== FORMAT) throw new CoreError('bad-record', 'sealed credential malformed');
  const ephPublic = bytes.slice(1, 1 + POINT);
  const nonce = bytes.slice(1 + POINT, 1 + POINT + NONCE);
  const info = infoOf(place, fromBase64(engineKey));
  try {
    const shared = await agree(concat(P256_SPKI_PREFIX, ephPublic));
    const k = await aesKey(shared, ephPublic, info, 'decrypt');
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: nonce, additionalData: info as Uint8Array<ArrayBuffer> },
        k,
        bytes.slice(1 + POINT + NONCE),
      ),
    );
  } catch {
    throw new CoreError('decrypt-failed', 'the root credential does not open for this engine key, vault, engine and kind');
  }
}
