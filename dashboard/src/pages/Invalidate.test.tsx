import { describe, expect, it } from 'vitest';
import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import Invalidate, { parseKeyList } from './Invalidate';
import { mockFetch, renderWithQuery, type Call } from '../test/util';
import { tokenStore } from '../lib/store';

const audit = { records: [], next: null, source: 'file' };

function routes(post: (c: Call) => { status?: number; body: unknown }) {
  return (c: Call) => {
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
    const calls = mockFetch(routes(() => ({ body: { matched: 3, invalidated: 3, nodes: 3, unreachable: ['n2'] } })));
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

  it('shows the 403 message when the token lacks the role', async () => {
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
    const calls = mockFetch(routes(() => ({ body: { invalidated: 2, nodes: 3, unreachable: [] } })));
    renderWithQuery(<Invalidate query={new URLSearchParams()} />);
    fireEvent.change(screen.getByPlaceholderText(/users:1/), { target: { value: 'a\n b \n\na\nc' } });
    fireEvent.click(screen.getByRole('button', { name: /Invalidate 3 keys/ }));
    fireEvent.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Invalidate 3' }));
    await waitFor(() => expect(screen.getByTestId('invalidated-count').textContent).toBe('2'));
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ keys: ['a', 'b', 'c'] });
  });
});

describe('parseKeyList', () => {
  it('splits lines, trims, drops blanks and duplicates', () => {
    expect(parseKeyList('a\r\n b\n\n a \nc,d\te')).toEqual(['a', 'b', 'c', 'd', 'e']);
  });
});
