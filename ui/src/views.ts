// The runs table's view: columns (chosen, ordered, sized) and saved views, kept per experiment in localStorage.

export const ATTRIBUTE_COLUMNS = ["attr:status", "attr:start_time", "attr:duration", "attr:user", "attr:commit", "attr:compliant", "attr:tags"];
export const DEFAULT_WIDTH = 140;

export function parseColumns(text: string | null): string[] | null {
  if (!text) return null;
  return text.split(",").filter(Boolean).map(decodeURIComponent);
}

export function serializeColumns(columns: string[]): string {
  return columns.map(encodeURIComponent).join(",");
}

export function defaultColumns(metrics: string[], params: string[]): string[] {
  return [...ATTRIBUTE_COLUMNS.filter((c) => c !== "attr:commit" && c !== "attr:compliant"), ...metrics.slice(0, 4).map((k) => `metric:${k}`),
          ...params.slice(0, 3).map((k) => `param:${k}`)];
}

/** The column moved one place left (-1) or right (+1), staying in bounds. */
export function moveColumn(columns: string[], column: string, delta: number): string[] {
  const at = columns.indexOf(column);
  const to = at + delta;
  if (at < 0 || to < 0 || to >= columns.length) return columns;
  const next = [...columns];
  [next[at], next[to]] = [next[to], next[at]];
  return next;
}

export function readStored<T>(key: string, fallback: T): T {
  try {
    const text = localStorage.getItem(key);
    return text === null ? fallback : (JSON.parse(text) as T);
  } catch {
    return fallback;
  }
}

export function writeStored(key: string, value: unknown): void {
  localStorage.setItem(key, JSON.stringify(value));
}

export interface SavedView { name: string; query: string }

/** Saved views with this one added (a view of the same name is replaced). */
export function saveView(views: SavedView[], view: SavedView): SavedView[] {
  return [...views.filter((v) => v.name !== view.name), view].sort((a, b) => a.name.localeCompare(b.name));
}

export function columnLabel(column: string): string {
  const [kind, ...rest] = column.split(":");
  const name = rest.join(":");
  if (kind === "attr") return { status: "Status", start_time: "Started", duration: "Duration", user: "User",
                                commit: "Commit", compliant: "Conventions", tags: "Tags" }[name] ?? name;
  return kind === "metric" ? name : `${kind} ${name}`;
}
