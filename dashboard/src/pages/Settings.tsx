import { useState, type FormEvent } from 'react';
import { ApiError } from '../lib/api';
import { prefsStore, setPrefs, tokenStore, useStore, type ThemePref } from '../lib/store';
import { useStreamStatus } from '../lib/hooks';
import { useWhoAmI } from '../lib/role';
import { ErrorMessage, Section } from '../components/common';

const MAY: Record<string, string> = {
  reader: 'read values, keys, metrics and the cluster; preview invalidations',
  writer: 'also write and delete values, invalidate lists of keys, run and cancel warming jobs',
  admin: 'do everything, also invalidate by pattern, manage warming jobs and read the audit trail',
};

/** "Signed in as NAME (ROLE)", from GET /api/whoami. */
export function WhoAmI() {
  const q = useWhoAmI();
  const w = q.data;
  return (
    <div className="whoami" aria-live="polite">
      {q.isPending && <p className="muted">Asking the node who this token is…</p>}
      {w && (
        <p className="alert alert-ok" data-testid="whoami">
          {w.tokens ? (
            <>
              Signed in as <strong>{w.name ?? '(unnamed)'}</strong> (<strong>{w.role}</strong>).
            </>
          ) : (
            <>
              The node runs without tokens: everyone is <strong>{w.role}</strong>.
            </>
          )}{' '}
          <span className="alert-text">May {MAY[w.role] ?? w.role}.</span>
        </p>
      )}
      {q.error instanceof ApiError && q.error.status === 401 ? (
        <p className="alert alert-auth" data-testid="whoami">
          Not signed in: <span className="alert-text">{q.error.message}</span> <code className="muted">401 {q.error.code}</code>
          <span className="alert-hint"> The node runs with tokens: paste one above.</span>
        </p>
      ) : (
        <ErrorMessage error={q.error} action="Who am I" />
      )}
      <button type="button" className="btn-small" onClick={() => void q.refetch()} disabled={q.isFetching}>
        Check again
      </button>
    </div>
  );
}

function TokenForm() {
  const token = useStore(tokenStore);
  const [draft, setDraft] = useState(token);
  const [show, setShow] = useState(false);
  const [saved, setSaved] = useState<string | null>(null);
  const stream = useStreamStatus();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    tokenStore.set(draft.trim());
    setSaved(draft.trim() ? 'Token saved for this tab.' : 'Token cleared.');
  };
  return (
    <Section title="API token" id="token-title">
      <p className="muted">
        Sent as <code>Authorization: Bearer …</code> with every request and kept in this tab’s session storage only (gone when the tab
        closes). Nodes started without <code>--tokens</code> need none.
      </p>
      <form className="form" onSubmit={submit}>
        <div className="row">
          <label className="grow">
            <span className="label">Token</span>
            <input
              type={show ? 'text' : 'password'}
              value={draft}
              onChange={(e) => {
                setDraft(e.target.value);
                setSaved(null);
              }}
              autoComplete="off"
              spellCheck={false}
              placeholder="dct_…"
              name="token"
              data-testid="token-input"
              className="mono"
            />
          </label>
          <button type="button" className="btn" onClick={() => setShow(!show)} aria-pressed={show}>
            {show ? 'Hide' : 'Show'}
          </button>
        </div>
        <div className="row">
          <button type="submit" className="btn btn-primary" data-testid="token-save">
            Save token
          </button>
          <button
            type="button"
            className="btn"
            onClick={() => {
              setDraft('');
              tokenStore.set('');
              setSaved('Token cleared.');
            }}
          >
            Clear
          </button>
        </div>
      </form>
      {saved && (
        <p className="alert alert-ok" role="status" data-testid="token-saved">
          {saved}
        </p>
      )}
      <WhoAmI />
      <p className="muted small">
        Event stream: {stream.state}
        {stream.error ? ` (${stream.error})` : ''}
      </p>
    </Section>
  );
}

function Preferences() {
  const prefs = useStore(prefsStore);
  return (
    <Section title="Preferences" id="prefs-title">
      <form className="form" onSubmit={(e) => e.preventDefault()}>
        <fieldset className="fieldset">
          <legend>Theme</legend>
          {(['system', 'light', 'dark'] as ThemePref[]).map((t) => (
            <label key={t} className="check-label">
              <input type="radio" name="theme" value={t} checked={prefs.theme === t} onChange={() => setPrefs({ theme: t })} />{' '}
              {t === 'system' ? 'Follow the system' : t === 'light' ? 'Light' : 'Dark'}
            </label>
          ))}
        </fieldset>
        <div className="row">
          <label>
            <span className="label">Poll /api/metrics while the stream is down, every</span>
            <select value={prefs.pollSeconds} onChange={(e) => setPrefs({ pollSeconds: Number(e.target.value) })}>
              {[1, 2, 5, 10, 30].map((n) => (
                <option key={n} value={n}>
                  {n} s
                </option>
              ))}
            </select>
          </label>
        </div>
        <label className="check-label">
          <input type="checkbox" checked={prefs.utc} onChange={(e) => setPrefs({ utc: e.target.checked })} /> Show times in UTC
        </label>
      </form>
    </Section>
  );
}

export default function Settings() {
  return (
    <div className="page">
      <div className="page-head">
        <h1>Settings</h1>
      </div>
      <TokenForm />
      <Preferences />
    </div>
  );
}
