/**
 * The extension's sync service (background/sync/sync-service.ts) end to end in Node: real
 * VaultServices on IndexedDB (fake-indexeddb), the real distant vault over real HTTP, and a
 * network that can be cut. Obvious fake values only.
 */
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openKeyholeDB } from '../../src/background/db.ts';
import { SyncService, serverOrigin } from '../../src/background/sync/sync-service.ts';
import { VaultService } from '../../src/background/vault/vault-service.ts';
import type { InjectionRule } from '../../src/core/agents/policy.ts';
import type { SyncStatus } from '../../src/core/api.ts';
import { newDevice } from '../../src/core/crypto/device.ts';
import { unwrapVaultKey } from '../../src/core/crypto/share.ts';
import { entryHash, type LogEntry } from '../../src/core/sync/log.ts';
import { sealSecret } from '../../src/core/vault/secrets.ts';
import { startEvilServer } from '../harness/evil-server.ts';
import { memorySession } from '../harness/session.ts';
import { openStore, type RunningServer, startVaultServer } from '../harness/vault-server.ts';

const PASS = 'a long enough passphrase (FAKE)';
const rule: InjectionRule = {
  hosts: ['api.example.test'],
  pathPrefixes: [],
  methods: [],
  header: 'Authorization',
  template: 'Bearer {value}',
};

let srv: RunningServer;
beforeAll(async () => {
  srv = await startVaultServer(await openStore('sqlite'), { loginsPerMinute: 100_000, requestsPerMinute: 1_000_000 });
});
afterAll(async () => {
  await srv?.close();
});

/** A device: its own IndexedDB, vault and sync service, and a network cable the test can pull. */
async function deviceNamed(name: string) {
  const dbName = `kh-${crypto.randomUUID()}`;
  const db = await openKeyholeDB(dbName);
  const session = memorySession();
  const vault = new VaultService(db, session, 'test');
  await vault.create(PASS, 'pbkdf2-sha256');
  const net = { online: true, dropAnswers: 0 };
  const fetch: typeof globalThis.fetch = async (input, init) => {
    if (!net.online) throw new TypeError('fetch failed');
    const res = await globalThis.fetch(input, init);
    if (net.dropAnswers > 0 && init?.method === 'POST' && String(input).endsWith('/commits')) {
      net.dropAnswers--;
      throw new TypeError('connection reset'); // the commit reached the server; its answer did not
    }
    return res;
  };
  const sync = new SyncService(db, vault, { fetch });
  const names = async () => (await vault.listSecrets()).secrets.map((s) => s.name).sort();
  const value = async (secret: string) => {
    const s = await vault.findSecret(secret);
    if (!s) throw new Error(`${name} has no ${secret}`);
    return (await vault.useSecret(s.id)).value;
  };
  const update = async (secret: string, v: string) => {
    const s = await vault.findSecret(secret);
    if (!s) throw new Error(`${name} has no ${secret}`);
    return vault.updateSecret({ id: s.id, value: v });
  };
  /** the same storage seen by a restarted worker: new services, the session still in memory */
  const restarted = () => {
    const v = new VaultService(db, session, 'test');
    return { vault: v, sync: new SyncService(db, v, { fetch }) };
  };
  return { name, db, dbName, vault, sync, net, names, value, update, restarted };
}
type Dev = Awaited<ReturnType<typeof deviceNamed>>;

/** A syncing first device with `secrets`, and a second device paired to it. */
async function pair(secrets: Record<string, string> = {}): Promise<[Dev, Dev]> {
  const a = await deviceNamed('laptop');
  for (const [n, v] of Object.entries(secrets)) await a.vault.createSecret({ name: n, value: v, rule });
  await a.sync.enable(srv.origin, 'laptop');
  const b = await deviceNamed('desktop');
  const joining = await b.sync.join(srv.origin, 'desktop');
  expect(joining.joining).toBe(true);
  await a.sync.approve(joining.device?.pairingCode ?? '');
  const s = await b.sync.syncNow();
  expect(s.joining).toBe(false);
  return [a, b];
}

