/**
 * WebAuthn from the extension's pages, for passkey unlock (core/vault/passkey.ts). The worker has
 * no `navigator.credentials`: a page asks the authenticator for the PRF output and hands it to the
 * worker, as it hands over a typed passphrase. The relying party is the extension itself (Chromium
 * uses the extension id as the RP id when none is given).
 *
 * Offered in the Chromium build only. Firefox lets an extension page use WebAuthn only from 150
 * (bug 1956484), so ESR 140 has none, and nothing here has been tested in a later Firefox: the
 * option is hidden there, not broken. Bitwarden limits PRF unlock to Chromium the same way.
 */
import type { PasskeyView, Status } from '../core/api.ts';
import { fromBase64, toBase64 } from '../core/bytes.ts';
import { PRF_LENGTH } from '../core/vault/passkey.ts';
import { FIREFOX } from './compat.ts';
import { h, message } from './dom.ts';
import { call } from './rpc.ts';
import { describeError } from './strings.ts';

/** A WebAuthn ceremony that gave nothing usable; the message is a sentence for the person. */
export class PasskeyError extends Error {
  override readonly name = 'PasskeyError';
}

export const passkeyErrorText = (e: unknown) => (e instanceof PasskeyError ? e.message : describeError(e));

/** Whether this browser can unlock with a passkey's PRF from an extension page. */
export async function passkeysSupported(): Promise<boolean> {
  if (FIREFOX || typeof PublicKeyCredential === 'undefined') return false;
  const caps = await PublicKeyCredential.getClientCapabilities?.().catch(() => undefined);
  return caps?.['extension:prf'] !== false; // Chromium 116+ has PRF; 133+ also says so
}

const fromBase64url = (s: string) => fromBase64(s.replaceAll('-', '+').replaceAll('_', '/') + '='.repeat((4 - (s.length % 4)) % 4));

/** The person's gesture ended without a credential (cancelled, timed out, no authenticator). */
function refused(e: unknown): PasskeyError {
  const name = e instanceof DOMException ? e.name : 'Error';
  return new PasskeyError(name === 'NotAllowedError' ? 'The passkey prompt was cancelled or timed out.' : `The passkey failed (${name}).`);
}

/**
 * A new passkey for this vault, with PRF. Returns its id, the salt and the PRF output for it, read
 * with a second ceremony: PRF results from `create()` are not relied upon.
 */
export async function createPasskey(label: string): Promise<{ id: string; salt: string; prf: string }> {
  let created: PublicKeyCredential | null;
  try {
    created = (await navigator.credentials.create({
      publicKey: {
        rp: { name: 'Keyhole' },
        user: { id: crypto.getRandomValues(new Uint8Array(16)), name: label, displayName: label },
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        pubKeyCredParams: [
          { type: 'public-key', alg: -7 },
          { type: 'public-key', alg: -257 },
        ],
        authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
        extensions: { prf: {} },
      },
    })) as PublicKeyCredential | null;
  } catch (e) {
    throw refused(e);
  }
  if (!created) throw new PasskeyError('No passkey was made.');
  if (created.getClientExtensionResults().prf?.enabled !== true)
    throw new PasskeyError('This passkey cannot derive keys (no PRF support). Choose another passkey provider.');
  const salt = toBase64(crypto.getRandomValues(new Uint8Array(PRF_LENGTH)));
  const { prf } = await evaluatePasskey([{ id: created.id, salt }]);
  return { id: created.id, salt, prf };
}

/** Asks the person's authenticator for one of `passkeys`' PRF output (base64) for its salt. */
export async function evaluatePasskey(passkeys: readonly Pick<PasskeyView, 'id' | 'salt'>[]): Promise<{ id: string; prf: string }> {
  if (passkeys.length === 0) throw new PasskeyError('No passkey unlocks this vault.');
  let got: PublicKeyCredential | null;
  try {
    got = (await navigator.credentials.get({
      publicKey: {
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        allowCredentials: passkeys.map((p) => ({ type: 'public-key', id: fromBase64url(p.id) })),
        userVerification: 'required',
        extensions: { prf: { evalByCredential: Object.fromEntries(passkeys.map((p) => [p.id, { first: fromBase64(p.salt) }])) } },
      },
    })) as PublicKeyCredential | null;
  } catch (e) {
    throw refused(e);
  }
  const first = got?.getClientExtensionResults().prf?.results?.first;
  if (!got || !first) throw new PasskeyError('The passkey gave no key material (no PRF output).');
  const bytes = first instanceof ArrayBuffer ? new Uint8Array(first) : new Uint8Array(first.buffer, first.byteOffset, first.byteLength);
  try {
    return { id: got.id, prf: toBase64(bytes) };
  } finally {
    bytes.fill(0);
  }
}

/**
 * On a lock screen: "Unlock with a passkey", drawn once the worker lists at least one passkey and
 * this browser can use it; nothing otherwise. `unlocked` gets the new status.
 */
export function passkeyUnlock(errors: HTMLElement, unlocked: (s: Status) => void): HTMLElement {
  const slot = h('div', { id: 'passkey-unlock' });
  void (async () => {
    if (!(await passkeysSupported())) return;
    const { passkeys } = await call('passkeys.list');
    if (passkeys.length === 0) return;
    const button = h('button', { type: 'button', id: 'unlock-passkey' }, 'Unlock with a passkey');
    button.addEventListener('click', () => {
      button.disabled = true;
      errors.replaceChildren();
      evaluatePasskey(passkeys)
        .then((p) => call('vault.unlockPasskey', p))
        .then(unlocked, (e: unknown) => errors.replaceChildren(message('error', passkeyErrorText(e))))
        .finally(() => {
          button.disabled = false;
        });
    });
    slot.append(button);
  })().catch(() => {}); // no list, no button: the passphrase form is there
  return slot;
}
