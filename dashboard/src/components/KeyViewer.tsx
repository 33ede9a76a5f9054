import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { useMutation, useQuery } from '@tanstack/react-query';
import { api, keyPath, request, type KeyRef, type RingResponse } from '../lib/api';
import { formatBytes, formatTTL } from '../lib/format';
import { imageType, viewValue } from '../lib/value';
import { useCan } from '../lib/role';
import { Dialog, ErrorMessage, OwnerList, RoleNote } from './common';

const SHOWN_HEADERS = [
  'content-type',
  'x-cache',
  'x-cache-version',
  'etag',
  'x-cache-owner',
  'x-cache-node',
  'cache-control',
  'content-length',
];

interface Loaded {
  bytes: Uint8Array;
  headers: [string, string][];
  contentType: string | null;
  version: string | null;
  ttl: number | null;
}

async function loadValue(key: KeyRef): Promise<Loaded> {
  const res = await request(`api/cache/${keyPath(key)}`);
  const buf = new Uint8Array(await res.arrayBuffer());
  const headers: [string, string][] = [];
  for (const h of SHOWN_HEADERS) {
    const v = res.headers.get(h);
    if (v !== null) headers.push([h, v]);
  }
  const cc = res.headers.get('cache-control') ?? '';
  const m = /max-age=(\d+)/.exec(cc);
  return {
    bytes: buf,
    headers,
    contentType: res.headers.get('content-type'),
    version: res.headers.get('x-cache-version'),
    ttl: m ? Number(m[1]) : null,
  };
}

function ImagePreview({ bytes, type }: { bytes: Uint8Array; type: string }) {
  const url = useMemo(() => URL.createObjectURL(new Blob([bytes as BlobPart], { type })), [bytes, type]);
  useEffect(() => () => URL.revokeObjectURL(url), [url]);
  return <img className="value-image" src={url} alt={`Image value (${type})`} />;
}

export function ValueBody({ data }: { data: Loaded }) {
  const view = useMemo(() => viewValue(data.contentType, data.bytes), [data]);
  if (view.kind === 'empty') return <p className="muted">(empty value)</p>;
  if (view.kind === 'image') return <ImagePreview bytes={data.bytes} type={imageType(data.contentType, data.bytes) ?? 'image/png'} />;
  return (
    <>
      <p className="muted small" data-testid="value-kind">
        {view.kind === 'json' ? 'JSON, pretty-printed' : view.kind === 'text' ? 'Text' : 'Binary, as hex'}
        {view.truncated ? ` (first ${formatBytes(64 * 1024)} shown)` : ''}
      </p>
      <pre className={`value value-${view.kind}`} data-testid="value" tabIndex={0}>
        {view.text}
      </pre>
    </>
  );
}

