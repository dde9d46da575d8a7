// What the app refuses before a byte is sent: not `.onnx`, empty, or over the registry's
// limit (maxModelBytes from /config.json, never hard-coded). Only the file's name and size
// are looked at: the file itself is never read into the page.
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
