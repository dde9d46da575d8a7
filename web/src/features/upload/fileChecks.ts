// What the app refuses before a byte is sent: not `.onnx`, empty, or over the registry's
// limit (maxModelBytes from /config.json, never hard-coded); an evaluation set that is not
// `.parquet`, empty, or over the contract's 64 MiB. Only the files' names and sizes are
// looked at: the files themselves are never read into the page.
import { formatBytes, formatExactBytes } from "../../components/format";

export interface FileFacts {
  name: string;
  size: number;
}

export function fileProblem(file: FileFacts, maxBytes: number): string | null {
  if (!file.name.toLowerCase().endsWith(".onnx")) {
    return `“${file.name}” is not an ONNX model: choose a file ending in .onnx (export it with skl2onnx, torch.onnx.export or tf2onnx).`;
  }
  if (file.size === 0) return `“${file.name}” is empty.`;
  if (file.size > maxBytes) {
    return `“${file.name}” is ${formatBytes(file.size)}; the registry accepts at most ${formatBytes(maxBytes)} (${formatExactBytes(maxBytes)}).`;
  }
  return null;
}

/** The largest evaluation set the registry takes (UploadModelRequest.evaluation_set_chunk: 64 MiB in all). */
export const MAX_EVALUATION_SET_BYTES = 64 * 1024 * 1024;

export function evaluationSetProblem(file: FileFacts, maxBytes = MAX_EVALUATION_SET_BYTES): string | null {
  if (!file.name.toLowerCase().endsWith(".parquet")) {
    return `“${file.name}” is not a Parquet file: choose a file ending in .parquet (pandas: df.to_parquet("evaluation.parquet")).`;
  }
  if (file.size === 0) return `“${file.name}” is empty.`;
  if (file.size > maxBytes) {
    return `“${file.name}” is ${formatBytes(file.size)}; an evaluation set may be at most ${formatBytes(maxBytes)} (${formatExactBytes(maxBytes)}): choose a smaller sample of rows.`;
  }
  return null;
}
