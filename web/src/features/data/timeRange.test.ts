import { describe, expect, it } from "vitest";

import { checkRange, fromLocalInput, presetAnchor, presetRange, spanWords, toLocalInput } from "./timeRange";

describe("the view's time range", () => {
  it("ends presets just after the asset's newest sample, on a whole minute", () => {
    const now = Date.parse("2026-12-05T10:18:30Z");
    const anchor = presetAnchor("2026-12-05T10:18:00Z", now);
    expect(new Date(anchor).toISOString()).toBe("2026-12-05T10:19:00.000Z");
    expect(presetRange("24h", anchor)).toEqual({ start: "2026-12-04T10:19:00Z", end: "2026-12-05T10:19:00Z" });
    expect(presetRange("90d", anchor).start).toBe("2026-09-06T10:19:00Z");
    // An asset that stopped reporting: its last day of data, not an empty chart.
    expect(new Date(presetAnchor("2026-06-01T00:00:00Z", now)).toISOString()).toBe("2026-06-01T00:01:00.000Z");
    // No samples: now.
    expect(new Date(presetAnchor(undefined, now)).toISOString()).toBe("2026-12-05T10:19:00.000Z");
  });

  it("turns the pickers' local time into UTC and back", () => {
    const iso = fromLocalInput("2026-12-04T09:30");
    expect(iso).toMatch(/^2026-12-0[345]T\d\d:\d\d:00Z$/);
    expect(toLocalInput(iso ?? "")).toBe("2026-12-04T09:30");
    expect(fromLocalInput("")).toBeNull();
    expect(fromLocalInput("yesterday")).toBeNull();
  });

  it("says what is wrong with a custom range beside its field", () => {
    expect(checkRange(null, null)).toEqual({ start: "Pick a start date and time", end: "Pick an end date and time" });
    expect(checkRange("2026-12-05T00:00:00Z", "2026-12-04T00:00:00Z").end).toBe("The end must be after the start");
    expect(checkRange("2025-01-01T00:00:00Z", "2026-12-04T00:00:00Z").end).toBe("The range can be at most 366 days long");
    expect(checkRange("2026-12-04T00:00:00Z", "2026-12-05T00:00:00Z")).toEqual({});
  });

  it("words spans", () => {
    expect(spanWords(86_400_000)).toBe("1 day");
    expect(spanWords(7 * 86_400_000)).toBe("7 days");
    expect(spanWords(2.5 * 86_400_000)).toBe("2 days 12 hours");
    expect(spanWords(5 * 3_600_000 + 41 * 60_000)).toBe("5 hours 41 minutes");
  });
});
