import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { createMemoryRouter, RouterProvider } from "react-router";
import { describe, expect, it, vi } from "vitest";

import { Providers } from "../../app/App";
import { makeStore } from "../../app/store";
import { signedIn } from "../../auth/authSlice";
import type { AssetJson, ExportJson, FailureEventJson } from "../../gen/mlplane/v1/query_service_pb";
import { renderApp } from "../../test/render";
import { server, statusError } from "../../test/server";
import { fakeToken } from "../../test/tokens";
import { ExportPanel } from "./ExportPanel";
import type { PollOptions } from "./useCsvExport";

const EXPORT_ID = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b";
const SHA = "c9861d45d87a04521d8ae95a45d166aba97a3970848dfd7a772981096f527faf";

const PUMP: AssetJson = {
  assetId: "pump-001",
  displayName: "Centrifugal pump 001",
  tags: [
    { name: "bearing_temp", unit: "degC", description: "Drive-end bearing temperature" },
    { name: "flow", unit: "m3/h", description: "Volumetric flow at the discharge" },
  ],
  firstTime: "2026-10-31T00:00:00Z",
  lastTime: "2026-12-05T09:00:00Z",
};

/** The JSON array ExportHistory answers through the gateway, for the asked tags and bucket. */
function historyAnswer(url: URL) {
  const tags = url.searchParams.getAll("tags");
  const names = tags.length ? tags : ["bearing_temp", "flow"];
  const start = Date.parse(url.searchParams.get("startTime") ?? "");
  const step = Number((url.searchParams.get("resolution") ?? "3600s").replace("s", "")) * 1000;
  const aggregates = [0, 1, 2].flatMap((i) =>
    names.map((tag) => ({
      bucketTime: new Date(start + i * step).toISOString(),
      tag,
      avg: 40 + i,
      min: 39 + i,
      max: 41 + i,
      count: "60",
    })),
  );
  return [
    {
      header: {
        exportId: "chart-export",
        assetId: url.searchParams.get("assetId"),
        tags: (PUMP.tags ?? []).filter((t) => names.includes(t.name ?? "")),
        format: "ROWS",
      },
    },
    { aggregates: { aggregates } },
    { manifest: { exportId: "chart-export", rowCount: String(aggregates.length), status: "COMPLETED" } },
  ];
}

const EVENTS: FailureEventJson[] = [
  {
    assetId: "pump-001",
    startTime: "2026-12-04T22:15:00Z",
    endTime: "2026-12-05T02:24:00Z",
    failureMode: "bearing_failure",
    description: "Drive-end bearing failure, pump tripped on high vibration",
  },
  { assetId: "pump-001", startTime: "2026-12-05T08:00:00Z", failureMode: "seal_leak", description: "Seal leaking" },
  // Long before the range: not listed.
  { assetId: "pump-001", startTime: "2026-11-01T00:00:00Z", endTime: "2026-11-01T05:00:00Z", failureMode: "cavitation" },
];

function dataHandlers({ assets = [PUMP] }: { assets?: AssetJson[] } = {}) {
  const seen = { history: [] as URL[], events: [] as URL[] };
  server.use(
    http.get("*/api/v1/query/assets/:assetId", ({ params }) => {
      const found = assets.find((a) => a.assetId === params.assetId);
      return found
        ? HttpResponse.json(found)
        : statusError(404, { code: 5, reason: "ASSET_NOT_FOUND", message: `asset '${String(params.assetId)}' does not exist` });
    }),
    http.get("*/api/v1/query/history", ({ request }) => {
      const url = new URL(request.url);
      seen.history.push(url);
      return HttpResponse.json(historyAnswer(url));
    }),
    http.get("*/api/v1/query/assets/:assetId/failureEvents", ({ request }) => {
      seen.events.push(new URL(request.url));
      return HttpResponse.json({ failureEvents: EVENTS });
    }),
  );
  return seen;
}

