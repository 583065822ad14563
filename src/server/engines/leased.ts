/**
 * Engines whose credentials live under a lease (issue 15): issue within the policy and the caps,
 * renew up to the lease's maximum, revoke (by the sweeper, at expiry or when asked). Today: the
 * `postgres` engine; `llm-keys` plugs in the same way.
 *
 * The root credential comes from the signed log, sealed to the engine key; the first use opens it
 * through the key provider and keeps it as an engine record (`root@<seq>`, enveloped under the
 * master key), so a lease outlives a later change of the engine's configuration: each lease's own
 * sealed revocation data names the target and the root record it was made with.
 */
import { randomUUID } from 'node:crypto';
import {
  checkLlmKeysConfig,
  checkLlmKeysRoot,
  checkPostgresConfig,
  checkPostgresRoot,
  type LlmKeysConfig,
  type PostgresConfig,
} from '../../core/sync/engine-config.ts';
import { openFromEngine } from '../../core/sync/engine-seal.ts';
import type { EngineDef, EnginePolicy, Membership } from '../../core/sync/log.ts';
import { governance } from '../../core/sync/log.ts';
import { openEngineRecord, type SealedRecord, sealEngineRecord } from '../kms/envelope.ts';
import type { KeyProvider } from '../kms/provider.ts';
import type { Lease } from '../leases/lease-store.ts';
import type { Store } from '../store.ts';
import { EngineError } from './jwt.ts';
import { ADAPTERS } from './llm-keys.ts';
import { createRole, dropRole, renewRole, roleName, type Target } from './postgres.ts';

/**
 * What a lease's sealed revocation data holds: the engine kind, the target, the root record to reach
 * it, and the credential's name there (chosen before it is made) or, once made, an API key's id.
 */
type RevokeData = Unrooted & { root: string };

/** Revocation data before the root record is named (what an engine's making knows). */
type Unrooted =
  | { kind: 'postgres'; name: string; target: Omit<PostgresConfig, 'roles'> }
  | { kind: 'llm-keys'; keyName?: string; keyId?: string; target: LlmKeysConfig };

export type LeasedDeps = {
  readonly kms: KeyProvider;
  readonly store: Store;
  readonly now: () => number;
  /** live leases at most per vault (each device's cap is its policy's, default 10) */
  readonly maxLeasesPerVault?: number;
  readonly callTimeoutMs?: number;
};

export const DEFAULT_LEASES_PER_DEVICE = 10;
export const DEFAULT_LEASES_PER_VAULT = 1000;

export type Issued = {
  readonly leaseId: string;
  readonly expiresAt: number;
  readonly maxExpiresAt: number;
  readonly renewable: boolean;
  readonly credential: Readonly<Record<string, string | number>>;
};

/** A credential made at its target: what it is, what revokes it, and how to take it back at once. */
type Made = { readonly data: Unrooted; readonly credential: Record<string, string | number>; undo(): Promise<void> };

export class LeasedEngines {
  private readonly roots = new Map<string, Promise<unknown>>();

  constructor(private readonly d: LeasedDeps) {}

  private timeout(): number {
    return this.d.callTimeoutMs ?? 10_000;
  }

  /** The engine's root credential (JSON), opened once and kept as an engine record. */
  private root(state: Membership, engine: string, def: EngineDef): Promise<unknown> {
    const record = `root@${def.seq}`;
    const key = `${state.vault}/${engine}/${record}`;
    let r = this.roots.get(key);
    if (!r) {
      r = this.openRoot(state, engine, def, record);
      this.roots.set(key, r);
      r.catch(() => this.roots.delete(key));
    }
    return r;
  }

