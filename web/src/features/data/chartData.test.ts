import { describe, expect, it } from "vitest";

import type { TagSeries } from "../../api/history";
import { chartPoints, failureAreas, overlaps, seriesSummary, timeTicks } from "./chartData";

const t = (iso: string) => Date.parse(iso);
const HOUR = 3_600_000;

describe("what the charts draw", () => {
  it("breaks the line where buckets are missing, and starts the partial first bucket at the range", () => {
    const start = t("2026-12-04T09:30:00Z");
    const points = chartPoints(
      [
        { t: t("2026-12-04T09:00:00Z"), avg: 1, min: 0, max: 2, count: 30 },
        { t: t("2026-12-04T10:00:00Z"), avg: 2, min: 1, max: 3, count: 60 },
        { t: t("2026-12-04T13:00:00Z"), avg: 3, min: 2, max: 4, count: 60 },
      ],
      HOUR,
      start,
    );
    expect(points.map((p) => [new Date(p.t).toISOString().slice(11, 16), p.avg])).toEqual([
      ["09:30", 1],
      ["10:00", 2],
      ["11:00", null],
      ["13:00", 3],
    ]);
    expect(points[0]?.band).toEqual([0, 2]);
  });

  it("shades failures that overlap the range, clipped to it, one still down until the end", () => {
    const start = t("2026-12-01T00:00:00Z");
    const end = t("2026-12-08T00:00:00Z");
    const before = { startTime: "2026-11-20T00:00:00Z", endTime: "2026-11-21T00:00:00Z", failureMode: "a" };
    const across = { startTime: "2026-11-30T20:00:00Z", endTime: "2026-12-01T06:00:00Z", failureMode: "b" };
    const down = { startTime: "2026-12-07T00:00:00Z", failureMode: "c" };
    expect(overlaps(before, start, end)).toBe(false);
    const areas = failureAreas([before, across, down], start, end);
    expect(areas.map((a) => [a.event.failureMode, new Date(a.x1).toISOString(), new Date(a.x2).toISOString(), a.ongoing])).toEqual([
      ["b", "2026-12-01T00:00:00.000Z", "2026-12-01T06:00:00.000Z", false],
      ["c", "2026-12-07T00:00:00.000Z", "2026-12-08T00:00:00.000Z", true],
    ]);
  });

  it("widens a failure too short to see", () => {
    const start = t("2026-09-01T00:00:00Z");
    const end = start + 90 * 24 * HOUR;
    const [area] = failureAreas([{ startTime: "2026-10-01T00:00:00Z", endTime: "2026-10-01T00:01:00Z" }], start, end);
    expect((area?.x2 ?? 0) - (area?.x1 ?? 0)).toBeCloseTo((end - start) / 300);
  });

  it("puts ticks on whole hours or midnights, a handful of them", () => {
    const { ticks } = timeTicks(t("2026-12-04T09:17:00Z"), t("2026-12-05T09:17:00Z"));
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(ticks.length).toBeLessThanOrEqual(7);
    for (const tick of ticks) expect(new Date(tick).getMinutes()).toBe(0);
  });

  it("sums a series up in a sentence", () => {
    const series: TagSeries = {
      tag: "flow",
      unit: "m3/h",
      description: "",
      buckets: [
        { t: 0, avg: 10, min: 5, max: 12, count: 60 },
        { t: HOUR, avg: 20, min: 15, max: 30, count: 60 },
      ],
    };
    expect(seriesSummary(series, 3600, 1)).toBe(
      "2 1-hour buckets (120 samples): mean 15 m3/h, lowest 5 m3/h, highest 30 m3/h; 1 failure shaded.",
    );
    expect(seriesSummary({ ...series, buckets: [] }, 3600, 0)).toBe("No samples of flow in this range.");
  });
});
