/** The pages' side of the typed RPC: `call('secrets.list')` returns the worker's typed result. */
import type { Method, Params, Result, RpcErrorBody, RpcResponse } from '../core/api.ts';

export class RpcCallError extends Error {
  override readonly name = 'RpcCallError';
  readonly code: RpcErrorBody['code'];
  readonly data: RpcErrorBody['data'];
  constructor(body: RpcErrorBody) {
    super(body.message);
    this.code = body.code;
    this.data = body.data;
  }
}

export async function call<M extends Method>(method: M, ...params: Params<M> extends undefined ? [] : [Params<M>]): Promise<Result<M>> {
  const res = (await chrome.runtime.sendMessage({ kh: 1, method, params: params[0] })) as RpcResponse | undefined;
  if (!res) throw new RpcCallError({ code: 'internal', message: 'no answer from the extension' });
  if (!res.ok) throw new RpcCallError(res.error);
  return res.result as Result<M>;
}
