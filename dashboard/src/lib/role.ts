// Who the token is (GET /api/whoami) and what its role may do, so the pages can
// disable what would only get a 403. The API stays the judge: a 403 that happens
// anyway (the role changed since) is still shown.
import { useQuery } from '@tanstack/react-query';
import { api, ApiError } from './api';

export type Role = 'reader' | 'writer' | 'admin';

export interface WhoAmI {
  tokens: boolean;
  name: string | null;
  role: Role;
}

const RANK: Record<Role, number> = { reader: 1, writer: 2, admin: 3 };

export function isRole(v: unknown): v is Role {
  return v === 'reader' || v === 'writer' || v === 'admin';
}

/**
 * What the caller is, as far as the page knows:
 * - `role` set: whoami answered;
 * - `unauthorized`: the node wants a (valid) token and has none;
 * - neither: not known (loading, or whoami failed otherwise): nothing is disabled.
 */
export interface Caller {
  role: Role | null;
  name: string | null;
  tokens: boolean | null;
  unauthorized: boolean;
}

export const UNKNOWN: Caller = { role: null, name: null, tokens: null, unauthorized: false };

export function callerOf(data: WhoAmI | undefined, error: unknown): Caller {
  if (data && isRole(data.role)) return { role: data.role, name: data.name ?? null, tokens: data.tokens, unauthorized: false };
  if (error instanceof ApiError && error.status === 401) return { ...UNKNOWN, tokens: true, unauthorized: true };
  return UNKNOWN;
}

export interface Permission {
  ok: boolean;
  /** Why not, for a title and a note: "needs the admin role (this token is a reader)". */
  reason?: string;
}

export function permits(c: Caller, need: Role): Permission {
  if (c.unauthorized) return { ok: false, reason: `needs a valid token with the ${need} role (set one in Settings)` };
  if (!c.role) return { ok: true };
  if (RANK[c.role] >= RANK[need]) return { ok: true };
  return { ok: false, reason: `needs the ${need} role (this token${c.name ? `, ${c.name},` : ''} is ${c.role === 'admin' ? 'an' : 'a'} ${c.role})` };
}

/** Queried once per token (a token change resets every query), again on `tokens_reload`. */
export function useWhoAmI() {
  return useQuery({
    queryKey: ['whoami'],
    queryFn: () => api<WhoAmI>('api/whoami'),
    staleTime: 5 * 60_000,
    retry: (n, e) => !(e instanceof ApiError && e.isAuth) && n < 2,
  });
}

export function useCaller(): Caller {
  const q = useWhoAmI();
  return callerOf(q.data, q.error);
}

export function useCan(need: Role): Permission & { settled: boolean } {
  const q = useWhoAmI();
  // settled: whoami answered or failed; a query the role gates waits for it.
  return { ...permits(callerOf(q.data, q.error), need), settled: !q.isPending };
}
