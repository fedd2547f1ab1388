import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { api, ApiError, type Experiment } from "../api";
import { formatTime } from "../format";
import { useCan } from "../roles";

export function ExperimentsPage() {
  const [experiments, setExperiments] = useState<Experiment[]>([]);
  const [search, setSearch] = useState("");
  const [showDeleted, setShowDeleted] = useState(false);
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const canEdit = useCan("editor");
  const canDelete = useCan("maintainer");
  const load = async () => {
    const data = await api<{ experiments: Experiment[] }>("GET", "/api/v1/experiments",
      undefined, { name_contains: search, include_deleted: showDeleted ? "true" : undefined });
    setExperiments(data.experiments);
  };
  useEffect(() => { void load(); }, [search, showDeleted]);
  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try { await fn(); await load(); } catch (e) { setError(e instanceof ApiError ? e.message : String(e)); }
  };
  return (
    <div className="page">
      <h1>Experiments</h1>
      <div className="toolbar">
        <input aria-label="search experiments" placeholder="search by name" value={search}
               onChange={(e) => setSearch(e.target.value)} />
        <label><input type="checkbox" checked={showDeleted} onChange={(e) => setShowDeleted(e.target.checked)} /> deleted</label>
        <span className="spacer" />
        {canEdit && <>
          <input aria-label="new experiment name" placeholder="new experiment" value={name}
                 onChange={(e) => setName(e.target.value)} />
          <button onClick={() => void act(async () => { await api("POST", "/api/v1/experiments", { name }); setName(""); })}>
            Create
          </button></>}
      </div>
      {error && <div className="error" role="alert">{error}</div>}
      <table className="plain">
        <thead><tr><th>Name</th><th>Runs</th><th>Last activity</th><th>Tags</th><th /></tr></thead>
        <tbody>
          {experiments.map((e) => (
            <tr key={e.experiment_id}>
              <td><Link to={`/experiments/${e.experiment_id}`}>{e.name}</Link></td>
              <td>{e.run_count}</td>
              <td>{formatTime(e.last_activity)}</td>
              <td>{Object.entries(e.tags).map(([k, v]) => `${k}=${v}`).join(", ")}</td>
              <td>
                {canEdit && <button onClick={() => {
                  const next = prompt("New name", e.name);
                  if (next) void act(() => api("PATCH", `/api/v1/experiments/${e.experiment_id}`, { name: next }));
                }}>Rename</button>}{" "}
                {!canDelete ? null : e.lifecycle === "active"
                  ? <button onClick={() => void act(() => api("DELETE", `/api/v1/experiments/${e.experiment_id}`))}>Delete</button>
                  : <button onClick={() => void act(() => api("POST", `/api/v1/experiments/${e.experiment_id}/restore`))}>Restore</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
