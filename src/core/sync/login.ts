/**
 * Device login (docs/sync.md): the server hands out a one-use nonce; the device signs
 * "keyhole/v1/login\n" || canonical({ origin, device, nonce, time }) with its ECDSA key.
 * The origin is the server as the device addressed it, so a signature made for one server
 * (or relayed by an impostor) does not open a session on another.
 */
import { fromBase64, toBase64, utf8 } from '../bytes.ts';
import { canonicalJson } from '../canonical.ts';

export type LoginClaim = { readonly origin: string; readonly device: string; readonly nonce: string; readonly time: number };

const DOMAIN = 'keyhole/v1/login\n';
const ECDSA_SIGN: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const bytes = (c: LoginClaim) => utf8(DOMAIN + canonicalJson({ origin: c.origin, device: c.device, nonce: c.nonce, time: c.time }));

export async function signLogin(claim: LoginClaim, signingKey: CryptoKey): Promise<string> {
  return toBase64(new Uint8Array(await crypto.subtle.sign(ECDSA_SIGN, signingKey, bytes(claim))));
}

export async function verifyLogin(claim: LoginClaim, sig: string, publicKey: CryptoKey): Promise<boolean> {
  try {
    return await crypto.subtle.verify(ECDSA_SIGN, publicKey, fromBase64(sig), bytes(claim));
  } catch {
    return false;
  }
}
