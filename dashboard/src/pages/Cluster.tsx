import { useState, type FormEvent } from 'react';
import { useMutation } from '@tanstack/react-query';
import { api, type RingResponse } from '../lib/api';
import { formatBytes, formatPercent, formatRate, formatRelative, formatTime } from '../lib/format';
import { useMembers, useRing } from '../lib/hooks';
import { live } from '../lib/live';
import { prefsStore, useStore } from '../lib/store';
import { Badge, Empty, ErrorMessage, OwnerList, Section, useNow } from '../components/common';

function Members() {
  const q = useMembers();
  const { utc } = useStore(prefsStore);
  useStore(live.version);
  const now = useNow(5000);
  const fresh = new Map(live.fresh().map((m) => [m.node, m]));
  const members = [...(q.data?.members ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <Section title={`Members${q.data ? ` (${members.length})` : ''}`} id="members-title">
      <ErrorMessage error={q.error} action="Members" />
      {q.data && !q.data.joined && <p className="alert alert-warn">This node has not joined the cluster yet.</p>}
      <div className="table-wrap">
        <table className="table" data-testid="members-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>State</th>
              <th title="L2 (Redis) state, from the member's metrics events">L2</th>
              <th title="Audit sink state, from the member's metrics events">Audit</th>
              <th>Zone</th>
              <th>HTTP</th>
              <th>Gossip</th>
              <th className="num">Incarnation</th>
              <th className="num">Hit rate</th>
              <th className="num">Load</th>
              <th className="num">Memory</th>
              <th>Changed</th>
            </tr>
          </thead>
          <tbody>
            {members.map((m) => {
              const mm = fresh.get(m.name);
              // Gossip says whether it is alive; its own metrics events say whether it is ready.
              const readiness = mm?.state;
              return (
                <tr key={m.name}>
                  <td>
                    <strong>{m.name}</strong> {m.self && <span className="tag">this node</span>}
                    <div className="muted small mono" title="Run id">{m.id.slice(0, 12)}</div>
                  </td>
                  <td data-testid={`member-state-${m.name}`}>
                    <span className="badges">
                      <Badge state={m.state} />
                      {readiness && readiness !== 'ok' && (
                        <span title="Its readiness (/ready), from its metrics events">
                          <Badge state={readiness} />
                        </span>
                      )}
                    </span>
                  </td>
                  <td>{mm?.l2 ? <Badge state={mm.l2} /> : <span className="muted">—</span>}</td>
                  <td>{mm?.audit ? <Badge state={mm.audit} /> : <span className="muted">—</span>}</td>
                  <td>{m.zone || <span className="muted">—</span>}</td>
                  <td className="mono">{m.http}</td>
                  <td className="mono">{m.gossip}</td>
                  <td className="num mono">{m.incarnation}</td>
                  <td className="num">{mm && mm.hits_per_s + mm.misses_per_s > 0 ? formatPercent(mm.hit_rate) : '—'}</td>
                  <td className="num">{mm ? formatRate(mm.ops_per_s) : '—'}</td>
                  <td className="num">{mm ? formatBytes(mm.bytes) : '—'}</td>
                  <td title={formatTime(m.last_change_ms, utc)}>{formatRelative(m.last_change_ms, now)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Section>
  );
}

function Ring() {
  const q = useRing();
  const r = q.data;
  return (
    <Section
      title="Ring"
      id="ring-title"
      actions={
        <button type="button" className="btn-small" onClick={() => void q.refetch()} disabled={q.isFetching}>
          Refresh
        </button>
      }
    >
      <ErrorMessage error={q.error} action="Ring" />
      {r && (
        <>
          <p className="muted">
            Version {r.version} · {r.members} members in {r.zones} zone{r.zones === 1 ? '' : 's'} · {r.replicas} owners per key
            {r.replicas !== r.replicas_configured ? ` (configured ${r.replicas_configured})` : ''} · balance{' '}
            <strong title="Largest share over the mean; 1 is even">{r.balance.toFixed(3)}</strong>
          </p>
          <ul className="shares" aria-label="Share of the key space owned as primary">
            {r.nodes.map((n) => (
              <li key={n.name}>
                <span className="share-name">
                  {n.name} {n.suspect && <Badge state="suspect" />}
                  {n.zone && <span className="muted small"> {n.zone}</span>}
                </span>
                <span className="share-bar" aria-hidden="true">
                  <span className="share-fill" style={{ width: `${Math.min(100, n.share * 100 * r.nodes.length / 2)}%` }} />
                </span>
                <span className="share-val">{formatPercent(n.share)}</span>
              </li>
            ))}
          </ul>
        </>
      )}
    </Section>
  );
}

function Owners() {
  const [key, setKey] = useState('');
  const m = useMutation({
    mutationFn: (k: string) => api<RingResponse>(`api/cluster/ring?key=${encodeURIComponent(k)}`),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (key) m.mutate(key);
  };
  return (
    <Section title="Owners of a key" id="owners-title">
      <form className="row" onSubmit={submit}>
        <label className="grow">
          <span className="label">Key</span>
          <input value={key} onChange={(e) => setKey(e.target.value)} placeholder="users:42" required />
        </label>
        <button type="submit" className="btn" disabled={!key || m.isPending}>
          Find owners
        </button>
      </form>
      <ErrorMessage error={m.error} action="Owners" />
      {m.data?.owners && (
        <p data-testid="owners">
          <code>{m.data.key ?? m.data.key_base64}</code>: <OwnerList owners={m.data.owners} />
        </p>
      )}
    </Section>
  );
}

function Changes() {
  useStore(live.version);
  const { utc } = useStore(prefsStore);
  const list = live.changes;
  return (
    <Section title="Membership and ring changes" id="changes-title">
      {list.length === 0 ? (
        <Empty>None since this page opened. They appear here as they happen.</Empty>
      ) : (
        <ul className="log" aria-live="polite">
          {list.slice(0, 50).map((c, i) => (
            <li key={`${c.time_ms}-${i}`}>
              <span className="muted mono">{formatTime(c.time_ms, utc)}</span> <Badge state={c.kind === 'member' ? 'running' : 'left'}>{c.kind}</Badge> {c.text}
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

export default function Cluster() {
  return (
    <div className="page">
      <div className="page-head">
        <h1>Cluster</h1>
      </div>
      <Members />
      <div className="two-col">
        <Ring />
        <div>
          <Owners />
          <Changes />
        </div>
      </div>
    </div>
  );
}
