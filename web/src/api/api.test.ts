import { http, HttpResponse } from "msw";
import { describe, expect, it, vi } from "vitest";

import { makeStore } from "../app/store";
import { signedIn } from "../auth/authSlice";
import { waitingRequests } from "../auth/tokenGate";
import { approval, MODEL_ID, validationReport, version } from "../test/fixtures";
import { server, statusError } from "../test/server";
import { fakeToken } from "../test/tokens";
import { api } from "./api";

function signedInStore(token = fakeToken()) {
  const store = makeStore();
  store.dispatch(signedIn({ token, method: "dev" }));
  return store;
}

describe("the API slice", () => {
  it("sends the bearer token and the filter as the server reads it", async () => {
    const token = fakeToken();
    let seen: { auth: string | null; filter: string | null } | null = null;
    server.use(
      http.get("*/api/v1/models", ({ request }) => {
        seen = { auth: request.headers.get("authorization"), filter: new URL(request.url).searchParams.get("filter") };
        return HttpResponse.json({ models: [] });
      }),
    );
    const store = signedInStore(token);
    await store.dispatch(api.endpoints.listModels.initiate({ filter: 'name:"pump" AND status = APPROVED', pageSize: 50 }));
    expect(seen).toEqual({ auth: `Bearer ${token}`, filter: 'name:"pump" AND status = APPROVED' });
  });

  it("turns a refusal into an ApiError with its reason and request id", async () => {
    server.use(
      http.get("*/api/v1/approvals", () =>
        statusError(403, {
          code: 7,
          reason: "ROLE_REQUIRED",
          message: "ListApprovals requires role model_approver",
          metadata: { method: "ListApprovals", required: "model_approver" },
          requestId: "rid-403",
          domain: "gateway.mlplane",
        }),
      ),
    );
    const store = signedInStore();
    const result = await store.dispatch(api.endpoints.listApprovals.initiate({ state: "OPEN" }));
    expect(result.error).toMatchObject({
      httpStatus: 403,
      reason: "ROLE_REQUIRED",
      message: "ListApprovals requires role model_approver",
      requestId: "rid-403",
      metadata: { required: "model_approver" },
    });
    expect(store.getState().auth.status).toBe("signedIn");
  });

  it("ends the session on a 401, keeping the server's words", async () => {
    server.use(
      http.get("*/api/v1/models", () =>
        statusError(401, { code: 16, reason: "TOKEN_EXPIRED", message: "the token has expired: mint one with …", requestId: "rid-401" }),
      ),
    );
    const store = signedInStore();
    const pending = store.dispatch(api.endpoints.listModels.initiate({}));
    await vi.waitFor(() => {
      expect(store.getState().auth.status).toBe("expired");
    });
    const { auth } = store.getState();
    expect(auth.token).toBeNull();
    expect(auth.claims?.sub).toBe("alice");
    expect(auth.problem).toEqual({ message: "the token has expired: mint one with …", reason: "TOKEN_EXPIRED", requestId: "rid-401" });
    pending.abort();
  });

  it("holds requests while signed out over a page and sends them with the new token", async () => {
    const seen: (string | null)[] = [];
    let refuse = true;
    server.use(
      http.get("*/api/v1/models", ({ request }) => {
        seen.push(request.headers.get("authorization"));
        if (refuse) {
          refuse = false;
          return statusError(401, { code: 16, reason: "TOKEN_EXPIRED", message: "the token has expired" });
        }
        return HttpResponse.json({ models: [] });
      }),
      http.get("*/api/v1/models/:id", () => HttpResponse.json({ id: MODEL_ID, name: "m" })),
    );
    const first = fakeToken({ sub: "alice" });
    const store = signedInStore(first);
    const pending = store.dispatch(api.endpoints.listModels.initiate({}));
    await vi.waitFor(() => {
      expect(waitingRequests()).toBe(1);
    });
    // While the dialog is open nothing else reaches the server, and no reason is replaced.
    const second = store.dispatch(api.endpoints.getModel.initiate(MODEL_ID));
    await vi.waitFor(() => {
      expect(waitingRequests()).toBe(2);
    });
    expect(seen).toEqual([`Bearer ${first}`]);
    expect(store.getState().auth.problem?.reason).toBe("TOKEN_EXPIRED");
    const renewed = fakeToken({ sub: "alice", expiresIn: 7200 });
    store.dispatch(signedIn({ token: renewed, method: "dev" }));
    const result = await pending;
    expect(result.error).toBeUndefined();
    expect(result.data).toEqual({ models: [] });
    expect((await second).error).toBeUndefined();
    expect(seen).toEqual([`Bearer ${first}`, `Bearer ${renewed}`]);
    expect(waitingRequests()).toBe(0);
  });

  it("says the network failed when nothing answers", async () => {
    server.use(http.get("*/api/v1/models", () => HttpResponse.error()));
    const store = signedInStore();
    const result = await store.dispatch(api.endpoints.listModels.initiate({}));
    expect(result.error).toMatchObject({ kind: "network", httpStatus: 0 });
  });

  it("shows a submitted version In Review at once (202)", async () => {
    server.use(
      http.get(`*/api/v1/models/${MODEL_ID}/versions/1`, () => HttpResponse.json(version())),
      http.post(`*/api/v1/models/${MODEL_ID}/approvals`, async ({ request }) => {
        expect(await request.json()).toEqual({ version: "1", comment: "AUC 0.91" });
        return HttpResponse.json(approval({ version: "1", modelVersion: undefined }), { status: 202 });
      }),
    );
    const store = signedInStore();
    const sub = store.dispatch(api.endpoints.getModelVersion.initiate({ modelId: MODEL_ID, version: "1" }));
    await sub;
    expect(api.endpoints.getModelVersion.select({ modelId: MODEL_ID, version: "1" })(store.getState()).data?.status).toBe(
      "PENDING_APPROVAL",
    );
    server.use(http.get(`*/api/v1/models/${MODEL_ID}/versions/1`, () => HttpResponse.json(version({ status: "IN_REVIEW" }))));
    const result = await store.dispatch(
      api.endpoints.submitForApproval.initiate({ modelId: MODEL_ID, version: "1", comment: "AUC 0.91" }),
    );
    expect(result.error).toBeUndefined();
    expect(api.endpoints.getModelVersion.select({ modelId: MODEL_ID, version: "1" })(store.getState()).data?.status).toBe(
      "IN_REVIEW",
    );
    sub.unsubscribe();
  });

  it("reads /config.json without a token", async () => {
    let auth: string | null = "unset";
    server.use(
      http.get("*/config.json", ({ request }) => {
        auth = request.headers.get("authorization");
        return HttpResponse.json({ devSignIn: false, oidc: { authority: "https://issuer/", clientId: "mlplane-web" }, maxModelBytes: 5 });
      }),
    );
    const store = signedInStore();
    const result = await store.dispatch(api.endpoints.getConfig.initiate());
    expect(auth).toBeNull();
    expect(result.data).toEqual({
      devSignIn: false,
      oidc: { authority: "https://issuer/", clientId: "mlplane-web" },
      maxModelBytes: 5,
    });
  });

  it("reads a validation report and carries its state into the cached version and the queue", async () => {
    server.use(
      http.get(`*/api/v1/models/${MODEL_ID}/versions/2`, () => HttpResponse.json(version({ version: "2", validationState: "RUNNING" }))),
      http.get("*/api/v1/approvals", () =>
        HttpResponse.json({ approvals: [approval({ modelVersion: version({ version: "2", validationState: "RUNNING" }) })] }),
      ),
      http.get(`*/api/v1/models/${MODEL_ID}/versions/2/validation`, () => HttpResponse.json(validationReport())),
    );
    const store = signedInStore();
    const key = { modelId: MODEL_ID, version: "2" };
    const versionSub = store.dispatch(api.endpoints.getModelVersion.initiate(key));
    const queueSub = store.dispatch(api.endpoints.listApprovals.initiate({ state: "OPEN" }));
    await versionSub;
    await queueSub;
    const result = await store.dispatch(api.endpoints.getValidationReport.initiate(key));
    expect(result.data?.state).toBe("PASSED");
    expect(api.endpoints.getModelVersion.select(key)(store.getState()).data?.validationState).toBe("PASSED");
    expect(
      api.endpoints.listApprovals.select({ state: "OPEN" })(store.getState()).data?.approvals?.[0]?.modelVersion?.validationState,
    ).toBe("PASSED");
    versionSub.unsubscribe();
    queueSub.unsubscribe();
  });
});
