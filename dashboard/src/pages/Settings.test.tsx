import { describe, expect, it } from 'vitest';
import { screen, waitFor } from '@testing-library/react';
import Settings from './Settings';
import { mockFetch, renderWithQuery } from '../test/util';

describe('settings', () => {
  it('says who the token is, from whoami', async () => {
    const calls = mockFetch((c) => (c.url === 'api/whoami' ? { body: { tokens: true, name: 'ops', role: 'admin' } } : undefined));
    renderWithQuery(<Settings />);
    await waitFor(() => expect(screen.getByTestId('whoami').textContent).toContain('Signed in as ops (admin).'));
    // no probing of other endpoints to guess the role
    expect(calls.map((c) => c.url)).toEqual(['api/whoami']);
  });

  it('a node without tokens: everyone is admin', async () => {
    mockFetch((c) => (c.url === 'api/whoami' ? { body: { tokens: false, name: null, role: 'admin' } } : undefined));
    renderWithQuery(<Settings />);
    await waitFor(() => expect(screen.getByTestId('whoami').textContent).toContain('runs without tokens: everyone is admin'));
  });

  it('no valid token: the 401 message', async () => {
    mockFetch((c) =>
      c.url === 'api/whoami' ? { status: 401, body: { error: 'missing or unknown bearer token', code: 'unauthorized' } } : undefined,
    );
    renderWithQuery(<Settings />);
    await waitFor(() => expect(screen.getByTestId('whoami').textContent).toContain('Not signed in: missing or unknown bearer token'));
  });
});
