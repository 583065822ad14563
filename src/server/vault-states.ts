/**
 * Verified membership states by vault, read once and dropped when the vault's head moves (on any
 * replica: the store's subscription). Routes that answer often (engine tokens, the team cache)
 * read members, roles, policies and the epoch from here rather than from the database each time.
 */
import type { Membership } from '../core/sync/log.ts';
import type { Store } from './store.ts';

export class VaultStates {
  private readonly states = new Map<string, Promise<Membership | undefined>>();
  private readonly unsubscribe: () => void;

  constructor(private readonly store: Store) {
    this.unsubscribe = store.subscribe((vault) => this.states.delete(vault));
  }

  get(vault: string): Promise<Membership | undefined> {
    let s = this.states.get(vault);
    if (!s) {
      s = this.store.membership(vault);
      this.states.set(vault, s);
      s.catch(() => this.states.delete(vault));
    }
    return s;
  }

  close(): void {
    this.unsubscribe();
  }
}
