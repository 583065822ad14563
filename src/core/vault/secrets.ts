/**
 * A stored secret is three records: its metadata under the items key, its own data key
 * under the items key, and its value under that data key (envelope encryption).
 * Every record's associated data names the vault, the item, its version and the key epoch.
 */

import { checkName, checkRule, checkValue, type InjectionRule } from '../agents/policy.ts';
import { fromUtf8, utf8 } from '../bytes.ts';
import { checkKind, checkOAuth2Config, isMinted, type OAuth2Config, type SecretKind } from '../credentials/kinds.ts';
import { newDataKey, type VaultKeys } from '../crypto/keys.ts';
import { type RecordContext, RecordKind } from '../crypto/record.ts';
import { openRecord, sealRecord, unwrapKeyRecord, wrapKeyRecord } from '../crypto/seal.ts';
import { CoreError } from '../errors.ts';

export type SecretMeta = {
  readonly name: string;
  readonly rule: InjectionRule;
  readonly notes: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** absent in records written before kinds: static */
  readonly kind?: SecretKind;
  /** a minted kind's configuration (core/credentials/kinds.ts); its secret half is the value */
  readonly oauth2?: OAuth2Config;
};

/** What IndexedDB holds for one secret. Nothing in it is readable without the vault keys. */
export type StoredSecret = {
  readonly id: string;
  readonly version: number;
  readonly epoch: number;
  readonly meta: Uint8Array;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
};

export type SecretPlace = { readonly vaultId: string; readonly id: string; readonly version: number; readonly epoch: number };

const ctx = (kind: RecordContext['kind'], p: SecretPlace): RecordContext => ({
  kind,
  vaultId: p.vaultId,
  itemId: p.id,
  epoch: p.epoch,
  version: p.version,
});

export const MAX_NOTES = 2000;

export function checkMeta(input: unknown): SecretMeta {
  if (typeof input !== 'object' || input === null) throw new CoreError('bad-input', 'metadata must be an object');
  const m = input as Record<string, unknown>;
  const notes = m.notes ?? '';
  if (typeof notes !== 'string' || notes.length > MAX_NOTES) throw new CoreError('bad-input', 'notes must be at most 2000 characters');
  const time = (k: string) => {
    const t = m[k];
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) throw new CoreError('bad-input', `${k} must be a time`);
    return t;
  };
  const kind = checkKind(m.kind);
  return {
    name: checkName(m.name),
    rule: checkRule(m.rule),
    notes,
    createdAt: time('createdAt'),
    updatedAt: time('updatedAt'),
    ...(isMinted(kind) ? { kind, oauth2: checkOAuth2Config(kind, m.oauth2) } : {}),
  };
}

export async function sealSecret(keys: VaultKeys, place: SecretPlace, meta: SecretMeta, value: string): Promise<StoredSecret> {
  const dataKey = await newDataKey();
  const [m, k, v] = await Promise.all([
    sealRecord(keys.items, ctx(RecordKind.itemMeta, place), utf8(JSON.stringify(checkMeta(meta)))),
    wrapKeyRecord(dataKey, keys.items, ctx(RecordKind.itemKey, place)),
    sealRecord(dataKey, ctx(RecordKind.itemValue, place), utf8(checkValue(value))),
  ]);
  return { id: place.id, version: place.version, epoch: place.epoch, meta: m, key: k, value: v };
}

const placeOf = (vaultId: string, s: StoredSecret): SecretPlace => ({ vaultId, id: s.id, version: s.version, epoch: s.epoch });

export async function openSecretMeta(keys: VaultKeys, vaultId: string, s: StoredSecret): Promise<SecretMeta> {
  const bytes = await openRecord(keys.items, ctx(RecordKind.itemMeta, placeOf(vaultId, s)), s.meta);
  try {
    return checkMeta(JSON.parse(fromUtf8(bytes)));
  } catch {
    throw new CoreError('bad-record', 'metadata does not parse', s.id);
  }
}

/** The plaintext value. Callers hand it only to the person (reveal) or to an outgoing request. */
export async function openSecretValue(keys: VaultKeys, vaultId: string, s: StoredSecret): Promise<string> {
  const place = placeOf(vaultId, s);
  const dataKey = await unwrapKeyRecord(keys.items, ctx(RecordKind.itemKey, place), s.key);
  const bytes = await openRecord(dataKey, ctx(RecordKind.itemValue, place), s.value);
  try {
    return fromUtf8(bytes);
  } catch {
    throw new CoreError('bad-record', 'value does not parse', s.id);
  } finally {
    bytes.fill(0);
  }
}
