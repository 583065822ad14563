/**
 * Provider events (`lock`, `unlock`, `grantsChanged`), sent only to documents whose origin
 * holds a grant. Documents are remembered when they first call the provider; the list lives in
 * chrome.storage.session so a restarted worker still knows them.
 */
import type { PageEvent } from '../../core/agents/page-api.ts';
import type { PageCaller } from './page-api.ts';

const KEY = 'keyhole.pageDocuments';
const MAX_DOCUMENTS = 500;

type Doc = { readonly tabId: number; readonly origin: string };
type Docs = Record<string, Doc>;

async function load(): Promise<Docs> {
  return ((await chrome.storage.session.get(KEY))[KEY] as Docs | undefined) ?? {};
}

/** documents this worker instance already stored: most calls then cost no storage read */
const known = new Set<string>();

export async function rememberDocument(caller: PageCaller): Promise<void> {
  if (!caller.documentId || known.has(caller.documentId)) return;
  known.add(caller.documentId);
  const docs = await load();
  if (docs[caller.documentId]) return;
  const ids = Object.keys(docs);
  if (ids.length >= MAX_DOCUMENTS) for (const id of ids.slice(0, ids.length - MAX_DOCUMENTS + 1)) delete docs[id];
  docs[caller.documentId] = { tabId: caller.tabId, origin: caller.origin };
  await chrome.storage.session.set({ [KEY]: docs });
}

/** Sends `event` to every remembered document whose origin passes `to`; forgets documents that are gone. */
export async function emit(event: PageEvent, to: (origin: string) => Promise<boolean> | boolean, data?: unknown): Promise<void> {
  const docs = await load();
  let changed = false;
  await Promise.all(
    Object.entries(docs).map(async ([documentId, doc]) => {
      if (!(await to(doc.origin))) return;
      try {
        await chrome.tabs.sendMessage(doc.tabId, { kh: 'event', event, data: data ?? null }, { documentId });
      } catch {
        delete docs[documentId]; // the document navigated away or its tab closed
        known.delete(documentId);
        changed = true;
      }
    }),
  );
  if (changed) await chrome.storage.session.set({ [KEY]: docs });
}
