import { useState } from "react";
import { Link, useParams } from "react-router-dom";
import { api } from "../api";
import { VersionCompliance } from "../conventions";
import { formatNumber, toNumber } from "../format";
import { Signature } from "../preview";
import { useCan } from "../roles";
import { CopyId, Crumbs, Empty, Failed, Loaded, messageOf, Time, useLoad } from "../ui";

interface Model { name: string; registry: string; description: string; aliases: Record<string, number>;
                  latest_version: number | null }
type Metrics = Record<string, { last?: unknown; best?: unknown; min?: unknown; max?: unknown }>;
interface Version { name: string; version: number; run_id: string | null; created_by: string; created_at: number;
                    aliases: string[]; description: string; flavor: string; tags: Record<string, string>;
                    lineage: { metrics?: Metrics; datasets?: { name: string; digest: string }[];
                               source?: Record<string, string>; promoted_from?: { model: string; version: number } };
                    manifest: { signature?: unknown; requirements?: string[] } }
interface Move { alias: string; from_version: number | null; to_version: number | null; actor: string; reason: string;
                 time: number }
interface Request { id: number; model: string; version: number; to: string; status: string; requested_by: string;
                    comment: string; created_at?: number }
const enc = encodeURIComponent;
const shown = (m: { last?: unknown; best?: unknown } | undefined) =>
  m === undefined ? "" : formatNumber(toNumber((m.best ?? m.last) as number | string | null));

export function ModelsPage() {
  const models = useLoad(async () => (await api<{ models: Model[] }>("GET", "/api/v1/models")).models, []);
  return (
    <div className="page">
      <Crumbs items={[{ label: "Models" }]} />
      <h1>Models</h1>
      <Loaded state={models} what="models">{(list) => list.length === 0 ? (
        <Empty title="No registered models yet">
          <p>Log a model from a run and register it in one call:</p>
          <pre>{`with cairn.start_run("my-experiment") as run:
    run.log_model(model, "model", registered_model_name="dev.my-model")`}</pre>
        </Empty>
      ) : (
        <table className="plain">
          <thead><tr><th>Model</th><th>Registry</th><th className="num">Latest</th><th>Aliases</th><th>Description</th></tr></thead>
          <tbody>{list.map((m) => (
            <tr key={m.name}><td><Link to={`/models/${enc(m.name)}`}>{m.name}</Link></td><td>{m.registry}</td>
              <td className="num">{m.latest_version ? `v${m.latest_version}` : ""}</td>
              <td>{Object.entries(m.aliases).map(([a, v]) => <span key={a} className="chip">{a} → v{v}</span>)}</td>
              <td className="muted">{m.description}</td></tr>))}</tbody>
        </table>
      )}</Loaded>
      <Inbox />
    </div>
  );
}

/** Pending promotion requests: a reviewer approves or rejects each, seeing its metrics beside the champion's. */
function Inbox({ model, reloadModel, tick = 0 }: { model?: string; reloadModel?: () => Promise<void>; tick?: number }) {
  const requests = useLoad(async () => (await api<{ requests: Request[] }>("GET", "/api/v1/promotion-requests", undefined,
    { status: "pending" })).requests.filter((r) => !model || r.model === model), [model, tick]);
  const canDecide = useCan("maintainer");
  const [error, setError] = useState<string | null>(null);
  const [comment, setComment] = useState<Record<number, string>>({});
  const decide = async (r: Request, how: "approve" | "reject") => {
    setError(null);
    try {
      await api("POST", `/api/v1/promotion-requests/${r.id}/${how}`, { comment: comment[r.id] ?? "" });
      await requests.reload();
      await reloadModel?.();
    } catch (e) { setError(messageOf(e)); }
  };
  return (
    <section aria-label="promotion requests">
      <h2>Pending promotion requests</h2>
      {error && <div className="error" role="alert">{error}</div>}
      <Loaded state={requests} what="requests">{(list) => list.length === 0
        ? <p className="muted" data-testid="requests">Nothing waits for review. Requests to promote a version into a protected registry appear here.</p>
        : <table className="plain" data-testid="requests">
          <thead><tr><th>#</th><th>Request</th><th>By</th><th>Comment</th><th>Against the champion</th><th><span className="sr-only">decision</span></th></tr></thead>
          <tbody>{list.map((r) => (
          <tr key={r.id}><td>#{r.id}</td><td><Link to={`/models/${enc(r.model)}`}>{r.model} v{r.version}</Link> → {r.to}</td>
            <td>{r.requested_by}</td><td>{r.comment}</td><td><ChampionDiff request={r} /></td>
            <td>{canDecide && <div className="toolbar">
              <input aria-label={`comment on request ${r.id}`} placeholder="comment" value={comment[r.id] ?? ""}
                     onChange={(e) => setComment({ ...comment, [r.id]: e.target.value })} />
              <button className="primary" onClick={() => void decide(r, "approve")}>Approve</button>
              <button className="danger" onClick={() => void decide(r, "reject")}>Reject</button></div>}</td></tr>))}</tbody>
        </table>}</Loaded>
    </section>
  );
}

