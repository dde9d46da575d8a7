// REST errors are `google.rpc.Status` JSON (types generated from protos/google/rpc): a code,
// a message, and details: an ErrorInfo (reason, domain, metadata) and, for a broken field
// rule, a BadRequest whose field violations name fields as the JSON sends them
// (`name`, `labels["team"]`, `trainingExportIds[0]`). The request id is the `x-request-id`
// response header. Everything the app shows about a failure comes from an ApiError.
import type { BadRequest_FieldViolationJson, ErrorInfoJson } from "../gen/google/rpc/error_details_pb";
import type { StatusJson } from "../gen/google/rpc/status_pb";

export type ApiErrorKind = "http" | "network" | "aborted";

export interface FieldViolation {
  field: string;
  description: string;
  reason?: string;
}

export interface ApiError {
  kind: ApiErrorKind;
  /** HTTP status; 0 when no answer arrived. */
  httpStatus: number;
  /** gRPC code from the Status body, when there was one. */
  code?: number;
  message: string;
  reason?: string;
  domain?: string;
  metadata: Record<string, string>;
  fieldViolations: FieldViolation[];
  requestId?: string;
}

const ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo";
const BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest";

type DetailJson = { "@type"?: string } & Record<string, unknown>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An ApiError from an HTTP answer's status, body (parsed JSON or text) and request id. */
export function apiErrorFromResponse(
  httpStatus: number,
  body: unknown,
  requestId?: string | null,
): ApiError {
  const error: ApiError = {
    kind: "http",
    httpStatus,
    message: defaultMessage(httpStatus),
    metadata: {},
    fieldViolations: [],
    ...(requestId ? { requestId } : {}),
  };
  if (typeof body === "string" && body.trim() && !body.trimStart().startsWith("<")) {
    error.message = body.trim().slice(0, 500);
    return error;
  }
  if (!isRecord(body)) return error;
  const status = body as StatusJson;
  if (typeof status.code === "number") error.code = status.code;
  if (typeof status.message === "string" && status.message) error.message = status.message;
  const details = Array.isArray(status.details) ? (status.details as unknown[]) : [];
  for (const raw of details) {
    if (!isRecord(raw)) continue;
    const detail = raw as DetailJson;
    if (detail["@type"] === ERROR_INFO && error.reason === undefined) {
      const info = detail as ErrorInfoJson;
      if (info.reason) error.reason = info.reason;
      if (info.domain) error.domain = info.domain;
      if (isRecord(info.metadata)) error.metadata = { ...info.metadata };
    } else if (detail["@type"] === BAD_REQUEST) {
      const violations = (detail as { fieldViolations?: BadRequest_FieldViolationJson[] })
        .fieldViolations;
      for (const v of violations ?? []) {
        error.fieldViolations.push({
          field: v.field ?? "",
          description: v.description ?? "",
          ...(v.reason ? { reason: v.reason } : {}),
        });
      }
    }
  }
  return error;
}

export function networkError(message = "no answer from the server"): ApiError {
  return { kind: "network", httpStatus: 0, message, metadata: {}, fieldViolations: [] };
}

export function abortedError(): ApiError {
  return {
    kind: "aborted",
    httpStatus: 0,
    message: "cancelled",
    reason: "CANCELLED",
    metadata: {},
    fieldViolations: [],
  };
}

export function isApiError(value: unknown): value is ApiError {
  return isRecord(value) && typeof value.kind === "string" && typeof value.httpStatus === "number";
}

function defaultMessage(httpStatus: number): string {
  switch (httpStatus) {
    case 400:
      return "the request was refused";
    case 401:
      return "not signed in";
    case 403:
      return "not allowed";
    case 404:
      return "not found";
    case 409:
      return "conflict";
    case 413:
      return "too large";
    case 429:
      return "too many requests";
    case 503:
      return "service unavailable";
    default:
      return `HTTP ${httpStatus}`;
  }
}

/** What the user was doing, for a sentence that fits. */
export type ErrorContext =
  | "load"
  | "upload"
  | "submit"
  | "decide"
  | "archive"
  | "download"
  | "config";

export interface ErrorText {
  /** A sentence the user understands. */
  title: string;
  /** The server's own words, when they add something. */
  detail?: string;
}

/** The sentence to show for an error, and the server's message beside it. */
export function describeError(error: ApiError, context: ErrorContext = "load"): ErrorText {
  const detail = error.kind === "http" ? error.message : undefined;
  const reason = error.reason ?? "";
  const title = sentence(error, context, reason);
  return detail && detail !== title ? { title, detail } : { title };
}

