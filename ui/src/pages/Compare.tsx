import { useEffect, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { api, type Run } from "../api";
import { colorOf } from "../chart";
import { AGGREGATIONS, type Aggregation } from "../format";
import { differingParams } from "../compare";
import { Crumbs, Empty, Loaded, useLoad } from "../ui";
import { type Brushes, Overlay, Parallel } from "./RunCharts";

export function ComparePage() {
  const [query] = useSearchParams();
  const ids = (query.get("runs") ?? "").split(",").filter(Boolean).slice(0, 100);
  const state = useLoad(() => Promise.all(ids.map((id) => api<Run>("GET", `/api/v1/runs/${id}`))), [query.get("runs")]);
  return (
    <div className="page">
      <Crumbs items={[{ label: "Experiments", to: "/" }, ...(state.data?.[0] ? [{ label: state.data[0].experiment_name,
        to: `/experiments/${state.data[0].experiment_id}` }] : []), { label: "Compare" }]} />
      <Loaded state={state} what="runs">{(runs) => runs.length < 2
        ? <Empty title="Pick runs to compare"><p>Select two or more runs in an experiment's table, then press Compare.</p></Empty>
        : <Comparison runs={runs} />}</Loaded>
    </div>
  );
}

function Comparison({ runs }: { runs: Run[] }) {
  const [how, setHow] = useState<Aggregation>("last");
  const [brushes, setBrushes] = useState<Brushes>({});
  const metrics = useMemo(() => [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort(), [runs]);
  const [metric, setMetric] = useState<string | null>(null);
  useEffect(() => setMetric(null), [runs]);
  const chosen = metric ?? metrics[0] ?? null;
  const diff = useMemo(() => differingParams(runs), [runs]);
  return (
    <>
      <h1>Compare {runs.length} runs</h1>
      <div className="toolbar">
        {runs.map((r, i) => <span key={r.run_id}><span style={{ color: colorOf(i) }} aria-hidden="true">■ </span>
          <Link to={`/runs/${r.run_id}`}>{r.name}</Link></span>)}
      </div>
      <div className="charts">
        {metrics.map((m) => <Overlay key={m} runs={runs} metric={m} />)}
      </div>
      <h2>Params that differ</h2>
      {diff.length === 0 ? <p className="muted">These runs have the same params.</p> : (
        <table className="plain" data-testid="param-diff">
          <thead><tr><th>param</th>{runs.map((r) => <th key={r.run_id}>{r.name}</th>)}</tr></thead>
          <tbody>{diff.map((key) => (
            <tr key={key}><td>{key}</td>{runs.map((r) => <td key={r.run_id}>{r.params[key] ?? ""}</td>)}</tr>))}</tbody>
        </table>)}
      <h2>Params against a metric</h2>
      <div className="toolbar">
        <select aria-label="parallel metric" value={chosen ?? ""} onChange={(e) => setMetric(e.target.value)}>
          {metrics.map((m) => <option key={m}>{m}</option>)}
        </select>
        <select aria-label="parallel aggregation" value={how} onChange={(e) => setHow(e.target.value as Aggregation)}>
          {AGGREGATIONS.map((a) => <option key={a}>{a}</option>)}
        </select>
      </div>
      {chosen && <Parallel runs={runs} axes={[...diff.slice(0, 8).map((p) => `param:${p}`), `metric:${chosen}`]} how={how}
                           brushes={brushes} onBrush={setBrushes} />}
    </>
  );
}
