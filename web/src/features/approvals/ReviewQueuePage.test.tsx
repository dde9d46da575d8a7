import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { APPROVAL_ID, approval, MODEL_ID, validationReport, version } from "../../test/fixtures";
import { renderApp } from "../../test/render";
import { server, statusError } from "../../test/server";

function queue(approvals = [approval()], report = validationReport()) {
  let listed = 0;
  server.use(
    http.get(`*/api/v1/models/${MODEL_ID}/versions/2/validation`, () => HttpResponse.json(report)),
    http.get("*/api/v1/approvals", ({ request }) => {
      expect(new URL(request.url).searchParams.get("state")).toBe("OPEN");
      listed += 1;
      return HttpResponse.json({ approvals });
    }),
    http.get(`*/api/v1/models/${MODEL_ID}/versions`, () =>
      HttpResponse.json({
        modelVersions: [
          version({ version: "2", status: "IN_REVIEW", metrics: { roc_auc: 0.93 } }),
          version({ version: "1", status: "APPROVED", metrics: { roc_auc: 0.9 } }),
        ],
      }),
    ),
  );
  return () => listed;
}

describe("the review queue", () => {
  it("shows what a reviewer needs, beside the approved version's metrics", async () => {
    queue();
    renderApp("/approvals", { roles: ["model_approver"], sub: "bob" });
    const card = await screen.findByRole("article", { name: "pump-bearing-risk v2" });
    const c = within(card);
    expect(c.getByText(/alice/)).toBeInTheDocument();
    expect(c.getByText("“AUC 0.93 on a held-out pump”")).toBeInTheDocument();
    expect(await c.findByRole("columnheader", { name: "Approved v1" })).toBeInTheDocument();
    expect(c.getByText("0.93")).toBeInTheDocument();
    expect(c.getByText("0.9")).toBeInTheDocument();
    expect(c.getByText("b".repeat(64))).toBeInTheDocument();
    expect(c.getByText(/in X: FLOAT\[batch, 16\]/)).toBeInTheDocument();
  });

  it("disables the decision on one's own submission, saying why", async () => {
    queue();
    renderApp("/approvals", { roles: ["model_approver", "data_scientist"], sub: "alice" });
    const card = await screen.findByRole("article", { name: "pump-bearing-risk v2" });
    const c = within(card);
    expect(c.getByText("You uploaded and submitted this version, so another approver must decide it.")).toBeInTheDocument();
    expect(c.getByRole("button", { name: "Approve" })).toBeDisabled();
    expect(c.getByRole("button", { name: "Reject" })).toBeDisabled();
  });

  it("needs a comment to reject", async () => {
    const user = userEvent.setup();
    queue();
    renderApp("/approvals", { roles: ["model_approver"], sub: "bob" });
    const card = await screen.findByRole("article", { name: "pump-bearing-risk v2" });
    await user.click(within(card).getByRole("button", { name: "Reject" }));
    const dialog = await screen.findByRole("dialog");
    await waitFor(() => {
      expect(within(dialog).getByRole("button", { name: "Reject" })).toBeEnabled();
    });
    await user.click(within(dialog).getByRole("button", { name: "Reject" }));
    expect(await within(dialog).findByText("comment is required")).toBeInTheDocument();
  });

  it("shows a decision someone else made meanwhile (409) and refreshes the queue", async () => {
    const user = userEvent.setup();
    const listed = queue();
    server.use(
      http.post(`*/api/v1/approvals/${APPROVAL_ID}:approve`, () =>
        statusError(409, { code: 10, reason: "ALREADY_DECIDED", message: `approval ${APPROVAL_ID} is already APPROVED`, metadata: { state: "APPROVED" } }),
      ),
    );
    renderApp("/approvals", { roles: ["model_approver"], sub: "bob" });
    const card = await screen.findByRole("article", { name: "pump-bearing-risk v2" });
    await user.click(within(card).getByRole("button", { name: "Approve" }));
    const dialog = await screen.findByRole("dialog");
    await waitFor(() => {
      expect(within(dialog).getByRole("button", { name: "Approve" })).toBeEnabled();
    });
    const before = listed();
    await user.click(within(dialog).getByRole("button", { name: "Approve" }));
    expect(await screen.findByText(/someone else decided this request in the meantime/i)).toBeInTheDocument();
    await waitFor(() => {
      expect(listed()).toBeGreaterThan(before);
    });
  });
});

