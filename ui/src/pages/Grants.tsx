// The workspace page's grants: a role on one experiment or registry given to a member (user or team), and revoked.
import { useEffect, useState } from "react";
import { api, type Experiment } from "../api";
import { Time } from "../ui";

export interface Grant { id: number; resource_type: string; resource: string | null; role: string; user?: string;
                         team?: string; created_at: number }
type Act = (fn: () => Promise<unknown>, then: () => Promise<unknown>) => Promise<void>;
/** Owner is a workspace role only: the server refuses it on one resource. */
const GRANT_ROLES = ["viewer", "editor", "maintainer"];

export function Grants({ ws, act, members }: { ws: string; act: Act; members: { kind: string; user?: string; team?: string }[] }) {
  const [grants, setGrants] = useState<Grant[]>([]);
  const [resources, setResources] = useState<{ experiment: string[]; registry: string[] }>({ experiment: [], registry: [] });
  const [type, setType] = useState<"experiment" | "registry">("experiment");
  const [resource, setResource] = useState("");
  const [who, setWho] = useState("");
  const [role, setRole] = useState("editor");
  const base = `/api/v1/workspaces/${encodeURIComponent(ws)}/grants`;
  const load = () => api<{ grants: Grant[] }>("GET", base).then((d) => setGrants(d.grants)).catch(() => setGrants([]));
  useEffect(() => {
    void load();
    void Promise.all([
      api<{ experiments: Experiment[] }>("GET", "/api/v1/experiments", undefined, { max_results: 1000 }).catch(() => ({ experiments: [] })),
      api<{ registries: { name: string }[] }>("GET", "/api/v1/registries").catch(() => ({ registries: [] })),
    ]).then(([e, r]) => setResources({ experiment: e.experiments.map((x) => x.name), registry: r.registries.map((x) => x.name) }));
  }, [ws]);
  const principals = members.map((m) => `${m.kind}:${m.user ?? m.team}`);
  const add = () => {
    const [kind, name] = [who.split(":")[0], who.split(":").slice(1).join(":")];
    return api("POST", base, { [kind]: name, resource_type: type, resource, role });
  };
  return (
    <div className="card" data-testid="grants">
      <h2>Grants</h2>
      <p className="muted small">A role on one experiment or registry, above what the member's workspace role gives.</p>
      {grants.length === 0 ? <p className="muted">No grants yet.</p> : (
        <table className="plain"><thead><tr><th>on</th><th>to</th><th>role</th><th>since</th><th><span className="sr-only">revoke</span></th></tr></thead>
          <tbody>{grants.map((g) => (
            <tr key={g.id}><td>{g.resource_type} <b>{g.resource}</b></td><td>{g.user ? "user" : "team"} {g.user ?? g.team}</td>
              <td>{g.role}</td><td><Time ms={g.created_at} /></td>
              <td><button onClick={() => void act(() => api("DELETE", `${base}/${g.id}`), load)}>
                Revoke {g.role} on {g.resource} from {g.user ?? g.team}</button></td></tr>))}</tbody></table>)}
      <div className="toolbar" style={{ marginTop: 8 }}>
        <select aria-label="grant resource type" value={type} onChange={(e) => { setType(e.target.value as typeof type); setResource(""); }}>
          <option value="experiment">experiment</option><option value="registry">registry</option></select>
        <select aria-label="grant resource" value={resource} onChange={(e) => setResource(e.target.value)}>
          <option value="">pick {type === "experiment" ? "an experiment" : "a registry"}</option>
          {resources[type].map((n) => <option key={n}>{n}</option>)}</select>
        <select aria-label="grant to" value={who} onChange={(e) => setWho(e.target.value)}>
          <option value="">pick a member</option>
          {principals.map((p) => <option key={p} value={p}>{p.replace(":", " ")}</option>)}</select>
        <select aria-label="grant role" value={role} onChange={(e) => setRole(e.target.value)}>
          {GRANT_ROLES.map((r) => <option key={r}>{r}</option>)}</select>
        <button disabled={!resource || !who} onClick={() => void act(add, load)}>Grant</button>
      </div>
    </div>
  );
}
