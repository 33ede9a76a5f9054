// What the Overview and Cluster pages show live: every node's last `metrics`
// event (relayed on every node's stream), 5 minutes of samples for this node and
// for the cluster, and the membership/ring changes seen.
import { createStore } from './store';

export interface NodeMetrics {
  node: string;
  time_ms: number;
  ops_per_s: number;
  hits_per_s: number;
  misses_per_s: number;
  hit_rate: number;
  invalidations_per_s: number;
  hits: number;
  misses: number;
  get_p50_ms: number;
  get_p90_ms: number;
  get_p95_ms: number;
  get_p99_ms: number;
  entries: number;
  bytes: number;
  rss_bytes: number;
  // Optional: nodes of older versions do not send them.
  /** Totals since the node started. */
  evictions?: number;
  expirations?: number;
  invalidations?: number;
  /** L1 limits; 0: none. */
  max_bytes?: number;
  max_entries?: number;
  /** Readiness as /ready says it: ok, syncing, clock_skew, minority, draining. */
  state?: string;
  /** disabled, ok or degraded. */
  l2?: string;
  audit?: string;
}

export type StateField = 'state' | 'l2' | 'audit';

/** How bad a state is, for ordering and for the badge of a summary (higher: worse). */
const SEVERITY: Record<string, number> = { ok: 0, disabled: 0, syncing: 1, unknown: 2, degraded: 3, draining: 3, clock_skew: 4, minority: 4 };
function severity(s: string): number {
  return SEVERITY[s] ?? 2;
}

export interface StateSummary {
  /** Nodes counted. */
  total: number;
  /** Nodes by state; a node that does not send the field counts as "unknown". */
  counts: Record<string, number>;
  /** The nodes of each state other than ok and disabled, worst first. */
  notOk: { state: string; nodes: string[] }[];
  /** The worst state seen (for a badge). */
  worst: string;
  /** "3 ok", "3 disabled", "1 degraded of 3", "1 syncing, 1 minority of 3". */
  label: string;
}

/** One of the states (readiness, L2, audit) over the nodes that report. */
export function summarizeState(list: NodeMetrics[], field: StateField): StateSummary {
  const counts: Record<string, number> = {};
  const byState = new Map<string, string[]>();
  for (const m of list) {
    const v = typeof m[field] === 'string' && m[field] ? (m[field] as string) : 'unknown';
    counts[v] = (counts[v] ?? 0) + 1;
    const names = byState.get(v) ?? [];
    names.push(m.node);
    byState.set(v, names);
  }
  const states = [...byState.keys()].sort((a, b) => severity(b) - severity(a) || a.localeCompare(b));
  const notOk = states
    .filter((s) => s !== 'ok' && s !== 'disabled')
    .map((s) => ({ state: s, nodes: [...(byState.get(s) ?? [])].sort() }));
  const worst = states[0] ?? 'unknown';
  let label: string;
  if (list.length === 0) label = '—';
  else if (states.length === 1) label = `${list.length} ${worst}`;
  else if (notOk.length === 0) label = states.map((s) => `${counts[s]} ${s}`).join(', ');
  else label = `${notOk.map((n) => `${n.nodes.length} ${n.state}`).join(', ')} of ${list.length}`;
  return { total: list.length, counts, notOk, worst, label };
}

export interface ChangeEntry {
  time_ms: number;
  kind: 'member' | 'ring';
  text: string;
}

export const WINDOW_S = 300;
/** A node's last event older than this is not counted in the cluster's sums. */
export const FRESH_MS = 5000;

export interface Series {
  t: number[]; // seconds
  selfOps: (number | null)[];
  selfHitRate: (number | null)[];
  selfP50: (number | null)[];
  selfP99: (number | null)[];
  clusterOps: (number | null)[];
  clusterHitRate: (number | null)[];
  clusterP99: (number | null)[];
  selfEntries: (number | null)[];
  clusterEntries: (number | null)[];
}

function emptySeries(): Series {
  return {
    t: [],
    selfOps: [],
    selfHitRate: [],
    selfP50: [],
    selfP99: [],
    clusterOps: [],
    clusterHitRate: [],
    clusterP99: [],
    selfEntries: [],
    clusterEntries: [],
  };
}

export interface ClusterSummary {
  nodes: number;
  ops_per_s: number;
  hits_per_s: number;
  misses_per_s: number;
  hit_rate: number | null;
  invalidations_per_s: number;
  entries: number;
  bytes: number;
  rss_bytes: number;
  /** The worst node's percentiles: percentiles of different nodes do not add up. */
  get_p50_ms: number;
  get_p90_ms: number;
  get_p95_ms: number;
  get_p99_ms: number;
  evictions: number | null;
  expirations: number | null;
  invalidations: number | null;
  /** The sum of the nodes' limits; 0 when some node has none; null when not sent. */
  max_bytes: number | null;
  max_entries: number | null;
}

