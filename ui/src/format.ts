// Pure helpers with the UI's logic (tested with Vitest).
import type { Run, Summary } from "./api";

export const AGGREGATIONS = ["last", "min", "max", "mean", "best"] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export function toNumber(value: number | string | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return value;
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  const parsed = Number(value);
  return Number.isNaN(parsed) ? null : parsed;
}

/** The value and its step for one aggregation of a metric summary; "best" falls back to last without a goal. */
export function aggregate(summary: Summary | undefined, how: Aggregation): { value: number | null; step: number | null } {
  if (!summary) return { value: null, step: null };
  switch (how) {
    case "min": return { value: toNumber(summary.min), step: summary.min_step };
    case "max": return { value: toNumber(summary.max), step: summary.max_step };
    case "mean": return { value: toNumber(summary.mean), step: null };
    case "best":
      return summary.goal ? { value: toNumber(summary.best), step: summary.best_step }
        : { value: toNumber(summary.last), step: summary.last_step };
    default: return { value: toNumber(summary.last), step: summary.last_step };
  }
}

export function formatNumber(value: number | null): string {
  if (value === null) return "";
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "-∞";
  if (value !== 0 && (Math.abs(value) >= 1e6 || Math.abs(value) < 1e-4)) return value.toExponential(3);
  return Number(value.toPrecision(5)).toString();
}

export function formatDuration(start: number, end: number | null, now: number = Date.now()): string {
  const seconds = Math.max(0, Math.round(((end ?? now) - start) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

export function formatTime(ms: number | null): string {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "";
}

/** The server's order_by for a column: a metric with its aggregation, a param, a tag or an attribute. */
export function orderBy(column: string, how: Aggregation, descending: boolean): string {
  const [kind, ...rest] = column.split(":");
  const name = rest.join(":");
  const quoted = /^[A-Za-z_][\w.]*$/.test(name) ? name : `\`${name}\``;
  const field = kind === "metric" ? `metrics.${quoted}.${how}` : kind === "param" ? `params.${quoted}`
    : kind === "tag" ? `tags.${quoted}` : `attributes.${name}`;
  return `${field} ${descending ? "DESC" : "ASC"}`;
}

/** Runs grouped under their parents, each child after its parent (children of runs not on the page stay top). */
export function nest(runs: Run[], collapsed: Set<string>): { run: Run; depth: number }[] {
  const ids = new Set(runs.map((r) => r.run_id));
  const children = new Map<string, Run[]>();
  const roots: Run[] = [];
  for (const run of runs) {
    if (run.parent_run_id && ids.has(run.parent_run_id)) {
      const list = children.get(run.parent_run_id) ?? [];
      list.push(run);
      children.set(run.parent_run_id, list);
    } else roots.push(run);
  }
  const out: { run: Run; depth: number }[] = [];
  const visit = (run: Run, depth: number) => {
    out.push({ run, depth });
    if (!collapsed.has(run.run_id)) for (const child of children.get(run.run_id) ?? []) visit(child, depth + 1);
  };
  roots.forEach((r) => visit(r, 0));
  return out;
}

export function hasChildren(runs: Run[]): Set<string> {
  return new Set(runs.map((r) => r.parent_run_id).filter((p): p is string => !!p));
}

export interface GroupStat { group: string; count: number; mean: number | null; std: number | null }

/** Runs grouped by a param or tag (``param:lr``, ``tag:team``): count, and mean ± std of a metric aggregate. */
export function groupStats(runs: Run[], by: string, metric: string, how: Aggregation): GroupStat[] {
  const [kind, ...rest] = by.split(":");
  const key = rest.join(":");
  const groups = new Map<string, number[]>();
  const counts = new Map<string, number>();
  for (const run of runs) {
    const group = (kind === "tag" ? run.tags[key] : run.params[key]) ?? "(none)";
    counts.set(group, (counts.get(group) ?? 0) + 1);
    const { value } = aggregate(run.metrics[metric], how);
    if (value !== null && Number.isFinite(value)) groups.set(group, [...(groups.get(group) ?? []), value]);
  }
  return [...counts.keys()].sort().map((group) => {
    const values = groups.get(group) ?? [];
    if (!values.length) return { group, count: counts.get(group)!, mean: null, std: null };
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    return { group, count: counts.get(group)!, mean, std };
  });
}

/** Bytes in the largest unit that keeps the number at or above 1 (1024-based, as file browsers show them). */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${bytes} B` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** "3 minutes ago", "in 2 days": the absolute time goes in a tooltip beside it. */
export function formatRelative(ms: number | null | undefined, now: number = Date.now()): string {
  if (!ms) return "";
  const seconds = Math.round((ms - now) / 1000);
  const steps: [Intl.RelativeTimeFormatUnit, number][] = [["year", 31_536_000], ["month", 2_592_000], ["week", 604_800],
    ["day", 86_400], ["hour", 3600], ["minute", 60]];
  const format = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  for (const [unit, size] of steps) {
    if (Math.abs(seconds) >= size) return format.format(Math.trunc(seconds / size), unit);
  }
  return Math.abs(seconds) < 10 ? "just now" : format.format(seconds, "second");
}

/** Tick increments for a step axis: whole numbers only, so a 3-step chart has no tick at 0.2. */
export const INTEGER_INCREMENTS = Array.from({ length: 15 }, (_, i) => [1, 2, 5].map((m) => m * 10 ** i)).flat();

/** The last value of a series that is a number (what a legend shows when the cursor is elsewhere). */
export function lastValue(values: (number | null)[]): number | null {
  for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null && Number.isFinite(values[i])) return values[i];
  return null;
}

/**
 * A line's value under the cursor: at that index, or its latest point before it while the line goes on (lines of
 * several runs share one x axis, so a run without a point at the hovered step still shows its current value).
 */
export function valueAt(values: (number | null)[], index: number): number | null {
  if (values[index] !== null && values[index] !== undefined) return values[index];
  if (!values.slice(index + 1).some((v) => v !== null)) return null;
  for (let i = index - 1; i >= 0; i -= 1) if (values[i] !== null) return values[i];
  return null;
}

/** Lines of two texts marked same, added or removed (a longest-common-subsequence diff, for small artifacts). */
export function diffLines(before: string, after: string): { kind: "same" | "add" | "del"; text: string }[] {
  const a = before.split("\n").slice(0, 2000), b = after.split("\n").slice(0, 2000);
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: { kind: "same" | "add" | "del"; text: string }[] = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { out.push({ kind: "same", text: a[i] }); i += 1; j += 1; }
    else if (i < a.length && (j >= b.length || lcs[i + 1][j] >= lcs[i][j + 1])) { out.push({ kind: "del", text: a[i] }); i += 1; }
    else { out.push({ kind: "add", text: b[j] }); j += 1; }
  }
  return out;
}
