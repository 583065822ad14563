/**
 * The core's one error class. `code` is a stable string a caller can branch on;
 * `message` is a fixed, lowercase sentence that never contains a secret value.
 * `item` names the vault item involved (its id, never its contents) when there is one.
 */
export type CoreErrorCode =
  | 'bad-input' // a caller passed something malformed
  | 'bad-record' // stored bytes do not parse as a record
  | 'unsupported-version' // a record or header from a format we do not know
  | 'decrypt-failed' // authentication failed: wrong key, tampered or swapped record
  | 'wrong-passphrase' // the passphrase does not open the vault
  | 'wrong-passkey' // a passkey's PRF output does not open the vault
  | 'bad-kdf-params' // KDF parameters outside the allowed range
  | 'not-allowed' // a well-formed request outside what a rule or grant allows
  | 'expired' // the secret expired: its values are destroyed
  | 'not-found'; // a value (version) that is destroyed or never was

export class CoreError extends Error {
  override readonly name = 'CoreError';
  readonly code: CoreErrorCode;
  readonly item: string | undefined;

  constructor(code: CoreErrorCode, message: string, item?: string) {
    super(item === undefined ? message : `${message} (item ${item})`);
    this.code = code;
    this.item = item;
  }
}

export function isCoreError(e: unknown, code?: CoreErrorCode): e is CoreError {
  return e instanceof CoreError && (code === undefined || e.code === code);
}
