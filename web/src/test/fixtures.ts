// Answers shaped as the gateway's proto JSON: int64 as strings, enums as words, defaults absent.
import type { ApprovalJson, ModelJson, ModelVersionJson, ValidationReportJson } from "../gen/mlplane/v1/model_registry_pb";

export const MODEL_ID = "6f1c2b9e-8a4d-4c3e-9b1a-2d3e4f5a6b7c";
export const APPROVAL_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

export function model(overrides: Partial<ModelJson> = {}): ModelJson {
  return {
    modelId: MODEL_ID,
    name: "pump-bearing-risk",
    description: "GBM on 30 days of pumps",
    latestVersion: "1",
    latestStatus: "PENDING_APPROVAL",
    createdBy: "alice",
    createTime: "2026-12-01T08:00:00Z",
    updateTime: "2026-12-01T08:00:00Z",
    ...overrides,
  };
}

export function version(overrides: Partial<ModelVersionJson> = {}): ModelVersionJson {
  return {
    modelId: MODEL_ID,
    name: "pump-bearing-risk",
    version: "1",
    status: "PENDING_APPROVAL",
    description: "GBM on 30 days of pumps",
    metrics: { roc_auc: 0.91 },
    labels: { team: "reliability" },
    sha256: "a".repeat(64),
    sizeBytes: "123456",
    signature: {
      inputs: [{ name: "X", elementType: "FLOAT", shape: [{ param: "batch" }, { size: "16" }] }],
      outputs: [{ name: "risk", elementType: "FLOAT", shape: [{ param: "batch" }] }],
      opsetImports: [{ version: "17" }],
      irVersion: "8",
      producerName: "skl2onnx",
      producerVersion: "1.17",
    },
    createdBy: "alice",
    createTime: "2026-12-01T08:00:00Z",
    updateTime: "2026-12-01T08:00:00Z",
    statusHistory: [{ toStatus: "PENDING_APPROVAL", actor: "alice", changeTime: "2026-12-01T08:00:00Z" }],
    ...overrides,
  };
}

export function approval(overrides: Partial<ApprovalJson> = {}): ApprovalJson {
  return {
    approvalId: APPROVAL_ID,
    modelId: MODEL_ID,
    modelName: "pump-bearing-risk",
    version: "2",
    state: "OPEN",
    submittedBy: "alice",
    submitComment: "AUC 0.93 on a held-out pump",
    submitTime: "2026-12-02T09:00:00Z",
    sha256: "b".repeat(64),
    modelVersion: version({
      version: "2",
      status: "IN_REVIEW",
      metrics: { roc_auc: 0.93 },
      sha256: "b".repeat(64),
      validationState: "PASSED",
      hasEvaluationSet: true,
    }),
    ...overrides,
  };
}

/** A PASSED report of version 2: it ran, roc_auc matched, compatible with approved v1. */
export function validationReport(overrides: Partial<ValidationReportJson> = {}): ValidationReportJson {
  return {
    modelId: MODEL_ID,
    version: "2",
    state: "PASSED",
    attempts: 1,
    createTime: "2026-12-02T08:59:00Z",
    startTime: "2026-12-02T08:59:01Z",
    completeTime: "2026-12-02T08:59:04Z",
    runtime: {
      passed: true,
      onnxruntimeVersion: "1.32.0",
      batchSize: 8,
      loadSeconds: 0.042,
      latencyP50Ms: 0.61,
      latencyP95Ms: 1.25,
      timedRuns: 50,
      peakMemoryBytes: String(88 * 1024 * 1024),
      outputs: [{ name: "risk", type: "tensor(float)", shape: ["8", "1"] }],
      limits: { memoryBytes: String(2 * 1024 ** 3), cpuSeconds: "60", wallSeconds: 120, threads: 1 },
      networkIsolation: ["network_namespace", "audit_hook"],
    },
    metrics: {
      passed: true,
      rows: "5000",
      labelColumn: "label",
      threshold: 0.5,
      checks: [
        {
          name: "roc_auc",
          metric: "roc_auc",
          claimed: 0.93,
          verified: 0.9312,
          difference: 0.0012,
          tolerance: 0.005,
          status: "MATCH",
          message: "within tolerance",
        },
      ],
    },
    compatibility: { verdict: "COMPATIBLE", approvedVersion: "1" },
    ...overrides,
  };
}
