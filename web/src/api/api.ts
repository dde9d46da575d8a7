// The whole REST surface in one RTK Query API, typed with the JSON types generated from
// protos/ (src/gen; `npm run generate`). Enum values are words ("PENDING_APPROVAL"), int64
// fields are strings ("1"), and a field at its default value is absent from the JSON.
// The multipart upload is the one request made elsewhere (api/upload.ts: XMLHttpRequest,
// for its progress events); it updates this cache when it succeeds.
import { createApi } from "@reduxjs/toolkit/query/react";

import type {
  ApprovalJson,
  ApproveModelVersionRequestJson,
  ArchiveModelVersionRequestJson,
  DownloadLinkJson,
  ListApprovalsResponseJson,
  ListAuditEntriesResponseJson,
  ListModelsResponseJson,
  ListModelVersionsResponseJson,
  ModelJson,
  ModelVersionJson,
  RejectModelVersionRequestJson,
  SubmitForApprovalRequestJson,
  Approval_StateJson,
  ValidationReport_StateJson,
  ValidationReportJson,
} from "../gen/mlplane/v1/model_registry_pb";
import type {
  AssetJson,
  CreateExportLinkRequestJson,
  ExportJson,
  ExportLinkJson,
  FailureEventJson,
  ListAssetsResponseJson,
  ListExportsResponseJson,
  ListFailureEventsResponseJson,
} from "../gen/mlplane/v1/query_service_pb";
import { baseQuery, origin } from "./baseQuery";
import { type AppConfig, parseConfig } from "./config";
import { type HistoryChart, parseHistory } from "./history";

export interface PageArgs {
  pageSize?: number;
  pageToken?: string;
}

export interface ListModelsArgs extends PageArgs {
  filter?: string;
}

export interface VersionKey {
  modelId: string;
  /** int64 as proto JSON writes it: a string. */
  version: string;
}

export interface ListApprovalsArgs extends PageArgs {
  state?: Exclude<Approval_StateJson, "STATE_UNSPECIFIED">;
}

export interface HistoryArgs {
  assetId: string;
  /** UTC RFC 3339, inclusive. */
  startTime: string;
  /** UTC RFC 3339, exclusive. */
  endTime: string;
  /** Tag names; empty: all of the asset's tags. */
  tags: readonly string[];
  /** Bucket width in seconds (the chart always asks for aggregates). */
  resolutionSeconds: number;
}

export interface FailureEventsArgs {
  assetId: string;
  /** Only failures that start at or after this time (UTC RFC 3339). */
  startTime: string;
  /** Only failures that start before this time (UTC RFC 3339). */
  endTime: string;
}

export interface FailureEvents {
  events: FailureEventJson[];
  /** More pages were left unread (MAX_EVENT_PAGES). */
  truncated: boolean;
}

/** Pages of 1,000 failure events read for one view at most. */
export const MAX_EVENT_PAGES = 10;

/** Query parameters without the unset ones. */
function params(values: Record<string, string | number | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined && value !== "") out[key] = String(value);
  }
  return out;
}

const enc = encodeURIComponent;

/** A query string with repeated parameters (`tags=a&tags=b`), as the transcoder reads them. */
function queryString(values: Record<string, string | number | readonly string[] | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined || value === "") continue;
    if (typeof value === "object") for (const item of value) search.append(key, item);
    else search.append(key, String(value));
  }
  return search.toString();
}

export const versionTag = (modelId: string, version: string) =>
  ({ type: "Version", id: `${modelId}/${version}` }) as const;

export const validationTag = (modelId: string, version: string) =>
  ({ type: "Validation", id: `${modelId}/${version}` }) as const;

/** How often a validation report is asked for while a worker has yet to finish it. */
export const VALIDATION_POLL_MS = 2000;

/** A report that will not change any more (PASSED or FAILED). */
export function isValidationSettled(state: ValidationReport_StateJson | undefined): boolean {
  return state === "PASSED" || state === "FAILED";
}