describe("an asset's view", () => {
  it("charts the history aggregated on the server, one chart per tag, with the failures shaded and listed", async () => {
    const seen = dataHandlers();
    renderApp("/data/pump-001?range=24h", { roles: ["data_scientist"] });
    expect(await screen.findByRole("heading", { name: "Centrifugal pump 001", level: 1 })).toBeInTheDocument();
    const temp = await screen.findByRole("figure", { name: "bearing_temp (degC)" });
    expect(screen.getByRole("figure", { name: "flow (m3/h)" })).toBeInTheDocument();
    // 24 hours of 2 tags: 2-minute buckets (721 per tag), all tags (none named), ending after the newest sample.
    expect(seen.history).toHaveLength(1);
    const query = seen.history[0]?.searchParams;
    expect(query?.get("assetId")).toBe("pump-001");
    expect(query?.get("startTime")).toBe("2026-12-04T09:01:00Z");
    expect(query?.get("endTime")).toBe("2026-12-05T09:01:00Z");
    expect(query?.get("resolution")).toBe("120s");
    expect(query?.getAll("tags")).toEqual([]);
    // The accessible summary, and the numbers as a table.
    expect(within(temp).getByText(/^3 2-minute buckets \(180 samples\): mean 41 degC, lowest 39 degC, highest 43 degC; 2 failures shaded\.$/)).toBeInTheDocument();
    await userEvent.click(within(temp).getByRole("button", { name: "Show the numbers of bearing_temp" }));
    const table = await within(temp).findByRole("table");
    expect(within(table).getAllByRole("row")).toHaveLength(4);
    // Failures overlapping the range, read from 30 days before it.
    expect(seen.events[0]?.searchParams.get("startTime")).toBe("2026-11-04T09:01:00Z");
    const failures = screen.getByRole("region", { name: "Failures (2)" });
    expect(within(failures).getByText("Drive-end bearing failure, pump tripped on high vibration")).toBeInTheDocument();
    expect(within(failures).getByText("Still down")).toBeInTheDocument();
    expect(within(failures).queryByText("cavitation")).toBeNull();
    expect(screen.getByRole("list", { name: "Chart key" })).toHaveTextContent("failure (2 in range, listed below)");
  });

  it("asks for the chosen tags and a bucket that keeps a 90-day view small", async () => {
    const seen = dataHandlers();
    renderApp("/data/pump-001?range=90d&tags=flow", { roles: ["data_scientist"] });
    await screen.findByRole("figure", { name: "flow (m3/h)" });
    expect(screen.queryByRole("figure", { name: "bearing_temp (degC)" })).toBeNull();
    const query = seen.history[0]?.searchParams;
    expect(query?.getAll("tags")).toEqual(["flow"]);
    expect(query?.get("resolution")).toBe("10800s"); // 3 hours: 721 points
  });

  it("says a JSON answer would be too large, suggesting fewer tags or a coarser resolution", async () => {
    dataHandlers();
    server.use(
      http.get("*/api/v1/query/history", () =>
        statusError(400, {
          code: 3,
          reason: "TOO_MANY_ROWS_FOR_JSON",
          message: "this export has more than 20000 rows, the limit for a JSON response; use the CSV download",
          metadata: { limit: "20000" },
        }),
      ),
    );
    renderApp("/data/pump-001", { roles: ["data_scientist"] });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Too many points to chart at once (more than 20,000 rows): choose fewer tags or a coarser resolution");
    expect(alert).toHaveTextContent("TOO_MANY_ROWS_FOR_JSON");
  });

  it("shows the 403 naming a denied asset, not a generic error", async () => {
    dataHandlers();
    server.use(
      http.get("*/api/v1/query/assets/turbine-001", () =>
        statusError(403, {
          code: 7,
          reason: "ASSET_NOT_GRANTED",
          message: "you have no read grant for asset 'turbine-001'",
          metadata: { assetId: "turbine-001" },
          requestId: "rid-403",
        }),
      ),
    );
    renderApp("/data/turbine-001", { roles: ["data_scientist"] });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("You have no grant to read the asset “turbine-001”.");
    expect(alert).toHaveTextContent("you have no read grant for asset 'turbine-001'");
    expect(alert).toHaveTextContent("rid-403");
  });

  it("leaves failures out quietly for an approver; the chart still works", async () => {
    const seen = dataHandlers();
    renderApp("/data/pump-001", { roles: ["model_approver"], sub: "bob" });
    await screen.findByRole("figure", { name: "flow (m3/h)" });
    expect(seen.events).toHaveLength(0);
    const failures = screen.getByRole("region", { name: "Failures" });
    expect(failures).toHaveTextContent("Failure events are for data scientists only");
    expect(within(failures).queryByRole("alert")).toBeNull();
  });

  it("shows a failure events 403 quietly in its section", async () => {
    dataHandlers();
    server.use(
      http.get("*/api/v1/query/assets/:assetId/failureEvents", () =>
        statusError(403, { code: 7, reason: "ROLE_REQUIRED", message: "ListFailureEvents requires role data_scientist" }),
      ),
    );
    renderApp("/data/pump-001", { roles: ["data_scientist"] });
    await screen.findByRole("figure", { name: "flow (m3/h)" });
    const failures = screen.getByRole("region", { name: "Failures" });
    expect(await within(failures).findByText(/ListFailureEvents requires role data_scientist/)).toBeInTheDocument();
    expect(screen.queryByRole("alert")).toBeNull();
  });
});

