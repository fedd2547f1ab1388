import { describe, expect, it } from "vitest";
import { inline, markdownBlocks, yamlTree } from "./preview";
import { paramDiff } from "./pages/RunCompare";

describe("markdown", () => {
  it("keeps headings, lists, code and paragraphs, and leaves HTML as text", () => {
    const blocks = markdownBlocks("# Title\n\nSome <script>x</script>\ntext\n\n- a\n- b\n\n```\ncode <b>\n```\n> quoted");
    expect(blocks).toEqual([
      { kind: "heading", level: 1, text: "Title" },
      { kind: "paragraph", text: "Some <script>x</script> text" },
      { kind: "list", items: ["a", "b"] },
      { kind: "code", text: "code <b>" },
      { kind: "quote", text: "quoted" },
    ]);
  });
  it("marks inline code and bold, everything else a string", () => {
    const parts = inline("use `fit()` **now** <img>");
    expect(parts.filter((p) => typeof p === "string")).toEqual(["use ", " ", " <img>"]);
  });
});

describe("yaml", () => {
  it("nests keys by indentation", () => {
    const tree = yamlTree("# c\nmodel:\n  name: x\n  layers:\n    - 64\n    - 32\nlr: 0.1\n");
    expect(tree.map((n) => n.key)).toEqual(["model", "lr"]);
    expect(tree[0].children.map((n) => [n.key, n.value])).toEqual([["name", "x"], ["layers", ""]]);
    expect(tree[0].children[1].children.map((n) => n.value)).toEqual(["- 64", "- 32"]);
    expect(tree[1].value).toBe("0.1");
  });
});

describe("param diff", () => {
  it("lists both runs' params with the differing ones marked", () => {
    expect(paramDiff({ lr: "0.1", depth: "3" }, { lr: "0.2", depth: "3", seed: "1" })).toEqual([
      { key: "depth", mine: "3", theirs: "3", same: true },
      { key: "lr", mine: "0.1", theirs: "0.2", same: false },
      { key: "seed", mine: undefined, theirs: "1", same: false },
    ]);
  });
});
