/**
 * Lock when the last browser window closes, and not when the person turned that off.
 * (Idle and screen-lock locking are decided by lockReasonFor, unit-tested: headless Chromium
 * cannot be made idle on demand.)
 */
import { describe, expect, it } from 'vitest';
import { launch, OPTIONS, rpc } from '../harness/browser.ts';

type Res<T> = { ok: boolean; result: T };

async function stateAfterClosingAllWindows(lockOnLastWindowClosed: boolean): Promise<string> {
  const h = await launch();
  try {
    const page = await h.open(OPTIONS);
    await rpc(page, 'vault.create', { passphrase: 'window close test (FAKE)', kdf: 'pbkdf2-sha256' });
    await rpc(page, 'settings.set', { lockOnLastWindowClosed });
    for (const p of h.context.pages()) await p.close();
    await new Promise((r) => setTimeout(r, 1500));
    const again = await h.open(OPTIONS);
    return (await rpc<Res<{ state: string }>>(again, 'status')).result.state;
  } finally {
    await h.close();
  }
}

describe('auto-lock', () => {
  it('locks when the last window closes', async () => {
    expect(await stateAfterClosingAllWindows(true)).toBe('locked');
  });
  it('stays unlocked when that option is off (control)', async () => {
    expect(await stateAfterClosingAllWindows(false)).toBe('unlocked');
  });
});
