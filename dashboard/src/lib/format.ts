// Formatting of the numbers the API returns. Every function takes what the API
// gives (possibly null/undefined/NaN) and returns a string fit for a table cell.

const DASH = '—';

function bad(n: unknown): n is null | undefined {
  return n === null || n === undefined || typeof n !== 'number' || !Number.isFinite(n);
}

/** 1536 → "1.5 KiB"; powers of 1024, as the node's own size options. */
export function formatBytes(n: number | null | undefined): string {
  if (bad(n)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const sign = n < 0 ? '-' : '';
  if (i === 0) return `${sign}${Math.round(v)} B`;
  return `${sign}${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}

/** Milliseconds → "0.42 ms", "12 ms", "1.20 s", "2m 05s", "3h 04m", "2d 03h". */
export function formatDuration(ms: number | null | undefined): string {
  if (bad(ms)) return DASH;
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  return formatSeconds(Math.round(s));
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function formatSeconds(total: number): string {
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (d > 0) return `${d}d ${pad2(h)}h`;
  if (h > 0) return `${h}h ${pad2(m)}m`;
  if (m > 0) return `${m}m ${pad2(s)}s`;
  return `${s}s`;
}

/** A key's TTL in seconds as the listing gives it: -1 never expires. */
export function formatTTL(seconds: number | null | undefined): string {
  if (bad(seconds)) return DASH;
  if (seconds < 0) return 'never';
  if (seconds === 0) return 'expiring';
  return formatSeconds(Math.floor(seconds));
}

/** Per-second rates: 0.5 → "0.50/s", 1234 → "1.23k/s". */
export function formatRate(perSecond: number | null | undefined, unit = '/s'): string {
  if (bad(perSecond)) return DASH;
  return `${formatCount(perSecond, perSecond < 10 ? 2 : 1)}${unit}`;
}

/** Counts with k/M/G suffixes above 10 000. */
export function formatCount(n: number | null | undefined, digits = 0): string {
  if (bad(n)) return DASH;
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(digits);
}

/** 0.9123 → "91.2%". */
export function formatPercent(ratio: number | null | undefined, digits = 1): string {
  if (bad(ratio)) return DASH;
  return `${(ratio * 100).toFixed(digits)}%`;
}

/** Epoch ms → "2026-12-02 15:50:14" in local time (UTC with utc=true). */
export function formatTime(ms: number | null | undefined, utc = false): string {
  if (bad(ms) || ms <= 0) return DASH;
  const d = new Date(ms);
  const get = utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
  const [y, mo, da, h, mi, s] = get as [number, number, number, number, number, number];
  return `${y}-${pad2(mo)}-${pad2(da)} ${pad2(h)}:${pad2(mi)}:${pad2(s)}${utc ? 'Z' : ''}`;
}

/** How long ago (or from now) an epoch-ms time is: "5s ago", "in 3m 10s". */
export function formatRelative(ms: number | null | undefined, now = Date.now()): string {
  if (bad(ms) || ms <= 0) return DASH;
  const diff = Math.round((ms - now) / 1000);
  if (diff === 0) return 'now';
  return diff > 0 ? `in ${formatSeconds(diff)}` : `${formatSeconds(-diff)} ago`;
}
