import type { DimensionJson, OperatorSetIdJson } from "../../gen/mlplane/v1/model_registry_pb";

/** `[batch, 16]`; `?` for a dimension with neither size nor name; "unknown" without a shape. */
export function formatShape(shape: DimensionJson[] | undefined): string {
  if (!shape || shape.length === 0) return "unknown";
  return `[${shape.map((d) => d.param ?? d.size ?? "?").join(", ")}]`;
}

/** `ai.onnx 17, ai.onnx.ml 3` */
export function formatOpsets(opsets: OperatorSetIdJson[] | undefined): string {
  if (!opsets || opsets.length === 0) return "—";
  return opsets.map((o) => `${o.domain || "ai.onnx"} ${o.version ?? "0"}`).join(", ");
}
