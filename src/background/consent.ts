/**
 * The consent queue: one consent window at a time, prompts queued and rate-limited per origin.
 * A closed window counts as Deny. The window is an extension page (popup/consent.html) that
 * reads the request shown to it and answers through the RPC.
 */
import type { ConsentDecision, ConsentRequest } from '../core/grants.ts';

export class ConsentRateLimited extends Error {
  override readonly name = 'ConsentRateLimited';
}

type Waiting = { readonly request: ConsentRequest; readonly resolve: (d: ConsentDecision) => void };

export const MAX_WAITING_PER_ORIGIN = 2;
export const MAX_PROMPTS_PER_ORIGIN = 5;
export const PROMPT_WINDOW_MS = 10 * 60 * 1000;

export type ConsentWindows = {
  /** opens the consent window for a request; returns its window id */
  readonly open: (requestId: string) => Promise<number>;
  readonly close: (windowId: number) => Promise<void>;
};

export class ConsentQueue {
  private readonly waiting: Waiting[] = [];
  private shown: { readonly entry: Waiting; readonly windowId: number } | null = null;
  private readonly recent = new Map<string, number[]>();

  constructor(
    private readonly windows: ConsentWindows,
    private readonly now: () => number = Date.now,
  ) {}

  /** Queues a prompt; resolves with the person's decision. Throws ConsentRateLimited. */
  ask(request: ConsentRequest): Promise<ConsentDecision> {
    const t = this.now();
    const times = (this.recent.get(request.origin) ?? []).filter((x) => t - x < PROMPT_WINDOW_MS);
    const queued = this.waiting.filter((w) => w.request.origin === request.origin).length;
    if (times.length >= MAX_PROMPTS_PER_ORIGIN || queued >= MAX_WAITING_PER_ORIGIN) throw new ConsentRateLimited('too many prompts');
    this.recent.set(request.origin, [...times, t]);
    return new Promise((resolve) => {
      this.waiting.push({ request, resolve });
      void this.showNext();
    });
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

  private async showNext(): Promise<void> {
    if (this.shown) return;
    const next = this.waiting.shift();
    if (!next) return;
    try {
      this.shown = { entry: next, windowId: -1 };
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
