// MSW for unit tests only: the REST surface as the gateway answers it, per test.
import { http, HttpResponse } from "msw";
import { setupServer } from "msw/node";

import type { AppConfig } from "../api/config";

export const devConfig: AppConfig = { devSignIn: true, oidc: null, maxModelBytes: 1024 ** 3 };

export const server = setupServer(
  http.get("*/config.json", () => HttpResponse.json(devConfig)),
);

/** A google.rpc.Status error answer with an ErrorInfo and optional field violations. */
export function statusError(
  httpStatus: number,
  {
    code,
    reason,
    message,
    metadata = {},
    violations = [],
    requestId = "req-1234",
    domain = "mlplane",
  }: {
    code: number;
    reason: string;
    message: string;
    metadata?: Record<string, string>;
    violations?: { field: string; description: string; reason?: string }[];
    requestId?: string;
    domain?: string;
  },
) {
  const details: object[] = [
    { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain, metadata },
  ];
  if (violations.length) {
    details.push({ "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: violations });
  }
  return HttpResponse.json(
    { code, message, details },
    { status: httpStatus, headers: { "x-request-id": requestId } },
  );
}