function sentence(error: ApiError, context: ErrorContext, reason: string): string {
  if (error.kind === "aborted") return "Cancelled: the upload stopped and nothing was stored.";
  if (error.kind === "network") {
    return context === "upload"
      ? "The connection to the server broke off before it answered. The model may not have been stored: check the models list, then try again."
      : "The server could not be reached. Check your network connection or whether mlplane is running, then try again.";
  }
  // Reasons that read the same whatever the HTTP status the gateway gave them.
  if (reason === "EVALUATION_SET_TOO_LARGE") {
    const limit = Number(error.metadata.limitBytes ?? "");
    const mib = Number.isFinite(limit) && limit > 0 ? `${Math.round(limit / 1048576).toLocaleString()} MiB` : "64 MiB";
    return `The evaluation set is larger than the registry accepts (at most ${mib}): choose a smaller sample of rows. Nothing was stored.`;
  }
  if (reason === "EVALUATION_SET_NOT_PARQUET") {
    return "The evaluation set is not a Parquet file: save it with pandas (DataFrame.to_parquet) or pyarrow and choose the .parquet file. Nothing was stored.";
  }
  if (reason === "VALIDATION_NOT_PASSED") {
    const state = error.metadata.validationState;
    const why = error.metadata.validationReason;
    const where = state ? ` (it is ${statusWords(state)}${why ? `: ${why}` : ""})` : "";
    return `This version cannot be approved: its validation has not passed${where}. Open its validation report to see why; rejecting it stays possible.`;
  }
  switch (error.httpStatus) {
    case 400:
      if (reason === "INVALID_FIELD" || reason === "MISSING_FIELD") {
        return "Some fields need attention: see the messages beside them.";
      }
      if (reason === "NOT_ONNX") return "This file is not an ONNX model.";
      if (reason.startsWith("ONNX_")) return "The registry could not accept this ONNX model.";
      if (reason === "EMPTY_FILE") return "The file is empty.";
      if (reason === "UNKNOWN_EXPORT") return "A training export id does not exist in your tenant.";
      if (reason === "INVALID_FILTER") return "The search could not be understood.";
      if (reason === "TOO_MANY_ROWS_FOR_JSON") {
        const limit = error.metadata.limit;
        return `Too many points to chart at once${limit ? ` (more than ${Number(limit).toLocaleString()} rows)` : ""}: choose fewer tags or a coarser resolution, or download the CSV.`;
      }
      if (reason === "INVALID_TIME_RANGE") return "The time range is not valid: the end must be after the start.";
      if (reason === "TIME_RANGE_TOO_LONG") return "The time range is longer than the server allows: choose a shorter one.";
      if (reason === "INVALID_RESOLUTION") return "The resolution does not fit this time range: choose a shorter one.";
      if (reason === "UNKNOWN_TAG") return "The asset has no such tag.";
      return "The request was refused.";
    case 401:
      if (reason === "TOKEN_EXPIRED") return "Your sign-in has expired. Sign in again to continue.";
      if (reason === "TOKEN_MISSING") return "You are not signed in.";
      if (reason === "LINK_INVALID") return "The download link is invalid, expired or used already: start the download again.";
      return "Your sign-in was not accepted. Sign in again to continue.";
    case 403:
      if (reason === "ROLE_REQUIRED") {
        const required = error.metadata.required;
        return required
          ? `Your account does not have the role ${required}, which this needs.`
          : "Your account does not have the role this needs.";
      }
      if (reason === "SEPARATION_OF_DUTIES") {
        return "You uploaded or submitted this version, so another approver must decide it.";
      }
      if (reason === "ASSET_NOT_GRANTED") {
        const asset = error.metadata.assetId;
        return asset
          ? `You have no grant to read the asset “${asset}”. An administrator can grant it (mlplane grant add).`
          : "You have no grant to read this asset. An administrator can grant it (mlplane grant add).";
      }
      return "You are not allowed to do this.";
    case 404:
      if (reason === "ASSET_NOT_FOUND") {
        const asset = error.metadata.assetId;
        return `The asset ${asset ? `“${asset}” ` : ""}does not exist, or it is not visible to you.`;
      }
      if (reason === "EXPORT_NOT_FOUND") return "This export does not exist, or it is not visible to you.";
      return context === "submit"
        ? "This model or version no longer exists, or it is not visible to you."
        : "Not found: it does not exist, or it is not visible to you.";
    case 409:
      if (context === "decide" || reason === "ALREADY_DECIDED") {
        return "Someone else decided this request in the meantime. The queue has been refreshed.";
      }
      if (context === "submit" || reason === "VERSION_NOT_PENDING") {
        const status = error.metadata.status;
        return status
          ? `This version cannot be submitted: it is ${statusWords(status)}, and only versions pending approval can be submitted.`
          : "This version was already submitted, or it is no longer pending approval.";
      }
      return "This changed in the meantime. Reload and try again.";
    case 413:
      return "The file is larger than the registry accepts.";
    case 429:
      return "Too many requests at once. Wait a second, then try again.";
    case 503:
      if (reason === "OBJECT_STORE_UNAVAILABLE") {
        return "The model store is unavailable right now. Nothing was stored; try again in a minute.";
      }
      if (reason === "DATABASE_UNAVAILABLE") {
        return context === "upload"
          ? "The registry's database is unavailable right now. Nothing was stored; try again in a minute."
          : "The registry's database is unavailable right now. Try again in a minute.";
      }
      if (reason === "STORAGE_FULL") {
        return "The server has no space left for uploads. Nothing was stored; tell your administrator.";
      }
      return "The service is unavailable right now. Try again in a minute.";
    case 504:
      return "The server took too long to answer. Try again in a minute.";
    default:
      return error.httpStatus >= 500
        ? "Something went wrong on the server. Try again; if it persists, give the request id to your administrator."
        : "The request was refused.";
  }
}

/** `PENDING_APPROVAL` → "Pending Approval". */
export function statusWords(value: string): string {
  return value
    .toLowerCase()
    .split("_")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(" ");
}

/** RTK Query's error (ours, or a SerializedError from a thrown exception) as an ApiError. */
export function asApiError(error: unknown): ApiError {
  if (isApiError(error)) return error;
  const message =
    typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
      ? error.message
      : "unexpected error";
  return { kind: "network", httpStatus: 0, message, metadata: {}, fieldViolations: [] };
}
