import { describe, expect, it } from "vitest";

import { validationReport } from "../../test/fixtures";
import { compatibilitySummary, metricsSummary, reportSummary, validationStateWords, whyNotApprove } from "./validation";

describe("a validation report in words", () => {
  it("names every state", () => {
    expect(validationStateWords("PENDING")).toBe("Pending");
    expect(validationStateWords("PASSED")).toBe("Passed");
    expect(validationStateWords("STATE_UNSPECIFIED")).toBe("Unknown");
    expect(validationStateWords(undefined)).toBe("Unknown");
  });

  it("says why a version may not be approved, unless it passed", () => {
    expect(whyNotApprove("PASSED")).toBeNull();
    expect(whyNotApprove("PENDING")).toBe("Validation has not passed: it is waiting for a validation worker.");
    expect(whyNotApprove("RUNNING")).toBe("Validation has not passed: it is still running.");
    expect(whyNotApprove("FAILED", validationReport({ state: "FAILED", reason: "TIME_LIMIT", message: "inference took longer than 120 s." }))).toBe(
      "Validation has not passed: it failed (TIME_LIMIT): inference took longer than 120 s.",
    );
    expect(whyNotApprove("FAILED")).toBe("Validation has not passed: it failed.");
    expect(whyNotApprove(undefined)).toBe("Validation has not passed: this version has no validation result yet.");
  });

  it("sums up the metrics: match, mismatches, not computed, no evaluation set", () => {
    const settled = { hasEvaluationSet: true, settled: true };
    expect(metricsSummary(validationReport().metrics, settled)).toBe("Verified metrics match");
    expect(
      metricsSummary({ checks: [{ status: "MISMATCH" }, { status: "MATCH" }, { status: "MISMATCH" }] }, settled),
    ).toBe("2 metric mismatches against the evaluation set");
    expect(metricsSummary({ checks: [{ status: "MISMATCH" }] }, settled)).toBe("1 metric mismatch against the evaluation set");
    expect(metricsSummary({ checks: [{ status: "MATCH" }, { status: "NOT_COMPUTED" }] }, settled)).toBe(
      "Verified metrics match (1 of 2; the rest not computed)",
    );
    expect(metricsSummary({ checks: [] }, settled)).toBe("No claimed metric could be verified");
    expect(metricsSummary({ reason: "EVAL_NO_LABEL" }, settled)).toBe("Claimed metrics could not be verified (EVAL_NO_LABEL)");
    expect(metricsSummary(undefined, { hasEvaluationSet: false, settled: false })).toBe(
      "No evaluation set: claimed metrics are not verified",
    );
    expect(metricsSummary(undefined, { hasEvaluationSet: true, settled: false })).toBeNull();
  });

  it("sums up the compatibility verdict", () => {
    expect(compatibilitySummary({ verdict: "COMPATIBLE", approvedVersion: "4" })).toBe("Compatible with approved v4");
    expect(compatibilitySummary({ verdict: "BREAKING", approvedVersion: "4", breaking: [{}, {}] })).toBe(
      "Breaking against approved v4 (2 breaking differences)",
    );
    expect(compatibilitySummary({ verdict: "NO_APPROVED_VERSION" })).toBe("No approved version to compare with");
    expect(compatibilitySummary(undefined)).toBeNull();
  });

  it("joins both halves in one line", () => {
    expect(reportSummary(validationReport(), true)).toBe("Verified metrics match · Compatible with approved v1");
    expect(reportSummary(undefined, true)).toBeNull();
  });
});
