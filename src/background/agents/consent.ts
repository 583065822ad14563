/**
 * The consent queue: one consent window at a time. A closed window counts as Deny. The window is
 * an extension page (popup/consent.html) that reads the request shown to it and answers through
 * the RPC.
 *
 * Against prompt floods (issue 12, item 4): prompts are limited per origin and in all, over a
 * sliding window whose counts survive a worker restart (chrome.storage.session); a prompt from
 * the tab the person is looking at goes before the others, and when the queue is full it takes
 * the place of the newest prompt from another tab; a prompt ends (as a Deny) when the tab or the
 * document that asked is gone, so it can never grant to whatever came after.
 */
import type { ConsentDecision, ConsentRequest } from '../../core/agents/grants.ts';

export class ConsentRateLimited extends Error {
  override readonly name = 'ConsentRateLimited';
}

type Waiting = { readonly request: ConsentRequest; readonly resolve: (d: ConsentDecision) => void };

/** Prompts one origin may have waiting, and may open per PROMPT_WINDOW_MS. */
export const MAX_WAITING_PER_ORIGIN = 1;
export const MAX_PROMPTS_PER_ORIGIN = 5;
/** Prompts all origins together may have waiting (besides the one shown), and may open per PROMPT_WINDOW_MS. */
export const MAX_WAITING = 3;
export const MAX_PROMPTS = 20;
export const PROMPT_WINDOW_MS = 10 * 60 * 1000;

/** When prompts were opened: by origin, and in all. */
export type PromptTimes = { readonly byOrigin: Record<string, number[]>; readonly all: number[] };

export type ConsentWindows = {
  /** opens the consent window for a request; returns its window id */
  readonly open: (requestId: string) => Promise<number>;
  readonly close: (windowId: number) => Promise<void>;
  /** the tab the person is looking at (the focused window's active tab), if any */
  readonly activeTab: () => Promise<number | undefined>;
};

export type PromptStore = { get(): Promise<PromptTimes | undefined>; set(times: PromptTimes): Promise<void> };

/** An in-memory store, for tests and as a fallback. */
export function memoryPromptStore(): PromptStore {
  let times: PromptTimes | undefined;
  return {
    get: async () => times,
    set: async (t) => {
      times = t;
    },
  };
}

