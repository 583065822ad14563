/**
 * Leases (issue 15): what an engine issued, to which device, until when, and how its revocation
 * is going. Kept in the store so stateless replicas share them.
 *
 *   active       issued and in use; renewable up to max_expires
 *   revoking     its revocation is due or failed and will be retried (next_attempt)
 *   irrevocable  revocation failed N times: still retried hourly, and shown to admins
 *   revoked      done (rows are kept a while for the record)
 *
 * `next_attempt` is when the sweeper next looks at a lease: its expiry while active, now when a
 * revocation is asked for, the back-off after a failure; a claim moves it forward by a visibility
 * timeout, so a replica that dies mid-revocation leaves the lease to be claimed again later.
 */

export const LEASE_STATES = ['active', 'revoking', 'irrevocable', 'revoked'] as const;
export type LeaseState = (typeof LEASE_STATES)[number];

export type Lease = {
  readonly id: string;
  readonly vault: string;
  readonly engine: string;
  readonly role: string;
  readonly device: string;
  readonly issued: number;
  readonly expires: number;
  readonly maxExpires: number;
  readonly renewable: boolean;
  readonly state: LeaseState;
  readonly attempts: number;
  readonly nextAttempt: number;
  readonly lastError?: string;
  /** what the engine needs to revoke it (a role name, a key id), sealed by the key provider */
  readonly revokeData: string;
};

export interface LeaseStore {
  insert(l: Lease): Promise<void>;
  get(id: string): Promise<Lease | undefined>;
  /** live (active or being revoked) leases of a device in a vault, and of the whole vault */
  countLive(vault: string, device?: string): Promise<number>;
  list(vault: string, device?: string): Promise<Lease[]>;
  /** extends an active lease of `device` that has not expired, up to its max; false otherwise */
  renew(id: string, device: string, expires: number, now: number): Promise<boolean>;
  /**
   * A lease recorded before its credential was made (state `revoking`, no attempt yet, its next
   * attempt a while ahead) becomes active with the revocation data of what was made; false if a
   * sweeper claimed it meanwhile (the credential took too long, or its server was thought dead).
   */
  activate(id: string, expires: number, revokeData: string): Promise<boolean>;
  /** an active lease is to be revoked now (its device, an admin); false if it is not active */
  markRevoking(id: string, now: number): Promise<boolean>;
  /**
   * Claims up to `limit` leases due at `now` (expired active ones, and revocations due), moving
   * their next attempt to `now + visibilityMs` and counting the attempt, in one short
   * transaction: no two replicas claim the same lease (PostgreSQL: FOR UPDATE SKIP LOCKED).
   */
  claimDue(now: number, limit: number, visibilityMs: number): Promise<Lease[]>;
  /** The outcome of a revocation: revoked, or its next attempt and why it failed. */
  finish(id: string, outcome: { readonly state: LeaseState; readonly nextAttempt: number; readonly lastError?: string }): Promise<void>;
  /** how many leases are in each state, by engine (for /metrics) */
  counts(): Promise<{ engine: string; state: LeaseState; n: number }[]>;
}

export const LEASE_SCHEMA = (t: { bigint: string }) => `
CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, vault TEXT NOT NULL, engine TEXT NOT NULL, role TEXT NOT NULL,
  device TEXT NOT NULL, issued ${t.bigint} NOT NULL, expires ${t.bigint} NOT NULL, max_expires ${t.bigint} NOT NULL,
  renewable INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt ${t.bigint} NOT NULL,
  last_error TEXT, revoke_data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS leases_due ON leases (next_attempt) WHERE state <> 'revoked';
CREATE INDEX IF NOT EXISTS leases_by_device ON leases (vault, device);
`;

export type LeaseRow = {
  id: string;
  vault: string;
  engine: string;
  role: string;
  device: string;
  issued: number | string;
  expires: number | string;
  max_expires: number | string;
  renewable: number;
  state: string;
  attempts: number;
  next_attempt: number | string;
  last_error: string | null;
  revoke_data: string;
};

export function leaseFrom(r: LeaseRow): Lease {
  return {
    id: r.id,
    vault: r.vault,
    engine: r.engine,
    role: r.role,
    device: r.device,
    issued: Number(r.issued),
    expires: Number(r.expires),
    maxExpires: Number(r.max_expires),
    renewable: r.renewable === 1,
    state: r.state as LeaseState,
    attempts: r.attempts,
    nextAttempt: Number(r.next_attempt),
    ...(r.last_error ? { lastError: r.last_error } : {}),
    revokeData: r.revoke_data,
  };
}

export const leaseParams = (l: Lease) => [
  l.id,
  l.vault,
  l.engine,
  l.role,
  l.device,
  l.issued,
  l.expires,
  l.maxExpires,
  l.renewable ? 1 : 0,
  l.state,
  l.attempts,
  l.nextAttempt,
  l.lastError ?? null,
  l.revokeData,
];
