// OpenID Connect: authorization code + PKCE with oidc-client-ts, loaded only when
// /config.json names an issuer. The user (with its tokens) and the sign-in state (the PKCE
// verifier) are kept in this tab's sessionStorage, never localStorage. Tokens are renewed
// silently before they expire; when that fails, the app asks the user to sign in again
// over the page they are on (a silent attempt first, then a redirect that comes back to the
// same page, where the form's draft is restored from sessionStorage).
import { type User, UserManager, WebStorageStateStore } from "oidc-client-ts";

import type { OidcSettings } from "../api/config";

import { CALLBACK_PATH, SILENT_CALLBACK_PATH } from "./oidcPaths";

export { CALLBACK_PATH };

let manager: UserManager | null = null;

export function userManager(settings: OidcSettings): UserManager {
  if (manager) return manager;
  const origin = window.location.origin;
  manager = new UserManager({
    authority: settings.authority,
    client_id: settings.clientId,
    redirect_uri: origin + CALLBACK_PATH,
    silent_redirect_uri: origin + SILENT_CALLBACK_PATH,
    post_logout_redirect_uri: origin + "/",
    response_type: "code",
    scope: settings.scope ?? "openid",
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
    stateStore: new WebStorageStateStore({ store: window.sessionStorage }),
    automaticSilentRenew: true,
  });
  return manager;
}

/** The bearer token for the API: the access token (a JWT with `tenant` and `roles`). */
export function bearerOf(user: User): string {
  return user.access_token;
}

export interface ReturnState {
  returnTo: string;
}

export function returnToOf(user: User): string {
  const state = user.state as Partial<ReturnState> | undefined;
  const to = typeof state?.returnTo === "string" ? state.returnTo : "/";
  // Only a path on this origin, never a URL elsewhere.
  return to.startsWith("/") && !to.startsWith("//") ? to : "/";
}

/** For tests: forget the manager. */
export function resetUserManager(): void {
  manager = null;
}
