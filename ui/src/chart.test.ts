import { describe, expect, it } from "vitest";
import { smooth } from "./chart";

describe("smooth", () => {
  it("averages exponentially and keeps gaps", () => {
    expect(smooth([1, 3, null, 3], 0)).toEqual([1, 3, null, 3]);
    expect(smooth([1, 3, null, 3], 0.5)).toEqual([1, 2, null, 2.5]);
  });
});
