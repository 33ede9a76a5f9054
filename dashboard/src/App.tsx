import { lazy, Suspense, useEffect, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { useEventWiring, useMembers, useStreamStatus } from './lib/hooks';
import { prefsStore, setPrefs, useStore } from './lib/store';
import { themeStore } from './lib/theme';
import { Overview } from './pages/Overview';

const Cluster = lazy(() => import('./pages/Cluster'));
const Keys = lazy(() => import('./pages/Keys'));
const Invalidate = lazy(() => import('./pages/Invalidate'));
const Warming = lazy(() => import('./pages/Warming'));
const Audit = lazy(() => import('./pages/Audit'));
const Settings = lazy(() => import('./pages/Settings'));

export const ROUTES = [
  { id: 'overview', label: 'Overview' },
  { id: 'cluster', label: 'Cluster' },
  { id: 'keys', label: 'Keys' },
  { id: 'invalidate', label: 'Invalidate' },
  { id: 'warming', label: 'Warming' },
  { id: 'audit', label: 'Audit' },
  { id: 'settings', label: 'Settings' },
] as const;
export type RouteId = (typeof ROUTES)[number]['id'];

export interface Route {
  id: RouteId;
  /** What follows the page in the hash: "#/keys?pattern=x" gives "pattern=x". */
  query: URLSearchParams;
}

function parseHash(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  const [path = '', q = ''] = h.split('?', 2);
  const id = (ROUTES.find((r) => r.id === path)?.id ?? 'overview') as RouteId;
  return { id, query: new URLSearchParams(q) };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

function StreamPill() {
  const s = useStreamStatus();
  const { pollSeconds } = useStore(prefsStore);
  if (s.state === 'open')
    return (
      <span className="pill pill-ok" role="status" data-testid="stream-status" title="Live from /api/events">
        <span className="dot" aria-hidden="true" /> Live
      </span>
    );
  if (s.state === 'connecting')
    return (
      <span className="pill pill-info" role="status" data-testid="stream-status" title={s.error ?? ''}>
        <span className="dot" aria-hidden="true" /> Connecting…
      </span>
    );
  return (
    <span className="pill pill-warn" role="status" data-testid="stream-status" title={s.error ?? ''}>
      <span className="dot" aria-hidden="true" /> Stream down: polling every {pollSeconds}s
      {s.error ? <span className="pill-detail"> ({s.error})</span> : null}
    </span>
  );
}

function ThemeToggle() {
  const theme = useStore(themeStore);
  const next = theme === 'dark' ? 'light' : 'dark';
  return (
    <button
      type="button"
      className="btn-icon theme-toggle"
      onClick={() => setPrefs({ theme: next })}
      aria-label={`Switch to ${next} theme`}
      title={`Switch to ${next} theme`}
    >
      {theme === 'dark' ? '☀' : '☾'}
    </button>
  );
}

export function App() {
  const qc = useQueryClient();
  useEventWiring(qc);
  const route = useRoute();
  const members = useMembers();

  useEffect(() => {
    const label = ROUTES.find((r) => r.id === route.id)?.label ?? '';
    document.title = `${label} · dcache${members.data?.self ? ` · ${members.data.self}` : ''}`;
  }, [route.id, members.data?.self]);

  return (
    <div className="app">
      <a className="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden="true" />
          <span className="brand-name">dcache</span>
          {members.data?.self && (
            <span className="node-name" title="The node this page talks to" data-testid="self-node">
              {members.data.self}
            </span>
          )}
        </div>
        <nav className="nav" aria-label="Pages">
          {ROUTES.map((r) => (
            <a key={r.id} href={`#/${r.id}`} className="nav-link" aria-current={route.id === r.id ? 'page' : undefined}>
              {r.label}
            </a>
          ))}
        </nav>
        <div className="topbar-end">
          <StreamPill />
          <ThemeToggle />
        </div>
      </header>
      <main id="main" className="main" tabIndex={-1}>
        <Suspense fallback={<p className="muted">Loading…</p>}>
          {route.id === 'overview' && <Overview />}
          {route.id === 'cluster' && <Cluster />}
          {route.id === 'keys' && <Keys query={route.query} />}
          {route.id === 'invalidate' && <Invalidate query={route.query} />}
          {route.id === 'warming' && <Warming />}
          {route.id === 'audit' && <Audit />}
          {route.id === 'settings' && <Settings />}
        </Suspense>
      </main>
    </div>
  );
}
