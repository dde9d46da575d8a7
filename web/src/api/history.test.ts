import { describe, expect, it } from "vitest";

import { parseHistory } from "./history";

describe("the history answer", () => {
  it("becomes one series per tag with the header's units, and the manifest", () => {
    const chart = parseHistory([
      {
        header: {
          exportId: "e-1",
          assetId: "pump-001",
          tags: [
            { name: "bearing_temp", unit: "degC", description: "Bearing" },
            { name: "flow", unit: "m3/h" },
          ],
          format: "ROWS",
        },
      },
      {
        aggregates: {
          aggregates: [
            { bucketTime: "2026-12-04T06:00:00Z", tag: "bearing_temp", avg: 45.8, min: 43.4, max: 48.7, count: "180" },
            { bucketTime: "2026-12-04T06:00:00Z", tag: "flow", avg: 138, min: 131, max: 145, count: "180" },
          ],
        },
      },
      {
        aggregates: {
          aggregates: [
            { bucketTime: "2026-12-04T12:00:00Z", tag: "bearing_temp", avg: "NaN", min: 0, max: 1, count: "360" },
            // A field at its default (0) is absent from proto JSON.
            { bucketTime: "2026-12-04T12:00:00Z", tag: "flow", max: 2, count: "360" },
          ],
        },
      },
      { manifest: { exportId: "e-1", rowCount: "4", sha256: "ab", status: "COMPLETED" } },
    ]);
    expect(chart.exportId).toBe("e-1");
    expect(chart.rowCount).toBe(4);
    expect(chart.manifest?.sha256).toBe("ab");
    expect(chart.series.map((s) => [s.tag, s.unit])).toEqual([
      ["bearing_temp", "degC"],
      ["flow", "m3/h"],
    ]);
    const [temp, flow] = chart.series;
    expect(temp?.buckets[0]).toEqual({ t: Date.parse("2026-12-04T06:00:00Z"), avg: 45.8, min: 43.4, max: 48.7, count: 180 });
    expect(temp?.buckets[1]?.avg).toBeNull();
    expect(flow?.buckets[1]).toMatchObject({ avg: 0, min: 0, max: 2, count: 360 });
  });

  it("takes raw samples too", () => {
    const chart = parseHistory([
      { header: { exportId: "e-2", tags: [{ name: "flow" }] } },
      { samples: { samples: [{ time: "2026-12-04T06:00:00Z", tag: "flow", value: 3, quality: 192 }] } },
    ]);
    expect(chart.series[0]?.buckets).toEqual([{ t: Date.parse("2026-12-04T06:00:00Z"), avg: 3, min: 3, max: 3, count: 1 }]);
  });
});
