// Words for a validation report (issue #16): its state, the one-line summaries the review
// queue shows, and why a version may not be approved yet. Doubles come as proto JSON writes
// them: numbers, or "NaN" / "Infinity" as strings; int64 as strings.
import { statusWords } from "../../api/errors";
import type {
  MetricCheckJson,
  MetricsVerificationJson,
  SignatureCompatibilityJson,
  ValidationReport_StateJson,
  ValidationReportJson,
} from "../../gen/mlplane/v1/model_registry_pb";

export type ValidationState = ValidationReport_StateJson | undefined;

/** A proto JSON double as a number (NaN when absent). */
export function num(value: number | string | undefined): number {
  return value === undefined ? Number.NaN : Number(value);
}

/** `PASSED` → "Passed"; absent or unspecified → "Unknown". */
export function validationStateWords(state: ValidationState): string {
  return !state || state === "STATE_UNSPECIFIED" ? "Unknown" : statusWords(state);
}

/** One sentence on where the validation stands. */
export function validationStateSentence(state: ValidationState, attempts = 0): string {
  switch (state) {
    case "PENDING":
      return "Waiting for a validation worker to take it.";
    case "RUNNING":
      return attempts > 1 ? `A validation worker is checking it (attempt ${attempts}).` : "A validation worker is checking it.";
    case "PASSED":
      return "Validation passed: the model runs in ONNX Runtime and every claimed metric that could be checked matched.";
    case "FAILED":
      return "Validation failed.";
    default:
      return "The validation state is unknown.";
  }
}

/**
 * Why the version may not be approved yet (the server refuses it with VALIDATION_NOT_PASSED),
 * or null when its validation PASSED.
 */
export function whyNotApprove(state: ValidationState, report?: ValidationReportJson): string | null {
  switch (state) {
    case "PASSED":
      return null;
    case "PENDING":
      return "Validation has not passed: it is waiting for a validation worker.";
    case "RUNNING":
      return "Validation has not passed: it is still running.";
    case "FAILED": {
      const reason = report?.reason ? ` (${report.reason})` : "";
      const message = report?.message ? `: ${report.message}` : "";
      return `Validation has not passed: it failed${reason}${message}.`.replace(/\.\.$/, ".");
    }
    default:
      return "Validation has not passed: this version has no validation result yet.";
  }
}

export type CheckStatus = "MATCH" | "MISMATCH" | "NOT_COMPUTED" | "UNKNOWN";

export function checkStatus(check: MetricCheckJson): CheckStatus {
  const status = check.status ?? "";
  return status === "MATCH" || status === "MISMATCH" || status === "NOT_COMPUTED" ? status : "UNKNOWN";
}

export function checkStatusWords(status: CheckStatus): string {
  switch (status) {
    case "MATCH":
      return "Match";
    case "MISMATCH":
      return "Mismatch";
    case "NOT_COMPUTED":
      return "Not computed";
    default:
      return "Unknown";
  }
}

export const NO_EVALUATION_SET = "No evaluation set: claimed metrics are not verified.";

const plural = (n: number, one: string, many: string) => `${n.toLocaleString()} ${n === 1 ? one : many}`;

/**
 * The metrics half of a report in a few words: "Verified metrics match", "2 mismatches",
 * "No evaluation set: claimed metrics are not verified"…; null while there is nothing to say.
 */
export function metricsSummary(
  metrics: MetricsVerificationJson | undefined,
  { hasEvaluationSet, settled }: { hasEvaluationSet: boolean; settled: boolean },
): string | null {
  if (!metrics) {
    if (!hasEvaluationSet) return NO_EVALUATION_SET.replace(/\.$/, "");
    return settled ? "Claimed metrics were not verified: the evaluation did not run" : null;
  }
  if (metrics.reason) return `Claimed metrics could not be verified (${metrics.reason})`;
  const checks = metrics.checks ?? [];
  const mismatches = checks.filter((c) => checkStatus(c) === "MISMATCH").length;
  if (mismatches) return `${plural(mismatches, "metric mismatch", "metric mismatches")} against the evaluation set`;
  const matched = checks.filter((c) => checkStatus(c) === "MATCH").length;
  if (matched === 0) return "No claimed metric could be verified";
  const others = checks.length - matched;
  return others ? `Verified metrics match (${matched} of ${checks.length}; the rest not computed)` : "Verified metrics match";
}

/** The compatibility verdict in a few words; null before it was checked. */
export function compatibilitySummary(compatibility: SignatureCompatibilityJson | undefined): string | null {
  const approved = compatibility?.approvedVersion ?? "";
  switch (compatibility?.verdict) {
    case "COMPATIBLE":
      return `Compatible with approved v${approved}`;
    case "BREAKING": {
      const n = compatibility.breaking?.length ?? 0;
      return `Breaking against approved v${approved} (${plural(n, "breaking difference", "breaking differences")})`;
    }
    case "NO_APPROVED_VERSION":
      return "No approved version to compare with";
    default:
      return null;
  }
}

/** "Verified metrics match · Compatible with approved v1", or null while nothing is known. */
export function reportSummary(report: ValidationReportJson | undefined, hasEvaluationSet: boolean): string | null {
  if (!report) return null;
  const settled = report.state === "PASSED" || report.state === "FAILED";
  const parts = [metricsSummary(report.metrics, { hasEvaluationSet, settled }), compatibilitySummary(report.compatibility)];
  const text = parts.filter(Boolean).join(" · ");
  return text || null;
}
