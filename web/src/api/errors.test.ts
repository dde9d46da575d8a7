import { describe, expect, it } from "vitest";

import { apiErrorFromResponse, describeError, networkError, statusWords } from "./errors";

const status = (reason: string, message: string, metadata: Record<string, string> = {}, extra: object[] = []) => ({
  code: 3,
  message,
  details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain: "mlplane", metadata }, ...extra],
});

describe("google.rpc.Status answers", () => {
  it("reads the reason, metadata, field violations and request id", () => {
    const error = apiErrorFromResponse(
      400,
      status("INVALID_FIELD", "name must be lower-case…", { field: "name", rule: "model_name" }, [
        {
          "@type": "type.googleapis.com/google.rpc.BadRequest",
          fieldViolations: [{ field: "name", description: "name must be lower-case…", reason: "model_name" }],
        },
      ]),
      "req-42",
    );
    expect(error).toMatchObject({
      kind: "http",
      httpStatus: 400,
      code: 3,
      reason: "INVALID_FIELD",
      domain: "mlplane",
      metadata: { field: "name", rule: "model_name" },
      requestId: "req-42",
      fieldViolations: [{ field: "name", description: "name must be lower-case…", reason: "model_name" }],
    });
    expect(describeError(error, "upload").title).toBe("Some fields need attention: see the messages beside them.");
  });

  it("survives bodies that are not a Status", () => {
    expect(apiErrorFromResponse(502, "<html>bad gateway</html>").message).toBe("HTTP 502");
    expect(apiErrorFromResponse(503, "upstream connect error").message).toBe("upstream connect error");
    expect(apiErrorFromResponse(500, null).fieldViolations).toEqual([]);
  });
});

describe("sentences people understand", () => {
  const say = (httpStatus: number, reason: string, context: Parameters<typeof describeError>[1], metadata = {}) =>
    describeError(apiErrorFromResponse(httpStatus, status(reason, "server words", metadata)), context);

  it("explains sign-in and role problems", () => {
    expect(say(401, "TOKEN_EXPIRED", "load").title).toMatch(/sign-in has expired/);
    expect(say(403, "ROLE_REQUIRED", "load", { method: "ListApprovals", required: "model_approver" })).toEqual({
      title: "Your account does not have the role model_approver, which this needs.",
      detail: "server words",
    });
    expect(say(403, "SEPARATION_OF_DUTIES", "decide").title).toMatch(/another approver must decide/);
  });

  it("explains the upload's refusals", () => {
    expect(say(413, "MODEL_TOO_LARGE", "upload").title).toBe("The file is larger than the registry accepts.");
    expect(say(503, "OBJECT_STORE_UNAVAILABLE", "upload").title).toMatch(/model store is unavailable.*Nothing was stored/);
    expect(say(503, "DATABASE_UNAVAILABLE", "upload").title).toMatch(/database is unavailable.*Nothing was stored/);
    expect(say(400, "NOT_ONNX", "upload").title).toBe("This file is not an ONNX model.");
    expect(describeError(networkError(), "upload").title).toMatch(/broke off/);
  });

  it("explains conflicts by what the user was doing", () => {
    expect(say(409, "VERSION_NOT_PENDING", "submit", { status: "IN_REVIEW" }).title).toBe(
      "This version cannot be submitted: it is In Review, and only versions pending approval can be submitted.",
    );
    expect(say(409, "ALREADY_DECIDED", "decide").title).toMatch(/Someone else decided this request/);
    expect(say(404, "MODEL_NOT_FOUND", "submit").title).toMatch(/no longer exists, or it is not visible to you/);
  });

  it("reads enum words", () => {
    expect(statusWords("PENDING_APPROVAL")).toBe("Pending Approval");
    expect(statusWords("IN_REVIEW")).toBe("In Review");
  });

  it("names a denied asset, with the server's own words beside", () => {
    const error = apiErrorFromResponse(
      403,
      { ...status("ASSET_NOT_GRANTED", "you have no read grant for asset 'turbine-001'", { assetId: "turbine-001" }), code: 7 },
    );
    expect(describeError(error, "download")).toEqual({
      title: "You have no grant to read the asset “turbine-001”. An administrator can grant it (mlplane grant add).",
      detail: "you have no read grant for asset 'turbine-001'",
    });
  });

  it("says a chart would be too large for JSON, and what to do", () => {
    const error = apiErrorFromResponse(400, status("TOO_MANY_ROWS_FOR_JSON", "this export has more than 100000 rows…", { limit: "100000" }));
    expect(describeError(error).title).toBe(
      "Too many points to chart at once (more than 100,000 rows): choose fewer tags or a coarser resolution, or download the CSV.",
    );
  });

  it("explains the evaluation set's refusals and an approval refused for validation", () => {
    expect(say(413, "EVALUATION_SET_TOO_LARGE", "upload").title).toBe(
      "The evaluation set is larger than the registry accepts (at most 64 MiB): choose a smaller sample of rows. Nothing was stored.",
    );
    expect(say(400, "EVALUATION_SET_NOT_PARQUET", "upload").title).toMatch(/^The evaluation set is not a Parquet file/);
    expect(say(413, "EVALUATION_SET_TOO_LARGE", "upload", { limitBytes: String(32 * 1024 * 1024) }).title).toMatch(/at most 32 MiB/);
    expect(say(400, "VALIDATION_NOT_PASSED", "decide", { validationState: "RUNNING" }).title).toBe(
      "This version cannot be approved: its validation has not passed (it is Running). Open its validation report to see why; rejecting it stays possible.",
    );
    expect(
      say(400, "VALIDATION_NOT_PASSED", "decide", { validationState: "FAILED", validationReason: "METRICS_MISMATCH" }).title,
    ).toMatch(/^This version cannot be approved: its validation has not passed \(it is Failed: METRICS_MISMATCH\)\./);
    expect(say(400, "VALIDATION_NOT_PASSED", "decide").title).toMatch(/^This version cannot be approved: its validation has not passed\. /);
  });
});
