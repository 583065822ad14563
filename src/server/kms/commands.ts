/**
 * The key provider as the operator meets it: opened from flags and environment (the PIN only from
 * the environment: a flag would show in `ps`), and `npm run server -- kms init | rotate | status`.
 */
import { join } from 'node:path';
import type { Store } from '../store.ts';
import { rewrapEngineRecord, type SealedRecord } from './envelope.ts';
import { FileKeyProvider } from './file-provider.ts';
import { Pkcs11KeyProvider } from './pkcs11-provider.ts';
import { type KeyProvider, KmsError } from './provider.ts';

export type KmsOptions = {
  readonly kms: string;
  readonly dataDir: string;
  readonly keyFile?: string;
  readonly pkcs11Library?: string;
  readonly pkcs11Token?: string;
  readonly pkcs11Pin?: string;
  /** sessions signing JWTs at once (the provider's default when absent) */
  readonly pkcs11Sessions?: number;
};

/** Debian's SoftHSM2; any vendor's PKCS#11 library by --pkcs11-library. */
export const DEFAULT_PKCS11_LIBRARY = '/usr/lib/softhsm/libsofthsm2.so';

/** The provider the options name. The key file is created at first start (`create`). */
export function openKeyProvider(o: KmsOptions, create: boolean): KeyProvider {
  if (o.kms === 'file') return new FileKeyProvider(o.keyFile ?? join(o.dataDir, 'keys.json'), { create });
  if (o.kms === 'pkcs11') {
    if (!o.pkcs11Token) throw new KmsError('token-missing', 'give --pkcs11-token (or KEYHOLE_PKCS11_TOKEN)');
    if (o.pkcs11Pin === undefined) throw new KmsError('wrong-pin', 'set KEYHOLE_PKCS11_PIN');
    return new Pkcs11KeyProvider({
      library: o.pkcs11Library ?? DEFAULT_PKCS11_LIBRARY,
      tokenLabel: o.pkcs11Token,
      pin: o.pkcs11Pin,
      ...(o.pkcs11Sessions !== undefined ? { signSessions: o.pkcs11Sessions } : {}),
    });
  }
  throw new Error(`--kms must be file or pkcs11, not ${o.kms}`);
}

/**
 * `rotate`: a new master key becomes current, every engine record's data key is re-wrapped under
 * it (the records' ciphertext is not touched), and the master keys nothing is wrapped under any
 * more are destroyed. Safe to run again after an interruption: re-wrapping is idempotent.
 */
export async function rotateMasterKey(
  kms: KeyProvider,
  store: Store,
): Promise<{ masterKey: string; rewrapped: number; retired: string[] }> {
  const masterKey = await kms.rotateMasterKey();
  let rewrapped = 0;
  for (const row of await store.engineRecords()) {
    const sealed = JSON.parse(row.sealed) as SealedRecord;
    const place = { vault: row.vault, engine: row.engine, record: row.record, version: row.version };
    const next = await rewrapEngineRecord(kms, place, sealed);
    if (next === sealed) continue;
    await store.putEngineRecord({ ...row, sealed: JSON.stringify(next) });
    rewrapped++;
  }
  const stillUsed = new Set((await store.engineRecords()).map((r) => (JSON.parse(r.sealed) as SealedRecord).key.keyId));
  const retired: string[] = [];
  for (const id of (await kms.status()).previousMasterKeys) {
    if (stillUsed.has(id)) continue;
    await kms.retireMasterKey(id);
    retired.push(id);
  }
  return { masterKey, rewrapped, retired };
}

/** Runs a `kms` command; what it prints is public (key ids, the engine key and its fingerprint). */
export async function kmsCommand(command: string | undefined, kms: KeyProvider, store: Store): Promise<Record<string, unknown>> {
  switch (command) {
    case 'init':
      await kms.init();
      return { ...(await kms.status()) };
    case 'status':
      return { ...(await kms.status()) };
    case 'rotate':
      return { ...(await rotateMasterKey(kms, store)), ...(await kms.status()) };
    default:
      throw new Error('usage: npm run server -- kms init | rotate | status');
  }
}
