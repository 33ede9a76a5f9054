import { describe, expect, it } from 'vitest';
import { ApiError } from './api';
import { callerOf, permits, UNKNOWN } from './role';

describe('roles', () => {
  const reader = callerOf({ tokens: true, name: 'viewer', role: 'reader' }, null);
  const writer = callerOf({ tokens: true, name: 'app', role: 'writer' }, null);
  const admin = callerOf({ tokens: true, name: 'ops', role: 'admin' }, null);

  it('a role may do what it and the roles under it may', () => {
    expect(permits(reader, 'reader').ok).toBe(true);
    expect(permits(reader, 'writer')).toEqual({ ok: false, reason: 'needs the writer role (this token, viewer, is a reader)' });
    expect(permits(writer, 'writer').ok).toBe(true);
    expect(permits(writer, 'admin').reason).toBe('needs the admin role (this token, app, is a writer)');
    expect(permits(admin, 'admin').ok).toBe(true);
  });

  it('without --tokens everyone is admin', () => {
    const open = callerOf({ tokens: false, name: null, role: 'admin' }, null);
    expect(permits(open, 'admin').ok).toBe(true);
  });

  it('a 401 disables with a pointer to Settings; an unknown role disables nothing', () => {
    const none = callerOf(undefined, new ApiError(401, 'unauthorized', 'missing or unknown token'));
    expect(none.unauthorized).toBe(true);
    expect(permits(none, 'reader')).toEqual({ ok: false, reason: 'needs a valid token with the reader role (set one in Settings)' });
    expect(callerOf(undefined, new ApiError(0, 'unreachable', 'down'))).toEqual(UNKNOWN);
    expect(permits(UNKNOWN, 'admin').ok).toBe(true);
    // an answer without a role we know is not trusted either way
    expect(callerOf({ tokens: true, name: 'x', role: 'root' as never }, null)).toEqual(UNKNOWN);
  });
});