  private async openRoot(state: Membership, engine: string, def: EngineDef, record: string): Promise<unknown> {
    const place = { vault: state.vault, engine, record, version: 1 };
    const row = await this.d.store.getEngineRecord(state.vault, engine, record);
    if (row) return JSON.parse(Buffer.from(await openEngineRecord(this.d.kms, place, JSON.parse(row.sealed) as SealedRecord)).toString());
    const engineKey = governance(state).engineKey;
    if (!def.sealed || !engineKey) throw new EngineError('bad-config', 'the engine has no root credential sealed to the pinned engine key');
    let plain: Uint8Array;
    try {
      plain = await openFromEngine(def.sealed, engineKey, (p) => this.d.kms.engineAgree(p), { vault: state.vault, engine, kind: def.kind });
    } catch {
      throw new EngineError('bad-config', 'the root credential is not sealed to this server’s engine key');
    }
    const sealed = await sealEngineRecord(this.d.kms, place, plain);
    await this.d.store.casEngineRecord({ ...place, sealed: JSON.stringify(sealed) }, 0);
    return JSON.parse(Buffer.from(plain).toString());
  }

  private async rootByRecord(vault: string, engine: string, record: string): Promise<unknown> {
    const row = await this.d.store.getEngineRecord(vault, engine, record);
    if (!row) throw new EngineError('unavailable', 'the root credential this lease was made with is gone');
    const place = { vault, engine, record, version: 1 };
    return JSON.parse(Buffer.from(await openEngineRecord(this.d.kms, place, JSON.parse(row.sealed) as SealedRecord)).toString());
  }

  /**
   * A new credential under a lease, within the policy and the caps. The lease is written first, as
   * `revoking` with its first attempt a while ahead and the name the credential will have, then the
   * credential is made and the lease activated. A server that dies in between (or takes longer than
   * that while) leaves the sweeper a lease to revoke by name, never a credential with no lease.
   */
  async issue(
    state: Membership,
    engine: string,
    def: EngineDef,
    policy: EnginePolicy,
    device: string,
    role: string,
    ttlAsked?: number,
  ): Promise<Issued> {
    if (def.kind !== 'postgres' && def.kind !== 'llm-keys')
      throw new EngineError('bad-config', `engine kind ${def.kind} does not issue leases`);
    const perDevice = policy.maxLeasesPerDevice ?? DEFAULT_LEASES_PER_DEVICE;
    if ((await this.d.store.leases.countLive(state.vault, device)) >= perDevice)
      throw new EngineError('not-allowed', `this device holds its ${perDevice} live leases: revoke one first`);
    if ((await this.d.store.leases.countLive(state.vault)) >= (this.d.maxLeasesPerVault ?? DEFAULT_LEASES_PER_VAULT))
      throw new EngineError('not-allowed', 'the vault holds as many live leases as this server allows');
    const id = randomUUID();
    const root = `root@${def.seq}`;
    const planned = await this.plan(state, engine, def, policy, role, id, ttlAsked);
    const now = this.d.now();
    const expires = now + planned.ttl * 1000;
    const maxExpires = now + policy.maxTtlSeconds * 1000;
    const lease: Lease = {
      id,
      vault: state.vault,
      engine,
      role,
      device,
      issued: now,
      expires,
      maxExpires,
      renewable: true,
      state: 'revoking',
      attempts: 0,
      nextAttempt: now + 2 * this.timeout(), // the making is bounded by one call's timeout
      revokeData: await this.seal(state.vault, engine, id, { ...planned.data, root }),
    };
    await this.d.store.leases.insert(lease);
    let made: Made;
    try {
      made = await planned.make(expires);
    } catch (e) {
      // refused or never reached: nothing to revoke; else revoked now by name, or by the sweeper
      const revoked = e instanceof EngineError && e.nothingMade ? Promise.resolve() : this.revoke(lease);
      await revoked.then(
        () => this.d.store.leases.finish(id, { state: 'revoked', nextAttempt: this.d.now() }),
        () => {},
      );
      throw e;
    }
    // what names the credential may not change once made (a role's name; an API key gains its id)
    const revokeData = made.data === planned.data ? lease.revokeData : await this.seal(state.vault, engine, id, { ...made.data, root });
    const activated = await this.d.store.leases.activate(id, expires, revokeData).catch(() => false);
    if (!activated) {
      // claimed by a sweeper meanwhile, which may have looked before the credential existed
      await made
        .undo()
        .catch(() =>
          this.d.store.leases
            .finish(id, { state: 'revoking', nextAttempt: this.d.now(), lastError: 'made after its lease was claimed' })
            .catch(() => {}),
        );
      throw new EngineError('unavailable', 'the credential was made too late for its lease and was taken back: ask again');
    }
    return { leaseId: id, expiresAt: expires, maxExpiresAt: maxExpires, renewable: true, credential: made.credential };
  }