describe('sync between two devices of one person', () => {
  it('pairs a new device by code and brings it every secret, readable only after it is added', async () => {
    const a = await deviceNamed('laptop');
    await a.vault.createSecret({ name: 'openai', value: 'sk-FAKE-one', rule });
    const enabled = await a.sync.enable(srv.origin, 'laptop');
    expect(enabled.enabled).toBe(true);
    expect(enabled.lastError).toBeUndefined();
    expect(await a.value('openai')).toBe('sk-FAKE-one'); // re-sealed under the vault key, still opens

    const b = await deviceNamed('desktop');
    const joining = await b.sync.join(srv.origin, 'desktop');
    expect(joining.device?.pairingCode).toMatch(/^[0-9A-F]{4}(-[0-9A-F]{4}){4}$/);
    expect((await b.sync.syncNow()).joining).toBe(true); // nobody has added it yet
    expect(await b.names()).toEqual([]);

    await expect(a.sync.approve('0000-0000-0000-0000-0000')).rejects.toMatchObject({ code: 'sync-failed' });
    await expect(a.sync.approve('not a code')).rejects.toMatchObject({ code: 'bad-input' });
    // an approval racing sync runs (an alarm, an edit): both land, nothing is refused
    await a.vault.createSecret({ name: 'racing', value: 'FAKE-race', rule });
    const [approved, r1, r2] = await Promise.all([a.sync.approve(joining.device?.pairingCode ?? ''), a.sync.syncNow(), a.sync.syncNow()]);
    expect(approved).toMatchObject({ name: 'desktop' });
    expect([r1.lastError, r2.lastError]).toEqual([undefined, undefined]);

    const done = await b.sync.syncNow();
    expect(done.joining).toBe(false);
    await b.sync.syncNow();
    expect(await b.names()).toEqual(['openai', 'racing']);
    expect(await b.value('openai')).toBe('sk-FAKE-one');
    // both show the same head fingerprint and the same two members
    const sa = await a.sync.syncNow();
    expect(done.head?.fingerprint).toBe(sa.head?.fingerprint);
    expect(sa.members.map((m) => m.name).sort()).toEqual(['desktop', 'laptop', 'recovery key']);
  });

  it('a secret added or changed on one appears on the other', async () => {
    const [a, b] = await pair({ one: 'FAKE-1' });
    await b.vault.createSecret({ name: 'two', value: 'FAKE-2', rule });
    await b.update('one', 'FAKE-1b');
    await b.sync.syncNow();
    await a.sync.syncNow();
    expect(await a.names()).toEqual(['one', 'two']);
    expect(await a.value('one')).toBe('FAKE-1b');
    expect(await a.value('two')).toBe('FAKE-2');
  });

  it('a destroyed value leaves the server: the versions a put supersedes are pruned, the current one stays readable', async () => {
    const [a, b] = await pair({ rot: 'FAKE-rot-v1' });
    const vault = (await a.sync.syncNow()).vault as string;
    const id = (await a.vault.findSecret('rot'))?.id as string;
    /** the blobs the log names for the item, and which of them the server still holds */
    const blobs = async () => {
      const named = (await srv.store.entries(vault, 0, 10_000))
        .map((e) => JSON.parse(e.json) as LogEntry)
        .flatMap((e) => (e.body.type === 'item.put' && e.body.item === id ? [e.body.blob] : []));
      const held = new Set((await srv.store.blobs(vault, named)).map((x) => x.hash));
      return named.map((h) => held.has(h));
    };
    expect(await blobs()).toEqual([true]);
    // rotated, then promoted as compromised: v1 is destroyed here, and must not live on in the old blob
    await a.vault.rotate(id, { value: 'FAKE-rot-v2' });
    await a.vault.promote(id, { compromised: true });
    await a.sync.syncNow();
    expect(await blobs()).toEqual([false, true]);
    // the log still names the pruned version; the other device reads the current value
    await b.sync.syncNow();
    expect(await b.value('rot')).toBe('FAKE-rot-v2');
    // an edit on the other device prunes the version it replaces too
    await b.update('rot', 'FAKE-rot-v3');
    await b.sync.syncNow();
    expect(await blobs()).toEqual([false, false, true]);
    await a.sync.syncNow();
    expect(await a.value('rot')).toBe('FAKE-rot-v3');
    // a device that joins now reads every live secret, although the old versions are gone
    const c = await deviceNamed('tablet');
    const joining = await c.sync.join(srv.origin, 'tablet');
    await a.sync.approve(joining.device?.pairingCode ?? '');
    await c.sync.syncNow();
    await c.sync.syncNow();
    expect(await c.value('rot')).toBe('FAKE-rot-v3');
  });

  it('concurrent edits keep both heads: a put never prunes another device’s version it did not replace', async () => {
    const [a, b] = await pair({ both: 'FAKE-both-0' });
    a.net.online = false;
    await a.update('both', 'FAKE-both-a');
    await b.update('both', 'FAKE-both-b');
    await b.sync.syncNow();
    a.net.online = true;
    await a.sync.syncNow(); // a's put lands beside b's: a conflict, both heads kept
    const vault = (await a.sync.syncNow()).vault as string;
    const id = (await a.vault.findSecret('both'))?.id as string;
    const named = (await srv.store.entries(vault, 0, 10_000))
      .map((e) => JSON.parse(e.json) as LogEntry)
      .flatMap((e) => (e.body.type === 'item.put' && e.body.item === id ? [e.body.blob] : []));
    const held = (await srv.store.blobs(vault, named)).map((x) => x.hash);
    expect(held.length).toBeGreaterThanOrEqual(2); // both devices' versions
    expect((await a.sync.syncNow()).conflicts?.length ?? 0).toBeGreaterThan(0);
  });

  it('edits on both while offline converge with nothing lost; the conflict keeps both until the person picks', async () => {
    const [a, b] = await pair({ shared: 'FAKE-base', gone: 'FAKE-gone' });
    a.net.online = false;
    b.net.online = false;
    await a.update('shared', 'FAKE-from-a');
    await b.update('shared', 'FAKE-from-b');
    await a.vault.createSecret({ name: 'only-a', value: 'FAKE-a', rule });
    await b.vault.createSecret({ name: 'only-b', value: 'FAKE-b', rule });
    // deleted on one, edited on the other: the edit wins
    await a.vault.deleteSecret((await a.vault.findSecret('gone'))?.id ?? '');
    await b.update('gone', 'FAKE-gone-edited');

    const offline = await a.sync.syncNow();
    expect(offline.lastError?.code).toBe('network');
    expect(offline.nextAttemptAt).toBeGreaterThan(Date.now()); // backing off
    expect(await a.names()).toEqual(['only-a', 'shared']); // nothing local was touched

    a.net.online = true;
    b.net.online = true;
    await a.sync.syncNow();
    await b.sync.syncNow();
    const sa = await a.sync.syncNow();
    const sb = await b.sync.syncNow();
    for (const d of [a, b]) expect(await d.names()).toEqual(['gone', 'only-a', 'only-b', 'shared']);
    expect(await a.value('gone')).toBe('FAKE-gone-edited');
    expect(sa.head?.fingerprint).toBe(sb.head?.fingerprint);
    // the concurrent edit: both versions kept, shown as one conflict on both devices
    for (const s of [sa, sb]) {
      expect(s.conflicts).toHaveLength(1);
      expect(s.conflicts[0]?.versions.map((v) => v.author).sort()).toEqual(['desktop', 'laptop']);
    }
    // a restarted worker still shows the conflict (its versions' blobs are kept) and resolves it
    const again = b.restarted();
    const shown = await again.sync.status();
    expect(shown.conflicts).toEqual(sb.conflicts);
    const fromA = shown.conflicts[0]?.versions.find((v) => v.author === 'laptop');
    await again.sync.resolve(shown.conflicts[0]?.item ?? '', fromA?.entry ?? '');
    const after = await a.sync.syncNow();
    expect(after.conflicts).toEqual([]);
    expect((await b.sync.syncNow()).conflicts).toEqual([]);
    expect(await a.value('shared')).toBe('FAKE-from-a');
    expect(await b.value('shared')).toBe('FAKE-from-a');
  });

  it('a commit whose answer was lost is not sent twice', async () => {
    const [a, b] = await pair();
    await a.vault.createSecret({ name: 'once', value: 'FAKE-once', rule });
    a.net.dropAnswers = 1;
    expect((await a.sync.syncNow()).lastError?.code).toBe('network');
    const before = (await a.sync.status()).head?.seq ?? 0;
    const s = await a.sync.syncNow(); // pulls, finds its version in the log, sends nothing
    expect(s.lastError).toBeUndefined();
    expect(s.head?.seq).toBe(before + 1);
    await b.sync.syncNow();
    expect(await b.names()).toEqual(['once']);
    expect((await b.sync.status()).conflicts).toEqual([]);
  });

  it('a run that finds nothing new writes nothing and sends nothing, also after a worker restart', async () => {
    const [a] = await pair({ one: 'FAKE-1', two: 'FAKE-2' });
    const before = await a.sync.syncNow();
    const fresh = a.restarted();
    const after = await fresh.sync.syncNow();
    expect(after.lastError).toBeUndefined();
    expect(after.head).toEqual(before.head); // nothing was pushed
    expect(await fresh.vault.listSecrets().then((l) => l.secrets.map((s) => s.name).sort())).toEqual(['one', 'two']);
    // the stored replica keeps no blob of a settled item: those versions live in `secrets`
    expect((await a.db.get('syncReplica', 'replica'))?.blobs).toEqual([]);
  });

  it('a long first sync reports its progress page by page', async () => {
    const a = await deviceNamed('laptop');
    // sealed as createSecret seals them, written in one go (createSecret checks names one by one)
    const ring = await a.vault.keyring();
    const many = await Promise.all(
      Array.from({ length: 1200 }, (_, i) =>
        sealSecret(
          ring.keysFor(ring.epoch),
          { vaultId: ring.vaultId, id: crypto.randomUUID(), version: 1, epoch: ring.epoch },
          { name: `k${i}`, rule, notes: '', createdAt: 1, updatedAt: 1 },
          `FAKE-${i}`,
        ),
      ),
    );
    const tx = a.db.transaction('secrets', 'readwrite');
    await Promise.all([...many.map((s) => tx.store.put(s)), tx.done]);
    await a.sync.enable(srv.origin, 'laptop');
    const b = await deviceNamed('desktop');
    const joining = await b.sync.join(srv.origin, 'desktop');
    await a.sync.approve(joining.device?.pairingCode ?? '');
    const seen: Promise<SyncStatus>[] = [];
    b.sync.onChange = () => seen.push(b.sync.status());
    await b.sync.syncNow();
    const progress = (await Promise.all(seen)).flatMap((s) => (s.progress ? [s.progress] : []));
    expect(progress.length).toBeGreaterThanOrEqual(2); // pages of 1,000 entries
    expect(progress.some((p) => p.seq < p.head)).toBe(true); // shown before the end
    expect((await b.sync.status()).progress).toBeUndefined(); // and gone when done
    expect((await b.names()).length).toBe(1200);
  });

  it('a deletion reaches the other device', async () => {
    const [a, b] = await pair({ temp: 'FAKE-temp', keep: 'FAKE-keep' });
    await a.vault.deleteSecret((await a.vault.findSecret('temp'))?.id ?? '');
    await a.sync.syncNow();
    await b.sync.syncNow();
    expect(await b.names()).toEqual(['keep']);
  });

  it('refuses bad setup input with typed errors', async () => {
    const a = await deviceNamed('x');
    for (const bad of ['ftp://example.test', 'http://vault.example.test', 'https://user:pw@vault.example.test', 'nonsense'])
      expect(() => serverOrigin(bad)).toThrow(expect.objectContaining({ code: 'bad-input' }));
    await expect(a.sync.enable(srv.origin, '')).rejects.toMatchObject({ code: 'bad-input' });
    await a.vault.createSecret({ name: 'has-one', value: 'FAKE', rule });
    await expect(a.sync.join(srv.origin, 'x')).rejects.toMatchObject({ code: 'bad-input' }); // joining would replace it
    await a.sync.enable(srv.origin, 'x');
    await expect(a.sync.enable(srv.origin, 'x')).rejects.toMatchObject({ code: 'already-initialized' });
  });
});

