// The only place the UI talks to the server: the public /api/v1, same origin, with the session cookie.

import type { components } from "./api-types";

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

// Answer types, generated from the server's OpenAPI document (scripts/ui-types writes api-types.ts; the test
// script fails when it is not current). Named here so that the pages keep importing them from one place.
type Schemas = components["schemas"];
export type Summary = Schemas["MetricSummary"];
export type Run = Schemas["Run"];
export type Experiment = Schemas["Experiment"];
