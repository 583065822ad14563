/** User-facing text for errors, in one place. Keyed by the worker's stable error codes. */
import type { RpcErrorBody } from '../core/api.ts';
import { RpcCallError } from './rpc.ts';

const TEXT: Record<RpcErrorBody['code'], string> = {
  uninitialized: 'There is no vault yet.',
  'already-initialized': 'A vault already exists in this browser.',
  locked: 'The vault is locked.',
  'wrong-passphrase': 'Wrong passphrase.',
  'wrong-passkey': 'That passkey does not unlock this vault',
  throttled: 'Too many wrong passphrases.',
  'weak-passphrase': 'Choose a passphrase of at least 12 characters.',
  'bad-input': 'Some input is not valid',
  'not-found': 'That secret no longer exists.',
  'name-taken': 'A secret with this name already exists.',
  expired: 'This secret has expired: its values are destroyed. Give it a new value or delete it.',
  damaged: 'A stored record is damaged and cannot be opened',
  forbidden: 'Not allowed.',
  'unknown-method': 'The extension does not know that request.',
  internal: 'Something went wrong inside the extension.',
  'sync-failed': 'Sync with the distant vault failed',
};

export function describeError(e: unknown): string {
  if (!(e instanceof RpcCallError)) return TEXT.internal;
  let text = TEXT[e.code] ?? TEXT.internal;
  if (e.code === 'bad-input' || e.code === 'damaged' || e.code === 'sync-failed' || e.code === 'wrong-passkey') text += `: ${e.message}.`;
  const wait = e.data?.retryAfterMs;
  if (typeof wait === 'number' && wait > 0) text += ` Try again in ${Math.ceil(wait / 1000)} s.`;
  if (e.code === 'damaged' && typeof e.data?.item === 'string') text += ` (item ${e.data.item})`;
  return text;
}
