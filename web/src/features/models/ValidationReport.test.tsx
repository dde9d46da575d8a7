import { screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import type { ModelVersionJson, ValidationReportJson } from "../../gen/mlplane/v1/model_registry_pb";
import { MODEL_ID, validationReport, version } from "../../test/fixtures";
import { renderApp } from "../../test/render";
import { server, statusError } from "../../test/server";

/** Version 2's page; its report answers are `reports` in turn (the last one repeats). */
function versionPage(reports: (ValidationReportJson | Response)[], patch: Partial<ModelVersionJson> = {}) {
  let asked = 0;
  server.use(
    http.get(`*/api/v1/models/${MODEL_ID}/versions/2`, () =>
      HttpResponse.json(version({ version: "2", hasEvaluationSet: true, validationState: "PASSED", ...patch })),
    ),
    http.get(`*/api/v1/models/${MODEL_ID}/versions/2/auditEntries`, () => HttpResponse.json({ auditEntries: [] })),
    http.get(`*/api/v1/models/${MODEL_ID}/versions/2/validation`, () => {
      const answer = reports[Math.min(asked, reports.length - 1)];
      asked += 1;
      return answer instanceof Response ? answer : HttpResponse.json(answer);
    }),
  );
  renderApp(`/models/${MODEL_ID}/versions/2`, { roles: ["model_approver"], sub: "bob" });
  return () => asked;
}

async function section() {
  return within(await screen.findByRole("region", { name: "Validation" }));
}

describe("a version's validation report", () => {
  it("shows a passed report: runtime, claimed vs verified metrics and compatibility", async () => {
    versionPage([
      validationReport({
        runtime: {
          ...validationReport().runtime,
          nonFiniteOutput: true,
          outputs: [
            { name: "risk", type: "tensor(float)", shape: ["8", "1"] },
            { name: "logits", type: "tensor(float)", shape: ["8", "2"], nonFinite: true },
          ],
        },
        metrics: { ...validationReport().metrics, unknownMetrics: ["custom_cost"] },
      }),
    ]);
    const s = await section();
    expect(await s.findByText("Passed")).toBeInTheDocument();
    expect(s.getByText(/^Validation passed/)).toBeInTheDocument();

    const runtime = within(s.getByRole("region", { name: "ONNX Runtime check" }));
    expect(runtime.getByText("1.32.0")).toBeInTheDocument();
    expect(runtime.getByText("0.04 s")).toBeInTheDocument();
    expect(runtime.getByText("Latency per batch of 8")).toBeInTheDocument();
    expect(runtime.getByText(/P50 0.61 ms · P95 1.25 ms/)).toBeInTheDocument();
    expect(runtime.getByText("over 50 timed runs")).toBeInTheDocument();
    expect(runtime.getByText("88.0 MiB")).toBeInTheDocument();
    expect(runtime.getByText("Cut off by its own network namespace and an audit hook refusing sockets")).toBeInTheDocument();
    expect(runtime.getByText(/An output held NaN or infinity/)).toBeInTheDocument();
    const outputs = runtime.getByRole("table", { name: "Outputs of the check's inference" });
    const logits = within(outputs).getByText("logits").closest("tr") as HTMLElement;
    expect(within(logits).getByText("[8, 2]")).toBeInTheDocument();
    expect(within(logits).getByText("Yes: non-finite")).toBeInTheDocument();
    const risk = within(outputs).getByText("risk").closest("tr") as HTMLElement;
    expect(within(risk).getByText("No")).toBeInTheDocument();

    const metrics = within(s.getByRole("region", { name: "Metric verification" }));
    const table = metrics.getByRole("table", { name: "Claimed vs verified metrics" });
    expect(within(table).getAllByRole("columnheader").map((h) => h.textContent)).toEqual([
      "Metric",
      "Claimed",
      "Verified",
      "Difference",
      "Tolerance",
      "Status",
    ]);
    const row = within(table).getByText("roc_auc").closest("tr") as HTMLElement;
    expect(within(row).getAllByRole("cell").map((c) => c.textContent)).toEqual([
      "roc_aucwithin tolerance",
      "0.93",
      "0.9312",
      "+0.0012",
      "±0.005",
      "Match",
    ]);
    expect(metrics.getByText(/5,000 rows, label column “label”, decision threshold 0.5/)).toBeInTheDocument();
    expect(metrics.getByText("custom_cost")).toBeInTheDocument();

    const compatibility = within(s.getByRole("region", { name: "Compatibility" }));
    expect(compatibility.getByText("Compatible with approved version 1: its callers keep working.")).toBeInTheDocument();
  });

  it("polls while pending or running, and stops once the report is settled", async () => {
    const pending = validationReport({ state: "PENDING", startTime: undefined, completeTime: undefined, runtime: undefined, metrics: undefined, compatibility: undefined });
    const running = { ...pending, state: "RUNNING" as const, attempts: 2 };
    const asked = versionPage([pending, running, validationReport()], { validationState: "PENDING" });
    const s = await section();
    expect(await s.findByText("Waiting for a validation worker to take it.")).toBeInTheDocument();
    expect(s.getByText("Not run yet.")).toBeInTheDocument();
    expect(s.getByText("Not verified yet: the evaluation set is used once the model has run.")).toBeInTheDocument();
    expect(await s.findByText("A validation worker is checking it (attempt 2).")).toBeInTheDocument();
    expect(s.getByRole("status")).toHaveTextContent("Running");
    expect(await s.findByText(/^Validation passed/)).toBeInTheDocument();
    expect(asked()).toBe(3);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(asked()).toBe(3);
  });

  it("shows why it failed, each metric's mismatch in words, and every breaking difference", async () => {
    versionPage(
      [
        validationReport({
          state: "FAILED",
          reason: "METRICS_MISMATCH",
          message: "roc_auc does not match the evaluation set",
          metrics: {
            passed: false,
            rows: "1200",
            labelColumn: "failed_within_7d",
            checks: [
              { name: "roc_auc", claimed: 0.93, verified: 0.71, difference: -0.22, tolerance: 0.005, status: "MISMATCH" },
              { name: "log_loss", claimed: 0.2, status: "NOT_COMPUTED", message: "the model has no probability output" },
            ],
          },
          compatibility: {
            verdict: "BREAKING",
            approvedVersion: "3",
            breaking: [
              { change: "ELEMENT_TYPE_CHANGED", side: "input", tensor: "X", old: "FLOAT", new: "DOUBLE", message: "input X is DOUBLE, was FLOAT" },
              { change: "REMOVED", side: "output", tensor: "probabilities", message: "output probabilities was removed" },
            ],
            nonBreaking: [{ change: "DIM_RENAMED", side: "input", tensor: "X", old: "batch", new: "N", message: "dimension renamed" }],
          },
        }),
      ],
      { validationState: "FAILED" },
    );
    const s = await section();
    expect(await s.findByText("Failed")).toBeInTheDocument();
    expect(s.getByText("METRICS_MISMATCH")).toBeInTheDocument();
    expect(s.getByText(/roc_auc does not match the evaluation set/)).toBeInTheDocument();

    const table = s.getByRole("table", { name: "Claimed vs verified metrics" });
    const auc = within(table).getByText("roc_auc").closest("tr") as HTMLElement;
    expect(within(auc).getByText("Mismatch")).toBeInTheDocument();
    expect(within(auc).getByText("-0.22")).toBeInTheDocument();
    const loss = within(table).getByText("log_loss").closest("tr") as HTMLElement;
    expect(within(loss).getByText("Not computed")).toBeInTheDocument();
    expect(within(loss).getByText("the model has no probability output")).toBeInTheDocument();
    expect(within(loss).getAllByText("—")).toHaveLength(3);

    expect(s.getByText("Breaking against approved version 3: 2 differences would break its callers.")).toBeInTheDocument();
    const breaking = s.getByRole("table", { name: "Breaking differences" });
    expect(within(breaking).getAllByRole("row")).toHaveLength(3);
    expect(within(breaking).getByText("Element Type Changed")).toBeInTheDocument();
    expect(within(breaking).getByText("input X is DOUBLE, was FLOAT")).toBeInTheDocument();
    expect(within(breaking).getByText("output probabilities was removed")).toBeInTheDocument();
    expect(s.getByRole("table", { name: "Other differences (not breaking)" })).toBeInTheDocument();
  });

  it("says claimed metrics are not verified without an evaluation set", async () => {
    versionPage([validationReport({ metrics: undefined, compatibility: { verdict: "NO_APPROVED_VERSION" } })], {
      hasEvaluationSet: false,
    });
    const s = await section();
    expect(await s.findByText("No evaluation set: claimed metrics are not verified.")).toBeInTheDocument();
    expect(s.getByText("No approved version of this model to compare with.")).toBeInTheDocument();
  });

  it("shows a runtime failure with its reason", async () => {
    versionPage(
      [
        validationReport({
          state: "FAILED",
          reason: "MEMORY_LIMIT",
          message: "the model needed more than 2 GiB",
          runtime: { passed: false, reason: "MEMORY_LIMIT", message: "the child ran out of memory", onnxruntimeVersion: "1.32.0" },
          metrics: undefined,
          compatibility: undefined,
        }),
      ],
      { validationState: "FAILED" },
    );
    const s = await section();
    const runtime = within(await s.findByRole("region", { name: "ONNX Runtime check" }));
    expect(runtime.getByText(/The model did not load or run/)).toBeInTheDocument();
    expect(runtime.getByText(/the child ran out of memory/)).toBeInTheDocument();
    expect(s.getByText("The evaluation set was not evaluated: the validation stopped before it.")).toBeInTheDocument();
    expect(s.getByText("Not compared with an approved version.")).toBeInTheDocument();
  });

  it("says so when the server has no report", async () => {
    versionPage([statusError(404, { code: 5, reason: "VALIDATION_REPORT_NOT_FOUND", message: "no report" })]);
    const s = await section();
    expect(await s.findByText("No validation report is available for this version.")).toBeInTheDocument();
  });

  it("offers to try again when the report cannot be read", async () => {
    versionPage([
      statusError(503, { code: 14, reason: "DATABASE_UNAVAILABLE", message: "the database is unavailable" }),
      validationReport(),
    ]);
    const s = await section();
    await waitFor(() => {
      expect(s.getByRole("button", { name: "Try again" })).toBeInTheDocument();
    });
    s.getByRole("button", { name: "Try again" }).click();
    expect(await s.findByText("Passed")).toBeInTheDocument();
  });
});
