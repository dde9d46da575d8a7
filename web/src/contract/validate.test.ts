import { describe, expect, it } from "vitest";

import { UploadModelMetadataSchema } from "../gen/mlplane/v1/model_registry_pb";
import { commentProblem } from "./forms";
import { byField, checkMessage } from "./validate";

describe("the contract's field rules in the browser", () => {
  it("accepts a good upload", () => {
    expect(
      checkMessage(UploadModelMetadataSchema, {
        name: "pump-bearing-risk",
        description: "GBM on 30 days\nof pumps",
        labels: { team: "reliability" },
        metrics: { roc_auc: 0.91 },
        trainingExportIds: ["0b7c4f6e-3f7c-4b7a-9a53-6b1f7f0e2a11"],
      }),
    ).toEqual([]);
  });

  it("names fields and writes messages as the server does", () => {
    const messages = byField(
      checkMessage(UploadModelMetadataSchema, {
        name: "Pump..A",
        description: "bad\u0001text",
        labels: { Team: "x", ok: "two\nlines" },
        metrics: { "-bad": 1, fine: Number.POSITIVE_INFINITY },
        trainingExportIds: ["not-a-uuid"],
      }),
    );
    expect(messages.name).toBe(
      "name must be lower-case letters, digits, '.', '_' or '-', start with a letter or digit, and not contain '..'",
    );
    expect(messages.description).toBe(
      "description must not contain control characters other than tab and line breaks",
    );
    expect(messages['labels["Team"]']).toMatch(/^labels\["Team"\] key must be 1-63 lower-case letters/);
    expect(messages['labels["ok"]']).toBe('labels["ok"] must be one line without control characters');
    expect(messages['metrics["-bad"]']).toMatch(/^metrics\["-bad"\] key must be 1-128 letters/);
    expect(messages['metrics["fine"]']).toMatch(/^metrics\["fine"\] must be finite/);
    expect(messages["trainingExportIds[0]"]).toMatch(/^trainingExportIds\[0\] /);
  });

  it("says a missing name is required", () => {
    expect(byField(checkMessage(UploadModelMetadataSchema, { name: "" })).name).toBe("name is required");
  });

  it("checks comments by each request's rules", () => {
    expect(commentProblem("submit", "AUC 0.91")).toBeNull();
    expect(commentProblem("reject", "   ")).toBe("comment must not be blank");
    expect(commentProblem("reject", "")).toBe("comment is required");
    expect(commentProblem("approve", "")).toBeNull();
    expect(commentProblem("approve", "x".repeat(4097))).toMatch(/^comment must be at most 4096 characters/);
  });

  // How fast each keystroke's check is, is measured in web/bench/validation.mjs (bench/README),
  // not here: a timed assertion fails on a busy machine.
  it("checks each keystroke of a growing name against the same rules: up to 128 characters", () => {
    const base = { name: "pump", description: "d", labels: { team: "r" }, metrics: { auc: 0.9 } };
    for (let i = 0; i < 200; i++) {
      const name = `pump-${"x".repeat(i)}`;
      const problem = byField(checkMessage(UploadModelMetadataSchema, { ...base, name })).name;
      if (name.length <= 128) expect(problem, name).toBeUndefined();
      else expect(problem, name).toMatch(/^name must be at most 128 characters/);
    }
  });
});
