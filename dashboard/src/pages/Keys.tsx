import { useCallback, useState, type FormEvent } from 'react';
import { useMutation } from '@tanstack/react-query';
import { api, keyRefOf, type InvalidateResult, type KeyEntry, type KeyRef, type KeysPage } from '../lib/api';
import { formatBytes, formatCount, formatTTL } from '../lib/format';
import { gatherKeys, keysUrl } from '../lib/paginate';
import { useCan } from '../lib/role';
import { Dialog, Empty, ErrorMessage, RoleNote, Section } from '../components/common';
import { KeyViewer } from '../components/KeyViewer';
import { InvalidateOutcome } from './Invalidate';

function rowId(e: KeyEntry): string {
  return e.key !== undefined ? `k:${e.key}` : `b:${e.key_base64 ?? ''}`;
}

interface ListState {
  pattern: string;
  keys: KeyEntry[];
  cursor: string;
  done: boolean;
  unreachable: string[];
}

export default function Keys({ query }: { query: URLSearchParams }) {
  const [pattern, setPattern] = useState(query.get('pattern') ?? '*');
  const [pageSize, setPageSize] = useState(100);
  const [list, setList] = useState<ListState | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [open, setOpen] = useState<KeyRef | null>(null);
  const [direct, setDirect] = useState('');
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [confirm, setConfirm] = useState(false);
  const can = useCan('writer');

  const load = useCallback(
    async (pat: string, from: ListState | null) => {
      setLoading(true);
      setError(null);
      try {
        const g = await gatherKeys(
          (cursor, limit) => api<KeysPage>(keysUrl(pat, cursor, limit)),
          from ? from.cursor : '0',
          pageSize,
        );
        setList({
          pattern: pat,
          keys: from ? [...from.keys, ...g.keys] : g.keys,
          cursor: g.cursor,
          done: g.done,
          unreachable: [...new Set([...(from?.unreachable ?? []), ...g.unreachable])],
        });
      } catch (e) {
        setError(e);
      } finally {
        setLoading(false);
      }
    },
    [pageSize],
  );

  const search = (e: FormEvent) => {
    e.preventDefault();
    setSelected(new Set());
    void load(pattern || '*', null);
  };

  const openDirect = (e: FormEvent) => {
    e.preventDefault();
    if (direct) setOpen({ key: direct });
  };

  const toggle = (id: string) => {
    const s = new Set(selected);
    if (s.has(id)) s.delete(id);
    else s.add(id);
    setSelected(s);
  };

  const selectable = (list?.keys ?? []).filter((k) => k.key !== undefined);
  const allSelected = selectable.length > 0 && selectable.every((k) => selected.has(rowId(k)));
  const selectedKeys = selectable.filter((k) => selected.has(rowId(k))).map((k) => k.key as string);

  const inv = useMutation({
    mutationFn: (keys: string[]) => api<InvalidateResult>('api/invalidate', { method: 'POST', json: { keys } }),
    onSettled: () => setConfirm(false),
  });

  const removeFromList = (ids: Set<string>) => {
    setList((l) => (l ? { ...l, keys: l.keys.filter((k) => !ids.has(rowId(k))) } : l));
  };

  return (
    <div className="page">
      <div className="page-head">
        <h1>Key explorer</h1>
        <p className="muted">Keys of the whole cluster, listed by their primary owners.</p>
      </div>
      <Section title="Search" id="search-title">
        <form className="row" onSubmit={search} role="search">
          <label className="grow">
            <span className="label">Pattern (Redis glob: * ? [a-z] \)</span>
            <input value={pattern} onChange={(e) => setPattern(e.target.value)} placeholder="users:*" name="pattern" />
          </label>
          <label>
            <span className="label">Per page</span>
            <select value={pageSize} onChange={(e) => setPageSize(Number(e.target.value))}>
              {[50, 100, 250, 1000].map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" className="btn btn-primary" disabled={loading}>
            Search
          </button>
        </form>
        <form className="row" onSubmit={openDirect}>
          <label className="grow">
            <span className="label">Open or create a key by name</span>
            <input value={direct} onChange={(e) => setDirect(e.target.value)} placeholder="users:42" />
          </label>
          <button type="submit" className="btn" disabled={!direct}>
            Open
          </button>
        </form>
      </Section>

      <Section
        title={list ? `Results for ${list.pattern}` : 'Results'}
        id="results-title"
        actions={
          selectedKeys.length > 0 && (
            <button
              type="button"
              className="btn btn-danger"
              onClick={() => setConfirm(true)}
              disabled={!can.ok}
              title={can.ok ? undefined : `Invalidating keys ${can.reason}`}
              aria-describedby={can.ok ? undefined : 'selected-role'}
            >
              Invalidate {selectedKeys.length} selected…
            </button>
          )
        }
      >
        {selectedKeys.length > 0 && <RoleNote perm={can} what="Invalidating the selected keys" id="selected-role" />}
        <ErrorMessage error={error} action="Listing" />
        {inv.data && <InvalidateOutcome result={inv.data} what="Invalidated the selected keys" />}
        <ErrorMessage error={inv.error} action="Invalidating" />
        {list && list.unreachable.length > 0 && (
          <p className="alert alert-warn">Not listed (members that did not answer): {list.unreachable.join(', ')}</p>
        )}
        {!list && !loading && <Empty>Search for a pattern to list keys.</Empty>}
        {list && list.keys.length === 0 && !loading && <Empty>No key matches {list.pattern}{list.done ? '' : ' so far'}.</Empty>}
        {list && list.keys.length > 0 && (
          <div className="table-wrap">
            <table className="table" data-testid="keys-table">
              <thead>
                <tr>
                  <th className="check">
                    <input
                      type="checkbox"
                      aria-label="Select all listed keys"
                      checked={allSelected}
                      onChange={() => setSelected(allSelected ? new Set() : new Set(selectable.map(rowId)))}
                    />
                  </th>
                  <th>Key</th>
                  <th className="num">Size</th>
                  <th className="num">TTL</th>
                  <th>Owner</th>
                </tr>
              </thead>
              <tbody>
                {list.keys.map((k) => {
                  const id = rowId(k);
                  const ref = keyRefOf(k);
                  return (
                    <tr key={id} className={selected.has(id) ? 'selected' : undefined}>
                      <td className="check">
                        <input
                          type="checkbox"
                          aria-label={`Select ${ref.key}`}
                          checked={selected.has(id)}
                          disabled={k.key === undefined}
                          onChange={() => toggle(id)}
                        />
                      </td>
                      <td>
                        <button type="button" className="link mono" onClick={() => setOpen(ref)}>
                          {ref.key}
                        </button>
                      </td>
                      <td className="num">{formatBytes(k.size)}</td>
                      <td className="num">{formatTTL(k.ttl)}</td>
                      <td>{k.node}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        {list && (
          <div className="row list-foot">
            <span className="muted" data-testid="keys-count">
              {formatCount(list.keys.length)} key{list.keys.length === 1 ? '' : 's'} listed{list.done ? ', end of the listing' : ''}
            </span>
            {!list.done && (
              <button type="button" className="btn" onClick={() => void load(list.pattern, list)} disabled={loading}>
                {loading ? 'Loading…' : 'Load more'}
              </button>
            )}
          </div>
        )}
        {loading && !list && <p className="muted">Loading…</p>}
      </Section>

      {open && (
        <KeyViewer
          keyRef={open}
          onClose={() => setOpen(null)}
          onDeleted={() => {
            const id = open.base64 !== undefined ? `b:${open.base64}` : `k:${open.key}`;
            removeFromList(new Set([id]));
          }}
        />
      )}
      {confirm && (
        <Dialog title="Invalidate the selected keys?" onClose={() => setConfirm(false)}>
          <p>
            This removes <strong>{selectedKeys.length}</strong> key{selectedKeys.length === 1 ? '' : 's'} from every member of the
            cluster (and from Redis when it is the L2). It cannot be undone.
          </p>
          <ul className="sample">
            {selectedKeys.slice(0, 10).map((k) => (
              <li key={k} className="mono">
                {k}
              </li>
            ))}
            {selectedKeys.length > 10 && <li className="muted">and {selectedKeys.length - 10} more</li>}
          </ul>
          <div className="row">
            <button
              type="button"
              className="btn btn-danger"
              data-autofocus
              disabled={inv.isPending}
              onClick={() =>
                inv.mutate(selectedKeys, {
                  onSuccess: () => {
                    removeFromList(new Set(selectedKeys.map((k) => `k:${k}`)));
                    setSelected(new Set());
                  },
                })
              }
            >
              {inv.isPending ? 'Invalidating…' : `Invalidate ${selectedKeys.length}`}
            </button>
            <button type="button" className="btn" onClick={() => setConfirm(false)}>
              Cancel
            </button>
          </div>
        </Dialog>
      )}
    </div>
  );
}
