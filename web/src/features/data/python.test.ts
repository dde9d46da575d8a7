import { describe, expect, it } from "vitest";

import { pythonSnippet } from "./python";

describe("the Python lines", () => {
  it("fetch the same export with the SDK: asset, UTC times, tags, resolution in seconds", () => {
    expect(
      pythonSnippet({
        assetId: "pump-001",
        startTime: "2026-12-04T09:00:00.000Z",
        endTime: "2026-12-05T09:00:00Z",
        tags: ["flow", "bearing_temp"],
        resolutionSeconds: 60,
      }),
    ).toBe(
      [
        "from mlplane_client import Client",
        "c = Client.from_env()  # MLPLANE_URL and MLPLANE_TOKEN (mlplane token --role data_scientist)",
        'ex = c.export_history("pump-001", "2026-12-04T09:00:00Z", "2026-12-05T09:00:00Z", tags=["flow", "bearing_temp"], resolution=60)',
        "ex.frame  # a pandas DataFrame; ex.manifest.export_id is what a model version cites as lineage",
      ].join("\n"),
    );
  });

  it("leave out the resolution for raw samples and the tags when all are wanted", () => {
    const text = pythonSnippet({
      assetId: "pump-001",
      startTime: "2026-12-04T09:00:00Z",
      endTime: "2026-12-05T09:00:00Z",
      tags: [],
      resolutionSeconds: null,
    });
    expect(text).toContain('ex = c.export_history("pump-001", "2026-12-04T09:00:00Z", "2026-12-05T09:00:00Z")\n');
    expect(text).not.toContain("resolution=");
    expect(text).not.toContain("tags=");
  });

  it("write times in UTC whatever the offset they came with", () => {
    const text = pythonSnippet({
      assetId: "line7-001",
      startTime: "2026-12-04T10:00:00+01:00",
      endTime: "2026-12-04T11:30:00+01:00",
      tags: ["t"],
      resolutionSeconds: 3600,
    });
    expect(text).toContain('"line7-001", "2026-12-04T09:00:00Z", "2026-12-04T10:30:00Z", tags=["t"], resolution=3600)');
  });
});