describe('the recovery key', () => {
  it('is shown once at enable, and alone lets a new device in, with no other device at hand', async () => {
    const a = await deviceNamed('laptop');
    await a.vault.createSecret({ name: 'openai', value: 'sk-FAKE-recover', rule });
    const { recoveryKey } = await a.sync.enable(srv.origin, 'laptop');
    expect(recoveryKey).toMatch(/^KH1(-[A-Z2-9]{1,5}){7}$/);
    // the laptop keeps no copy of it anywhere
    const stores = ['syncLink', 'syncState', 'secrets', 'header', 'settings'] as const;
    for (const st of stores) expect(JSON.stringify(await a.db.getAll(st))).not.toContain(recoveryKey.slice(4, 20));

    const lost = await deviceNamed('new-laptop');
    await expect(lost.sync.recover(srv.origin, 'KH1-nonsense', 'new-laptop')).rejects.toMatchObject({ code: 'bad-input' });
    const wrongKey = recoveryKey.replace(/[A-Z2-9](?=[A-Z2-9]*$)/, (c) => (c === 'A' ? 'B' : 'A'));
    await expect(lost.sync.recover(srv.origin, wrongKey, 'new-laptop')).rejects.toMatchObject({ code: 'sync-failed' });
    const s = await lost.sync.recover(srv.origin, recoveryKey.toLowerCase(), 'new-laptop');
    expect(s.joining).toBe(false);
    expect(await lost.value('openai')).toBe('sk-FAKE-recover');
    expect(s.members.map((m) => m.name).sort()).toEqual(['laptop', 'new-laptop', 'recovery key']);

    // removing the recovery key's member revokes it: it can add no one after that
    const recId = s.members.find((m) => m.name === 'recovery key')?.id ?? '';
    await a.sync.syncNow();
    await a.sync.removeMember(recId);
    const late = await deviceNamed('thief');
    await expect(late.sync.recover(srv.origin, recoveryKey, 'thief')).rejects.toMatchObject({ code: 'not-found' });
  });
});

