/**
 * A stored secret is three records: its metadata under the items key, its own data key
 * under the items key, and its value under that data key (envelope encryption).
 * Every record's associated data names the vault, the item, its version and the key epoch.
 */

import { checkName, checkRule, checkValue, type InjectionRule } from '../agents/policy.ts';
import { fromUtf8, utf8 } from '../bytes.ts';
import type { AwsConfig } from '../credentials/aws.ts';
import { checkCredentialConfig, checkKind, type DistantConfig, type OAuth2Config, type SecretKind } from '../credentials/kinds.ts';
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
  /** an `aws` secret's configuration (region, service, the role it assumes) */
  readonly aws?: AwsConfig;
  /** a `distant` secret's engine and role */
  readonly distant?: DistantConfig;
  /** when the secret expires: its values are destroyed then (absent: never) */
  readonly expiresAt?: number;
  /**
   * Its values by number (absent in records written before rotation: one value, number 1,
   * current). Exactly one is current; a staged one waits for promotion; a previous one is kept
   * until `destroyAt` for roll back; a destroyed one is only a line in the history.
   */
  readonly values?: readonly ValueInfo[];
};

export type ValueState = 'current' | 'previous' | 'staged' | 'destroyed';
export type ValueInfo = {
  readonly n: number;
  readonly state: ValueState;
  readonly createdAt: number;
  /** previous: destroyed then (the end of its grace period) */
  readonly destroyAt?: number;
  /** destroyed: when, and whether as compromised */
  readonly destroyedAt?: number;
  readonly compromised?: boolean;
};

/** A value other than the current one (staged or previous), sealed under its own data key. */
export type StoredValue = {
  readonly n: number;
  /** in clear, so a locked worker can destroy it on time (the sealed metadata says the same) */
  readonly destroyAt?: number;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
};

/** What IndexedDB holds for one secret. Nothing in it is readable without the vault keys. */
export type StoredSecret = {
  readonly id: string;
  readonly version: number;
  readonly epoch: number;
  readonly meta: Uint8Array;
  readonly key: Uint8Array;
  /** the current value; empty once the secret expired (destroyed) */
  readonly value: Uint8Array;
  /** staged and previous values (absent: none) */
  readonly others?: readonly StoredValue[];
  /** in clear, so a locked worker destroys the values on time; the sealed metadata decides use */
  readonly expiresAt?: number;
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
    ...(kind === 'static' ? {} : { kind, ...checkCredentialConfig(kind, m) }),
    ...(m.expiresAt !== undefined ? { expiresAt: time('expiresAt') } : {}),
    ...(m.values !== undefined ? { values: checkValues(m.values) } : {}),
  };
}

const VALUE_STATES: readonly ValueState[] = ['current', 'previous', 'staged', 'destroyed'];
export const MAX_VALUES_KEPT = 64;

function checkValues(v: unknown): ValueInfo[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_VALUES_KEPT) throw new CoreError('bad-input', 'value history malformed');
  const out = v.map((x: Record<string, unknown>) => {
    const ok =
      typeof x === 'object' &&
      x !== null &&
      Number.isSafeInteger(x.n) &&
      (x.n as number) > 0 &&
      VALUE_STATES.includes(x.state as ValueState) &&
      Number.isSafeInteger(x.createdAt);
    if (!ok) throw new CoreError('bad-input', 'value history malformed');
    return {
      n: x.n as number,
      state: x.state as ValueState,
      createdAt: x.createdAt as number,
      ...(Number.isSafeInteger(x.destroyAt) ? { destroyAt: x.destroyAt as number } : {}),
      ...(Number.isSafeInteger(x.destroyedAt) ? { destroyedAt: x.destroyedAt as number } : {}),
      ...(x.compromised === true ? { compromised: true } : {}),
    };
  });
  if (out.filter((x) => x.state === 'current').length !== 1 || new Set(out.map((x) => x.n)).size !== out.length)
    throw new CoreError('bad-input', 'value history malformed');
  return out;
}

/** The history of a record written before rotation: its one value, current. */
export function valuesOf(meta: SecretMeta): readonly ValueInfo[] {
  return meta.values ?? [{ n: 1, state: 'current', createdAt: meta.createdAt }];
}

/** Where value `n` (other than the current one) is sealed: its own item id, so it cannot stand in for another. */
const otherPlace = (p: SecretPlace, n: number): SecretPlace => ({ ...p, id: `${p.id}#${n}` });

/**
 * Seals a secret: metadata, the current value under a fresh data key, and each other live value
 * (`others`: staged, previous) under a data key of its own, all bound to this record version.
 */
