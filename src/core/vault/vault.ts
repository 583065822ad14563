/**
 * The vault header: which KDF opens it, and the root key wrapped under the passphrase KEK.
 * Creating, opening and re-wrapping the root are the only places raw root bytes exist
 * (docs/key-handling.md); callers wipe what they are handed.
 */
import {
  checkKdfParams,
  defaultKdfParams,
  deriveKek,
  encodeKdfParams,
  type KdfAlg,
  type KdfParams,
  parseKdfParams,
} from '../crypto/kdf.ts';
import { newRootBytes } from '../crypto/keys.ts';
import { type RecordContext, RecordKind } from '../crypto/record.ts';
import { openRecord, sealRecord } from '../crypto/seal.ts';
import { CoreError, isCoreError } from '../errors.ts';

export const VAULT_FORMAT = 1;

export type VaultHeader = {
  readonly format: 1;
  readonly vaultId: string;
  readonly createdAt: number;
  /** encodeKdfParams() text */
  readonly kdf: string;
  /** the root key under the KEK, a RecordKind.rootKek record */
  readonly wrappedRoot: Uint8Array;
  /** bumped each time the root is re-wrapped (passphrase change) */
  readonly rootVersion: number;
  /** key epoch; a new epoch begins when a shared vault loses a member (issue: sync) */
  readonly epoch: number;
};

function rootContext(h: Pick<VaultHeader, 'vaultId' | 'kdf' | 'rootVersion' | 'epoch'>): RecordContext {
  // The KDF parameters are part of the associated data: a header edited to weaker
  // parameters no longer opens.
  return { kind: RecordKind.rootKek, vaultId: h.vaultId, itemId: `root:${h.kdf}`, epoch: h.epoch, version: h.rootVersion };
}

async function wrapRoot(
  root: Uint8Array<ArrayBuffer>,
  passphrase: string,
  params: KdfParams,
  place: Omit<VaultHeader, 'kdf' | 'wrappedRoot' | 'format'>,
): Promise<VaultHeader> {
  const kdf = encodeKdfParams(params);
  const kek = await deriveKek(passphrase, params);
  const wrappedRoot = await sealRecord(kek, rootContext({ ...place, kdf }), root);
  return { format: VAULT_FORMAT, ...place, kdf, wrappedRoot };
}

/** A new vault. Returns the header to store and the root bytes to start a session with. */
export async function createVault(
  passphrase: string,
  opts: { alg?: KdfAlg; params?: KdfParams; now?: number } = {},
): Promise<{ header: VaultHeader; root: Uint8Array<ArrayBuffer> }> {
  const params = checkKdfParams(opts.params ?? defaultKdfParams(opts.alg));
  const root = newRootBytes();
  const header = await wrapRoot(root, passphrase, params, {
    vaultId: crypto.randomUUID(),
    createdAt: opts.now ?? Date.now(),
    rootVersion: 1,
    epoch: 1,
  });
  return { header, root };
}

/** The root bytes, or CoreError 'wrong-passphrase'. A tampered header reads the same way. */
export async function openVault(header: VaultHeader, passphrase: string): Promise<Uint8Array<ArrayBuffer>> {
  checkHeader(header);
  const kek = await deriveKek(passphrase, parseKdfParams(header.kdf));
  try {
    return await openRecord(kek, rootContext(header), header.wrappedRoot);
  } catch (e) {
    if (isCoreError(e, 'decrypt-failed')) throw new CoreError('wrong-passphrase', 'wrong passphrase');
    throw e;
  }
}

/** Change passphrase: the same root under a new KEK. Nothing else in the vault changes. */
export async function rewrapVault(
  header: VaultHeader,
  root: Uint8Array<ArrayBuffer>,
  passphrase: string,
  opts: { alg?: KdfAlg; params?: KdfParams } = {},
): Promise<VaultHeader> {
  const current = parseKdfParams(header.kdf);
  const params = checkKdfParams(opts.params ?? defaultKdfParams(opts.alg ?? current.alg));
  return wrapRoot(root, passphrase, params, {
    vaultId: header.vaultId,
    createdAt: header.createdAt,
    rootVersion: header.rootVersion + 1,
    epoch: header.epoch,
  });
}

export function checkHeader(h: unknown): VaultHeader {
  const x = h as VaultHeader;
  if (typeof h !== 'object' || h === null) throw new CoreError('bad-record', 'vault header missing');
  if (x.format !== VAULT_FORMAT) throw new CoreError('unsupported-version', 'unsupported vault format');
  if (typeof x.vaultId !== 'string' || typeof x.kdf !== 'string' || !(x.wrappedRoot instanceof Uint8Array)) {
    throw new CoreError('bad-record', 'vault header malformed');
  }
  return x;
}