export class ConsentQueue {
  private readonly waiting: Waiting[] = [];
  private shown: { readonly entry: Waiting; readonly windowId: number } | null = null;
  /** the next prompt is being picked (the active tab is asked for): no second one meanwhile */
  private opening = false;
  private times: Promise<PromptTimes> | null = null;
  /** admissions run one at a time: two asks cannot both take the last place */
  private admitting: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly windows: ConsentWindows,
    private readonly store: PromptStore = memoryPromptStore(),
    private readonly now: () => number = Date.now,
  ) {}

  private load(): Promise<PromptTimes> {
    this.times ??= this.store.get().then((t) => t ?? { byOrigin: {}, all: [] });
    return this.times;
  }

  /** Queues a prompt; resolves with the person's decision. Rejects with ConsentRateLimited. */
  ask(request: ConsentRequest): Promise<ConsentDecision> {
    const admitted = this.admitting.then(() => this.admit(request));
    this.admitting = admitted.catch(() => {});
    return admitted.then(
      () =>
        new Promise<ConsentDecision>((resolve) => {
          this.waiting.push({ request, resolve });
          void this.showNext();
        }),
    );
  }

  private async admit(request: ConsentRequest): Promise<void> {
    const t = this.now();
    const fresh = (xs: readonly number[] | undefined) => (xs ?? []).filter((x) => t - x < PROMPT_WINDOW_MS);
    const loaded = await this.load();
    const mine = fresh(loaded.byOrigin[request.origin]);
    const all = fresh(loaded.all);
    if (mine.length >= MAX_PROMPTS_PER_ORIGIN || all.length >= MAX_PROMPTS) throw new ConsentRateLimited('too many prompts');
    if (this.waiting.filter((w) => w.request.origin === request.origin).length >= MAX_WAITING_PER_ORIGIN)
      throw new ConsentRateLimited('a prompt of this origin is waiting');
    if (this.waiting.length >= MAX_WAITING) {
      // full: the tab the person is looking at still gets through, in place of the newest prompt from another tab
      const active = await this.windows.activeTab();
      const bumped = request.tabId === active ? this.waiting.findLastIndex((w) => w.request.tabId !== active) : -1;
      if (bumped < 0) throw new ConsentRateLimited('too many prompts waiting');
      const [gone] = this.waiting.splice(bumped, 1);
      gone?.resolve({ kind: 'deny' });
    }
    const byOrigin: Record<string, number[]> = {};
    for (const [o, xs] of Object.entries(loaded.byOrigin)) {
      const kept = fresh(xs);
      if (kept.length > 0) byOrigin[o] = kept;
    }
    byOrigin[request.origin] = [...mine, t];
    const next = { byOrigin, all: [...all, t] };
    this.times = Promise.resolve(next);
    await this.store.set(next);
  }

  /** The request the consent window with this id may show: only the one on screen. */
  current(requestId: string): ConsentRequest | null {
    return this.shown?.entry.request.id === requestId ? this.shown.entry.request : null;
  }

  /** The person's answer. False if that request is not the one on screen. */
  async decide(requestId: string, decision: ConsentDecision): Promise<boolean> {
    const shown = this.shown;
    if (!shown || shown.entry.request.id !== requestId) return false;
    this.shown = null;
    shown.entry.resolve(decision);
    await this.windows.close(shown.windowId).catch(() => {});
    void this.showNext();
    return true;
  }

  /** chrome.windows.onRemoved: closing the consent window is a Deny. */
  windowClosed(windowId: number): void {
    const shown = this.shown;
    if (shown?.windowId !== windowId) return;
    this.shown = null;
    shown.entry.resolve({ kind: 'deny' });
    void this.showNext();
  }

  /**
   * The tab that asked closed, or its top frame now shows another document (`documentId`, or any
   * when undefined): its prompts end as a Deny, shown or waiting.
   */
  tabGone(tabId: number, keepDocument?: string): void {
    const gone = (r: ConsentRequest) => r.tabId === tabId && (keepDocument === undefined || r.documentId !== keepDocument);
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const w = this.waiting[i] as Waiting;
      if (gone(w.request)) {
        this.waiting.splice(i, 1);
        w.resolve({ kind: 'deny' });
      }
    }
    const shown = this.shown;
    if (shown && gone(shown.entry.request)) {
      this.shown = null;
      shown.entry.resolve({ kind: 'deny' });
      void this.windows.close(shown.windowId).catch(() => {});
      void this.showNext();
    }
  }

  /** On lock: every open and queued prompt is denied. */
  denyAll(): void {
    const shown = this.shown;
    this.shown = null;
    if (shown) {
      shown.entry.resolve({ kind: 'deny' });
      void this.windows.close(shown.windowId).catch(() => {});
    }
    for (const w of this.waiting.splice(0)) w.resolve({ kind: 'deny' });
  }

  /** Shows the next prompt: the one from the tab the person is looking at, else the oldest. */
  private async showNext(): Promise<void> {
    if (this.shown || this.opening || this.waiting.length === 0) return;
    this.opening = true;
    const active = await this.windows.activeTab().catch(() => undefined);
    this.opening = false;
    if (this.shown || this.waiting.length === 0) return; // taken or emptied meanwhile (a lock, a closed tab)
    const pick = Math.max(
      0,
      this.waiting.findIndex((w) => w.request.tabId === active),
    );
    const [next] = this.waiting.splice(pick, 1) as [Waiting];
    this.shown = { entry: next, windowId: -1 };
    try {
      const windowId = await this.windows.open(next.request.id);
      if (this.shown?.entry === next) this.shown = { entry: next, windowId };
      else await this.windows.close(windowId).catch(() => {});
    } catch {
      if (this.shown?.entry === next) this.shown = null;
      next.resolve({ kind: 'deny' });
      void this.showNext();
    }
  }
}
