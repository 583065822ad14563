/**
 * A real PKCS#11 token for the tests: Debian's SoftHSM2 with a configuration and token directory
 * of the test's own (SOFTHSM2_CONF, set before the library initialises), the token made with
 * `softhsm2-util --init-token --free`. Found afterwards by its label, as SoftHSM moves a new token
 * to a new slot number.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SOFTHSM_LIBRARY = '/usr/lib/softhsm/libsofthsm2.so';

export type TestToken = {
  readonly library: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly conf: string;
  remove(): void;
};

export function softhsmToken(label = 'keyhole-test', pin = '1234-FAKE'): TestToken {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-softhsm-'));
  mkdirSync(join(dir, 'tokens'));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = conf;
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `so-${pin}`], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: 'ignore',
  });
  return { library: SOFTHSM_LIBRARY, tokenLabel: label, pin, conf, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
