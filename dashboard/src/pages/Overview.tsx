import { useEffect, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, type HistoryResponse } from '../lib/api';
import { formatBytes, formatCount, formatDuration, formatPercent, formatRate } from '../lib/format';
import { useMembers, useNodeMetrics, useReady, useStreamStatus } from '../lib/hooks';
import { live, summarize, WINDOW_S, type NodeMetrics } from '../lib/live';
import { useStore } from '../lib/store';
import { Chart } from '../components/Chart';
import { ClusterState } from '../components/ClusterState';
import { Badge, ErrorMessage, Section, Stat } from '../components/common';

const NEEDS = 'Not sent by every node (a node of an older version)';

function pct(v: number) {
  return `${v.toFixed(0)}%`;
}
function ms(v: number) {
  return formatDuration(v);
}
/** Axis ticks of latency: "0.5 ms", "12 ms", "1.5 s". */
function msAxis(v: number) {
  if (v === 0) return '0';
  return v < 1000 ? `${+v.toFixed(2)} ms` : `${+(v / 1000).toFixed(2)} s`;
}
function rate(v: number) {
  return formatCount(v, v < 10 ? 1 : 0);
}

function MemoryValue({ bytes, max }: { bytes: number | undefined; max: number | null | undefined }) {
  if (bytes === undefined) return <>—</>;
  if (max === 0) return (
    <>
      {formatBytes(bytes)}
      <span className="muted small"> no limit</span>
    </>
  );
  if (!max) return <>{formatBytes(bytes)}</>;
  const ratio = bytes / max;
  return (
    <>
      {formatBytes(bytes)}
      <span className="muted"> / {formatBytes(max)}</span>
      <span className="meter" aria-hidden="true">
        <span className={`meter-fill${ratio > 0.9 ? ' meter-bad' : ratio > 0.75 ? ' meter-warn' : ''}`} style={{ width: `${Math.min(100, ratio * 100)}%` }} />
      </span>
    </>
  );
}

function Numbers({
  title,
  m,
  hitRate,
  evictions,
  expirations,
  invalidations,
  maxBytes,
  maxEntries,
  extra,
  testId,
  latencyNote,
}: {
  title: React.ReactNode;
  m: Pick<NodeMetrics, 'ops_per_s' | 'hits_per_s' | 'misses_per_s' | 'get_p50_ms' | 'get_p90_ms' | 'get_p95_ms' | 'get_p99_ms' | 'entries' | 'bytes'> | null;
  hitRate: number | null | undefined;
  evictions: number | null | undefined;
  expirations: number | null | undefined;
  invalidations: number | null | undefined;
  maxBytes: number | null | undefined;
  maxEntries?: number | null | undefined;
  extra?: React.ReactNode;
  testId: string;
  latencyNote?: string;
}) {
  const missing = (v: number | null | undefined) => (v === null || v === undefined ? NEEDS : undefined);
  // A second without GETs has no latency (the node sends 0).
  const gets = m ? m.hits_per_s + m.misses_per_s : 0;
  const lat = (v: number | undefined) => (m && gets > 0 && v !== undefined ? ms(v) : '—');
  return (
    <div className="numbers" data-testid={testId}>
      <h3>{title}</h3>
      <div className="stats">
        <Stat label="Hit rate" value={formatPercent(hitRate ?? null)} testId={`${testId}-hitrate`} />
        <Stat label="Requests/s" value={formatRate(m?.ops_per_s ?? null)} testId={`${testId}-rps`} />
        <Stat
          label="GET p50 / p90"
          value={`${lat(m?.get_p50_ms)} / ${lat(m?.get_p90_ms)}`}
          title={latencyNote}
        />
        <Stat
          label="GET p95 / p99"
          value={`${lat(m?.get_p95_ms)} / ${lat(m?.get_p99_ms)}`}
          title={latencyNote}
        />
        <Stat
          label="Entries"
          value={formatCount(m?.entries ?? null)}
          sub={maxEntries ? `of at most ${formatCount(maxEntries)}` : undefined}
          testId={`${testId}-entries`}
        />
        <Stat label="Memory" value={<MemoryValue bytes={m?.bytes} max={maxBytes} />} testId={`${testId}-memory`} />
        <Stat label="Evictions" value={formatCount(evictions ?? null)} title={missing(evictions)} />
        <Stat label="Expirations" value={formatCount(expirations ?? null)} title={missing(expirations)} />
        <Stat label="Invalidations" value={formatCount(invalidations ?? null)} title={missing(invalidations)} />
        {extra}
      </div>
    </div>
  );
}

