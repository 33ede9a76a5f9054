import { describe, expect, it } from 'vitest';
import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import Invalidate, { parseKeyList } from './Invalidate';
import { mockFetch, renderWithQuery, type Call } from '../test/util';
import { tokenStore } from '../lib/store';
import { mergeParts } from '../lib/api';

const audit = { records: [], next: null, source: 'file' };

const WHO = { tokens: true, name: 'ops', role: 'admin' };

function routes(post: (c: Call) => { status?: number; body: unknown }, who: unknown = WHO) {
  return (c: Call) => {
    if (c.url === 'api/whoami') return { body: who };
    if (c.url.startsWith('api/invalidate/preview')) {
      const pattern = new URL(c.url, 'http://x/').searchParams.get('pattern');
      return pattern === 'users:*'
        ? { body: { matched: 3, sample: ['users:1', 'users:2', 'users:3'], nodes: 3, unreachable: [] } }
        : { body: { matched: 0, sample: [], nodes: 3, unreachable: [] } };
    }
    if (c.url.startsWith('api/audit')) return { body: audit };
    if (c.method === 'POST' && c.url === 'api/invalidate/pattern') return post(c);
    if (c.method === 'POST' && c.url === 'api/invalidate') return post(c);
    return undefined;
  };
}

describe('invalidation console', () => {
  it('previews, asks for confirmation, then shows the result', async () => {
    tokenStore.set('dct_admin');
    const calls = mockFetch(
      routes(() => ({
        body: {
          matched: 3,
          invalidated: 3,
          nodes: 3,
          unreachable: ['n2'],
          per_node: [
            { node: 'n1', answered: true, matched: 2, invalidated: 2 },
            { node: 'n0', answered: true, matched: 1, invalidated: 1 },
            { node: 'n2', answered: false, matched: 0, invalidated: 0 },
          ],
        },
      })),
    );
    renderWithQuery(<Invalidate query={new URLSearchParams()} />);

    fireEvent.change(screen.getByTestId('pattern-input'), { target: { value: 'users:*' } });
    // the debounced preview counts before anything is deleted
    await waitFor(() => expect(screen.getByTestId('preview-count').textContent).toBe('3'));
    expect(screen.getByText('users:2')).toBeTruthy();
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(0);
    const preview = calls.find((c) => c.url.startsWith('api/invalidate/preview'))!;
    expect(preview.headers.get('Authorization')).toBe('Bearer dct_admin');

    // Enter in the form opens the confirmation, which says what will happen
    fireEvent.submit(screen.getByTestId('pattern-input').closest('form')!);
    const dialog = await screen.findByRole('dialog');
    expect(within(dialog).getByTestId('confirm-count').textContent).toContain('It matches 3 keys now');
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(0);

    fireEvent.click(within(dialog).getByRole('button', { name: 'Invalidate' }));
    await waitFor(() => expect(screen.getByTestId('invalidated-count').textContent).toBe('3'));
    const post = calls.find((c) => c.method === 'POST')!;
    expect(post.url).toBe('api/invalidate/pattern');
    expect(post.body).toEqual({ pattern: 'users:*', dry_run: false });
    expect(screen.getByTestId('invalidate-result').textContent).toContain('Unreachable: n2');
    expect(screen.queryByRole('dialog')).toBeNull();
    // each member's part, by name, the one that did not answer without counts
    const rows = within(screen.getByTestId('per-node')).getAllByRole('row').map((r) => r.textContent);
    expect(rows).toEqual(['NodeAnsweredMatchedInvalidated', 'n0yes11', 'n1yes22', 'n2no answer——']);
  });

  it('cancelling the confirmation deletes nothing; Escape closes it', async () => {
    const calls = mockFetch(routes(() => ({ body: {} })));
    renderWithQuery(<Invalidate query={new URLSearchParams('pattern=users:*')} />);
    await waitFor(() => expect(screen.getByTestId('preview-count').textContent).toBe('3'));
    fireEvent.click(screen.getByRole('button', { name: 'Invalidate…' }));
    await screen.findByRole('dialog');
    fireEvent.keyDown(document, { key: 'Escape' });
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(0);
  });

  it('a dry run posts dry_run and says nothing was deleted', async () => {
    const calls = mockFetch(routes(() => ({ body: { matched: 3, invalidated: 0, nodes: 3, unreachable: [] } })));
    renderWithQuery(<Invalidate query={new URLSearchParams('pattern=users:*')} />);
    fireEvent.click(screen.getByRole('button', { name: 'Dry run' }));
    await waitFor(() => expect(screen.getByTestId('invalidate-result').textContent).toContain('Dry run (nothing deleted)'));
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ pattern: 'users:*', dry_run: true });
  });

  it('shows the 403 message when the API refuses anyway (the role changed since whoami)', async () => {
    tokenStore.set('dct_reader');
    mockFetch(
      routes(() => ({ status: 403, body: { error: 'this needs the admin role; the token has reader', code: 'forbidden' } })),
    );
    renderWithQuery(<Invalidate query={new URLSearchParams('pattern=users:*')} />);
    await waitFor(() => expect(screen.getByTestId('preview-count').textContent).toBe('3'));
    fireEvent.click(screen.getByRole('button', { name: 'Invalidate…' }));
    fireEvent.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Invalidate' }));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('this needs the admin role; the token has reader');
    expect(alert.textContent).toContain('403 forbidden');
    expect(within(alert).getByRole('link', { name: 'Open Settings' }).getAttribute('href')).toBe('#/settings');
  });

  it('shows the counts of an incomplete invalidation (503)', async () => {
    mockFetch(
      routes(() => ({
        status: 503,
        body: { error: 'members did not answer', code: 'invalidation_incomplete', matched: 5, invalidated: 4, nodes: 3, unreachable: ['n1'] },
      })),
    );
    renderWithQuery(<Invalidate query={new URLSearchParams('pattern=users:*')} />);
    await waitFor(() => expect(screen.getByTestId('preview-count').textContent).toBe('3'));
    fireEvent.click(screen.getByRole('button', { name: 'Invalidate…' }));
    fireEvent.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Invalidate' }));
    await waitFor(() => expect(screen.getByTestId('invalidated-count').textContent).toBe('4'));
    expect(screen.getByTestId('invalidate-result').textContent).toContain('Unreachable: n1');
    expect(screen.getByRole('alert').textContent).toContain('members did not answer');
  });

  it('invalidates a pasted list of keys after confirmation', async () => {
    const calls = mockFetch(
      routes(() => ({
        body: {
          invalidated: 2,
          nodes: 3,
          unreachable: [],
          per_node: [
            { node: 'n0', answered: true, invalidated: 2 },
            { node: 'n1', answered: true, invalidated: 0 },
            { node: 'n2', answered: true, invalidated: 0 },
          ],
        },
      })),
    );
    renderWithQuery(<Invalidate query={new URLSearchParams()} />);
    fireEvent.change(screen.getByPlaceholderText(/users:1/), { target: { value: 'a\n b \n\na\nc' } });
    fireEvent.click(screen.getByRole('button', { name: /Invalidate 3 keys/ }));
    fireEvent.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Invalidate 3' }));
    await waitFor(() => expect(screen.getByTestId('invalidated-count').textContent).toBe('2'));
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ keys: ['a', 'b', 'c'] });
    // key invalidations have no "matched" column
    const table = screen.getByTestId('per-node');
    expect(within(table).queryByText('Matched')).toBeNull();
    expect(within(table).getAllByRole('row').map((r) => r.textContent)).toEqual(['NodeAnsweredInvalidated', 'n0yes2', 'n1yes0', 'n2yes0']);
  });

  it('a reader: pattern and key invalidation disabled with the reason, the audit trail not asked for', async () => {
    const calls = mockFetch(routes(() => ({ body: {} }), { tokens: true, name: 'viewer', role: 'reader' }));
    renderWithQuery(<Invalidate query={new URLSearchParams('pattern=users:*')} />);
    // a reader may preview
    await waitFor(() => expect(screen.getByTestId('preview-count').textContent).toBe('3'));
    const inv = screen.getByTestId('pattern-invalidate') as HTMLButtonElement;
    await waitFor(() => expect(inv.disabled).toBe(true));
    expect(inv.title).toBe('Pattern invalidation needs the admin role (this token, viewer, is a reader)');
    expect((screen.getByRole('button', { name: 'Dry run' }) as HTMLButtonElement).disabled).toBe(true);
    const notes = screen.getAllByTestId('role-note').map((n) => n.textContent);
    expect(notes).toContain('Pattern invalidation (and its dry run) needs the admin role (this token, viewer, is a reader). Settings');
    expect(notes.some((n) => n?.startsWith('Invalidating keys needs the writer role'))).toBe(true);
    expect(notes.some((n) => n?.startsWith('Reading the audit trail needs the admin role'))).toBe(true);
    // Enter in the pattern field does not open the confirmation either
    fireEvent.submit(screen.getByTestId('pattern-input').closest('form')!);
    expect(screen.queryByRole('dialog')).toBeNull();
    fireEvent.change(screen.getByPlaceholderText(/users:1/), { target: { value: 'a' } });
    expect((screen.getByRole('button', { name: /Invalidate 1 keys/ }) as HTMLButtonElement).disabled).toBe(true);
    expect(calls.some((c) => c.url.startsWith('api/audit'))).toBe(false);
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(0);
  });

  it('a writer may invalidate keys but not patterns', async () => {
    mockFetch(routes(() => ({ body: {} }), { tokens: true, name: 'app', role: 'writer' }));
    renderWithQuery(<Invalidate query={new URLSearchParams('pattern=users:*')} />);
    const inv = screen.getByTestId('pattern-invalidate') as HTMLButtonElement;
    await waitFor(() => expect(inv.disabled).toBe(true));
    expect(inv.title).toContain('needs the admin role (this token, app, is a writer)');
    fireEvent.change(screen.getByPlaceholderText(/users:1/), { target: { value: 'a' } });
    expect((screen.getByRole('button', { name: /Invalidate 1 keys/ }) as HTMLButtonElement).disabled).toBe(false);
  });

  it('without --tokens everything is allowed (whoami: admin)', async () => {
    mockFetch(routes(() => ({ body: {} }), { tokens: false, name: null, role: 'admin' }));
    renderWithQuery(<Invalidate query={new URLSearchParams('pattern=users:*')} />);
    await waitFor(() => expect(screen.getByTestId('preview-count').textContent).toBe('3'));
    expect((screen.getByTestId('pattern-invalidate') as HTMLButtonElement).disabled).toBe(false);
    expect(screen.queryByTestId('role-note')).toBeNull();
  });
});

describe('mergeParts', () => {
  it('adds the batches of a long key list by node', () => {
    expect(
      mergeParts([
        [
          { node: 'a', answered: true, invalidated: 2 },
          { node: 'b', answered: true, invalidated: 1 },
        ],
        [
          { node: 'a', answered: true, invalidated: 3 },
          { node: 'b', answered: false, invalidated: 0 },
        ],
      ]),
    ).toEqual([
      { node: 'a', answered: true, invalidated: 5 },
      { node: 'b', answered: false, invalidated: 1 },
    ]);
    expect(mergeParts([undefined, undefined])).toBeUndefined();
  });
});

describe('parseKeyList', () => {
  it('splits lines, trims, drops blanks and duplicates', () => {
    expect(parseKeyList('a\r\n b\n\n a \nc,d\te')).toEqual(['a', 'b', 'c', 'd', 'e']);
  });
});
