import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { MODEL_ID, version } from "../test/fixtures";
import { server, statusError } from "../test/server";
import { RateMeter, sendUpload, uploadForm, type UploadFields } from "./upload";

const fields: UploadFields = {
  name: "pump-bearing-risk",
  description: "GBM",
  labels: { team: "reliability" },
  metrics: { roc_auc: 0.91 },
  trainingExportIds: ["0b7c4f6e-3f7c-4b7a-9a53-6b1f7f0e2a11"],
};

const onnx = () => new File([new Uint8Array([8, 7, 18, 4])], "model.onnx");

describe("the multipart form", () => {
  it("puts the text fields first (JSON for maps and lists) and the file last, as a File", () => {
    const file = onnx();
    const form = uploadForm(fields, file);
    expect([...form.keys()]).toEqual(["name", "description", "labels", "metrics", "trainingExportIds", "file"]);
    expect(form.get("labels")).toBe('{"team":"reliability"}');
    expect(form.get("metrics")).toBe('{"roc_auc":0.91}');
    expect(form.get("trainingExportIds")).toBe('["0b7c4f6e-3f7c-4b7a-9a53-6b1f7f0e2a11"]');
    expect((form.get("file") as File).name).toBe("model.onnx");
  });

  it("puts the evaluation set and its label column after the text fields and before the file", () => {
    const evaluation = new File([new Uint8Array([80, 65, 82, 49])], "eval.parquet");
    const form = uploadForm({ ...fields, evaluationLabelColumn: "failed_within_7d" }, onnx(), evaluation);
    expect([...form.keys()]).toEqual([
      "name",
      "description",
      "labels",
      "metrics",
      "trainingExportIds",
      "evaluationLabelColumn",
      "evaluationSet",
      "file",
    ]);
    expect(form.get("evaluationLabelColumn")).toBe("failed_within_7d");
    expect((form.get("evaluationSet") as File).name).toBe("eval.parquet");
  });

  it("sends no label column without an evaluation set, and none when it is left empty", () => {
    expect([...uploadForm({ ...fields, evaluationLabelColumn: "y" }, onnx()).keys()]).not.toContain("evaluationLabelColumn");
    const evaluation = new File([new Uint8Array([1])], "eval.parquet");
    expect([...uploadForm(fields, onnx(), evaluation).keys()]).toEqual([
      "name",
      "description",
      "labels",
      "metrics",
      "trainingExportIds",
      "evaluationSet",
      "file",
    ]);
  });

  it("leaves out empty optional fields", () => {
    const form = uploadForm({ name: "m", description: "", labels: {}, metrics: {}, trainingExportIds: [] }, onnx());
    expect([...form.keys()]).toEqual(["name", "file"]);
  });
});

describe("sending it", () => {
  it("resolves with the new version on 201, with the token", async () => {
    let auth: string | null = null;
    server.use(
      http.post("*/api/v1/models", ({ request }) => {
        auth = request.headers.get("authorization");
        return HttpResponse.json(version({ version: "3" }), { status: 201 });
      }),
    );
    const created = await sendUpload({ fields, file: onnx(), token: "tok" });
    expect(created).toMatchObject({ modelId: MODEL_ID, version: "3", status: "PENDING_APPROVAL" });
    expect(auth).toBe("Bearer tok");
  });

  it("rejects with the server's reason and request id (413)", async () => {
    server.use(
      http.post("*/api/v1/models", () =>
        statusError(413, { code: 8, reason: "MODEL_TOO_LARGE", message: "the model is over 1073741824 bytes", requestId: "rid-413" }),
      ),
    );
    await expect(sendUpload({ fields, file: onnx(), token: "tok" })).rejects.toMatchObject({
      httpStatus: 413,
      reason: "MODEL_TOO_LARGE",
      requestId: "rid-413",
    });
  });

  it("cancels", async () => {
    const abort = new AbortController();
    abort.abort();
    await expect(sendUpload({ fields, file: onnx(), token: "tok", signal: abort.signal })).rejects.toMatchObject({
      kind: "aborted",
    });
  });
});

describe("throughput", () => {
  it("measures bytes per second over recent progress", () => {
    const meter = new RateMeter(3000);
    expect(meter.add(0, 0)).toBe(0);
    expect(meter.add(1000, 5_000_000)).toBe(5_000_000);
    expect(meter.add(2000, 15_000_000)).toBe(7_500_000);
  });
});
