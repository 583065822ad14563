/**
 * Sends a token request (core/credentials/oauth2.ts) and reads the answer: never following a
 * redirect (the request carries a client secret or assertion), at most
 * MAX_TOKEN_RESPONSE_BYTES, within TOKEN_TIMEOUT_MS. Uses only `fetch`: the worker and the Node
 * tests run this same code.
 */
import { CredentialError } from '../../core/credentials/errors.ts';
import {
  MAX_TOKEN_RESPONSE_BYTES,
  parseTokenResponse,
  TOKEN_TIMEOUT_MS,
  type TokenRequest,
  type TokenSet,
} from '../../core/credentials/oauth2.ts';
import { BodyTooLarge, readAtMost } from '../bounded.ts';

export type TokenFetch = (url: string, init: RequestInit) => Promise<Response>;

/** Makes the request; resolves with the minted tokens or rejects with a CredentialError. */
export async function requestToken(
  fetchFn: TokenFetch,
  req: TokenRequest,
  now: () => number,
  timeoutMs = TOKEN_TIMEOUT_MS,
  /** what the answer means: an OAuth 2.0 token answer, unless the issuer has its own shape (GitHub) */
  parse: (status: number, body: string, now: number, date: string | null) => TokenSet = parseTokenResponse,
): Promise<TokenSet> {
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetchFn(req.url, {
      method: 'POST',
      headers: req.headers,
      body: req.body,
      redirect: 'manual',
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
      signal,
    });
  } catch {
    throw new CredentialError(signal.aborted ? 'timeout' : 'network');
  }
  if (res.type === 'opaqueredirect' || (res.status >= 300 && res.status < 400)) {
    void res.body?.cancel().catch(() => {});
    throw new CredentialError('redirect', { status: res.status });
  }
  const body = await readBounded(res, signal);
  return parse(res.status, body, now(), res.headers.get('date'));
}

async function readBounded(res: Response, signal: AbortSignal): Promise<string> {
  try {
    return new TextDecoder().decode(await readAtMost(res, MAX_TOKEN_RESPONSE_BYTES));
  } catch (e) {
    if (e instanceof BodyTooLarge) throw new CredentialError('too-large', { status: res.status });
    throw new CredentialError(signal.aborted ? 'timeout' : 'network', { status: res.status });
  }
}
