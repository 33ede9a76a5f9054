// The dcache HTTP API, same origin. Every error is {"error","code"}; ApiError keeps
// the status, the code, the server's message and the body (some 503s carry counts).
import { tokenStore } from './store';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
  /** 401 or 403: the token is missing, unknown or lacks the role. */
  get isAuth(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

export function authHeaders(extra?: HeadersInit): Headers {
  const h = new Headers(extra);
  const t = tokenStore.get();
  if (t) h.set('Authorization', `Bearer ${t}`);
  return h;
}

async function errorFrom(res: Response): Promise<ApiError> {
  let body: unknown = null;
  let message = `${res.status} ${res.statusText || 'error'}`;
  let code = `http_${res.status}`;
  try {
    const text = await res.text();
    if (text) {
      try {
        body = JSON.parse(text);
        if (body && typeof body === 'object') {
          const b = body as { error?: unknown; code?: unknown };
          if (typeof b.error === 'string') message = b.error;
          if (typeof b.code === 'string') code = b.code;
        }
      } catch {
        message = text.slice(0, 300);
      }
    }
  } catch {
    /* body unreadable: keep the status line */
  }
  return new ApiError(res.status, code, message, body);
}

export interface RequestOptions {
  method?: string;
  json?: unknown;
  /** A raw body (a value); `json` wins when both are given. */
  body?: BodyInit;
  signal?: AbortSignal;
  headers?: HeadersInit;
}

/** A raw request with the token; throws ApiError on a non-2xx answer. */
export async function request(path: string, opts: RequestOptions = {}): Promise<Response> {
  const headers = authHeaders(opts.headers);
  let body: BodyInit | undefined = opts.body;
  if (opts.json !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(opts.json);
  }
  let res: Response;
  try {
    res = await fetch(path, { method: opts.method ?? 'GET', headers, body, signal: opts.signal, cache: 'no-store' });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', 'The node did not answer (network error).');
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

/** JSON in, JSON out. */
export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await request(path, opts);
  return (await res.json()) as T;
}

/** The path segment of a key: a UTF-8 key, or the bytes of a key_base64. */
export function keyPath(key: KeyRef): string {
  if (key.base64 === undefined) return encodeURIComponent(key.key);
  const bin = atob(key.base64);
  let s = '';
  for (let i = 0; i < bin.length; i++) s += '%' + bin.charCodeAt(i).toString(16).toUpperCase().padStart(2, '0');
  return s;
}

export interface KeyRef {
  /** What is shown: the key, or a description of a binary one. */
  key: string;
  /** Set for keys that are not UTF-8 (the API's key_base64). */
  base64?: string;
}

// ---- response shapes (see README "HTTP API") ----

export interface Member {
  name: string;
  id: string;
  state: string;
  incarnation: number;
  gossip: string;
  http: string;
  zone: string;
  version: string;
  last_change_ms: number;
  self: boolean;
}
export interface MembersResponse {
  self: string;
  joined: boolean;
  members: Member[];
}
export interface RingNode {
  name: string;
  zone: string;
  peer: string;
  http: string;
  share: number;
  suspect: boolean;
}
export interface RingResponse {
  version: number;
  replicas: number;
  replicas_configured: number;
  members: number;
  zones: number;
  balance: number;
  bytes: number;
  self: string;
  nodes: RingNode[];
  key?: string;
  key_base64?: string;
  owners?: string[];
}
export interface LatencyStats {
  count: number;
  p50_ms: number;
  p90_ms: number;
  p95_ms: number;
  p99_ms: number;
  mean_ms: number;
}
export interface MetricsResponse {
  hits: number;
  misses: number;
  hit_rate: number;
  entries: number;
  bytes: number;
  max_entries?: number;
  eviction_policy?: string;
  max_bytes?: number;
  evictions: number;
  expirations: number;
  invalidations: number;
  requests: number;
  connections: number;
  rss_bytes: number;
  uptime_seconds: number;
  latency: Record<string, LatencyStats>;
  l2: { status: string; [k: string]: unknown };
  cluster?: { ring_version: number; ring_members: number; [k: string]: unknown };
}
export interface HistoryPoint {
  t: number;
  hits: number;
  misses: number;
  hit_rate: number;
  requests_per_sec: number;
  errors: number;
  evictions: number;
  expirations: number;
  invalidations: number;
  entries: number;
  bytes: number;
  rss_bytes: number;
  connections: number;
  get_p99_ms: number;
}
export interface HistoryResponse {
  window: string;
  interval_ms: number;
  points: HistoryPoint[];
}
export interface ReadyResponse {
  ready: boolean;
  status: string;
  dependencies: Record<string, { status: string; [k: string]: unknown }>;
}
export interface KeyEntry {
  key?: string;
  key_base64?: string;
  size: number;
  ttl: number;
  node: string;
}
export interface KeysPage {
  keys: KeyEntry[];
  cursor: string;
  count: number;
  unreachable: string[];
}
export interface PreviewResponse {
  matched: number;
  sample: string[];
  nodes: number;
  unreachable: string[];
}
export interface InvalidateResult {
  matched?: number;
  invalidated: number;
  nodes: number;
  unreachable: string[];
  l2?: { status: string; unlinked?: number };
  /** Each member's part; `matched` for pattern invalidations only. */
  per_node?: NodePart[];
}
export interface NodePart {
  node: string;
  /** false: the member did not answer (it is also in `unreachable`). */
  answered: boolean;
  matched?: number;
  invalidated?: number;
}

/** The per_node lists of several answers (batches of keys) as one: counts added, answered only if every batch was. */
export function mergeParts(lists: (NodePart[] | undefined)[]): NodePart[] | undefined {
  const by = new Map<string, NodePart>();
  let any = false;
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    any = true;
    for (const p of list) {
      const o = by.get(p.node);
      if (!o) {
        by.set(p.node, { ...p });
        continue;
      }
      o.answered = o.answered && p.answered;
      if (p.matched !== undefined) o.matched = (o.matched ?? 0) + p.matched;
      if (p.invalidated !== undefined) o.invalidated = (o.invalidated ?? 0) + p.invalidated;
    }
  }
  return any ? [...by.values()] : undefined;
}
export interface AuditRecord {
  id: string;
  time: string;
  time_ms: number;
  node: string;
  actor: string;
  action: string;
  keys?: string[];
  key_count?: number;
  pattern?: string;
  dry_run?: boolean;
  matched?: number;
  invalidated?: number;
  status: number;
  result: string;
  duration_ms?: number;
  request_id?: string;
}
export interface AuditResponse {
  records: AuditRecord[];
  next: string | null;
  source: string;
  degraded?: string;
}
export interface WarmRun {
  id: string;
  job: string;
  node: string;
  trigger: string;
  state: string;
  started_ms: number;
  ended_ms: number | null;
  keys: number;
  loaded: number;
  missing: number;
  failed: number;
  keys_per_s: number;
  success_rate: number;
  error?: string;
}
export interface WarmSource {
  keys?: string[];
  pattern?: string;
  query?: string;
  origin?: string;
  key_prefix?: string;
  hot?: number;
}
export interface WarmJobSpec {
  name: string;
  schedule?: string;
  source: WarmSource;
  priority?: number;
  batch_size?: number;
  concurrency?: number;
  enabled?: boolean;
}
export interface WarmJob extends WarmJobSpec {
  source_type: string;
  from_file: boolean;
  next_run_ms: number | null;
  runs: number;
  last_run: WarmRun | null;
  running: WarmRun | null;
}

/** The fields of a job the API takes back (what GET adds is left out). */
export function jobSpec(j: WarmJob | WarmJobSpec): WarmJobSpec {
  const s: WarmJobSpec = { name: j.name, source: j.source };
  if (j.schedule) s.schedule = j.schedule;
  if (j.priority !== undefined) s.priority = j.priority;
  if (j.batch_size !== undefined) s.batch_size = j.batch_size;
  if (j.concurrency !== undefined) s.concurrency = j.concurrency;
  if (j.enabled !== undefined) s.enabled = j.enabled;
  return s;
}

export function keyRefOf(e: { key?: string; key_base64?: string }): KeyRef {
  if (e.key !== undefined) return { key: e.key };
  const b = e.key_base64 ?? '';
  let n = 0;
  try {
    n = atob(b).length;
  } catch {
    /* not base64: shown as it is */
  }
  return { key: `(binary key, ${n} bytes, base64 ${b})`, base64: b };
}
