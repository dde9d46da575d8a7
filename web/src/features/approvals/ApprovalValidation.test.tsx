import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import type { ValidationReportJson } from "../../gen/mlplane/v1/model_registry_pb";
import { APPROVAL_ID, approval, MODEL_ID, validationReport, version } from "../../test/fixtures";
import { renderApp } from "../../test/render";
import { server, statusError } from "../../test/server";

/** The queue with one request for v2, whose version and report are as given. */
function queue(
  reports: ValidationReportJson[],
  versionPatch: Parameters<typeof version>[0] = {},
) {
  let asked = 0;
  const mv = { ...approval().modelVersion, ...versionPatch };
  server.use(
    http.get("*/api/v1/approvals", () => HttpResponse.json({ approvals: [approval({ modelVersion: mv })] })),
    http.get(`*/api/v1/models/${MODEL_ID}/versions`, () =>
      HttpResponse.json({ modelVersions: [version({ version: "1", status: "APPROVED" })] }),
    ),
    http.get(`*/api/v1/models/${MODEL_ID}/versions/2/validation`, () => {
      const report = reports[Math.min(asked, reports.length - 1)];
      asked += 1;
      return HttpResponse.json(report);
    }),
  );
  return () => asked;
}

async function card() {
  renderApp("/approvals", { roles: ["model_approver"], sub: "bob" });
  return within(await screen.findByRole("article", { name: "pump-bearing-risk v2" }));
}

const running = validationReport({ state: "RUNNING", completeTime: undefined, metrics: undefined, compatibility: undefined });

describe("validation in the review queue", () => {
  it("shows a passed report in words with its one-line summary, and lets the approver approve", async () => {
    queue([validationReport()]);
    const c = await card();
    expect(await c.findByText("Verified metrics match · Compatible with approved v1")).toBeInTheDocument();
    expect(c.getByText("Passed")).toBeInTheDocument();
    expect(c.getByRole("button", { name: "Approve" })).toBeEnabled();
    expect(c.getByRole("button", { name: "Approve" })).not.toHaveAttribute("aria-describedby");
    expect(c.getByRole("link", { name: "See the validation report of pump-bearing-risk v2" })).toHaveAttribute(
      "href",
      `/models/${MODEL_ID}/versions/2`,
    );
  });

  it("disables Approve while validation runs, says why, and enables it once the report has passed", async () => {
    const asked = queue([running, validationReport()], { validationState: "RUNNING" });
    const c = await card();
    const approve = c.getByRole("button", { name: "Approve" });
    expect(approve).toBeDisabled();
    expect(approve).toHaveAccessibleDescription(/^Validation has not passed: it is still running\./);
    expect(c.getByText(/Validation has not passed: it is still running\./)).toBeVisible();
    expect(c.getByRole("button", { name: "Reject" })).toBeEnabled();
    // Polled every two seconds until it has passed, then no more.
    await waitFor(() => {
      expect(c.getByRole("button", { name: "Approve" })).toBeEnabled();
    });
    expect(c.queryByText(/Validation has not passed/)).toBeNull();
    expect(c.getByText("Verified metrics match · Compatible with approved v1")).toBeInTheDocument();
    const settledAt = asked();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(asked()).toBe(settledAt);
  });

  it("explains a failed report: mismatches and breaking differences, Approve disabled, Reject possible", async () => {
    queue(
      [
        validationReport({
          state: "FAILED",
          reason: "METRICS_MISMATCH",
          message: "2 claimed metrics do not match the evaluation set",
          metrics: {
            passed: false,
            checks: [
              { name: "roc_auc", claimed: 0.93, verified: 0.71, difference: -0.22, tolerance: 0.005, status: "MISMATCH" },
              { name: "f1", claimed: 0.8, verified: 0.6, difference: -0.2, tolerance: 0.01, status: "MISMATCH" },
            ],
          },
          compatibility: {
            verdict: "BREAKING",
            approvedVersion: "1",
            breaking: [{ change: "REMOVED", side: "input", tensor: "X", message: "input X was removed" }],
          },
        }),
      ],
      { validationState: "FAILED" },
    );
    const c = await card();
    expect(
      await c.findByText("2 metric mismatches against the evaluation set · Breaking against approved v1 (1 breaking difference)"),
    ).toBeInTheDocument();
    expect(c.getByText("Failed")).toBeInTheDocument();
    const approve = c.getByRole("button", { name: "Approve" });
    expect(approve).toBeDisabled();
    expect(approve).toHaveAccessibleDescription(
      "Validation has not passed: it failed (METRICS_MISMATCH): 2 claimed metrics do not match the evaluation set. You can still reject it.",
    );
    expect(c.getByRole("button", { name: "Reject" })).toBeEnabled();
  });

  it("says when there is no evaluation set and no approved version", async () => {
    queue(
      [validationReport({ metrics: undefined, compatibility: { verdict: "NO_APPROVED_VERSION" } })],
      { hasEvaluationSet: false },
    );
    const c = await card();
    expect(
      await c.findByText("No evaluation set: claimed metrics are not verified · No approved version to compare with"),
    ).toBeInTheDocument();
    expect(c.getByRole("button", { name: "Approve" })).toBeEnabled();
  });

  it("falls back on the version's state when the report cannot be read", async () => {
    queue([], { validationState: "PENDING" });
    server.use(
      http.get(`*/api/v1/models/${MODEL_ID}/versions/2/validation`, () =>
        statusError(503, { code: 14, reason: "DATABASE_UNAVAILABLE", message: "the database is unavailable" }),
      ),
    );
    const c = await card();
    expect(await c.findByText("Waiting for a validation worker to take it.")).toBeInTheDocument();
    expect(c.getByRole("button", { name: "Approve" })).toHaveAccessibleDescription(
      /^Validation has not passed: it is waiting for a validation worker\./,
    );
  });

  it("explains the server's refusal when validation stopped passing meanwhile (VALIDATION_NOT_PASSED)", async () => {
    const user = userEvent.setup();
    queue([validationReport()]);
    server.use(
      http.post(`*/api/v1/approvals/${APPROVAL_ID}:approve`, () =>
        statusError(400, {
          code: 9,
          reason: "VALIDATION_NOT_PASSED",
          message: "this version cannot be approved: its validation failed (METRICS_MISMATCH); see the version's validation report",
          metadata: { validationState: "FAILED", validationReason: "METRICS_MISMATCH" },
        }),
      ),
    );
    const c = await card();
    await waitFor(() => {
      expect(c.getByRole("button", { name: "Approve" })).toBeEnabled();
    });
    await user.click(c.getByRole("button", { name: "Approve" }));
    const dialog = await screen.findByRole("dialog");
    await waitFor(() => {
      expect(within(dialog).getByRole("button", { name: "Approve" })).toBeEnabled();
    });
    await user.click(within(dialog).getByRole("button", { name: "Approve" }));
    expect(
      await within(dialog).findByText(/^This version cannot be approved: its validation has not passed \(it is Failed: METRICS_MISMATCH\)\./),
    ).toBeInTheDocument();
    expect(within(dialog).getByText("VALIDATION_NOT_PASSED")).toBeInTheDocument();
  });
});