  /** What a lease of this engine will name, and how to make it (the root credential opened, the TTL set). */
  private async plan(
    state: Membership,
    engine: string,
    def: EngineDef,
    policy: EnginePolicy,
    role: string,
    id: string,
    ttlAsked?: number,
  ): Promise<{ ttl: number; data: Unrooted; make: (expires: number) => Promise<Made> }> {
    if (def.kind === 'postgres') {
      const config = checkPostgresConfig(def.config);
      const target: Target = { config, root: checkPostgresRoot(await this.root(state, engine, def)) };
      const name = roleName(role);
      const { roles: _, ...where } = config;
      const data: Unrooted = { kind: 'postgres', name, target: where };
      return {
        ttl: Math.min(ttlAsked ?? config.defaultTtlSeconds, policy.maxTtlSeconds),
        data,
        make: async (expires) => {
          const { username, password } = await createRole(target, role, name, expires, this.timeout());
          return {
            data,
            credential: { username, password, host: config.host, port: config.port, database: config.database },
            undo: () => dropRole(target, name, this.timeout()),
          };
        },
      };
    }
    const config = checkLlmKeysConfig(def.config);
    const root = checkLlmKeysRoot(await this.root(state, engine, def));
    const adapter = ADAPTERS[config.provider];
    const keyName = `keyhole-${role}-${id}`; // the key's name at the provider says what it is for
    return {
      ttl: Math.min(ttlAsked ?? policy.maxTtlSeconds, policy.maxTtlSeconds),
      data: { kind: 'llm-keys', keyName, target: config },
      make: async () => {
        const { keyId, apiKey } = await adapter.create(config, root, keyName, AbortSignal.timeout(this.timeout()));
        return {
          data: { kind: 'llm-keys', keyName, keyId, target: config },
          credential: { apiKey, keyId, provider: config.provider },
          undo: () => adapter.delete(config, root, keyId, AbortSignal.timeout(this.timeout())),
        };
      },
    };
  }

  private async seal(vault: string, engine: string, id: string, data: RevokeData): Promise<string> {
    const place = { vault, engine, record: `lease:${id}`, version: 1 };
    return JSON.stringify(await sealEngineRecord(this.d.kms, place, Buffer.from(JSON.stringify(data))));
  }

  private async revokeData(l: Lease): Promise<RevokeData> {
    const place = { vault: l.vault, engine: l.engine, record: `lease:${l.id}`, version: 1 };
    return JSON.parse(
      Buffer.from(await openEngineRecord(this.d.kms, place, JSON.parse(l.revokeData) as SealedRecord)).toString(),
    ) as RevokeData;
  }

  private async pgTarget(l: Lease, data: Extract<RevokeData, { kind: 'postgres' }>): Promise<Target> {
    const root = checkPostgresRoot(await this.rootByRecord(l.vault, l.engine, data.root));
    return { config: { ...data.target, roles: {} }, root };
  }

  /** Extends the lease at the target (a role's VALID UNTIL; an API key has no expiry of its own: nothing to do). */
  async renew(l: Lease, expires: number): Promise<void> {
    const data = await this.revokeData(l);
    if (data.kind === 'postgres') await renewRole(await this.pgTarget(l, data), data.name, expires, this.timeout());
  }

  /** The sweeper's revocation: idempotent (a role or key already gone is revoked). */
  readonly revoke = async (l: Lease, signal?: AbortSignal): Promise<void> => {
    const data = await this.revokeData(l);
    if (data.kind === 'postgres') return dropRole(await this.pgTarget(l, data), data.name, this.timeout());
    const root = checkLlmKeysRoot(await this.rootByRecord(l.vault, l.engine, data.root));
    const adapter = ADAPTERS[data.target.provider];
    const within = signal ?? AbortSignal.timeout(this.timeout());
    if (data.keyId !== undefined) return adapter.delete(data.target, root, data.keyId, within);
    if (data.keyName !== undefined) return adapter.deleteNamed(data.target, root, data.keyName, within);
    throw new EngineError('bad-config', 'the lease names no key');
  };
}
