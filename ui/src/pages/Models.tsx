import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { api, ApiError } from "../api";
import { VersionCompliance } from "../conventions";
import { formatTime } from "../format";
import { useCan } from "../roles";

interface Model { name: string; registry: string; description: string; aliases: Record<string, number>;
                  latest_version: number | null }
interface Version { name: string; version: number; run_id: string | null; created_by: string; created_at: number;
                    aliases: string[]; description: string; flavor: string; tags: Record<string, string>;
                    lineage: { metrics?: Record<string, { last?: unknown; best?: unknown }>; datasets?: { name: string; digest: string }[];
                               source?: Record<string, string>; promoted_from?: { model: string; version: number } };
                    manifest: { signature?: unknown; requirements?: string[] } }
interface Move { alias: string; from_version: number | null; to_version: number | null; actor: string; reason: string;
                 time: number }
interface Request { id: number; model: string; version: number; to: string; status: string; requested_by: string;
                    comment: string }

export function ModelsPage() {
  const [models, setModels] = useState<Model[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [versions, setVersions] = useState<Version[]>([]);
  const [requests, setRequests] = useState<Request[]>([]);
  const [detail, setDetail] = useState<Version | null>(null);
  const [error, setError] = useState<string | null>(null);
  const canRequest = useCan("editor");
  const canDecide = useCan("maintainer");
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
          <AliasHistory model={open} aliases={models.find((m) => m.name === open)?.aliases ?? {}} act={act} />
          <table className="plain"><tbody>{versions.map((v) => (
            <tr key={v.version}><td><a href="#" onClick={(e) => { e.preventDefault(); setDetail(v); }}>v{v.version}</a></td>
              <td>{v.aliases.join(", ")}</td>
              <td className="muted">{v.flavor} {Object.entries(v.lineage.metrics ?? {}).slice(0, 3)
                .map(([k, m]) => `${k}=${String(m.best ?? m.last)}`).join(" ")}
                {v.lineage.promoted_from ? ` from ${v.lineage.promoted_from.model} v${v.lineage.promoted_from.version}` : ""}
                {Object.entries(v.lineage.source ?? {}).filter(([k]) => k.endsWith("commit")).map(([, c]) => ` @${c.slice(0, 8)}`)}</td>
              <td>{canDecide && <button onClick={() => {
                const alias = prompt("Alias to point at this version", "champion");
                if (alias) void act(() => api("PUT", `/api/v1/models/${encodeURIComponent(open)}/aliases/${alias}`, { version: v.version }));
              }}>Set alias</button>}</td>
              <td>{v.run_id && <Link to={`/runs/${v.run_id}`}>run</Link>}</td>
              <td>{v.created_by} {formatTime(v.created_at)}</td>
              <td>{canRequest && <button onClick={() => {
                const to = prompt("Promote to (e.g. prod.model)", `prod.${open.split(".").slice(1).join(".")}`);
                if (to) void act(() => api("POST", "/api/v1/promotion-requests", { model: open, version: v.version, to }));
              }}>Request promotion</button>}{" "}
              {canDecide && <button onClick={() => {
                const to = prompt("Promote to (e.g. prod.model)", `prod.${open.split(".").slice(1).join(".")}`);
                if (to) void act(() => api("POST", `/api/v1/models/${encodeURIComponent(open)}/versions/${v.version}/promote`, { to }));
              }}>Promote</button>}</td></tr>))}</tbody></table>
        </div>
      )}
      {detail && open && <VersionDetails v={detail} model={open} act={act} />}
      <h2>Pending promotion requests</h2>
      <table className="plain" data-testid="requests"><tbody>{requests.map((r) => (
        <tr key={r.id}><td>#{r.id}</td><td>{r.model} v{r.version} → {r.to}</td><td>by {r.requested_by}</td><td>{r.comment}</td>
          <td>{canDecide && <><button onClick={() => void act(() => api("POST", `/api/v1/promotion-requests/${r.id}/approve`, { comment: "" }))}>Approve</button>{" "}
            <button onClick={() => {
              const why = prompt("Why reject?");
              if (why) void act(() => api("POST", `/api/v1/promotion-requests/${r.id}/reject`, { comment: why }));
            }}>Reject</button></>}</td></tr>))}</tbody></table>
    </div>
  );
}

