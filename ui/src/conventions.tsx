// Conventions in the UI: a run's compliance badge and rule-by-rule report, and the admin page's settings.
import { useEffect, useState } from "react";
import { api, ApiError } from "./api";
import { useCan } from "./roles";

interface RuleCheck { rule: string; met: boolean; missing: string[]; message: string }
interface Compliance { mode: string; scope: string; compliant: boolean | null; rules: RuleCheck[] }
interface Settings { mode: string; scope: string; rules: Record<string, Record<string, unknown>>; updated_by: string }

/** ✓ or ✗ for a run under the conventions in force; nothing when none are. */
export function ComplianceBadge({ compliant }: { compliant: boolean | null | undefined }) {
  if (compliant === null || compliant === undefined) return <span className="muted">–</span>;
  return <span className={compliant ? "badge ok" : "badge miss"} data-testid="compliance-badge"
               title={compliant ? "meets the conventions" : "misses a convention"}>{compliant ? "✓ compliant" : "✗ not compliant"}</span>;
}

export function ComplianceReport({ runId }: { runId: string }) {
  return <Report path={`/api/v1/runs/${runId}/compliance`} />;
}

export function VersionCompliance({ model, version }: { model: string; version: number }) {
  return <Report path={`/api/v1/models/${encodeURIComponent(model)}/versions/${version}/compliance`} />;
}

function Report({ path }: { path: string }) {
  const [report, setReport] = useState<Compliance | null>(null);
  useEffect(() => { api<Compliance>("GET", path).then(setReport).catch(() => setReport(null)); }, [path]);
  if (!report || report.compliant === null) return null;
  return (
    <div className="card" data-testid="compliance-report">
      <div><ComplianceBadge compliant={report.compliant} /> <span className="muted">conventions of the {report.scope} ({report.mode})</span></div>
      <table className="plain"><tbody>{report.rules.map((r) => (
        <tr key={r.rule}><td>{r.met ? "✓" : "✗"}</td><td>{r.rule}</td><td className={r.met ? "muted" : ""}>{r.message}</td></tr>))}
      </tbody></table>
    </div>
  );
}

const MODES = ["off", "warn", "enforce"];
const PRESETS = ["recommended", "minimal"];

/** The admin page's section: the workspace's conventions, changed by maintainers. */
export function ConventionsSection() {
  const maintainer = useCan("maintainer");
  const [settings, setSettings] = useState<Settings | null>(null);
  const [mode, setMode] = useState("warn");
  const [preset, setPreset] = useState("recommended");
  const [error, setError] = useState<string | null>(null);
  const load = () => api<Settings>("GET", "/api/v1/conventions").then(setSettings).catch(() => setSettings(null));
  useEffect(() => { void load(); }, []);
  const save = async () => {
    setError(null);
    try { setSettings(await api<Settings>("PUT", "/api/v1/conventions", { mode, preset })); }
    catch (e) { setError(e instanceof ApiError ? e.message : String(e)); }
  };
  return (
    <section data-testid="conventions-section">
      <h2>Conventions</h2>
      {settings && <div>Mode <b>{settings.mode}</b>{settings.updated_by && <span className="muted"> (set by {settings.updated_by})</span>}:{" "}
        {Object.keys(settings.rules).join(", ") || "no rules"}</div>}
      {maintainer && <div className="toolbar">
        <select aria-label="conventions mode" value={mode} onChange={(e) => setMode(e.target.value)}>
          {MODES.map((m) => <option key={m}>{m}</option>)}</select>
        <select aria-label="conventions preset" value={preset} onChange={(e) => setPreset(e.target.value)}>
          {PRESETS.map((p) => <option key={p}>{p}</option>)}</select>
        <button onClick={() => void save()}>Save conventions</button>
      </div>}
      {error && <div className="error" role="alert">{error}</div>}
    </section>
  );
}
