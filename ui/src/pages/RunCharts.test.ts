import { describe, expect, it } from "vitest";
import type { Run } from "../api";
import { align, BANDED_RUNS, groupLines, nudge, runLines } from "./RunCharts";

const run = (name: string) => ({ run_id: name, name }) as Run;

describe("overlay lines", () => {
  it("give each run a min–max band from its buckets when few runs are shown", () => {
    const { lines, bands } = runLines([run("a"), run("b")], [[1, 2], [3, null]], { min: [[0, 1], [2, null]], max: [[2, 3], [4, null]] });
    expect(lines.map((l) => l.label)).toEqual(["a", "a max", "a min", "b", "b max", "b min"]);
    expect(lines.filter((l) => l.legend !== false).map((l) => l.label)).toEqual(["a", "b"]);
    expect(bands).toEqual([[1, 2], [4, 5]]);
    expect(lines[1].values).toEqual([2, 3]);
    expect(lines[5].values).toEqual([2, null]);
  });
  it("draw only mean lines without a spread (too many runs)", () => {
    expect(BANDED_RUNS).toBeGreaterThan(1);
    const { lines, bands } = runLines([run("a")], [[1]], null);
    expect(lines.map((l) => l.label)).toEqual(["a"]);
    expect(bands).toEqual([]);
  });
  it("band groups over their runs", () => {
    const [, perRun] = align([{ first_steps: [0, 1], values: [1, 5] }, { first_steps: [1], values: [3] }]);
    const { lines, bands } = groupLines(new Map([["x", perRun]]));
    expect(lines[0]).toMatchObject({ label: "x (2)", values: [1, 4] });
    expect(lines[1].values).toEqual([1, 5]);
    expect(lines[2].values).toEqual([1, 3]);
    expect(bands).toEqual([[1, 2]]);
  });
});

describe("keyboard brushing", () => {
  const axis = [0, 100] as const;
  it("starts in the middle, moves with arrows within the axis, widens, narrows and clears", () => {
    expect(nudge(undefined, axis, "ArrowUp")).toEqual([40, 60]);
    expect(nudge([40, 60], axis, "ArrowUp")).toEqual([45, 65]);
    expect(nudge([90, 98], axis, "ArrowUp")).toEqual([92, 100]);
    expect(nudge([1, 10], axis, "ArrowDown")).toEqual([0, 9]);
    expect(nudge([40, 60], axis, "+")).toEqual([37.5, 62.5]);
    expect(nudge([40, 60], axis, "PageDown")).toEqual([42.5, 57.5]);
    expect(nudge([40, 44], axis, "-")).toEqual([40, 44]);
    expect(nudge([40, 60], axis, "Escape")).toBeNull();
    expect(nudge([40, 60], axis, "a")).toBeUndefined();
  });
});
