/**
 * The malicious-server suite: a distant vault that lies (test/harness/evil-server.ts) against
 * the real client. Each lie must be caught as a typed LogError, and nothing wrong may be
 * applied or decrypted: the replica's head and values stay exactly as they were.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Replica } from '../../src/background/replica.ts';
import { VaultClient } from '../../src/background/vault-client.ts';
import { newDevice } from '../../src/core/device.ts';
import type { VaultKeys } from '../../src/core/keys.ts';
import { entryHash, isLogError, type LogEntry, nextEntry, signEntry } from '../../src/core/log.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import { type EvilServer, startEvilServer } from '../harness/evil-server.ts';
import { device, putItem, values, vaultKeys } from '../harness/sync.ts';
import { startVaultServer } from '../harness/vault-server.ts';

let evil: EvilServer;
let a: VaultClient;
let b: VaultClient;
let ra: Replica;
let rb: Replica;
let keys: VaultKeys;

beforeEach(async () => {
  evil = await startEvilServer(entryHash);
  a = await device(evil.origin, 'a');
  b = await device(evil.origin, 'b');
  ra = await a.createVault();
  keys = await vaultKeys(ra.vault);
  await a.push(ra, [{ body: { type: 'member.add', device: b.device.public } }]);
  await a.push(ra, [await putItem(keys, ra, 'alpha', 'sk-FAKE-alpha'), await putItem(keys, ra, 'beta', 'sk-FAKE-beta')]);
  rb = new Replica(ra.vault);
  await b.pull(rb);
});
afterEach(async () => {
  await evil.close();
});

async function caught(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isLogError(e)) return e.code;
    throw e;
  }
  return 'not caught';
}

/** Run a lie against b and check it changed nothing. */
async function refused(lie: () => Promise<unknown>): Promise<string> {
  const before = { head: rb.head, alpha: await values(keys, rb, 'alpha'), items: rb.itemIds().sort() };
  const code = await caught(lie());
  expect({ head: rb.head, alpha: await values(keys, rb, 'alpha'), items: rb.itemIds().sort() }).toEqual(before);
  return code;
}

