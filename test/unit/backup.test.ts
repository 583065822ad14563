/**
 * Encrypted backups (issue 17, item 4): a vault's secrets out under a backup passphrase and back
 * into another vault, all or none; a wrong passphrase, a changed file and a file that is not a
 * backup are refused with a typed error that names no value.
 */
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openKeyholeDB } from '../../src/background/db.ts';
import { exportBackup, restoreBackup } from '../../src/background/vault/backup.ts';
import { VaultService } from '../../src/background/vault/vault-service.ts';
import { PRESETS } from '../../src/core/agents/policy.ts';
import { openBackup, sealBackup } from '../../src/core/vault/backup.ts';
import { memorySession } from '../harness/session.ts';

const PASS = 'a long enough passphrase (FAKE)';
const BACKUP_PASS = 'the backup passphrase FAKE';
const rule = (PRESETS[0] as (typeof PRESETS)[number]).rule;

async function vault() {
  const db = await openKeyholeDB(`kh-${crypto.randomUUID()}`);
  const v = new VaultService(db, memorySession(), 'test', () => Date.now());
  await v.create(PASS, 'pbkdf2-sha256');
  return { db, v };
}
const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: { code: string; message: string }) => `${e.code}: ${e.message}`,
  );
const entries = [
  { name: 'openai', value: 'sk-FAKE-backup-1', rule, notes: 'n1' },
  { name: 'anthropic', value: 'sk-ant-FAKE-backup-2', rule },
  { name: 'github', value: 'ghp_FAKE-backup-3', rule },
];

describe('encrypted backups', () => {
  it('a vault’s secrets, backed up and restored into a new vault, open to the same values', async () => {
    const from = await vault();
    for (const e of entries) await from.v.createSecret(e);
    const { text, count, left } = await exportBackup(from.v, PASS, BACKUP_PASS, 1_700_000_000_000);
    expect([count, left]).toEqual([3, 0]);
    expect(text).not.toMatch(/FAKE-backup/); // the file holds no value in the clear
    const file = JSON.parse(text);
    expect(file).toMatchObject({ format: 'keyhole-backup', version: 1, createdAt: 1_700_000_000_000 });
    expect(file.kdf).toMatch(/^argon2id/);

    const to = await vault();
    const heard: number[] = [];
    expect(await restoreBackup(to.v, text, BACKUP_PASS, (n) => heard.push(n))).toBe(3);
    expect(heard.at(-1)).toBe(3);
    const restored = (await to.v.listSecrets()).secrets;
    expect(restored.map((s) => s.name)).toEqual(['anthropic', 'github', 'openai']);
    for (const s of restored) expect((await to.v.reveal(s.id, PASS)).value).toBe(entries.find((e) => e.name === s.name)?.value);
    // a second restore into the same vault: the names are taken, and nothing more is written
    expect(await errorOf(restoreBackup(to.v, text, BACKUP_PASS, () => {}))).toBe('name-taken: entry 1: a secret with this name exists');
    expect(await to.db.count('secrets')).toBe(3);
  });

  it('exporting needs the vault’s passphrase again and a backup passphrase of 12 characters or more', async () => {
    const { v } = await vault();
    await v.createSecret(entries[0] as (typeof entries)[number]);
    expect(await errorOf(exportBackup(v, 'not the passphrase FAKE', BACKUP_PASS, 1))).toBe('wrong-passphrase: wrong passphrase');
    expect(await errorOf(exportBackup(v, PASS, 'short', 1))).toBe('weak-passphrase: a backup passphrase is at least 12 characters');
  });

  it('a wrong passphrase, a record changed, dropped or moved, weaker KDF parameters, or not a backup: refused', async () => {
    const text = await sealBackup(entries, BACKUP_PASS, { alg: 'pbkdf2-sha256', now: 1 });
    expect((await openBackup(text, BACKUP_PASS)).map((e) => e.name)).toEqual(['openai', 'anthropic', 'github']);
    const edit = (f: (x: { kdf: string; items: string[]; id: string }) => void) => {
      const x = JSON.parse(text);
      f(x);
      return JSON.stringify(x);
    };
    const code = (t: string) =>
      openBackup(t, BACKUP_PASS).then(
        () => 'opened',
        (e: { code: string; message: string }) => `${e.code}: ${e.message}`,
      );
    expect(
      await openBackup(text, 'another passphrase FAKE').then(
        () => 'opened',
        (e: { code: string }) => e.code,
      ),
    ).toBe('wrong-passphrase');
    const flipped = edit((x) => {
      const b = Buffer.from(x.items[1] as string, 'base64');
      b[b.length - 1] = (b[b.length - 1] as number) ^ 1;
      x.items[1] = b.toString('base64');
    });
    expect(await code(flipped)).toBe('decrypt-failed: the backup file was changed after it was written');
    expect(await code(edit((x) => x.items.pop()))).toBe('wrong-passphrase: wrong backup passphrase'); // n changed: none opens
    expect(await code(edit((x) => x.items.reverse()))).toBe('wrong-passphrase: wrong backup passphrase');
    expect(await code(edit((x) => (x.id = crypto.randomUUID())))).toBe('wrong-passphrase: wrong backup passphrase');
    expect(await code(edit((x) => (x.kdf = x.kdf.replace(/i=\d+/, 'i=1000'))))).toMatch(/^bad-kdf-params: /);
    expect(await code('{"format": "something else"}')).toBe('bad-input: the file is not a Keyhole backup');
    expect(await code('PK\u0003\u0004 not json')).toBe('bad-input: the file is not a Keyhole backup (not JSON)');
  });
});
