import type { Run } from "./api";

/** Param keys whose values are not the same in every run (a key missing from a run counts as different). */
export function differingParams(runs: Run[]): string[] {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  return keys.filter((key) => new Set(runs.map((r) => r.params[key] ?? "\u0000missing")).size > 1);
}
