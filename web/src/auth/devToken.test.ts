import { describe, expect, it } from "vitest";

import { makeStore } from "../app/store";
import { devConfig } from "../test/server";
import { fakeToken } from "../test/tokens";
import { storedDevToken, takeTokenFromFragment, TOKEN_KEY, tokenFromPasted } from "./devToken";
import { decodeClaims } from "./jwt";
import { startSession } from "./session";

const noNavigate = () => undefined;

describe("dev sign-in from the URL fragment", () => {
  it("takes the token out of the address at once, without adding a history entry", () => {
    const token = fakeToken();
    window.history.replaceState(null, "", `/models?x=1#token=${token}`);
    const before = window.history.length;
    expect(takeTokenFromFragment(window)).toBe(token);
    expect(window.location.href).toBe("http://localhost:3000/models?x=1");
    expect(window.location.hash).toBe("");
    expect(window.history.length).toBe(before);
  });

  it("leaves other fragments alone", () => {
    window.history.replaceState(null, "", "/models#section");
    expect(takeTokenFromFragment(window)).toBeNull();
    expect(window.location.hash).toBe("#section");
  });

  it("keeps the token in sessionStorage only, and signs in", async () => {
    const token = fakeToken({ sub: "alice", roles: ["data_scientist"] });
    const store = makeStore();
    await startSession(devConfig, token, store.dispatch, noNavigate);
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe(token);
    // eslint-disable-next-line no-restricted-globals -- asserting that nothing went there
    expect(localStorage.length).toBe(0);
    expect(store.getState().auth).toMatchObject({ status: "signedIn", method: "dev", token });
    expect(store.getState().auth.claims).toMatchObject({ sub: "alice", tenant: "demo", roles: ["data_scientist"] });
  });

  it("signs in again from sessionStorage on reload", async () => {
    const token = fakeToken();
    sessionStorage.setItem(TOKEN_KEY, token);
    const store = makeStore();
    await startSession(devConfig, null, store.dispatch, noNavigate);
    expect(store.getState().auth.status).toBe("signedIn");
  });

  it("ignores #token= when the dev sign-in is off", async () => {
    const store = makeStore();
    await startSession({ devSignIn: false, oidc: null, maxModelBytes: 1 }, fakeToken(), store.dispatch, noNavigate);
    expect(storedDevToken()).toBeNull();
    expect(store.getState().auth).toMatchObject({ status: "signedOut", token: null });
  });

  it("says an expired link has expired", async () => {
    const store = makeStore();
    await startSession(devConfig, fakeToken({ expiresIn: -60 }), store.dispatch, noNavigate);
    expect(store.getState().auth).toMatchObject({ status: "expired", token: null, problem: { reason: "TOKEN_EXPIRED" } });
  });

  it("refuses a mangled link", async () => {
    const store = makeStore();
    await startSession(devConfig, "not-a-jwt", store.dispatch, noNavigate);
    expect(store.getState().auth).toMatchObject({ status: "signedOut", problem: { reason: "TOKEN_MALFORMED" } });
  });

  it("reads a pasted sign-in URL or bare token", () => {
    const token = fakeToken();
    expect(tokenFromPasted(`http://127.0.0.1:8080/#token=${token}`)).toBe(token);
    expect(tokenFromPasted(` ${token} `)).toBe(token);
    expect(tokenFromPasted("hello")).toBeNull();
  });

  it("reads the claims the app shows", () => {
    expect(decodeClaims(fakeToken({ sub: "bob", tenant: "acme", roles: ["model_approver"] }))).toMatchObject({
      sub: "bob",
      tenant: "acme",
      roles: ["model_approver"],
    });
    expect(decodeClaims("a.b")).toBeNull();
  });
});

describe("a sign-in URL opened in a running tab", () => {
  it("signs in when only the fragment changes (no reload)", async () => {
    const { renderApp } = await import("../test/render");
    const { screen } = await import("@testing-library/react");
    renderApp("/models", { token: null });
    await screen.findByRole("heading", { name: "Sign in to mlplane" });
    const { server } = await import("../test/server");
    const { http, HttpResponse } = await import("msw");
    server.use(http.get("*/api/v1/models", () => HttpResponse.json({})));
    const token = fakeToken({ sub: "erin" });
    window.history.replaceState(null, "", `/models#token=${token}`);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
    expect(await screen.findByRole("button", { name: /Signed in as erin/ })).toBeInTheDocument();
    expect(window.location.hash).toBe("");
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe(token);
  });
});
