import { describe, expect, it } from "vitest";
import type { Run, Summary } from "./api";
import { aggregate, formatDuration, formatNumber, groupStats, nest, orderBy, toNumber } from "./format";

const summary: Summary = {
  key: "loss", goal: "min", count: 4, last: 0.3, last_step: 3, min: 0.2, min_step: 2, max: 0.9, max_step: 0,
  mean: 0.475, best: 0.2, best_step: 2,
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
