// Charts across runs: metric overlays (per run, or grouped with mean and a min–max band), scatter, parallel coordinates.
import { useEffect, useMemo, useRef, useState } from "react";
import type { Run } from "../api";
import { type Buckets, colorOf, fetchBuckets, type Line, num, Plot } from "../chart";
import { aggregate, type Aggregation, formatNumber, toNumber } from "../format";
import { Icon } from "../ui";

/** A run's value for an axis: ``param:lr``, ``tag:team`` or ``metric:loss`` (with an aggregation). */
export function valueOf(run: Run, axis: string, how: Aggregation): number | string | null {
  const [kind, ...rest] = axis.split(":");
  const key = rest.join(":");
  if (kind === "metric") return aggregate(run.metrics[key], how).value;
  const raw = kind === "tag" ? run.tags[key] : run.params[key];
  if (raw === undefined) return null;
  const parsed = toNumber(raw);
  return parsed === null ? raw : parsed;
}

/** Series of several runs put on one x axis (the union of their bucket steps). */
export function align(all: { first_steps: number[]; values: (number | null)[] }[]): [number[], (number | null)[][]] {
  const steps = [...new Set(all.flatMap((b) => b.first_steps))].sort((a, b) => a - b);
  const index = new Map(steps.map((s, i) => [s, i]));
  const lines = all.map((b) => {
    const line: (number | null)[] = new Array(steps.length).fill(null);
    b.first_steps.forEach((s, i) => { line[index.get(s)!] = b.values[i]; });
    return line;
  });
  return [steps, lines];
}

/** Per step: mean, min and max over the runs of one group that have a value there. */
export function bandOf(lines: (number | null)[][]): { mean: (number | null)[]; min: (number | null)[]; max: (number | null)[] } {
  const length = lines[0]?.length ?? 0;
  const mean: (number | null)[] = [], min: (number | null)[] = [], max: (number | null)[] = [];
  for (let i = 0; i < length; i += 1) {
    const here = lines.map((l) => l[i]).filter((v): v is number => v !== null);
    mean.push(here.length ? here.reduce((a, b) => a + b, 0) / here.length : null);
    min.push(here.length ? Math.min(...here) : null);
    max.push(here.length ? Math.max(...here) : null);
  }
  return { mean, min, max };
}

/** Up to this many runs, each run's line carries its own min–max band from the server's buckets; more would hide the lines. */
export const BANDED_RUNS = 10;
type Series = (number | null)[];

/** Adds a mean line and, when given, its max and min lines (kept out of the legend) joined by a band. */
function banded(out: { lines: Line[]; bands: [number, number][] }, label: string, color: string, mean: Series,
                spread: { min: Series; max: Series } | null, width?: number): void {
  out.lines.push({ label, color, values: mean, width });
  if (!spread) return;
  out.lines.push({ label: `${label} max`, color: color + "55", values: spread.max, width: 0.5, legend: false },
                 { label: `${label} min`, color: color + "55", values: spread.min, width: 0.5, legend: false });
  out.bands.push([out.lines.length - 2, out.lines.length - 1]);
}

/** A mean line per run, each with its bucket min–max band when ``spread`` (per run) is given. */
export function runLines(runs: Run[], means: Series[], spread: { min: Series[]; max: Series[] } | null) {
  const out = { lines: [] as Line[], bands: [] as [number, number][] };
  runs.forEach((r, i) => banded(out, r.name, colorOf(i), means[i], spread && { min: spread.min[i], max: spread.max[i] }));
  return out;
}

/** A mean line and a min–max band over the runs of each group. */
export function groupLines(groups: Map<string, Series[]>) {
  const out = { lines: [] as Line[], bands: [] as [number, number][] };
  [...groups.entries()].sort().forEach(([group, members], g) => {
    const band = bandOf(members);
    banded(out, `${group} (${members.length})`, colorOf(g), band.mean, band, 2);
  });
  return out;
}

