import { useEffect, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { api, ApiError, linkTo, type Run } from "../api";
import { ComplianceBadge, ComplianceReport } from "../conventions";
import { MetricChart, type XAxis } from "../chart";
import { diffLines, formatBytes, formatDuration, formatNumber, formatTime, toNumber } from "../format";
import { CopyId, Crumbs, Empty, Failed, Loading, Status, Time } from "../ui";
import { CommitLink } from "./Models";
import { useCan } from "../roles";
import { type Manifest, ManifestView, Markdown, Yaml } from "../preview";
import { ParamCompare } from "./RunCompare";

interface Artifact { path: string; is_dir: boolean; size: number | null; version: number | null; digest: string | null }
interface Version { version: number; size: number; digest: string; created_at: number; created_by: string }
interface Comment { id: number; author: string; text: string; created_at: number }

export function RunPage() {
  const { runId = "" } = useParams();
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [log, setLog] = useState(false);
  const [x, setX] = useState<XAxis>("step");
  const [smoothing, setSmoothing] = useState(0);
  const [children, setChildren] = useState<Run[]>([]);
  useEffect(() => {
    api<Run>("GET", `/api/v1/runs/${runId}`).then(async (loaded) => {
      setRun(loaded);
      const found = await api<{ runs: Run[] }>("POST", "/api/v1/runs/search", {
        experiment_ids: [loaded.experiment_id], filter: `attributes.parent_run_id = '${loaded.run_id}'`,
        max_results: 100 }).catch(() => ({ runs: [] }));
      setChildren(found.runs);
    }).catch((e) => setError(e instanceof ApiError ? e.message : String(e)));
  }, [runId]);
  if (error) return <div className="page"><Failed error={error} /></div>;
  if (!run) return <div className="page"><Loading what="run" /></div>;
  const source = Object.entries(run.tags).filter(([k]) => k.startsWith("cairn.source."));
  const commit = run.tags["cairn.source.git.commit"];
  const repo = run.tags["cairn.source.git.repo_url"] ?? run.tags["cairn.source.git.remote"];
  return (
    <div className="page">
      <Crumbs items={[{ label: "Experiments", to: "/" }, { label: run.experiment_name, to: `/experiments/${run.experiment_id}` },
                      { label: run.name }]} />
      <h1>{run.name} <Status status={run.status} /> <CopyId value={run.run_id} label="run id" /> <ComplianceBadge compliant={run.compliant} /></h1>
      <table className="plain kv card" data-testid="run-overview"><tbody>
        <tr><th>Run id</th><td><code>{run.run_id}</code></td></tr>
        <tr><th>Started</th><td><Time ms={run.start_time} /> <span className="muted">({formatTime(run.start_time)} UTC) by {run.user}</span></td></tr>
        <tr><th>Duration</th><td>{formatDuration(run.start_time, run.end_time)}{run.end_time ? <> · ended <Time ms={run.end_time} /></> : " (still running)"}</td></tr>
        {commit && <tr><th>Commit</th><td><CommitLink commit={commit} repo={repo} /></td></tr>}
        {source.filter(([k]) => !k.endsWith("commit")).map(([k, v]) => <tr key={k}><th>{k.replace("cairn.source.", "")}</th><td className="mono">{v}</td></tr>)}
        {run.parent_run_id && <tr><th>Parent</th><td><Link to={`/runs/${run.parent_run_id}`}>{run.parent_run_id.slice(0, 8)}</Link></td></tr>}
        {children.length > 0 && <tr><th>Children</th><td>{children.map((c) => <Link key={c.run_id} className="chip" to={`/runs/${c.run_id}`}>{c.name}</Link>)}</td></tr>}
        <tr><th>Datasets</th><td>{run.datasets.length === 0 ? <span className="muted">none logged</span>
          : run.datasets.map((d) => <div key={d.name + d.digest}><span className="chip">{d.role}</span>{d.name} <span className="muted">{d.uri}</span> <code>{d.digest.slice(0, 12)}</code></div>)}</td></tr>
      </tbody></table>
      <ComplianceReport runId={run.run_id} />
      <h2>Metrics</h2>
      <div className="toolbar">
        <label><input type="checkbox" checked={log} onChange={(e) => setLog(e.target.checked)} /> log scale</label>
        <label>x axis <select aria-label="x axis" value={x} onChange={(e) => setX(e.target.value as XAxis)}>
          <option value="step">step</option><option value="time">time</option><option value="relative">relative time</option>
        </select></label>
        <label>smoothing <input aria-label="smoothing" type="range" min={0} max={0.99} step={0.01} value={smoothing}
                                onChange={(e) => setSmoothing(Number(e.target.value))} /></label>
      </div>
      {Object.keys(run.metrics).length === 0 && <Empty title="No metrics logged"><pre>{"run.log_metric(\"loss\", 0.25, step=1)"}</pre></Empty>}
      <table className="plain">
        <thead><tr><th>Metric</th><th>last</th><th>min</th><th>max</th><th>mean</th><th>best (step)</th><th>points</th></tr></thead>
        <tbody>{Object.values(run.metrics).map((m) => (
          <tr key={m.key}><td>{m.key}</td><td>{formatNumber(toNumber(m.last))}</td><td>{formatNumber(toNumber(m.min))}</td>
            <td>{formatNumber(toNumber(m.max))}</td><td>{formatNumber(toNumber(m.mean))}</td>
            <td>{m.goal ? `${formatNumber(toNumber(m.best))} (${m.best_step})` : ""}</td><td>{m.count}</td></tr>
        ))}</tbody>
      </table>
      <div className="charts">
        {Object.values(run.metrics).map((m) => (
          <MetricChart key={m.key} runId={run.run_id} metric={m.key} bestStep={m.goal ? m.best_step : null} log={log}
                       x={x} smoothing={smoothing} />
        ))}
      </div>
      <h2>Params</h2>
      <Params run={run} />
      <ParamCompare run={run} />
      <h2>Tags</h2>
      <Tags run={run} onChange={(tags) => setRun({ ...run, tags })} />
      <h2>Artifacts</h2>
      <Artifacts runId={run.run_id} />
      <h2>Logged models</h2>
      <LoggedModels runId={run.run_id} />
      <h2>Comments</h2>
      <Comments runId={run.run_id} />
    </div>
  );
}

function Params({ run }: { run: Run }) {
  const [history, setHistory] = useState<Record<string, { value: string; timestamp: number }[]>>({});
  const show = async (key: string) => {
    const data = await api<{ history: { value: string; timestamp: number }[] }>(
      "GET", `/api/v1/runs/${run.run_id}/params/history`, undefined, { key });
    setHistory({ ...history, [key]: data.history });
  };
  return (
    <table className="plain"><tbody>{Object.entries(run.params).map(([k, v]) => (
      <tr key={k}><td>{k}</td><td>{v}</td><td>
        {history[k] ? history[k].map((h) => `${h.value} (${formatTime(h.timestamp)})`).join(" → ")
          : <button onClick={() => void show(k)}>history</button>}
      </td></tr>))}</tbody></table>
  );
}

function Tags({ run, onChange }: { run: Run; onChange: (tags: Record<string, string>) => void }) {
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const canEdit = useCan("editor");
  const add = async () => {
    try {
      await api("POST", `/api/v1/runs/${run.run_id}/tags`, { [key]: value });
      onChange({ ...run.tags, [key]: value });
      setKey(""); setValue(""); setError(null);
    } catch (e) { setError(e instanceof ApiError ? e.message : String(e)); }
  };
  return (
    <div>
      <table className="plain"><tbody>{Object.entries(run.tags).filter(([k]) => !k.startsWith("cairn.source."))
        .map(([k, v]) => <tr key={k}><td>{k}</td><td>{v}</td></tr>)}</tbody></table>
      {canEdit && <div className="toolbar" style={{ marginTop: 8 }}>
        <input aria-label="tag key" placeholder="key" value={key} onChange={(e) => setKey(e.target.value)} />
        <input aria-label="tag value" placeholder="value" value={value} onChange={(e) => setValue(e.target.value)} />
        <button onClick={() => void add()}>Set tag</button>
        {error && <span className="error">{error}</span>}
      </div>}
    </div>
  );
}

function Artifacts({ runId }: { runId: string }) {
  const [path, setPath] = useState("");
  const [files, setFiles] = useState<Artifact[]>([]);
  const [versions, setVersions] = useState<{ path: string; list: Version[] } | null>(null);
  const [preview, setPreview] = useState<{ version: number; kind: string; text?: string } | null>(null);
  useEffect(() => {
    void api<{ files: Artifact[] }>("GET", `/api/v1/runs/${runId}/artifacts`, undefined, { path })
      .then((d) => setFiles(d.files));
  }, [runId, path]);
  const open = async (file: string) => {
    const data = await api<{ versions: Version[] }>("GET", `/api/v1/runs/${runId}/artifacts/versions`, undefined,
                                                    { path: file });
    setVersions({ path: file, list: data.versions });
    setPreview(null);
  };
  const show = async (file: string, version: number) => {
    const kind = previewKind(file);
    if (kind === "image") { setPreview({ version, kind }); return; }
    if (kind === "none") { setPreview({ version, kind, text: "no preview for this kind of file" }); return; }
    const response = await fetch(link(file, version), { credentials: "same-origin" });
    const text = (await response.text()).slice(0, 200_000);
    setPreview({ version, kind, text });
  };
  const link = (file: string, version?: number) =>
    linkTo(`/api/v1/runs/${runId}/artifacts/content?path=${encodeURIComponent(file)}${version ? `&version=${version}` : ""}`);
  return (
    <div className="card" data-testid="artifacts">
      <div>/{path} {path && <button onClick={() => setPath(path.split("/").slice(0, -1).join("/"))}>up</button>}</div>
      <table className="plain"><tbody>{files.map((f) => (
        <tr key={f.path}>
          <td>{f.is_dir ? <a href="#" onClick={(e) => { e.preventDefault(); setPath(f.path); }}>{f.path}/</a>
            : <a href="#" onClick={(e) => { e.preventDefault(); void open(f.path); }}>{f.path}</a>}</td>
          <td className="num">{formatBytes(f.size)}</td><td>{f.version ? `v${f.version}` : ""}</td>
        </tr>))}</tbody></table>
      {versions && (
        <div data-testid="artifact-versions">
          <h2>{versions.path}</h2>
          <table className="plain"><tbody>{versions.list.map((v) => (
            <tr key={v.version}><td>v{v.version}</td><td className="num">{formatBytes(v.size)}</td><td><code title={v.digest}>{v.digest.slice(0, 19)}</code></td>
              <td><Time ms={v.created_at} /></td><td>{v.created_by}</td>
              <td><a href={link(versions.path, v.version)}>download</a></td>
              <td><button onClick={() => void show(versions.path, v.version)}>preview v{v.version}</button></td></tr>))}</tbody></table>
          {previewKind(versions.path) === "image" && versions.list.length > 1 && (
            <label className="toolbar">version <input type="range" aria-label="image version" min={1} step={1}
              max={Math.max(...versions.list.map((v) => v.version))} value={preview?.version ?? 1}
              onChange={(e) => void show(versions.path, Number(e.target.value))} /> v{preview?.version ?? "–"}</label>)}
          {TEXTUAL.includes(previewKind(versions.path)) && versions.list.length > 1 && (
            <TextDiff versions={versions.list.map((v) => v.version)} read={async (v) => (await fetch(link(versions.path, v),
              { credentials: "same-origin" })).text()} />)}
          {preview && (
            <div data-testid="artifact-preview" className="card">
              <div className="muted">version {preview.version}</div>
              {preview.kind === "image" ? <img alt={versions.path} style={{ maxWidth: "100%" }} src={link(versions.path, preview.version)} />
                : preview.kind === "csv" ? <CsvTable text={preview.text ?? ""} />
                : preview.kind === "markdown" ? <Markdown text={preview.text ?? ""} />
                : preview.kind === "yaml" ? <Yaml text={preview.text ?? ""} />
                : <pre style={{ whiteSpace: "pre-wrap", maxHeight: 400, overflow: "auto" }}>{
                    preview.kind === "json" ? prettyJson(preview.text ?? "") : preview.text}</pre>}
            </div>
          )}
        </div>
      )}
    </div>
  );
}

function Comments({ runId }: { runId: string }) {
  const [comments, setComments] = useState<Comment[]>([]);
  const [text, setText] = useState("");
  const canComment = useCan("editor");
  const load = () => api<{ comments: Comment[] }>("GET", `/api/v1/runs/${runId}/comments`).then((d) => setComments(d.comments));
  useEffect(() => { void load(); }, [runId]);
  return (
    <div className="card">
      {comments.map((c) => <div key={c.id}><b>{c.author}</b> <span className="muted">{formatTime(c.created_at)}</span>: {c.text}</div>)}
      {canComment && <div className="toolbar" style={{ marginTop: 8 }}>
        <input aria-label="comment" placeholder="add a comment" value={text} onChange={(e) => setText(e.target.value)} />
        <button onClick={() => void api("POST", `/api/v1/runs/${runId}/comments`, { text }).then(() => { setText(""); return load(); })}>
          Comment</button>
      </div>}
    </div>
  );
}

/** Kinds of artifact read as text, so two versions can be diffed line by line. */
const TEXTUAL = ["text", "json", "csv", "markdown", "yaml"];

export function previewKind(path: string): string {
  const ext = path.split(".").pop()?.toLowerCase() ?? "";
  if (["png", "jpg", "jpeg", "gif", "webp", "svg"].includes(ext)) return "image";
  if (ext === "json") return "json";
  if (["csv", "tsv"].includes(ext)) return "csv";
  if (["md", "markdown"].includes(ext)) return "markdown";
  if (["yaml", "yml"].includes(ext)) return "yaml";
  if (["txt", "log", "py", "toml", "cfg", "ini", "mlmodel"].includes(ext) || !path.includes(".")) return "text";
  return "none";
}

function prettyJson(text: string): string {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

function CsvTable({ text }: { text: string }) {
  const rows = text.split(/\r?\n/).filter(Boolean).slice(0, 21).map((line) => line.split(line.includes("\t") ? "\t" : ","));
  return <table className="plain"><tbody>{rows.map((r, i) => <tr key={i}>{r.map((c, j) => i === 0 ? <th key={j}>{c}</th> : <td key={j}>{c}</td>)}</tr>)}</tbody></table>;
}

interface LoggedModel { id: string; name: string; flavor: string; step: number | null; artifact_path: string; manifest: Manifest | null }

function LoggedModels({ runId }: { runId: string }) {
  const [models, setModels] = useState<LoggedModel[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  useEffect(() => {
    void api<{ models: LoggedModel[] }>("GET", `/api/v1/runs/${runId}/logged-models`).then((d) => setModels(d.models));
  }, [runId]);
  if (!models.length) return <div className="muted">none</div>;
  const shown = models.find((m) => m.id === open);
  return (
    <div>
      <table className="plain"><tbody>{models.map((m) => (
        <tr key={m.id}><td>{m.name}</td><td>{m.flavor}</td><td>{m.step === null ? "" : `step ${m.step}`}</td>
          <td className="muted">{m.artifact_path}</td><td className="muted">runs:/{runId}/{m.name}</td>
          <td><button aria-expanded={open === m.id} onClick={() => setOpen(open === m.id ? null : m.id)}>
            {open === m.id ? "Hide" : "Show"} manifest of {m.name}</button></td></tr>))}</tbody></table>
      {shown && (shown.manifest ? <ManifestView manifest={shown.manifest} />
        : <div className="muted">{shown.name} has no manifest yet (its files are still being uploaded).</div>)}
    </div>
  );
}

/** What changed in a text artifact between two of its versions. */
function TextDiff({ versions, read }: { versions: number[]; read: (version: number) => Promise<string> }) {
  const sorted = [...versions].sort((x, y) => x - y);
  const [from, setFrom] = useState(sorted[sorted.length - 2]);
  const [to, setTo] = useState(sorted[sorted.length - 1]);
  const [lines, setLines] = useState<ReturnType<typeof diffLines> | null>(null);
  const compare = async () => setLines(diffLines(await read(from), await read(to)));
  return (
    <div className="card">
      <div className="toolbar">Diff
        <select aria-label="diff from version" value={from} onChange={(e) => setFrom(Number(e.target.value))}>
          {sorted.map((v) => <option key={v} value={v}>v{v}</option>)}</select> →
        <select aria-label="diff to version" value={to} onChange={(e) => setTo(Number(e.target.value))}>
          {sorted.map((v) => <option key={v} value={v}>v{v}</option>)}</select>
        <button onClick={() => void compare()}>Show diff</button>
      </div>
      {lines && <pre className="preview" data-testid="artifact-diff">{lines.map((l, i) => (
        <div key={i} className={l.kind === "add" ? "diff-add" : l.kind === "del" ? "diff-del" : undefined}>
          {l.kind === "add" ? "+ " : l.kind === "del" ? "- " : "  "}{l.text}</div>))}</pre>}
    </div>
  );
}