// --- the CSV download and the Python lines --------------------------------------------------

// Quick polls; limits in real time that a stalled test process (two cores shared with the
// type check, the linter and the build) cannot reach by accident. SHORT_START is for the test
// of a download that never starts.
const FAST: PollOptions = { firstDelayMs: 5, factor: 1.5, maxDelayMs: 20, startLimitMs: 10_000, totalLimitMs: 20_000 };
const SHORT_START: PollOptions = { ...FAST, startLimitMs: 400 };

const QUERY = {
  assetId: "pump-001",
  startTime: "2026-12-04T09:00:00Z",
  endTime: "2026-12-05T09:00:00Z",
  tags: ["flow", "bearing_temp"],
};

function renderPanel(granularity: "raw" | "buckets" = "buckets", poll: PollOptions = FAST) {
  const store = makeStore();
  store.dispatch(signedIn({ token: fakeToken(), method: "dev" }));
  const router = createMemoryRouter([
    {
      path: "/",
      element: (
        <ExportPanel
          query={QUERY}
          chartResolution={60}
          granularity={granularity}
          onGranularity={() => undefined}
          disabled={null}
          poll={poll}
        />
      ),
    },
    { path: "/exports/:id", element: <p>export page</p> },
  ]);
  return render(
    <Providers store={store} env="test">
      <RouterProvider router={router} />
    </Providers>,
  );
}

function manifest(overrides: Partial<ExportJson> = {}): ExportJson {
  return {
    exportId: EXPORT_ID,
    assetId: "pump-001",
    startTime: QUERY.startTime,
    endTime: QUERY.endTime,
    tags: QUERY.tags,
    resolution: "60s",
    format: "CSV",
    status: "RUNNING",
    createdBy: "alice",
    createTime: "2026-12-05T09:10:00Z",
    ...overrides,
  };
}

/** Clicks on anchors (the browser's download) instead of navigating jsdom. */
function spyDownloads() {
  const clicks: { href: string; download: string }[] = [];
  vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
    clicks.push({ href: this.href, download: this.download });
  });
  return clicks;
}

