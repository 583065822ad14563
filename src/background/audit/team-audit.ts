/**
 * The team audit on a device (issue 16): its own audit records pushed to the distant vault as a
 * chain of sealed links (core/audit/team-chain.ts), and the whole team's read back and checked.
 *
 * Push: every record after the last one pushed, in order, sealed under the team audit key of the
 * current epoch, in batches; a device that was offline pushes its whole backlog when it is back.
 * A push whose answer was lost is found on the next one (the server says where the chain is; the
 * last stored link says which local record it held). After a push the device signs its chain head
 * into the vault's log (`audit.head`), at most once a minute: that is what a reader checks the
 * server against.
 *
 * Read (the `audit` role): each device's chain from its first link, checked against the head it
 * signed; records opened under their epoch's key and merged, each with its device. A chain that
 * does not hold is reported (and nothing after its break is shown as the device's).
 */
import type { AuditRecord } from '../../core/audit/audit.ts';
import { type AuditLink, CHAIN_START, type ChainCheck, checkChain, linkHash } from '../../core/audit/team-chain.ts';
import { openAuditRecord, sealAuditRecord } from '../../core/crypto/team.ts';
import type { VaultClient } from '../sync/vault-client.ts';

/** How far this device's records have gone: the last local record pushed, and its chain's head. */
export type TeamAuditPointer = { readonly localSeq: number; readonly seq: number; readonly hash: string; readonly anchoredAt?: number };

export const PUSH_BATCH = 500;
/** A chain head is signed into the log at most this often (each is a log entry). */
export const ANCHOR_EVERY_MS = 60_000;

export type PushDeps = {
  readonly client: Pick<VaultClient, 'auditPush' | 'auditLinks'>;
  readonly vault: string;
  readonly device: string;
  readonly epoch: number;
  /** the team audit key of an epoch this device holds a vault key for */
  readonly keyFor: (epoch: number) => Promise<CryptoKey | undefined>;
  /** local records after `localSeq`, oldest first */
  readonly records: (afterLocalSeq: number, limit: number) => Promise<{ seq: number; record: AuditRecord }[]>;
  readonly pointer: { get(): Promise<TeamAuditPointer | undefined>; set(p: TeamAuditPointer): Promise<void> };
  /** signs the head into the vault's log */
  readonly anchor: (head: { seq: number; hash: string }) => Promise<void>;
  readonly now: () => number;
};

/** Pushes every record not yet pushed; the number of links added. */
export async function pushTeamAudit(d: PushDeps): Promise<number> {
  const key = await d.keyFor(d.epoch);
  if (!key) return 0;
  let p: TeamAuditPointer = (await d.pointer.get()) ?? { localSeq: 0, seq: 0, hash: CHAIN_START };
  let pushed = 0;
  for (let round = 0; round < 10_000; round++) {
    const batch = await d.records(p.localSeq, PUSH_BATCH);
    if (batch.length === 0) break;
    const links: (AuditLink & { hash: string })[] = [];
    let prev = p.hash;
    for (const [i, r] of batch.entries()) {
      const seq = p.seq + 1 + i;
      const sealed = await sealAuditRecord(
        key,
        { vault: d.vault, device: d.device, seq, epoch: d.epoch },
        { localSeq: r.seq, record: r.record },
      );
      const link = { device: d.device, seq, prev, epoch: d.epoch, sealed };
      const hash = await linkHash(link);
      links.push({ ...link, hash });
      prev = hash;
    }
    const answer = await d.client.auditPush(d.vault, links);
    if (!answer.ok) {
      // the server's chain is elsewhere (a push whose answer was lost): learn where, and go on from there
      p = await resync(d, p, answer.head);
      continue;
    }
    const last = links[links.length - 1] as { seq: number; hash: string };
    p = { ...p, localSeq: (batch[batch.length - 1] as { seq: number }).seq, seq: last.seq, hash: last.hash };
    await d.pointer.set(p);
    pushed += links.length;
  }
  if (p.seq > 0 && (pushed > 0 || p.anchoredAt === undefined) && d.now() - (p.anchoredAt ?? 0) >= ANCHOR_EVERY_MS) {
    await d.anchor({ seq: p.seq, hash: p.hash });
    await d.pointer.set({ ...p, anchoredAt: d.now() });
  }
  return pushed;
}

/** Where the server's copy of this device's chain ends, read from its own links (which say which local record each held). */
async function resync(d: PushDeps, p: TeamAuditPointer, head: { seq: number; hash: string } | undefined): Promise<TeamAuditPointer> {
  if (!head || head.seq <= p.seq) throw new Error('the distant vault refused this device’s audit chain');
  const links = await d.client.auditLinks(d.vault, d.device, p.seq, head.seq - p.seq);
  let prev = p.hash;
  let at = p;
  for (const l of links) {
    if (l.prev !== prev || l.hash !== (await linkHash(l)))
      throw new Error('the distant vault’s copy of this device’s audit chain does not hold');
    const key = await d.keyFor(l.epoch);
    const opened = key
      ? ((await openAuditRecord(key, { vault: d.vault, device: d.device, seq: l.seq, epoch: l.epoch }, l.sealed)) as { localSeq?: number })
      : {};
    at = { ...at, seq: l.seq, hash: l.hash, localSeq: opened.localSeq ?? at.localSeq };
    prev = l.hash;
  }
  await d.pointer.set(at);
  return at;
}

export type TeamAuditEntry = { readonly device: string; readonly seq: number; readonly anchored: boolean; readonly record: AuditRecord };
export type DeviceChain = { readonly device: string; readonly check: ChainCheck; readonly records: number };

export type ReadDeps = {
  readonly client: Pick<VaultClient, 'auditHeads' | 'auditLinks'>;
  readonly vault: string;
  readonly keyFor: (epoch: number) => Promise<CryptoKey | undefined>;
  /** each device's head as signed in the log */
  readonly signed: Readonly<Record<string, { readonly seq: number; readonly hash: string }>>;
};

/** The team's records, checked chain by chain, newest first; and how each chain stands. */
export async function readTeamAudit(d: ReadDeps): Promise<{ entries: TeamAuditEntry[]; chains: DeviceChain[] }> {
  const devices = new Set([...(await d.client.auditHeads(d.vault)).map((h) => h.device), ...Object.keys(d.signed)]);
  const entries: TeamAuditEntry[] = [];
  const chains: DeviceChain[] = [];
  for (const device of devices) {
    const links: (AuditLink & { hash: string })[] = [];
    for (;;) {
      const page = await d.client.auditLinks(d.vault, device, links.length, 1000);
      links.push(...page);
      if (page.length < 1000) break;
    }
    const head = d.signed[device];
    let check = await checkChain(links, head);
    let opened = 0;
    for (const l of links.slice(0, check.through)) {
      const key = await d.keyFor(l.epoch);
      if (!key) continue; // an epoch before this device joined
      const x = (await openAuditRecord(key, { vault: d.vault, device, seq: l.seq, epoch: l.epoch }, l.sealed).catch(() => undefined)) as
        | { record?: AuditRecord }
        | undefined;
      if (!x?.record) {
        // chained, but not sealed by a member: invented past the last signed head
        check = {
          through: l.seq - 1,
          anchored: Math.min(check.anchored, l.seq - 1),
          findings: [...check.findings, { kind: 'broken', seq: l.seq }],
        };
        break;
      }
      entries.push({ device, seq: l.seq, anchored: l.seq <= check.anchored, record: x.record });
      opened++;
    }
    chains.push({ device, check, records: opened });
  }
  entries.sort((a, b) => b.record.time - a.record.time);
  return { entries, chains };
}
