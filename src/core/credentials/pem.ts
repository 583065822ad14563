/**
 * Private keys a person pastes as PEM, imported as non-extractable WebCrypto signing keys.
 * Accepted: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or EC P-256), PKCS#1 (`BEGIN RSA PRIVATE KEY`, as
 * GitHub hands out App keys) and SEC1 (`BEGIN EC PRIVATE KEY`), the last two wrapped into PKCS#8
 * here because WebCrypto imports only PKCS#8 (RFC 5208 §5). Refused with a typed error: an
 * encrypted PEM, a public key or certificate, RSA under 2048 bits, anything else.
 */
import { concat, fromBase64 } from '../bytes.ts';
import { CredentialError } from './errors.ts';

export type SigningAlg = 'RS256' | 'ES256';
export type SigningKey = { readonly key: CryptoKey; readonly alg: SigningAlg };

// DER object identifiers, encoded (tag, length, value)
const OID_RSA = Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01); // 1.2.840.113549.1.1.1
const OID_EC = Uint8Array.of(0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01); // 1.2.840.10045.2.1
const OID_P256 = Uint8Array.of(0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07); // 1.2.840.10045.3.1.7
const NULL = Uint8Array.of(0x05, 0x00);
const VERSION_0 = Uint8Array.of(0x02, 0x01, 0x00);

/** A DER TLV with a definite length. */
function tlv(tag: number, value: Uint8Array): Uint8Array {
  const n = value.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return concat(Uint8Array.of(tag, ...len), value);
}

/** The value of the DER element at `at` and where it ends; a malformed element is a bad key. */
function read(der: Uint8Array, at: number): { tag: number; start: number; end: number } {
  const tag = der[at];
  let len = der[at + 1];
  if (tag === undefined || len === undefined) throw new CredentialError('bad-key');
  let start = at + 2;
  if (len & 0x80) {
    const bytes = len & 0x7f;
    if (bytes === 0 || bytes > 3) throw new CredentialError('bad-key');
    len = 0;
    for (let i = 0; i < bytes; i++) len = (len << 8) | (der[start + i] ?? 0);
    start += bytes;
  }
  if (start + len > der.length) throw new CredentialError('bad-key');
  return { tag, start, end: start + len };
}

const startsWith = (der: Uint8Array, at: number, prefix: Uint8Array) => prefix.every((b, i) => der[at + i] === b);

/** Which key a PKCS#8 PrivateKeyInfo holds, from its AlgorithmIdentifier. */
function pkcs8Alg(der: Uint8Array): SigningAlg {
  const outer = read(der, 0);
  const version = read(der, outer.start);
  const algId = read(der, version.end);
  if (outer.tag !== 0x30 || version.tag !== 0x02 || algId.tag !== 0x30) throw new CredentialError('bad-key');
  if (startsWith(der, algId.start, OID_RSA)) return 'RS256';
  if (startsWith(der, algId.start, OID_EC)) {
    if (!startsWith(der, algId.start + OID_EC.length, OID_P256)) throw new CredentialError('bad-key'); // only P-256 (ES256)
    return 'ES256';
  }
  throw new CredentialError('bad-key');
}

/** The PEM blocks in `text`: label and DER bytes. Encrypted legacy PEM (Proc-Type) is refused. */
function pemBlocks(text: string): { label: string; der: Uint8Array }[] {
  const out: { label: string; der: Uint8Array }[] = [];
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)) {
    const label = m[1] as string;
    const body = m[2] as string;
    if (/Proc-Type:\s*4,\s*ENCRYPTED/i.test(body)) throw new CredentialError('encrypted-key');
    try {
      out.push({ label, der: fromBase64(body.replace(/[\s]/g, '')) });
    } catch {
      throw new CredentialError('bad-key');
    }
  }
  return out;
}

/** Imports a pasted PEM private key as a non-extractable signing key (RS256 or ES256). */
export async function importSigningKeyPem(pem: string): Promise<SigningKey> {
  if (typeof pem !== 'string' || pem.length > 64 * 1024) throw new CredentialError('bad-key');
  const blocks = pemBlocks(pem);
  if (blocks.some((b) => b.label === 'ENCRYPTED PRIVATE KEY')) throw new CredentialError('encrypted-key');
  const block = blocks.find((b) => /^(|RSA |EC )PRIVATE KEY$/.test(b.label));
  if (!block) throw new CredentialError('bad-key');
  let pkcs8: Uint8Array;
  if (block.label === 'RSA PRIVATE KEY') {
    pkcs8 = tlv(0x30, concat(VERSION_0, tlv(0x30, concat(OID_RSA, NULL)), tlv(0x04, block.der)));
  } else if (block.label === 'EC PRIVATE KEY') {
    pkcs8 = tlv(0x30, concat(VERSION_0, tlv(0x30, concat(OID_EC, OID_P256)), tlv(0x04, block.der)));
  } else {
    pkcs8 = block.der;
  }
  const alg = pkcs8Alg(pkcs8);
  const params = alg === 'RS256' ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: 'P-256' };
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey('pkcs8', pkcs8 as Uint8Array<ArrayBuffer>, params, false, ['sign']);
  } catch {
    throw new CredentialError('bad-key');
  }
  if (alg === 'RS256' && (key.algorithm as RsaHashedKeyAlgorithm).modulusLength < 2048) throw new CredentialError('weak-key');
  return { key, alg };
}
