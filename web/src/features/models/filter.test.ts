import { describe, expect, it } from "vitest";

import { buildModelFilter } from "./filter";
import { formatShape } from "./signature";

describe("the models filter", () => {
  it("searches by part of the name and by status, joined with AND", () => {
    expect(buildModelFilter({ search: "", status: null })).toBe("");
    expect(buildModelFilter({ search: " pump ", status: null })).toBe('name:"pump"');
    expect(buildModelFilter({ search: "pump", status: "PENDING_APPROVAL" })).toBe('name:"pump" AND status = PENDING_APPROVAL');
    expect(buildModelFilter({ search: "pump", status: null, exact: true })).toBe('name = "pump"');
    expect(buildModelFilter({ search: 'a"b\\c', status: null })).toBe('name:"abc"');
  });

  it("writes ONNX shapes", () => {
    expect(formatShape([{ param: "batch" }, { size: "16" }, {}])).toBe("[batch, 16, ?]");
    expect(formatShape([])).toBe("unknown");
  });
});
