// The experiment page's charts: pick metrics to overlay for the selected (or visible) runs, group them, scatter
// one value against another, and brush parallel coordinates to filter the table.
import { useState } from "react";
import type { Run } from "../api";
import type { Aggregation } from "../format";
import { type Brushes, Overlay, Parallel, Scatter } from "./RunCharts";

export function ChartsPanel({ runs, all, metricKeys, paramKeys, tagKeys, how, brushes, onBrush, from }: {
  runs: Run[]; all: Run[]; metricKeys: string[]; paramKeys: string[]; tagKeys: string[]; how: Aggregation;
  brushes: Brushes; onBrush: (b: Brushes) => void; from: "selected" | "visible" }) {
  const [metrics, setMetrics] = useState<string[]>(metricKeys.slice(0, 1));
  const [group, setGroup] = useState("");
  const [drawn, setDrawn] = useState<number | null>(null);
  const values = [...metricKeys.map((k) => `metric:${k}`), ...paramKeys.map((k) => `param:${k}`)];
  const [x, setX] = useState(values.find((v) => v.startsWith("param:")) ?? values[0] ?? "");
  const [y, setY] = useState(values[0] ?? "");
  const [target, setTarget] = useState(metricKeys[0] ?? "");
  const numericParams = paramKeys.filter((p) => all.some((r) => r.params[p] !== undefined && !Number.isNaN(Number(r.params[p]))));
  const axes = [...numericParams.slice(0, 8).map((p) => `param:${p}`), ...(target ? [`metric:${target}`] : [])];
  if (!metricKeys.length) return null;
  return (
    <section aria-label="charts across runs">
      <h2>Charts <span className="muted small">{runs.length} {from} runs{from === "visible" ? " (select runs to chart only those)" : ""}</span></h2>
      <fieldset className="toolbar card" data-testid="metric-picker">
        <legend className="small">Metrics to overlay</legend>
        {metricKeys.map((m) => (
          <label key={m}><input type="checkbox" aria-label={`chart ${m}`} checked={metrics.includes(m)}
                                onChange={() => setMetrics(metrics.includes(m) ? metrics.filter((k) => k !== m) : [...metrics, m])} /> {m}</label>))}
        <label>grouped by <select aria-label="overlay grouping" value={group} onChange={(e) => setGroup(e.target.value)}>
          <option value="">each run</option>
          {[...paramKeys.map((k) => `param:${k}`), ...tagKeys.map((k) => `tag:${k}`)].map((g) => <option key={g}>{g}</option>)}
        </select></label>
        {drawn !== null && <span className="muted small" data-testid="overlay-drawn">drawn in {drawn} ms</span>}
      </fieldset>
      <div className="charts">
        {metrics.map((m) => <Overlay key={m} runs={runs} metric={m} groupBy={group || null} onDrawn={setDrawn} />)}
      </div>
      <div className="charts">
        <div>
          <h3>Scatter</h3>
          <div className="toolbar">
            <label>x <select aria-label="scatter x" value={x} onChange={(e) => setX(e.target.value)}>
              {values.map((v) => <option key={v}>{v}</option>)}</select></label>
            <label>y <select aria-label="scatter y" value={y} onChange={(e) => setY(e.target.value)}>
              {values.map((v) => <option key={v}>{v}</option>)}</select></label>
          </div>
          {x && y && <Scatter runs={all} x={x} y={y} how={how} />}
        </div>
        <div>
          <h3>Parallel coordinates</h3>
          <div className="toolbar">
            <label>metric <select aria-label="parallel metric" value={target} onChange={(e) => setTarget(e.target.value)}>
              {metricKeys.map((m) => <option key={m}>{m}</option>)}</select></label>
          </div>
          <Parallel runs={all} axes={axes} how={how} brushes={brushes} onBrush={onBrush} />
        </div>
      </div>
    </section>
  );
}
