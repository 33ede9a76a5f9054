import { describe, expect, it } from 'vitest';
import { SSEParser } from './sse';

describe('SSEParser', () => {
  it('parses a block with id, event and data', () => {
    const p = new SSEParser();
    const out = p.feed('id: 1796227154090-4\nevent: delete\ndata: {"a":1}\n\n');
    expect(out).toEqual([{ id: '1796227154090-4', event: 'delete', data: '{"a":1}' }]);
    expect(p.lastEventId).toBe('1796227154090-4');
  });

  it('joins multi-line data with newlines', () => {
    const p = new SSEParser();
    expect(p.feed('data: one\ndata: two\ndata:three\n\n')).toEqual([{ id: '', event: 'message', data: 'one\ntwo\nthree' }]);
  });

  it('ignores comments and blocks without data', () => {
    const p = new SSEParser();
    expect(p.feed(': keep-alive\n\n: another\n\nevent: x\n\n')).toEqual([]);
    // the event type of a block without data does not leak into the next one
    expect(p.feed('data: y\n\n')).toEqual([{ id: '', event: 'message', data: 'y' }]);
  });

  it('takes retry as a number of ms and ignores bad values', () => {
    const p = new SSEParser();
    p.feed('retry: 2000\n\n');
    expect(p.retry).toBe(2000);
    p.feed('retry: soon\n\n');
    expect(p.retry).toBe(2000);
  });

  it('keeps the last id for later events and ignores ids with NUL', () => {
    const p = new SSEParser();
    const a = p.feed('id: 7\ndata: a\n\ndata: b\n\nid: bad\0id\ndata: c\n\n');
    expect(a.map((e) => e.id)).toEqual(['7', '7', '7']);
    const b = p.feed('id\ndata: d\n\n');
    expect(b[0]!.id).toBe('');
  });

  it('assembles events split across chunks anywhere', () => {
    const text = 'retry: 2000\n\nid: 1-1\nevent: metrics\ndata: {"node":"n0",\ndata: "x":1}\n\n: comment\nid: 1-2\nevent: member\ndata: {}\n\n';
    for (let cut = 1; cut < text.length; cut++) {
      const p = new SSEParser();
      const out = [...p.feed(text.slice(0, cut)), ...p.feed(text.slice(cut))];
      expect(out).toEqual([
        { id: '1-1', event: 'metrics', data: '{"node":"n0",\n"x":1}' },
        { id: '1-2', event: 'member', data: '{}' },
      ]);
    }
  });

  it('feeds one character at a time', () => {
    const p = new SSEParser();
    const out = [];
    for (const ch of 'event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r') out.push(...p.feed(ch));
    expect(out).toEqual([
      { id: '', event: 'a', data: '1' },
      { id: '', event: 'b', data: '2' },
    ]);
  });

  it('handles CRLF split between chunks', () => {
    const p = new SSEParser();
    const out = [...p.feed('data: x\r'), ...p.feed('\n\r'), ...p.feed('\n')];
    expect(out).toEqual([{ id: '', event: 'message', data: 'x' }]);
  });

  it('keeps a field without a colon and a value with colons', () => {
    const p = new SSEParser();
    expect(p.feed('data\ndata: a: b\n\n')).toEqual([{ id: '', event: 'message', data: '\na: b' }]);
  });

  it('strips a leading BOM and only one space after the colon', () => {
    const p = new SSEParser();
    expect(p.feed('\ufeffdata:  two spaces\n\n')).toEqual([{ id: '', event: 'message', data: ' two spaces' }]);
  });
});
