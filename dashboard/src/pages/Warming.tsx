import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, jobSpec, type WarmJob, type WarmJobSpec, type WarmRun, type WarmSource } from '../lib/api';
import { formatCount, formatDuration, formatPercent, formatRate, formatRelative, formatTime } from '../lib/format';
import { warmRuns } from '../lib/hooks';
import { prefsStore, useStore } from '../lib/store';
import { useCan } from '../lib/role';
import { Badge, Dialog, Empty, ErrorMessage, RoleNote, Section, useNow } from '../components/common';
import { parseKeyList } from './Invalidate';

type SourceType = 'keys' | 'pattern' | 'hot' | 'query';

export function describeSource(s: WarmSource): string {
  if (s.keys) return `${s.keys.length} key${s.keys.length === 1 ? '' : 's'}: ${s.keys.slice(0, 3).join(', ')}${s.keys.length > 3 ? ', …' : ''}`;
  if (s.pattern !== undefined) return `pattern ${s.pattern}`;
  if (s.hot !== undefined) return `${s.hot} hottest keys`;
  if (s.query !== undefined) return `query on ${s.origin ?? '?'}${s.key_prefix ? `, prefix ${s.key_prefix}` : ''}`;
  return '—';
}

function sourceTypeOf(s: WarmSource): SourceType {
  if (s.pattern !== undefined) return 'pattern';
  if (s.hot !== undefined) return 'hot';
  if (s.query !== undefined) return 'query';
  return 'keys';
}

