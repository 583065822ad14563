/**
 * An extension update reloads the worker, which clears session storage and session rules: it
 * would silently lock the vault and cut off granted agents. So an update waits while the vault
 * is unlocked and is applied at the next lock (Chrome also applies it at the next browser start).
 */
export type UpdateDeps = {
  readonly isUnlocked: () => Promise<boolean>;
  /** a durable "an update is waiting" flag (chrome.storage.local in the worker) */
  readonly pending: { get(): Promise<boolean>; set(): Promise<void>; clear(): Promise<void> };
  readonly reload: () => void;
};

/** chrome.runtime.onUpdateAvailable: reload now if locked, else remember the update. */
export async function onUpdateAvailable(deps: UpdateDeps): Promise<'reloaded' | 'deferred'> {
  if (await deps.isUnlocked()) {
    await deps.pending.set();
    return 'deferred';
  }
  deps.reload();
  return 'reloaded';
}

/** After every lock: apply an update that was waiting. */
export async function applyDeferredUpdate(deps: UpdateDeps): Promise<boolean> {
  if (!(await deps.pending.get()) || (await deps.isUnlocked())) return false;
  await deps.pending.clear();
  deps.reload();
  return true;
}

const KEY = 'keyhole.updatePending';

export const chromeUpdatePending: UpdateDeps['pending'] = {
  get: async () => (await chrome.storage.local.get(KEY))[KEY] === true,
  set: () => chrome.storage.local.set({ [KEY]: true }),
  clear: () => chrome.storage.local.remove(KEY),
};
