import { useContext, useEffect, useState } from "react";
import { api, ApiError, workspace } from "../api";
import { ConventionsSection } from "../conventions";
import { Link } from "react-router-dom";
import { Crumbs, Empty, Time } from "../ui";
import { StandingContext, useCan } from "../roles";
import { Grants } from "./Grants";

interface Member { kind: string; user?: string; team?: string; role: string }
interface Token { id: string; name: string; scope: string; created_at: number; expires_at: number | null;
                  revoked_at: number | null; last_used_at: number | null; token?: string }
interface Event { id: number; time: number; actor: string; action: string; object_type: string; object_id: string;
                  after: unknown; client_addr: string }
const ROLES = ["viewer", "editor", "maintainer", "owner"];

export function AdminPage() {
  const ws = workspace() ?? "default";
  const owner = useCan("owner");
  const { admin, auth = true } = useContext(StandingContext);
  const [error, setError] = useState<string | null>(null);
  const act = async (fn: () => Promise<unknown>, then: () => Promise<unknown>) => {
    setError(null);
    try { await fn(); await then(); } catch (e) { setError(e instanceof ApiError ? e.message : String(e)); }
  };
  return (
    <div className="page">
      <Crumbs items={[{ label: "Workspace" }, { label: ws }]} />
      <h1>Workspace {ws}</h1>
      {error && <div className="error" role="alert">{error}</div>}
      {!auth ? (
        <Empty title="This server runs without sign-in" testId="no-auth">
          <p>Everything here belongs to you, so there are no members, teams or tokens to manage. Start the server
            with <code>cairn server --auth</code> to share it with a team.</p>
        </Empty>
      ) : <>
        {owner ? <Members ws={ws} act={act} /> : <div className="muted">Owners manage members.</div>}
        <ConventionsSection />
        <Tokens act={act} />
        {admin && <ServerAdmin act={act} />}
        {owner && <Audit />}
      </>}
    </div>
  );
}

type Act = (fn: () => Promise<unknown>, then: () => Promise<unknown>) => Promise<void>;

function Members({ ws, act }: { ws: string; act: Act }) {
  const [members, setMembers] = useState<Member[]>([]);
  const [kind, setKind] = useState<"user" | "team">("user");
  const [user, setUser] = useState("");
  const [role, setRole] = useState("viewer");
  const load = () => api<{ members: Member[] }>("GET", `/api/v1/workspaces/${ws}/members`).then((d) => setMembers(d.members))
    .catch(() => setMembers([]));
  useEffect(() => { void load(); }, [ws]);
  const path = (m: Member) => `/api/v1/workspaces/${ws}/members/${m.kind === "team" ? "teams" : "users"}/${m.user ?? m.team}`;
  return (
    <>
    <div className="card">
      <h2>Members</h2>
      <p className="muted small">People and teams of this workspace; a team's members get its role.</p>
      <table className="plain"><tbody>{members.map((m) => (
        <tr key={`${m.kind}:${m.user ?? m.team}`}><td>{m.kind}</td><td>{m.user ?? m.team}</td>
          <td><select aria-label={`role of ${m.user ?? m.team}`} value={m.role}
                      onChange={(e) => void act(() => api("PATCH", path(m), { role: e.target.value }), load)}>
            {ROLES.map((r) => <option key={r}>{r}</option>)}</select></td>
          <td><button onClick={() => void act(() => api("DELETE", path(m)), load)}>Remove</button></td></tr>))}</tbody></table>
      <div className="toolbar" style={{ marginTop: 8 }}>
        <select aria-label="new member kind" value={kind} onChange={(e) => setKind(e.target.value as typeof kind)}>
          <option value="user">user</option><option value="team">team</option></select>
        <input aria-label="member name" placeholder={kind} value={user} onChange={(e) => setUser(e.target.value)} />
        <select aria-label="new member role" value={role} onChange={(e) => setRole(e.target.value)}>
          {ROLES.map((r) => <option key={r}>{r}</option>)}</select>
        <button onClick={() => void act(() => api("POST", `/api/v1/workspaces/${ws}/members`, { [kind]: user, role }), load)}>Add member</button>
      </div>
    </div>
    <Grants ws={ws} act={act} members={members} />
    </>
  );
}

function Tokens({ act }: { act: Act }) {
  const [tokens, setTokens] = useState<Token[]>([]);
  const [name, setName] = useState("");
  const [scope, setScope] = useState("write");
  const [fresh, setFresh] = useState<string | null>(null);
  const load = () => api<{ tokens: Token[] }>("GET", "/api/v1/tokens").then((d) => setTokens(d.tokens)).catch(() => setTokens([]));
  useEffect(() => { void load(); }, []);
  return (
    <div className="card">
      <h2>Your API tokens</h2>
      {tokens.length === 0 ? <p className="muted" data-testid="tokens">No tokens yet. Create one for scripts and CI:
        it is shown once, so copy it then.</p> : <table className="plain" data-testid="tokens"><tbody>{tokens.map((t) => (
        <tr key={t.id}><td>{t.name}</td><td>{t.scope}</td><td>created <Time ms={t.created_at} /></td>
          <td>{t.expires_at ? <>expires <Time ms={t.expires_at} /></> : "never expires"}</td>
          <td>{t.last_used_at ? <>used <Time ms={t.last_used_at} /></> : <span className="muted">never used</span>}</td>
          <td>{t.revoked_at ? "revoked" : <button onClick={() => void act(() => api("DELETE", `/api/v1/tokens/${t.id}`), load)}>
            Revoke {t.name}</button>}</td></tr>))}</tbody></table>}
      <div className="toolbar" style={{ marginTop: 8 }}>
        <input aria-label="token name" placeholder="what it is for" value={name} onChange={(e) => setName(e.target.value)} />
        <select aria-label="token scope" value={scope} onChange={(e) => setScope(e.target.value)}>
          {["read", "write"].map((s) => <option key={s}>{s}</option>)}</select>
        <button onClick={() => void act(async () => {
          const made = await api<Token>("POST", "/api/v1/tokens", { name, scope, expires_in: 90 * 86400 });
          setFresh(made.token ?? null); setName("");
        }, load)}>Create token</button>
      </div>
      {fresh && <div className="card" data-testid="new-token">Copy it now; it is not shown again: <code>{fresh}</code></div>}
    </div>
  );
}

