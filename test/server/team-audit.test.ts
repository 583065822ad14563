/**
 * The team audit (issue 16) over real HTTP on SQLite and PostgreSQL: three member devices (real
 * VaultClients) push their records as sealed chains and sign their heads into the log; a member
 * with the `audit` role reads one merged, attributed view. A server that drops a record, swaps
 * two, or serves an old one again is caught (the database is changed behind the server's back).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushTeamAudit, readTeamAudit, type TeamAuditPointer } from '../../src/background/audit/team-audit.ts';
import type { Replica } from '../../src/background/sync/replica.ts';
import type { VaultClient } from '../../src/background/sync/vault-client.ts';
import type { AuditRecord } from '../../src/core/audit/audit.ts';
import { newVaultKey } from '../../src/core/crypto/share.ts';
import { deriveTeamKeys } from '../../src/core/crypto/team.ts';
import { governance } from '../../src/core/sync/log.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import type { Store } from '../../src/server/store.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { device } from '../harness/sync.ts';
import { type Engine, openStore, type RunningServer, startVaultServer } from '../harness/vault-server.ts';

let pgServer: Postgres;
beforeAll(async () => {
  pgServer = await startPostgres();
});
afterAll(async () => {
  await pgServer?.stop();
});

const fake = (device: string, n: number): AuditRecord => ({
  time: 1_700_000_000_000 + n * 1000,
  kind: 'request',
  correlationId: `${device}-${n}`,
  origin: 'https://agent.example',
  secret: 'FAKE-secret-name',
  decision: 'allowed',
  status: 200,
});

describe.each<Engine>(['sqlite', 'postgres'])('the team audit on %s', (engine) => {
  let srv: RunningServer;
  let store: Store;
  let dir: string;
  let clients: VaultClient[];
  let replicas: Replica[];
  let vault: string;
  let keyFor: (epoch: number) => Promise<CryptoKey | undefined>;
  const local = new Map<string, AuditRecord[]>();
  const pointers = new Map<string, TeamAuditPointer>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyhole-team-audit-'));
    store = engine === 'sqlite' ? openSqlite(dir) : await openStore(engine, pgServer.url);
    srv = await startVaultServer(store, { loginsPerMinute: 100_000, requestsPerMinute: 1_000_000 });
    clients = await Promise.all(['one', 'two', 'three'].map((n) => device(srv.origin, n)));
    const [first, ...others] = clients as [VaultClient, ...VaultClient[]];
    const r0 = await first.createVault();
    vault = r0.vault;
    await first.push(
      r0,
      others.map((d) => ({ body: { type: 'member.add', device: d.device.public } })),
    );
    // device one may read the team's audit
    await first.push(r0, [{ body: { type: 'role.grant', device: first.device.public.id, role: 'audit' } }]);
    const { Replica } = await import('../../src/background/sync/replica.ts');
    replicas = [r0, new Replica(vault), new Replica(vault)];
    for (const [i, c] of clients.entries()) if (i > 0) await c.pull(replicas[i] as Replica);
    const keys = await deriveTeamKeys(newVaultKey(), vault, 1);
    keyFor = async (epoch) => (epoch === 1 ? keys.audit : undefined);
  });
  afterAll(async () => {
    await srv?.close();
  });

  /** Device `i` has written `n` more records and pushes (anchoring its head right away). */
  async function writeAndPush(i: number, n: number): Promise<number> {
    const c = clients[i] as VaultClient;
    const id = c.device.public.id;
    const mine = local.get(id) ?? [];
    for (let k = 0; k < n; k++) mine.push(fake(`d${i}`, mine.length + 1));
    local.set(id, mine);
    return pushTeamAudit({
      client: c,
      vault,
      device: id,
      epoch: 1,
      keyFor,
      records: async (after, limit) => mine.slice(after, after + limit).map((record, k) => ({ seq: after + k + 1, record })),
      pointer: { get: async () => pointers.get(id), set: async (p) => void pointers.set(id, p) },
      anchor: async (head) => {
        const r = replicas[i] as Replica;
        await c.pull(r);
        await c.push(r, [{ body: { type: 'audit.head', seq: head.seq, hash: head.hash } }]);
      },
      now: () => Date.now() + (pointers.get(id)?.seq ?? 0) * 60_000, // every push may anchor
    });
  }

  async function read() {
    const r = replicas[0] as Replica;
    await (clients[0] as VaultClient).pull(r);
    const state = r.membership;
    if (!state) throw new Error('no state');
    return readTeamAudit({ client: clients[0] as VaultClient, vault, keyFor, signed: governance(state).auditHeads ?? {} });
  }

  it('records from all three devices appear in one view, each with its device; a device offline for 200 records pushes them all', async () => {
    expect(await writeAndPush(0, 30)).toBe(30);
    expect(await writeAndPush(1, 20)).toBe(20);
    expect(await writeAndPush(2, 200)).toBe(200); // the backlog of a device that was away
    const { entries, chains } = await read();
    expect(entries).toHaveLength(250);
    for (const [i, c] of clients.entries()) {
      const mine = entries.filter((e) => e.device === c.device.public.id);
      expect(mine.map((e) => e.record.correlationId).sort()).toEqual(
        (local.get(c.device.public.id) ?? []).map((r) => r.correlationId).sort(),
      );
      expect(mine.every((e) => e.record.correlationId.startsWith(`d${i}-`))).toBe(true);
    }
    expect(chains.every((c) => c.check.findings.length === 0 && c.check.anchored === c.check.through)).toBe(true);
  });

  it('only the audit role reads other devices’ records; each device reads its own', async () => {
    const two = clients[1] as VaultClient;
    await expect(two.auditLinks(vault, (clients[0] as VaultClient).device.public.id, 0)).rejects.toMatchObject({ status: 403 });
    expect(await two.auditLinks(vault, two.device.public.id, 0)).toHaveLength(20);
    expect((await two.auditHeads(vault)).map((h) => h.device)).toEqual([two.device.public.id]);
  });

  it('a push whose answer was lost is found on the next one: nothing twice, nothing lost', async () => {
    const c = clients[1] as VaultClient;
    const id = c.device.public.id;
    const before = pointers.get(id) as TeamAuditPointer;
    await writeAndPush(1, 5);
    pointers.set(id, before); // as if the answer never came back
    expect(await writeAndPush(1, 3)).toBe(3);
    const { entries, chains } = await read();
    expect(entries.filter((e) => e.device === id)).toHaveLength(28);
    expect(chains.find((x) => x.device === id)?.check.findings).toEqual([]);
  });

  it('a server that drops a record, swaps two, or serves an old one again is caught', async () => {
    const id = (clients[2] as VaultClient).device.public.id;
    const rows = async () =>
      sql(`SELECT seq, prev, hash, sealed FROM team_audit WHERE vault = '${vault}' AND device = '${id}' ORDER BY seq`);
    const original = await rows();
    const findings = async () => (await read()).chains.find((c) => c.device === id)?.check.findings ?? [];
    // dropped: a record in the middle
    await sql(`DELETE FROM team_audit WHERE vault = '${vault}' AND device = '${id}' AND seq = 100`);
    expect((await findings())[0]).toMatchObject({ kind: 'gap', seq: 100 });
    await restore(original, id);
    expect(await findings()).toEqual([]);
    // swapped: two records' content exchanged
    const [a, b] = [original[49], original[50]] as Record<string, unknown>[];
    await setRow(id, 50, b as Record<string, unknown>);
    await setRow(id, 51, a as Record<string, unknown>);
    expect((await findings())[0]).toMatchObject({ kind: 'broken', seq: 50 });
    await restore(original, id);
    // replayed: an old record served again in a later place
    await setRow(id, 150, original[9] as Record<string, unknown>);
    expect((await findings())[0]?.kind).toBe('broken');
    await restore(original, id);
    // cut off at the end, below the signed head
    await sql(`DELETE FROM team_audit WHERE vault = '${vault}' AND device = '${id}' AND seq > 190`);
    expect((await findings())[0]).toMatchObject({ kind: 'withheld', seq: 191 });
    await restore(original, id);
    expect(await findings()).toEqual([]);
  });

  async function setRow(device: string, seq: number, from: Record<string, unknown>) {
    await sql(
      `UPDATE team_audit SET prev = '${from.prev}', hash = '${from.hash}', sealed = '${from.sealed}' WHERE vault = '${vault}' AND device = '${device}' AND seq = ${seq}`,
    );
  }
  async function restore(original: Record<string, unknown>[], device: string) {
    await sql(`DELETE FROM team_audit WHERE vault = '${vault}' AND device = '${device}'`);
    for (const r of original)
      await sql(
        `INSERT INTO team_audit (vault, device, seq, prev, hash, epoch, sealed) VALUES ('${vault}', '${device}', ${r.seq}, '${r.prev}', '${r.hash}', 1, '${r.sealed}')`,
      );
  }
  async function sql(text: string): Promise<Record<string, unknown>[]> {
    if (engine === 'sqlite') {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(join(dir, 'keyhole.sqlite'));
      try {
        const st = db.prepare(text);
        if (st.reader) return st.all() as Record<string, unknown>[];
        st.run();
        return [];
      } finally {
        db.close();
      }
    }
    const c = new pg.Client({ connectionString: pgServer.url });
    await c.connect();
    try {
      return (await c.query(text)).rows;
    } finally {
      await c.end();
    }
  }
});
