import { describe, expect, it } from "vitest";
import type { Run } from "./api";
import { differingParams } from "./compare";

describe("differingParams", () => {
  it("keeps the params that differ or are missing somewhere", () => {
    const run = (params: Record<string, string>) => ({ params } as Run);
    const runs = [run({ lr: "0.1", seed: "1", opt: "adam" }), run({ lr: "0.01", seed: "1", opt: "adam" }),
                  run({ lr: "0.1", seed: "1" })];
    expect(differingParams(runs)).toEqual(["lr", "opt"]);
    expect(differingParams([])).toEqual([]);
  });
});
