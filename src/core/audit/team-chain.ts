/**
 * The team audit chain (issue 16): each member device pushes its audit records to the distant
 * vault sealed under the team audit key (core/crypto/team.ts), one chain per device:
 *
 *   link   { device, seq, prev, epoch, sealed }          seq 1, 2, 3 …; prev: the previous link's hash
 *   hash   SHA-256("keyhole/v1/team-audit-chain\n" ‖ canonical(link)), hex
 *
 * and now and then signs its chain head into the vault's log (`audit.head {seq, hash}`). A reader
 * checks every device's chain from its first link and against its signed head: a link dropped,
 * two swapped, an old one served again, or one invented fails the chain; links cut off at the end
 * fall short of the signed head. Links after the last signed head are shown as not yet anchored.
 * Pure: hashing only (the server checks appends with it too; it never opens `sealed`).
 */

import { toHex, utf8 } from '../bytes.ts';
import { canonicalJson } from '../canonical.ts';

export const CHAIN_START = '0'.repeat(64);

export type AuditLink = {
  readonly device: string;
  readonly seq: number;
  readonly prev: string;
  readonly epoch: number;
  /** the record, sealed (base64) */
  readonly sealed: string;
};

export async function linkHash(l: AuditLink): Promise<string> {
  const text = `keyhole/v1/team-audit-chain\n${canonicalJson({ device: l.device, seq: l.seq, prev: l.prev, epoch: l.epoch, sealed: l.sealed })}`;
  return toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(text))));
}

export type ChainFinding =
  /** a seq missing, repeated or out of order where the next was due */
  | { readonly kind: 'gap'; readonly seq: number }
  /** a link whose prev is not the hash of the one before it (reordered, replayed, invented, or changed) */
  | { readonly kind: 'broken'; readonly seq: number }
  /** the link at the signed head's seq is not the one the device signed */
  | { readonly kind: 'not-signed'; readonly seq: number }
  /** links the device signed for are missing from the end */
  | { readonly kind: 'withheld'; readonly seq: number };

export type ChainCheck = {
  /** every link through this seq is chained and, up to `anchored`, under the device's signature */
  readonly through: number;
  readonly anchored: number;
  readonly findings: readonly ChainFinding[];
};

/**
 * Checks one device's links as the server handed them (from seq 1, in order) against the head the
 * device signed in the log (if any). Stops at the first break: what comes after it is not trusted.
 */
export async function checkChain(links: readonly AuditLink[], head?: { readonly seq: number; readonly hash: string }): Promise<ChainCheck> {
  let prev = CHAIN_START;
  let through = 0;
  const findings: ChainFinding[] = [];
  for (const l of links) {
    if (l.seq !== through + 1) {
      findings.push({ kind: 'gap', seq: through + 1 });
      break;
    }
    if (l.prev !== prev) {
      findings.push({ kind: 'broken', seq: l.seq });
      break;
    }
    const h = await linkHash(l);
    if (head && l.seq === head.seq && h !== head.hash) {
      findings.push({ kind: 'not-signed', seq: l.seq });
      break;
    }
    prev = h;
    through = l.seq;
  }
  if (head && through < head.seq && findings.length === 0) findings.push({ kind: 'withheld', seq: through + 1 });
  const anchored = head && findings.length === 0 ? head.seq : 0;
  return { through, anchored: Math.min(anchored, through), findings };
}