describe('a team vault', () => {
  it('removing a member starts a new epoch: later entries are unreadable to it, the rest read them, rotation is prompted', async () => {
    const [alice, alicePhone] = await pair({ 'team-key': 'FAKE-team' });
    const bob = await deviceNamed('bob');
    const joining = await bob.sync.join(srv.origin, 'bob');
    const added = await alice.sync.approve(joining.device?.pairingCode ?? '');
    await bob.sync.syncNow();
    expect(await bob.value('team-key')).toBe('FAKE-team');
    // member fingerprints compare out of band: the same list on every member
    const members = (await alice.sync.syncNow()).members.map((m) => m.pairingCode).sort();
    expect((await bob.sync.status()).members.map((m) => m.pairingCode).sort()).toEqual(members);

    const removed = await alice.sync.removeMember(added.id);
    expect(removed.head?.epoch).toBe(2);
    expect(removed.rotate).toEqual(['team-key']); // bob could read it: change it at the provider
    await alice.vault.createSecret({ name: 'after', value: 'FAKE-after', rule });
    await alice.sync.syncNow();

    const bobNow = await bob.sync.syncNow();
    expect(bobNow.lastError?.message).toMatch(/removed/);
    expect(await bob.names()).toEqual(['team-key']); // nothing new reached bob's store

    // Alice's other device learns the new epoch and reads what was written in it
    await alicePhone.sync.syncNow();
    expect(await alicePhone.names()).toEqual(['after', 'team-key']);
    expect(await alicePhone.value('after')).toBe('FAKE-after');
    expect((await alicePhone.sync.status()).head?.epoch).toBe(2);

    // and the epoch-2 key was wrapped to nobody bob holds keys for
    const stranger = await newDevice('bob-again');
    const wrapped = (await alice.db.get('syncReplica', 'replica'))?.wraps.filter((w) => w.epoch === 2) ?? [];
    expect(wrapped.map((w) => w.to)).not.toContain(added.id);
    for (const w of wrapped) await expect(unwrapVaultKey(w.wrapped, stranger, { vault: removed.vault ?? '', epoch: 2 })).rejects.toThrow();

    // rotating the value clears the prompt
    await alice.update('team-key', 'FAKE-team-rotated');
    expect((await alice.sync.syncNow()).rotate).toEqual([]);
  });
});