/** The requested version's metrics at registration beside those of the target model's champion, if it has one. */
function ChampionDiff({ request }: { request: Request }) {
  const state = useLoad(async () => {
    const mine = await api<Version>("GET", `/api/v1/models/${enc(request.model)}/versions/${request.version}`);
    // read from the list, not asked by name: a model not yet created would answer 404 (a console error)
    const target = (await api<{ models: Model[] }>("GET", "/api/v1/models")).models.find((m) => m.name === request.to);
    const at = target?.aliases.champion;
    const champion = at ? await api<Version>("GET", `/api/v1/models/${enc(request.to)}/versions/${at}`) : null;
    return { mine, champion };
  }, [request.id]);
  if (!state.data) return null;
  const { mine, champion } = state.data;
  const keys = [...new Set([...Object.keys(mine.lineage.metrics ?? {}), ...Object.keys(champion?.lineage.metrics ?? {})])];
  if (!keys.length) return <span className="muted">no metrics</span>;
  return (
    <table className="plain small" data-testid="champion-diff">
      <thead><tr><th>metric</th><th className="num">v{mine.version}</th><th className="num">{champion ? `champion v${champion.version}` : "no champion"}</th></tr></thead>
      <tbody>{keys.map((k) => <tr key={k}><td>{k}</td><td className="num">{shown(mine.lineage.metrics?.[k])}</td>
        <td className="num">{shown(champion?.lineage.metrics?.[k])}</td></tr>)}</tbody>
    </table>
  );
}

