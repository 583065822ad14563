/** What the route groups beside the core protocol (team, engines) take from the server (app.ts). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metrics } from './metrics.ts';
import type { Store } from './store.ts';
import type { VaultStates } from './vault-states.ts';

export type RouteDeps = {
  readonly store: Store;
  /** verified states by vault, shared by every route group */
  readonly states: VaultStates;
  readonly now: () => number;
  /** the member device a request's session names, or 401 */
  readonly device: (req: IncomingMessage) => Promise<string>;
  readonly readJson: (req: IncomingMessage) => Promise<Record<string, unknown>>;
  readonly send: (res: ServerResponse, status: number, body: unknown) => void;
  /** how often the group's sweeper runs (0: not started; tests sweep by hand) */
  readonly sweepIntervalMs?: number;
  readonly metrics?: Metrics;
};
