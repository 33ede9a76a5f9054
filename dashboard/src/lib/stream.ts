// The /api/events feed, read with fetch (EventSource cannot send the token),
// reconnecting after the stream's `retry` delay with Last-Event-ID.
import { SSEParser, type SSEMessage } from './sse';
import { authHeaders } from './api';
import { createStore, type Store } from './store';

export type StreamState = 'connecting' | 'open' | 'down';

export interface StreamStatus {
  state: StreamState;
  /** Why it is down (the API's error text, or a network error). */
  error: string | null;
  /** When the stream was last opened (ms). */
  since: number | null;
}

export type EventHandler = (data: unknown, msg: SSEMessage) => void;

export interface EventStreamOptions {
  url?: string;
  fetchImpl?: typeof fetch;
  /** Default delay before reconnecting until the stream sends `retry`. */
  retryMs?: number;
}

export class EventStream {
  readonly status: Store<StreamStatus> = createStore<StreamStatus>({ state: 'down', error: null, since: null });
  private handlers = new Map<string, Set<EventHandler>>();
  private ctrl: AbortController | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastEventId = '';
  private retryMs: number;
  private running = false;
  private readonly url: string;
  private readonly fetchImpl: typeof fetch;
  private gen = 0;

  constructor(opts: EventStreamOptions = {}) {
    this.url = opts.url ?? 'api/events';
    this.fetchImpl = opts.fetchImpl ?? ((...a) => fetch(...a));
    this.retryMs = opts.retryMs ?? 2000;
  }

  on(type: string, h: EventHandler): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(h);
    return () => set.delete(h);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.connect();
  }

  stop(): void {
    this.running = false;
    this.gen++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ctrl?.abort();
    this.ctrl = null;
    this.status.set({ state: 'down', error: null, since: null });
  }

  /** Reconnect now (the token changed): resumes where it was. */
  restart(): void {
    this.stop();
    this.start();
  }

  private emit(type: string, data: unknown, msg: SSEMessage): void {
    for (const key of [type, '*']) {
      this.handlers.get(key)?.forEach((h) => {
        try {
          h(data, msg);
        } catch (e) {
          console.warn('event handler failed', e);
        }
      });
    }
  }

  private schedule(delay: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, delay);
  }

  private async connect(): Promise<void> {
    if (!this.running) return;
    const gen = ++this.gen;
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    const prev = this.status.get();
    this.status.set({ state: 'connecting', error: prev.error, since: null });
    const headers = authHeaders({ Accept: 'text/event-stream' });
    if (this.lastEventId) headers.set('Last-Event-ID', this.lastEventId);
    let delay = this.retryMs;
    try {
      const res = await this.fetchImpl(this.url, { headers, signal: ctrl.signal, cache: 'no-store' });
      if (!res.ok || !res.body) {
        let message = `${res.status} ${res.statusText}`;
        try {
          const b = (await res.json()) as { error?: string };
          if (b && typeof b.error === 'string') message = b.error;
        } catch {
          /* not JSON */
        }
        // A refused token will not get better by itself: try again slowly.
        if (res.status === 401 || res.status === 403) delay = Math.max(delay, 10000);
        const ra = Number(res.headers.get('Retry-After'));
        if (ra > 0) delay = Math.max(delay, ra * 1000);
        throw new Error(message);
      }
      this.status.set({ state: 'open', error: null, since: Date.now() });
      const parser = new SSEParser();
      parser.lastEventId = this.lastEventId;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done || gen !== this.gen) break;
        const events = parser.feed(decoder.decode(value, { stream: true }));
        if (parser.retry !== null) this.retryMs = parser.retry;
        for (const ev of events) {
          this.lastEventId = ev.id;
          let data: unknown = ev.data;
          try {
            data = JSON.parse(ev.data);
          } catch {
            /* not JSON: pass the text */
          }
          this.emit(ev.event, data, ev);
        }
        this.lastEventId = parser.lastEventId;
      }
      delay = this.retryMs;
      if (gen === this.gen) this.status.set({ state: 'down', error: 'The event stream ended.', since: null });
    } catch (e) {
      if (gen !== this.gen) return; // stopped or restarted meanwhile
      const message = e instanceof Error ? e.message : String(e);
      this.status.set({ state: 'down', error: message || 'The event stream failed.', since: null });
    }
    if (gen === this.gen) this.schedule(delay);
  }
}

/** The one stream of the page. */
export const events = new EventStream();
