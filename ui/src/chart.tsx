import { useEffect, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api } from "./api";
import { toNumber } from "./format";

interface Buckets { first_steps: number[]; last_steps: number[]; first_timestamps: number[]; counts: number[];
                    min: (number | string | null)[];
                    max: (number | string | null)[]; mean: (number | string | null)[] }

/** A metric chart from server-side buckets (min, max and mean per bucket), refetched finer on zoom. */
export type XAxis = "step" | "time" | "relative";

export function MetricChart({ runId, metric, bestStep, log, x = "step", smoothing = 0 }: {
  runId: string; metric: string; bestStep?: number | null; log?: boolean; x?: XAxis; smoothing?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const [range, setRange] = useState<[number, number] | null>(null);
  const [drawn, setDrawn] = useState<{ points: number; ms: number } | null>(null);
  useEffect(() => {
    let plot: uPlot | null = null;
    let cancelled = false;
    const started = performance.now();
    void api<Buckets>("GET", `/api/v1/runs/${runId}/metrics/buckets`, undefined, {
      key: metric, buckets: 1000, start_step: range?.[0], end_step: range?.[1],
    }).then((data) => {
      if (cancelled || !box.current) return;
      const num = (v: number | string | null) => { const n = toNumber(v); return n === null || Number.isNaN(n) ? null : n; };
      const start = data.first_timestamps[0] ?? 0;
      const xs = x === "step" ? data.first_steps : x === "time" ? data.first_timestamps.map((t) => t / 1000)
        : data.first_timestamps.map((t) => (t - start) / 1000);
      const series: uPlot.AlignedData = [xs, smooth(data.mean.map(num), smoothing), data.min.map(num), data.max.map(num)];
      plot = new uPlot({
        width: Math.max(300, box.current.clientWidth), height: 240, title: metric,
        scales: { x: { time: x === "time" }, y: { distr: log ? 3 : 1 } },
        series: [{ label: "step" }, { label: "mean", stroke: "#1f5fbf", width: 1.5 },
                 { label: "min", stroke: "rgba(31,95,191,0.35)" }, { label: "max", stroke: "rgba(31,95,191,0.35)" }],
        bands: [{ series: [3, 2], fill: "rgba(31,95,191,0.12)" }],
        hooks: {
          setSelect: [(u) => {
            if (u.select.width < 5 || x !== "step") return;
            const lo = Math.floor(u.posToVal(u.select.left, "x"));
            const hi = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
            setRange([lo, hi]);
          }],
          draw: [(u) => {
            if (bestStep === null || bestStep === undefined || x !== "step") return;
            const at = u.valToPos(bestStep, "x", true);
            const ctx = u.ctx;
            ctx.save(); ctx.strokeStyle = "#2e7d32"; ctx.setLineDash([4, 4]);
            ctx.beginPath(); ctx.moveTo(at, u.bbox.top); ctx.lineTo(at, u.bbox.top + u.bbox.height); ctx.stroke();
            ctx.restore();
          }],
        },
      }, series, box.current);
      setDrawn({ points: data.counts.reduce((a, b) => a + b, 0), ms: Math.round(performance.now() - started) });
    });
    return () => { cancelled = true; plot?.destroy(); };
  }, [runId, metric, range, bestStep, log, x, smoothing]);
  return (
    <div className="card" data-testid={`chart-${metric}`}>
      <div ref={box} />
      <div className="muted">
        {drawn && <span data-testid="chart-drawn">{drawn.points} points drawn in {drawn.ms} ms</span>}
        {range && <> · <button onClick={() => setRange(null)}>reset zoom</button></>}
      </div>
    </div>
  );
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