/** One metric for many runs: a line per run, or with ``groupBy`` a mean line and a min–max band per group. */
export function Overlay({ runs, metric, groupBy, onDrawn }: { runs: Run[]; metric: string; groupBy?: string | null;
                                                               onDrawn?: (ms: number) => void }) {
  const [data, setData] = useState<{ xs: number[]; lines: Line[]; bands: [number, number][] } | null>(null);
  useEffect(() => {
    let cancelled = false;
    const started = performance.now();
    const withMetric = runs.filter((r) => r.metrics[metric]);
    void Promise.all(withMetric.map((r) => fetchBuckets(r.run_id, metric, 500))).then((all) => {
      if (cancelled) return;
      const series = (pick: (b: Buckets) => (number | string | null)[]) =>
        align(all.map((b) => ({ first_steps: b.first_steps, values: pick(b).map(num) })));
      const [xs, perRun] = series((b) => b.mean);
      if (!groupBy) {
        const spread = withMetric.length <= BANDED_RUNS ? { min: series((b) => b.min)[1], max: series((b) => b.max)[1] } : null;
        setData({ xs, ...runLines(withMetric, perRun, spread) });
      } else {
        const groups = new Map<string, Series[]>();
        withMetric.forEach((r, i) => {
          const key = String(valueOf(r, groupBy, "last") ?? "(none)");
          groups.set(key, [...(groups.get(key) ?? []), perRun[i]]);
        });
        setData({ xs, ...groupLines(groups) });
      }
      onDrawn?.(Math.round(performance.now() - started));
    });
    return () => { cancelled = true; };
  }, [runs, metric, groupBy]);
  return (
    <div className="card" data-testid={`overlay-${metric}`}>
      {data ? <Plot title={metric} xs={data.xs} lines={data.lines} bands={data.bands} integerX />
        : <div className="state" role="status"><span className="spinner" aria-hidden="true" />Loading {metric}…</div>}
    </div>
  );
}

/** One value of each run against another, as points. */
export function Scatter({ runs, x, y, how }: { runs: Run[]; x: string; y: string; how: Aggregation }) {
  const width = 520, height = 300, pad = 44;
  const points = runs.slice(0, DRAWN).map((r) => ({ run: r, x: valueOf(r, x, how), y: valueOf(r, y, how) }))
    .filter((p): p is { run: Run; x: number; y: number } => typeof p.x === "number" && typeof p.y === "number"
      && Number.isFinite(p.x) && Number.isFinite(p.y));
  const scale = (values: number[], lo: number, hi: number) => {
    const min = Math.min(...values), max = Math.max(...values);
    return (v: number) => (max === min ? (lo + hi) / 2 : lo + ((v - min) / (max - min)) * (hi - lo));
  };
  const sx = scale(points.map((p) => p.x), pad, width - 12), sy = scale(points.map((p) => p.y), height - pad, 12);
  const extent = (values: number[]) => values.length ? `${formatNumber(Math.min(...values))} – ${formatNumber(Math.max(...values))}` : "";
  return (
    <svg width={width} height={height} className="card" data-testid="scatter" role="img"
         aria-label={`scatter of ${y} against ${x}`}>
      <line className="axis-line" x1={pad} x2={width - 12} y1={height - pad} y2={height - pad} />
      <line className="axis-line" x1={pad} x2={pad} y1={12} y2={height - pad} />
      <text x={width / 2} y={height - 8} textAnchor="middle" fontSize={12}>{x} ({extent(points.map((p) => p.x))})</text>
      <text x={12} y={height / 2} textAnchor="middle" fontSize={12} transform={`rotate(-90 12 ${height / 2})`}>
        {y} ({extent(points.map((p) => p.y))})</text>
      {points.map((p, i) => (
        <circle key={p.run.run_id} cx={sx(p.x)} cy={sy(p.y)} r={4} fill={colorOf(i)} fillOpacity={0.8}>
          <title>{p.run.name}: {formatNumber(p.x)}, {formatNumber(p.y)}</title></circle>))}
    </svg>
  );
}

