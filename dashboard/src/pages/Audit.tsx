import { Fragment, useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, type AuditResponse } from '../lib/api';
import { formatDuration, formatTime } from '../lib/format';
import { prefsStore, useStore } from '../lib/store';
import { useCan } from '../lib/role';
import { Badge, Empty, ErrorMessage, RoleNote, Section } from '../components/common';
import { describeAudit } from './Invalidate';

const ACTIONS = ['', 'delete', 'invalidate', 'invalidate_pattern', 'warm', 'warm_job', 'tokens_reload', 'origins_reload'];
const SINCE = [
  ['15m', 'last 15 minutes'],
  ['1h', 'last hour'],
  ['24h', 'last 24 hours'],
  ['7d', 'last 7 days'],
  ['', 'all'],
  ['custom', 'from a time…'],
] as const;

interface Filters {
  since: string;
  from: string; // datetime-local when since = custom
  until: string; // datetime-local
  action: string;
  actor: string;
  limit: number;
}

/** The query string of /api/audit for these filters and cursor. */
export function auditQuery(f: Filters, cursor: string | null): string {
  const q = new URLSearchParams();
  if (f.since === 'custom') {
    if (f.from) q.set('since', String(new Date(f.from).getTime()));
  } else if (f.since) q.set('since', f.since);
  if (f.until) q.set('until', String(new Date(f.until).getTime()));
  if (f.action) q.set('action', f.action);
  if (f.actor.trim()) q.set('actor', f.actor.trim());
  q.set('limit', String(f.limit));
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}

export default function Audit() {
  const { utc } = useStore(prefsStore);
  const [draft, setDraft] = useState<Filters>({ since: '24h', from: '', until: '', action: '', actor: '', limit: 50 });
  const [filters, setFilters] = useState<Filters>(draft);
  // Cursors of the pages before the one shown, to go back.
  const [stack, setStack] = useState<(string | null)[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [expanded, setExpanded] = useState<string | null>(null);
  const can = useCan('admin');
  // Asked even when whoami says the role is too low: the node's own answer (its 403) is shown.
  const q = useQuery({
    queryKey: ['audit', 'page', filters, cursor],
    queryFn: () => api<AuditResponse>(`api/audit?${auditQuery(filters, cursor)}`),
    retry: false,
    placeholderData: (prev) => prev,
  });
  const apply = (e: FormEvent) => {
    e.preventDefault();
    setFilters(draft);
    setStack([]);
    setCursor(null);
  };
  const set = (patch: Partial<Filters>) => setDraft({ ...draft, ...patch });
  const recs = q.data?.records ?? [];
  return (
    <div className="page">
      <div className="page-head">
        <h1>Audit trail</h1>
        <p className="muted">Deletes, invalidations, warming runs and token reloads, newest first. Needs the admin role.</p>
        <RoleNote perm={can} what="Reading the audit trail" />
      </div>
      <Section title="Filter" id="filter-title">
        <form className="row wrap-row" onSubmit={apply}>
          <label>
            <span className="label">Time</span>
            <select value={draft.since} onChange={(e) => set({ since: e.target.value })}>
              {SINCE.map(([v, l]) => (
                <option key={v} value={v}>
                  {l}
                </option>
              ))}
            </select>
          </label>
          {draft.since === 'custom' && (
            <label>
              <span className="label">From</span>
              <input type="datetime-local" value={draft.from} onChange={(e) => set({ from: e.target.value })} />
            </label>
          )}
          <label>
            <span className="label">Until</span>
            <input type="datetime-local" value={draft.until} onChange={(e) => set({ until: e.target.value })} />
          </label>
          <label>
            <span className="label">Action</span>
            <select value={draft.action} onChange={(e) => set({ action: e.target.value })}>
              {ACTIONS.map((a) => (
                <option key={a} value={a}>
                  {a || 'any'}
                </option>
              ))}
            </select>
          </label>
          <label>
            <span className="label">Actor</span>
            <input value={draft.actor} onChange={(e) => set({ actor: e.target.value })} placeholder="token name or address" />
          </label>
          <label>
            <span className="label">Per page</span>
            <select value={draft.limit} onChange={(e) => set({ limit: Number(e.target.value) })}>
              {[25, 50, 100, 500].map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" className="btn btn-primary">
            Apply
          </button>
        </form>
      </Section>
      <Section
        title="Records"
        id="records-title"
        actions={
          <button type="button" className="btn-small" onClick={() => void q.refetch()} disabled={q.isFetching}>
            Refresh
          </button>
        }
      >
        <ErrorMessage error={q.error} action="Audit trail" />
        {q.data?.degraded && <p className="alert alert-warn">Read from this node’s files only: {q.data.degraded}</p>}
        {q.data && (
          <p className="muted small">
            Source: {q.data.source === 'postgres' ? 'the whole cluster (PostgreSQL)' : 'this node’s files (each node keeps its own trail without --audit-db)'}
          </p>
        )}
        {q.data && recs.length === 0 && <Empty>No record matches.</Empty>}
        {recs.length > 0 && (
          <div className="table-wrap">
            <table className="table" data-testid="audit-table">
              <thead>
                <tr>
                  <th>Time</th>
                  <th>Node</th>
                  <th>Actor</th>
                  <th>Action</th>
                  <th>Target</th>
                  <th className="num">Count</th>
                  <th>Result</th>
                  <th className="num">Duration</th>
                  <th>
                    <span className="sr-only">Details</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {recs.map((r) => {
                  const id = `${r.node}/${r.id}`;
                  return (
                    <Fragment key={id}>
                      <tr>
                        <td className="nowrap">{formatTime(r.time_ms, utc)}</td>
                        <td>{r.node}</td>
                        <td>{r.actor}</td>
                        <td>{r.action}</td>
                        <td className="mono wrap">{describeAudit(r)}</td>
                        <td className="num">
                          {r.invalidated ?? '—'}/{r.matched ?? r.key_count ?? '—'}
                        </td>
                        <td>
                          <Badge state={r.result === 'ok' ? 'ok' : 'failed'}>
                            {r.status} {r.result}
                          </Badge>
                        </td>
                        <td className="num">{r.duration_ms !== undefined ? formatDuration(r.duration_ms) : '—'}</td>
                        <td>
                          <button
                            type="button"
                            className="btn-small"
                            aria-expanded={expanded === id}
                            onClick={() => setExpanded(expanded === id ? null : id)}
                          >
                            {expanded === id ? 'Hide' : 'JSON'}
                          </button>
                        </td>
                      </tr>
                      {expanded === id && (
                        <tr className="detail-row">
                          <td colSpan={9}>
                            <pre className="value">{JSON.stringify(r, null, 2)}</pre>
                          </td>
                        </tr>
                      )}
                    </Fragment>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        <div className="row list-foot">
          <button
            type="button"
            className="btn"
            disabled={stack.length === 0 || q.isFetching}
            onClick={() => {
              const s = [...stack];
              const prev = s.pop() ?? null;
              setStack(s);
              setCursor(prev);
            }}
          >
            Newer
          </button>
          <span className="muted">Page {stack.length + 1}</span>
          <button
            type="button"
            className="btn"
            disabled={!q.data?.next || q.isFetching}
            onClick={() => {
              setStack([...stack, cursor]);
              setCursor(q.data?.next ?? null);
            }}
          >
            Older
          </button>
        </div>
      </Section>
    </div>
  );
}
