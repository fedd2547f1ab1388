import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api } from "./api";
import { formatNumber, INTEGER_INCREMENTS, lastValue, toNumber, valueAt } from "./format";

export interface Buckets { first_steps: number[]; last_steps: number[]; first_timestamps: number[]; counts: number[];
                           min: (number | string | null)[]; max: (number | string | null)[]; mean: (number | string | null)[] }

export const COLORS = ["#2f6fd0", "#d9480f", "#2b8a3e", "#9c36b5", "#c2255c", "#0b7285", "#5f3dc4", "#b07800",
                       "#5c940d", "#e8590c"];

export function colorOf(i: number): string {
  return COLORS[i % COLORS.length];
}

export const num = (v: number | string | null) => { const n = toNumber(v); return n === null || Number.isNaN(n) ? null : n; };

export function fetchBuckets(runId: string, key: string, buckets: number, range?: [number, number] | null): Promise<Buckets> {
  return api<Buckets>("GET", `/api/v1/runs/${runId}/metrics/buckets`, undefined, {
    key, buckets, start_step: range?.[0], end_step: range?.[1] });
}

export interface Line { label: string; color: string; values: (number | null)[]; legend?: boolean; width?: number }

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/**
 * One uPlot chart in the UI's theme, with a legend of its own: each line's last value until the cursor is over
 * the chart, then the value under the cursor. A step axis gets whole-number ticks only.
 */
export function Plot({ title, xs, lines, bands = [], integerX = false, timeX = false, log = false, height = 240,
                       onSelect, draw, xLabel = "step" }: {
  title: string; xs: number[]; lines: Line[]; bands?: [number, number][]; integerX?: boolean; timeX?: boolean;
  log?: boolean; height?: number; onSelect?: (lo: number, hi: number) => void; draw?: (u: uPlot) => void; xLabel?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [idx, setIdx] = useState<number | null>(null);
  useEffect(() => {
    if (!box.current) return;
    const axis = cssVar("--chart-axis"), grid = cssVar("--chart-grid");
    const axisStyle = { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const plot = new uPlot({
      width: Math.max(300, box.current.clientWidth), height, title,
      legend: { show: false },
      scales: { x: { time: timeX }, y: { distr: log ? 3 : 1 } },
      axes: [{ ...axisStyle, ...(integerX ? { incrs: INTEGER_INCREMENTS } : {}) }, axisStyle],
      series: [{ label: xLabel }, ...lines.map((l) => ({ label: l.label, stroke: l.color, width: l.width ?? 1.5, spanGaps: true }))],
      // the band's own tint: its edge lines' colours may already carry an alpha suffix
      bands: bands.filter(([hi, lo]) => lines[hi] && lines[lo]).map(([hi, lo]) => ({ series: [hi + 1, lo + 1] as [number, number], fill: lines[hi].color.slice(0, 7) + "26" })),
      hooks: {
        setCursor: [(u) => setIdx(u.cursor.idx ?? null)],
        setSelect: onSelect ? [(u) => {
          if (u.select.width < 5) return;
          onSelect(u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x"));
        }] : [],
        draw: draw ? [draw] : [],
      },
    }, [xs, ...lines.map((l) => l.values)] as uPlot.AlignedData, box.current);
    return () => plot.destroy();
  }, [title, xs, lines, bands, integerX, timeX, log, height, onSelect, draw, xLabel]);
  const shown = lines.filter((l) => l.legend !== false);
  return (
    <>
      <div ref={box} role="img" aria-label={`chart of ${title}`} />
      <div className="legend" data-testid="legend">
        {idx !== null && <span className="muted">{xLabel} {timeX ? new Date(xs[idx] * 1000).toISOString().slice(0, 19)
          : formatNumber(xs[idx])}</span>}
        {shown.map((l) => {
          const value = idx === null ? lastValue(l.values) : valueAt(l.values, idx);
          return <span key={l.label}><span className="swatch" style={{ background: l.color }} />{l.label}
            <span className="value">{value === null || value === undefined ? "–" : formatNumber(value)}</span></span>;
        })}
      </div>
    </>
  );
}

export type XAxis = "step" | "time" | "relative";
const BAND: [number, number][] = [[2, 1]];

/** A metric chart of one run from server-side buckets (min, max and mean per bucket), refetched finer on zoom. */
export function MetricChart({ runId, metric, bestStep, log, x = "step", smoothing = 0 }: {
  runId: string; metric: string; bestStep?: number | null; log?: boolean; x?: XAxis; smoothing?: number }) {
  const [range, setRange] = useState<[number, number] | null>(null);
  const [data, setData] = useState<{ buckets: Buckets; ms: number } | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    const started = performance.now();
    fetchBuckets(runId, metric, 1000, range).then((buckets) => {
      if (!cancelled) setData({ buckets, ms: Math.round(performance.now() - started) });
    }, (e: Error) => setFailed(e.message));
    return () => { cancelled = true; };
  }, [runId, metric, range]);
  const [xs, lines] = useLinesOf(data?.buckets ?? null, x, smoothing);
  const onSelect = useCallback((lo: number, hi: number) => { if (x === "step") setRange([Math.floor(lo), Math.ceil(hi)]); }, [x]);
  const draw = useCallback((u: uPlot) => {
    if (bestStep === null || bestStep === undefined || x !== "step") return;
    const at = u.valToPos(bestStep, "x", true);
    const ctx = u.ctx;
    ctx.save(); ctx.strokeStyle = cssVar("--ok"); ctx.setLineDash([4, 4]);
    ctx.beginPath(); ctx.moveTo(at, u.bbox.top); ctx.lineTo(at, u.bbox.top + u.bbox.height); ctx.stroke();
    ctx.restore();
  }, [bestStep, x]);
  return (
    <div className="card" data-testid={`chart-${metric}`}>
      {failed ? <div className="error" role="alert">{failed}</div>
        : !data ? <div className="state" role="status"><span className="spinner" aria-hidden="true" />Loading {metric}…</div>
        : <Plot title={metric} xs={xs} lines={lines} bands={BAND} integerX={x === "step"} timeX={x === "time"}
                log={log} onSelect={onSelect} draw={draw} xLabel={x === "step" ? "step" : "time"} />}
      <div className="muted small">
        {data && <span data-testid="chart-drawn">{data.buckets.counts.reduce((a, b) => a + b, 0)} points drawn in {data.ms} ms</span>}
        {range && <> · <button onClick={() => setRange(null)}>reset zoom</button></>}
      </div>
    </div>
  );
}

function useLinesOf(data: Buckets | null, x: XAxis, smoothing: number): [number[], Line[]] {
  // computed during render (not in an effect) so the lines always belong to the buckets being drawn
  return useMemo(() => {
    if (!data) return [[], []];
    const start = data.first_timestamps[0] ?? 0;
    const xs = x === "step" ? data.first_steps : x === "time" ? data.first_timestamps.map((t) => t / 1000)
      : data.first_timestamps.map((t) => (t - start) / 1000);
    const color = COLORS[0];
    return [xs, [{ label: "mean", color, values: smooth(data.mean.map(num), smoothing), width: 2 },
                 { label: "min", color: color + "66", values: data.min.map(num), width: 1 },
                 { label: "max", color: color + "66", values: data.max.map(num), width: 1 }]];
  }, [data, x, smoothing]);
}

/** Exponential moving average (0: none), skipping gaps. */
export function smooth(values: (number | null)[], weight: number): (number | null)[] {
  if (!weight) return values;
  let last: number | null = null;
  return values.map((v) => {
    if (v === null) return null;
    last = last === null ? v : last * weight + v * (1 - weight);
    return last;
  });
}
