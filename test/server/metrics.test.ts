/**
 * The request latency histogram in the Prometheus exposition: buckets are cumulative, `+Inf`
 * counts every request, each route and status class is its own series.
 */
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/server/metrics.ts';

const series = (text: string, name: string) =>
  Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]),
  );

describe('the latency histogram', () => {
  it('counts cumulatively by bucket, per route and status class', () => {
    const m = new Metrics();
    for (const ms of [0.4, 1, 7, 7.5, 20_000]) m.observe('engine.token', 200, ms);
    m.observe('engine.token', 403, 3);
    const text = m.text([]);
    const b = series(text, 'keyhole_request_duration_seconds_bucket{code="2xx",route="engine.token"');
    expect(b['keyhole_request_duration_seconds_bucket{code="2xx",route="engine.token",le="0.001"}']).toBe(2);
    expect(b['keyhole_request_duration_seconds_bucket{code="2xx",route="engine.token",le="0.005"}']).toBe(2);
    expect(b['keyhole_request_duration_seconds_bucket{code="2xx",route="engine.token",le="0.01"}']).toBe(4);
    expect(b['keyhole_request_duration_seconds_bucket{code="2xx",route="engine.token",le="10"}']).toBe(4);
    expect(b['keyhole_request_duration_seconds_bucket{code="2xx",route="engine.token",le="+Inf"}']).toBe(5);
    const counts = series(text, 'keyhole_request_duration_seconds_count');
    expect(counts).toEqual({
      'keyhole_request_duration_seconds_count{code="2xx",route="engine.token"}': 5,
      'keyhole_request_duration_seconds_count{code="4xx",route="engine.token"}': 1,
    });
    expect(series(text, 'keyhole_request_duration_seconds_sum{code="4xx"')).toEqual({
      'keyhole_request_duration_seconds_sum{code="4xx",route="engine.token"}': 0.003,
    });
  });
});