function LiveCharts() {
  useStore(live.version);
  const s = live.series;
  const now = Math.floor(Date.now() / 1000);
  const xRange: [number, number] = [now - WINDOW_S, now];
  return (
    <div className="charts">
      <div className="chart-box">
        <h3>Requests/s</h3>
        <Chart
          label="Requests per second over the last 5 minutes"
          t={s.t}
          xRange={xRange}
          format={rate}
          series={[
            { label: 'this node', color: '--c1', values: s.selfOps },
            { label: 'cluster', color: '--c2', values: s.clusterOps },
          ]}
        />
      </div>
      <div className="chart-box">
        <h3>Hit rate</h3>
        <Chart
          label="Hit rate over the last 5 minutes"
          t={s.t}
          xRange={xRange}
          yMin={0}
          yMax={100}
          format={pct}
          series={[
            { label: 'this node', color: '--c1', values: s.selfHitRate },
            { label: 'cluster', color: '--c2', values: s.clusterHitRate },
          ]}
        />
      </div>
      <div className="chart-box">
        <h3>GET latency</h3>
        <Chart
          label="GET latency over the last 5 minutes"
          t={s.t}
          xRange={xRange}
          format={ms} axisFormat={msAxis}
          series={[
            { label: 'p50', color: '--c3', values: s.selfP50 },
            { label: 'p99', color: '--c1', values: s.selfP99 },
            { label: 'cluster p99 (worst)', color: '--c2', values: s.clusterP99, dash: true },
          ]}
        />
      </div>
      <div className="chart-box">
        <h3>Entries</h3>
        <Chart
          label="Entries over the last 5 minutes"
          t={s.t}
          xRange={xRange}
          format={rate}
          series={[
            { label: 'this node', color: '--c1', values: s.selfEntries },
            { label: 'cluster', color: '--c2', values: s.clusterEntries },
          ]}
        />
      </div>
    </div>
  );
}

const WINDOWS = ['1m', '5m', '1h', '24h'] as const;

function History() {
  const [win, setWin] = useState<(typeof WINDOWS)[number]>('5m');
  const q = useQuery({
    queryKey: ['history', win],
    queryFn: () => api<HistoryResponse>(`api/metrics/history?window=${win}`),
  });
  const pts = q.data?.points ?? [];
  const t = pts.map((p) => p.t / 1000);
  return (
    <Section
      title="History of this node"
      id="history-title"
      actions={
        <div className="tabs" role="group" aria-label="Window">
          {WINDOWS.map((w) => (
            <button key={w} type="button" className="tab" aria-pressed={win === w} onClick={() => setWin(w)}>
              {w}
            </button>
          ))}
          <button type="button" className="btn-small" onClick={() => void q.refetch()} disabled={q.isFetching}>
            Refresh
          </button>
        </div>
      }
    >
      <ErrorMessage error={q.error} action="History" />
      {q.data && (
        <p className="muted small">
          {pts.length} points, one per {formatDuration(pts.length > 1 ? (pts[pts.length - 1]!.t - pts[0]!.t) / (pts.length - 1) : q.data.interval_ms)}.
        </p>
      )}
      <div className="charts">
        <div className="chart-box">
          <h3>Requests/s</h3>
          <Chart label={`Requests per second, ${win}`} t={t} format={rate} series={[{ label: 'req/s', color: '--c1', values: pts.map((p) => p.requests_per_sec) }]} />
        </div>
        <div className="chart-box">
          <h3>Hit rate</h3>
          <Chart label={`Hit rate, ${win}`} t={t} yMin={0} yMax={100} format={pct} series={[{ label: 'hit rate', color: '--c2', values: pts.map((p) => (p.hits + p.misses > 0 ? p.hit_rate * 100 : null)) }]} />
        </div>
        <div className="chart-box">
          <h3>GET p99</h3>
          <Chart label={`GET p99 latency, ${win}`} t={t} format={ms} axisFormat={msAxis} series={[{ label: 'p99', color: '--c1', values: pts.map((p) => p.get_p99_ms) }]} />
        </div>
        <div className="chart-box">
          <h3>Evictions, expirations, invalidations</h3>
          <Chart
            label={`Evictions, expirations and invalidations, ${win}`}
            t={t}
            format={rate}
            series={[
              { label: 'evictions', color: '--c4', values: pts.map((p) => p.evictions) },
              { label: 'expirations', color: '--c3', values: pts.map((p) => p.expirations) },
              { label: 'invalidations', color: '--c2', values: pts.map((p) => p.invalidations) },
            ]}
          />
        </div>
      </div>
    </Section>
  );
}

