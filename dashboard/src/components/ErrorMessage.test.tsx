import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import { ErrorMessage } from './common';
import { api, ApiError } from '../lib/api';
import { mockFetch } from '../test/util';

describe('ErrorMessage', () => {
  it('shows the API error text of a 403 and points to Settings', () => {
    render(<ErrorMessage error={new ApiError(403, 'forbidden', 'this needs the admin role; the token has reader')} action="Invalidating" />);
    const a = screen.getByRole('alert');
    expect(a.textContent).toContain('Invalidating: ');
    expect(a.textContent).toContain('this needs the admin role; the token has reader');
    expect(a.textContent).toContain('does not have the role');
    expect(screen.getByRole('link', { name: 'Open Settings' })).toBeTruthy();
  });
  it('a 401 asks for a valid token', () => {
    render(<ErrorMessage error={new ApiError(401, 'unauthorized', 'this endpoint needs Authorization: Bearer TOKEN')} />);
    expect(screen.getByRole('alert').textContent).toContain('Set a valid token in Settings.');
  });
  it('other errors have no role hint', () => {
    render(<ErrorMessage error={new ApiError(400, 'bad_time', 'since is not a time')} />);
    expect(screen.getByRole('alert').textContent).not.toContain('Settings');
  });
  it('renders nothing without an error', () => {
    const { container } = render(<ErrorMessage error={null} />);
    expect(container.innerHTML).toBe('');
  });
});

describe('api()', () => {
  it('turns {"error","code"} into an ApiError with the status', async () => {
    mockFetch(() => ({ status: 403, body: { error: 'this needs the admin role; the token has reader', code: 'forbidden' } }));
    const e = await api('api/invalidate/pattern', { method: 'POST', json: { pattern: 'x' } }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect((e as ApiError).status).toBe(403);
    expect((e as ApiError).code).toBe('forbidden');
    expect((e as ApiError).message).toBe('this needs the admin role; the token has reader');
    expect((e as ApiError).isAuth).toBe(true);
  });
});
