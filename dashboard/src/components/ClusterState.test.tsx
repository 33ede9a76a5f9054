import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import { ClusterState } from './ClusterState';
import type { NodeMetrics } from '../lib/live';

const m = (node: string, over: Partial<NodeMetrics>): NodeMetrics => ({
  node,
  time_ms: 0,
  ops_per_s: 0,
  hits_per_s: 0,
  misses_per_s: 0,
  hit_rate: 0,
  invalidations_per_s: 0,
  hits: 0,
  misses: 0,
  get_p50_ms: 0,
  get_p90_ms: 0,
  get_p95_ms: 0,
  get_p99_ms: 0,
  entries: 0,
  bytes: 0,
  rss_bytes: 0,
  ...over,
});

describe('cluster states on the overview', () => {
  it('all ok: one count', () => {
    render(<ClusterState list={[m('n0', { l2: 'ok' }), m('n1', { l2: 'ok' }), m('n2', { l2: 'ok' })]} field="l2" testId="s" />);
    expect(screen.getByTestId('s').textContent).toBe('3 ok');
  });
  it('names the degraded nodes, with a warning badge', () => {
    render(
      <ClusterState list={[m('n0', { audit: 'ok' }), m('n1', { audit: 'degraded' }), m('n2', { audit: 'ok' })]} field="audit" testId="s" />,
    );
    const el = screen.getByTestId('s');
    expect(el.textContent).toBe('1 degraded of 3 degraded: n1');
    expect(el.querySelector('.badge-warn')).not.toBeNull();
  });
  it('readiness: a minority node is shown as bad', () => {
    render(<ClusterState list={[m('n0', { state: 'minority' }), m('n1', { state: 'syncing' })]} field="state" testId="s" />);
    const el = screen.getByTestId('s');
    expect(el.textContent).toBe('1 minority, 1 syncing of 2 minority: n0 syncing: n1');
    expect(el.querySelector('.badge-bad')).not.toBeNull();
  });
});
