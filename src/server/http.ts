/** An HTTP error answer: status, a code word, and a message with nothing secret in it. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the routes read of a request's target: its path, and its query. */
export type RequestTarget = { readonly pathname: string; readonly searchParams: Pick<URLSearchParams, 'get'> };

/**
 * Paths the WHATWG URL parser gives back unchanged: segments of RFC 3986 path characters without
 * `%` (so nothing to encode or decode), none empty (`//` would name a host) and none `.` or `..`.
 */
const PLAIN_PATH = /^(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$/;
const NO_QUERY: RequestTarget['searchParams'] = { get: () => null };

/**
 * The request's target, as `new URL(raw, 'http://x')` reads it. A plain path with no query (the
 * usual request) is taken as it is: the parser would give it back unchanged, and it cost ~3% of
 * a JWT's event-loop time (test/server/request-target.test.ts checks the two agree).
 */
export function requestTarget(raw = '/'): RequestTarget {
  return PLAIN_PATH.test(raw) ? { pathname: raw, searchParams: NO_QUERY } : new URL(raw, 'http://x');
}
