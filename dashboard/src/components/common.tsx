import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { ApiError } from '../lib/api';
import type { Permission } from '../lib/role';

/** An error as the user should read it; 401/403 say what to do about it. */
export function ErrorMessage({ error, action }: { error: unknown; action?: string }) {
  if (!error) return null;
  if (error instanceof ApiError) {
    const hint =
      error.status === 401
        ? 'Set a valid token in Settings.'
        : error.status === 403
          ? 'The token in Settings does not have the role this needs.'
          : error.status === 429
            ? 'The node is busy; try again in a moment.'
            : null;
    return (
      <div className={`alert ${error.isAuth ? 'alert-auth' : 'alert-error'}`} role="alert">
        <strong>{action ? `${action}: ` : ''}</strong>
        <span className="alert-text">{error.message}</span>{' '}
        <code className="muted">
          {error.status ? `${error.status} ` : ''}
          {error.code}
        </code>
        {hint && (
          <div className="alert-hint">
            {hint}{' '}
            {error.isAuth && <a href="#/settings">Open Settings</a>}
          </div>
        )}
      </div>
    );
  }
  const msg = error instanceof Error ? error.message : String(error);
  return (
    <div className="alert alert-error" role="alert">
      <strong>{action ? `${action}: ` : ''}</strong>
      {msg}
    </div>
  );
}

export function Stat({
  label,
  value,
  sub,
  title,
  testId,
}: {
  label: string;
  value: ReactNode;
  sub?: ReactNode;
  title?: string;
  testId?: string;
}) {
  return (
    <div className="stat" title={title}>
      <div className="stat-label">{label}</div>
      <div className="stat-value" data-testid={testId}>
        {value}
      </div>
      {sub !== undefined && <div className="stat-sub">{sub}</div>}
    </div>
  );
}

const STATE_CLASS: Record<string, string> = {
  alive: 'ok',
  ok: 'ok',
  done: 'ok',
  running: 'info',
  syncing: 'info',
  joining: 'info',
  suspect: 'warn',
  degraded: 'warn',
  draining: 'warn',
  minority: 'bad',
  clock_skew: 'bad',
  cancelled: 'warn',
  dead: 'bad',
  failed: 'bad',
  left: 'muted',
  disabled: 'muted',
};

export function Badge({ state, children }: { state: string; children?: ReactNode }) {
  return <span className={`badge badge-${STATE_CLASS[state] ?? 'muted'}`}>{children ?? state}</span>;
}

/** A modal dialog: Escape and the backdrop close it, focus moves in and back. */
export function Dialog({
  title,
  onClose,
  children,
  wide,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const titleId = useId();
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const el = ref.current;
    const first = el?.querySelector<HTMLElement>('[data-autofocus], input, textarea, select, button');
    (first ?? el)?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        onClose();
      } else if (e.key === 'Tab' && el) {
        const items = [...el.querySelectorAll<HTMLElement>('a[href], button, input, textarea, select, [tabindex]')].filter(
          (x) => !x.hasAttribute('disabled') && x.tabIndex >= 0,
        );
        if (items.length === 0) return;
        const a = items[0]!;
        const z = items[items.length - 1]!;
        if (e.shiftKey && document.activeElement === a) {
          e.preventDefault();
          z.focus();
        } else if (!e.shiftKey && document.activeElement === z) {
          e.preventDefault();
          a.focus();
        }
      }
    };
    document.addEventListener('keydown', onKey, true);
    return () => {
      document.removeEventListener('keydown', onKey, true);
      before?.focus?.();
    };
  }, [onClose]);
  return (
    <div className="backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div
        className={`dialog${wide ? ' dialog-wide' : ''}`}
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        ref={ref}
        tabIndex={-1}
      >
        <div className="dialog-head">
          <h2 id={titleId}>{title}</h2>
          <button type="button" className="btn-icon" onClick={onClose} aria-label="Close">
            ×
          </button>
        </div>
        <div className="dialog-body">{children}</div>
      </div>
    </div>
  );
}

export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** Re-render every `ms` (relative times, TTL countdowns). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function Section({ title, children, actions, id }: { title: string; children: ReactNode; actions?: ReactNode; id?: string }) {
  return (
    <section className="card" aria-labelledby={id}>
      <div className="card-head">
        <h2 id={id}>{title}</h2>
        {actions && <div className="card-actions">{actions}</div>}
      </div>
      {children}
    </section>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** Why an action is disabled for this token's role: "Pattern invalidation needs the admin role (…)". */
export function RoleNote({ perm, what, id }: { perm: Permission; what: string; id?: string }) {
  if (perm.ok) return null;
  return (
    <p className="role-note" id={id} data-testid="role-note">
      {what} {perm.reason}. <a href="#/settings">Settings</a>
    </p>
  );
}

/** A key's owners as the ring lists them, the primary first and named so. */
export function OwnerList({ owners }: { owners: string[] }) {
  return (
    <>
      {owners.map((o, i) => (
        <span key={o}>
          {i > 0 && ', '}
          <strong>{o}</strong>
          {i === 0 ? ' (primary)' : ''}
        </span>
      ))}
    </>
  );
}
