/**
 * What every section of the options page shares: redrawing the current view after a change, and
 * running an action with its error shown in place.
 */
import { message } from '../ui/dom.ts';
import { describeError } from '../ui/strings.ts';

let draw: () => Promise<void> = async () => {};

/** Draws the current view again (after a change the worker confirmed). */
export function redraw(): Promise<void> {
  return draw();
}

/** The page's router sets what `redraw` draws. */
export function setRedraw(fn: () => Promise<void>): void {
  draw = fn;
}

/** Runs `work`, showing its error (never a value: RPC errors carry codes and fixed sentences) in `slot`. */
export async function guarded(slot: HTMLElement, work: () => Promise<void>): Promise<void> {
  slot.replaceChildren();
  try {
    await work();
  } catch (e) {
    slot.replaceChildren(message('error', describeError(e)));
  }
}
