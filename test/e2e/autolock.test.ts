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

describe('deferred extension update', () => {
  // Chrome cannot be made to offer an update to an unpacked extension, and chrome.runtime.reload
  // leaves a --load-extension extension unloaded in this Chromium. So the test plants the flag
  // onUpdateAvailable writes while unlocked (that decision is unit-tested in update.test.ts),
  // records chrome.runtime.reload calls in the real worker, and locks.
  async function lockWith(flag: boolean) {
    const h = await launch();
    try {
      const page = await h.open(OPTIONS);
      await rpc(page, 'vault.create', { passphrase: 'update defer test (FAKE)', kdf: 'pbkdf2-sha256' });
      const worker = await h.worker();
      await worker.evaluate(async (f) => {
        if (f) await chrome.storage.local.set({ 'keyhole.updatePending': true });
        Object.assign(chrome.runtime, { reload: () => Object.assign(self, { __reloads: 1 }) });
      }, flag);
      await rpc(page, 'vault.lock');
      await new Promise((r) => setTimeout(r, 500));
      // awaited here, not returned pending: `finally` would close the browser under it
      return await worker.evaluate(async () => ({
        reloaded: (self as { __reloads?: number }).__reloads === 1,
        stillPending: (await chrome.storage.local.get('keyhole.updatePending'))['keyhole.updatePending'] === true,
      }));
    } finally {
      await h.close();
    }
  }

  it('a waiting update is applied when the vault locks', async () => {
    expect(await lockWith(true)).toEqual({ reloaded: true, stillPending: false });
  });
  it('a lock with no update waiting does not reload (control)', async () => {
    expect(await lockWith(false)).toEqual({ reloaded: false, stillPending: false });
  });
});
