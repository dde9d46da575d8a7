import { screen, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp } from "../../test/render";
import { server, statusError } from "../../test/server";

describe("the assets page", () => {
  it("lists the readable assets with their tags, units and time range, paged", async () => {
    let token: string | null = null;
    server.use(
      http.get("*/api/v1/query/assets", ({ request }) => {
        token = new URL(request.url).searchParams.get("pageToken");
        return HttpResponse.json({
          assets: [
            {
              assetId: "pump-001",
              displayName: "Centrifugal pump 001",
              tags: [
                { name: "bearing_temp", unit: "degC", description: "Drive-end bearing temperature" },
                { name: "flow", unit: "m3/h" },
              ],
              firstTime: "2026-10-31T00:00:00Z",
              lastTime: "2026-12-05T09:00:00Z",
            },
            {
              assetId: "line7-001",
              tags: Array.from({ length: 12 }, (_, i) => ({ name: `t${i}` })),
            },
          ],
          nextPageToken: token ? "" : "page-2",
        });
      }),
    );
    renderApp("/data", { roles: ["data_scientist"] });
    const table = await screen.findByRole("table");
    const [, pump, line] = within(table).getAllByRole("row");
    expect(within(pump as HTMLElement).getByRole("link", { name: "pump-001" })).toHaveAttribute("href", "/data/pump-001");
    expect(within(pump as HTMLElement).getByText("Centrifugal pump 001")).toBeInTheDocument();
    expect(within(pump as HTMLElement).getByText("bearing_temp · degC").closest("[title]")).toHaveAttribute(
      "title",
      "bearing_temp (degC): Drive-end bearing temperature",
    );
    const times = (pump as HTMLElement).querySelectorAll("time");
    expect([...times].map((t) => t.getAttribute("dateTime"))).toEqual(["2026-10-31T00:00:00Z", "2026-12-05T09:00:00Z"]);
    // Many tags: six, then how many more.
    expect(within(line as HTMLElement).getByText("+6 more")).toBeInTheDocument();
    expect(within(line as HTMLElement).getByText("No samples")).toBeInTheDocument();
    screen.getByRole("button", { name: "Next" }).click();
    expect(await screen.findByText("Page 2")).toBeInTheDocument();
    expect(token).toBe("page-2");
  });

  it("explains grants when nothing is readable", async () => {
    server.use(http.get("*/api/v1/query/assets", () => HttpResponse.json({})));
    renderApp("/data", { roles: ["model_approver"] });
    expect(await screen.findByRole("heading", { name: "No assets you may read" })).toBeInTheDocument();
  });

  it("shows a failure as the app's other errors are", async () => {
    server.use(
      http.get("*/api/v1/query/assets", () =>
        statusError(503, { code: 14, reason: "DATABASE_UNAVAILABLE", message: "the history database is unavailable" }),
      ),
    );
    renderApp("/data", { roles: ["data_scientist"] });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("DATABASE_UNAVAILABLE");
    expect(screen.getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });
});
