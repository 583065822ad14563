/**
 * The consent window: who asks, for which secret, to which hosts, in which mode, for how long.
 * Against clickjacking, the Allow buttons enable only after the window has been visible and
 * focused for ALLOW_DELAY_MS without a break, focus starts on Deny, and Enter never approves.
 * Host permissions are requested by the Allow click itself (it is the user gesture Chrome needs).
 */
import type { ConsentDecision, ConsentRequest } from '../core/grants.ts';
import { hostPermissionPattern } from '../core/policy.ts';
import { field, h, message } from '../ui/dom.ts';
import { GRANT_PERIODS } from '../ui/periods.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';

export const ALLOW_DELAY_MS = 700;
const HEARTBEAT_MS = 10_000;

const app = document.getElementById('app') as HTMLElement;
const requestId = new URLSearchParams(location.search).get('request') ?? '';

function duration(secs: number): string {
  if (secs % 86_400 === 0) return `${secs / 86_400} day${secs === 86_400 ? '' : 's'}`;
  if (secs % 3600 === 0) return `${secs / 3600} hour${secs === 3600 ? '' : 's'}`;
  const m = Math.round(secs / 60);
  return `${m} minute${m === 1 ? '' : 's'}`;
}

/** Match patterns for the hosts Chrome must let the worker reach (ports are not part of a pattern). */
function originPatterns(req: ConsentRequest): string[] {
  const hosts = req.secrets.flatMap((s) => s.hosts);
  if (req.mode === 'transparent') hosts.push(new URL(req.origin).host);
  return [...new Set(hosts.map(hostPermissionPattern))];
}

function describeMode(req: ConsentRequest): Node {
  return req.mode === 'transparent'
    ? h(
        'p',
        { class: 'warn' },
        'Transparent mode: Keyhole adds the key to requests from this site’s tabs. Any script running in those tabs can use the key, ' +
          'and an API that echoes credentials back would show it to the site. Allow this only for a site you trust.',
      )
    : h('p', {}, 'Brokered mode: Keyhole makes each request itself and gives the site only the response. The site never sees the key.');
}

function render(req: ConsentRequest): void {
  const known = req.secrets.filter((s) => s.id !== undefined);
  const deny = h('button', { type: 'button', id: 'deny' }, 'Deny');
  const once = h('button', { type: 'button', id: 'allow-once', class: 'primary', disabled: true }, 'Allow once');
  const period = h('select', { id: 'period' });
  // the period the site asked for comes first; the person can pick another
  if (!GRANT_PERIODS.some(([secs]) => secs === req.ttlSeconds))
    period.append(h('option', { value: req.ttlSeconds }, `${duration(req.ttlSeconds)} (asked by the site)`));
  for (const [secs, label] of GRANT_PERIODS) period.append(h('option', { value: secs }, label));
  period.value = String(req.ttlSeconds);
  const forPeriod = h('button', { type: 'button', id: 'allow-period', class: 'primary', disabled: true }, 'Allow for this period');
  const errors = h('div', {});
  const allowButtons = known.length > 0 ? [once, forPeriod] : [];

  const decide = async (decision: ConsentDecision) => {
    errors.replaceChildren();
    try {
      if (decision.kind !== 'deny') {
        // Loopback hosts are in the manifest; API hosts are asked for here, once.
        const origins = originPatterns(req);
        if (!(await chrome.permissions.contains({ origins })) && !(await chrome.permissions.request({ origins }))) {
          errors.append(message('error', 'Chrome did not give Keyhole access to these hosts, so nothing was allowed.'));
          return;
        }
      }
      await call('consent.decide', { request: req.id, decision });
      window.close();
    } catch (e) {
      errors.append(message('error', describeError(e)));
    }
  };
  deny.addEventListener('click', () => void decide({ kind: 'deny' }));
  once.addEventListener('click', () => void decide({ kind: 'once' }));
  forPeriod.addEventListener('click', () => void decide({ kind: 'period', ttlSeconds: Number(period.value) }));
  // Enter never approves: only a click (or Space on a focused Allow button) does.
  for (const b of allowButtons) {
    b.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') ev.preventDefault();
    });
  }

  app.dataset.state = 'asking';
  app.replaceChildren(
    h('h1', {}, 'A site asks to use a secret'),
    h('p', { class: 'origin', id: 'origin' }, req.origin),
    h('p', {}, req.secrets.length === 1 ? 'wants to use this secret:' : 'wants to use these secrets:'),
    h(
      'ul',
      { class: 'secrets' },
      ...req.secrets.map((s) =>
        h(
          'li',
          { 'data-secret': s.name },
          h('strong', {}, s.name),
          s.id === undefined ? h('span', { class: 'warn' }, ' — not in your vault') : ` — sent as ${s.header} to ${s.hosts.join(', ')}`,
        ),
      ),
    ),
    describeMode(req),
    req.reason
      ? h(
          'div',
          {},
          h('p', { class: 'muted' }, 'The site says (its own words, unchecked):'),
          h('blockquote', { class: 'reason', id: 'reason' }, `“${req.reason}”`),
        )
      : '',
    known.length > 0 ? field('How long', period) : '',
    errors,
    h('div', { class: 'actions' }, deny, ...allowButtons),
  );
  deny.focus();
  armAfterSteadyFocus(allowButtons);
}

/** Enables `buttons` once the window has been visible and focused for ALLOW_DELAY_MS in one stretch. */
function armAfterSteadyFocus(buttons: HTMLButtonElement[]): void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const disarm = () => {
    clearTimeout(timer);
    for (const b of buttons) b.disabled = true;
  };
  const arm = () => {
    disarm();
    if (document.visibilityState !== 'visible' || !document.hasFocus()) return;
    timer = setTimeout(() => {
      for (const b of buttons) b.disabled = false;
    }, ALLOW_DELAY_MS);
  };
  window.addEventListener('focus', arm);
  window.addEventListener('blur', disarm);
  document.addEventListener('visibilitychange', arm);
  arm();
}

async function main(): Promise<void> {
  const req = await call('consent.get', { request: requestId });
  if (!req) {
    app.dataset.state = 'gone';
    app.replaceChildren(message('info', 'This request is no longer waiting.'));
    return;
  }
  render(req);
  // Messages keep the worker awake while the person reads; a request answered elsewhere closes the window.
  setInterval(() => {
    void call('consent.get', { request: requestId }).then((r) => {
      if (!r) window.close();
    });
  }, HEARTBEAT_MS);
}

void main().catch((e) => app.replaceChildren(message('error', describeError(e))));