export type Brushes = Record<string, [number, number]>;
/** Runs drawn in a scatter or parallel chart: more are unreadable and slow every re-render of a 10,000-run table. */
const DRAWN = 1000;

/** Runs whose values fall inside every brushed range (a run without a value on a brushed axis is out). */
export function brushed(runs: Run[], brushes: Brushes, how: Aggregation): Run[] {
  const axes = Object.entries(brushes);
  if (!axes.length) return runs;
  return runs.filter((r) => axes.every(([axis, [lo, hi]]) => {
    const v = valueOf(r, axis, how);
    return typeof v === "number" && v >= lo && v <= hi;
  }));
}

const KEY_ALIASES: Record<string, string> = { PageUp: "+", "=": "+", PageDown: "-" };

/**
 * A brush after a key pressed on a focused axis: arrows move it by a twentieth of the axis, +/- (or PageUp/PageDown)
 * widen or narrow it, Escape or Delete clear it (null). The first key on an unbrushed axis brushes its middle fifth.
 * ``undefined``: not a brushing key.
 */
export function nudge(brush: [number, number] | undefined, [lo, hi]: readonly [number, number], key: string): [number, number] | null | undefined {
  if (["Escape", "Delete", "Backspace"].includes(key)) return null;
  const step = ((hi - lo) || 1) / 20;
  const moves: Record<string, (b: [number, number]) => [number, number]> = {
    ArrowUp: ([a, b]) => { const by = Math.min(step, Math.max(0, hi - b)); return [a + by, b + by]; },
    ArrowDown: ([a, b]) => { const by = Math.min(step, Math.max(0, a - lo)); return [a - by, b - by]; },
    "+": ([a, b]) => [Math.max(lo, a - step / 2), Math.min(hi, b + step / 2)],
    "-": ([a, b]) => (b - a > step ? [a + step / 2, b - step / 2] : [a, b]),
  };
  const move = moves[KEY_ALIASES[key] ?? key];
  if (!move) return undefined;
  if (!brush) { const mid = (lo + hi) / 2; return [mid - 2 * step, mid + 2 * step]; }
  return move(brush);
}

