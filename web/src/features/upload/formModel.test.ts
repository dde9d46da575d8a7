import { describe, expect, it } from "vitest";

import { evaluationSetProblem, fileProblem, MAX_EVALUATION_SET_BYTES } from "./fileChecks";
import { checkDraft, EMPTY_DRAFT, hasProblems, noProblems, placeMessages, type UploadDraft } from "./formModel";

const draft = (patch: Partial<UploadDraft>): UploadDraft => ({ ...EMPTY_DRAFT, name: "pump", ...patch });

describe("the file, before a byte is sent", () => {
  const max = 1024 * 1024;
  it("refuses what is not .onnx, empty, or over the server's limit", () => {
    expect(fileProblem({ name: "model.pkl", size: 10 }, max)).toMatch(/is not an ONNX model/);
    expect(fileProblem({ name: "model.onnx", size: 0 }, max)).toBe("“model.onnx” is empty.");
    expect(fileProblem({ name: "model.onnx", size: max + 1 }, max)).toMatch(/the registry accepts at most 1.00 MiB \(1,048,576 bytes\)/);
    expect(fileProblem({ name: "Model.ONNX", size: max }, max)).toBeNull();
  });
});

describe("the evaluation set, before a byte is sent", () => {
  it("refuses what is not .parquet, empty, or over 64 MiB", () => {
    expect(MAX_EVALUATION_SET_BYTES).toBe(67_108_864);
    expect(evaluationSetProblem({ name: "eval.csv", size: 10 })).toMatch(/^“eval.csv” is not a Parquet file: choose a file ending in .parquet/);
    expect(evaluationSetProblem({ name: "eval.parquet", size: 0 })).toBe("“eval.parquet” is empty.");
    expect(evaluationSetProblem({ name: "eval.parquet", size: MAX_EVALUATION_SET_BYTES + 1 })).toBe(
      "“eval.parquet” is 64.0 MiB; an evaluation set may be at most 64.0 MiB (67,108,864 bytes): choose a smaller sample of rows.",
    );
    expect(evaluationSetProblem({ name: "Eval.PARQUET", size: MAX_EVALUATION_SET_BYTES })).toBeNull();
  });
});

describe("the form by the contract's rules", () => {
  it("builds the fields to send", () => {
    const { fields, problems } = checkDraft(
      draft({
        labels: [{ key: "team", value: "reliability" }, { key: "", value: "" }],
        metrics: [{ key: "roc_auc", value: " 0.91 " }],
        exportIds: [" 0b7c4f6e-3f7c-4b7a-9a53-6b1f7f0e2a11 "],
      }),
    );
    expect(hasProblems(problems)).toBe(false);
    expect(fields).toEqual({
      name: "pump",
      description: "",
      labels: { team: "reliability" },
      metrics: { roc_auc: 0.91 },
      trainingExportIds: ["0b7c4f6e-3f7c-4b7a-9a53-6b1f7f0e2a11"],
    });
  });

  it("puts each message on its row: keys, values, numbers, duplicates", () => {
    const { problems } = checkDraft(
      draft({
        name: "Bad Name",
        labels: [
          { key: "Team", value: "x" },
          { key: "ok", value: "a\nb" },
          { key: "ok", value: "again" },
        ],
        metrics: [
          { key: "auc", value: "high" },
          { key: "loss", value: "Infinity" },
        ],
        exportIds: ["nope"],
      }),
    );
    expect(problems.name).toMatch(/^name must be lower-case letters/);
    expect(problems.labelRows[0]?.key).toMatch(/^labels\["Team"\] key must be 1-63/);
    expect(problems.labelRows[1]?.value).toBe('labels["ok"] must be one line without control characters');
    expect(problems.labelRows[2]?.key).toBe('labels["ok"] appears twice');
    expect(problems.metricRows[0]?.value).toBe('metrics["auc"] must be a number, e.g. 0.91');
    expect(problems.metricRows[1]?.value).toMatch(/^metrics\["loss"\] must be finite/);
    expect(problems.exportIds).toMatch(/^trainingExportIds\[0\] must be a valid UUID/);
  });

  it("sends the label column only when given, checked by the contract's rules", () => {
    expect(checkDraft(draft({ labelColumn: " failed_within_7d " })).fields.evaluationLabelColumn).toBe("failed_within_7d");
    expect(checkDraft(draft({ labelColumn: "" })).fields).not.toHaveProperty("evaluationLabelColumn");
    const { problems } = checkDraft(draft({ labelColumn: "x".repeat(129) }));
    expect(problems.labelColumn).toMatch(/^evaluationLabelColumn must be at most 128 characters/);
    expect(hasProblems(problems)).toBe(true);
  });

  it("places the server's field violations on the same fields", () => {
    const d = draft({ labels: [{ key: "team", value: "x" }] });
    const placed = placeMessages(
      d,
      [
        { field: "name", forKey: false, ruleId: "model_name", message: "name must be …" },
        { field: 'labels["team"]', forKey: false, ruleId: "x", message: 'labels["team"] must be …' },
        { field: "trainingExportIds", forKey: false, ruleId: "UNKNOWN_EXPORT", message: "training export … does not exist" },
        { field: "evaluationSet", forKey: false, ruleId: "EVALUATION_SET_AFTER_FILE", message: "send the evaluation set before the model file" },
        { field: "sha256", forKey: false, ruleId: "x", message: "sha256 must be …" },
      ],
      noProblems(d),
    );
    expect(placed.name).toBe("name must be …");
    expect(placed.labelRows[0]?.value).toBe('labels["team"] must be …');
    expect(placed.exportIds).toBe("training export … does not exist");
    expect(placed.evaluationSet).toBe("send the evaluation set before the model file");
    expect(placed.other).toEqual(["sha256 must be …"]);
  });
});
