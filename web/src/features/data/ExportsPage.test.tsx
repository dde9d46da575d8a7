import { screen, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp } from "../../test/render";
import { server } from "../../test/server";

const ID = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b";

describe("my exports", () => {
  it("lists each export with its asset, range, bucket, format, status, rows, SHA-256 and id to copy", async () => {
    server.use(
      http.get("*/api/v1/query/exports", () =>
        HttpResponse.json({
          exports: [
            {
              exportId: ID,
              assetId: "pump-001",
              startTime: "2026-12-04T09:00:00Z",
              endTime: "2026-12-05T09:00:00Z",
              tags: ["flow"],
              resolution: "3600s",
              format: "CSV",
              rowCount: "1234567",
              sha256: "d".repeat(64),
              status: "COMPLETED",
              createdBy: "alice",
              createTime: "2026-12-05T09:10:00Z",
            },
            { exportId: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", assetId: "pump-002", format: "ARROW", status: "RUNNING" },
          ],
        }),
      ),
    );
    renderApp("/exports", { roles: ["model_approver"] });
    const table = await screen.findByRole("table");
    const [, done, running] = within(table).getAllByRole("row");
    const row = within(done as HTMLElement);
    expect(row.getByRole("link", { name: "pump-001" })).toHaveAttribute("href", `/exports/${ID}`);
    expect(row.getByText(ID)).toBeInTheDocument();
    expect(row.getByRole("button", { name: "Copy export id of pump-001" })).toBeInTheDocument();
    expect(row.getByText("d".repeat(64))).toBeInTheDocument();
    expect(row.getByText("1-hour buckets · CSV")).toBeInTheDocument();
    expect(row.getByText("1,234,567")).toBeInTheDocument();
    expect(row.getByText("Completed")).toBeInTheDocument();
    expect(within(running as HTMLElement).getByText("raw samples · ARROW")).toBeInTheDocument();
    expect(within(running as HTMLElement).getByText("Running")).toBeInTheDocument();
  });

  it("points to the data when there is nothing yet", async () => {
    server.use(http.get("*/api/v1/query/exports", () => HttpResponse.json({})));
    renderApp("/exports", { roles: ["data_scientist"] });
    expect(await screen.findByRole("heading", { name: "No exports yet" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Browse the data" })).toHaveAttribute("href", "/data");
  });
});
