/**
 * `npm run package`: the store uploads. The Chromium build (dist/) becomes the Chrome Web Store
 * zip and the Firefox build (dist-firefox/) the add-on zip for addons.mozilla.org, each with its
 * manifest at the root, in dist-packages/. The zips are reproducible: entries sorted, one fixed
 * timestamp, so the same build gives the same bytes.
 *
 * Also: the permission surface of a built manifest, and its comparison with docs/permissions.md
 * (test/e2e/package.test.ts fails when a build asks for something that file does not explain).
 */

import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateRawSync } from 'node:zlib';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const BUILDS = { chromium: join(ROOT, 'dist'), firefox: join(ROOT, 'dist-firefox') } as const;
export type Build = keyof typeof BUILDS;
export const PACKAGES = join(ROOT, 'dist-packages');
export const PERMISSIONS_DOC = join(ROOT, 'docs', 'permissions.md');

// --- zip (PKWARE APPNOTE 6.3: local headers, deflate or stored, central directory) ---------------

/** 1980-01-01 00:00, the first DOS time: a fixed stamp keeps the zip reproducible */
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** A zip of `files` (path inside the zip, bytes), in the order given. */
export function zip(files: readonly { name: string; data: Uint8Array }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const deflated = deflateRawSync(f.data, { level: 9 });
    const stored = deflated.length >= f.data.length; // tiny or incompressible: keep it as it is
    const body = stored ? Buffer.from(f.data) : deflated;
    const crc = crc32(f.data);
    const common = (h: Buffer, at: number) => {
      h.writeUInt16LE(20, at); // version needed: 2.0
      h.writeUInt16LE(0x0800, at + 2); // names are UTF-8
      h.writeUInt16LE(stored ? 0 : 8, at + 4);
      h.writeUInt16LE(DOS_TIME, at + 6);
      h.writeUInt16LE(DOS_DATE, at + 8);
      h.writeUInt32LE(crc, at + 10);
      h.writeUInt32LE(body.length, at + 14);
      h.writeUInt32LE(f.data.length, at + 18);
      h.writeUInt16LE(name.length, at + 22);
    };
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    common(local, 4);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(0x031e, 4); // made by: Unix, 3.0
    common(central, 6);
    central.writeUInt32LE((0o100644 << 16) >>> 0, 38); // a regular file, rw-r--r--
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** Every file under `dir`, as zip entries with `/` separators, sorted. */
function filesOf(dir: string): { name: string; data: Uint8Array }[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out
    .map((p) => relative(dir, p).split(sep).join('/'))
    .filter((name) => !name.startsWith('.vite/') && !name.endsWith('.map')) // build metadata and source maps stay home
    .sort()
    .map((name) => ({ name, data: readFileSync(join(dir, name)) }));
}

// --- the permission surface ----------------------------------------------------------------

/** What a manifest asks of the person, one `kind name` string each: what the stores show and review. */
export function permissionSurface(manifest: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  const list = (v: unknown) => (Array.isArray(v) ? (v as string[]) : []);
  for (const p of list(manifest.permissions)) out.add(`api ${p}`);
  for (const p of list(manifest.optional_permissions)) out.add(`optional-api ${p}`);
  for (const p of list(manifest.host_permissions)) out.add(`host ${p}`);
  for (const p of list(manifest.optional_host_permissions)) out.add(`optional-host ${p}`);
  for (const c of list(manifest.content_scripts) as unknown as { matches?: string[] }[])
    for (const m of c.matches ?? []) out.add(`content-script ${m}`);
  for (const w of list(manifest.web_accessible_resources) as unknown as { matches?: string[] }[])
    for (const m of w.matches ?? []) out.add(`web-accessible ${m}`);
  return out;
}

/**
 * The surface docs/permissions.md explains for `build`: its table rows are
 * `| kind | \`name\` | chromium | firefox | why |` with `yes` or `no` under each build.
 */
export function documentedSurface(doc: string, build: Build): Set<string> {
  const out = new Set<string>();
  const column = build === 'chromium' ? 2 : 3;
  for (const line of doc.split('\n')) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const name = /^`([^`]+)`$/.exec(cells[1] ?? '')?.[1];
    if (cells.length < 5 || name === undefined) continue;
    if (cells[column] === 'yes') out.add(`${cells[0]} ${name}`);
  }
  return out;
}

/** What differs between a build's manifest and the doc, in words; empty when they agree. */
export function permissionDrift(manifest: Record<string, unknown>, doc: string, build: Build): string[] {
  const asked = permissionSurface(manifest);
  const told = documentedSurface(doc, build);
  return [
    ...[...asked].filter((p) => !told.has(p)).map((p) => `the ${build} build asks for ${p}, which docs/permissions.md does not explain`),
    ...[...told]
      .filter((p) => !asked.has(p))
      .map((p) => `docs/permissions.md explains ${p} for ${build}, which the build no longer asks for`),
  ];
}

// --- packaging -----------------------------------------------------------------------------

export type Package = { build: Build; path: string; files: number; bytes: number };

/** Writes both zips after checking each build against docs/permissions.md; throws on drift. */
export function packageBuilds(): Package[] {
  const doc = readFileSync(PERMISSIONS_DOC, 'utf8');
  mkdirSync(PACKAGES, { recursive: true });
  return (Object.keys(BUILDS) as Build[]).map((build) => {
    const manifest = JSON.parse(readFileSync(join(BUILDS[build], 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const drift = permissionDrift(manifest, doc, build);
    if (drift.length > 0) throw new Error(`package: ${drift.join('; ')}`);
    const files = filesOf(BUILDS[build]);
    const bytes = zip(files);
    const path = join(PACKAGES, `keyhole-${build}-${String(manifest.version)}.zip`);
    writeFileSync(path, bytes);
    return { build, path, files: files.length, bytes: bytes.length };
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const p of packageBuilds()) console.log(`${p.build}: ${relative(ROOT, p.path)} (${p.files} files, ${p.bytes} bytes)`);
}
