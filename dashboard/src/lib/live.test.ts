import { describe, expect, it } from 'vitest';
import { LiveMetrics, metricsFromPoll, summarize, summarizeState, type NodeMetrics } from './live';

const m = (node: string, over: Partial<NodeMetrics> = {}): NodeMetrics => ({
  node,
  time_ms: 0,
  ops_per_s: 10,
  hits_per_s: 3,
  misses_per_s: 1,
  hit_rate: 0.75,
  invalidations_per_s: 0,
  hits: 0,
  misses: 0,
  get_p50_ms: 0.1,
  get_p90_ms: 0.2,
  get_p95_ms: 0.3,
  get_p99_ms: 0.4,
  entries: 100,
  bytes: 1000,
  rss_bytes: 5000,
  ...over,
});

describe('summarize', () => {
  it('sums rates and sizes, takes the worst percentile, weighs the hit rate by GETs', () => {
    const s = summarize([m('a'), m('b', { hits_per_s: 0, misses_per_s: 4, get_p99_ms: 2, ops_per_s: 5 })]);
    expect(s.ops_per_s).toBe(15);
    expect(s.entries).toBe(200);
    expect(s.get_p99_ms).toBe(2);
    expect(s.hit_rate).toBeCloseTo(3 / 8);
    // counters the events do not carry are unknown, not zero
    expect(s.evictions).toBeNull();
  });
  it('sums counters when every node sends them', () => {
    const s = summarize([m('a', { evictions: 2, max_bytes: 10 }), m('b', { evictions: 3, max_bytes: 10 })]);
    expect(s.evictions).toBe(5);
    expect(s.max_bytes).toBe(20);
  });
  it('a node without a limit (0) leaves the cluster without one', () => {
    const s = summarize([m('a', { max_bytes: 10, max_entries: 5 }), m('b', { max_bytes: 0, max_entries: 5 }), m('c', { max_bytes: 10, max_entries: 5 })]);
    expect(s.max_bytes).toBe(0);
    expect(s.max_entries).toBe(15);
    expect(summarize([m('a', { max_bytes: 0 }), m('b', { max_bytes: 7 })]).max_bytes).toBe(0);
    expect(summarize([m('a', { max_bytes: 3 }), m('b')]).max_bytes).toBeNull();
  });
});

describe('summarizeState', () => {
  it('all alike: "3 ok", "3 disabled"', () => {
    const s = summarizeState([m('a', { l2: 'ok' }), m('b', { l2: 'ok' }), m('c', { l2: 'ok' })], 'l2');
    expect(s.label).toBe('3 ok');
    expect(s.worst).toBe('ok');
    expect(s.notOk).toEqual([]);
    expect(summarizeState([m('a', { audit: 'disabled' }), m('b', { audit: 'disabled' })], 'audit').label).toBe('2 disabled');
  });
  it('names the nodes that are not ok, worst first', () => {
    const s = summarizeState([m('n2', { l2: 'degraded' }), m('n0', { l2: 'ok' }), m('n1', { l2: 'ok' })], 'l2');
    expect(s.label).toBe('1 degraded of 3');
    expect(s.worst).toBe('degraded');
    expect(s.notOk).toEqual([{ state: 'degraded', nodes: ['n2'] }]);
    const r = summarizeState(
      [m('a', { state: 'syncing' }), m('b', { state: 'minority' }), m('c', { state: 'ok' }), m('d', { state: 'syncing' })],
      'state',
    );
    expect(r.label).toBe('1 minority, 2 syncing of 4');
    expect(r.worst).toBe('minority');
    expect(r.notOk[1]).toEqual({ state: 'syncing', nodes: ['a', 'd'] });
  });
  it('a clock apart is as bad as a minority: its node refuses writes', () => {
    const s = summarizeState([m('a', { state: 'draining' }), m('b', { state: 'clock_skew' }), m('c', { state: 'ok' })], 'state');
    expect(s.worst).toBe('clock_skew');
    expect(s.notOk[0]).toEqual({ state: 'clock_skew', nodes: ['b'] });
  });
  it('counts nodes that do not send the field as unknown; a mix of ok and disabled is not a problem', () => {
    const s = summarizeState([m('a', { audit: 'ok' }), m('b')], 'audit');
    expect(s.label).toBe('1 unknown of 2');
    expect(s.notOk).toEqual([{ state: 'unknown', nodes: ['b'] }]);
    expect(summarizeState([m('a', { l2: 'ok' }), m('b', { l2: 'disabled' })], 'l2').label).toBe('1 disabled, 1 ok');
    expect(summarizeState([], 'l2').label).toBe('—');
  });
});

describe('LiveMetrics', () => {
  it('samples once a second, counts only fresh nodes, keeps 5 minutes', () => {
    const l = new LiveMetrics();
    l.setSelf('a');
    const t0 = 1_000_000_000_000;
    l.ingest(m('a'), t0);
    l.ingest(m('b'), t0 - 10_000); // stale
    l.tick(t0);
    expect(l.series.selfOps).toEqual([10]);
    expect(l.series.clusterOps).toEqual([10]);
    l.tick(t0 + 300); // same second: no new sample
    expect(l.series.t).toHaveLength(1);
    for (let i = 1; i <= 400; i++) l.tick(t0 + i * 1000);
    expect(l.series.t.length).toBeLessThanOrEqual(300);
    expect(l.series.selfOps.at(-1)).toBeNull(); // a's event is old by now
  });
  it('puts history points before the live samples', () => {
    const l = new LiveMetrics();
    const now = 1_000_000_000_000;
    l.tick(now);
    l.seed(
      [
        { t: now - 10_000, requests_per_sec: 4, hits: 1, misses: 1, hit_rate: 0.5, get_p99_ms: 1, entries: 7 },
        { t: now - 5_000, requests_per_sec: 6, hits: 0, misses: 0, hit_rate: 0, get_p99_ms: 0, entries: 8 },
        { t: now + 5_000, requests_per_sec: 9, hits: 0, misses: 0, hit_rate: 0, get_p99_ms: 0, entries: 9 },
      ],
      now,
    );
    expect(l.series.t).toEqual([now / 1000 - 10, now / 1000 - 5, now / 1000]);
    expect(l.series.selfOps.slice(0, 2)).toEqual([4, 6]);
    expect(l.series.selfHitRate.slice(0, 2)).toEqual([50, null]);
    expect(l.series.clusterOps.slice(0, 2)).toEqual([null, null]);
  });
});

describe('metricsFromPoll', () => {
  it('derives rates from two /api/metrics answers', () => {
    const cur = { hits: 30, misses: 10, requests: 100, invalidations: 0, entries: 5, bytes: 9, rss_bytes: 1, evictions: 0, expirations: 0 };
    const r = metricsFromPoll('n0', { hits: 10, misses: 0, requests: 50, invalidations: 0, at: 0 }, cur, 10_000);
    expect(r.ops_per_s).toBe(5);
    expect(r.hits_per_s).toBe(2);
    expect(r.misses_per_s).toBe(1);
    expect(r.hit_rate).toBeCloseTo(2 / 3);
    expect(metricsFromPoll('n0', null, cur, 1).ops_per_s).toBe(0);
  });
});
