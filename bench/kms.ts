/**
 * kms.*: JWT signatures by the key providers, in this process, SIGNERS_IN_FLIGHT at a time, in
 * interleaved rounds so machine noise hits each alike (the median round of each):
 *   pkcs11_sign_per_s              the pkcs11 provider on a real SoftHSM2 token, with its default
 *                                  signing sessions (DEFAULT_SIGN_SESSIONS), SIX_KEYS signing keys
 *                                  on the token
 *   pkcs11_one_session_sign_per_s  the same with one signing session (before session 17)
 *   pkcs11_sessions_over_one       the ratio
 *   pkcs11_cpu_us, pkcs11_one_session_cpu_us
 *                                  CPU time of this process (every thread) per signature
 *   file_sign_per_s                the file provider (its signing thread), for scale
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKeyProvider } from '../src/server/kms/file-provider.ts';
import { DEFAULT_SIGN_SESSIONS, Pkcs11KeyProvider } from '../src/server/kms/pkcs11-provider.ts';
import type { KeyProvider } from '../src/server/kms/provider.ts';
import { softhsmToken } from '../test/harness/softhsm.ts';
import { type InFlightRun, inFlight } from './in-flight.ts';
import type { Suite } from './run.ts';
import { medianOf, round } from './stats.ts';

const SIGNERS_IN_FLIGHT = 16;
const ROUND_MS = 1500;
const ROUNDS = 5;
const SIX_KEYS = 6;
/** a JWT's signing input is about this long */
const INPUT = Buffer.alloc(400, 'x');

const signLoop = (kms: KeyProvider, kid: string, ms: number): Promise<InFlightRun> =>
  inFlight(SIGNERS_IN_FLIGHT, ms, async () => {
    await kms.sign(kid, INPUT);
  });

export const kmsSuite: Suite = {
  name: 'kms',
  async run() {
    const token = softhsmToken('keyhole-bench');
    const dir = mkdtempSync(join(tmpdir(), 'keyhole-bench-kms-'));
    const setup = new Pkcs11KeyProvider(token);
    let kid = '';
    try {
      await setup.init();
      for (let i = 0; i < SIX_KEYS; i++) kid = await setup.createSigningKey();
    } finally {
      await setup.close();
    }
    const file = new FileKeyProvider(join(dir, 'keys.json'), { create: true });
    await file.init();
    const fileKid = await file.createSigningKey();
    const runs: Record<'pooled' | 'one' | 'file', InFlightRun[]> = { pooled: [], one: [], file: [] };
    try {
      for (let r = 0; r <= ROUNDS; r++) {
        for (const which of ['pooled', 'one'] as const) {
          const kms = new Pkcs11KeyProvider({ ...token, signSessions: which === 'one' ? 1 : DEFAULT_SIGN_SESSIONS });
          try {
            const run = await signLoop(kms, kid, ROUND_MS);
            if (r > 0) runs[which].push(run); // round 0 warms
          } finally {
            await kms.close();
          }
        }
        const run = await signLoop(file, fileKid, ROUND_MS);
        if (r > 0) runs.file.push(run);
      }
    } finally {
      await file.close();
      token.remove();
      rmSync(dir, { recursive: true, force: true });
    }
    return {
      metrics: {
        'kms.pkcs11_sign_per_s': round(medianOf(runs.pooled, 'perSecond'), 0),
        'kms.pkcs11_one_session_sign_per_s': round(medianOf(runs.one, 'perSecond'), 0),
        'kms.pkcs11_sessions_over_one': round(medianOf(runs.pooled, 'perSecond') / medianOf(runs.one, 'perSecond'), 2),
        'kms.pkcs11_cpu_us': round(medianOf(runs.pooled, 'cpuUs'), 1),
        'kms.pkcs11_one_session_cpu_us': round(medianOf(runs.one, 'cpuUs'), 1),
        'kms.file_sign_per_s': round(medianOf(runs.file, 'perSecond'), 0),
      },
      meta: {
        signSessions: DEFAULT_SIGN_SESSIONS,
        inFlight: SIGNERS_IN_FLIGHT,
        rounds: ROUNDS,
        pooledRounds: runs.pooled.map((x) => round(x.perSecond, 0)),
        oneSessionRounds: runs.one.map((x) => round(x.perSecond, 0)),
      },
    };
  },
};
