/** Calls the Keyhole page provider from a web page, as an agent app would (no SDK). */
import type { BrowserContext, Frame, Page } from 'playwright';

export type Answer<T = unknown> = { ok: true; result: T } | { ok: false; error: { code: number; message: string; data?: unknown } };

export async function discover(page: Page | Frame, timeoutMs = 2000): Promise<{ info: Record<string, string>; frozen: boolean } | null> {
  return page.evaluate(
    (t) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve(null), t);
        window.addEventListener(
          'keyhole:announceProvider',
          (e) => {
            clearTimeout(timer);
            const d = (e as CustomEvent).detail;
            resolve({ info: { ...d.info }, frozen: Object.isFrozen(d) && Object.isFrozen(d.info) && Object.isFrozen(d.provider) });
          },
          { once: true },
        );
        window.dispatchEvent(new Event('keyhole:requestProvider'));
      }),
    timeoutMs,
  );
}

/** provider.request({ method, params }) in the page; errors come back as data, not throws. */
export async function request<T = unknown>(page: Page | Frame, method: string, params?: unknown): Promise<Answer<T>> {
  return page.evaluate(
    ([m, p]) =>
      new Promise<unknown>((resolve) => {
        window.addEventListener(
          'keyhole:announceProvider',
          (e) => {
            const { provider } = (e as CustomEvent).detail;
            provider.request({ method: m, params: p }).then(
              (result: unknown) => resolve({ ok: true, result }),
              (err: { code: number; message: string; data?: unknown }) =>
                resolve({ ok: false, error: { code: err.code, message: err.message, data: err.data } }),
            );
          },
          { once: true },
        );
        window.dispatchEvent(new Event('keyhole:requestProvider'));
      }),
    [method, params] as const,
  ) as Promise<Answer<T>>;
}

/** provider.fetchStream in the page: reads the whole body as text, recording when chunks came. */
export async function stream(
  page: Page | Frame,
  params: unknown,
  opts: { cancelAfterChunks?: number } = {},
): Promise<Answer<{ status: number; headers: Record<string, string>; text: string; chunks: number }>> {
  return page.evaluate(
    ([p, cancelAfter]) =>
      new Promise<unknown>((resolve) => {
        window.addEventListener(
          'keyhole:announceProvider',
          (e) => {
            const { provider } = (e as CustomEvent).detail;
            provider.fetchStream(p).then(
              async (res: { status: number; headers: Record<string, string>; body: ReadableStream<Uint8Array> }) => {
                const reader = res.body.getReader();
                const dec = new TextDecoder();
                let text = '';
                let chunks = 0;
                try {
                  for (;;) {
                    const { value, done } = await reader.read();
                    if (done) break;
                    chunks++;
                    text += dec.decode(value, { stream: true });
                    if (cancelAfter && chunks >= cancelAfter) {
                      await reader.cancel();
                      break;
                    }
                  }
                  resolve({ ok: true, result: { status: res.status, headers: res.headers, text, chunks } });
                } catch (err) {
                  const x = err as { code: number; message: string };
                  resolve({ ok: false, error: { code: x.code, message: x.message } });
                }
              },
              (err: { code: number; message: string }) => resolve({ ok: false, error: { code: err.code, message: err.message } }),
            );
          },
          { once: true },
        );
        window.dispatchEvent(new Event('keyhole:requestProvider'));
      }),
    [params, opts.cancelAfterChunks ?? 0] as const,
  ) as Promise<Answer<{ status: number; headers: Record<string, string>; text: string; chunks: number }>>;
}

type Granted = { grants: { id: string; mode: string }[] };

/**
 * keyhole_requestGrant from `page`, up to the consent window the worker opens, once its Allow
 * buttons are enabled (after the anti-clickjacking delay). The person's answer is the caller's.
 */
export async function openConsent(
  context: BrowserContext,
  page: Page,
  params: unknown,
  opts: { timeout?: number } = {},
): Promise<{ consent: Page; answer: Promise<Answer<Granted>> }> {
  const shown = context.waitForEvent('page', { predicate: (p) => p.url().includes('/src/popup/consent.html'), ...opts });
  const answer = request<Granted>(page, 'keyhole_requestGrant', params);
  const consent = await shown;
  await consent.waitForSelector('#allow-period:not([disabled])');
  return { consent, answer };
}

/** How long Allow must be held (popup/consent.ts HOLD_MS), with a margin. */
export const HOLD_FOR_MS = 800 + 300;

/** What a pointer hold needs of a page, in Playwright and in puppeteer alike. */
type Pointer = {
  readonly mouse: {
    move(x: number, y: number, opts?: { steps?: number }): Promise<unknown>;
    down(): Promise<unknown>;
    up(): Promise<unknown>;
  };
  isClosed(): boolean;
};

/**
 * The pointer moves onto `box` from outside, presses, holds for `ms`, and lets go if the page is
 * still open (a consent window closes itself once the grant is made).
 */
export async function holdPointer(page: Pointer, box: { x: number; y: number; width: number; height: number }, ms: number): Promise<void> {
  await page.mouse.move(box.x - 15, box.y - 15);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 4 });
  await page.mouse.down();
  await new Promise((r) => setTimeout(r, ms));
  if (!page.isClosed()) await page.mouse.up().catch(() => {});
}

/**
 * The person approves in a consent window as a person does: once `button` is armed, the pointer
 * moves onto it from outside, presses and holds until it fills, then lets go (if the window is
 * still open: it closes itself once the grant is made).
 */
export async function approve(consent: Page, button: '#allow-once' | '#allow-period'): Promise<void> {
  const armed = consent.locator(`${button}:not([disabled])`);
  await armed.waitFor();
  const box = await armed.boundingBox();
  if (!box) throw new Error(`approve: ${button} is not on screen`);
  await holdPointer(consent, box, HOLD_FOR_MS);
}

/** Asks for a grant from `page` and allows it for the period shown, as the person would. */
export async function grantForPeriod(context: BrowserContext, page: Page, params: unknown): Promise<Answer<Granted>> {
  const { consent, answer } = await openConsent(context, page, params);
  await approve(consent, '#allow-period');
  return answer;
}