export function ModelPage() {
  const { modelName = "" } = useParams();
  const model = useLoad(() => api<Model>("GET", `/api/v1/models/${enc(modelName)}`), [modelName]);
  const versions = useLoad(async () => (await api<{ versions: Version[] }>("GET", `/api/v1/models/${enc(modelName)}/versions`)).versions,
                           [modelName]);
  const [detail, setDetail] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [promoted, setPromoted] = useState<{ name: string; version: number } | null>(null);
  const canRequest = useCan("editor");
  const canDecide = useCan("maintainer");
  const [tick, setTick] = useState(0);
  const reload = async () => { await model.reload(); await versions.reload(); setTick((t) => t + 1); };
  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try { await fn(); await reload(); } catch (e) { setError(messageOf(e)); }
  };
  const target = `prod.${modelName.split(".").slice(1).join(".")}`;
  const chosen = versions.data?.find((v) => v.version === detail) ?? null;
  return (
    <div className="page">
      <Crumbs items={[{ label: "Models", to: "/models" }, { label: modelName }]} />
      <h1>{modelName}</h1>
      {model.error && <Failed error={model.error} />}
      {model.data?.description && <p>{model.data.description}</p>}
      {error && <div className="error" role="alert">{error}</div>}
      {promoted && <div className="card" role="status">Promoted to <Link to={`/models/${enc(promoted.name)}`}>{promoted.name}</Link> v{promoted.version}</div>}
      {model.data && <Aliases model={modelName} aliases={model.data.aliases} act={act} />}
      <h2>Versions</h2>
      <Loaded state={versions} what="versions">{(list) => list.length === 0 ? <Empty title="No versions yet"><p>Register a logged model under this name to create version 1.</p></Empty> : (
        <table className="plain" data-testid="versions">
          <thead><tr><th>Version</th><th>Aliases</th><th>Flavor</th><th>Metrics at registration</th><th>Source</th><th>Created</th><th><span className="sr-only">actions</span></th></tr></thead>
          <tbody>{list.map((v) => (
            <tr key={v.version} data-testid={`version-${v.version}`}>
              <td><a href="#" onClick={(e) => { e.preventDefault(); setDetail(v.version); }}>v{v.version}</a></td>
              <td>{v.aliases.map((a) => <span key={a} className="chip">{a}</span>)}</td>
              <td>{v.flavor}</td>
              <td className="small">{Object.entries(v.lineage.metrics ?? {}).slice(0, 4).map(([k, m]) => <span key={k} className="chip">{k}={shown(m)}</span>)}</td>
              <td className="small">{v.run_id && <Link to={`/runs/${v.run_id}`}>run {v.run_id.slice(0, 8)}</Link>}
                {v.lineage.promoted_from && <> from <Link to={`/models/${enc(v.lineage.promoted_from.model)}`}>{v.lineage.promoted_from.model}</Link> v{v.lineage.promoted_from.version}</>}</td>
              <td>{v.created_by} <Time ms={v.created_at} /></td>
              <td><div className="toolbar">
                {canDecide && <button onClick={() => {
                  const alias = prompt("Alias to point at this version", "champion");
                  if (alias) void act(() => api("PUT", `/api/v1/models/${enc(modelName)}/aliases/${enc(alias)}`, { version: v.version }));
                }}>Set alias</button>}
                {canRequest && <button onClick={() => {
                  const to = prompt("Promote to (e.g. prod.model)", target);
                  if (to) void act(() => api("POST", "/api/v1/promotion-requests", { model: modelName, version: v.version, to }));
                }}>Request promotion</button>}
                {canDecide && <button onClick={() => {
                  const to = prompt("Promote to (e.g. prod.model)", target);
                  if (to) void act(async () => {
                    const made = await api<{ name: string; version: number }>("POST", `/api/v1/models/${enc(modelName)}/versions/${v.version}/promote`, { to });
                    setPromoted({ name: made.name ?? to, version: made.version });
                  });
                }}>Promote</button>}
              </div></td></tr>))}</tbody>
        </table>)}</Loaded>
      {chosen && <VersionDetails key={chosen.version} v={chosen} model={modelName} act={act} />}
      <Inbox model={modelName} reloadModel={async () => { await model.reload(); await versions.reload(); }} tick={tick} />
    </div>
  );
}

function Aliases({ model, aliases, act }: { model: string; aliases: Record<string, number>;
                                            act: (fn: () => Promise<unknown>) => Promise<void> }) {
  const moves = useLoad(() => Promise.all(Object.keys(aliases).map(async (alias) => {
    const data = await api<{ moves: Move[] }>("GET", `/api/v1/models/${enc(model)}/aliases/${enc(alias)}/history`);
    return [alias, data.moves] as const;
  })), [model, JSON.stringify(aliases)]);
  const canMove = useCan("maintainer");
  return (
    <section data-testid="alias-history" aria-label="aliases">
      <h2>Aliases</h2>
      {Object.keys(aliases).length === 0 ? <p className="muted">No aliases yet. Point one such as <code>champion</code> at a version with Set alias.</p>
        : <Loaded state={moves} what="alias history">{(pairs) => <div className="cards">{pairs.map(([alias, list]) => (
          <div key={alias} className="card" data-testid={`alias-${alias}`}>
            <h3><span className="chip">{alias}</span> → v{aliases[alias]}{" "}
              {canMove && list.length > 1 && <button onClick={() => void act(() => api("POST", `/api/v1/models/${enc(model)}/aliases/${enc(alias)}/rollback`))}>
                Roll back {alias}</button>}</h3>
            <ol className="timeline" aria-label={`timeline of ${alias}`}>{[...list].reverse().map((m, i) => (
              <li key={i}>{m.from_version === null ? "set" : `v${m.from_version}`} → {m.to_version === null ? "removed" : `v${m.to_version}`}
                <span className="muted small"> by {m.actor}, <Time ms={m.time} />{m.reason ? ` (${m.reason})` : ""}</span></li>))}</ol>
          </div>))}</div>}</Loaded>}
    </section>
  );
}

