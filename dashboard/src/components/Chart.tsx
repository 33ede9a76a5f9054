import { useEffect, useRef } from 'react';
import uPlot, { type AlignedData, type Options } from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useStore } from '../lib/store';
import { themeStore } from '../lib/theme';

export interface ChartSeries {
  label: string;
  /** A CSS custom property holding the colour, e.g. "--c1". */
  color: string;
  values: (number | null)[];
  dash?: boolean;
}

export interface ChartProps {
  /** x: seconds since the epoch. */
  t: number[];
  series: ChartSeries[];
  height?: number;
  /** Fixed x range [min, max] in seconds (a moving window); else fit the data. */
  xRange?: [number, number];
  yMin?: number;
  yMax?: number;
  format?: (v: number) => string;
  /** Axis ticks (short); defaults to `format`. */
  axisFormat?: (v: number) => string;
  label: string;
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** x ticks in local time: HH:MM:SS over short spans, HH:MM over longer ones, with the date past a day. */
export function timeTicks(splits: number[], span: number): string[] {
  return splits.map((v) => {
    const d = new Date(v * 1000);
    const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
    if (span <= 15 * 60) return `${hm}:${two(d.getSeconds())}`;
    if (span <= 36 * 3600) return hm;
    return `${d.getMonth() + 1}/${d.getDate()} ${hm}`;
  });
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

export function Chart({ t, series, height = 180, xRange, yMin, yMax, format, axisFormat, label }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const theme = useStore(themeStore);
  const shape = series.map((s) => `${s.label}|${s.color}|${s.dash ? 1 : 0}`).join(',');
  const rangeRef = useRef(xRange);
  rangeRef.current = xRange;

  // (Re)build when the theme or the set of series changes.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const axisColor = cssVar('--muted');
    const gridColor = cssVar('--grid');
    const fmt = format ?? ((v: number) => String(v));
    const axisFmt = axisFormat ?? fmt;
    const opts: Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          range: (_u, min, max) => (rangeRef.current ? rangeRef.current : [min, max]),
        },
        y: {
          range: (_u, min, max) => {
            const lo = yMin ?? Math.min(0, min);
            let hi = yMax ?? (max > lo ? max * 1.1 : lo + 1);
            if (!Number.isFinite(hi)) hi = lo + 1;
            return [lo, hi];
          },
        },
      },
      axes: [
        {
          stroke: axisColor,
          grid: { stroke: gridColor, width: 1 },
          ticks: { stroke: gridColor },
          space: 70,
          values: (u, splits) => timeTicks(splits, (u.scales.x?.max ?? 0) - (u.scales.x?.min ?? 0)),
        },
        {
          stroke: axisColor,
          grid: { stroke: gridColor, width: 1 },
          ticks: { stroke: gridColor },
          size: 72,
          values: (_u, splits) => splits.map((v) => axisFmt(v)),
        },
      ],
      series: [
        { label: 'time' },
        ...series.map((s) => ({
          label: s.label,
          stroke: cssVar(s.color),
          width: 2,
          dash: s.dash ? [6, 4] : undefined,
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '—' : fmt(v)),
          points: { show: false },
        })),
      ],
    };
    const data = [t, ...series.map((s) => s.values)] as AlignedData;
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w > 0 && Math.abs(w - u.width) > 2) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [theme, shape, height, yMin, yMax]);

  useEffect(() => {
    plot.current?.setData([t, ...series.map((s) => s.values)] as AlignedData, true);
  });

  return <div className="chart" ref={box} role="img" aria-label={label} />;
}