export function summarize(list: NodeMetrics[]): ClusterSummary {
  const s: ClusterSummary = {
    nodes: list.length,
    ops_per_s: 0,
    hits_per_s: 0,
    misses_per_s: 0,
    hit_rate: null,
    invalidations_per_s: 0,
    entries: 0,
    bytes: 0,
    rss_bytes: 0,
    get_p50_ms: 0,
    get_p90_ms: 0,
    get_p95_ms: 0,
    get_p99_ms: 0,
    evictions: 0,
    expirations: 0,
    invalidations: 0,
    max_bytes: 0,
    max_entries: 0,
  };
  // A limit of 0 is "none": one node without a limit leaves the cluster without one.
  const addLimit = (sum: number | null, v: number | undefined, first: boolean): number | null => {
    if (sum === null || typeof v !== 'number') return null;
    if (v === 0 || (sum === 0 && !first)) return 0;
    return sum + v;
  };
  let first = true;
  for (const m of list) {
    s.ops_per_s += m.ops_per_s;
    s.hits_per_s += m.hits_per_s;
    s.misses_per_s += m.misses_per_s;
    s.invalidations_per_s += m.invalidations_per_s;
    s.entries += m.entries;
    s.bytes += m.bytes;
    s.rss_bytes += m.rss_bytes;
    s.get_p50_ms = Math.max(s.get_p50_ms, m.get_p50_ms);
    s.get_p90_ms = Math.max(s.get_p90_ms, m.get_p90_ms);
    s.get_p95_ms = Math.max(s.get_p95_ms, m.get_p95_ms);
    s.get_p99_ms = Math.max(s.get_p99_ms, m.get_p99_ms);
    s.evictions = typeof m.evictions === 'number' && s.evictions !== null ? s.evictions + m.evictions : null;
    s.expirations = typeof m.expirations === 'number' && s.expirations !== null ? s.expirations + m.expirations : null;
    s.invalidations =
      typeof m.invalidations === 'number' && s.invalidations !== null ? s.invalidations + m.invalidations : null;
    s.max_bytes = addLimit(s.max_bytes, m.max_bytes, first);
    s.max_entries = addLimit(s.max_entries, m.max_entries, first);
    first = false;
  }
  const gets = s.hits_per_s + s.misses_per_s;
  s.hit_rate = gets > 0 ? s.hits_per_s / gets : null;
  if (list.length === 0) {
    s.evictions = s.expirations = s.invalidations = s.max_bytes = s.max_entries = null;
  }
  return s;
}

export class LiveMetrics {
  /** Bumped on every change; React reads it through useStore. */
  readonly version = createStore(0);
  readonly latest = new Map<string, NodeMetrics>();
  /** Local arrival time of each node's last event (clocks of nodes may differ). */
  private arrived = new Map<string, number>();
  series: Series = emptySeries();
  changes: ChangeEntry[] = [];
  self = '';
  private lastTick = 0;

  private bump(): void {
    this.version.set(this.version.get() + 1);
  }

  setSelf(name: string): void {
    if (name && name !== this.self) {
      this.self = name;
      this.bump();
    }
  }

  ingest(m: NodeMetrics, now = Date.now()): void {
    if (!m || typeof m.node !== 'string') return;
    this.latest.set(m.node, m);
    this.arrived.set(m.node, now);
  }

  /** Nodes whose last event is fresh. */
  fresh(now = Date.now()): NodeMetrics[] {
    const out: NodeMetrics[] = [];
    for (const [name, m] of this.latest) {
      if (now - (this.arrived.get(name) ?? 0) <= FRESH_MS) out.push(m);
    }
    return out.sort((a, b) => a.node.localeCompare(b.node));
  }

  selfLatest(now = Date.now()): NodeMetrics | null {
    const m = this.latest.get(this.self);
    if (!m || now - (this.arrived.get(this.self) ?? 0) > FRESH_MS) return null;
    return m;
  }

  /** Forget a node (it left or was reaped). */
  forget(node: string): void {
    this.latest.delete(node);
    this.arrived.delete(node);
    this.bump();
  }