export function Overview() {
  useStore(live.version);
  const members = useMembers();
  const metrics = useNodeMetrics();
  const ready = useReady();
  const stream = useStreamStatus();
  const self = members.data?.self ?? '';
  const me = live.selfLatest();
  const fresh = live.fresh();
  const cluster = fresh.length ? summarize(fresh) : null;
  const nm = metrics.data;
  const alive = members.data?.members.filter((m) => m.state === 'alive').length ?? 0;
  const total = members.data?.members.length ?? 0;
  const deps = ready.data?.dependencies ?? {};
  const l2 = deps.l2;
  const audit = deps.audit;
  // The events say when this node's states change; /ready has the details (breaker, sink): read it again then.
  const refetchReady = ready.refetch;
  const meStates = me ? `${me.state ?? ''}/${me.l2 ?? ''}/${me.audit ?? ''}` : '';
  useEffect(() => {
    if (meStates) void refetchReady();
  }, [meStates, refetchReady]);
  const myState = me?.state ?? ready.data?.status;
  const myL2 = me?.l2 ?? l2?.status;
  const myAudit = me?.audit ?? audit?.status;
  const l2Detail = l2 && l2.status !== 'disabled' ? `breaker ${String(l2.breaker ?? '—')}, ${String(l2.write_mode ?? '')}` : undefined;
  // Uptime from the one /api/metrics read, moving on with the clock.
  const uptimeMs = nm ? nm.uptime_seconds * 1000 + (Date.now() - metrics.dataUpdatedAt) : null;
  const mine = (v: string | undefined, detail?: string) =>
    v ? (
      <>
        this node <Badge state={v} />
        {detail ? <span className="muted"> {detail}</span> : null}
      </>
    ) : undefined;

  return (
    <div className="page">
      <div className="page-head">
        <h1>Overview</h1>
        <p className="muted">
          {stream.state === 'open'
            ? 'Live from the event stream: every node’s metrics, once a second.'
            : 'The event stream is down: this node’s numbers are polled; the cluster’s are not available.'}
        </p>
      </div>
      <ErrorMessage error={members.error ?? metrics.error} action="Loading" />
      <div className="stats stats-top">
        <Stat
          label="Members"
          testId="members-count"
          value={members.data ? `${alive} alive` : '—'}
          sub={members.data ? `${total} known, ${fresh.length} reporting` : undefined}
        />
        <Stat
          label="Readiness"
          title="Each node's readiness (/ready), from its metrics events"
          value={<ClusterState list={fresh} field="state" testId="cluster-state" />}
          sub={mine(myState, deps.cluster && deps.cluster.status !== 'ok' ? `cluster ${deps.cluster.status}` : undefined)}
        />
        <Stat
          label="L2 (Redis)"
          title="Each node's L2 state, from its metrics events"
          value={<ClusterState list={fresh} field="l2" testId="cluster-l2" />}
          sub={mine(myL2, l2Detail)}
        />
        <Stat
          label="Audit"
          title="Each node's audit sink, from its metrics events"
          value={<ClusterState list={fresh} field="audit" testId="cluster-audit" />}
          sub={mine(myAudit, audit?.sink !== undefined ? `sink ${String(audit.sink)}` : undefined)}
        />
        <Stat
          label="Uptime"
          value={uptimeMs !== null ? formatDuration(uptimeMs) : '—'}
          sub={
            <>
              {nm?.eviction_policy ? `${nm.eviction_policy} eviction · ` : ''}
              <button
                type="button"
                className="link small"
                onClick={() => {
                  void metrics.refetch();
                  void ready.refetch();
                }}
                disabled={metrics.isFetching || ready.isFetching}
                title="Read /api/metrics and /ready of this node again (the stream carries the rest)"
              >
                refresh details
              </button>
            </>
          }
        />
      </div>

      <div className="two-col">
        <Numbers
          testId="self"
          title={<>This node {self && <code>{self}</code>}</>}
          m={me ?? null}
          hitRate={me ? (me.hits_per_s + me.misses_per_s > 0 ? me.hit_rate : null) : null}
          evictions={me?.evictions ?? nm?.evictions}
          expirations={me?.expirations ?? nm?.expirations}
          invalidations={me?.invalidations ?? nm?.invalidations}
          maxBytes={me?.max_bytes ?? nm?.max_bytes}
          maxEntries={me?.max_entries ?? nm?.max_entries}
          latencyNote="GET latency over the last second"
        />
        <Numbers
          testId="cluster"
          title={<>Cluster {cluster && <span className="muted">({cluster.nodes} nodes reporting)</span>}</>}
          m={cluster}
          hitRate={cluster?.hit_rate}
          evictions={cluster?.evictions}
          expirations={cluster?.expirations}
          invalidations={cluster?.invalidations}
          maxBytes={cluster?.max_bytes}
          maxEntries={cluster?.max_entries}
          latencyNote="The slowest node's percentile (percentiles of nodes do not add up)"
        />
      </div>
      <p className="muted small">Hit rate and rates are over the last second. Evictions, expirations and invalidations are totals since each node started.</p>

      <Section title="Last 5 minutes" id="live-title">
        <LiveCharts />
      </Section>
      <History />
    </div>
  );
}