/** Parallel coordinates; dragging along an axis brushes a range, and the brushes filter the runs table. */
export function Parallel({ runs, axes, how, brushes, onBrush }: { runs: Run[]; axes: string[]; how: Aggregation;
  brushes: Brushes; onBrush: (b: Brushes) => void }) {
  const gap = 150, height = 260, top = 28, bottom = height - 20;
  const width = Math.max(300, gap * axes.length);
  const extents = useMemo(() => axes.map((a) => {
    const values = runs.map((r) => valueOf(r, a, how)).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
    return values.length ? [Math.min(...values), Math.max(...values)] as const : [0, 1] as const;
  }), [runs, axes, how]);
  const toY = (a: number, v: number) => { const [lo, hi] = extents[a]; return hi === lo ? (top + bottom) / 2 : bottom - ((v - lo) / (hi - lo)) * (bottom - top); };
  const toValue = (a: number, y: number) => { const [lo, hi] = extents[a]; return lo + ((bottom - y) / (bottom - top)) * (hi - lo); };
  const svg = useRef<SVGSVGElement>(null);
  const [drag, setDrag] = useState<{ axis: number; from: number; to: number } | null>(null);
  const inside = brushed(runs, brushes, how);
  const kept = new Set(inside.map((r) => r.run_id));
  const onKey = (name: string, j: number, event: React.KeyboardEvent) => {
    const next = nudge(brushes[name], extents[j], event.key);
    if (next === undefined) return;
    event.preventDefault();
    const rest = { ...brushes };
    delete rest[name];
    onBrush(next ? { ...rest, [name]: next } : rest);
  };
  const yOf = (event: React.PointerEvent) => Math.min(bottom, Math.max(top, event.clientY - svg.current!.getBoundingClientRect().top));
  const finish = () => {
    if (!drag) return;
    const name = axes[drag.axis];
    const next = { ...brushes };
    if (Math.abs(drag.to - drag.from) < 3) delete next[name];
    else {
      const values = [toValue(drag.axis, drag.from), toValue(drag.axis, drag.to)].sort((a, b) => a - b);
      next[name] = [values[0], values[1]];
    }
    setDrag(null);
    onBrush(next);
  };
  return (
    <div className="card">
      <div className="toolbar small muted">
        Drag along an axis (or focus it and use the arrow keys, + and −) to keep only the runs in that range; the table follows.
        {Object.keys(brushes).length > 0 && <button onClick={() => onBrush({})}><Icon name="stop" />Clear brush</button>}
        <span data-testid="brushed-count">{inside.length} of {runs.length} runs</span>
      </div>
      <svg ref={svg} width={width} height={height} data-testid="parallel" role="group"
           aria-label={`parallel coordinates of ${axes.join(", ")}`}
           onPointerMove={(e) => drag && setDrag({ ...drag, to: yOf(e) })} onPointerUp={finish} onPointerLeave={finish}>
        {runs.slice(0, DRAWN).map((r, i) => {
          const points = axes.map((a, j) => { const v = valueOf(r, a, how); return typeof v === "number" && Number.isFinite(v) ? `${60 + j * gap},${toY(j, v)}` : null; })
            .filter(Boolean);
          return <polyline key={r.run_id} fill="none" stroke={kept.has(r.run_id) ? colorOf(i) : "#8888"} strokeWidth={kept.has(r.run_id) ? 1.5 : 0.7}
                           points={points.join(" ")}><title>{r.name}</title></polyline>;
        })}
        {axes.map((name, j) => {
          const brush = brushes[name];
          return (
            <g key={name} data-testid={`axis-${name}`}>
              <text x={60 + j * gap} y={14} textAnchor="middle" fontSize={12}>{name.replace(/^(param|metric|tag):/, "")}</text>
              <line className="axis-line" x1={60 + j * gap} x2={60 + j * gap} y1={top} y2={bottom} strokeWidth={2} />
              <text x={60 + j * gap + 6} y={top + 4} fontSize={10}>{formatNumber(extents[j][1])}</text>
              <text x={60 + j * gap + 6} y={bottom} fontSize={10}>{formatNumber(extents[j][0])}</text>
              {brush && !drag && <rect className="brush" x={60 + j * gap - 8} width={16} y={toY(j, brush[1])}
                                       height={Math.max(2, toY(j, brush[0]) - toY(j, brush[1]))} />}
              {drag?.axis === j && <rect className="brush" x={60 + j * gap - 8} width={16} y={Math.min(drag.from, drag.to)}
                                         height={Math.abs(drag.to - drag.from)} />}
              <rect x={60 + j * gap - 14} width={28} y={top} height={bottom - top} fill="transparent" style={{ cursor: "crosshair" }}
                    data-testid={`brush-${name}`} tabIndex={0} role="slider" aria-orientation="vertical"
                    aria-label={`brush ${name.replace(/^(param|metric|tag):/, "")}`}
                    aria-valuemin={extents[j][0]} aria-valuemax={extents[j][1]}
                    aria-valuenow={brush ? (brush[0] + brush[1]) / 2 : extents[j][0]}
                    aria-valuetext={brush ? `${formatNumber(brush[0])} to ${formatNumber(brush[1])}` : "not brushed"}
                    onKeyDown={(e) => onKey(name, j, e)}
                    onPointerDown={(e) => { const y = yOf(e); setDrag({ axis: j, from: y, to: y }); }} />
            </g>);
        })}
      </svg>
    </div>
  );
}
