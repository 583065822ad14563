import type { RpcErrorBody, RpcErrorCode } from '../core/api.ts';
import { CoreError } from '../core/errors.ts';

/** An error the worker means to show the calling page. Messages are fixed strings. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(
    readonly code: RpcErrorCode,
    message: string,
    readonly data?: Record<string, string | number>,
  ) {
    super(message);
  }
}

/** Anything else becomes a generic internal error: no stack, no detail that could hold a value. */
export function toErrorBody(e: unknown): RpcErrorBody {
  if (e instanceof RpcError) return { code: e.code, message: e.message, ...(e.data ? { data: e.data } : {}) };
  if (e instanceof CoreError) {
    const item = e.item === undefined ? {} : { data: { item: e.item } };
    switch (e.code) {
      case 'bad-input':
      case 'bad-kdf-params':
        return { code: 'bad-input', message: e.message, ...item };
      case 'wrong-passphrase':
        return { code: 'wrong-passphrase', message: 'wrong passphrase' };
      case 'wrong-passkey':
        return { code: 'wrong-passkey', message: e.message };
      case 'expired':
        return { code: 'expired', message: e.message, ...item };
      case 'not-found':
        return { code: 'not-found', message: e.message, ...item };
      default:
        return { code: 'damaged', message: e.message, ...item };
    }
  }
  return { code: 'internal', message: 'internal error' };
}
