/**
 * The distant vault's key provider (issue 15): where the engine key, the master keys that wrap
 * engine records' data keys, and the JWT signing keys live. One small interface, two providers:
 * `file` (a key file, mode 0600, the embedded default) and `pkcs11` (an HSM; SoftHSM2 in tests),
 * where no private or master key ever leaves the token.
 *
 * Master keys have ids (`mk-` + 16 hex) and rotate: a new one becomes current, the old ones stay
 * to unwrap until every data key is re-wrapped under the current one, then are retired.
 */

export type KeyProviderKind = 'file' | 'pkcs11';

/** A data key wrapped under a master key: AES-256-GCM with associated data, `wrapped` = ciphertext || tag. */
export type WrappedKey = { readonly keyId: string; readonly iv: string; readonly wrapped: string };

export type KmsErrorCode =
  | 'no-key-file' // the key file is missing (and was not to be created)
  | 'bad-key-file' // the key file does not parse, or is readable by others
  | 'token-missing' // no PKCS#11 token with that label
  | 'wrong-pin' // the token refused the PIN
  | 'no-library' // the PKCS#11 library does not load
  | 'unknown-key' // no master or signing key with that id
  | 'unwrap-failed' // a wrapped key that does not open: another key, changed associated data, tampered
  | 'bad-public-key' // a peer key that is not a P-256 public key (SPKI)
  | 'not-initialised'; // the provider has no keys yet: `kms init`

const MESSAGES: Record<KmsErrorCode, string> = {
  'no-key-file': 'the key file does not exist: run `npm run server -- kms init` first',
  'bad-key-file': 'the key file is not a Keyhole key file, or others may read it (it must be mode 0600)',
  'token-missing': 'no PKCS#11 token with this label is present',
  'wrong-pin': 'the PKCS#11 token refused the PIN',
  'no-library': 'the PKCS#11 library could not be loaded',
  'unknown-key': 'no key with this id in the key provider',
  'bad-public-key': 'not a P-256 public key in SPKI form',
  'unwrap-failed': 'a wrapped key does not open under its master key (another key, other associated data, or tampered)',
  'not-initialised': 'the key provider has no keys yet: run `npm run server -- kms init` first',
};

/** The key provider's typed error: a fixed message per code, never a key or a PIN. */
export class KmsError extends Error {
  override readonly name = 'KmsError';
  constructor(
    readonly code: KmsErrorCode,
    detail?: string,
  ) {
    super(detail ? `${MESSAGES[code]} (${detail})` : MESSAGES[code]);
  }
}

export type KeyProviderStatus = {
  readonly kind: KeyProviderKind;
  readonly masterKey: string;
  readonly previousMasterKeys: readonly string[];
  /** the engine key's public half (SPKI, base64) and its fingerprint (SHA-256 hex, grouped) to compare */
  readonly engineKey: string;
  readonly engineFingerprint: string;
  readonly signingKeys: readonly string[];
};

export interface KeyProvider {
  readonly kind: KeyProviderKind;
  /** creates what is missing (a master key, the engine key); idempotent */
  init(): Promise<void>;
  status(): Promise<KeyProviderStatus>;

  /** Wraps a data key under the current master key. */
  wrapDataKey(dataKey: Uint8Array, aad: Uint8Array): Promise<WrappedKey>;
  /** Unwraps with the master key the wrap names (current or previous). */
  unwrapDataKey(w: WrappedKey, aad: Uint8Array): Promise<Uint8Array>;
  /** A new master key becomes current; returns its id. The old one stays until retired. */
  rotateMasterKey(): Promise<string>;
  /** Destroys a previous master key (once nothing is wrapped under it). */
  retireMasterKey(id: string): Promise<void>;

  /** The engine key's public half, SPKI DER. */
  enginePublicKey(): Promise<Uint8Array>;
  /** ECDH P-256 of the engine key with a peer's public key (SPKI DER): the raw shared secret (x). */
  engineAgree(peerSpki: Uint8Array): Promise<Uint8Array>;

  /** A new ES256 signing key; its key id. */
  createSigningKey(): Promise<string>;
  /** Its public key as a JWK (kty EC, crv P-256, x, y). */
  signingPublicKey(kid: string): Promise<JsonWebKey>;
  /** ES256: ECDSA P-256 over SHA-256(data), raw r || s (64 bytes), exactly as JOSE wants it. */
  sign(kid: string, data: Uint8Array): Promise<Uint8Array>;
  deleteSigningKey(kid: string): Promise<void>;

  close(): Promise<void>;
}

/** `mk-` + 16 hex: a master key's id. */
export const masterKeyId = (bytes: Uint8Array): string => `mk-${Buffer.from(bytes.subarray(0, 8)).toString('hex')}`;
