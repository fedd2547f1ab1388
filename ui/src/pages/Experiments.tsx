import { useState } from "react";
import { Link } from "react-router-dom";
import { api, type Experiment } from "../api";
import { useCan } from "../roles";
import { Crumbs, Empty, FirstRunSnippet, Loaded, messageOf, Time, useLoad } from "../ui";

export function ExperimentsPage() {
  const [search, setSearch] = useState("");
  const [showDeleted, setShowDeleted] = useState(false);
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const canEdit = useCan("editor");
  const canDelete = useCan("maintainer");
  const state = useLoad(async () => (await api<{ experiments: Experiment[] }>("GET", "/api/v1/experiments",
    undefined, { name_contains: search, include_deleted: showDeleted ? "true" : undefined })).experiments, [search, showDeleted]);
  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try { await fn(); await state.reload(); } catch (e) { setError(messageOf(e)); }
  };
  return (
    <div className="page">
      <Crumbs items={[{ label: "Experiments" }]} />
      <h1>Experiments</h1>
      <div className="toolbar">
        <input aria-label="search experiments" placeholder="search by name" value={search}
               onChange={(e) => setSearch(e.target.value)} />
        <label><input type="checkbox" checked={showDeleted} onChange={(e) => setShowDeleted(e.target.checked)} /> show deleted</label>
        <span className="spacer" />
        {canEdit && <>
          <input aria-label="new experiment name" placeholder="new experiment" value={name}
                 onChange={(e) => setName(e.target.value)} />
          <button className="primary" disabled={!name}
                  onClick={() => void act(async () => { await api("POST", "/api/v1/experiments", { name }); setName(""); })}>
            Create
          </button></>}
      </div>
      {error && <div className="error" role="alert">{error}</div>}
      <Loaded state={state} what="experiments">{(experiments) => experiments.length === 0 ? (
        search ? <Empty title={`No experiment matches “${search}”`}><p>Clear the search to see every experiment.</p></Empty>
          : <Empty title="No experiments yet"><FirstRunSnippet /><p className="muted">Runs appear here as they are logged.</p></Empty>
      ) : (
        <table className="plain">
          <thead><tr><th>Name</th><th className="num">Runs</th><th>Last activity</th><th>Tags</th><th><span className="sr-only">actions</span></th></tr></thead>
          <tbody>
            {experiments.map((e) => (
              <tr key={e.experiment_id}>
                <td><Link to={`/experiments/${e.experiment_id}`}>{e.name}</Link>
                  {e.lifecycle !== "active" && <span className="chip">deleted</span>}</td>
                <td className="num">{e.run_count.toLocaleString("en")}</td>
                <td><Time ms={e.last_activity} /></td>
                <td>{Object.entries(e.tags).map(([k, v]) => <span key={k} className="chip">{k}={v}</span>)}</td>
                <td>
                  {canEdit && <button onClick={() => {
                    const next = prompt("New name", e.name);
                    if (next) void act(() => api("PATCH", `/api/v1/experiments/${e.experiment_id}`, { name: next }));
                  }}>Rename</button>}{" "}
                  {!canDelete ? null : e.lifecycle === "active"
                    ? <button className="danger" onClick={() => void act(() => api("DELETE", `/api/v1/experiments/${e.experiment_id}`))}>Delete</button>
                    : <button onClick={() => void act(() => api("POST", `/api/v1/experiments/${e.experiment_id}/restore`))}>Restore</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}</Loaded>
    </div>
  );
}
