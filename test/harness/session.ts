import type { SessionBlob, SessionStore } from '../../src/background/vault/session.ts';

/** chrome.storage.session for Node tests: memory only, its blob visible to the test. */
export function memorySession(): SessionStore & { blob?: SessionBlob } {
  const s: SessionStore & { blob?: SessionBlob } = {
    get: async () => s.blob,
    set: async (b) => {
      s.blob = b;
    },
    clear: async () => {
      delete s.blob;
    },
  };
  return s;
}
