// Who is signed in. The token lives here in memory (for the Authorization header) and, for
// the dev sign-in, in this tab's sessionStorage (auth/devToken.ts); with OpenID Connect
// oidc-client-ts keeps the user in sessionStorage. Never localStorage.
import { createSlice, type PayloadAction } from "@reduxjs/toolkit";

import { type Claims, decodeClaims, isExpired } from "./jwt";

export type SignInMethod = "dev" | "oidc";

/** Why the app is signed out: the server's words, its reason and request id. */
export interface SignInProblem {
  message: string;
  reason?: string;
  requestId?: string;
}

export type AuthStatus = "initializing" | "signedOut" | "signedIn" | "expired";

export interface AuthState {
  status: AuthStatus;
  method: SignInMethod | null;
  token: string | null;
  claims: Claims | null;
  problem: SignInProblem | null;
}

const initialState: AuthState = {
  status: "initializing",
  method: null,
  token: null,
  claims: null,
  problem: null,
};

export const EXPIRED_PROBLEM: SignInProblem = {
  message: "the token has expired",
  reason: "TOKEN_EXPIRED",
};

const authSlice = createSlice({
  name: "auth",
  initialState,
  reducers: {
    methodChosen(state, action: PayloadAction<SignInMethod | null>) {
      state.method = action.payload;
    },
    signedIn(state, action: PayloadAction<{ token: string; method: SignInMethod }>) {
      const claims = decodeClaims(action.payload.token);
      state.method = action.payload.method;
      if (!claims) {
        state.status = "signedOut";
        state.token = null;
        state.claims = null;
        state.problem = {
          message: "the sign-in link does not hold a valid token (copy the whole URL)",
          reason: "TOKEN_MALFORMED",
        };
        return;
      }
      if (isExpired(claims)) {
        state.status = "expired";
        state.token = null;
        state.claims = claims;
        state.problem = EXPIRED_PROBLEM;
        return;
      }
      state.status = "signedIn";
      state.token = action.payload.token;
      state.claims = claims;
      state.problem = null;
    },
    /** The server refused the token (401) or it ran out: sign in again, keep the page. */
    sessionEnded(state, action: PayloadAction<SignInProblem>) {
      state.status = state.claims ? "expired" : "signedOut";
      state.token = null;
      state.problem = action.payload;
    },
    /** The user signed out, or nothing to sign in with was found. */
    signedOut(state, action: PayloadAction<SignInProblem | undefined>) {
      state.status = "signedOut";
      state.token = null;
      state.claims = null;
      state.problem = action.payload ?? null;
    },
  },
});

export const { methodChosen, signedIn, sessionEnded, signedOut } = authSlice.actions;
export const authReducer = authSlice.reducer;

export interface WithAuth {
  auth: AuthState;
}

export const selectAuth = (state: WithAuth): AuthState => state.auth;
export const selectRoles = (state: WithAuth): string[] => state.auth.claims?.roles ?? [];
export const selectSubject = (state: WithAuth): string => state.auth.claims?.sub ?? "";
