// The CSV download of an asset view: ask the server for a signed link (POST
// /api/v1/query/history:link), let the browser download it to disk through an anchor (the
// link is the credential; the bytes never pass through the page), then read the export's
// manifest: 404 until the download has started, then RUNNING, then COMPLETED (row count and
// SHA-256 final) or FAILED / CANCELLED. Polled with a backoff and a time limit.
import { useCallback, useEffect, useRef, useState } from "react";

import { api } from "../../api/api";
import { downloadByLink } from "../../api/download";
import { type ApiError, asApiError } from "../../api/errors";
import { useAppDispatch } from "../../app/hooks";
import type { ExportJson, ExportLinkJson } from "../../gen/mlplane/v1/query_service_pb";
import type { ExportQuery } from "./python";
import { durationJson } from "./resolution";

export interface PollOptions {
  /** Wait before the first look (the download needs a moment to reach the server). */
  firstDelayMs: number;
  /** Each wait is this much longer than the one before… */
  factor: number;
  /** …up to this. */
  maxDelayMs: number;
  /** Give up waiting for the download to start (the manifest stays 404) after this. */
  startLimitMs: number;
  /** Stop looking after this altogether (a long export is still running). */
  totalLimitMs: number;
}

export const DEFAULT_POLL: PollOptions = {
  firstDelayMs: 500,
  factor: 1.6,
  maxDelayMs: 5_000,
  startLimitMs: 60_000,
  totalLimitMs: 15 * 60_000,
};

/** The waits between looks: 500 ms, 800 ms, 1.28 s, … up to maxDelayMs. */
export function pollDelays(options: PollOptions, count: number): number[] {
  const delays: number[] = [];
  let delay = options.firstDelayMs;
  for (let i = 0; i < count; i += 1) {
    delays.push(Math.round(delay));
    delay = Math.min(options.maxDelayMs, delay * options.factor);
  }
  return delays;
}

export const TERMINAL_STATUSES = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

export interface Download {
  link: ExportLinkJson;
  exportId: string;
  fileName: string;
}

export type CsvExportState =
  | { phase: "idle" }
  | { phase: "linking" }
  /** The link was refused (403 naming the asset, 400 field violations, 404, …). */
  | { phase: "failed"; error: ApiError }
  /** The browser was handed the link; the export has not shown up yet. */
  | { phase: "waiting"; download: Download }
  | { phase: "running"; download: Download; manifest: ExportJson }
  /** COMPLETED, FAILED or CANCELLED. */
  | { phase: "finished"; download: Download; manifest: ExportJson }
  /** The time limit passed: never started (manifest null), or still running. */
  | { phase: "stalled"; download: Download; manifest: ExportJson | null };

export function csvFileName(assetId: string, exportId: string): string {
  return `${assetId}-${exportId.slice(0, 8)}.csv`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function useCsvExport(poll: PollOptions = DEFAULT_POLL) {
  const dispatch = useAppDispatch();
  const [state, setState] = useState<CsvExportState>({ phase: "idle" });
  // Each run has a number; a newer run (or leaving the page) stops an older one's loop.
  const run = useRef(0);
  useEffect(
    () => () => {
      run.current += 1;
    },
    [],
  );

  const watch = useCallback(
    async (download: Download, id: number) => {
      const began = Date.now();
      let delay = poll.firstDelayMs;
      let manifest: ExportJson | null = null;
      for (;;) {
        await sleep(delay);
        if (run.current !== id) return;
        const result = await dispatch(
          api.endpoints.getExport.initiate(download.exportId, { subscribe: false, forceRefetch: true }),
        );
        if (run.current !== id) return;
        if (result.data) {
          manifest = result.data;
          if (TERMINAL_STATUSES.has(manifest.status ?? "")) {
            setState({ phase: "finished", download, manifest });
            dispatch(api.util.invalidateTags([{ type: "Export", id: "LIST" }]));
            return;
          }
          setState({ phase: "running", download, manifest });
        } else if (result.error && asApiError(result.error).httpStatus === 401) {
          // The session ended: the app asks to sign in again, over this page; then "Check again".
          setState({ phase: "stalled", download, manifest });
          return;
        }
        // A 404 means "not started yet"; anything else (a 503) is tried again too.
        const elapsed = Date.now() - began;
        if ((!manifest && elapsed >= poll.startLimitMs) || elapsed >= poll.totalLimitMs) {
          setState({ phase: "stalled", download, manifest });
          return;
        }
        delay = Math.min(poll.maxDelayMs, delay * poll.factor);
      }
    },
    [dispatch, poll],
  );

  const start = useCallback(
    async (query: ExportQuery) => {
      run.current += 1;
      const id = run.current;
      setState({ phase: "linking" });
      const result = await dispatch(
        api.endpoints.createExportLink.initiate({
          assetId: query.assetId,
          startTime: query.startTime,
          endTime: query.endTime,
          ...(query.tags.length ? { tags: [...query.tags] } : {}),
          ...(query.resolutionSeconds !== null ? { resolution: durationJson(query.resolutionSeconds) } : {}),
        }),
      );
      if (run.current !== id) return;
      if ("error" in result) {
        setState({ phase: "failed", error: asApiError(result.error) });
        return;
      }
      const link = result.data;
      const exportId = link.exportId ?? "";
      const download: Download = { link, exportId, fileName: csvFileName(query.assetId, exportId) };
      try {
        downloadByLink(link.url ?? "", download.fileName);
      } catch (caught) {
        setState({ phase: "failed", error: asApiError(caught) });
        return;
      }
      setState({ phase: "waiting", download });
      await watch(download, id);
    },
    [dispatch, watch],
  );

  /** Look at the manifest again after the time limit (a long export). */
  const checkAgain = useCallback(async () => {
    if (state.phase !== "stalled") return;
    run.current += 1;
    const id = run.current;
    const { download, manifest } = state;
    setState(manifest ? { phase: "running", download, manifest } : { phase: "waiting", download });
    await watch(download, id);
  }, [state, watch]);

  const reset = useCallback(() => {
    run.current += 1;
    setState({ phase: "idle" });
  }, []);

  return { state, start, checkAgain, reset };
}
