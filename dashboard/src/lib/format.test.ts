import { describe, expect, it } from 'vitest';
import { formatBytes, formatCount, formatDuration, formatPercent, formatRate, formatRelative, formatTTL, formatTime } from './format';

describe('formatBytes', () => {
  it('uses powers of 1024', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.00 KiB');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(512 * 1024 * 1024)).toBe('512 MiB');
    expect(formatBytes(12.5 * 1024 ** 3)).toBe('12.5 GiB');
  });
  it('shows a dash for what is not a number', () => {
    expect(formatBytes(null)).toBe('—');
    expect(formatBytes(undefined)).toBe('—');
    expect(formatBytes(NaN)).toBe('—');
  });
});

describe('formatDuration', () => {
  it('keeps sub-millisecond latencies readable', () => {
    expect(formatDuration(0.375)).toBe('0.38 ms');
    expect(formatDuration(2.5)).toBe('2.5 ms');
    expect(formatDuration(42.4)).toBe('42 ms');
  });
  it('switches to seconds, minutes, hours, days', () => {
    expect(formatDuration(1200)).toBe('1.20 s');
    expect(formatDuration(12_345)).toBe('12.3 s');
    expect(formatDuration(125_000)).toBe('2m 05s');
    expect(formatDuration(3 * 3600_000 + 4 * 60_000)).toBe('3h 04m');
    expect(formatDuration(2 * 86400_000 + 3 * 3600_000)).toBe('2d 03h');
  });
});

describe('formatTTL', () => {
  it('reads -1 as never and counts down the rest', () => {
    expect(formatTTL(-1)).toBe('never');
    expect(formatTTL(0)).toBe('expiring');
    expect(formatTTL(59)).toBe('59s');
    expect(formatTTL(600)).toBe('10m 00s');
    expect(formatTTL(90061)).toBe('1d 01h');
    expect(formatTTL(undefined)).toBe('—');
  });
});

describe('rates, counts, percentages', () => {
  it('formats rates per second', () => {
    expect(formatRate(0)).toBe('0/s');
    expect(formatRate(0.5)).toBe('0.50/s');
    expect(formatRate(19.6)).toBe('19.6/s');
    expect(formatRate(12345)).toBe('12.3k/s');
    expect(formatRate(2_500_000)).toBe('2.50M/s');
  });
  it('formats counts', () => {
    expect(formatCount(9999)).toBe('9999');
    expect(formatCount(20000)).toBe('20.0k');
    expect(formatCount(3.14159, 1)).toBe('3.1');
  });
  it('formats ratios as percentages', () => {
    expect(formatPercent(0.9123)).toBe('91.2%');
    expect(formatPercent(1)).toBe('100.0%');
    expect(formatPercent(null)).toBe('—');
  });
});

describe('times', () => {
  it('formats epoch ms in UTC', () => {
    expect(formatTime(1796226614542, true)).toBe('2026-12-02 15:50:14Z');
    expect(formatTime(0)).toBe('—');
  });
  it('says how long ago or ahead', () => {
    const now = 1_000_000_000_000;
    expect(formatRelative(now - 5000, now)).toBe('5s ago');
    expect(formatRelative(now + 190_000, now)).toBe('in 3m 10s');
    expect(formatRelative(now, now)).toBe('now');
  });
});
