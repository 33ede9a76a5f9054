import { useState, type FormEvent } from 'react';
import { useMutation } from '@tanstack/react-query';
import { api, ApiError, type MembersResponse } from '../lib/api';
import { prefsStore, setPrefs, tokenStore, useStore, type ThemePref } from '../lib/store';
import { useStreamStatus } from '../lib/hooks';
import { ErrorMessage, Section } from '../components/common';

function TokenForm() {
  const token = useStore(tokenStore);
  const [draft, setDraft] = useState(token);
  const [show, setShow] = useState(false);
  const [saved, setSaved] = useState<string | null>(null);
  const stream = useStreamStatus();
  // What the token may do: a reader endpoint, then an admin-only one (read-only probes).
  const check = useMutation({
    mutationFn: async () => {
      await api<MembersResponse>('api/cluster/members');
      try {
        await api('api/audit?limit=1');
        return 'admin';
      } catch (e) {
        if (e instanceof ApiError && e.status === 403) return 'reader or writer';
        throw e;
      }
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    tokenStore.set(draft.trim());
    setSaved(draft.trim() ? 'Token saved for this tab.' : 'Token cleared.');
    check.reset();
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
              check.reset();
            }}
          >
            Clear
          </button>
          <button type="button" className="btn" onClick={() => check.mutate()} disabled={check.isPending}>
            Check token
          </button>
        </div>
      </form>
      {saved && (
        <p className="alert alert-ok" role="status" data-testid="token-saved">
          {saved}
        </p>
      )}
      {check.data && (
        <p className="alert alert-ok" role="status">
          The node accepts this token; its role is {check.data}.
        </p>
      )}
      <ErrorMessage error={check.error} action="Token check" />
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
