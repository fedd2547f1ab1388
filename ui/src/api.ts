// The only place the UI talks to the server: the public /api/v1, same origin, with the session cookie.

export class ApiError extends Error {
  status: number;
  code: string;
  field?: string;
  position?: number;
  constructor(status: number, body: { error_code?: string; message?: string; field?: string; position?: number }) {
    super(body.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body.error_code ?? "ERROR";
    this.field = body.field;
    this.position = body.position;
  }
}

const CSRF_KEY = "cairn.csrf";
const WORKSPACE_KEY = "cairn.workspace";

export function workspace(): string | null {
  return localStorage.getItem(WORKSPACE_KEY);
}

/** A URL for plain links (downloads, images) that cannot send headers: the workspace goes in the path. */
export function linkTo(path: string): string {
  const ws = workspace();
  return ws ? `/w/${encodeURIComponent(ws)}${path}` : path;
}

export function setWorkspace(name: string): void {
  localStorage.setItem(WORKSPACE_KEY, name);
}

export function setCsrf(token: string | null): void {
  if (token) sessionStorage.setItem(CSRF_KEY, token);
  else sessionStorage.removeItem(CSRF_KEY);
}

export async function api<T = any>(method: string, path: string, body?: unknown,
                                   params?: Record<string, string | number | undefined>): Promise<T> {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value !== undefined && value !== "") url.searchParams.set(key, String(value));
  }
  const headers: Record<string, string> = { Accept: "application/json" };
  const ws = workspace();
  if (ws) headers["X-Cairn-Workspace"] = ws;
  if (method !== "GET") {
    const csrf = sessionStorage.getItem(CSRF_KEY);
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) throw new ApiError(response.status, data);
  return data as T;
}

export interface Summary {
  key: string; goal: string | null; count: number;
  last: number | string | null; last_step: number | null;
  min: number | string | null; min_step: number | null;
  max: number | string | null; max_step: number | null;
  mean: number | string | null; best: number | string | null; best_step: number | null;
}

export interface Run {
  run_id: string; name: string; experiment_id: number; experiment_name: string; status: string;
  start_time: number; end_time: number | null; user: string; parent_run_id: string | null;
  tags: Record<string, string>; params: Record<string, string>; metrics: Record<string, Summary>;
  datasets: { name: string; uri: string; digest: string; role: string }[];
  compliant?: boolean | null;  // under the conventions in force; null: none are
}

export interface Experiment {
  experiment_id: number; name: string; description: string; lifecycle: string; run_count: number;
  last_activity: number | null; tags: Record<string, string>;
}
