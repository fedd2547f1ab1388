import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { api, ApiError, type Run } from "../api";
import { ComplianceBadge } from "../conventions";
import { aggregate, AGGREGATIONS, type Aggregation, formatDuration, formatNumber, groupStats, hasChildren, nest,
  orderBy } from "../format";

interface Page { runs: Run[]; next_page_token?: string | null }

export function RunsPage() {
  const { experimentId } = useParams();
  const [query, setQuery] = useSearchParams();
  const [runs, setRuns] = useState<Run[]>([]);
  const [token, setToken] = useState<string | null>(null);
  const [filterText, setFilterText] = useState(query.get("filter") ?? "");
  const [error, setError] = useState<ApiError | null>(null);
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const how = (query.get("agg") ?? "last") as Aggregation;
  const columnAggs = useMemo(() => Object.fromEntries((query.get("aggs") ?? "").split(",").filter(Boolean)
    .map((pair) => pair.split("=") as [string, Aggregation])), [query]);
  const aggOf = (column: string): Aggregation => columnAggs[column] ?? how;
  const sort = query.get("sort") ?? "attr:start_time";
  const descending = query.get("desc") !== "0";
  const filter = query.get("filter") ?? "";
  const [chosen, setChosen] = useState<string[] | null>(null);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const navigate = useNavigate();

  const loading = useRef<string | null>(null);  // the page token being fetched: each page is asked for once
  // Each new search (filter, sort, aggregation) supersedes the last: an answer that arrives after a newer search
  // started is dropped, or a slow first answer could overwrite the table the user asked for next.
  const generation = useRef(0);
  const search = async (pageToken: string | null) => {
    if (pageToken) {
      if (loading.current === pageToken) return;
      loading.current = pageToken;
    } else {
      loading.current = null;
    }
    const mine = pageToken ? generation.current : ++generation.current;
    const current = () => mine === generation.current;
    if (filter && !pageToken) {  // checked first: a bad filter is shown where it is, without a failed request
      const check = await api<{ valid: boolean; message?: string; position?: number }>(
        "POST", "/api/v1/runs/search/check", { filter });
      if (!current()) return;
      if (!check.valid) {
        setError(new ApiError(400, { message: check.message, position: check.position ?? undefined }));
        setRuns([]);
        return;
      }
    }
    try {
      const page = await api<Page>("POST", "/api/v1/runs/search", {
        experiment_ids: [Number(experimentId)], filter: filter || null, order_by: [orderBy(sort, aggOf(sort), descending)],
        max_results: 500, page_token: pageToken,
      });
      if (!current()) return;
      setError(null);
      setRuns((old) => (pageToken ? [...old, ...page.runs] : page.runs));
      loading.current = null;
      setToken(page.next_page_token ?? null);
    } catch (failure) {
      if (!current()) return;
      if (failure instanceof ApiError) setError(failure); else throw failure;
    }
  };
  useEffect(() => { void search(null); }, [experimentId, filter, sort, how, descending, query.get("aggs")]);

  const metricKeys = useMemo(() => [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort(), [runs]);
  const paramKeys = useMemo(() => [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort(), [runs]);
  const tagKeys = useMemo(() => [...new Set(runs.flatMap((r) => Object.keys(r.tags)))]
    .filter((k) => !k.startsWith("cairn.source.")).sort(), [runs]);
  const groupBy = query.get("group");
  const columns = chosen ?? [...metricKeys.slice(0, 6).map((k) => `metric:${k}`), ...paramKeys.slice(0, 4).map((k) => `param:${k}`)];
  const rows = useMemo(() => nest(runs, collapsed), [runs, collapsed]);
  const parents = useMemo(() => hasChildren(runs), [runs]);
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({ count: rows.length, getScrollElement: () => scroller.current, estimateSize: () => 28,
                                   overscan: 20 });
  useEffect(() => {
    const last = virtual.getVirtualItems().at(-1);
    if (last && token && last.index >= rows.length - 50) void search(token);
  });

  const setParam = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) { if (v === null) next.delete(k); else next.set(k, v); }
    setQuery(next);
  };
  const clickHeader = (column: string) =>
    setParam({ sort: column, desc: sort === column && descending ? "0" : "1" });
  const toggle = (column: string) => {
    const next = columns.includes(column) ? columns.filter((c) => c !== column) : [...columns, column];
    setChosen(next);
  };

  return (
    <div className="page">
      <h1>Runs <span className="muted">({runs.length}{token ? "+" : ""})</span></h1>
      <div className="toolbar">
        <input className="filter" aria-label="filter" placeholder="metrics.val_loss.min < 0.3 and params.lr = '0.01'"
               value={filterText} onChange={(e) => setFilterText(e.target.value)}
               onKeyDown={(e) => { if (e.key === "Enter") setParam({ filter: filterText || null }); }} />
        <button onClick={() => setParam({ filter: filterText || null })}>Filter</button>
        <label>Aggregation{" "}
          <select aria-label="aggregation" value={how} onChange={(e) => setParam({ agg: e.target.value, aggs: null })}>
            {AGGREGATIONS.map((a) => <option key={a} value={a}>{a}</option>)}
          </select>
        </label>
        <button disabled={selected.size < 2 || selected.size > 100}
                onClick={() => navigate(`/compare?runs=${[...selected].join(",")}`)}>Compare ({selected.size})</button>
        <details>
          <summary>Columns</summary>
          {[...metricKeys.map((k) => `metric:${k}`), ...paramKeys.map((k) => `param:${k}`),
            ...tagKeys.map((k) => `tag:${k}`)].map((c) => (
            <label key={c} style={{ display: "block" }}>
              <input type="checkbox" checked={columns.includes(c)} onChange={() => toggle(c)} /> {c}
            </label>
          ))}
        </details>
      </div>
      <div className="toolbar">
        <label>Group by{" "}
          <select aria-label="group by" value={groupBy ?? ""} onChange={(e) => setParam({ group: e.target.value || null })}>
            <option value="">nothing</option>
            {[...paramKeys.map((k) => `param:${k}`), ...tagKeys.map((k) => `tag:${k}`)].map((g) => <option key={g}>{g}</option>)}
          </select>
        </label>
      </div>
      {groupBy && (
        <table className="plain" data-testid="groups" style={{ marginBottom: 8 }}>
          <thead><tr><th>{groupBy}</th><th>runs</th>{metricKeys.slice(0, 6).map((m) => <th key={m}>{m} ({how}) mean ± std</th>)}</tr></thead>
          <tbody>{groupStats(runs, groupBy, metricKeys[0] ?? "", how).map((g) => (
            <tr key={g.group}><td>{g.group}</td><td>{g.count}</td>
              {metricKeys.slice(0, 6).map((m) => {
                const stat = groupStats(runs.filter((r) => ((groupBy.startsWith("tag:") ? r.tags : r.params)[groupBy.split(":").slice(1).join(":")] ?? "(none)") === g.group), groupBy, m, how)[0];
                return <td key={m}>{stat?.mean === null || !stat ? "" : `${formatNumber(stat.mean)} ± ${formatNumber(stat.std)}`}</td>;
              })}</tr>))}</tbody>
        </table>
      )}
      {error && (
        <div className="error" role="alert" data-testid="filter-error">
          {error.position !== undefined ? `${filter}\n${" ".repeat(error.position)}^\n` : ""}{error.message}
        </div>
      )}
      <div className="grid" ref={scroller} data-testid="runs-grid">
        <div className="row head" style={{ minWidth: "fit-content" }}>
          <div className="cell name" onClick={() => clickHeader("attr:run_name")}>Run</div>
          <div className="cell" onClick={() => clickHeader("attr:status")}>Status</div>
          <div className="cell" onClick={() => clickHeader("attr:start_time")}>Duration</div>
          <div className="cell">User</div>
          <div className="cell">Commit</div>
          <div className="cell" onClick={() => clickHeader("attr:compliant")}>Conventions</div>
          {columns.map((c) => (
            <div key={c} className={c.startsWith("metric:") ? "cell num" : "cell"} data-column={c}>
              <span onClick={() => clickHeader(c)}>
                {c.replace(/^metric:/, "").replace(/^param:/, "param ").replace(/^tag:/, "tag ")}
                {sort === c ? (descending ? " ▼" : " ▲") : ""}</span>
              {c.startsWith("metric:") && (
                <select aria-label={`aggregation of ${c.slice(7)}`} value={aggOf(c)} style={{ padding: 0, marginLeft: 4 }}
                        onClick={(e) => e.stopPropagation()}
                        onChange={(e) => setParam({ aggs: Object.entries({ ...columnAggs, [c]: e.target.value })
                          .map(([k, v]) => `${k}=${v}`).join(",") })}>
                  {AGGREGATIONS.map((a) => <option key={a}>{a}</option>)}
                </select>)}
            </div>
          ))}
        </div>
        <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
          {virtual.getVirtualItems().map((item) => {
            const { run, depth } = rows[item.index];
            return (
              <div key={run.run_id} className="row" data-testid="run-row"
                   style={{ position: "absolute", top: item.start, minWidth: "fit-content" }}>
                <div className="cell name" style={{ paddingLeft: 8 + depth * 16 }}>
                  <input type="checkbox" aria-label={`select ${run.name}`} checked={selected.has(run.run_id)}
                         onChange={() => {
                           const next = new Set(selected);
                           if (next.has(run.run_id)) next.delete(run.run_id); else next.add(run.run_id);
                           setSelected(next);
                         }} />
                  {parents.has(run.run_id) && (
                    <button style={{ padding: "0 4px", marginRight: 4 }} onClick={() => {
                      const next = new Set(collapsed);
                      if (next.has(run.run_id)) next.delete(run.run_id); else next.add(run.run_id);
                      setCollapsed(next);
                    }}>{collapsed.has(run.run_id) ? "+" : "−"}</button>
                  )}
                  <Link to={`/runs/${run.run_id}`}>{run.name}</Link>
                </div>
                <div className="cell">{run.status}</div>
                <div className="cell">{formatDuration(run.start_time, run.end_time)}</div>
                <div className="cell">{run.user}</div>
                <div className="cell" title={run.tags["cairn.source.git.commit"] ?? ""}>
                  {(run.tags["cairn.source.git.commit"] ?? "").slice(0, 8)}</div>
                <div className="cell"><ComplianceBadge compliant={run.compliant} /></div>
                {columns.map((c) => {
                  if (c.startsWith("metric:")) {
                    const { value, step } = aggregate(run.metrics[c.slice(7)], aggOf(c));
                    return <div key={c} className="cell num" data-column={c} title={step === null ? "" : `step ${step}`}>
                      {formatNumber(value)}</div>;
                  }
                  const value = c.startsWith("tag:") ? run.tags[c.slice(4)] : run.params[c.slice(6)];
                  return <div key={c} className="cell" data-column={c}>{value ?? ""}</div>;
                })}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