function AliasHistory({ model, aliases, act }: { model: string; aliases: Record<string, number>;
                                                 act: (fn: () => Promise<unknown>) => Promise<void> }) {
  const [moves, setMoves] = useState<Record<string, Move[]>>({});
  const canMove = useCan("maintainer");
  useEffect(() => {
    void Promise.all(Object.keys(aliases).map(async (alias) => {
      const data = await api<{ moves: Move[] }>("GET", `/api/v1/models/${encodeURIComponent(model)}/aliases/${alias}/history`);
      return [alias, data.moves] as const;
    })).then((pairs) => setMoves(Object.fromEntries(pairs)));
  }, [model, JSON.stringify(aliases)]);
  return (
    <div data-testid="alias-history">{Object.entries(moves).map(([alias, list]) => (
      <div key={alias}><b>{alias}</b> → v{aliases[alias]}{" "}
        {canMove && <button onClick={() => void act(() => api("POST", `/api/v1/models/${encodeURIComponent(model)}/aliases/${alias}/rollback`))}>
          Roll back</button>}
        <span className="muted"> {list.map((m) => `${m.from_version ?? "∅"}→${m.to_version ?? "∅"} by ${m.actor} ${formatTime(m.time)}`).join(" · ")}</span>
      </div>))}</div>
  );
}

function VersionDetails({ v, model, act }: { v: Version; model: string; act: (fn: () => Promise<unknown>) => Promise<void> }) {
  const canEdit = useCan("editor");
  const [description, setDescription] = useState(v.description);
  const [tagKey, setTagKey] = useState("");
  const [tagValue, setTagValue] = useState("");
  const path = `/api/v1/models/${encodeURIComponent(model)}/versions/${v.version}`;
  return (
    <div className="card" data-testid="version-details">
      <h2>{model} v{v.version}</h2>
      <VersionCompliance model={model} version={v.version} />
      <div>flavor {v.flavor}{v.run_id && <> · source run <Link to={`/runs/${v.run_id}`}>{v.run_id.slice(0, 8)}</Link></>}</div>
      {(v.lineage.datasets ?? []).map((d) => <div key={d.name + d.digest} className="muted">dataset {d.name} {d.digest}</div>)}
      {Object.entries(v.lineage.source ?? {}).map(([k, value]) => <div key={k} className="muted">{k.replace("cairn.source.", "")}: {value}</div>)}
      <div className="muted">metrics at registration: {Object.entries(v.lineage.metrics ?? {})
        .map(([k, m]) => `${k}=${String(m.best ?? m.last)}`).join(", ")}</div>
      {v.manifest.signature ? <pre className="muted">signature {JSON.stringify(v.manifest.signature)}</pre> : null}
      {v.manifest.requirements?.length ? <div className="muted">requirements: {v.manifest.requirements.join(", ")}</div> : null}
      <div>tags: {Object.entries(v.tags).map(([k, value]) => `${k}=${value}`).join(", ")}</div>
      {canEdit && (
        <div className="toolbar" style={{ marginTop: 8 }}>
          <input aria-label="version description" value={description} onChange={(e) => setDescription(e.target.value)} />
          <button onClick={() => void act(() => api("PATCH", path, { description }))}>Save description</button>
          <input aria-label="version tag key" placeholder="key" value={tagKey} onChange={(e) => setTagKey(e.target.value)} />
          <input aria-label="version tag value" placeholder="value" value={tagValue} onChange={(e) => setTagValue(e.target.value)} />
          <button onClick={() => void act(() => api("POST", `${path}/tags`, { [tagKey]: tagValue }))}>Set tag</button>
        </div>
      )}
    </div>
  );
}
