import { describe, expect, it } from 'vitest';
import { applyDeferredUpdate, onUpdateAvailable, type UpdateDeps } from '../../src/background/vault/update.ts';

function world(unlocked: boolean) {
  const state = { unlocked, pending: false, reloads: 0 };
  const deps: UpdateDeps = {
    isUnlocked: async () => state.unlocked,
    pending: {
      get: async () => state.pending,
      set: async () => {
        state.pending = true;
      },
      clear: async () => {
        state.pending = false;
      },
    },
    reload: () => {
      state.reloads++;
    },
  };
  return { state, deps };
}

describe('extension update deferral', () => {
  it('reloads at once while locked', async () => {
    const { state, deps } = world(false);
    expect(await onUpdateAvailable(deps)).toBe('reloaded');
    expect(state).toEqual({ unlocked: false, pending: false, reloads: 1 });
  });

  it('waits while unlocked and applies the update at the next lock', async () => {
    const { state, deps } = world(true);
    expect(await onUpdateAvailable(deps)).toBe('deferred');
    expect(state.reloads).toBe(0);
    expect(state.pending).toBe(true);
    state.unlocked = false;
    expect(await applyDeferredUpdate(deps)).toBe(true);
    expect(state).toEqual({ unlocked: false, pending: false, reloads: 1 });
  });

  it('does nothing at lock when no update waits', async () => {
    const { state, deps } = world(false);
    expect(await applyDeferredUpdate(deps)).toBe(false);
    expect(state.reloads).toBe(0);
  });

  it('does not reload if the vault was unlocked again before the lock hook ran', async () => {
    const { state, deps } = world(true);
    await onUpdateAvailable(deps);
    expect(await applyDeferredUpdate(deps)).toBe(false);
    expect(state.pending).toBe(true);
  });
});
