/**
 * `/metrics` in Prometheus text format (version 0.0.4): counters and one latency histogram kept in
 * this process, and gauges read at scrape time (leases by engine and state, from the store, so
 * every replica reports the same totals). Labels are route names, engine names and kinds, states:
 * never a vault id, a device, a token or a path with an id in it.
 */

const BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000] as const;

type Labels = Readonly<Record<string, string>>;
const render = (name: string, labels: Labels) =>
  `${name}{${Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
    .join(',')}}`;

/** Rendered series names, memoised: the label sets are few, and this runs on every request. */
const rendered = new Map<string, string>();
function key(name: string, labels: Labels): string {
  let memo = name;
  for (const k in labels) memo += `\u0000${k}\u0000${labels[k]}`;
  let r = rendered.get(memo);
  if (r === undefined) {
    r = render(name, labels);
    if (rendered.size < 10_000) rendered.set(memo, r);
  }
  return r;
}

export class Metrics {
  private readonly counters = new Map<string, { help: string; values: Map<string, number> }>();
  /** by route, then status class: the rendered labels and per-bucket counts (not cumulative: summed when scraped) */
  private readonly latency = new Map<string, Map<number, { labels: string; buckets: number[]; sum: number; count: number }>>();

  count(name: string, help: string, labels: Labels = {}, by = 1): void {
    let c = this.counters.get(name);
    if (!c) {
      c = { help, values: new Map() };
      this.counters.set(name, c);
    }
    const k = key(name, labels);
    c.values.set(k, (c.values.get(k) ?? 0) + by);
  }

  /** One request's duration, by route name and status class (this runs on every request). */
  observe(route: string, status: number, ms: number): void {
    let byClass = this.latency.get(route);
    if (!byClass) {
      byClass = new Map();
      this.latency.set(route, byClass);
    }
    const cls = Math.floor(status / 100);
    let h = byClass.get(cls);
    if (!h) {
      h = { labels: key('', { route, code: `${cls}xx` }).slice(1, -1), buckets: BUCKETS_MS.map(() => 0), sum: 0, count: 0 };
      byClass.set(cls, h);
    }
    let i = 0;
    while (i < BUCKETS_MS.length && ms > (BUCKETS_MS[i] as number)) i++;
    if (i < BUCKETS_MS.length) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
    h.sum += ms / 1000;
    h.count++;
  }

  /** The exposition, with `gauges` read now. */
  text(gauges: readonly { name: string; help: string; values: readonly { labels: Labels; value: number }[] }[]): string {
    const out: string[] = [];
    for (const g of gauges) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const v of g.values) out.push(`${key(g.name, v.labels)} ${v.value}`);
    }
    for (const [name, c] of this.counters) {
      out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
      for (const [k, v] of c.values) out.push(`${k} ${v}`);
    }
    const h = 'keyhole_request_duration_seconds';
    out.push(`# HELP ${h} Request latency by route and status class`, `# TYPE ${h} histogram`);
    for (const byClass of this.latency.values()) {
      for (const v of byClass.values()) {
        let below = 0;
        BUCKETS_MS.forEach((b, i) => {
          below += v.buckets[i] ?? 0;
          out.push(`${h}_bucket{${v.labels},le="${b / 1000}"} ${below}`);
        });
        out.push(`${h}_bucket{${v.labels},le="+Inf"} ${v.count}`, `${h}_sum{${v.labels}} ${v.sum}`, `${h}_count{${v.labels}} ${v.count}`);
      }
    }
    return `${out.join('\n')}\n`;
  }
}