describe('the sync service and a lying server', () => {
  it('warns the person, applies nothing and stops syncing until the warning is read', async () => {
    const evil = await startEvilServer(entryHash);
    try {
      const a = await deviceNamed('laptop');
      await a.vault.createSecret({ name: 'kept', value: 'FAKE-kept', rule });
      await a.sync.enable(evil.origin, 'laptop');
      await a.vault.createSecret({ name: 'second', value: 'FAKE-second', rule });
      const good = await a.sync.syncNow();
      expect(good.lastError).toBeUndefined();
      const goodHead = good.head;

      // rollback: the server serves a log one entry shorter
      evil.tamper = (page) => {
        const entries = evil.main.entries.slice(0, -1);
        const last = entries.at(-1) as LogEntry;
        return { ...page, entries: [], head: { seq: last.seq, hash: entryHash(last) } };
      };
      const warned = await a.sync.syncNow();
      expect(warned.warning?.code).toBe('rollback');
      expect(warned.head).toEqual(goodHead); // the accepted head stays
      expect(await a.names()).toEqual(['kept', 'second']);
      expect(await a.value('kept')).toBe('FAKE-kept');

      // while the warning stands, no run talks to the server
      let calls = 0;
      const was = evil.tamper;
      evil.tamper = (p, d) => {
        calls++;
        return was(p, d);
      };
      await a.sync.syncNow();
      expect(await a.sync.due()).toBe(false);
      expect(calls).toBe(0);

      // a foreign entry (signed by a key that is no member) is refused the same way
      evil.tamper = undefined;
      await a.sync.dismiss('warning');
      const last = evil.main.entries.at(-1) as LogEntry;
      evil.main.entries.push({ ...last, seq: last.seq + 1, prev: entryHash(last), sig: btoa('x'.repeat(64)) });
      const foreign = await a.sync.syncNow();
      expect(foreign.warning?.code).toBe('bad-signature');
      expect(foreign.head).toEqual(goodHead);
      expect(await a.names()).toEqual(['kept', 'second']);
    } finally {
      await evil.close();
    }
  });

  it('an answer past the protocol’s bounds is the same sticky warning, and nothing is applied', async () => {
    const evil = await startEvilServer(entryHash);
    try {
      const a = await deviceNamed('laptop');
      await a.vault.createSecret({ name: 'kept', value: 'FAKE-kept', rule });
      await a.sync.enable(evil.origin, 'laptop');
      const goodHead = (await a.sync.syncNow()).head;
      evil.raw = (path, res) => {
        if (!path.endsWith('/entries')) return false;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"head":{"seq":5000,"hash":"x"},"entries":[${'{"seq":1},'.repeat(4999)}{"seq":1}],"blobs":{},"more":false}`);
        return true;
      };
      const warned = await a.sync.syncNow();
      expect(warned.warning?.code).toBe('oversized');
      expect(warned.head).toEqual(goodHead);
      expect(await a.value('kept')).toBe('FAKE-kept');
      expect(await a.sync.due()).toBe(false);
    } finally {
      await evil.close();
    }
  });

  it('a head typed from another device exposes a fork, or entries the server withholds', async () => {
    const evil = await startEvilServer(entryHash);
    try {
      const a = await deviceNamed('laptop');
      await a.sync.enable(evil.origin, 'laptop');
      const b = await deviceNamed('desktop');
      const joining = await b.sync.join(evil.origin, 'desktop');
      await a.sync.approve(joining.device?.pairingCode ?? '');
      await b.sync.syncNow();
      const sa = await a.sync.syncNow();
      expect(await b.sync.compareHead(sa.head?.fingerprint ?? '')).toEqual({ result: 'same', seq: sa.head?.seq });
      await expect(b.sync.compareHead('12:not a fingerprint')).rejects.toMatchObject({ code: 'bad-input' });

      // the server gives the desktop its own branch: each device writes, each sees only its own
      evil.fork(joining.device?.id ?? '');
      await a.vault.createSecret({ name: 'on-laptop', value: 'FAKE-l', rule });
      await b.vault.createSecret({ name: 'on-desktop', value: 'FAKE-d', rule });
      const forkedA = await a.sync.syncNow();
      const forkedB = await b.sync.syncNow();
      expect(forkedA.head?.seq).toBe(forkedB.head?.seq); // same length, different entries: nothing shows it...
      expect(forkedA.warning).toBeUndefined();
      // ...until the person compares the heads the two devices show
      expect(await b.sync.compareHead(forkedA.head?.fingerprint ?? '')).toMatchObject({ result: 'fork' });
      expect((await b.sync.status()).warning?.code).toBe('fork');

      // withheld: the laptop saw an entry the server never gives the desktop
      const c = await deviceNamed('phone');
      const cj = await c.sync.join(evil.origin, 'phone');
      await a.sync.approve(cj.device?.pairingCode ?? '');
      const later = await a.sync.syncNow();
      const onMain = evil.main.entries.length;
      evil.tamper = (page, device) => (device === cj.device?.id ? { ...page, entries: page.entries.filter((e) => e.seq < onMain) } : page);
      expect(await c.sync.compareHead(later.head?.fingerprint ?? '')).toMatchObject({ result: 'withheld' });
    } finally {
      await evil.close();
    }
  });
});
