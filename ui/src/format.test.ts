import { describe, expect, it } from "vitest";
import type { Run, Summary } from "./api";
import { aggregate, formatDuration, formatNumber, groupStats, nest, orderBy, toNumber } from "./format";

const summary: Summary = {
  key: "loss", goal: "min", count: 4, last: 0.3, last_step: 3, last_timestamp: 3, min: 0.2, min_step: 2,
  max: 0.9, max_step: 0, mean: 0.475, best: 0.2, best_step: 2,
};

describe("aggregate", () => {
  it("picks the value and step of each aggregation", () => {
    expect(aggregate(summary, "last")).toEqual({ value: 0.3, step: 3 });
    expect(aggregate(summary, "min")).toEqual({ value: 0.2, step: 2 });
    expect(aggregate(summary, "max")).toEqual({ value: 0.9, step: 0 });
    expect(aggregate(summary, "best")).toEqual({ value: 0.2, step: 2 });
    expect(aggregate({ ...summary, goal: null }, "best")).toEqual({ value: 0.3, step: 3 });
    expect(aggregate(undefined, "min")).toEqual({ value: null, step: null });
  });
  it("reads NaN and infinities sent as strings", () => {
    expect(toNumber("NaN")).toBeNaN();
    expect(toNumber("-Infinity")).toBe(-Infinity);
    expect(formatNumber(toNumber("Infinity"))).toBe("∞");
  });
});

describe("formatting", () => {
  it("keeps numbers short", () => {
    expect(formatNumber(0.123456789)).toBe("0.12346");
    expect(formatNumber(12345678)).toBe("1.235e+7");
    expect(formatNumber(null)).toBe("");
  });
  it("says durations plainly", () => {
    expect(formatDuration(0, 59_000)).toBe("59s");
    expect(formatDuration(0, 3_725_000)).toBe("1h 2m");
  });
});

describe("orderBy", () => {
  it("orders metrics by their aggregation and quotes odd names", () => {
    expect(orderBy("metric:val_loss", "min", false)).toBe("metrics.val_loss.min ASC");
    expect(orderBy("param:learning rate", "last", true)).toBe("params.`learning rate` DESC");
    expect(orderBy("attr:start_time", "last", true)).toBe("attributes.start_time DESC");
  });
});

describe("nest", () => {
  const run = (id: string, parent: string | null = null) => ({ run_id: id, parent_run_id: parent } as Run);
  it("folds children under their parent", () => {
    const runs = [run("c1", "p"), run("p"), run("x"), run("c2", "p")];
    expect(nest(runs, new Set()).map((r) => [r.run.run_id, r.depth])).toEqual([["p", 0], ["c1", 1], ["c2", 1], ["x", 0]]);
    expect(nest(runs, new Set(["p"])).map((r) => r.run.run_id)).toEqual(["p", "x"]);
    expect(nest([run("orphan", "gone")], new Set()).map((r) => r.depth)).toEqual([0]);
  });
});

describe("groupStats", () => {
  it("gives mean and spread of an aggregate per group", () => {
    const run = (lr: string, min: number) => ({ params: { lr }, tags: {}, metrics: { loss: { ...summary, min } } } as unknown as Run);
    const stats = groupStats([run("0.1", 0.2), run("0.1", 0.4), run("0.01", 0.1), { params: {}, tags: {}, metrics: {} } as unknown as Run],
                             "param:lr", "loss", "min");
    expect(stats.map((s) => [s.group, s.count])).toEqual([["(none)", 1], ["0.01", 1], ["0.1", 2]]);
    expect(stats[2].mean).toBeCloseTo(0.3);
    expect(stats[2].std).toBeCloseTo(0.1);
    expect(stats[0].mean).toBeNull();
  });
});

describe("human-readable values", () => {
  it("sizes in binary units", async () => {
    const { formatBytes } = await import("./format");
    expect(formatBytes(7)).toBe("7 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(300 * 1024 * 1024)).toBe("300 MiB");
    expect(formatBytes(null)).toBe("");
  });
  it("relative times", async () => {
    const { formatRelative } = await import("./format");
    const now = 1_700_000_000_000;
    expect(formatRelative(now - 3 * 60_000, now)).toBe("3 minutes ago");
    expect(formatRelative(now - 2 * 86_400_000, now)).toBe("2 days ago");
    expect(formatRelative(now - 2000, now)).toBe("just now");
  });
  it("integer tick increments and last values", async () => {
    const { INTEGER_INCREMENTS, lastValue } = await import("./format");
    expect(INTEGER_INCREMENTS.every((i) => Number.isInteger(i))).toBe(true);
    expect(INTEGER_INCREMENTS.slice(0, 4)).toEqual([1, 2, 5, 10]);
    expect(lastValue([1, 2, null])).toBe(2);
    expect(lastValue([null])).toBe(null);
    const { valueAt } = await import("./format");
    expect(valueAt([1, null, 3, null], 1)).toBe(1);  // between two points: the latest one
    expect(valueAt([1, null, 3, null], 3)).toBe(null);  // after the line's end
    expect(valueAt([null, 2], 0)).toBe(null);  // before its start
  });
  it("diffs lines", async () => {
    const { diffLines } = await import("./format");
    expect(diffLines("a\nb\nc", "a\nx\nc")).toEqual([
      { kind: "same", text: "a" }, { kind: "del", text: "b" }, { kind: "add", text: "x" }, { kind: "same", text: "c" }]);
  });
});
