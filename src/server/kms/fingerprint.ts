/** The engine key's fingerprint, as an admin compares it before pinning the key in the log. */
import { createHash } from 'node:crypto';
import { fingerprint } from '../../core/sync/log.ts';

export const engineFingerprint = (spki: Uint8Array): string => fingerprint(createHash('sha256').update(spki).digest('hex'));
