// Cursor pagination of GET /api/cache/keys: one member per page, pages may be
// empty before the end, the end is cursor "0". A "page" of the explorer follows
// cursors until it has `want` keys, reaches the end, or made `maxRequests`.
import type { KeyEntry, KeysPage } from './api';

export interface Gathered {
  keys: KeyEntry[];
  /** Where to go on from; "0" at the end. */
  cursor: string;
  done: boolean;
  unreachable: string[];
  requests: number;
}

export async function gatherKeys(
  fetchPage: (cursor: string, limit: number) => Promise<KeysPage>,
  startCursor: string,
  want: number,
  maxRequests = 25,
): Promise<Gathered> {
  const keys: KeyEntry[] = [];
  const unreachable = new Set<string>();
  let cursor = startCursor || '0';
  let requests = 0;
  let first = true;
  while (requests < maxRequests && keys.length < want) {
    if (!first && cursor === '0') break;
    first = false;
    const page = await fetchPage(cursor, Math.min(1000, Math.max(1, want - keys.length)));
    requests++;
    keys.push(...page.keys);
    page.unreachable?.forEach((u) => unreachable.add(u));
    cursor = page.cursor;
    if (cursor === '0') break;
  }
  return { keys, cursor, done: cursor === '0', unreachable: [...unreachable], requests };
}

export function keysUrl(pattern: string, cursor: string, limit: number): string {
  const q = new URLSearchParams({ pattern: pattern || '*', cursor, limit: String(limit) });
  return `api/cache/keys?${q.toString()}`;
}