describe("a version's page", () => {
  it("shows its signature, size, SHA-256, lineage and history, and submits it", async () => {
    const user = userEvent.setup();
    let status: "PENDING_APPROVAL" | "IN_REVIEW" = "PENDING_APPROVAL";
    server.use(
      http.get(`*/api/v1/models/${MODEL_ID}/versions/1`, () =>
        HttpResponse.json(version({ status, trainingExportIds: ["0b7c4f6e-3f7c-4b7a-9a53-6b1f7f0e2a11"] })),
      ),
      http.get(`*/api/v1/models/${MODEL_ID}/versions/1/auditEntries`, () =>
        statusError(404, { code: 5, reason: "UNKNOWN_PATH", message: "no such path", domain: "gateway.mlplane" }),
      ),
      http.get(`*/api/v1/models/${MODEL_ID}/versions/1/validation`, () =>
        HttpResponse.json(validationReport({ version: "1", state: "PENDING", runtime: undefined, metrics: undefined, compatibility: undefined })),
      ),
      http.get(`*/api/v1/models/${MODEL_ID}/versions`, () => HttpResponse.json({})),
      http.get("*/api/v1/models", () => HttpResponse.json({})),
      http.get("*/api/v1/approvals", () => HttpResponse.json({})),
      http.post(`*/api/v1/models/${MODEL_ID}/approvals`, () => {
        status = "IN_REVIEW";
        return HttpResponse.json(approval({ version: "1", modelVersion: undefined }), { status: 202 });
      }),
    );
    renderApp(`/models/${MODEL_ID}/versions/1`, { roles: ["data_scientist"] });
    expect((await screen.findAllByText("Pending Approval")).length).toBeGreaterThan(0);
    expect(screen.getByText("[batch, 16]")).toBeInTheDocument();
    expect(screen.getByText("121 KiB")).toBeInTheDocument();
    expect(screen.getByText("a".repeat(64))).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "0b7c4f6e-3f7c-4b7a-9a53-6b1f7f0e2a11" })).toHaveAttribute(
      "href",
      "/exports/0b7c4f6e-3f7c-4b7a-9a53-6b1f7f0e2a11",
    );
    expect(screen.getByText("skl2onnx 1.17")).toBeInTheDocument();
    // No audit endpoint yet: the section is not shown.
    await waitFor(() => {
      expect(screen.queryByRole("heading", { name: "Audit trail" })).toBeNull();
    });
    await user.click(screen.getByRole("button", { name: "Submit for approval" }));
    const dialog = await screen.findByRole("dialog");
    await user.type(within(dialog).getByRole("textbox"), "AUC 0.91");
    await waitFor(() => {
      expect(within(dialog).getByRole("button", { name: "Submit for approval" })).toBeEnabled();
    });
    await user.click(within(dialog).getByRole("button", { name: "Submit for approval" }));
    expect((await screen.findAllByText("In Review")).length).toBeGreaterThan(0);
  });

  it("explains a 409 on submit", async () => {
    const user = userEvent.setup();
    server.use(
      http.get(`*/api/v1/models/${MODEL_ID}/versions/1`, () => HttpResponse.json(version())),
      http.get(`*/api/v1/models/${MODEL_ID}/versions/1/auditEntries`, () => HttpResponse.json({ auditEntries: [] })),
      http.get(`*/api/v1/models/${MODEL_ID}/versions/1/validation`, () => HttpResponse.json(validationReport({ version: "1" }))),
      http.post(`*/api/v1/models/${MODEL_ID}/approvals`, () =>
        statusError(409, {
          code: 6,
          reason: "VERSION_NOT_PENDING",
          message: "version 1 is IN_REVIEW; only PENDING_APPROVAL versions can be submitted",
          metadata: { status: "IN_REVIEW" },
        }),
      ),
    );
    renderApp(`/models/${MODEL_ID}/versions/1`, { roles: ["data_scientist"] });
    await user.click(await screen.findByRole("button", { name: "Submit for approval" }));
    const dialog = await screen.findByRole("dialog");
    await waitFor(() => {
      expect(within(dialog).getByRole("button", { name: "Submit for approval" })).toBeEnabled();
    });
    await user.click(within(dialog).getByRole("button", { name: "Submit for approval" }));
    expect(
      await within(dialog).findByText(
        "This version cannot be submitted: it is In Review, and only versions pending approval can be submitted.",
      ),
    ).toBeInTheDocument();
  });
});