/** An audit entry's object, linked to its page when it has one. */
function ObjectLink({ type, id }: { type: string; id: string }) {
  const to = type === "run" ? `/runs/${id}` : type === "experiment" ? `/experiments/${id}`
    : type === "model" || type === "registered_model" ? `/models/${encodeURIComponent(id)}`
    : type === "model_version" || type === "alias" ? `/models/${encodeURIComponent(id.split(/[/@:]/)[0])}` : null;
  return to ? <Link to={to}>{type}:{id}</Link> : <span>{type}:{id}</span>;
}

function Audit() {
  const [events, setEvents] = useState<Event[] | null>(null);
  const [action, setAction] = useState("");
  const [since, setSince] = useState("7d");
  const [actor, setActor] = useState("");
  const [objectType, setObjectType] = useState("");
  const load = () => api<{ events: Event[] }>("GET", "/api/v1/events", undefined,
    { action: action || undefined, actor: actor || undefined, object_type: objectType || undefined, since, max_results: 500 }).then((d) => setEvents(d.events)).catch(() => setEvents(null));
  useEffect(() => { void load(); }, []);
  return (
    <div className="card">
      <h2>Audit log</h2>
      <div className="toolbar">
        <input aria-label="audit action" placeholder="action, e.g. promotion.*" value={action} onChange={(e) => setAction(e.target.value)} />
        <input aria-label="audit actor" placeholder="actor" value={actor} onChange={(e) => setActor(e.target.value)} />
        <input aria-label="audit object type" placeholder="object type, e.g. run" value={objectType} onChange={(e) => setObjectType(e.target.value)} />
        <input aria-label="audit since" title="how far back: 7d, 12h, or a date" value={since} onChange={(e) => setSince(e.target.value)} />
        <button onClick={() => void load()}>Show</button>
      </div>
      {events === null ? <div className="muted">Only owners read the audit log.</div> : (
        <table className="plain" data-testid="audit"><tbody>{events.map((e) => (
          <tr key={e.id}><td><Time ms={e.time} /></td><td>{e.actor}</td><td><code>{e.action}</code></td>
            <td><ObjectLink type={e.object_type} id={e.object_id} /></td><td className="muted">{JSON.stringify(e.after)}</td><td>{e.client_addr}</td></tr>))}
        </tbody></table>)}
    </div>
  );
}

interface User { name: string; admin: boolean; service: boolean; disabled: boolean }
interface Team { name: string; members: string[] }

function ServerAdmin({ act }: { act: Act }) {
  const [users, setUsers] = useState<User[]>([]);
  const [teams, setTeams] = useState<Team[]>([]);
  const [service, setService] = useState("");
  const [team, setTeam] = useState("");
  const [issued, setIssued] = useState<string | null>(null);
  const load = async () => {
    setUsers((await api<{ users: User[] }>("GET", "/api/v1/users")).users);
    setTeams((await api<{ teams: Team[] }>("GET", "/api/v1/teams")).teams);
  };
  useEffect(() => { void load(); }, []);
  return (
    <div className="card" data-testid="server-admin">
      <h2>Users and service accounts</h2>
      <table className="plain"><tbody>{users.map((u) => (
        <tr key={u.name}><td>{u.name}</td><td>{u.admin ? "admin" : ""}{u.service ? "service account" : ""}</td>
          <td>{u.disabled ? "disabled" : ""}</td>
          <td>{u.service && <button onClick={() => void act(async () => {
            const made = await api<{ token: string }>("POST", "/api/v1/tokens", { name: "from-ui", scope: "write", user: u.name,
                                                                                 expires_in: 90 * 86400 });
            setIssued(made.token);
          }, load)}>New token for {u.name}</button>}</td>
          <td><button onClick={() => void act(() => api("PATCH", `/api/v1/users/${u.name}`, { disabled: !u.disabled }), load)}>
            {u.disabled ? "Enable" : "Disable"}</button></td></tr>))}</tbody></table>
      {issued && <div className="card">Copy it now; it is not shown again: <code>{issued}</code></div>}
      <div className="toolbar" style={{ marginTop: 8 }}>
        <input aria-label="service account name" placeholder="service account" value={service} onChange={(e) => setService(e.target.value)} />
        <button onClick={() => void act(() => api("POST", "/api/v1/users", { name: service, service: true }), load)}>Create service account</button>
      </div>
      <h2>Teams</h2>
      <table className="plain"><tbody>{teams.map((t) => <tr key={t.name}><td>{t.name}</td><td>{t.members.join(", ")}</td></tr>)}</tbody></table>
      <div className="toolbar" style={{ marginTop: 8 }}>
        <input aria-label="team name" placeholder="team" value={team} onChange={(e) => setTeam(e.target.value)} />
        <button onClick={() => void act(() => api("POST", "/api/v1/teams", { name: team }), load)}>Create team</button>
      </div>
    </div>
  );
}
