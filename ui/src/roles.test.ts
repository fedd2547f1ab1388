import { describe, expect, it } from "vitest";
import { can } from "./roles";

describe("can", () => {
  it("ranks roles and lets admins do everything", () => {
    expect(can({ role: "editor", admin: false }, "viewer")).toBe(true);
    expect(can({ role: "editor", admin: false }, "maintainer")).toBe(false);
    expect(can({ role: null, admin: true }, "owner")).toBe(true);
    expect(can({ role: null, admin: false }, "viewer")).toBe(false);
  });
});
