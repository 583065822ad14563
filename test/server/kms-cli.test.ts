/**
 * `npm run server -- kms init | rotate | status` and the server's start with each key provider,
 * as real processes: the key file is made with mode 0600, rotation re-wraps every engine record's
 * data key and destroys the old master key, a token with a wrong PIN or a missing token stops the
 * server saying why (never the PIN), and a server on an HSM restarts and keeps serving.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openEngineRecord, sealEngineRecord } from '../../src/server/kms/envelope.ts';
import { FileKeyProvider } from '../../src/server/kms/file-provider.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import { freePort } from '../harness/servers.ts';
import { softhsmToken, type TestToken } from '../harness/softhsm.ts';
import { spawnVaultServer } from '../harness/vault-server.ts';

const dirs: string[] = [];
const tokens: TestToken[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const t of tokens) t.remove();
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'keyhole-kms-cli-'));
  dirs.push(d);
  return d;
};

/** Runs `npm run server -- …`'s entry; its exit code and output. */
function server(args: string[], env: Record<string, string> = {}): { code: number; out: string } {
  try {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/server/main.ts', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { code: 0, out: String(out) };
  } catch (e) {
    const x = e as { status: number; stdout: Buffer; stderr: Buffer };
    return { code: x.status, out: `${x.stdout}${x.stderr}` };
  }
}

describe('kms commands', () => {
  it('file: init makes a 0600 key file; rotate re-wraps every engine record and destroys the old master key', async () => {
    const dataDir = tempDir();
    const init = server(['kms', 'init', '--data-dir', dataDir]);
    expect(init.code).toBe(0);
    const status0 = JSON.parse(init.out) as { kind: string; masterKey: string; engineFingerprint: string };
    expect(status0.kind).toBe('file');
    expect(statSync(join(dataDir, 'keys.json')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(server(['kms', 'status', '--data-dir', dataDir]).out)).toEqual(status0);

    // two engine records sealed under the first master key
    const store = openSqlite(dataDir);
    const kms = new FileKeyProvider(join(dataDir, 'keys.json'));
    const places = [1, 2].map((n) => ({ vault: 'vault-1', engine: 'jwt', record: `config-${n}`, version: n }));
    for (const p of places)
      await store.putEngineRecord({ ...p, sealed: JSON.stringify(await sealEngineRecord(kms, p, Buffer.from(`FAKE root ${p.version}`))) });
    await store.close();

    const rotated = JSON.parse(server(['kms', 'rotate', '--data-dir', dataDir]).out) as {
      masterKey: string;
      rewrapped: number;
      retired: string[];
      previousMasterKeys: string[];
      engineFingerprint: string;
    };
    expect(rotated.masterKey).not.toBe(status0.masterKey);
    expect([rotated.rewrapped, rotated.retired, rotated.previousMasterKeys]).toEqual([2, [status0.masterKey], []]);
    expect(rotated.engineFingerprint).toBe(status0.engineFingerprint);
    const after = openSqlite(dataDir);
    const fresh = new FileKeyProvider(join(dataDir, 'keys.json'));
    for (const p of places) {
      const row = await after.getEngineRecord(p.vault, p.engine, p.record);
      const sealed = JSON.parse(row?.sealed ?? '{}');
      expect(sealed.key.keyId).toBe(rotated.masterKey);
      expect(Buffer.from(await openEngineRecord(fresh, p, sealed)).toString()).toBe(`FAKE root ${p.version}`);
    }
    await after.close();
    expect(server(['kms', 'status', '--data-dir', tempDir()]).out).toContain('kms init');
  });

  it('pkcs11: a wrong PIN or a missing token stops the server saying why; on the token it restarts and keeps serving', async () => {
    const t = softhsmToken('kh-cli');
    tokens.push(t);
    const dataDir = tempDir();
    const hsm = ['--kms', 'pkcs11', '--pkcs11-library', t.library, '--pkcs11-token', t.tokenLabel, '--data-dir', dataDir];
    const env = { SOFTHSM2_CONF: t.conf, KEYHOLE_PKCS11_PIN: t.pin };
    const wrong = server(['kms', 'init', ...hsm], { ...env, KEYHOLE_PKCS11_PIN: 'FAKE-wrong-pin' });
    expect([wrong.code, wrong.out.includes('refused the PIN'), wrong.out.includes('FAKE-wrong-pin')]).toEqual([2, true, false]);
    const missing = server(['kms', 'status', ...hsm.slice(0, 4), '--pkcs11-token', 'no-such-token', '--data-dir', dataDir], env);
    expect([missing.code, missing.out.includes('no PKCS#11 token')]).toEqual([2, true]);
    const sessions = server(['kms', 'status', ...hsm, '--pkcs11-sessions', 'many'], env);
    expect([sessions.code, sessions.out.includes('signing sessions must be an integer from 1 to 64')]).toEqual([2, true]);
    const init = JSON.parse(server(['kms', 'init', ...hsm], env).out) as { kind: string; engineFingerprint: string };
    expect(init.kind).toBe('pkcs11');

    const port = await freePort();
    let proc = await spawnVaultServer({ port, dataDir, extraArgs: hsm.slice(0, 6), env });
    expect(proc.output()).toContain(init.engineFingerprint);
    expect((await fetch(`${proc.origin}/healthz`)).status).toBe(200);
    await proc.stop('SIGKILL');
    proc = await spawnVaultServer({ port, dataDir, extraArgs: hsm.slice(0, 6), env }); // restarted
    try {
      expect(proc.output()).toContain(init.engineFingerprint);
      expect((await fetch(`${proc.origin}/healthz`)).status).toBe(200);
    } finally {
      await proc.stop();
    }
    await expect(
      spawnVaultServer({ port, dataDir, extraArgs: hsm.slice(0, 6), env: { ...env, KEYHOLE_PKCS11_PIN: 'FAKE-wrong' } }),
    ).rejects.toThrow(/refused the PIN/);
  });
});
