/**
 * The team audit (issue 16) in the options page, for a member with the `audit` role: every
 * device's records in one view, each with its device; each device's chain as checked against the
 * head it signed in the log (a record dropped, two swapped, an old one served again, records held
 * back: said in red, by device); unusual use across the team; filters; JSONL and CSV export.
 * Records hold no values, so nothing here can show one.
 */
import type { Result } from '../core/api.ts';
import { AUDIT_FIELDS, type AuditRecord, anomalies, csvCell } from '../core/audit/audit.ts';
import { field, formatTime, h, message } from '../ui/dom.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';

type View = Result<'team.audit'>;
type Entry = View['entries'][number];

const FINDING: Record<View['chains'][number]['findings'][number]['kind'], string> = {
  gap: 'a record is missing',
  broken: 'a record was changed, moved, replayed or invented',
  'not-signed': 'the record at its signed head is not the one it signed',
  withheld: 'records it signed for are withheld',
};

export function teamAuditSection(): Node {
  const device = h('select', { id: 'team-audit-device' }, h('option', { value: '' }, 'any'));
  const origin = h('input', { id: 'team-audit-origin', type: 'text', spellcheck: 'false' });
  const secret = h('input', { id: 'team-audit-secret', type: 'text', spellcheck: 'false' });
  const decision = h(
    'select',
    { id: 'team-audit-decision' },
    ...['', 'allowed', 'denied', 'failed'].map((d) => h('option', { value: d }, d || 'any')),
  );
  const since = h('input', { id: 'team-audit-since', type: 'datetime-local' });
  const until = h('input', { id: 'team-audit-until', type: 'datetime-local' });
  const status = h('div', { id: 'team-audit-status' });
  const table = h('div', { id: 'team-audit-records' });
  let view: View | undefined;

  const shown = (): Entry[] => {
    const from = since.value ? new Date(since.value).getTime() : undefined;
    const to = until.value ? new Date(until.value).getTime() : undefined;
    return (view?.entries ?? []).filter(
      (e) =>
        (!device.value || e.device === device.value) &&
        (!origin.value.trim() || e.record.origin === origin.value.trim()) &&
        (!secret.value.trim() || e.record.secret === secret.value.trim()) &&
        (!decision.value || e.record.decision === decision.value) &&
        (from === undefined || e.record.time >= from) &&
        (to === undefined || e.record.time < to),
    );
  };
  const render = () => renderTable(shown(), table);
  const load = async () => {
    status.replaceChildren(message('info', 'Reading the team audit…'));
    try {
      view = await call('team.audit');
      device.replaceChildren(h('option', { value: '' }, 'any'), ...view.chains.map((c) => h('option', { value: c.device }, c.deviceName)));
      renderStatus(view, status);
      render();
    } catch (e) {
      status.replaceChildren(message('error', describeError(e)));
    }
  };
  const exportAs = (format: 'jsonl' | 'csv') => () => {
    const rows = shown();
    const text =
      format === 'jsonl'
        ? `${rows.map((e) => JSON.stringify({ device: e.device, deviceName: e.deviceName, seq: e.seq, anchored: e.anchored, ...e.record })).join('\n')}\n`
        : toCsv(rows);
    const a = h('a', {
      href: URL.createObjectURL(new Blob([text], { type: format === 'csv' ? 'text/csv' : 'application/x-ndjson' })),
      download: `keyhole-team-audit.${format}`,
    });
    a.click();
    URL.revokeObjectURL(a.href);
  };
  const form = h(
    'form',
    { id: 'team-audit-filter', 'aria-label': 'Filter the team audit' },
    h(
      'div',
      { class: 'grid' },
      field('Device', device),
      field('Origin', origin),
      field('Secret name', secret),
      field('Decision', decision),
      field('From', since),
      field('Until', until),
    ),
    h(
      'div',
      { class: 'row' },
      h('button', { type: 'submit' }, 'Apply filter'),
      h('button', { type: 'button', id: 'team-audit-load', onclick: (() => void load()) as EventListener }, 'Read again'),
      h('button', { type: 'button', id: 'team-export-jsonl', onclick: exportAs('jsonl') as EventListener }, 'Export JSONL'),
      h('button', { type: 'button', id: 'team-export-csv', onclick: exportAs('csv') as EventListener }, 'Export CSV'),
    ),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    render();
  });
  void load();
  return h(
    'section',
    { 'aria-labelledby': 'team-audit-h', id: 'team-audit' },
    h('h3', { id: 'team-audit-h' }, 'Team audit'),
    status,
    form,
    table,
  );
}

function renderStatus(view: View, status: HTMLElement): void {
  const notes: Node[] = [];
  for (const c of view.chains) {
    if (c.findings.length === 0)
      notes.push(
        message(
          'info',
          `${c.deviceName}: ${c.through} record(s), chain intact${c.anchored < c.through ? `; ${c.through - c.anchored} not yet under its signature` : ''}.`,
        ),
      );
    for (const f of c.findings)
      notes.push(
        message(
          'error',
          `${c.deviceName}: at record ${f.seq}, ${FINDING[f.kind]}. The distant vault cannot be trusted with this device's audit.`,
        ),
      );
  }
  for (const a of anomalies(
    view.entries.map((e) => e.record),
    Date.now(),
  ))
    notes.push(
      message(
        'error',
        `Unusual use across the team: ${a.origin} used ${a.secret} ${a.recent} times in the last 5 minutes (its median is ${a.median}).`,
      ),
    );
  status.replaceChildren(...notes);
}

function renderTable(entries: readonly Entry[], table: HTMLElement): void {
  if (entries.length === 0) {
    table.replaceChildren(h('p', { class: 'muted' }, 'No records match.'));
    return;
  }
  const cols = ['Time', 'Device', 'Kind', 'Origin', 'Secret', 'Request', 'Decision', 'Status'];
  table.replaceChildren(
    h(
      'table',
      { id: 'team-audit-table' },
      h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        ...entries
          .slice(0, 1000)
          .map(({ device, deviceName, seq, anchored, record: r }) =>
            h(
              'tr',
              { 'data-device': device, 'data-seq': seq, 'data-anchored': String(anchored) },
              h('td', {}, formatTime(r.time)),
              h('td', {}, deviceName),
              h('td', {}, r.kind + (r.reason ? ` (${r.reason})` : '') + (r.count ? ` ×${r.count}` : '')),
              h('td', {}, r.origin ?? ''),
              h('td', {}, r.secret ?? ''),
              h('td', {}, r.host ? `${r.method ?? ''} ${r.host}${r.path ?? ''}` : ''),
              h('td', {}, r.decision ?? ''),
              h('td', {}, r.status === undefined ? '' : String(r.status)),
            ),
          ),
      ),
    ),
  );
}

const COLUMNS = [...AUDIT_FIELDS, 'count'] as const;

function toCsv(rows: readonly Entry[]): string {
  const header = ['device', 'deviceName', 'seq', 'anchored', ...COLUMNS];
  const lines = rows.map((e) =>
    [e.device, e.deviceName, e.seq, e.anchored, ...COLUMNS.map((c) => (e.record as AuditRecord)[c as keyof AuditRecord])]
      .map(csvCell)
      .join(','),
  );
  return `${[header.join(','), ...lines].join('\r\n')}\r\n`;
}
