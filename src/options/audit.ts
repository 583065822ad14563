/**
 * The options page's audit viewer: the chain check, unusual-use flags, filters, the newest
 * records, and JSONL/CSV export. Records hold no values, so nothing here can show one.
 */
import type { Result } from '../core/api.ts';
import { AUDIT_KINDS, type AuditFilter } from '../core/audit/audit.ts';
import { field, formatTime, h, message } from '../ui/dom.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';

export function auditSection(): Node {
  const origin = h('input', { id: 'audit-origin', type: 'text', placeholder: 'https://agent.example', spellcheck: 'false' });
  const secret = h('input', { id: 'audit-secret', type: 'text', spellcheck: 'false' });
  const kind = h(
    'select',
    { id: 'audit-kind' },
    h('option', { value: '' }, 'any'),
    ...AUDIT_KINDS.map((k) => h('option', { value: k }, k)),
  );
  const decision = h(
    'select',
    { id: 'audit-decision' },
    ...['', 'allowed', 'denied', 'failed'].map((d) => h('option', { value: d }, d || 'any')),
  );
  const status = h('div', { id: 'audit-status' });
  const table = h('div', { id: 'audit-records' });
  const filter = (): AuditFilter => {
    const f: Record<string, string> = {};
    if (origin.value.trim()) f.origin = origin.value.trim();
    if (secret.value.trim()) f.secret = secret.value.trim();
    if (kind.value) f.kind = kind.value;
    if (decision.value) f.decision = decision.value;
    return f as AuditFilter;
  };
  let shown: Result<'audit.view'>['entries'] = [];
  let next: number | undefined;
  const older = h('button', { type: 'button', id: 'audit-older', hidden: true }, 'Older records');
  /** The newest page (or, with `more`, the page after the shown ones); the integrity line follows when verified. */
  const load = async (more = false) => {
    try {
      const view = await call('audit.view', { filter: filter(), limit: 200, ...(more && next !== undefined ? { before: next } : {}) });
      shown = more ? [...shown, ...view.entries] : view.entries;
      next = view.next;
      older.hidden = !view.more;
      renderTable(shown, table);
      renderStatus(view.check, view.anomalies, status);
      if (!view.check) {
        const v = await call('audit.verify');
        renderStatus(v.check, v.anomalies, status);
      }
    } catch (e) {
      status.replaceChildren(message('error', describeError(e)));
    }
  };
  older.addEventListener('click', () => void load(true));
  const exportAs = (format: 'jsonl' | 'csv') => async () => {
    try {
      const { text, mime } = await call('audit.export', { filter: filter(), format });
      const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: mime })), download: `keyhole-audit.${format}` });
      a.click();
      URL.revokeObjectURL(a.href);
    } catch (e) {
      status.replaceChildren(message('error', describeError(e)));
    }
  };
  const form = h(
    'form',
    { id: 'audit-filter', 'aria-label': 'Filter audit records' },
    h('div', { class: 'grid' }, field('Origin', origin), field('Secret name', secret), field('Kind', kind), field('Decision', decision)),
    h(
      'div',
      { class: 'row' },
      h('button', { type: 'submit' }, 'Apply filter'),
      h('button', { type: 'button', id: 'export-jsonl', onclick: exportAs('jsonl') as EventListener }, 'Export JSONL'),
      h('button', { type: 'button', id: 'export-csv', onclick: exportAs('csv') as EventListener }, 'Export CSV'),
    ),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void load();
  });
  void load();
  return h(
    'section',
    { 'aria-labelledby': 'section-h', id: 'audit' },
    h('h2', { id: 'section-h', tabindex: -1 }, 'Audit'),
    status,
    form,
    table,
    older,
  );
}

function renderStatus(check: Result<'audit.view'>['check'], flags: Result<'audit.view'>['anomalies'], status: HTMLElement): void {
  const notes: Node[] = [];
  if (!check) notes.push(message('info', 'Integrity: checking the chain…'));
  else if (check.ok)
    notes.push(
      message(
        'info',
        `Integrity: ${check.checked} record(s) checked, chain intact${check.pending ? `; ${check.pending} waiting to be chained` : ''}.`,
      ),
    );
  else
    notes.push(
      message('error', `Integrity: the audit chain is broken at record ${check.brokenAt}. Records from there on may have been altered.`),
    );
  for (const a of flags) {
    notes.push(
      message('error', `Unusual use: ${a.origin} used ${a.secret} ${a.recent} times in the last 5 minutes (its median is ${a.median}).`),
    );
  }
  status.replaceChildren(...notes);
}

function renderTable(entries: Result<'audit.view'>['entries'], table: HTMLElement): void {
  if (entries.length === 0) {
    table.replaceChildren(h('p', { class: 'muted' }, 'No records match.'));
    return;
  }
  const cols = ['Time', 'Kind', 'Origin', 'Secret', 'Mode', 'Request', 'Decision', 'Status', 'ms'];
  table.replaceChildren(
    h('p', { class: 'muted' }, `Showing the newest ${entries.length} matching record(s).`),
    h(
      'table',
      { id: 'audit-table' },
      h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        ...entries.map(({ seq, record: r }) =>
          h(
            'tr',
            { 'data-seq': seq, 'data-kind': r.kind },
            h('td', {}, formatTime(r.time)),
            h('td', {}, r.kind + (r.reason ? ` (${r.reason})` : '') + (r.count ? ` ×${r.count}` : '')),
            h('td', {}, r.origin ?? ''),
            h('td', {}, r.secret ?? ''),
            h('td', {}, r.mode ?? ''),
            h('td', {}, r.host ? `${r.method ?? ''} ${r.host}${r.path ?? ''}` : ''),
            h('td', {}, r.decision ?? ''),
            h('td', {}, r.status === undefined ? '' : String(r.status)),
            h('td', {}, r.latencyMs === undefined ? '' : String(r.latencyMs)),
          ),
        ),
      ),
    ),
  );
}