export async function sealSecret(
  keys: VaultKeys,
  place: SecretPlace,
  meta: SecretMeta,
  value: string,
  others: readonly { readonly n: number; readonly value: string; readonly destroyAt?: number }[] = [],
): Promise<StoredSecret> {
  const checked = checkMeta(meta);
  const [m, current, ...sealed] = await Promise.all([
    sealRecord(keys.items, ctx(RecordKind.itemMeta, place), utf8(JSON.stringify(checked))),
    sealValue(keys, place, checkValue(value)),
    ...others.map((o) => sealValue(keys, otherPlace(place, o.n), checkValue(o.value))),
  ]);
  return {
    id: place.id,
    version: place.version,
    epoch: place.epoch,
    meta: m,
    key: current.key,
    value: current.value,
    ...(others.length > 0
      ? {
          others: others.map((o, i) => ({
            n: o.n,
            ...(o.destroyAt !== undefined ? { destroyAt: o.destroyAt } : {}),
            ...(sealed[i] as { key: Uint8Array; value: Uint8Array }),
          })),
        }
      : {}),
    ...(checked.expiresAt !== undefined ? { expiresAt: checked.expiresAt } : {}),
  };
}

async function sealValue(keys: VaultKeys, place: SecretPlace, value: string): Promise<{ key: Uint8Array; value: Uint8Array }> {
  const dataKey = await newDataKey();
  const [k, v] = await Promise.all([
    wrapKeyRecord(dataKey, keys.items, ctx(RecordKind.itemKey, place)),
    sealRecord(dataKey, ctx(RecordKind.itemValue, place), utf8(value)),
  ]);
  return { key: k, value: v };
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

/**
 * `s` opened with `from` and sealed again at `place` under `into` (a new key epoch, a new id or
 * version): metadata, the current value and every live other value. An expired secret stays
 * without values.
 */
export async function resealSecret(
  from: { keys: VaultKeys; vaultId: string },
  s: StoredSecret,
  into: VaultKeys,
  place: SecretPlace,
): Promise<StoredSecret> {
  const meta = await openSecretMeta(from.keys, from.vaultId, s);
  if (s.value.length === 0) {
    const m = await sealRecord(into.items, ctx(RecordKind.itemMeta, place), utf8(JSON.stringify(checkMeta(meta))));
    return {
      id: place.id,
      version: place.version,
      epoch: place.epoch,
      meta: m,
      key: new Uint8Array(0),
      value: new Uint8Array(0),
      ...(s.expiresAt !== undefined ? { expiresAt: s.expiresAt } : {}),
    };
  }
  const value = await openSecretValue(from.keys, from.vaultId, s);
  const others = [];
  for (const o of s.others ?? [])
    others.push({
      n: o.n,
      value: await openOtherValue(from.keys, from.vaultId, s, o.n),
      ...(o.destroyAt !== undefined ? { destroyAt: o.destroyAt } : {}),
    });
  return sealSecret(into, place, meta, value, others);
}

/** The plaintext value. Callers hand it only to the person (reveal) or to an outgoing request. */
export async function openSecretValue(keys: VaultKeys, vaultId: string, s: StoredSecret): Promise<string> {
  if (s.value.length === 0) throw new CoreError('expired', 'the secret has expired; its values are destroyed', s.id);
  return openValue(keys, placeOf(vaultId, s), s.key, s.value, s.id);
}

/** Value `n`, staged or previous; CoreError 'not-found' once it is destroyed. */
export async function openOtherValue(keys: VaultKeys, vaultId: string, s: StoredSecret, n: number): Promise<string> {
  const other = s.others?.find((o) => o.n === n);
  if (!other) throw new CoreError('not-found', 'that value is destroyed', s.id);
  return openValue(keys, otherPlace(placeOf(vaultId, s), n), other.key, other.value, s.id);
}

async function openValue(keys: VaultKeys, place: SecretPlace, key: Uint8Array, value: Uint8Array, id: string): Promise<string> {
  const dataKey = await unwrapKeyRecord(keys.items, ctx(RecordKind.itemKey, place), key);
  const bytes = await openRecord(dataKey, ctx(RecordKind.itemValue, place), value);
  try {
    return fromUtf8(bytes);
  } catch {
    throw new CoreError('bad-record', 'value does not parse', id);
  } finally {
    bytes.fill(0);
  }
}

/**
 * What a locked worker may destroy at `now` without keys: values past their grace (their
 * ciphertext and data key dropped) and, past the secret's expiry, every value. Null: nothing due.
 * The sealed metadata still lists them; a value without ciphertext reads as destroyed.
 */
export function destroyDue(s: StoredSecret, now: number): StoredSecret | null {
  if (s.expiresAt !== undefined && s.expiresAt <= now) {
    if (s.value.length === 0 && !s.others?.length) return null;
    const { others: _, ...rest } = s;
    return { ...rest, key: new Uint8Array(0), value: new Uint8Array(0) };
  }
  const keep = s.others?.filter((o) => o.destroyAt === undefined || o.destroyAt > now);
  if (!s.others || keep?.length === s.others.length) return null;
  const { others: _, ...rest } = s;
  return keep && keep.length > 0 ? { ...rest, others: keep } : rest;
}

/** The earliest time something of `s` is due for destruction, or undefined. */
export function nextDestruction(s: StoredSecret): number | undefined {
  const times = [...(s.others ?? []).flatMap((o) => (o.destroyAt !== undefined ? [o.destroyAt] : []))];
  if (s.expiresAt !== undefined && s.value.length > 0) times.push(s.expiresAt);
  return times.length > 0 ? Math.min(...times) : undefined;
}
