// The run page's "compare params with": pick another run of the same experiment, see both runs' params side by side.
import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { api, type Run } from "../api";

export interface ParamRow { key: string; mine: string | undefined; theirs: string | undefined; same: boolean }

/** Every param of either run, in key order, marked same or different (a param only one run has differs). */
export function paramDiff(mine: Record<string, string>, theirs: Record<string, string>): ParamRow[] {
  return [...new Set([...Object.keys(mine), ...Object.keys(theirs)])].sort().map((key) =>
    ({ key, mine: mine[key], theirs: theirs[key], same: mine[key] === theirs[key] }));
}

export function ParamCompare({ run }: { run: Run }) {
  const [others, setOthers] = useState<Run[] | null>(null);
  const [otherId, setOtherId] = useState("");
  const [onlyDiff, setOnlyDiff] = useState(false);
  useEffect(() => {
    void api<{ runs: Run[] }>("POST", "/api/v1/runs/search", { experiment_ids: [run.experiment_id], max_results: 500,
                                                             order_by: ["attributes.start_time DESC"] })
      .then((d) => setOthers(d.runs.filter((r) => r.run_id !== run.run_id))).catch(() => setOthers([]));
  }, [run.experiment_id, run.run_id]);
  if (!others?.length) return null;
  const other = others.find((r) => r.run_id === otherId);
  const rows = other ? paramDiff(run.params, other.params) : [];
  const differing = rows.filter((r) => !r.same).length;
  return (
    <div className="card" data-testid="param-compare">
      <div className="toolbar">
        <label>Compare params with <select aria-label="compare params with run" value={otherId}
                                           onChange={(e) => setOtherId(e.target.value)}>
          <option value="">pick a run of {run.experiment_name}</option>
          {others.map((r) => <option key={r.run_id} value={r.run_id}>{r.name} ({r.run_id.slice(0, 8)})</option>)}
        </select></label>
        {other && <label><input type="checkbox" checked={onlyDiff} onChange={(e) => setOnlyDiff(e.target.checked)} /> only differences</label>}
        {other && <span className="muted small" data-testid="param-differences">{differing} of {rows.length} params differ</span>}
      </div>
      {other && (
        <table className="plain">
          <thead><tr><th>param</th><th>{run.name} (this run)</th><th><Link to={`/runs/${other.run_id}`}>{other.name}</Link></th></tr></thead>
          <tbody>{rows.filter((r) => !onlyDiff || !r.same).map((r) => (
            <tr key={r.key} className={r.same ? undefined : "differs"} data-differs={!r.same || undefined}>
              <td>{r.key}</td><td>{r.mine ?? <span className="muted">not set</span>}</td>
              <td>{r.theirs ?? <span className="muted">not set</span>}</td></tr>))}</tbody>
        </table>)}
    </div>
  );
}