describe('a lying distant vault is caught', () => {
  it('rollback: an older head than one already accepted', async () => {
    const head = rb.head;
    evil.main.entries.pop(); // forget the last entry
    expect(await refused(() => b.pull(rb))).toBe('rollback');
    expect(rb.head).toEqual(head);
  });

  it('dropped entry: a page missing one entry in the middle', async () => {
    await a.push(ra, [await putItem(keys, ra, 'gamma', 'sk-FAKE-gamma'), await putItem(keys, ra, 'delta', 'sk-FAKE-delta')]);
    evil.tamper = (p) => ({ ...p, entries: p.entries.filter((_, i) => i !== 0) });
    expect(await refused(() => b.pull(rb))).toBe('gap');
  });

  it('reordered entries', async () => {
    await a.push(ra, [await putItem(keys, ra, 'gamma', 'sk-FAKE-gamma'), await putItem(keys, ra, 'delta', 'sk-FAKE-delta')]);
    evil.tamper = (p) => ({ ...p, entries: [...p.entries].reverse() });
    expect(await refused(() => b.pull(rb))).toBe('gap');
  });

  it('swapped ciphertexts: two items’ blobs served under each other’s hashes', async () => {
    await a.push(ra, [await putItem(keys, ra, 'gamma', 'sk-FAKE-gamma'), await putItem(keys, ra, 'delta', 'sk-FAKE-delta')]);
    evil.tamper = (p) => {
      const [h1, h2] = Object.keys(p.blobs) as [string, string];
      return { ...p, blobs: { [h1]: p.blobs[h2] as string, [h2]: p.blobs[h1] as string } };
    };
    expect(await refused(() => b.pull(rb))).toBe('bad-entry');
  });

  it('swapped ciphertexts: an entry rewritten to point at another item’s blob', async () => {
    await a.push(ra, [await putItem(keys, ra, 'gamma', 'sk-FAKE-gamma'), await putItem(keys, ra, 'delta', 'sk-FAKE-delta')]);
    evil.tamper = (p) => {
      const [e1, e2] = p.entries as [LogEntry, LogEntry];
      const blob1 = (e1.body as { blob: string }).blob;
      return { ...p, entries: [e1, { ...e2, body: { ...e2.body, blob: blob1 } as LogEntry['body'] }] };
    };
    expect(await refused(() => b.pull(rb))).toBe('bad-signature');
  });

  it('an unsigned entry (garbage signature) injected by the server', async () => {
    const m = rb.membership as NonNullable<Replica['membership']>;
    const fake = await signEntry(nextEntry(m, a.device.public.id, { type: 'item.destroy', item: 'alpha', blobs: [] }), a.device.sign);
    evil.main.entries.push({ ...fake, sig: btoa('x'.repeat(64)) });
    expect(await refused(() => b.pull(rb))).toBe('bad-signature');
  });

  it('an entry signed by a device that is not a member (the server’s own key)', async () => {
    const server = await newDevice('server');
    const m = rb.membership as NonNullable<Replica['membership']>;
    evil.main.entries.push(
      await signEntry(nextEntry(m, server.public.id, { type: 'item.destroy', item: 'alpha', blobs: [] }), server.sign),
    );
    expect(await refused(() => b.pull(rb))).toBe('not-member');
  });

  it('the server adding a member of its own', async () => {
    const server = await newDevice('server');
    const m = rb.membership as NonNullable<Replica['membership']>;
    evil.main.entries.push(await signEntry(nextEntry(m, server.public.id, { type: 'member.add', device: server.public }), server.sign));
    expect(await refused(() => b.pull(rb))).toBe('not-member');
  });

  it('a key substituted for a member (same id, the server’s key)', async () => {
    const server = await newDevice('server');
    const m = rb.membership as NonNullable<Replica['membership']>;
    const forged = await signEntry(nextEntry(m, a.device.public.id, { type: 'item.destroy', item: 'alpha', blobs: [] }), server.sign);
    evil.main.entries.push(forged);
    expect(await refused(() => b.pull(rb))).toBe('bad-signature');
  });

  it('fork: each device shown its own history; caught by comparing heads, and when the server rejoins them', async () => {
    evil.fork(b.device.public.id);
    await a.push(ra, [await putItem(keys, ra, 'gamma', 'sk-FAKE-from-a')]);
    await b.push(rb, [await putItem(keys, rb, 'gamma', 'sk-FAKE-from-b')]);
    expect(ra.seq).toBe(rb.seq);
    expect(ra.headFingerprint).not.toBe(rb.headFingerprint); // what people comparing fingerprints see
    // a tells b the head it saw (out of band, or through another member device): b finds the fork.
    expect(await caught(Promise.resolve().then(() => rb.checkToldHead(ra.head)))).toBe('fork');
    // The server rejoins b to the main history: b's accepted entry differs from the one now served.
    const forkedHead = rb.head;
    evil.fork(b.device.public.id); // a fresh copy of main: a's history
    expect(await caught(b.pull(rb))).toBe('fork');
    expect(rb.head).toEqual(forkedHead);
  });

  it('hiding entries another device saw: b was told of a head the server never delivers', async () => {
    await a.push(ra, [await putItem(keys, ra, 'gamma', 'sk-FAKE-gamma')]);
    evil.fork(b.device.public.id).entries.pop(); // b's view stops before a's last entry
    rb.checkToldHead(ra.head); // a's head, ahead of b: noted, checked as b catches up
    expect(await refused(() => b.pull(rb))).toBe('rollback');
  });
});

describe('replayed and relayed logins', () => {
  it('a login signed for the impostor does not open a session on the real server', async () => {
    const real = await startVaultServer(openSqlite(mkdtempSync(join(tmpdir(), 'keyhole-real-'))), { loginsPerMinute: 1000 });
    try {
      const victim = await device(real.origin, 'victim');
      // The impostor relays the real server's challenge to the victim, who signs it for the impostor's origin.
      evil.relayChallengesTo = real.origin;
      const viaImpostor = new VaultClient(evil.origin, victim.device);
      await viaImpostor.vaults();
      const captured = evil.logins.at(-1);
      expect(captured?.device).toBe(victim.device.public.id);
      const replay = await fetch(`${real.origin}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(captured),
      });
      expect(replay.status).toBe(401);
      // The victim's own login to the real server still works.
      expect(await victim.vaults()).toEqual([]);
    } finally {
      await real.close();
    }
  });
});
