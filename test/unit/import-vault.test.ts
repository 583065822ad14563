/** VaultService.importSecrets (issue 17, item 4): all or none, in one transaction, with progress. */
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openKeyholeDB } from '../../src/background/db.ts';
import { VaultService } from '../../src/background/vault/vault-service.ts';
import { PRESETS } from '../../src/core/agents/policy.ts';
import { memorySession } from '../harness/session.ts';

const PASS = 'a long enough passphrase (FAKE)';
const rule = (PRESETS[0] as (typeof PRESETS)[number]).rule;
const item = (i: number) => ({ name: `KEY_${i}`, value: `sk-FAKE-import-${i}`, rule });

async function setup() {
  const db = await openKeyholeDB(`kh-${crypto.randomUUID()}`);
  const vault = new VaultService(db, memorySession(), 'test', () => 1_700_000_000_000);
  await vault.create(PASS, 'pbkdf2-sha256');
  return { db, vault };
}
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: { code: string; message: string }) => `${e.code}: ${e.message}`,
  );

describe('importing many secrets', () => {
  it('creates them all, each opening to its value, with progress on the way', async () => {
    const { vault } = await setup();
    const heard: number[] = [];
    const notices: (readonly string[] | null)[] = [];
    vault.onSecretChanged = (ids) => notices.push(ids);
    const made = await vault.importSecrets(
      Array.from({ length: 250 }, (_, i) => item(i)),
      (n) => heard.push(n),
    );
    expect(made).toHaveLength(250);
    expect(heard).toEqual([100, 200, 250]);
    // the worker hears of the import once (each notice rescans the store), naming every new secret
    expect(notices).toEqual([made.map((s) => s.id)]);
    expect((await vault.listSecrets()).secrets).toHaveLength(250);
    const one = made[137];
    expect((await vault.reveal(one?.id as string, PASS)).value).toBe('sk-FAKE-import-137');
  });

  it('one bad entry, a name the vault has, or a name twice in the import: nothing is written', async () => {
    const { vault, db } = await setup();
    await vault.createSecret({ name: 'KEY_3', value: 'sk-FAKE-existing', rule });
    const good = Array.from({ length: 10 }, (_, i) => item(i + 10));
    expect(await codeOf(vault.importSecrets([...good, { ...item(99), value: 'line\nbreak' }]))).toBe(
      'bad-input: entry 11: value must be printable ASCII',
    );
    expect(await codeOf(vault.importSecrets([...good, item(3)]))).toBe('name-taken: entry 11: a secret with this name exists');
    expect(await codeOf(vault.importSecrets([...good, item(10)]))).toBe('name-taken: entry 11: a secret with this name exists');
    expect(await codeOf(vault.importSecrets([...good, { ...item(98), rule: { ...rule, hosts: [] } }]))).toMatch(/^bad-input: entry 11: /);
    expect(await db.count('secrets')).toBe(1);
    await vault.lock();
    expect(await codeOf(vault.importSecrets(good))).toBe('locked: vault is locked');
  });
});