export const api = createApi({
  reducerPath: "api",
  baseQuery,
  tagTypes: ["Model", "Version", "Validation", "Approval", "Audit", "Export", "Asset"],
  endpoints: (build) => ({
    // eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- RTK Query: no argument
    getConfig: build.query<AppConfig, void>({
      query: () => ({ url: `${origin()}/config.json` }),
      transformResponse: (raw: unknown) => parseConfig(raw),
      keepUnusedDataFor: Number.MAX_SAFE_INTEGER / 1000,
    }),

    // --- models -------------------------------------------------------------------------
    listModels: build.query<ListModelsResponseJson, ListModelsArgs>({
      query: ({ filter, pageSize, pageToken }) => ({
        url: "models",
        params: params({ filter, pageSize, pageToken }),
      }),
      providesTags: (result) => [
        { type: "Model", id: "LIST" },
        ...(result?.models ?? []).map((m) => ({ type: "Model" as const, id: m.modelId ?? "" })),
      ],
    }),
    getModel: build.query<ModelJson, string>({
      query: (modelId) => `models/${enc(modelId)}`,
      providesTags: (_r, _e, modelId) => [{ type: "Model", id: modelId }],
    }),
    listModelVersions: build.query<ListModelVersionsResponseJson, { modelId: string } & PageArgs>({
      query: ({ modelId, pageSize, pageToken }) => ({
        url: `models/${enc(modelId)}/versions`,
        params: params({ pageSize, pageToken }),
      }),
      providesTags: (result, _e, { modelId }) => [
        { type: "Version", id: `${modelId}/LIST` },
        ...(result?.modelVersions ?? []).map((v) => versionTag(modelId, v.version ?? "")),
      ],
    }),
    getModelVersion: build.query<ModelVersionJson, VersionKey>({
      query: ({ modelId, version }) => `models/${enc(modelId)}/versions/${enc(version)}`,
      providesTags: (_r, _e, { modelId, version }) => [versionTag(modelId, version)],
    }),
    /**
     * What the validation worker found out about a version (polled by useValidationReport
     * while PENDING or RUNNING). A new state is copied into the cached version and the
     * queue's approvals, so every view agrees on whether the version may be approved.
     */
    getValidationReport: build.query<ValidationReportJson, VersionKey>({
      query: ({ modelId, version }) => `models/${enc(modelId)}/versions/${enc(version)}/validation`,
      providesTags: (_r, _e, { modelId, version }) => [validationTag(modelId, version)],
      async onQueryStarted({ modelId, version }, lifecycle) {
        const { dispatch, queryFulfilled } = lifecycle;
        const { data: report } = await queryFulfilled.catch(() => ({ data: null }));
        const state = report?.state;
        if (!state) return;
        const cachedVersion = api.endpoints.getModelVersion.select({ modelId, version })(lifecycle.getState());
        if (cachedVersion.data && cachedVersion.data.validationState !== state) {
          dispatch(
            api.util.updateQueryData("getModelVersion", { modelId, version }, (draft) => {
              draft.validationState = state;
            }),
          );
        }
        for (const args of api.util.selectCachedArgsForQuery(lifecycle.getState(), "listApprovals")) {
          const cached = api.endpoints.listApprovals.select(args)(lifecycle.getState()).data;
          const stale = (cached?.approvals ?? []).some(
            (a) => a.modelId === modelId && a.version === version && a.modelVersion && a.modelVersion.validationState !== state,
          );
          if (!stale) continue;
          dispatch(
            api.util.updateQueryData("listApprovals", args, (draft) => {
              for (const a of draft.approvals ?? []) {
                if (a.modelId === modelId && a.version === version && a.modelVersion) a.modelVersion.validationState = state;
              }
            }),
          );
        }
      },
    }),
    listAuditEntries: build.query<ListAuditEntriesResponseJson, VersionKey & PageArgs>({
      query: ({ modelId, version, pageSize, pageToken }) => ({
        url: `models/${enc(modelId)}/versions/${enc(version)}/auditEntries`,
        params: params({ pageSize, pageToken }),
      }),
      providesTags: (_r, _e, { modelId, version }) => [
        { type: "Audit", id: `${modelId}/${version}` },
      ],
    }),
    submitForApproval: build.mutation<ApprovalJson, SubmitForApprovalRequestJson & { modelId: string }>({
      query: ({ modelId, version, comment }) => ({
        url: `models/${enc(modelId)}/approvals`,
        method: "POST",
        body: { ...(version ? { version } : {}), ...(comment ? { comment } : {}) },
      }),
      async onQueryStarted({ modelId }, lifecycle) {
        const { dispatch, queryFulfilled } = lifecycle;
        const { data: approval } = await queryFulfilled.catch(() => ({ data: null }));
        if (!approval) return;
        const version = approval.version ?? "";
        // The version is In Review now: show it at once, then let the lists catch up.
        dispatch(
          api.util.updateQueryData("getModelVersion", { modelId, version }, (draft) => {
            draft.status = "IN_REVIEW";
          }),
        );
        // The models list shows the newest version's status (Model.latestStatus).
        for (const args of api.util.selectCachedArgsForQuery(lifecycle.getState(), "listModels")) {
          dispatch(
            api.util.updateQueryData("listModels", args, (draft) => {
              for (const m of draft.models ?? []) {
                if (m.modelId === modelId && m.latestVersion === version) m.latestStatus = "IN_REVIEW";
              }
            }),
          );
        }
        if (approval.modelVersion) {
          void dispatch(
            api.util.upsertQueryData("getModelVersion", { modelId, version }, approval.modelVersion),
          );
        }
        dispatch(
          api.util.invalidateTags([
            { type: "Version", id: `${modelId}/LIST` },
            { type: "Model", id: "LIST" },
            { type: "Approval", id: "LIST" },
            { type: "Audit", id: `${modelId}/${version}` },
          ]),
        );
      },
    }),
    archiveModelVersion: build.mutation<ModelVersionJson, ArchiveModelVersionRequestJson & VersionKey>({
      query: ({ modelId, version, comment }) => ({
        url: `models/${enc(modelId)}/versions/${enc(version)}:archive`,
        method: "POST",
        body: comment ? { comment } : {},
      }),
      invalidatesTags: (_r, _e, { modelId, version }) => [
        versionTag(modelId, version),
        { type: "Version", id: `${modelId}/LIST` },
        { type: "Model", id: "LIST" },
        { type: "Approval", id: "LIST" },
        { type: "Audit", id: `${modelId}/${version}` },
      ],
    }),

    // --- approvals ----------------------------------------------------------------------
    listApprovals: build.query<ListApprovalsResponseJson, ListApprovalsArgs>({
      query: ({ state, pageSize, pageToken }) => ({
        url: "approvals",
        params: params({ state, pageSize, pageToken }),
      }),
      providesTags: (result) => [
        { type: "Approval", id: "LIST" },
        ...(result?.approvals ?? []).map((a) => ({ type: "Approval" as const, id: a.approvalId ?? "" })),
      ],
    }),
    getApproval: build.query<ApprovalJson, string>({
      query: (approvalId) => `approvals/${enc(approvalId)}`,
      providesTags: (_r, _e, id) => [{ type: "Approval", id }],
    }),
    approveModelVersion: build.mutation<ApprovalJson, ApproveModelVersionRequestJson & { approvalId: string; modelId: string }>({
      query: ({ approvalId, comment }) => ({
        url: `approvals/${enc(approvalId)}:approve`,
        method: "POST",
        body: comment ? { comment } : {},
      }),
      invalidatesTags: decisionTags,
    }),
    rejectModelVersion: build.mutation<ApprovalJson, RejectModelVersionRequestJson & { approvalId: string; modelId: string }>({
      query: ({ approvalId, comment }) => ({
        url: `approvals/${enc(approvalId)}:reject`,
        method: "POST",
        body: { comment },
      }),
      invalidatesTags: decisionTags,
    }),

    // --- data (assets, exports) ---------------------------------------------------------
    listAssets: build.query<ListAssetsResponseJson, PageArgs>({
      query: ({ pageSize, pageToken }) => ({
        url: "query/assets",
        params: params({ pageSize, pageToken }),
      }),
      providesTags: [{ type: "Asset", id: "LIST" }],
    }),
    /** One asset with its tags (units) and time range (GetAsset: 403 naming it without a grant). */
    getAsset: build.query<AssetJson, string>({
      query: (assetId) => `query/assets/${enc(assetId)}`,
      providesTags: (_r, _e, assetId) => [{ type: "Asset", id: assetId }],
    }),
    /**
     * Aggregated history for the charts. Every call is an export on the server (audited, with
     * a manifest): the app never polls it, and keeps a view's answer for a while.
     */
    getHistory: build.query<HistoryChart, HistoryArgs>({
      query: ({ assetId, startTime, endTime, tags, resolutionSeconds }) =>
        `query/history?${queryString({ assetId, startTime, endTime, tags, resolution: `${resolutionSeconds}s` })}`,
      transformResponse: (raw: unknown) => parseHistory(raw),
      keepUnusedDataFor: 600,
    }),
    /** An asset's failures in a range, every page (up to MAX_EVENT_PAGES of 1,000). */
    listFailureEvents: build.query<FailureEvents, FailureEventsArgs>({
      async queryFn({ assetId, startTime, endTime }, _api, _extra, fetchWithBQ) {
        const events: FailureEventJson[] = [];
        let pageToken = "";
        for (let page = 0; page < MAX_EVENT_PAGES; page += 1) {
          const result = await fetchWithBQ({
            url: `query/assets/${enc(assetId)}/failureEvents`,
            params: params({ startTime, endTime, pageSize: 1000, pageToken }),
          });
          if (result.error) return { error: result.error };
          const data = result.data as ListFailureEventsResponseJson;
          events.push(...(data.failureEvents ?? []));
          if (!data.nextPageToken) return { data: { events, truncated: false } };
          pageToken = data.nextPageToken;
        }
        return { data: { events, truncated: true } };
      },
      keepUnusedDataFor: 600,
    }),
    /** A short-lived link that downloads a version's ONNX file with no token. */
    createModelDownloadLink: build.mutation<DownloadLinkJson, { modelId: string; version: string }>({
      query: ({ modelId, version }) => ({
        url: `models/${enc(modelId)}/versions/${enc(version)}:downloadLink`,
        method: "POST",
        body: {},
      }),
    }),
    /** A short-lived, once-only link that downloads the CSV export with no token. */
    createExportLink: build.mutation<ExportLinkJson, CreateExportLinkRequestJson>({
      query: (body) => ({ url: "query/history:link", method: "POST", body }),
      invalidatesTags: [{ type: "Export", id: "LIST" }],
    }),
    listExports: build.query<ListExportsResponseJson, PageArgs>({
      query: ({ pageSize, pageToken }) => ({
        url: "query/exports",
        params: params({ pageSize, pageToken }),
      }),
      providesTags: [{ type: "Export", id: "LIST" }],
    }),
    getExport: build.query<ExportJson, string>({
      query: (exportId) => `query/exports/${enc(exportId)}`,
      providesTags: (_r, _e, id) => [{ type: "Export", id }],
    }),
  }),
});

