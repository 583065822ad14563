/**
 * Keeping the vault unlocked across MV3 worker restarts, and only until lock or browser exit.
 *
 * Two halves, both needed: a fresh non-extractable session key in IndexedDB, and the root key
 * sealed under it in chrome.storage.session (memory only, cleared on browser exit and on
 * extension reload). A stopped worker reads both back; a copied profile has only the first.
 * Lock removes the memory half first, so a crash between the two steps still leaves us locked.
 */
import { fromBase64, toBase64 } from '../../core/bytes.ts';
import { newSessionKey } from '../../core/crypto/keys.ts';
import { type RecordContext, RecordKind } from '../../core/crypto/record.ts';
import { openRecord, sealRecord } from '../../core/crypto/seal.ts';
import type { KeyholeDB } from '../db.ts';

/** The memory-only half. chrome.storage.session in the worker; a Map in unit tests. */
export interface SessionStore {
  get(): Promise<SessionBlob | undefined>;
  set(blob: SessionBlob): Promise<void>;
  clear(): Promise<void>;
}

export type SessionBlob = { readonly vaultId: string; readonly sealedRoot: string; readonly since: number };

const ctx = (vaultId: string): RecordContext => ({ kind: RecordKind.rootSession, vaultId, itemId: 'session', epoch: 0, version: 1 });

export async function beginSession(db: KeyholeDB, store: SessionStore, vaultId: string, root: Uint8Array<ArrayBuffer>, now: number) {
  const key = await newSessionKey();
  const sealed = await sealRecord(key, ctx(vaultId), root);
  await db.put('session', key, 'key');
  await store.set({ vaultId, sealedRoot: toBase64(sealed), since: now });
}

/** The root bytes if a session is live, else null. The caller wipes them. */
export async function resumeSession(db: KeyholeDB, store: SessionStore, vaultId: string): Promise<Uint8Array<ArrayBuffer> | null> {
  const blob = await store.get();
  if (!blob || blob.vaultId !== vaultId) return null;
  const key = await db.get('session', 'key');
  if (!key) return null;
  try {
    return await openRecord(key, ctx(vaultId), fromBase64(blob.sealedRoot));
  } catch {
    // A blob that does not open under this key is stale (e.g. from before a crash): end it.
    await endSession(db, store);
    return null;
  }
}

export async function endSession(db: KeyholeDB, store: SessionStore): Promise<void> {
  await store.clear();
  await db.delete('session', 'key');
}

export function chromeSessionStore(area: chrome.storage.StorageArea = chrome.storage.session): SessionStore {
  const KEY = 'keyhole.session';
  return {
    async get() {
      const got = await area.get(KEY);
      const v = got[KEY] as SessionBlob | undefined;
      return v && typeof v.sealedRoot === 'string' && typeof v.vaultId === 'string' ? v : undefined;
    },
    set: (blob) => area.set({ [KEY]: blob }),
    clear: () => area.remove(KEY),
  };
}
