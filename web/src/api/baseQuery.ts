// The one way the app talks to the REST surface: fetchBaseQuery with the bearer token, and
// every failure turned into an ApiError (google.rpc.Status + x-request-id). A 401 ends the
// session: the app then asks the user to sign in again, over the page they were on, and the
// page's requests wait for the new token (auth/tokenGate.ts) instead of failing behind it.
import {
  type BaseQueryFn,
  type FetchArgs,
  fetchBaseQuery,
  type FetchBaseQueryError,
  type FetchBaseQueryMeta,
} from "@reduxjs/toolkit/query/react";

import { sessionEnded, type WithAuth } from "../auth/authSlice";
import { tokenReady } from "../auth/tokenGate";
import { type ApiError, apiErrorFromResponse, networkError } from "./errors";

/** Endpoints that need no token (the gateway serves them openly). */
const PUBLIC_ENDPOINTS = new Set(["getConfig"]);

/** The origin the app was served from: the gateway (or Vite's proxy in development). */
export function origin(): string {
  return window.location.origin;
}

export function apiUrl(path: string): string {
  return `${origin()}/api/v1/${path.replace(/^\//, "")}`;
}

const rawBaseQuery = fetchBaseQuery({
  // Absolute, resolved per request: relative URLs are not valid for fetch outside a page.
  baseUrl: "",
  prepareHeaders: (headers, { getState, endpoint }) => {
    if (!PUBLIC_ENDPOINTS.has(endpoint)) {
      const token = (getState() as WithAuth).auth.token;
      if (token) headers.set("Authorization", `Bearer ${token}`);
    }
    return headers;
  },
});

export function toApiError(error: FetchBaseQueryError, meta?: FetchBaseQueryMeta): ApiError {
  const requestId = meta?.response?.headers.get("x-request-id");
  if (typeof error.status === "number") {
    return apiErrorFromResponse(error.status, error.data, requestId);
  }
  if (error.status === "PARSING_ERROR") {
    return apiErrorFromResponse(error.originalStatus, error.data, requestId);
  }
  if (error.status === "TIMEOUT_ERROR") return networkError("the server did not answer in time");
  return networkError(error.error);
}

export type ApiBaseQuery = BaseQueryFn<string | FetchArgs, unknown, ApiError, object, FetchBaseQueryMeta>;

export const baseQuery: ApiBaseQuery = async (args, api, extraOptions) => {
  const request: FetchArgs = typeof args === "string" ? { url: args } : args;
  const url = /^https?:/.test(request.url) ? request.url : apiUrl(request.url);
  const needsToken = !PUBLIC_ENDPOINTS.has(api.endpoint);
  const currentToken = () => (api.getState() as WithAuth).auth.token;
  // A request refused 401 is sent once more after the user signed in again over the page,
  // so the page behind the dialog shows its data, not the refusal.
  for (let attempt = 1; ; attempt++) {
    const token = needsToken ? await tokenReady(currentToken, api.signal) : null;
    if (needsToken && !token) return { error: networkError("the request was cancelled") };
    const result = await rawBaseQuery({ ...request, url }, api, extraOptions);
    if (!result.error) {
      return result.meta ? { data: result.data, meta: result.meta } : { data: result.data };
    }
    const error = toApiError(result.error, result.meta);
    if (error.httpStatus === 401 && needsToken) {
      // Only the token this request carried is ended: a later sign-in stays.
      if (currentToken() === token) {
        api.dispatch(
          sessionEnded({
            message: error.message,
            ...(error.reason ? { reason: error.reason } : {}),
            ...(error.requestId ? { requestId: error.requestId } : {}),
          }),
        );
      }
      if (attempt < 2) continue;
    }
    return result.meta ? { error, meta: result.meta } : { error };
  }
};
