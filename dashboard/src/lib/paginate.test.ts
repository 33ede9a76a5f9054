import { describe, expect, it, vi } from 'vitest';
import type { KeysPage } from './api';
import { gatherKeys, keysUrl } from './paginate';

function pages(list: KeysPage[]) {
  const calls: string[] = [];
  let i = 0;
  const fn = vi.fn(async (cursor: string) => {
    calls.push(cursor);
    const p = list[i++];
    if (!p) throw new Error('no more pages');
    return p;
  });
  return { fn, calls };
}

const k = (key: string, node = 'n0') => ({ key, size: 1, ttl: -1, node });

describe('gatherKeys', () => {
  it('follows cursors over empty pages until it has enough', async () => {
    const { fn, calls } = pages([
      { keys: [], cursor: '1.0', count: 0, unreachable: [] },
      { keys: [k('a'), k('b')], cursor: '1.77', count: 2, unreachable: [] },
      { keys: [k('c')], cursor: '2.0', count: 1, unreachable: ['n2'] },
      { keys: [k('d')], cursor: '0', count: 1, unreachable: [] },
    ]);
    const g = await gatherKeys(fn, '0', 3);
    expect(g.keys.map((x) => x.key)).toEqual(['a', 'b', 'c']);
    expect(g.cursor).toBe('2.0');
    expect(g.done).toBe(false);
    expect(g.unreachable).toEqual(['n2']);
    expect(calls).toEqual(['0', '1.0', '1.77']);
  });

  it('resumes from a cursor and stops at "0"', async () => {
    const { fn, calls } = pages([{ keys: [k('d')], cursor: '0', count: 1, unreachable: [] }]);
    const g = await gatherKeys(fn, '2.0', 50);
    expect(calls).toEqual(['2.0']);
    expect(g.done).toBe(true);
    expect(g.cursor).toBe('0');
  });

  it('asks for what is still missing', async () => {
    const fn = vi.fn(async (_c: string, limit: number) => ({ keys: [k(`x${limit}`)], cursor: limit > 49 ? '1.1' : '0', count: 1, unreachable: [] }));
    await gatherKeys(fn, '0', 50);
    expect(fn.mock.calls.map((c) => c[1])).toEqual([50, 49]);
  });

  it('gives up after maxRequests pages without the end', async () => {
    const fn = vi.fn(async () => ({ keys: [], cursor: '1.5', count: 0, unreachable: [] }));
    const g = await gatherKeys(fn, '0', 10, 5);
    expect(fn).toHaveBeenCalledTimes(5);
    expect(g.done).toBe(false);
    expect(g.cursor).toBe('1.5');
  });

  it('an empty first page at the end is the end', async () => {
    const { fn } = pages([{ keys: [], cursor: '0', count: 0, unreachable: [] }]);
    const g = await gatherKeys(fn, '0', 10);
    expect(g.done).toBe(true);
    expect(g.keys).toEqual([]);
  });
});

describe('keysUrl', () => {
  it('encodes the pattern (a plus stays a plus)', () => {
    expect(keysUrl('a+b *', '0', 50)).toBe('api/cache/keys?pattern=a%2Bb+*&cursor=0&limit=50');
    expect(keysUrl('', '1.2', 10)).toBe('api/cache/keys?pattern=*&cursor=1.2&limit=10');
  });
});
