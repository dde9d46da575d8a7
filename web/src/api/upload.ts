// POST /api/v1/models as multipart/form-data, with XMLHttpRequest because fetch reports no
// upload progress. The text fields go first, then the optional evaluation set (Parquet), and
// the ONNX file LAST (the registry reads the name before the bytes arrive, and the
// evaluation set before the model); each File goes into FormData as it is, so the browser
// streams it from disk and the page never holds its bytes. On 201 the RTK Query cache learns
// the new version, so the models list shows it as "Pending Approval" without a reload.
import { useCallback, useEffect, useRef, useState } from "react";

import { sessionEnded, type WithAuth } from "../auth/authSlice";
import type { ModelVersionJson } from "../gen/mlplane/v1/model_registry_pb";
import { useAppDispatch, useAppStore } from "../app/hooks";
import { api, validationTag } from "./api";
import { apiUrl } from "./baseQuery";
import { abortedError, type ApiError, apiErrorFromResponse, networkError } from "./errors";

export interface UploadFields {
  name: string;
  description: string;
  labels: Record<string, string>;
  metrics: Record<string, number>;
  trainingExportIds: string[];
  /** Column of the evaluation set holding the true labels; empty: the server's `label`. */
  evaluationLabelColumn?: string;
}

export interface UploadProgress {
  /** Bytes of the request body sent so far (the form's fields and the file). */
  loaded: number;
  total: number;
  /** Recent throughput, bytes per second. */
  bytesPerSecond: number;
}

export interface UploadRequest {
  fields: UploadFields;
  file: File;
  /** Parquet rows the validation worker reproduces the claimed metrics on. */
  evaluationSet?: File | null;
  token: string | null;
  onProgress?: (progress: UploadProgress) => void;
  signal?: AbortSignal;
}

/**
 * The form in the order the registry needs: text fields, then the evaluation set, then the
 * file. The label column goes only with an evaluation set.
 */
export function uploadForm(fields: UploadFields, file: File, evaluationSet?: File | null): FormData {
  const form = new FormData();
  form.append("name", fields.name);
  if (fields.description) form.append("description", fields.description);
  if (Object.keys(fields.labels).length) form.append("labels", JSON.stringify(fields.labels));
  if (Object.keys(fields.metrics).length) form.append("metrics", JSON.stringify(fields.metrics));
  if (fields.trainingExportIds.length) {
    form.append("trainingExportIds", JSON.stringify(fields.trainingExportIds));
  }
  if (evaluationSet) {
    const column = fields.evaluationLabelColumn?.trim();
    if (column) form.append("evaluationLabelColumn", column);
    form.append("evaluationSet", evaluationSet, evaluationSet.name);
  }
  form.append("file", file, file.name);
  return form;
}

/** How often the form hears of an upload's progress. */
export const PROGRESS_INTERVAL_MS = 200;

/** Throughput over the last few seconds of progress events. */
export class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 3000) {}
  add(t: number, bytes: number): number {
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - (this.samples[0]?.t ?? t) > this.windowMs) {
      this.samples.shift();
    }
    const first = this.samples[0];
    if (!first || t <= first.t) return 0;
    return ((bytes - first.bytes) * 1000) / (t - first.t);
  }
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Sends the upload; resolves with the new version, rejects with an ApiError. */
export function sendUpload({ fields, file, evaluationSet, token, onProgress, signal }: UploadRequest): Promise<ModelVersionJson> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortedError());
      return;
    }
    const xhr = new XMLHttpRequest();
    const meter = new RateMeter();
    xhr.open("POST", apiUrl("models"));
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.responseType = "text";
    // The browser reports progress every 50 ms or so; each report re-renders the form, and
    // on two cores that CPU is taken from the upload itself (bench/web_bench.py): a person
    // reads a bar and a rate five times a second just as well.
    let lastReport = -Infinity;
    xhr.upload.onprogress = (event) => {
      const now = performance.now();
      const total = event.lengthComputable ? event.total : file.size + (evaluationSet?.size ?? 0);
      const bytesPerSecond = meter.add(now, event.loaded);
      if (now - lastReport < PROGRESS_INTERVAL_MS && event.loaded < total) return;
      lastReport = now;
      onProgress?.({ loaded: event.loaded, total, bytesPerSecond });
    };
    xhr.onload = () => {
      const body = parseBody(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300 && typeof body === "object" && body !== null) {
        resolve(body);
      } else {
        reject(apiErrorFromResponse(xhr.status, body, xhr.getResponseHeader("x-request-id")));
      }
    };
    xhr.onerror = () => {
      reject(networkError());
    };
    xhr.onabort = () => {
      reject(abortedError());
    };
    signal?.addEventListener("abort", () => {
      xhr.abort();
    });
    xhr.send(uploadForm(fields, file, evaluationSet));
  });
}