function Editor({ keyRef, data, onSaved, onCancel }: { keyRef: KeyRef; data: Loaded | null; onSaved: () => void; onCancel: () => void }) {
  const textual = data ? viewValue(data.contentType, data.bytes) : null;
  const editableText = !data || (textual && (textual.kind === 'text' || textual.kind === 'json' || textual.kind === 'empty'));
  const [text, setText] = useState(() => (data && editableText ? new TextDecoder().decode(data.bytes) : ''));
  const [file, setFile] = useState<File | null>(null);
  const [ctype, setCtype] = useState(data?.contentType ?? 'text/plain; charset=utf-8');
  const [ttl, setTtl] = useState(data?.ttl !== null && data?.ttl !== undefined ? String(data.ttl) : '');
  const put = useMutation({
    mutationFn: async () => {
      const q = ttl.trim() === '' ? '' : `?ttl=${encodeURIComponent(ttl.trim())}`;
      const res = await request(`api/cache/${keyPath(keyRef)}${q}`, {
        method: 'PUT',
        headers: { 'Content-Type': ctype || 'application/octet-stream' },
        body: file ?? text,
      });
      return (await res.json()) as { key: string; version: string; ttl: number };
    },
    onSuccess: onSaved,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    put.mutate();
  };
  return (
    <form className="form" onSubmit={submit} data-testid="value-editor">
      {editableText ? (
        <label>
          <span className="label">Value</span>
          <textarea rows={10} value={text} onChange={(e) => setText(e.target.value)} className="mono" disabled={file !== null} />
        </label>
      ) : (
        <p className="muted">This value is binary: replace it with a file.</p>
      )}
      <label>
        <span className="label">{editableText ? 'Or a file' : 'File'}</span>
        <input type="file" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
      </label>
      <div className="row">
        <label className="grow">
          <span className="label">Content-Type</span>
          <input value={ctype} onChange={(e) => setCtype(e.target.value)} />
        </label>
        <label>
          <span className="label">TTL (seconds, 0 = never, empty = node default)</span>
          <input value={ttl} onChange={(e) => setTtl(e.target.value.replace(/[^0-9]/g, ''))} inputMode="numeric" />
        </label>
      </div>
      <ErrorMessage error={put.error} action="Saving" />
      <div className="row">
        <button type="submit" className="btn btn-primary" disabled={put.isPending || (!editableText && !file)}>
          {put.isPending ? 'Saving…' : 'Save (PUT)'}
        </button>
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function KeyViewer({ keyRef, onClose, onDeleted }: { keyRef: KeyRef; onClose: () => void; onDeleted?: () => void }) {
  const [editing, setEditing] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [saved, setSaved] = useState<string | null>(null);
  const can = useCan('writer');
  const value = useQuery({ queryKey: ['value', keyRef.key, keyRef.base64 ?? ''], queryFn: () => loadValue(keyRef), retry: false });
  const owners = useQuery({
    queryKey: ['owners', keyRef.key, keyRef.base64 ?? ''],
    queryFn: () => api<RingResponse>(`api/cluster/ring?key=${keyPath(keyRef)}`),
    retry: false,
  });
  const del = useMutation({
    mutationFn: () => api<{ deleted: boolean }>(`api/cache/${keyPath(keyRef)}`, { method: 'DELETE' }),
    onSuccess: () => {
      onDeleted?.();
    },
  });
  const notFound = value.error && (value.error as { status?: number }).status === 404;
  return (
    <Dialog title={`Key ${keyRef.key}`} onClose={onClose} wide>
      <div className="kv-grid">
        <div>
          <h3>Headers</h3>
          {value.data ? (
            <dl className="headers" data-testid="value-headers">
              {value.data.headers.map(([k, v]) => (
                <div key={k}>
                  <dt>{k}</dt>
                  <dd className="mono">{v}</dd>
                </div>
              ))}
              <div>
                <dt>size</dt>
                <dd>{formatBytes(value.data.bytes.length)}</dd>
              </div>
              <div>
                <dt>ttl</dt>
                <dd>{value.data.ttl === null ? 'never expires' : formatTTL(value.data.ttl)}</dd>
              </div>
            </dl>
          ) : null}
          <h3>Owners</h3>
          {owners.data?.owners ? (
            <p data-testid="value-owners">
              <OwnerList owners={owners.data.owners} />
            </p>
          ) : (
            <ErrorMessage error={owners.error} action="Owners" />
          )}
        </div>
        <div className="kv-value">
          <h3>Value {value.data?.version && <span className="muted small">version {value.data.version}</span>}</h3>
          {value.isPending && <p className="muted">Loading…</p>}
          {notFound ? <p className="alert alert-warn">Not found: it expired, was deleted or was never stored.</p> : <ErrorMessage error={value.error} action="Reading" />}
          {saved && <p className="alert alert-ok" role="status">{saved}</p>}
          {editing ? (
            <Editor
              keyRef={keyRef}
              data={value.data ?? null}
              onCancel={() => setEditing(false)}
              onSaved={() => {
                setEditing(false);
                setSaved('Saved.');
                void value.refetch();
              }}
            />
          ) : (
            value.data && <ValueBody data={value.data} />
          )}
        </div>
      </div>
      <div className="dialog-foot">
        {!editing && (
          <button
            type="button"
            className="btn"
            onClick={() => { setSaved(null); setEditing(true); }}
            disabled={value.isPending || !can.ok}
            title={can.ok ? undefined : `Writing a value ${can.reason}`}
            aria-describedby={can.ok ? undefined : 'value-role'}
          >
            {notFound ? 'Create' : 'Edit'}
          </button>
        )}
        {!confirmDelete ? (
          <button
            type="button"
            className="btn btn-danger"
            onClick={() => setConfirmDelete(true)}
            disabled={!value.data || !can.ok}
            title={can.ok ? undefined : `Deleting ${can.reason}`}
            aria-describedby={can.ok ? undefined : 'value-role'}
          >
            Delete…
          </button>
        ) : (
          <span className="confirm-inline" role="group" aria-label="Confirm delete">
            Delete this key on every owner?
            <button type="button" className="btn btn-danger" onClick={() => del.mutate()} disabled={del.isPending} data-autofocus>
              Yes, delete
            </button>
            <button type="button" className="btn" onClick={() => setConfirmDelete(false)}>
              No
            </button>
          </span>
        )}
        <RoleNote perm={can} what="Editing and deleting" id="value-role" />
        {del.data && <span role="status">{del.data.deleted ? 'Deleted.' : 'It was not there.'}</span>}
        <ErrorMessage error={del.error} action="Deleting" />
      </div>
    </Dialog>
  );
}
