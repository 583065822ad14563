/**
 * Passphrase -> key-encryption key (KEK).
 *
 * Argon2id (RFC 9106) is the default, at the RFC's second recommended option (§4: m = 64 MiB,
 * t = 3, p = 4), computed by hash-wasm: about 3.5x faster than a pure-JS Argon2 in Chromium,
 * which keeps unlock under the 400 ms goal (docs/decisions.md). PBKDF2-HMAC-SHA-256 through
 * WebCrypto is the option for places without WebAssembly. Parameters live in the vault header,
 * so they can be raised later; bounds stop a tampered header from weakening or exhausting us.
 */
import { argon2id } from 'hash-wasm';
import { abytes, fromBase64, toBase64, utf8, wipe } from '../bytes.ts';
import { CoreError } from '../errors.ts';
import { importKek } from './keys.ts';

export type Argon2idParams = {
  readonly alg: 'argon2id';
  /** memory in KiB */
  readonly m: number;
  readonly t: number;
  readonly p: number;
  readonly salt: Uint8Array;
};

export type Pbkdf2Params = {
  readonly alg: 'pbkdf2-sha256';
  readonly iterations: number;
  readonly salt: Uint8Array;
};

export type KdfParams = Argon2idParams | Pbkdf2Params;
export type KdfAlg = KdfParams['alg'];

export const KEK_LENGTH = 32;
export const SALT_LENGTH = 16;

export const ARGON2ID_DEFAULT = { m: 64 * 1024, t: 3, p: 4 } as const;
export const PBKDF2_DEFAULT_ITERATIONS = 600_000;

// Floors follow OWASP's password storage guidance; ceilings keep a hostile header from
// asking for gigabytes or minutes.
const LIMITS = {
  argon2id: { mMin: 19 * 1024, mMax: 1024 * 1024, tMin: 2, tMax: 16, pMin: 1, pMax: 16 },
  pbkdf2: { min: 600_000, max: 10_000_000 },
} as const;

export function defaultKdfParams(alg: KdfAlg = 'argon2id', salt = crypto.getRandomValues(new Uint8Array(SALT_LENGTH))): KdfParams {
  return alg === 'argon2id' ? { alg, ...ARGON2ID_DEFAULT, salt } : { alg: 'pbkdf2-sha256', iterations: PBKDF2_DEFAULT_ITERATIONS, salt };
}

export function checkKdfParams(params: KdfParams): KdfParams {
  const bad = (): never => {
    throw new CoreError('bad-kdf-params', 'kdf parameters out of range');
  };
  if (!(params.salt instanceof Uint8Array) || params.salt.length < 16 || params.salt.length > 64) bad();
  const int = (x: number, lo: number, hi: number) => Number.isSafeInteger(x) && x >= lo && x <= hi;
  if (params.alg === 'argon2id') {
    const l = LIMITS.argon2id;
    if (!int(params.m, l.mMin, l.mMax) || !int(params.t, l.tMin, l.tMax) || !int(params.p, l.pMin, l.pMax)) bad();
    if (params.m < 8 * params.p) bad(); // RFC 9106 §3.1: m >= 8p
  } else if (params.alg === 'pbkdf2-sha256') {
    if (!int(params.iterations, LIMITS.pbkdf2.min, LIMITS.pbkdf2.max)) bad();
  } else {
    bad();
  }
  return params;
}

/**
 * Unicode NFC, so the same passphrase typed through different input methods gives the same
 * bytes (as RFC 8265's OpaqueString profile does).
 */
export function passphraseBytes(passphrase: string): Uint8Array<ArrayBuffer> {
  if (typeof passphrase !== 'string' || passphrase.length === 0) {
    throw new CoreError('bad-input', 'passphrase must be a non-empty string');
  }
  return utf8(passphrase.normalize('NFC'));
}

/**
 * Raw KEK bytes. This is one of the documented steps where key bytes live in JS
 * (docs/key-handling.md): callers import them at once as a non-extractable key and wipe them.
 */
export async function deriveKekBytes(passphrase: string, params: KdfParams): Promise<Uint8Array<ArrayBuffer>> {
  checkKdfParams(params);
  const password = passphraseBytes(passphrase);
  if (params.alg === 'argon2id') {
    const out = await argon2id({
      password,
      salt: params.salt,
      parallelism: params.p,
      iterations: params.t,
      memorySize: params.m,
      hashLength: KEK_LENGTH,
      outputType: 'binary',
    });
    password.fill(0);
    return new Uint8Array(out);
  }
  const base = await crypto.subtle.importKey('raw', password, 'PBKDF2', false, ['deriveBits']);
  password.fill(0);
  const bits = await crypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(params.salt), iterations: params.iterations },
    base,
    KEK_LENGTH * 8,
  );
  return new Uint8Array(bits);
}

/** The KEK for a passphrase, as a non-extractable key; its raw bytes are wiped at once. */
export async function deriveKek(passphrase: string, params: KdfParams): Promise<CryptoKey> {
  const bytes = await deriveKekBytes(passphrase, params);
  try {
    return await importKek(bytes);
  } finally {
    wipe(bytes);
  }
}

/** A stable text form of the parameters, bound into the wrapped root key's associated data. */
export function encodeKdfParams(params: KdfParams): string {
  return params.alg === 'argon2id'
    ? `argon2id$v=19$m=${params.m},t=${params.t},p=${params.p}$${toBase64(params.salt)}`
    : `pbkdf2-sha256$i=${params.iterations}$${toBase64(params.salt)}`;
}

export function parseKdfParams(s: string): KdfParams {
  const bad = (): never => {
    throw new CoreError('bad-kdf-params', 'kdf parameters do not parse');
  };
  const a = /^argon2id\$v=19\$m=(\d{1,8}),t=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/=]{1,128})$/.exec(s);
  if (a) {
    const salt = fromBase64(a[4] ?? bad());
    abytes('salt', salt);
    return checkKdfParams({ alg: 'argon2id', m: Number(a[1]), t: Number(a[2]), p: Number(a[3]), salt });
  }
  const b = /^pbkdf2-sha256\$i=(\d{1,9})\$([A-Za-z0-9+/=]{1,128})$/.exec(s);
  if (b) return checkKdfParams({ alg: 'pbkdf2-sha256', iterations: Number(b[1]), salt: fromBase64(b[2] ?? bad()) });
  return bad();
}
