/**
 * What a grant narrows a credential to, least privilege per grant (issue 14): a GitHub App's
 * installation token to some repositories and permissions; an AWS role's session to a session
 * policy. The narrowing is asked for by the page, shown in the consent window, stored with the
 * grant, and sent to the issuer with every mint for it: the issuer enforces it (a repository or a
 * permission the installation lacks is refused by GitHub; a session policy can only take away
 * from the role). Tokens are cached per narrowing, under a slot id that names it by digest only.
 * Pure.
 */
import { toHex, utf8 } from '../bytes.ts';
import { CoreError } from '../errors.ts';
import { checkSessionPolicy } from './aws.ts';
import { GITHUB_PERMISSION_LEVELS, type GithubPermissionLevel } from './github.ts';

export type Narrowing = {
  /** github-app: repository names (without the owner), a subset of the installation's */
  readonly repositories?: readonly string[];
  /** github-app: permission name to level, a subset of the installation's */
  readonly permissions?: Readonly<Record<string, GithubPermissionLevel>>;
  /** aws with AssumeRole: a session policy (an IAM policy document, compact JSON) */
  readonly sessionPolicy?: string;
};

const REPOSITORY = /^[A-Za-z0-9._-]{1,100}$/;
const PERMISSION = /^[a-z][a-z_]{0,63}$/;
/** GitHub takes at most 500 repositories in one installation-token request. */
export const MAX_REPOSITORIES = 500;
const MAX_PERMISSIONS = 64;

const bad = (message: string) => new CoreError('bad-input', message);

/** A page's narrowing, checked (undefined: none asked); `bad-input` saying what is wrong otherwise. */
export function checkNarrowing(v: unknown): Narrowing | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('narrow must be an object');
  const n = v as Record<string, unknown>;
  for (const k of Object.keys(n))
    if (k !== 'repositories' && k !== 'permissions' && k !== 'sessionPolicy') throw bad(`narrow has no field ${k}`);
  const out: { repositories?: string[]; permissions?: Record<string, GithubPermissionLevel>; sessionPolicy?: string } = {};
  if (n.repositories !== undefined) {
    const r = n.repositories;
    if (!Array.isArray(r) || r.length === 0 || r.length > MAX_REPOSITORIES || !r.every((x) => typeof x === 'string' && REPOSITORY.test(x)))
      throw bad(`repositories are 1 to ${MAX_REPOSITORIES} repository names (without the owner)`);
    out.repositories = [...new Set(r as string[])].sort();
  }
  if (n.permissions !== undefined) {
    const p = n.permissions;
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw bad('permissions map a permission name to read, write or admin');
    const entries = Object.entries(p);
    if (entries.length === 0 || entries.length > MAX_PERMISSIONS) throw bad('permissions name 1 to 64 permissions');
    for (const [k, level] of entries)
      if (!PERMISSION.test(k) || !(GITHUB_PERMISSION_LEVELS as readonly unknown[]).includes(level))
        throw bad('permissions map a permission name to read, write or admin');
    out.permissions = Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1))) as Record<string, GithubPermissionLevel>;
  }
  if (n.sessionPolicy !== undefined) out.sessionPolicy = checkSessionPolicy(n.sessionPolicy);
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Whether a credential of this kind (and configuration) can be narrowed so. */
export function narrowingFits(kind: string, assumesRole: boolean, n: Narrowing): boolean {
  const github = n.repositories !== undefined || n.permissions !== undefined;
  if (github && kind !== 'github-app') return false;
  if (n.sessionPolicy !== undefined && !(kind === 'aws' && assumesRole)) return false;
  return true;
}

/** The narrowing in words, for the consent window and the grants list (never a value). */
export function describeNarrowing(n: Narrowing | undefined): string[] {
  if (!n) return [];
  const lines: string[] = [];
  if (n.repositories) lines.push(`repositories: ${n.repositories.join(', ')}`);
  if (n.permissions)
    lines.push(
      `permissions: ${Object.entries(n.permissions)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')}`,
    );
  if (n.sessionPolicy) lines.push(`session policy: ${n.sessionPolicy}`);
  return lines;
}

/**
 * The id a credential's tokens are cached and refreshed under: the secret's id, and for a
 * narrowed grant a digest of its narrowing (the id is stored in clear beside the sealed entry).
 */
export async function slotId(secretId: string, n: Narrowing | undefined): Promise<string> {
  if (!n) return secretId;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(JSON.stringify(n)) as Uint8Array<ArrayBuffer>));
  return `${secretId}#${toHex(digest).slice(0, 32)}`;
}

/** The secret a slot id belongs to. */
export const slotSecret = (slot: string): string => slot.split('#')[0] ?? slot;