  /** Take one sample per second into the 5-minute series; called by a timer. */
  tick(now = Date.now()): void {
    const t = Math.floor(now / 1000);
    if (t === this.lastTick) return;
    this.lastTick = t;
    const me = this.selfLatest(now);
    const all = this.fresh(now);
    const c = all.length ? summarize(all) : null;
    const s = this.series;
    s.t.push(t);
    s.selfOps.push(me ? me.ops_per_s : null);
    s.selfHitRate.push(me && me.hits_per_s + me.misses_per_s > 0 ? me.hit_rate * 100 : null);
    s.selfP50.push(me ? me.get_p50_ms : null);
    s.selfP99.push(me ? me.get_p99_ms : null);
    s.selfEntries.push(me ? me.entries : null);
    s.clusterOps.push(c ? c.ops_per_s : null);
    s.clusterHitRate.push(c && c.hit_rate !== null ? c.hit_rate * 100 : null);
    s.clusterP99.push(c ? c.get_p99_ms : null);
    s.clusterEntries.push(c ? c.entries : null);
    const cut = t - WINDOW_S;
    let drop = 0;
    while (drop < s.t.length && (s.t[drop] as number) <= cut) drop++;
    if (drop > 0) {
      for (const k of Object.keys(s) as (keyof Series)[]) s[k].splice(0, drop);
    }
    this.bump();
  }

  /**
   * This node's history points (every --metrics-interval) placed before the first
   * live sample, so the 5-minute charts show the recent past at once.
   */
  seed(points: { t: number; requests_per_sec: number; hits: number; misses: number; hit_rate: number; get_p99_ms: number; entries: number }[], now = Date.now()): void {
    const s = this.series;
    const first = s.t.length ? (s.t[0] as number) : Math.floor(now / 1000) + 1;
    const cut = Math.floor(now / 1000) - WINDOW_S;
    const older = points.map((p) => ({ ...p, t: Math.floor(p.t / 1000) })).filter((p) => p.t < first && p.t > cut);
    if (!older.length) return;
    const n = older.length;
    const nulls = () => new Array<number | null>(n).fill(null);
    s.t.unshift(...older.map((p) => p.t));
    s.selfOps.unshift(...older.map((p) => p.requests_per_sec));
    s.selfHitRate.unshift(...older.map((p) => (p.hits + p.misses > 0 ? p.hit_rate * 100 : null)));
    s.selfP50.unshift(...nulls());
    s.selfP99.unshift(...older.map((p) => p.get_p99_ms));
    s.selfEntries.unshift(...older.map((p) => p.entries));
    s.clusterOps.unshift(...nulls());
    s.clusterHitRate.unshift(...nulls());
    s.clusterP99.unshift(...nulls());
    s.clusterEntries.unshift(...nulls());
    this.bump();
  }

  note(kind: ChangeEntry['kind'], text: string, time_ms = Date.now()): void {
    this.changes.unshift({ kind, text, time_ms });
    if (this.changes.length > 200) this.changes.length = 200;
    this.bump();
  }

  /** Drop everything (a `reset` event, or a new token). */
  clear(): void {
    this.latest.clear();
    this.arrived.clear();
    this.series = emptySeries();
    this.bump();
  }
}

export const live = new LiveMetrics();

/**
 * While the stream is down: rates from two /api/metrics answers of this node,
 * shaped like a metrics event so the same views work.
 */
export function metricsFromPoll(
  node: string,
  prev: { hits: number; misses: number; requests: number; invalidations: number; at: number } | null,
  cur: {
    hits: number;
    misses: number;
    requests: number;
    invalidations: number;
    entries: number;
    bytes: number;
    rss_bytes: number;
    evictions: number;
    expirations: number;
    max_bytes?: number;
    max_entries?: number;
    latency?: Record<string, { p50_ms: number; p90_ms: number; p95_ms: number; p99_ms: number }>;
  },
  at: number,
): NodeMetrics {
  const dt = prev ? (at - prev.at) / 1000 : 0;
  const rate = (a: number, b: number | undefined) => (prev && dt > 0 && b !== undefined ? Math.max(0, (a - b) / dt) : 0);
  const hps = rate(cur.hits, prev?.hits);
  const mps = rate(cur.misses, prev?.misses);
  const g = cur.latency?.get;
  return {
    node,
    time_ms: at,
    ops_per_s: rate(cur.requests, prev?.requests),
    hits_per_s: hps,
    misses_per_s: mps,
    hit_rate: hps + mps > 0 ? hps / (hps + mps) : 0,
    invalidations_per_s: rate(cur.invalidations, prev?.invalidations),
    hits: cur.hits,
    misses: cur.misses,
    // /api/metrics gives latency since start, not over the last second.
    get_p50_ms: g?.p50_ms ?? 0,
    get_p90_ms: g?.p90_ms ?? 0,
    get_p95_ms: g?.p95_ms ?? 0,
    get_p99_ms: g?.p99_ms ?? 0,
    entries: cur.entries,
    bytes: cur.bytes,
    rss_bytes: cur.rss_bytes,
    evictions: cur.evictions,
    expirations: cur.expirations,
    invalidations: cur.invalidations,
    max_bytes: cur.max_bytes,
    max_entries: cur.max_entries,
  };
}
