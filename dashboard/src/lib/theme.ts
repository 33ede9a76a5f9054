import { createStore } from './store';
import { prefsStore } from './store';

/** The theme in force, light or dark (the preference, or the system's). */
export const themeStore = createStore<'light' | 'dark'>('light');

function systemDark(): boolean {
  return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;
}

export function applyTheme(): void {
  const pref = prefsStore.get().theme;
  const t = pref === 'system' ? (systemDark() ? 'dark' : 'light') : pref;
  document.documentElement.dataset.theme = t;
  themeStore.set(t);
}

export function watchTheme(): () => void {
  applyTheme();
  const unsub = prefsStore.subscribe(applyTheme);
  const mq = typeof matchMedia === 'function' ? matchMedia('(prefers-color-scheme: dark)') : null;
  mq?.addEventListener('change', applyTheme);
  return () => {
    unsub();
    mq?.removeEventListener('change', applyTheme);
  };
}
