/**
 * The malicious-server suite: a distant vault that lies (test/harness/evil-server.ts) against
 * the real client. Each lie must be caught as a typed LogError, and nothing wrong may be
 * applied or decrypted: the replica's head and values stay exactly as they were.
 */

import { mkdtempSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Replica } from '../../src/background/sync/replica.ts';
import { VaultClient } from '../../src/background/sync/vault-client.ts';
import { newDevice } from '../../src/core/crypto/device.ts';
import type { VaultKeys } from '../../src/core/crypto/keys.ts';
import { entryHash, isLogError, type LogEntry, nextEntry, signEntry } from '../../src/core/sync/log.ts';
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

/** Streams `total` bytes (a JSON prefix, then filler) until the client goes away; counts what went out. */
function endless(res: ServerResponse, contentType: string, prefix: string, filler: string, total: number): { sent: () => number } {
  let sent = 0;
  let gone = false;
  res.on('close', () => {
    gone = true;
  });
  res.writeHead(200, { 'content-type': contentType });
  const chunk = filler.repeat(Math.ceil((256 * 1024) / filler.length));
  const pump = () => {
    while (!gone && sent < total) {
      const ok = res.write(sent === 0 ? prefix : chunk);
      sent += sent === 0 ? prefix.length : chunk.length;
      if (!ok) return void res.once('drain', pump);
    }
    if (!gone) res.end();
  };
  pump();
  return { sent: () => sent };
}

describe('a distant vault that floods the client is refused with a typed error', () => {
  const GB = 1024 ** 3;

  it('a 1 GB answer: the client stops reading at its bound', async () => {
    let stream: { sent: () => number } | undefined;
    evil.raw = (path, res) => {
      if (!path.endsWith('/entries')) return false;
      stream = endless(res, 'application/json', '{"head":{"seq":9,"hash":"x"},"entries":[', '{"seq":1},', GB);
      return true;
    };
    const started = Date.now();
    expect(await refused(() => b.pull(rb))).toBe('oversized');
    expect(Date.now() - started).toBeLessThan(30_000);
    await new Promise((r) => setTimeout(r, 100));
    expect(stream?.sent()).toBeLessThan(GB / 4); // it hung up long before the end
  });

  it('a million tiny entries in one page', async () => {
    evil.raw = (path, res) => {
      if (!path.endsWith('/entries')) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"head":{"seq":1000001,"hash":"x"},"entries":[${'{"seq":1},'.repeat(999_999)}{"seq":1}],"blobs":{},"more":false}`);
      return true;
    };
    expect(await refused(() => b.pull(rb))).toBe('oversized');
  });

  it('an event stream line that never ends', async () => {
    let stream: { sent: () => number } | undefined;
    evil.raw = (path, res) => {
      if (!path.endsWith('/events')) return false;
      stream = endless(res, 'text/event-stream', 'event: head\ndata: ', 'x', GB);
      return true;
    };
    expect(await caught(b.events(rb.vault, () => {}, AbortSignal.timeout(60_000)))).toBe('oversized');
    await new Promise((r) => setTimeout(r, 100));
    expect(stream?.sent()).toBeLessThan(GB / 4);
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
