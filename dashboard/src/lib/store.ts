// Small external stores (token, preferences) read with useSyncExternalStore.
import { useSyncExternalStore } from 'react';

type Listener = () => void;

export interface Store<T> {
  get(): T;
  set(v: T): void;
  subscribe(l: Listener): () => void;
}

export function createStore<T>(initial: T, persist?: (v: T) => void): Store<T> {
  let value = initial;
  const listeners = new Set<Listener>();
  return {
    get: () => value,
    set(v: T) {
      if (Object.is(v, value)) return;
      value = v;
      persist?.(v);
      listeners.forEach((l) => l());
    },
    subscribe(l: Listener) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
}

export function useStore<T>(s: Store<T>): T {
  return useSyncExternalStore(s.subscribe, s.get, s.get);
}

function safeGet(storage: 'session' | 'local', key: string): string | null {
  try {
    return (storage === 'session' ? sessionStorage : localStorage).getItem(key);
  } catch {
    return null;
  }
}

function safeSet(storage: 'session' | 'local', key: string, v: string | null): void {
  try {
    const s = storage === 'session' ? sessionStorage : localStorage;
    if (v === null || v === '') s.removeItem(key);
    else s.setItem(key, v);
  } catch {
    /* storage refused (private mode): keep it in memory only */
  }
}

/** The bearer token: kept in sessionStorage only (gone when the tab closes). */
export const tokenStore = createStore<string>(safeGet('session', 'dcache.token') ?? '', (v) =>
  safeSet('session', 'dcache.token', v),
);

export type ThemePref = 'system' | 'light' | 'dark';

export interface Prefs {
  theme: ThemePref;
  /** Seconds between /api/metrics polls while the event stream is down. */
  pollSeconds: number;
  /** UTC times in tables instead of local time. */
  utc: boolean;
}

export const DEFAULT_PREFS: Prefs = { theme: 'system', pollSeconds: 5, utc: false };

function loadPrefs(): Prefs {
  const raw = safeGet('local', 'dcache.prefs');
  if (!raw) return DEFAULT_PREFS;
  try {
    const p = JSON.parse(raw) as Partial<Prefs>;
    return {
      theme: p.theme === 'light' || p.theme === 'dark' ? p.theme : 'system',
      pollSeconds: typeof p.pollSeconds === 'number' && p.pollSeconds >= 1 ? p.pollSeconds : DEFAULT_PREFS.pollSeconds,
      utc: p.utc === true,
    };
  } catch {
    return DEFAULT_PREFS;
  }
}

export const prefsStore = createStore<Prefs>(loadPrefs(), (v) => safeSet('local', 'dcache.prefs', JSON.stringify(v)));

export function setPrefs(patch: Partial<Prefs>): void {
  prefsStore.set({ ...prefsStore.get(), ...patch });
}
