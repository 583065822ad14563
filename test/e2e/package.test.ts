/**
 * The store uploads (issue 17, item 6): `npm run package`'s zips are valid to a zip reader that is
 * not ours (Python's zipfile), hold the build minus source maps, come out byte for byte the same
 * twice, and load and hold a vault in the browser each is for. Each build's permissions must match
 * docs/permissions.md: a permission added to or dropped from a manifest without that file changing
 * is caught, and so is the file changing without the manifest.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newProfileDir } from '../harness/browser.ts';
import { BUILDS, type Build, type Package, PERMISSIONS_DOC, packageBuilds, permissionDrift } from '../harness/package.ts';
import { launchBrowser, rpc } from '../harness/two-browsers.ts';

const PASSPHRASE = 'package passphrase FAKE';
const rule = { hosts: ['api.example.com'], header: 'Authorization', template: 'Bearer {value}' };

const files = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
const tree = (dir: string): string[] =>
  files(dir)
    .map((p) => relative(dir, p).split(sep).join('/'))
    .sort();
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const manifestIn = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;

let packages: Record<Build, Package>;
const extracted = {} as Record<Build, string>;
const made: string[] = [];

beforeAll(() => {
  packages = Object.fromEntries(packageBuilds().map((p) => [p.build, p])) as Record<Build, Package>;
  for (const build of Object.keys(BUILDS) as Build[]) {
    const dir = newProfileDir(`package-${build}-`);
    made.push(dir);
    // Python's zipfile reads it, checks every entry's CRC (-t) and extracts it (-e)
    execFileSync('python3', ['-m', 'zipfile', '-t', packages[build].path], { stdio: 'pipe' });
    execFileSync('python3', ['-m', 'zipfile', '-e', packages[build].path, dir], { stdio: 'pipe' });
    extracted[build] = dir;
  }
});
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe('npm run package', () => {
  it('each zip holds its build, manifest at the root, without source maps, and the same bytes twice', () => {
    for (const build of Object.keys(BUILDS) as Build[]) {
      const inZip = tree(extracted[build]);
      expect(inZip).toContain('manifest.json');
      expect(inZip).toEqual(tree(BUILDS[build]).filter((f) => !f.endsWith('.map') && !f.startsWith('.vite/')));
      for (const f of inZip) expect(sha256(join(extracted[build], f)), f).toBe(sha256(join(BUILDS[build], f)));
    }
    const first = Object.values(packages).map((p) => sha256(p.path));
    const again = packageBuilds().map((p) => sha256(p.path));
    expect(again).toEqual(first);
  });

  it('each build asks for exactly what docs/permissions.md explains for it', () => {
    const doc = readFileSync(PERMISSIONS_DOC, 'utf8');
    for (const build of Object.keys(BUILDS) as Build[]) expect(permissionDrift(manifestIn(extracted[build]), doc, build)).toEqual([]);
  });

  it('a permission added or dropped without the doc changing, or the doc changing alone, is caught', () => {
    const doc = readFileSync(PERMISSIONS_DOC, 'utf8');
    const chromium = manifestIn(extracted.chromium);
    const firefox = manifestIn(extracted.firefox);
    const withTabs = { ...chromium, permissions: [...(chromium.permissions as string[]), 'tabs'] };
    expect(permissionDrift(withTabs, doc, 'chromium')).toEqual([
      'the chromium build asks for api tabs, which docs/permissions.md does not explain',
    ]);
    // Firefox asking for offscreen: the doc says that is Chromium's alone
    const withOffscreen = { ...firefox, permissions: [...(firefox.permissions as string[]), 'offscreen'] };
    expect(permissionDrift(withOffscreen, doc, 'firefox')).toEqual([
      'the firefox build asks for api offscreen, which docs/permissions.md does not explain',
    ]);
    const allSites = { ...firefox, host_permissions: [...(firefox.host_permissions as string[]), '<all_urls>'] };
    expect(permissionDrift(allSites, doc, 'firefox')).toEqual([
      'the firefox build asks for host <all_urls>, which docs/permissions.md does not explain',
    ]);
    const noIdle = { ...chromium, permissions: (chromium.permissions as string[]).filter((p) => p !== 'idle') };
    expect(permissionDrift(noIdle, doc, 'chromium')).toEqual([
      'docs/permissions.md explains api idle for chromium, which the build no longer asks for',
    ]);
    const lane = { ...chromium, web_accessible_resources: [] };
    expect(permissionDrift(lane, doc, 'chromium')).toHaveLength(2);
    // the doc loses its webRequest row while both builds still ask for it
    const docWithout = doc
      .split('\n')
      .filter((l) => !l.includes('`webRequest`'))
      .join('\n');
    expect(permissionDrift(chromium, docWithout, 'chromium')).toEqual([
      'the chromium build asks for api webRequest, which docs/permissions.md does not explain',
    ]);
    expect(permissionDrift(firefox, docWithout, 'firefox')).toHaveLength(1);
  });

  for (const build of Object.keys(BUILDS) as Build[])
    it(`the ${build} zip, extracted, loads in ${build} and holds a vault`, async () => {
      const b = await launchBrowser(build, { extension: extracted[build] });
      try {
        const page = await b.extensionPage('src/options/index.html');
        expect((await rpc<{ state: string }>(page, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' })).result.state).toBe(
          'unlocked',
        );
        expect((await rpc(page, 'secrets.create', { name: 'openai', value: 'sk-FAKE-packaged', rule })).ok).toBe(true);
        expect((await rpc<{ secrets: { name: string }[] }>(page, 'secrets.list')).result.secrets.map((s) => s.name)).toEqual(['openai']);
      } finally {
        await b.close();
      }
    }, 90_000);
});