function num(v: string): number | undefined {
  if (v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function JobForm({ job, onDone, onCancel }: { job: WarmJob | null; onDone: () => void; onCancel: () => void }) {
  const src = job?.source ?? { keys: [] };
  const [name, setName] = useState(job?.name ?? '');
  const [type, setType] = useState<SourceType>(sourceTypeOf(src));
  const [keys, setKeys] = useState((src.keys ?? []).join('\n'));
  const [pattern, setPattern] = useState(src.pattern ?? '');
  const [hot, setHot] = useState(String(src.hot ?? 100));
  const [query, setQuery] = useState(src.query ?? '');
  const [origin, setOrigin] = useState(src.origin ?? '');
  const [prefix, setPrefix] = useState(src.key_prefix ?? '');
  const [schedule, setSchedule] = useState(job?.schedule ?? '');
  const [priority, setPriority] = useState(String(job?.priority ?? 0));
  const [batch, setBatch] = useState(job?.batch_size !== undefined ? String(job.batch_size) : '');
  const [conc, setConc] = useState(job?.concurrency !== undefined ? String(job.concurrency) : '');
  const [enabled, setEnabled] = useState(job?.enabled ?? true);
  const save = useMutation({
    mutationFn: (spec: WarmJobSpec) => api<{ job: WarmJobSpec }>('api/warming/jobs', { method: 'POST', json: spec }),
    onSuccess: onDone,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    let source: WarmSource;
    if (type === 'keys') source = { keys: parseKeyList(keys) };
    else if (type === 'pattern') source = { pattern };
    else if (type === 'hot') source = { hot: num(hot) ?? 100 };
    else source = { query, origin, ...(prefix ? { key_prefix: prefix } : {}) };
    const spec: WarmJobSpec = { name: name.trim(), source, enabled };
    if (schedule.trim()) spec.schedule = schedule.trim();
    const p = num(priority);
    if (p !== undefined) spec.priority = p;
    const b = num(batch);
    if (b !== undefined) spec.batch_size = b;
    const c = num(conc);
    if (c !== undefined) spec.concurrency = c;
    save.mutate(spec);
  };
  return (
    <form className="form" onSubmit={submit} data-testid="job-form">
      <div className="row">
        <label className="grow">
          <span className="label">Name (letters, digits, _ - .)</span>
          <input value={name} onChange={(e) => setName(e.target.value)} required pattern="[A-Za-z0-9_.\-]+" disabled={!!job} name="name" />
        </label>
        <label>
          <span className="label">Source</span>
          <select value={type} onChange={(e) => setType(e.target.value as SourceType)} name="source-type">
            <option value="keys">Keys</option>
            <option value="pattern">Pattern (Redis SCAN)</option>
            <option value="hot">Hot keys</option>
            <option value="query">Query (postgres origin)</option>
          </select>
        </label>
      </div>
      {type === 'keys' && (
        <label>
          <span className="label">Keys, one a line</span>
          <textarea rows={4} className="mono" value={keys} onChange={(e) => setKeys(e.target.value)} name="keys" />
        </label>
      )}
      {type === 'pattern' && (
        <label>
          <span className="label">Pattern (warms what Redis holds)</span>
          <input value={pattern} onChange={(e) => setPattern(e.target.value)} placeholder="users:*" required />
        </label>
      )}
      {type === 'hot' && (
        <label>
          <span className="label">How many of the hottest keys</span>
          <input value={hot} onChange={(e) => setHot(e.target.value)} inputMode="numeric" />
        </label>
      )}
      {type === 'query' && (
        <>
          <label>
            <span className="label">SQL (first column: the key)</span>
            <textarea rows={3} className="mono" value={query} onChange={(e) => setQuery(e.target.value)} required />
          </label>
          <div className="row">
            <label className="grow">
              <span className="label">Origin (a postgres origin’s name)</span>
              <input value={origin} onChange={(e) => setOrigin(e.target.value)} required />
            </label>
            <label className="grow">
              <span className="label">Key prefix</span>
              <input value={prefix} onChange={(e) => setPrefix(e.target.value)} placeholder="products:" />
            </label>
          </div>
        </>
      )}
      <div className="row">
        <label className="grow">
          <span className="label">Schedule (cron in UTC, @every 30s, @hourly; empty: when triggered)</span>
          <input value={schedule} onChange={(e) => setSchedule(e.target.value)} placeholder="*/5 * * * *" name="schedule" />
        </label>
        <label>
          <span className="label">Priority</span>
          <input value={priority} onChange={(e) => setPriority(e.target.value)} inputMode="numeric" className="narrow" />
        </label>
        <label>
          <span className="label">Batch</span>
          <input value={batch} onChange={(e) => setBatch(e.target.value)} inputMode="numeric" placeholder="1000" className="narrow" />
        </label>
        <label>
          <span className="label">Concurrency</span>
          <input value={conc} onChange={(e) => setConc(e.target.value)} inputMode="numeric" placeholder="64" className="narrow" />
        </label>
      </div>
      <label className="check-label">
        <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled (fires on its schedule)
      </label>
      <ErrorMessage error={save.error} action="Saving the job" />
      <div className="row">
        <button type="submit" className="btn btn-primary" disabled={save.isPending}>
          {job ? 'Save' : 'Create'}
        </button>
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function Progress({ run, total }: { run: WarmRun; total: number | null }) {
  const done = run.loaded + run.missing + run.failed;
  const ratio = total ? Math.min(1, done / total) : null;
  return (
    <div className="progress-cell" data-testid={`progress-${run.job}`}>
      {ratio !== null && (
        <span className="meter" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(ratio * 100)}>
          <span className="meter-fill" style={{ width: `${ratio * 100}%` }} />
        </span>
      )}
      <span className="small">
        {formatCount(done)}
        {total ? ` / ${formatCount(total)}` : ''} keys · {formatRate(run.keys_per_s)}
      </span>
    </div>
  );
}

function Jobs() {
  const qc = useQueryClient();
  const now = useNow(1000);
  const { utc } = useStore(prefsStore);
  const live = useStore(warmRuns);
  const [editing, setEditing] = useState<WarmJob | 'new' | null>(null);
  const [deleting, setDeleting] = useState<WarmJob | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const canRun = useCan('writer');
  const canManage = useCan('admin');
  const q = useQuery({ queryKey: ['warming', 'jobs'], queryFn: () => api<{ jobs: WarmJob[] }>('api/warming/jobs') });
  const refresh = () => void qc.invalidateQueries({ queryKey: ['warming'] });
  const act = useMutation({
    mutationFn: async ({ kind, job }: { kind: 'trigger' | 'cancel' | 'toggle' | 'delete'; job: WarmJob }) => {
      if (kind === 'trigger') await api('api/warming/trigger', { method: 'POST', json: { job: job.name } });
      else if (kind === 'cancel') await api('api/warming/cancel', { method: 'POST', json: { job: job.name } });
      else if (kind === 'toggle') await api('api/warming/jobs', { method: 'POST', json: { ...jobSpec(job), enabled: job.enabled === false } });
      else await api(`api/warming/jobs/${encodeURIComponent(job.name)}`, { method: 'DELETE' });
      return { kind, job };
    },
    onSuccess: ({ kind, job }) => {
      setNotice(
        kind === 'trigger'
          ? `Started ${job.name}.`
          : kind === 'cancel'
            ? `Asked ${job.name} to stop.`
            : kind === 'toggle'
              ? `${job.name} ${job.enabled === false ? 'enabled' : 'disabled'}.`
              : `Deleted ${job.name}.`,
      );
      setDeleting(null);
      refresh();
    },
  });
  const jobs = q.data?.jobs ?? [];
  // A live run from the event stream wins over the job's (older) view of it.
  const runningOf = (j: WarmJob): WarmRun | null => {
    const fromEvents = Object.values(live).filter((r) => r.job === j.name && r.started_ms >= (j.running?.started_ms ?? 0));
    fromEvents.sort((a, b) => b.started_ms - a.started_ms);
    const r = fromEvents[0] ?? j.running;
    return r && r.state === 'running' ? r : null;
  };
  return (
    <Section
      title="Jobs"
      id="jobs-title"
      actions={
        <button
          type="button"
          className="btn btn-primary"
          onClick={() => setEditing('new')}
          disabled={!canManage.ok}
          title={canManage.ok ? undefined : `Creating a job ${canManage.reason}`}
          aria-describedby={canManage.ok ? undefined : 'manage-role'}
        >
          New job
        </button>
      }
    >
      <RoleNote perm={canManage} what="Creating, editing, enabling and deleting jobs" id="manage-role" />
      <RoleNote perm={canRun} what="Running and cancelling jobs" id="run-role" />
      <ErrorMessage error={q.error} action="Jobs" />
      <ErrorMessage error={act.error} action="Warming" />
      {notice && !act.error && (
        <p className="alert alert-ok" role="status">
          {notice}
        </p>
      )}
      {q.data && jobs.length === 0 && <Empty>No warming job yet.</Empty>}
      {jobs.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="jobs-table">
            <thead>
              <tr>
                <th>Job</th>
                <th>Source</th>
                <th>Schedule</th>
                <th className="num">Priority</th>
                <th>Next run</th>
                <th>Last run</th>
                <th className="num">Success</th>
                <th>Actions</th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((j) => {
                const running = runningOf(j);
                const last = j.last_run;
                return (
                  <tr key={j.name} data-job={j.name}>
                    <td>
                      <strong>{j.name}</strong>
                      <div className="small">
                        {j.enabled === false ? <Badge state="disabled" /> : <Badge state="ok">enabled</Badge>}{' '}
                        {j.from_file && <span className="tag" title="Declared in the origins file: read-only here">file</span>}
                      </div>
                    </td>
                    <td className="wrap">{describeSource(j.source)}</td>
                    <td className="mono">{j.schedule || <span className="muted">on demand</span>}</td>
                    <td className="num">{j.priority ?? 0}</td>
                    <td title={formatTime(j.next_run_ms, utc)}>{j.next_run_ms ? formatRelative(j.next_run_ms, now) : '—'}</td>
                    <td>
                      {running ? (
                        <>
                          <Badge state="running" /> <Progress run={running} total={j.source.keys ? j.source.keys.length : null} />
                        </>
                      ) : last ? (
                        <span title={formatTime(last.started_ms, utc)}>
                          <Badge state={last.state} /> {formatRelative(last.ended_ms ?? last.started_ms, now)}
                          <div className="small muted">
                            {last.loaded}/{last.keys} loaded{last.missing ? `, ${last.missing} missing` : ''}
                            {last.failed ? `, ${last.failed} failed` : ''}
                          </div>
                        </span>
                      ) : (
                        <span className="muted">never</span>
                      )}
                    </td>
                    <td className="num">{last ? formatPercent(last.success_rate) : '—'}</td>
                    <td>
                      <div className="actions">
                        <button
                          type="button"
                          className="btn-small"
                          onClick={() => act.mutate({ kind: 'trigger', job: j })}
                          disabled={!!running || !canRun.ok}
                          title={canRun.ok ? undefined : `Running a job ${canRun.reason}`}
                          aria-describedby={canRun.ok ? undefined : 'run-role'}
                        >
                          Run now
                        </button>
                        {running && (
                          <button
                            type="button"
                            className="btn-small"
                            onClick={() => act.mutate({ kind: 'cancel', job: j })}
                            disabled={!canRun.ok}
                            title={canRun.ok ? undefined : `Cancelling a run ${canRun.reason}`}
                            aria-describedby={canRun.ok ? undefined : 'run-role'}
                          >
                            Cancel run
                          </button>
                        )}
                        {!j.from_file && (
                          <>
                            <button type="button" className="btn-small" onClick={() => act.mutate({ kind: 'toggle', job: j })} disabled={!canManage.ok} title={canManage.ok ? undefined : `Changing a job ${canManage.reason}`} aria-describedby={canManage.ok ? undefined : 'manage-role'}>
                              {j.enabled === false ? 'Enable' : 'Disable'}
                            </button>
                            <button type="button" className="btn-small" onClick={() => setEditing(j)} disabled={!canManage.ok} title={canManage.ok ? undefined : `Changing a job ${canManage.reason}`} aria-describedby={canManage.ok ? undefined : 'manage-role'}>
                              Edit
                            </button>
                            <button type="button" className="btn-small btn-danger" onClick={() => setDeleting(j)} disabled={!canManage.ok} title={canManage.ok ? undefined : `Changing a job ${canManage.reason}`} aria-describedby={canManage.ok ? undefined : 'manage-role'}>
                              Delete
                            </button>
                          </>
                        )}
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {editing && (
        <Dialog title={editing === 'new' ? 'New warming job' : `Edit ${editing.name}`} onClose={() => setEditing(null)} wide>
          <JobForm
            job={editing === 'new' ? null : editing}
            onCancel={() => setEditing(null)}
            onDone={() => {
              setNotice(editing === 'new' ? 'Job created.' : 'Job saved.');
              setEditing(null);
              refresh();
            }}
          />
        </Dialog>
      )}
      {deleting && (
        <Dialog title={`Delete ${deleting.name}?`} onClose={() => setDeleting(null)}>
          <p>The job is removed; a run of it in progress is cancelled.</p>
          <div className="row">
            <button type="button" className="btn btn-danger" data-autofocus onClick={() => act.mutate({ kind: 'delete', job: deleting })}>
              Delete
            </button>
            <button type="button" className="btn" onClick={() => setDeleting(null)}>
              Cancel
            </button>
          </div>
        </Dialog>
      )}
    </Section>
  );
}

/** Of two views of one run, the one further on (an ended run over a running one; else the event's). */
function laterOf(ev: WarmRun | undefined, fetched: WarmRun): WarmRun {
  if (!ev) return fetched;
  if (ev.state === 'running' && fetched.state !== 'running') return fetched;
  return ev;
}

function History() {
  const { utc } = useStore(prefsStore);
  const live = useStore(warmRuns);
  const q = useQuery({ queryKey: ['warming', 'history'], queryFn: () => api<{ runs: WarmRun[] }>('api/warming/history?limit=50') });
  // Runs seen on the stream that the last fetch did not have yet come first.
  const known = new Set((q.data?.runs ?? []).map((r) => r.id));
  const merged = [
    ...Object.values(live).filter((r) => !known.has(r.id)),
    ...(q.data?.runs ?? []).map((r) => laterOf(live[r.id], r)),
  ].sort((a, b) => b.started_ms - a.started_ms);
  return (
    <Section title="Run history" id="history-title">
      <ErrorMessage error={q.error} action="History" />
      {q.data && merged.length === 0 && <Empty>No run yet.</Empty>}
      {merged.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="warm-history">
            <thead>
              <tr>
                <th>Started</th>
                <th>Job</th>
                <th>Node</th>
                <th>Trigger</th>
                <th>State</th>
                <th className="num">Duration</th>
                <th className="num">Keys</th>
                <th className="num">Loaded</th>
                <th className="num">Missing</th>
                <th className="num">Failed</th>
                <th className="num">Keys/s</th>
              </tr>
            </thead>
            <tbody>
              {merged.map((r) => (
                <tr key={r.id} data-run={r.id}>
                  <td className="nowrap">{formatTime(r.started_ms, utc)}</td>
                  <td>{r.job}</td>
                  <td>{r.node}</td>
                  <td>{r.trigger}</td>
                  <td>
                    <Badge state={r.state} />
                    {r.error && <div className="small bad-text">{r.error}</div>}
                  </td>
                  <td className="num">{r.ended_ms ? formatDuration(r.ended_ms - r.started_ms) : '…'}</td>
                  <td className="num">{formatCount(r.keys)}</td>
                  <td className="num">{formatCount(r.loaded)}</td>
                  <td className="num">{formatCount(r.missing)}</td>
                  <td className="num">{formatCount(r.failed)}</td>
                  <td className="num">{formatCount(r.keys_per_s, 1)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}

export default function Warming() {
  return (
    <div className="page">
      <div className="page-head">
        <h1>Warming</h1>
        <p className="muted">Jobs that load keys into their owners ahead of demand. Progress is live from the event stream.</p>
      </div>
      <Jobs />
      <History />
    </div>
  );
}
