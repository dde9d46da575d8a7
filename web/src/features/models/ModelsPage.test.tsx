import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { delay, http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { api } from "../../api/api";
import type { ModelJson } from "../../gen/mlplane/v1/model_registry_pb";
import { approval, model, MODEL_ID, version } from "../../test/fixtures";
import { renderApp } from "../../test/render";
import { server } from "../../test/server";

const STATUSES = ["PENDING_APPROVAL", "IN_REVIEW", "APPROVED", "REJECTED", "ARCHIVED"] as const;

function models(count: number): ModelJson[] {
  return Array.from({ length: count }, (_, i) =>
    model({
      modelId: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
      name: `model-${String(i).padStart(4, "0")}`,
      latestVersion: String((i % 3) + 1),
      latestStatus: STATUSES[i % STATUSES.length],
    }),
  );
}

describe("the models list", () => {
  it("shows each model's newest status from Model.latestStatus, without a request per row", async () => {
    let versionRequests = 0;
    server.use(
      http.get("*/api/v1/models", () => HttpResponse.json({ models: models(50), nextPageToken: "next" })),
      http.get("*/api/v1/models/:modelId/versions/:version", () => {
        versionRequests += 1;
        return HttpResponse.json(version());
      }),
    );
    renderApp("/models", { roles: ["data_scientist"] });
    const table = await screen.findByRole("table");
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows).toHaveLength(50);
    expect(within(rows[0] as HTMLElement).getByText("Pending Approval")).toBeInTheDocument();
    expect(within(rows[1] as HTMLElement).getByText("In Review")).toBeInTheDocument();
    expect(within(rows[2] as HTMLElement).getByText("Approved")).toBeInTheDocument();
    expect(within(rows[3] as HTMLElement).getByText("Rejected")).toBeInTheDocument();
    expect(within(rows[4] as HTMLElement).getByText("Archived")).toBeInTheDocument();
    expect(versionRequests).toBe(0);
    expect(screen.getByRole("button", { name: "Next" })).toBeEnabled();
  });

  it("asks for pages of 50, so a tenant of 1,000 models renders one page at a time", async () => {
    let asked: string | null = null;
    server.use(
      http.get("*/api/v1/models", ({ request }) => {
        asked = new URL(request.url).searchParams.get("pageSize");
        return HttpResponse.json({ models: models(50), nextPageToken: "next" });
      }),
    );
    renderApp("/models", { roles: ["data_scientist"] });
    await screen.findByRole("table");
    expect(asked).toBe("50");
  });

  it("follows a row's link inside the app, and leaves a ctrl-click to the browser", async () => {
    server.use(
      http.get("*/api/v1/models", () => HttpResponse.json({ models: [model()] })),
      http.get("*/api/v1/models/:modelId", () => HttpResponse.json(model())),
      http.get("*/api/v1/models/:modelId/versions", () => HttpResponse.json({ versions: [version()] })),
    );
    const user = userEvent.setup();
    renderApp("/models", { roles: ["data_scientist"] });
    const link = await screen.findByRole("link", { name: "pump-bearing-risk" });
    expect(link).toHaveAttribute("href", `/models/${MODEL_ID}`);
    const ctrlClick = new MouseEvent("click", { bubbles: true, cancelable: true, ctrlKey: true });
    link.dispatchEvent(ctrlClick);
    expect(ctrlClick.defaultPrevented).toBe(false);
    expect(screen.getByRole("heading", { level: 1, name: "Models" })).toBeInTheDocument();
    await user.click(link);
    expect(await screen.findByRole("heading", { level: 1, name: "pump-bearing-risk" })).toBeInTheDocument();
  });

  it("keeps a long name on one line, whole on hover", async () => {
    const long = `pump-${"very-long-".repeat(20)}name`;
    server.use(http.get("*/api/v1/models", () => HttpResponse.json({ models: [model({ name: long })] })));
    renderApp("/models", { roles: ["data_scientist"] });
    const link = await screen.findByRole("link", { name: long });
    expect(link).toHaveAttribute("title", long);
  });

  it("shows In Review at once after a submission (the list's cached status is updated)", async () => {
    let listed = 0;
    server.use(
      http.get("*/api/v1/models", async () => {
        listed += 1;
        // The refetch after the submission never answers: what changes comes from the store.
        if (listed > 1) await delay("infinite");
        return HttpResponse.json({ models: [model()] });
      }),
      http.post(`*/api/v1/models/${MODEL_ID}/approvals`, () =>
        HttpResponse.json(approval({ version: "1", modelVersion: version({ status: "IN_REVIEW" }) }), { status: 202 }),
      ),
    );
    const { store } = renderApp("/models", { roles: ["data_scientist"] });
    const table = await screen.findByRole("table");
    expect(within(table).getByText("Pending Approval")).toBeInTheDocument();
    await store.dispatch(api.endpoints.submitForApproval.initiate({ modelId: MODEL_ID, version: "1", comment: "ready" }));
    expect(await within(table).findByText("In Review")).toBeInTheDocument();
  });
});