/** A decision changes the queue, the version's status and its model's row; a conflict (409:
 * decided by someone else meanwhile) refreshes the same, so the queue shows what happened. */
function decisionTags(
  result: ApprovalJson | undefined,
  error: unknown,
  { approvalId, modelId }: { approvalId: string; modelId: string },
) {
  const version = result?.version;
  return [
    { type: "Approval" as const, id: "LIST" },
    { type: "Approval" as const, id: approvalId },
    { type: "Version" as const, id: `${modelId}/LIST` },
    { type: "Model" as const, id: "LIST" },
    ...(version ? [versionTag(modelId, version), { type: "Audit" as const, id: `${modelId}/${version}` }] : []),
    // Refused (e.g. VALIDATION_NOT_PASSED: the report changed meanwhile): read it all again.
    ...(error && !version ? [{ type: "Version" as const }, { type: "Validation" as const }] : []),
  ];
}

export const {
  useGetConfigQuery,
  useListModelsQuery,
  useGetModelQuery,
  useListModelVersionsQuery,
  useGetModelVersionQuery,
  useGetValidationReportQuery,
  useListAuditEntriesQuery,
  useSubmitForApprovalMutation,
  useArchiveModelVersionMutation,
  useListApprovalsQuery,
  useGetApprovalQuery,
  useApproveModelVersionMutation,
  useRejectModelVersionMutation,
  useListAssetsQuery,
  useGetAssetQuery,
  useGetHistoryQuery,
  useListFailureEventsQuery,
  useCreateExportLinkMutation,
  useCreateModelDownloadLinkMutation,
  useListExportsQuery,
  useGetExportQuery,
} = api;

/**
 * A version's validation report, asked for again every VALIDATION_POLL_MS while it is
 * PENDING or RUNNING and the tab is shown; polling stops once it is PASSED or FAILED (or the
 * request failed: the view then offers to try again).
 */
export function useValidationReport(key: VersionKey, { skip = false }: { skip?: boolean } = {}) {
  const known = api.endpoints.getValidationReport.useQueryState(key, { skip });
  const settled = isValidationSettled(known.data?.state) || Boolean(known.error);
  // A hidden tab asks nothing; polling goes on when it is shown again.
  return useGetValidationReportQuery(key, {
    skip,
    pollingInterval: settled ? 0 : VALIDATION_POLL_MS,
    skipPollingIfUnfocused: true,
  });
}
