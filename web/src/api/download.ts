// Downloading a version's ONNX file. A browser download cannot carry the Authorization
// header, so until the registry offers short-lived signed links for model files (as
// CreateExportLink does for CSV exports), the app fetches the bytes with the token, checks
// them against the version's SHA-256, and saves them from memory: fine for the small files
// it allows (MAX_BROWSER_DOWNLOAD_BYTES); larger ones are downloaded with the CLI.
import { useCallback, useState } from "react";

import { useAppDispatch, useAppStore } from "../app/hooks";
import { sessionEnded, type WithAuth } from "../auth/authSlice";
import { apiUrl } from "./baseQuery";
import { type ApiError, apiErrorFromResponse, networkError } from "./errors";

export const MAX_BROWSER_DOWNLOAD_BYTES = 256 * 1024 * 1024;

export class ChecksumMismatch extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`the downloaded bytes hash to ${actual}, not the recorded ${expected}`);
  }
}

export async function sha256Hex(data: ArrayBuffer): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function fetchModelBytes(
  modelId: string,
  version: string,
  token: string | null,
): Promise<ArrayBuffer> {
  let response: Response;
  try {
    response = await fetch(
      apiUrl(`models/${encodeURIComponent(modelId)}/versions/${encodeURIComponent(version)}/content`),
      { headers: token ? { Authorization: `Bearer ${token}` } : {} },
    );
  } catch {
    throw networkError();
  }
  if (!response.ok) {
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    throw apiErrorFromResponse(response.status, body, response.headers.get("x-request-id"));
  }
  return response.arrayBuffer();
}

function saveBytes(data: ArrayBuffer, fileName: string): void {
  const url = URL.createObjectURL(new Blob([data], { type: "application/octet-stream" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => {
    URL.revokeObjectURL(url);
  }, 10_000);
}

export type DownloadState =
  | { phase: "idle" }
  | { phase: "downloading" }
  | { phase: "done" }
  | { phase: "failed"; error: ApiError | ChecksumMismatch };

export function useModelDownload() {
  const dispatch = useAppDispatch();
  const store = useAppStore();
  const [state, setState] = useState<DownloadState>({ phase: "idle" });
  const download = useCallback(
    async (modelId: string, version: string, name: string, expectedSha256: string | undefined) => {
      setState({ phase: "downloading" });
      try {
        const data = await fetchModelBytes(modelId, version, (store.getState() as WithAuth).auth.token);
        if (expectedSha256) {
          const actual = await sha256Hex(data);
          if (actual !== expectedSha256.toLowerCase()) throw new ChecksumMismatch(expectedSha256, actual);
        }
        saveBytes(data, `${name}-v${version}.onnx`);
        setState({ phase: "done" });
      } catch (caught) {
        const error = caught as ApiError | ChecksumMismatch;
        if (!(error instanceof ChecksumMismatch) && error.httpStatus === 401) {
          dispatch(sessionEnded({ message: error.message, ...(error.reason ? { reason: error.reason } : {}) }));
        }
        setState({ phase: "failed", error });
      }
    },
    [dispatch, store],
  );
  return { state, download };
}
