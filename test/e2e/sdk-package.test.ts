/**
 * @keyhole/sdk as a package (issue 17, item 5): the built dist-sdk/ packed with `npm pack`, the
 * tarball installed into an empty project as a user installs it, imported by name, and a consumer
 * written against its types checked by the TypeScript compiler with Node's and bundlers' module
 * resolution. Needs `npm run build` (as every e2e file).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../harness/browser.ts';

const TSC = join(ROOT, 'node_modules/.bin/tsc');
const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('@keyhole/sdk, packed and installed', () => {
  let dir: string;
  let packed: { filename: string; files: { path: string }[]; name: string; version: string };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyhole-sdk-user-'));
    packed = JSON.parse(run('npm', ['pack', join(ROOT, 'dist-sdk'), '--pack-destination', dir, '--json'], dir))[0];
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'an-app', private: true, type: 'module' }));
    run('npm', ['install', join(dir, packed.filename), '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], dir);
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds the module, its declarations, package.json and README, and nothing else; its version is the project’s', () => {
    const paths = packed.files.map((f) => f.path).sort();
    expect(packed.name).toBe('@keyhole/sdk');
    expect(packed.version).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    expect(paths).toContain('keyhole-sdk.js');
    expect(paths).toContain('README.md');
    expect(paths).toContain('package.json');
    expect(paths).toContain('types/sdk/index.d.ts');
    expect(paths.filter((p) => !['keyhole-sdk.js', 'README.md', 'package.json'].includes(p) && !/^types\/.+\.d\.ts$/.test(p))).toEqual([]);
    // the page API is documented where a user reads it
    const readme = readFileSync(join(dir, 'node_modules/@keyhole/sdk/README.md'), 'utf8');
    for (const name of ['requestGrant', 'fetchFor', 'credentialChanged', '4402', '4900']) expect(readme).toContain(name);
  });

  it('is imported by its name through the exports map: the module resolves and loads, with its exports', () => {
    const out = run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const m = await import('@keyhole/sdk'); console.log(JSON.stringify({ at: import.meta.resolve('@keyhole/sdk'), names: Object.keys(m).sort(), code: m.ErrorCode.unauthorized }))",
      ],
      dir,
    );
    const got = JSON.parse(out) as { at: string; names: string[]; code: number };
    expect(got.at).toMatch(/node_modules\/@keyhole\/sdk\/keyhole-sdk\.js$/);
    expect(got.names).toEqual(['ErrorCode', 'KeyholeError', 'KeyholeNotInstalledError', 'connect']);
    expect(got.code).toBe(4100);
  });

  it.each(['nodenext', 'bundler'])('types a consumer with moduleResolution %s, and refuse a wrong use', (resolution) => {
    writeFileSync(
      join(dir, 'app.ts'),
      `import { connect, ErrorCode, KeyholeError, type CredentialInfo, type Grant, type KeyholeClient } from '@keyhole/sdk';

export async function main(): Promise<number> {
  const keyhole: KeyholeClient = await connect({ timeoutMs: 500 });
  const grants: Grant[] = await keyhole.requestGrant({ secrets: ['openai'], mode: 'broker', reason: 'test' });
  const info: CredentialInfo = await keyhole.refresh('openai');
  const res: Response = await keyhole.fetch('openai', 'https://api.example.com/v1', { method: 'POST', body: '{}' });
  const off: () => void = keyhole.on('credentialChanged', () => {});
  off();
  try {
    await keyhole.revokeGrant(grants[0]?.id ?? '');
  } catch (e) {
    if (e instanceof KeyholeError && e.code === ErrorCode.unauthorized) return 0;
  }
  return res.status + info.version;
}
`,
    );
    writeFileSync(
      join(dir, 'wrong.ts'),
      `import { connect } from '@keyhole/sdk';
export async function wrong(): Promise<void> {
  const keyhole = await connect();
  await keyhole.fetch(42, 'https://api.example.com');
}
`,
    );
    const module = resolution === 'nodenext' ? 'nodenext' : 'esnext';
    const args = ['--noEmit', '--ignoreConfig', '--strict', '--skipLibCheck', 'false', '--lib', 'ES2023,DOM,DOM.Iterable', '--types', ''];
    const check = (file: string) => {
      try {
        run(TSC, [...args, '--module', module, '--moduleResolution', resolution, file], dir);
        return '';
      } catch (e) {
        return String((e as { stdout?: string }).stdout);
      }
    };
    expect(check('app.ts')).toBe('');
    expect(check('wrong.ts')).toMatch(/wrong\.ts\(4,.*TS2345/);
  });
});
