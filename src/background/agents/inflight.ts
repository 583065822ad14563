/**
 * Brokered calls in flight. Lock ends all of them and revoking a grant ends that grant's, at
 * once, with the page told why (4900, 4100). Streams are capped per origin and per grant:
 * the worker's fetches share the browser's six HTTP/1.1 connections per host with every
 * origin Keyhole serves, so one origin holding six streams would make every other origin's calls
 * to that host wait until it let go (issue 12, item 8).
 */
import { PageError, PageErrorCode } from '../../core/agents/page-api.ts';

export const MAX_STREAMS_PER_ORIGIN = 4;
export const MAX_STREAMS_PER_GRANT = 3;

export type Call = {
  readonly origin: string;
  readonly stream: boolean;
  readonly signal: AbortSignal;
  /** the grant this call goes out under (known once checked); throws 4429 when a stream is over its caps */
  claim(grantId: string): void;
  /** the call is over */
  end(): void;
};

type Entry = { readonly origin: string; readonly stream: boolean; grantId: string | null; readonly abort: AbortController };

export class InFlight {
  private readonly calls = new Set<Entry>();

  /** A new call from `origin`; `signal` (the page went away, a timeout) ends it too. */
  open(origin: string, stream: boolean, signal?: AbortSignal): Call {
    const abort = new AbortController();
    const entry: Entry = { origin, stream, grantId: null, abort };
    this.calls.add(entry);
    const end = () => this.calls.delete(entry);
    return {
      origin,
      stream,
      signal: signal ? AbortSignal.any([signal, abort.signal]) : abort.signal,
      claim: (grantId) => {
        if (stream) {
          let byOrigin = 0;
          let byGrant = 0;
          for (const c of this.calls) {
            if (!c.stream || c.grantId === null) continue;
            if (c.origin === origin) byOrigin++;
            if (c.grantId === grantId) byGrant++;
          }
          if (byOrigin >= MAX_STREAMS_PER_ORIGIN || byGrant >= MAX_STREAMS_PER_GRANT) throw new PageError(PageErrorCode.rateLimited);
        }
        entry.grantId = grantId;
      },
      end,
    };
  }

  /** Lock: every call ends now, with 4900. */
  endAll(): void {
    for (const c of this.calls) c.abort.abort(new PageError(PageErrorCode.locked));
    this.calls.clear();
  }

  /** Revoked grants: their calls end now, with 4100. */
  endGrants(ids: ReadonlySet<string>): void {
    for (const c of this.calls) {
      if (c.grantId !== null && ids.has(c.grantId)) {
        c.abort.abort(new PageError(PageErrorCode.unauthorized));
        this.calls.delete(c);
      }
    }
  }
}
