import { describe, expect, it } from "vitest";
import { defaultColumns, moveColumn, parseColumns, saveView, serializeColumns } from "./views";

describe("runs table views", () => {
  it("round-trips columns through the URL, names with commas included", () => {
    const columns = ["metric:a,b", "param:lr", "tag:team"];
    expect(parseColumns(serializeColumns(columns))).toEqual(columns);
    expect(parseColumns(null)).toBe(null);
  });
  it("moves a column within bounds", () => {
    expect(moveColumn(["a", "b", "c"], "b", -1)).toEqual(["b", "a", "c"]);
    expect(moveColumn(["a", "b", "c"], "c", 1)).toEqual(["a", "b", "c"]);
  });
  it("starts with start time, duration and tags, then metrics and params", () => {
    const columns = defaultColumns(["loss"], ["lr"]);
    expect(columns).toContain("attr:start_time");
    expect(columns).toContain("attr:tags");
    expect(columns.slice(-2)).toEqual(["metric:loss", "param:lr"]);
  });
  it("replaces a saved view of the same name", () => {
    const views = saveView([{ name: "b", query: "1" }], { name: "a", query: "2" });
    expect(saveView(views, { name: "b", query: "3" })).toEqual([{ name: "a", query: "2" }, { name: "b", query: "3" }]);
  });
});
