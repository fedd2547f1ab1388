import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import uPlot from "uplot";
import { api, type Run } from "../api";
import { aggregate, AGGREGATIONS, type Aggregation, formatNumber, toNumber } from "../format";
import { differingParams } from "../compare";

const COLORS = ["#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285", "#5f3dc4", "#e67700"];

interface Buckets { first_steps: number[]; mean: (number | string | null)[] }

export function ComparePage() {
  const [query] = useSearchParams();
  const ids = (query.get("runs") ?? "").split(",").filter(Boolean).slice(0, 100);
  const [runs, setRuns] = useState<Run[]>([]);
  const [how, setHow] = useState<Aggregation>("last");
  useEffect(() => {
    void Promise.all(ids.map((id) => api<Run>("GET", `/api/v1/runs/${id}`))).then(setRuns);
  }, [query.get("runs")]);
  const metrics = useMemo(() => [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort(), [runs]);
  const [metric, setMetric] = useState<string | null>(null);
  const chosen = metric ?? metrics[0] ?? null;
  const diff = useMemo(() => differingParams(runs), [runs]);
  return (
    <div className="page">
      <h1>Compare {runs.length} runs</h1>
      <div className="toolbar">
        {runs.map((r, i) => <span key={r.run_id} style={{ color: COLORS[i % COLORS.length] }}>■ <Link to={`/runs/${r.run_id}`}>{r.name}</Link></span>)}
      </div>
      <div className="charts">
        {metrics.map((m) => <Overlay key={m} runs={runs} metric={m} />)}
      </div>
      <h2>Params that differ</h2>
      <table className="plain" data-testid="param-diff">
        <thead><tr><th>param</th>{runs.map((r) => <th key={r.run_id}>{r.name}</th>)}</tr></thead>
        <tbody>{diff.map((key) => (
          <tr key={key}><td>{key}</td>{runs.map((r) => <td key={r.run_id}>{r.params[key] ?? ""}</td>)}</tr>))}</tbody>
      </table>
      <h2>Params against a metric</h2>
      <div className="toolbar">
        <select aria-label="parallel metric" value={chosen ?? ""} onChange={(e) => setMetric(e.target.value)}>
          {metrics.map((m) => <option key={m}>{m}</option>)}
        </select>
        <select aria-label="parallel aggregation" value={how} onChange={(e) => setHow(e.target.value as Aggregation)}>
          {AGGREGATIONS.map((a) => <option key={a}>{a}</option>)}
        </select>
      </div>
      {chosen && <Parallel runs={runs} params={diff} metric={chosen} how={how} />}
    </div>
  );
}

function Overlay({ runs, metric }: { runs: Run[]; metric: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let plot: uPlot | null = null;
    let cancelled = false;
    const withMetric = runs.filter((r) => r.metrics[metric]);
    void Promise.all(withMetric.map((r) => api<Buckets>("GET", `/api/v1/runs/${r.run_id}/metrics/buckets`, undefined,
                                                       { key: metric, buckets: 500 }))).then((all) => {
      if (cancelled || !box.current) return;
      const steps = [...new Set(all.flatMap((b) => b.first_steps))].sort((a, b) => a - b);
      const index = new Map(steps.map((s, i) => [s, i]));
      const lines = all.map((b) => {
        const line: (number | null)[] = new Array(steps.length).fill(null);
        b.first_steps.forEach((s, i) => { const v = toNumber(b.mean[i]); line[index.get(s)!] = v === null || Number.isNaN(v) ? null : v; });
        return line;
      });
      plot = new uPlot({
        width: Math.max(300, box.current.clientWidth), height: 220, title: metric, scales: { x: { time: false } },
        series: [{ label: "step" }, ...withMetric.map((r, i) => ({ label: r.name, stroke: COLORS[i % COLORS.length], spanGaps: true }))],
      }, [steps, ...lines] as uPlot.AlignedData, box.current);
    });
    return () => { cancelled = true; plot?.destroy(); };
  }, [runs, metric]);
  return <div className="card" data-testid={`overlay-${metric}`}><div ref={box} /></div>;
}

function Parallel({ runs, params, metric, how }: { runs: Run[]; params: string[]; metric: string; how: Aggregation }) {
  const axes = [...params.slice(0, 8), `${metric} (${how})`];
  const values = runs.map((r) => [...params.slice(0, 8).map((p) => toNumber(r.params[p] ?? null)),
                                  aggregate(r.metrics[metric], how).value]);
  const width = 160 * axes.length, height = 240;
  const scale = axes.map((_, a) => {
    const column = values.map((v) => v[a]).filter((v): v is number => v !== null && Number.isFinite(v));
    const lo = Math.min(...column), hi = Math.max(...column);
    return (v: number | null) => (v === null || !Number.isFinite(v) ? null : hi === lo ? height / 2 : 20 + (1 - (v - lo) / (hi - lo)) * (height - 40));
  });
  return (
    <svg width={width} height={height} className="card" data-testid="parallel">
      {axes.map((name, a) => (
        <g key={name}><line x1={80 + a * 160} x2={80 + a * 160} y1={20} y2={height - 20} stroke="#9aa4b2" />
          <text x={80 + a * 160} y={12} textAnchor="middle" fontSize={11}>{name}</text></g>))}
      {values.map((v, r) => {
        const points = v.map((x, a) => [80 + a * 160, scale[a](x)] as const).filter(([, y]) => y !== null);
        return <polyline key={r} fill="none" stroke={COLORS[r % COLORS.length]} strokeWidth={1.5}
                         points={points.map(([x, y]) => `${x},${y}`).join(" ")}>
          <title>{runs[r].name}: {formatNumber(v[v.length - 1])}</title></polyline>;
      })}
    </svg>
  );
}
