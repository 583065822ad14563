/** An agent page calling an API without pause, brokered and transparent, recording each outcome. */
import type { Page } from 'playwright';

export type Outcome = { at: number; mode: 'broker' | 'transparent'; ok: boolean; status?: number; code?: number; reason?: string };

/**
 * Calls the API from `page` for `ms`: one brokered call (keyhole_fetch) and one transparent call
 * (plain fetch, no credential of its own) in flight at a time each, 120 ms apart (light enough not
 * to starve the other browser tests running beside it on two cores).
 */
export function callContinuously(page: Page, apiHost: string, secret: string, ms: number, modes: Outcome['mode'][]): Promise<Outcome[]> {
  return page.evaluate(
    async ([host, name, duration, which]) => {
      const provider = await new Promise<{ request(a: { method: string; params?: unknown }): Promise<unknown> }>((resolve) => {
        window.addEventListener('keyhole:announceProvider', (e) => resolve((e as CustomEvent).detail.provider), { once: true });
        window.dispatchEvent(new Event('keyhole:requestProvider'));
      });
      const out: { at: number; mode: string; ok: boolean; status?: number; code?: number; reason?: string }[] = [];
      const end = Date.now() + duration;
      const broker = async () => {
        while (Date.now() < end) {
          try {
            const r = (await provider.request({
              method: 'keyhole_fetch',
              params: { secret: name, url: `http://${host}/v1/ping?via=broker` },
            })) as { status: number };
            out.push({ at: Date.now(), mode: 'broker', ok: r.status === 200, status: r.status });
          } catch (e) {
            const x = e as { code?: number; data?: { reason?: string } };
            out.push({ at: Date.now(), mode: 'broker', ok: false, code: x.code, reason: x.data?.reason });
          }
          await new Promise((r) => setTimeout(r, 120));
        }
      };
      const transparent = async () => {
        while (Date.now() < end) {
          try {
            const r = await fetch(`http://${host}/v1/ping?via=transparent`);
            out.push({ at: Date.now(), mode: 'transparent', ok: r.status === 200, status: r.status });
          } catch {
            out.push({ at: Date.now(), mode: 'transparent', ok: false });
          }
          await new Promise((r) => setTimeout(r, 120));
        }
      };
      await Promise.all([which.includes('broker') ? broker() : null, which.includes('transparent') ? transparent() : null]);
      return out;
    },
    [apiHost, secret, ms, modes] as const,
  ) as Promise<Outcome[]>;
}
