import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  api,
  ApiError,
  mergeParts,
  type AuditRecord,
  type AuditResponse,
  type InvalidateResult,
  type NodePart,
  type PreviewResponse,
} from '../lib/api';
import { formatCount, formatTime } from '../lib/format';
import { prefsStore, useStore } from '../lib/store';
import { useCan } from '../lib/role';
import { Badge, Dialog, Empty, ErrorMessage, RoleNote, Section, useDebounced } from '../components/common';

/** Keys pasted one a line (commas or tabs also split); blank lines dropped, duplicates once. */
export function parseKeyList(text: string): string[] {
  const seen = new Set<string>();
  for (const raw of text.split(/\r?\n|\t|,/)) {
    const k = raw.trim();
    if (k) seen.add(k);
  }
  return [...seen];
}

export const MAX_KEYS_PER_REQUEST = 10000;

/** Each member's part of an invalidation (the answer's per_node), by node name. */
export function PerNode({ parts }: { parts: NodePart[] }) {
  const withMatched = parts.some((p) => p.matched !== undefined);
  const rows = [...parts].sort((a, b) => a.node.localeCompare(b.node));
  return (
    <div className="table-wrap">
      <table className="table table-compact per-node" data-testid="per-node">
        <caption className="sr-only">Per node</caption>
        <thead>
          <tr>
            <th>Node</th>
            <th>Answered</th>
            {withMatched && <th className="num">Matched</th>}
            <th className="num">Invalidated</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((p) => (
            <tr key={p.node} data-node={p.node}>
              <td>{p.node}</td>
              <td>{p.answered ? <Badge state="ok">yes</Badge> : <Badge state="failed">no answer</Badge>}</td>
              {withMatched && <td className="num">{p.answered && p.matched !== undefined ? formatCount(p.matched) : '—'}</td>}
              <td className="num">{p.answered && p.invalidated !== undefined ? formatCount(p.invalidated) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The result of an invalidation, a 503 invalidation_incomplete included. */
export function InvalidateOutcome({ result, what, incomplete }: { result: InvalidateResult; what: string; incomplete?: boolean }) {
  const unreachable = result.unreachable ?? [];
  return (
    <div className={`alert ${incomplete || unreachable.length ? 'alert-warn' : 'alert-ok'}`} role="status" data-testid="invalidate-result">
      <strong>{what}.</strong>{' '}
      {result.matched !== undefined && <>Matched {formatCount(result.matched)}, </>}
      invalidated <strong data-testid="invalidated-count">{formatCount(result.invalidated)}</strong> on {result.nodes} node
      {result.nodes === 1 ? '' : 's'}.
      {result.l2 && (
        <> Redis: {result.l2.status}{result.l2.unlinked !== undefined ? `, ${result.l2.unlinked} unlinked` : ''}.</>
      )}
      {Array.isArray(result.per_node) && result.per_node.length > 0 && <PerNode parts={result.per_node} />}
      {unreachable.length > 0 && (
        <div>
          Unreachable: <strong>{unreachable.join(', ')}</strong>. They may still serve the old values: retry (it is idempotent).
        </div>
      )}
    </div>
  );
}

/** A 503 invalidation_incomplete carries the counts: show them with the error. */
function incompleteBody(e: unknown): InvalidateResult | null {
  if (e instanceof ApiError && e.code === 'invalidation_incomplete' && e.body && typeof e.body === 'object') {
    return e.body as InvalidateResult;
  }
  return null;
}

function ResultOrError({ data, error, what }: { data: InvalidateResult | undefined; error: unknown; what: string }) {
  const partial = incompleteBody(error);
  return (
    <>
      {data && <InvalidateOutcome result={data} what={what} />}
      {partial && <InvalidateOutcome result={partial} what={`${what}, incompletely`} incomplete />}
      <ErrorMessage error={error} action={what} />
    </>
  );
}

function PatternConsole({ initial }: { initial: string }) {
  const qc = useQueryClient();
  const can = useCan('admin');
  const [pattern, setPattern] = useState(initial);
  const [confirming, setConfirming] = useState(false);
  const debounced = useDebounced(pattern.trim(), 350);
  const preview = useQuery({
    queryKey: ['preview', debounced],
    queryFn: ({ signal }) =>
      api<PreviewResponse>(`api/invalidate/preview?${new URLSearchParams({ pattern: debounced, limit: '20' })}`, { signal }),
    enabled: debounced.length > 0,
    retry: false,
  });
  const run = useMutation({
    mutationFn: (dry: boolean) =>
      api<InvalidateResult>('api/invalidate/pattern', { method: 'POST', json: { pattern: pattern.trim(), dry_run: dry } }),
    onSettled: (_d, _e, dry) => {
      setConfirming(false);
      if (!dry) void qc.invalidateQueries({ queryKey: ['preview'] });
      void qc.invalidateQueries({ queryKey: ['audit'] });
    },
  });
  const p = preview.data;
  const stale = debounced !== pattern.trim();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (pattern.trim() && can.ok) setConfirming(true);
  };
  const lastDry = run.variables === true;
  return (
    <Section title="Invalidate by pattern" id="pattern-title">
      <form className="form" onSubmit={submit}>
        <div className="row">
          <label className="grow">
            <span className="label">Pattern (Redis glob, at most 16 wildcards)</span>
            <input
              value={pattern}
              onChange={(e) => {
                setPattern(e.target.value);
                run.reset();
              }}
              placeholder="users:*"
              name="pattern"
              autoComplete="off"
              maxLength={256}
              data-testid="pattern-input"
            />
          </label>
          <button
            type="button"
            className="btn"
            disabled={!pattern.trim() || run.isPending || !can.ok}
            title={can.ok ? 'Count what it matches on every member, delete nothing' : `A dry run ${can.reason}`}
            aria-describedby={can.ok ? undefined : 'pattern-role'}
            onClick={() => run.mutate(true)}
          >
            Dry run
          </button>
          <button
            type="submit"
            className="btn btn-danger"
            disabled={!pattern.trim() || run.isPending || !can.ok}
            title={can.ok ? undefined : `Pattern invalidation ${can.reason}`}
            aria-describedby={can.ok ? undefined : 'pattern-role'}
            data-testid="pattern-invalidate"
          >
            Invalidate…
          </button>
        </div>
        <RoleNote perm={can} what="Pattern invalidation (and its dry run)" id="pattern-role" />
      </form>
      <div className="preview" aria-live="polite" data-testid="preview">
        {!pattern.trim() && <span className="muted">Type a pattern to see what it matches before anything is deleted.</span>}
        {pattern.trim() && (stale || preview.isFetching) && <span className="muted">Counting…</span>}
        {pattern.trim() && !stale && p && !preview.isFetching && (
          <>
            <div>
              <strong data-testid="preview-count">{formatCount(p.matched)}</strong> key{p.matched === 1 ? ' matches' : 's match'}{' '}
              <code>{debounced}</code> on {p.nodes} node{p.nodes === 1 ? '' : 's'}
              {p.unreachable.length > 0 && <span className="warn-text"> (not counted: {p.unreachable.join(', ')})</span>}.
            </div>
            {p.sample.length > 0 && (
              <ul className="sample" aria-label="Sample of matching keys">
                {p.sample.map((k) => (
                  <li key={k} className="mono">
                    <a href={`#/keys?pattern=${encodeURIComponent(k)}`}>{k}</a>
                  </li>
                ))}
                {p.matched > p.sample.length && <li className="muted">and {formatCount(p.matched - p.sample.length)} more</li>}
              </ul>
            )}
          </>
        )}
        {pattern.trim() && !stale && <ErrorMessage error={preview.error} action="Preview" />}
      </div>
      <ResultOrError data={run.data} error={run.error} what={lastDry ? 'Dry run (nothing deleted)' : 'Invalidated'} />
      {confirming && (
        <Dialog title="Invalidate by pattern?" onClose={() => setConfirming(false)}>
          <p>
            Every key matching <code>{pattern.trim()}</code> will be removed from all{' '}
            {p && !stale ? <strong>{p.nodes}</strong> : ''} members of the cluster, and from Redis when it is the L2.
          </p>
          <p data-testid="confirm-count">
            {p && !stale ? (
              <>
                It matches <strong>{formatCount(p.matched)}</strong> key{p.matched === 1 ? '' : 's'} now
                {p.unreachable.length ? ` (not counted: ${p.unreachable.join(', ')})` : ''}.
              </>
            ) : (
              'The preview has not counted the matches yet.'
            )}{' '}
            Keys written meanwhile that match are removed too. This cannot be undone.
          </p>
          <div className="row">
            <button type="button" className="btn btn-danger" data-autofocus onClick={() => run.mutate(false)} disabled={run.isPending}>
              {run.isPending ? 'Invalidating…' : 'Invalidate'}
            </button>
            <button type="button" className="btn" onClick={() => setConfirming(false)}>
              Cancel
            </button>
          </div>
        </Dialog>
      )}
    </Section>
  );
}

function BulkKeys() {
  const qc = useQueryClient();
  const can = useCan('writer');
  const [text, setText] = useState('');
  const [confirming, setConfirming] = useState(false);
  const keys = parseKeyList(text);
  const run = useMutation({
    mutationFn: async (list: string[]) => {
      const total: InvalidateResult = { invalidated: 0, nodes: 0, unreachable: [] };
      const parts: (NodePart[] | undefined)[] = [];
      for (let i = 0; i < list.length; i += MAX_KEYS_PER_REQUEST) {
        const r = await api<InvalidateResult>('api/invalidate', {
          method: 'POST',
          json: { keys: list.slice(i, i + MAX_KEYS_PER_REQUEST) },
        });
        total.invalidated += r.invalidated;
        total.nodes = Math.max(total.nodes, r.nodes);
        total.unreachable = [...new Set([...total.unreachable, ...(r.unreachable ?? [])])];
        if (r.l2) total.l2 = r.l2;
        parts.push(r.per_node);
      }
      const merged = mergeParts(parts);
      if (merged) total.per_node = merged;
      return total;
    },
    onSettled: () => {
      setConfirming(false);
      void qc.invalidateQueries({ queryKey: ['audit'] });
    },
  });
  return (
    <Section title="Invalidate a list of keys" id="bulk-title">
      <form
        className="form"
        onSubmit={(e) => {
          e.preventDefault();
          if (keys.length && can.ok) setConfirming(true);
        }}
      >
        <label>
          <span className="label">Keys, one a line (paste them)</span>
          <textarea rows={5} className="mono" value={text} onChange={(e) => setText(e.target.value)} placeholder={'users:1\nusers:2'} />
        </label>
        <div className="row">
          <span className="muted grow">
            {keys.length} distinct key{keys.length === 1 ? '' : 's'}
            {keys.length > MAX_KEYS_PER_REQUEST ? `, sent in ${Math.ceil(keys.length / MAX_KEYS_PER_REQUEST)} requests` : ''}
          </span>
          <button
            type="submit"
            className="btn btn-danger"
            disabled={!keys.length || run.isPending || !can.ok}
            title={can.ok ? undefined : `Invalidating keys ${can.reason}`}
            aria-describedby={can.ok ? undefined : 'bulk-role'}
          >
            Invalidate {keys.length || ''} keys…
          </button>
        </div>
        <RoleNote perm={can} what="Invalidating keys" id="bulk-role" />
      </form>
      <ResultOrError data={run.data} error={run.error} what="Invalidated the keys" />
      {confirming && (
        <Dialog title="Invalidate these keys?" onClose={() => setConfirming(false)}>
          <p>
            <strong>{keys.length}</strong> key{keys.length === 1 ? '' : 's'} will be removed from every member (and Redis). This cannot be undone.
          </p>
          <ul className="sample">
            {keys.slice(0, 10).map((k) => (
              <li key={k} className="mono">
                {k}
              </li>
            ))}
            {keys.length > 10 && <li className="muted">and {keys.length - 10} more</li>}
          </ul>
          <div className="row">
            <button type="button" className="btn btn-danger" data-autofocus onClick={() => run.mutate(keys)} disabled={run.isPending}>
              {run.isPending ? 'Invalidating…' : `Invalidate ${keys.length}`}
            </button>
            <button type="button" className="btn" onClick={() => setConfirming(false)}>
              Cancel
            </button>
          </div>
        </Dialog>
      )}
    </Section>
  );
}

export function describeAudit(r: AuditRecord): string {
  if (r.action === 'warm') return `run ${r.request_id ?? ''}${r.key_count !== undefined ? `, ${r.key_count} keys` : ''}`;
  if (r.pattern !== undefined) return `${r.pattern}${r.dry_run ? ' (dry run)' : ''}`;
  if (r.keys) {
    const more = (r.key_count ?? r.keys.length) - r.keys.length;
    return `${r.keys.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
  }
  return '';
}

function Recent() {
  const { utc } = useStore(prefsStore);
  const can = useCan('admin');
  const q = useQuery({
    queryKey: ['audit', 'recent-invalidations'],
    queryFn: async () => {
      const [a, b] = await Promise.all([
        api<AuditResponse>('api/audit?action=invalidate_pattern&limit=15'),
        api<AuditResponse>('api/audit?action=invalidate&limit=15'),
      ]);
      return [...a.records, ...b.records].sort((x, y) => y.time_ms - x.time_ms).slice(0, 20);
    },
    retry: false,
    // The audit trail needs the admin role: do not ask for what would be refused.
    enabled: can.ok && can.settled,
  });
  return (
    <Section title="Recent invalidations (this node’s audit trail)" id="recent-title">
      <RoleNote perm={can} what="Reading the audit trail" />
      <ErrorMessage error={q.error} action="Audit trail" />
      {q.data && q.data.length === 0 && <Empty>None recorded on this node.</Empty>}
      {q.data && q.data.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="recent-invalidations">
            <thead>
              <tr>
                <th>Time</th>
                <th>Actor</th>
                <th>What</th>
                <th className="num">Matched</th>
                <th className="num">Invalidated</th>
                <th>Result</th>
              </tr>
            </thead>
            <tbody>
              {q.data.map((r) => (
                <tr key={`${r.node}-${r.id}`}>
                  <td className="nowrap">{formatTime(r.time_ms, utc)}</td>
                  <td>{r.actor}</td>
                  <td className="mono wrap">{describeAudit(r)}</td>
                  <td className="num">{r.matched ?? '—'}</td>
                  <td className="num">{r.invalidated ?? '—'}</td>
                  <td>
                    <Badge state={r.result === 'ok' ? 'ok' : 'failed'}>{r.result}</Badge>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p className="small">
        <a href="#/audit">The whole audit trail</a>
      </p>
    </Section>
  );
}

export default function Invalidate({ query }: { query: URLSearchParams }) {
  return (
    <div className="page">
      <div className="page-head">
        <h1>Invalidation console</h1>
        <p className="muted">Nothing is deleted before you confirm. Patterns need the admin role; lists of keys the writer role.</p>
      </div>
      <PatternConsole initial={query.get('pattern') ?? ''} />
      <BulkKeys />
      <Recent />
    </div>
  );
}
