import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { api, ApiError } from "../api";
import { formatTime } from "../format";

interface Model { name: string; registry: string; description: string; aliases: Record<string, number>;
                  latest_version: number | null }
interface Version { name: string; version: number; run_id: string | null; created_by: string; created_at: number;
                    aliases: string[] }
interface Request { id: number; model: string; version: number; to: string; status: string; requested_by: string;
                    comment: string }

export function ModelsPage() {
  const [models, setModels] = useState<Model[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [versions, setVersions] = useState<Version[]>([]);
  const [requests, setRequests] = useState<Request[]>([]);
  const [error, setError] = useState<string | null>(null);
  const load = async () => {
    setModels((await api<{ models: Model[] }>("GET", "/api/v1/models")).models);
    setRequests((await api<{ requests: Request[] }>("GET", "/api/v1/promotion-requests", undefined,
                                                    { status: "pending" })).requests);
  };
  useEffect(() => { void load(); }, []);
  useEffect(() => {
    if (open) void api<{ versions: Version[] }>("GET", `/api/v1/models/${encodeURIComponent(open)}/versions`)
      .then((d) => setVersions(d.versions));
  }, [open]);
  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try { await fn(); await load(); if (open) setOpen(open); } catch (e) { setError(e instanceof ApiError ? e.message : String(e)); }
  };
  return (
    <div className="page">
      <h1>Models</h1>
      {error && <div className="error" role="alert">{error}</div>}
      <table className="plain">
        <thead><tr><th>Model</th><th>Latest</th><th>Aliases</th></tr></thead>
        <tbody>{models.map((m) => (
          <tr key={m.name}><td><a href="#" onClick={(e) => { e.preventDefault(); setOpen(m.name); }}>{m.name}</a></td>
            <td>{m.latest_version ?? ""}</td>
            <td>{Object.entries(m.aliases).map(([a, v]) => `${a} → v${v}`).join(", ")}</td></tr>))}</tbody>
      </table>
      {open && (
        <div className="card" data-testid="versions">
          <h2>{open}</h2>
          <table className="plain"><tbody>{versions.map((v) => (
            <tr key={v.version}><td>v{v.version}</td><td>{v.aliases.join(", ")}</td>
              <td>{v.run_id && <Link to={`/runs/${v.run_id}`}>run</Link>}</td>
              <td>{v.created_by} {formatTime(v.created_at)}</td>
              <td><button onClick={() => {
                const to = prompt("Promote to (e.g. prod.model)", `prod.${open.split(".").slice(1).join(".")}`);
                if (to) void act(() => api("POST", "/api/v1/promotion-requests", { model: open, version: v.version, to }));
              }}>Request promotion</button></td></tr>))}</tbody></table>
        </div>
      )}
      <h2>Pending promotion requests</h2>
      <table className="plain" data-testid="requests"><tbody>{requests.map((r) => (
        <tr key={r.id}><td>#{r.id}</td><td>{r.model} v{r.version} → {r.to}</td><td>by {r.requested_by}</td><td>{r.comment}</td>
          <td><button onClick={() => void act(() => api("POST", `/api/v1/promotion-requests/${r.id}/approve`, { comment: "" }))}>Approve</button>{" "}
            <button onClick={() => {
              const why = prompt("Why reject?");
              if (why) void act(() => api("POST", `/api/v1/promotion-requests/${r.id}/reject`, { comment: why }));
            }}>Reject</button></td></tr>))}</tbody></table>
    </div>
  );
}
