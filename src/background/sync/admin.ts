/**
 * A vault admin's actions on the distant vault's engines (issue 15), from this device: roles,
 * the engine key, engines and their policies, all as signed log entries (core/sync/log.ts). The
 * rules (admins only, the last admin stays, no sealed credential before the key is pinned) are
 * the log's: a refused action is refused before anything is sent, and by the server again.
 *
 * The engine key is pinned only when the fingerprint the person read from the server operator
 * (`npm run server -- kms status`) matches the key the server hands out: a server that shows
 * another key gets nothing sealed to it. A root credential is sealed to the pinned key on this
 * device (core/sync/engine-seal.ts); the server never sees it in clear on the wire or in the log.
 */

import type { TeamView } from '../../core/api.ts';
import { fromBase64, utf8 } from '../../core/bytes.ts';
import { canonicalJson } from '../../core/canonical.ts';
import { checkEngineConfig, checkEngineRoot, EngineConfigError, policyProblem } from '../../core/sync/engine-config.ts';
import { engineKeyFingerprint, sealToEngine } from '../../core/sync/engine-seal.ts';
import {
  ENGINE_KINDS,
  type EngineKind,
  type EnginePolicy,
  type EntryBody,
  type Governance,
  governance,
  ROLES,
  type Role,
} from '../../core/sync/log.ts';
import { RpcError } from '../errors.ts';
import type { SyncService } from './sync-service.ts';

export class TeamAdmin {
  constructor(
    private readonly sync: Pick<SyncService, 'team' | 'commitEntries'>,
    private readonly fetchFn: typeof fetch = (i, o) => fetch(i, o),
  ) {}

  async view(): Promise<TeamView> {
    const { state, me } = await this.sync.team();
    const gov: Governance = governance(state);
    return {
      me,
      members: [...state.members.values()].map((d) => ({ id: d.id, name: d.name, roles: gov.roles[d.id] ?? [] })),
      ...(gov.engineKey ? { engineKeyFingerprint: engineKeyFingerprint(fromBase64(gov.engineKey)) } : {}),
      engines: Object.entries(gov.engines).map(([name, e]) => ({
        name,
        kind: e.kind,
        config: e.config,
        hasRootCredential: e.sealed !== undefined,
        policies: Object.values(e.policies),
      })),
    };
  }

  async setRole(device: string, role: string, granted: boolean): Promise<TeamView> {
    if (!(ROLES as readonly string[]).includes(role)) throw new RpcError('bad-input', `a role is one of ${ROLES.join(', ')}`);
    await this.commit([{ type: granted ? 'role.grant' : 'role.revoke', device, role: role as Role }]);
    return this.view();
  }

  /** Pins the distant vault's engine key if its fingerprint is the one the person was given. */
  async pinEngineKey(expectedFingerprint: string): Promise<TeamView> {
    const { server } = await this.sync.team();
    let spki: string;
    try {
      const r = await this.fetchFn(`${server}/v1/engine-key`, { credentials: 'omit', cache: 'no-store' });
      spki = String(((await r.json()) as { spki?: unknown }).spki ?? '');
      fromBase64(spki);
    } catch {
      throw new RpcError('sync-failed', 'the distant vault did not give its engine key');
    }
    const seen = engineKeyFingerprint(fromBase64(spki));
    const typed = expectedFingerprint.toLowerCase().replace(/[^0-9a-f]/g, '');
    if (typed.length < 16 || !seen.replace(/ /g, '').startsWith(typed))
      throw new RpcError('bad-input', `the distant vault's engine key has fingerprint ${seen}, not the one given: nothing was pinned`);
    await this.commit([{ type: 'engine.key', spki }]);
    return this.view();
  }

  /** Configures an engine; a root credential (JSON) is sealed here to the pinned engine key. */
  async configure(engine: string, kind: string, config: unknown, rootCredential?: unknown): Promise<TeamView> {
    if (!(ENGINE_KINDS as readonly string[]).includes(kind))
      throw new RpcError('bad-input', `an engine kind is one of ${ENGINE_KINDS.join(', ')}`);
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new RpcError('bad-input', 'config is an object');
    configProblem(() => {
      checkEngineConfig(kind as EngineKind, config as Record<string, unknown>);
      if (rootCredential !== undefined) checkEngineRoot(kind as EngineKind, rootCredential);
    });
    const { state } = await this.sync.team();
    let sealed: string | undefined;
    if (rootCredential !== undefined) {
      const key = governance(state).engineKey;
      if (!key) throw new RpcError('bad-input', 'pin the distant vault’s engine key first');
      sealed = await sealToEngine(key, utf8(canonicalJson(rootCredential)), { vault: state.vault, engine, kind });
    }
    await this.commit([
      { type: 'engine.config', engine, kind: kind as EngineKind, config: config as Record<string, unknown>, ...(sealed ? { sealed } : {}) },
    ]);
    return this.view();
  }

  async setPolicy(engine: string, policy: EnginePolicy): Promise<TeamView> {
    const { state } = await this.sync.team();
    const def = governance(state).engines[engine];
    const problem = def && configProblem(() => policyProblem(def.kind, def.config, policy));
    if (problem) throw new RpcError('bad-input', `engine ${engine}: ${problem}`);
    await this.commit([{ type: 'engine.policy', engine, policy }]);
    return this.view();
  }

  async remove(engine: string): Promise<TeamView> {
    await this.commit([{ type: 'engine.remove', engine }]);
    return this.view();
  }

  private async commit(bodies: EntryBody[]): Promise<void> {
    try {
      await this.sync.commitEntries(bodies);
    } catch (e) {
      // the log's own refusal (not an admin, the last admin, ...) says what rule stopped it
      if (e instanceof RpcError) throw e;
      const m = e instanceof Error ? e.message : 'refused';
      throw new RpcError('bad-input', m);
    }
  }
}

/** What `check` returns; a configuration that does not hold is the caller's bad input, said as the check says it. */
function configProblem<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof EngineConfigError) throw new RpcError('bad-input', e.message);
    throw e;
  }
}
