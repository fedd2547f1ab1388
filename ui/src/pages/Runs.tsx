import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { api, ApiError, type Experiment, type Run } from "../api";
import { ComplianceBadge } from "../conventions";
import { aggregate, AGGREGATIONS, type Aggregation, formatDuration, formatNumber, groupStats, hasChildren, nest,
  orderBy } from "../format";
import { ATTRIBUTE_COLUMNS, columnLabel, DEFAULT_WIDTH, defaultColumns, moveColumn, parseColumns, readStored,
  type SavedView, saveView, serializeColumns, writeStored } from "../views";
import { CopyId, Crumbs, Empty, Failed, FirstRunSnippet, Icon, Loading, Status, Time } from "../ui";
import { type Brushes, brushed } from "./RunCharts";
import { ChartsPanel } from "./RunsCharts";

interface Page { runs: Run[]; next_page_token?: string | null }
const SORTABLE = new Set(["attr:status", "attr:start_time", "attr:user", "attr:compliant"]);

export function RunsPage() {
  const { experimentId = "" } = useParams();
  const [query, setQuery] = useSearchParams();
  const [runs, setRuns] = useState<Run[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [token, setToken] = useState<string | null>(null);
  const [filterText, setFilterText] = useState(query.get("filter") ?? "");
  const [error, setError] = useState<ApiError | null>(null);
  const [experiment, setExperiment] = useState<Experiment | null>(null);
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [brushes, setBrushes] = useState<Brushes>({});
  const how = (query.get("agg") ?? "last") as Aggregation;
  const columnAggs = useMemo(() => Object.fromEntries((query.get("aggs") ?? "").split(",").filter(Boolean)
    .map((pair) => pair.split("=") as [string, Aggregation])), [query]);
  const aggOf = (column: string): Aggregation => columnAggs[column] ?? how;
  const sort = query.get("sort") ?? "attr:start_time";
  const descending = query.get("desc") !== "0";
  const filter = query.get("filter") ?? "";
  const storeKey = `cairn.runs.${experimentId}`;
  const [stored, setStored] = useState(() => readStored<{ columns?: string[]; widths?: Record<string, number> }>(storeKey, {}));
  const [views, setViews] = useState(() => readStored<SavedView[]>(`${storeKey}.views`, []));
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const navigate = useNavigate();

  useEffect(() => {
    void api<Experiment>("GET", `/api/v1/experiments/${experimentId}`).then(setExperiment, () => setExperiment(null));
  }, [experimentId]);

  const fetched = useRef(new Set<string>());  // the page tokens of this search asked for: each page is asked for once
  // Each new search (filter, sort, aggregation) supersedes the last: an answer that arrives after a newer search
  // started is dropped, or a slow first answer could overwrite the table the user asked for next.
  const generation = useRef(0);
  const search = async (pageToken: string | null) => {
    if (pageToken) {
      if (fetched.current.has(pageToken)) return;
      fetched.current.add(pageToken);
    } else {
      fetched.current = new Set();
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
        setLoaded(true);
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
      setLoaded(true);
      setToken(page.next_page_token ?? null);
    } catch (failure) {
      if (!current()) return;
      setLoaded(true);
      if (failure instanceof ApiError) setError(failure); else throw failure;
    }
  };
  useEffect(() => { void search(null); }, [experimentId, filter, sort, how, descending, query.get("aggs")]);

  const metricKeys = useMemo(() => [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort(), [runs]);
  const paramKeys = useMemo(() => [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort(), [runs]);
  const tagKeys = useMemo(() => [...new Set(runs.flatMap((r) => Object.keys(r.tags)))]
    .filter((k) => !k.startsWith("cairn.")).sort(), [runs]);
  const groupBy = query.get("group");
  const columns = parseColumns(query.get("cols")) ?? stored.columns ?? defaultColumns(metricKeys, paramKeys);
  const widths = stored.widths ?? {};
  const shown = useMemo(() => brushed(runs, brushes, how), [runs, brushes, how]);
  const rows = useMemo(() => nest(shown, collapsed), [shown, collapsed]);
  const parents = useMemo(() => hasChildren(runs), [runs]);
  // the charts follow the selection, else the first 100 rows; the same runs keep the same array (no refetch)
  const chartPick = (selected.size ? runs.filter((r) => selected.has(r.run_id)) : shown.slice(0, 100));
  const chartKey = chartPick.map((r) => r.run_id).join(",");
  const chartRuns = useMemo(() => chartPick, [chartKey]);
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({ count: rows.length, getScrollElement: () => scroller.current, estimateSize: () => 30,
                                   overscan: 20 });
  useEffect(() => {
    const last = virtual.getVirtualItems().at(-1);
    if (last && token && last.index >= rows.length - 50) void search(token);
  });

  const setParam = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) { if (v === null) next.delete(k); else next.set(k, v); }
    setQuery(next, { replace: true });
  };
  const remember = (next: { columns?: string[]; widths?: Record<string, number> }) => {
    const merged = { ...stored, ...next };
    setStored(merged);
    writeStored(storeKey, merged);
    if (next.columns) setParam({ cols: serializeColumns(next.columns) });
  };
  const clickHeader = (column: string) =>
    setParam({ sort: column, desc: sort === column && descending ? "0" : "1" });
  const toggle = (column: string) =>
    remember({ columns: columns.includes(column) ? columns.filter((c) => c !== column) : [...columns, column] });
  const widthOf = (c: string) => widths[c] ?? (c === "attr:tags" ? 200 : c === "name" ? 240 : DEFAULT_WIDTH);
  const resize = (column: string, event: React.PointerEvent) => {
    event.preventDefault();
    const start = event.clientX, from = widthOf(column);
    let latest = from;
    const move = (e: PointerEvent) => {
      latest = Math.max(60, from + e.clientX - start);
      setStored((s) => ({ ...s, widths: { ...(s.widths ?? {}), [column]: latest } }));
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      remember({ widths: { ...widths, [column]: latest } });
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  };
  const keyResize = (column: string, event: React.KeyboardEvent) => {
    const delta = event.key === "ArrowRight" ? 20 : event.key === "ArrowLeft" ? -20 : 0;
    if (delta) { event.preventDefault(); remember({ widths: { ...widths, [column]: Math.max(60, widthOf(column) + delta) } }); }
  };
  const viewQuery = () => { const q = new URLSearchParams(query); q.set("cols", serializeColumns(columns)); return q.toString(); };
  const [viewName, setViewName] = useState("");
  const storeViews = (next: SavedView[]) => { setViews(next); writeStored(`${storeKey}.views`, next); };
  const allColumns = [...ATTRIBUTE_COLUMNS, ...metricKeys.map((k) => `metric:${k}`), ...paramKeys.map((k) => `param:${k}`),
                      ...tagKeys.map((k) => `tag:${k}`)];
  const name = experiment?.name ?? runs[0]?.experiment_name ?? `experiment ${experimentId}`;

  return (
    <div className="page">
      <Crumbs items={[{ label: "Experiments", to: "/" }, { label: name }]} />
      <h1>{name} <span className="muted small" data-testid="run-count">{runs.length.toLocaleString("en")}{token ? "+" : ""} runs</span>
        {experiment && <CopyId value={String(experiment.experiment_id)} label="experiment id" />}</h1>
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
        <label>Group by{" "}
          <select aria-label="group by" value={groupBy ?? ""} onChange={(e) => setParam({ group: e.target.value || null })}>
            <option value="">nothing</option>
            {[...paramKeys.map((k) => `param:${k}`), ...tagKeys.map((k) => `tag:${k}`)].map((g) => <option key={g}>{g}</option>)}
          </select>
        </label>
        <button className="primary" disabled={selected.size < 2 || selected.size > 100}
                onClick={() => navigate(`/compare?runs=${[...selected].join(",")}`)}>Compare ({selected.size})</button>
        <details className="menu">
          <summary><Icon name="columns" /> Columns</summary>
          <div className="popover" data-testid="column-chooser">
            {allColumns.map((c) => (
              <div key={c} className="chooser-row">
                <label><input type="checkbox" checked={columns.includes(c)} onChange={() => toggle(c)} /> {columnLabel(c)}</label>
                {columns.includes(c) && <>
                  <button className="icon" aria-label={`move ${columnLabel(c)} left`} onClick={() => remember({ columns: moveColumn(columns, c, -1) })}><Icon name="up" /></button>
                  <button className="icon" aria-label={`move ${columnLabel(c)} right`} onClick={() => remember({ columns: moveColumn(columns, c, 1) })}><Icon name="down" /></button>
                </>}
              </div>))}
          </div>
        </details>
        <details className="menu">
          <summary>Views</summary>
          <div className="popover" data-testid="views">
            {views.length === 0 && <div className="muted small">No saved views yet.</div>}
            {views.map((v) => (
              <div key={v.name} className="chooser-row">
                <Link to={`?${v.query}`} onClick={() => setFilterText(new URLSearchParams(v.query).get("filter") ?? "")}>{v.name}</Link>
                <button className="icon" aria-label={`delete view ${v.name}`} onClick={() => storeViews(views.filter((w) => w.name !== v.name))}>×</button>
              </div>))}
            <div className="toolbar" style={{ marginTop: 8 }}>
              <input aria-label="view name" placeholder="view name" value={viewName} onChange={(e) => setViewName(e.target.value)} />
              <button disabled={!viewName} onClick={() => { storeViews(saveView(views, { name: viewName, query: viewQuery() })); setViewName(""); }}>
                Save view</button>
            </div>
            <button onClick={() => void navigator.clipboard?.writeText(`${location.origin}${location.pathname}?${viewQuery()}`).catch(() => undefined)}>
              <Icon name="link" /> Copy link to this view</button>
          </div>
        </details>
      </div>
      {groupBy && (
        <table className="plain" data-testid="groups" style={{ marginBottom: 8 }}>
          <thead><tr><th>{groupBy}</th><th className="num">runs</th>{metricKeys.slice(0, 6).map((m) => <th key={m} className="num">{m} ({how}) mean ± std</th>)}</tr></thead>
          <tbody>{groupStats(runs, groupBy, metricKeys[0] ?? "", how).map((g) => (
            <tr key={g.group}><td>{g.group}</td><td className="num">{g.count}</td>
              {metricKeys.slice(0, 6).map((m) => {
                const stat = groupStats(runs.filter((r) => ((groupBy.startsWith("tag:") ? r.tags : r.params)[groupBy.split(":").slice(1).join(":")] ?? "(none)") === g.group), groupBy, m, how)[0];
                return <td key={m} className="num">{stat?.mean === null || !stat ? "" : `${formatNumber(stat.mean)} ± ${formatNumber(stat.std)}`}</td>;
              })}</tr>))}</tbody>
        </table>
      )}
      {error && (error.position !== undefined ? (
        <div className="error" role="alert" data-testid="filter-error">
          {`${filter}\n${" ".repeat(error.position)}^\n`}{error.message}
        </div>) : <Failed error={error.message} retry={() => void search(null)} />)}
      {!loaded ? <Loading what="runs" /> : runs.length === 0 && !filter ? (
        <Empty title="No runs in this experiment yet"><FirstRunSnippet experiment={name} /></Empty>
      ) : runs.length === 0 && !error ? (
        <Empty title="No run matches this filter"><p>Loosen the filter, or clear it to see every run.</p></Empty>
      ) : (
      <div className="grid" ref={scroller} data-testid="runs-grid" role="table" aria-label="runs"
           aria-rowcount={rows.length + 1}>
        <div className="row head" role="row">
          <div className="cell name" role="columnheader" style={{ width: widthOf("name") }}>
            <button className="sort" onClick={() => clickHeader("attr:run_name")}><span>Run{sort === "attr:run_name" ? (descending ? " ▼" : " ▲") : ""}</span></button>
            <div className="resizer" role="separator" aria-orientation="vertical" aria-label="resize Run" tabIndex={0}
                 aria-valuenow={widthOf("name")} aria-valuemin={60} aria-valuemax={1200}
                 onPointerDown={(e) => resize("name", e)} onKeyDown={(e) => keyResize("name", e)} />
          </div>
          {columns.map((c) => (
            <div key={c} className={c.startsWith("metric:") ? "cell num" : "cell"} data-column={c} role="columnheader"
                 style={{ width: widthOf(c) }}
                 aria-sort={sort === c ? (descending ? "descending" : "ascending") : undefined}>
              {c.startsWith("attr:") && !SORTABLE.has(c) ? <span>{columnLabel(c)}</span>
                : <button className="sort" onClick={() => clickHeader(c)} title={`sort by ${columnLabel(c)}`}>
                  <span>{columnLabel(c)}{sort === c ? (descending ? " ▼" : " ▲") : ""}</span></button>}
              {c.startsWith("metric:") && (
                <select aria-label={`aggregation of ${c.slice(7)}`} value={aggOf(c)} style={{ padding: 0, marginLeft: 4 }}
                        onChange={(e) => setParam({ aggs: Object.entries({ ...columnAggs, [c]: e.target.value })
                          .map(([k, v]) => `${k}=${v}`).join(",") })}>
                  {AGGREGATIONS.map((a) => <option key={a}>{a}</option>)}
                </select>)}
              <div className="resizer" role="separator" aria-orientation="vertical" aria-label={`resize ${columnLabel(c)}`}
                   aria-valuenow={widthOf(c)} aria-valuemin={60} aria-valuemax={1200} tabIndex={0} onPointerDown={(e) => resize(c, e)} onKeyDown={(e) => keyResize(c, e)} />
            </div>
          ))}
        </div>
        <div style={{ height: virtual.getTotalSize(), position: "relative" }} role="rowgroup">
          {virtual.getVirtualItems().map((item) => {
            const { run, depth } = rows[item.index];
            return (
              <div key={run.run_id} className="row" data-testid="run-row" role="row"
                   style={{ position: "absolute", top: item.start }}>
                <div className="cell name" role="cell" style={{ width: widthOf("name"), paddingLeft: 8 + depth * 16 }}>
                  <input type="checkbox" aria-label={`select ${run.name}`} checked={selected.has(run.run_id)}
                         onChange={() => {
                           const next = new Set(selected);
                           if (next.has(run.run_id)) next.delete(run.run_id); else next.add(run.run_id);
                           setSelected(next);
                         }} />
                  {parents.has(run.run_id) && (
                    <button className="icon" aria-expanded={!collapsed.has(run.run_id)}
                            aria-label={`${collapsed.has(run.run_id) ? "unfold" : "fold"} children of ${run.name}`} onClick={() => {
                      const next = new Set(collapsed);
                      if (next.has(run.run_id)) next.delete(run.run_id); else next.add(run.run_id);
                      setCollapsed(next);
                    }}><Icon name={collapsed.has(run.run_id) ? "unfold" : "fold"} /></button>
                  )}
                  <Link to={`/runs/${run.run_id}`} title={run.run_id}>{run.name}</Link>
                </div>
                {columns.map((c) => <Cell key={c} run={run} column={c} width={widthOf(c)} how={aggOf(c)} />)}
              </div>
            );
          })}
        </div>
      </div>)}
      {runs.length > 0 && (
        <ChartsPanel runs={chartRuns}
                     all={runs} metricKeys={metricKeys} paramKeys={paramKeys} tagKeys={tagKeys} how={how}
                     brushes={brushes} onBrush={setBrushes} from={selected.size ? "selected" : "visible"} />
      )}
    </div>
  );
}

function Cell({ run, column, width, how }: { run: Run; column: string; width: number; how: Aggregation }) {
  const props = { "data-column": column, role: "cell", style: { width } };
  if (column.startsWith("metric:")) {
    const { value, step } = aggregate(run.metrics[column.slice(7)], how);
    return <div className="cell num" {...props} title={step === null ? "" : `step ${step}`}>{formatNumber(value)}</div>;
  }
  switch (column) {
    case "attr:status": return <div className="cell" {...props}><Status status={run.status} /></div>;
    case "attr:start_time": return <div className="cell" {...props}><Time ms={run.start_time} /></div>;
    case "attr:duration": return <div className="cell num" {...props}>{formatDuration(run.start_time, run.end_time)}</div>;
    case "attr:user": return <div className="cell" {...props}>{run.user}</div>;
    case "attr:compliant": return <div className="cell" {...props}><ComplianceBadge compliant={run.compliant} /></div>;
    case "attr:commit": {
      const commit = run.tags["cairn.source.git.commit"] ?? "";
      return <div className="cell mono" {...props} title={commit}>{commit.slice(0, 8)}</div>;
    }
    case "attr:tags": return (
      <div className="cell" {...props}>{Object.entries(run.tags).filter(([k]) => !k.startsWith("cairn."))
        .map(([k, v]) => <span key={k} className="chip" title={`${k}=${v}`}>{k}={v}</span>)}</div>);
    default: {
      const value = column.startsWith("tag:") ? run.tags[column.slice(4)] : run.params[column.slice(6)];
      return <div className="cell" {...props} title={value ?? ""}>{value ?? ""}</div>;
    }
  }
}