function VersionDetails({ v, model, act }: { v: Version; model: string; act: (fn: () => Promise<unknown>) => Promise<void> }) {
  const canEdit = useCan("editor");
  const [description, setDescription] = useState(v.description);
  const [tagKey, setTagKey] = useState("");
  const [tagValue, setTagValue] = useState("");
  const path = `/api/v1/models/${enc(model)}/versions/${v.version}`;
  const source = v.lineage.source ?? {};
  const commit = Object.entries(source).find(([k]) => k.endsWith("commit"))?.[1];
  const repo = Object.entries(source).find(([k]) => k.endsWith("url") || k.endsWith("repo"))?.[1];
  return (
    <section className="card" data-testid="version-details" aria-label={`version ${v.version}`}>
      <h2>{model} v{v.version}</h2>
      <VersionCompliance model={model} version={v.version} />
      <table className="plain kv"><tbody>
        <tr><th>Flavor</th><td>{v.flavor}</td></tr>
        <tr><th>Lineage</th><td>{v.lineage.promoted_from && <>promoted from <Link to={`/models/${enc(v.lineage.promoted_from.model)}`}>{v.lineage.promoted_from.model}</Link> v{v.lineage.promoted_from.version} ← </>}
          {v.run_id ? <>run <Link to={`/runs/${v.run_id}`}>{v.run_id.slice(0, 8)}</Link> <CopyId value={v.run_id} label="run id" /></> : "no source run"}</td></tr>
        <tr><th>Commit</th><td>{commit ? <CommitLink commit={commit} repo={repo} /> : <span className="muted">unknown</span>}</td></tr>
        <tr><th>Datasets</th><td>{(v.lineage.datasets ?? []).map((d) => <div key={d.name + d.digest}>{d.name} <code>{d.digest.slice(0, 12)}</code></div>)}</td></tr>
        <tr><th>Metrics at registration</th><td>{Object.entries(v.lineage.metrics ?? {}).map(([k, m]) => <span key={k} className="chip">{k}={shown(m)}</span>)}</td></tr>
        <tr><th>Signature</th><td><Signature signature={v.manifest.signature} /></td></tr>
        <tr><th>Requirements</th><td>{v.manifest.requirements?.length ? v.manifest.requirements.map((r) => <code key={r} className="chip">{r}</code>) : <span className="muted">none</span>}</td></tr>
        <tr><th>Tags</th><td>{Object.entries(v.tags).map(([k, value]) => <span key={k} className="chip">{k}={value}</span>)}</td></tr>
      </tbody></table>
      {canEdit && (
        <div className="toolbar" style={{ marginTop: 8 }}>
          <input aria-label="version description" value={description} onChange={(e) => setDescription(e.target.value)} />
          <button onClick={() => void act(() => api("PATCH", path, { description }))}>Save description</button>
          <input aria-label="version tag key" placeholder="key" value={tagKey} onChange={(e) => setTagKey(e.target.value)} />
          <input aria-label="version tag value" placeholder="value" value={tagValue} onChange={(e) => setTagValue(e.target.value)} />
          <button onClick={() => void act(() => api("POST", `${path}/tags`, { [tagKey]: tagValue }))}>Set tag</button>
        </div>
      )}
    </section>
  );
}

/** A commit, linked to the repository's page for it when the repository's URL is known. */
export function CommitLink({ commit, repo }: { commit: string; repo?: string }) {
  const base = repo?.replace(/\.git$/, "").replace(/^git@([^:]+):/, "https://$1/");
  return base?.startsWith("https://") ? <a href={`${base}/commit/${commit}`} target="_blank" rel="noreferrer">{commit.slice(0, 10)}</a>
    : <code title={commit}>{commit.slice(0, 10)}</code>;
}

