import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventStream } from './stream';
import { tokenStore } from './store';

function sseResponse(chunks: string[], close = true): Response {
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      if (close) c.close();
    },
  });
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
}

afterEach(() => vi.useRealTimers());

describe('EventStream', () => {
  it('delivers parsed events and reconnects with Last-Event-ID after retry', async () => {
    tokenStore.set('dct_x');
    const seen: unknown[] = [];
    const requests: Headers[] = [];
    let n = 0;
    const fetchImpl = vi.fn(async (_u: RequestInfo | URL, init?: RequestInit) => {
      requests.push(new Headers(init?.headers));
      n++;
      if (n === 1) return sseResponse(['retry: 50\n\nid: r-1\nevent: metrics\ndata: {"node":"n0"', ',"ops_per_s":2}\n\n']);
      return sseResponse(['id: r-2\nevent: member\ndata: {"member":"n1"}\n\n'], false);
    });
    const s = new EventStream({ fetchImpl: fetchImpl as typeof fetch, retryMs: 10 });
    s.on('metrics', (d) => seen.push(d));
    s.on('member', (d) => seen.push(d));
    s.start();
    await vi.waitFor(() => expect(seen).toHaveLength(2), { timeout: 2000 });
    expect(seen[0]).toEqual({ node: 'n0', ops_per_s: 2 });
    expect(seen[1]).toEqual({ member: 'n1' });
    expect(requests[0]!.get('Authorization')).toBe('Bearer dct_x');
    expect(requests[0]!.get('Last-Event-ID')).toBeNull();
    expect(requests[1]!.get('Last-Event-ID')).toBe('r-1');
    expect(s.status.get().state).toBe('open');
    s.stop();
    expect(s.status.get().state).toBe('down');
  });

  it('says why it is down (the API error) and tries again', async () => {
    let n = 0;
    const fetchImpl = vi.fn(async () => {
      n++;
      return new Response(JSON.stringify({ error: 'too many streams', code: 'overloaded' }), { status: 503 });
    });
    const s = new EventStream({ fetchImpl: fetchImpl as typeof fetch, retryMs: 5 });
    s.start();
    await vi.waitFor(() => expect(s.status.get().error).toBe('too many streams'));
    expect(s.status.get().state).not.toBe('open');
    await vi.waitFor(() => expect(n).toBeGreaterThan(1), { timeout: 2000 });
    s.stop();
  });
});