describe("the CSV download", () => {
  it("asks for a signed link, lets the browser download it, then reads the manifest until it is final", async () => {
    const clicks = spyDownloads();
    let linkBody: unknown = null;
    let looks = 0;
    let downloadedByPage = false;
    server.use(
      http.post(/\/api\/v1\/query\/history:link$/, async ({ request }) => {
        linkBody = await request.json();
        return HttpResponse.json({
          exportId: EXPORT_ID,
          url: `/api/v1/query/downloads/${EXPORT_ID}?link=signed.abc`,
          expireTime: "2026-12-05T09:15:00Z",
        });
      }),
      http.get(`*/api/v1/query/exports/${EXPORT_ID}`, () => {
        looks += 1;
        // 404 until the download has started, then RUNNING, then COMPLETED.
        if (looks <= 2) return statusError(404, { code: 5, reason: "EXPORT_NOT_FOUND", message: "no export" });
        if (looks === 3) return HttpResponse.json(manifest());
        return HttpResponse.json(manifest({ status: "COMPLETED", rowCount: "2880", sha256: SHA }));
      }),
      http.get("*/api/v1/query/downloads/*", () => {
        downloadedByPage = true;
        return new HttpResponse("time,tag,value,quality\n");
      }),
    );
    renderPanel();
    await userEvent.click(screen.getByRole("button", { name: "Download CSV" }));
    expect(await screen.findByText("Export completed")).toBeInTheDocument();
    // The link asks for exactly the view's export.
    expect(linkBody).toEqual({ ...QUERY, resolution: "60s" });
    // The browser downloads it (an anchor with `download`), the page never fetches it.
    expect(clicks).toEqual([
      { href: `${window.location.origin}/api/v1/query/downloads/${EXPORT_ID}?link=signed.abc`, download: "pump-001-3f2a9c1e.csv" },
    ]);
    expect(downloadedByPage).toBe(false);
    expect(looks).toBe(4);
    // The manifest: export id, rows and SHA-256 to copy, and how to check the file.
    expect(screen.getByText(EXPORT_ID)).toBeInTheDocument();
    expect(screen.getByText("2,880")).toBeInTheDocument();
    expect(screen.getByText(SHA)).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Copy SHA-256" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Copy export id" })).toBeInTheDocument();
    expect(screen.getByText("sha256sum pump-001-3f2a9c1e.csv")).toBeInTheDocument();
  });

  it("asks for raw samples without a resolution", async () => {
    spyDownloads();
    let linkBody: unknown = null;
    server.use(
      http.post(/\/api\/v1\/query\/history:link$/, async ({ request }) => {
        linkBody = await request.json();
        return HttpResponse.json({ exportId: EXPORT_ID, url: `/api/v1/query/downloads/${EXPORT_ID}?link=x` });
      }),
      http.get(`*/api/v1/query/exports/${EXPORT_ID}`, () =>
        HttpResponse.json(manifest({ status: "COMPLETED", rowCount: "5", sha256: SHA })),
      ),
    );
    renderPanel("raw");
    await userEvent.click(screen.getByRole("button", { name: "Download CSV" }));
    await screen.findByText("Export completed");
    expect(linkBody).toEqual(QUERY);
  });

  it("says when the download never started, and offers another link", async () => {
    spyDownloads();
    server.use(
      http.post(/\/api\/v1\/query\/history:link$/, () =>
        HttpResponse.json({ exportId: EXPORT_ID, url: `/api/v1/query/downloads/${EXPORT_ID}?link=x` }),
      ),
      http.get(`*/api/v1/query/exports/${EXPORT_ID}`, () =>
        statusError(404, { code: 5, reason: "EXPORT_NOT_FOUND", message: "no export" }),
      ),
    );
    renderPanel("buckets", SHORT_START);
    await userEvent.click(screen.getByRole("button", { name: "Download CSV" }));
    expect(await screen.findByText("The download has not started")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Download again" })).toBeInTheDocument();
  });

  it("says an export ended early, and that the file on disk is incomplete", async () => {
    spyDownloads();
    server.use(
      http.post(/\/api\/v1\/query\/history:link$/, () =>
        HttpResponse.json({ exportId: EXPORT_ID, url: `/api/v1/query/downloads/${EXPORT_ID}?link=x` }),
      ),
      http.get(`*/api/v1/query/exports/${EXPORT_ID}`, () => HttpResponse.json(manifest({ status: "CANCELLED" }))),
    );
    renderPanel();
    await userEvent.click(screen.getByRole("button", { name: "Download CSV" }));
    expect(await screen.findByText("The export ended Cancelled")).toBeInTheDocument();
    expect(screen.getByText(/is incomplete/)).toBeInTheDocument();
  });

  it("shows the 403 naming the asset when the link is refused", async () => {
    const clicks = spyDownloads();
    server.use(
      http.post(/\/api\/v1\/query\/history:link$/, () =>
        statusError(403, {
          code: 7,
          reason: "ASSET_NOT_GRANTED",
          message: "you have no read grant for asset 'pump-001'",
          metadata: { assetId: "pump-001" },
          requestId: "rid-link",
        }),
      ),
    );
    renderPanel();
    await userEvent.click(screen.getByRole("button", { name: "Download CSV" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("You have no grant to read the asset “pump-001”.");
    expect(alert).toHaveTextContent("you have no read grant for asset 'pump-001'");
    expect(alert).toHaveTextContent("ASSET_NOT_GRANTED");
    expect(clicks).toEqual([]);
  });

  it("lists the field violations of a refused link", async () => {
    spyDownloads();
    server.use(
      http.post(/\/api\/v1\/query\/history:link$/, () =>
        statusError(400, {
          code: 3,
          reason: "INVALID_FIELD",
          message: "invalid request",
          violations: [{ field: "tags[0]", description: "tags[0] must be 1-128 letters, digits, …" }],
        }),
      ),
    );
    renderPanel();
    await userEvent.click(screen.getByRole("button", { name: "Download CSV" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The server refused these parameters:");
    expect(alert).toHaveTextContent("tags[0]: tags[0] must be 1-128 letters, digits, …");
  });
});

describe("the Python button", () => {
  it("copies the SDK lines for the same export", async () => {
    const user = userEvent.setup();
    renderPanel();
    await user.click(screen.getByRole("button", { name: "Python" }));
    await waitFor(async () => {
      expect(await navigator.clipboard.readText()).toBe(
        [
          "from mlplane_client import Client",
          "c = Client.from_env()  # MLPLANE_URL and MLPLANE_TOKEN (mlplane token --role data_scientist)",
          'ex = c.export_history("pump-001", "2026-12-04T09:00:00Z", "2026-12-05T09:00:00Z", tags=["flow", "bearing_temp"], resolution=60)',
          "ex.frame  # a pandas DataFrame; ex.manifest.export_id is what a model version cites as lineage",
        ].join("\n"),
      );
    });
    expect(screen.getByRole("button", { name: "Copied the Python lines" })).toBeInTheDocument();
  });
});