export type UploadState =
  | { phase: "idle" }
  | { phase: "sending"; progress: UploadProgress; startedAt: number }
  | { phase: "done"; version: ModelVersionJson }
  | { phase: "failed"; error: ApiError };

/**
 * The upload for a component: state (progress, result, error), start and cancel. On success
 * the new version goes into the cache and the models lists refetch; a 401 ends the session
 * (the form stays as it is under the sign-in dialog).
 */
export function useModelUpload() {
  const dispatch = useAppDispatch();
  const store = useAppStore();
  const [state, setState] = useState<UploadState>({ phase: "idle" });
  const controller = useRef<AbortController | null>(null);

  useEffect(
    () => () => {
      controller.current?.abort();
    },
    [],
  );

  const start = useCallback(
    async (fields: UploadFields, file: File, evaluationSet?: File | null): Promise<ModelVersionJson | null> => {
      controller.current?.abort();
      const abort = new AbortController();
      controller.current = abort;
      const startedAt = performance.now();
      const total = file.size + (evaluationSet?.size ?? 0);
      setState({ phase: "sending", progress: { loaded: 0, total, bytesPerSecond: 0 }, startedAt });
      try {
        const version = await sendUpload({
          fields,
          file,
          evaluationSet: evaluationSet ?? null,
          token: (store.getState() as WithAuth).auth.token,
          signal: abort.signal,
          onProgress: (progress) => {
            setState({ phase: "sending", progress, startedAt });
          },
        });
        const modelId = version.modelId ?? "";
        const number = version.version ?? "";
        void dispatch(api.util.upsertQueryData("getModelVersion", { modelId, version: number }, version));
        // A listed model shows its new newest version at once (a new model comes with the refetch).
        for (const args of api.util.selectCachedArgsForQuery(store.getState(), "listModels")) {
          dispatch(
            api.util.updateQueryData("listModels", args, (draft) => {
              for (const m of draft.models ?? []) {
                if (m.modelId !== modelId) continue;
                m.latestVersion = number;
                m.latestStatus = version.status ?? "PENDING_APPROVAL";
                if (version.updateTime) m.updateTime = version.updateTime;
              }
            }),
          );
        }
        dispatch(
          api.util.invalidateTags([
            { type: "Model", id: "LIST" },
            { type: "Model", id: modelId },
            { type: "Version", id: `${modelId}/LIST` },
            validationTag(modelId, number),
          ]),
        );
        setState({ phase: "done", version });
        return version;
      } catch (caught) {
        const error = caught as ApiError;
        if (error.httpStatus === 401) {
          dispatch(
            sessionEnded({
              message: error.message,
              ...(error.reason ? { reason: error.reason } : {}),
              ...(error.requestId ? { requestId: error.requestId } : {}),
            }),
          );
        }
        setState({ phase: "failed", error });
        return null;
      } finally {
        if (controller.current === abort) controller.current = null;
      }
    },
    [dispatch, store],
  );

  const cancel = useCallback(() => {
    controller.current?.abort();
  }, []);

  const reset = useCallback(() => {
    setState({ phase: "idle" });
  }, []);

  return { state, start, cancel, reset };
}
