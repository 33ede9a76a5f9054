import { useQuery, type QueryClient } from '@tanstack/react-query';
import { useEffect, useRef } from 'react';
import {
  api,
  authHeaders,
  type HistoryResponse,
  type MembersResponse,
  type MetricsResponse,
  type ReadyResponse,
  type RingResponse,
  type WarmRun,
} from './api';
import { events } from './stream';
import { live, metricsFromPoll, type NodeMetrics } from './live';
import { createStore, prefsStore, tokenStore, useStore } from './store';

export function useStreamStatus() {
  return useStore(events.status);
}

export function useMembers() {
  return useQuery({ queryKey: ['members'], queryFn: () => api<MembersResponse>('api/cluster/members') });
}

export function useRing() {
  return useQuery({ queryKey: ['ring'], queryFn: () => api<RingResponse>('api/cluster/ring') });
}

/** /ready answers 503 with the same body when not ready: read it either way. */
export async function fetchReady(): Promise<ReadyResponse> {
  const res = await fetch('ready', { headers: authHeaders(), cache: 'no-store' });
  const body = (await res.json()) as ReadyResponse;
  return body;
}

/**
 * /ready and /api/metrics are read when a page opens and on demand: while the
 * stream is up the `metrics` events carry every node's counters, limits and
 * states; while it is down the poll below refreshes both.
 */
export function useReady() {
  return useQuery({ queryKey: ['ready'], queryFn: fetchReady });
}

/** This node's /api/metrics; while the stream is down the poll below keeps it current. */
export function useNodeMetrics() {
  return useQuery({ queryKey: ['metrics'], queryFn: () => api<MetricsResponse>('api/metrics') });
}

/** Live progress of warming runs, by run id, from `warm` events. */
export const warmRuns = createStore<Record<string, WarmRun>>({});

function throttle(fn: () => void, ms: number): () => void {
  let t: ReturnType<typeof setTimeout> | null = null;
  return () => {
    if (t) return;
    t = setTimeout(() => {
      t = null;
      fn();
    }, ms);
  };
}

interface MemberEvent {
  node?: string;
  member?: string;
  event?: string;
  state?: string;
  incarnation?: number;
  time_ms?: number;
}
interface RingEvent {
  version?: number;
  members?: number;
  replicas?: number;
  balance?: number;
  time_ms?: number;
}

/** Fill the 5-minute charts of this node from its history, so they do not start empty. */
async function seedFromHistory(): Promise<void> {
  try {
    const h = await api<HistoryResponse>('api/metrics/history?window=5m');
    live.seed(h.points);
  } catch {
    /* the charts fill from the stream anyway */
  }
}

/** Wire the event stream to the caches; once, in App. */
export function useEventWiring(qc: QueryClient): void {
  const members = useMembers();
  const self = members.data?.self;
  useEffect(() => {
    if (self) {
      live.setSelf(self);
      void seedFromHistory();
    }
  }, [self]);

  useEffect(() => {
    const refreshWarming = throttle(() => {
      void qc.invalidateQueries({ queryKey: ['warming'] });
    }, 1000);
    const refreshAudit = throttle(() => {
      void qc.invalidateQueries({ queryKey: ['audit'] });
    }, 1000);
    const offs = [
      events.on('metrics', (d) => live.ingest(d as NodeMetrics)),
      events.on('member', (d) => {
        const m = d as MemberEvent;
        live.note('member', `${m.member ?? '?'} ${m.event ?? 'changed'}${m.state ? ` (${m.state})` : ''}`, m.time_ms);
        if (m.member && (m.event === 'left' || m.event === 'reaped' || m.event === 'dead')) live.forget(m.member);
        void qc.invalidateQueries({ queryKey: ['members'] });
        void qc.invalidateQueries({ queryKey: ['ring'] });
      }),
      events.on('ring', (d) => {
        const r = d as RingEvent;
        live.note(
          'ring',
          `ring v${r.version ?? '?'}: ${r.members ?? '?'} members, ${r.replicas ?? '?'} replicas, balance ${
            typeof r.balance === 'number' ? r.balance.toFixed(3) : '?'
          }`,
          r.time_ms,
        );
        void qc.invalidateQueries({ queryKey: ['ring'] });
      }),
      events.on('warm', (d) => {
        const r = d as WarmRun;
        if (!r || typeof r.id !== 'string') return;
        warmRuns.set({ ...warmRuns.get(), [r.id]: r });
        if (r.state !== 'running') refreshWarming();
      }),
      ...['delete', 'invalidate', 'invalidate_pattern', 'tokens_reload', 'origins_reload'].map((t) =>
        events.on(t, () => {
          refreshAudit();
        }),
      ),
      // A job created, changed or deleted through any node.
      events.on('warm_job', () => {
        refreshAudit();
        refreshWarming();
      }),
      // The tokens file was reloaded: this token's role may have changed.
      events.on('tokens_reload', () => {
        void qc.invalidateQueries({ queryKey: ['whoami'] });
      }),
      events.on('reset', () => {
        // The node lost our place in its feed: reload everything shown.
        live.clear();
        warmRuns.set({});
        void qc.invalidateQueries();
        void seedFromHistory();
      }),
    ];
    return () => offs.forEach((o) => o());
  }, [qc]);

  // The stream follows the token.
  const token = useStore(tokenStore);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      events.start();
      return;
    }
    live.clear();
    warmRuns.set({});
    events.restart();
    // Drop what the previous token was shown, rather than keep it beside a 403.
    void qc.resetQueries();
  }, [token, qc]);

  // One sample a second into the 5-minute charts (they keep moving without events).
  useEffect(() => {
    const t = setInterval(() => live.tick(), 1000);
    return () => clearInterval(t);
  }, []);

  // While the stream is down, poll /api/metrics and /ready and feed this node's numbers.
  const status = useStreamStatus();
  const { pollSeconds } = useStore(prefsStore);
  const selfName = self ?? '';
  useEffect(() => {
    if (status.state === 'open' || !selfName) return;
    let prev: { hits: number; misses: number; requests: number; invalidations: number; at: number } | null = null;
    let stopped = false;
    const poll = async () => {
      try {
        const [m, r] = await Promise.all([api<MetricsResponse>('api/metrics'), fetchReady().catch(() => null)]);
        if (stopped) return;
        const at = Date.now();
        const nm = metricsFromPoll(selfName, prev, m, at);
        if (r) {
          nm.state = r.status;
          nm.l2 = r.dependencies.l2?.status;
          nm.audit = r.dependencies.audit?.status;
          qc.setQueryData(['ready'], r);
        }
        live.ingest(nm, at);
        prev = { hits: m.hits, misses: m.misses, requests: m.requests, invalidations: m.invalidations, at };
        qc.setQueryData(['metrics'], m);
      } catch {
        /* shown by the status pill and the pages' own queries */
      }
    };
    void poll();
    const t = setInterval(poll, pollSeconds * 1000);
    return () => {
      stopped = true;
      clearInterval(t);
    };
  }, [status.state, selfName, pollSeconds, qc]);
}
