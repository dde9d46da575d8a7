// Starting, renewing and ending a session, for both ways of signing in.
import { type AppConfig, parseConfig } from "../api/config";
import type { AppDispatch } from "../app/store";
import { EXPIRED_PROBLEM, methodChosen, sessionEnded, signedIn, signedOut } from "./authSlice";
import { clearAllDrafts } from "../components/draft";
import { storedDevToken, storeDevToken } from "./devToken";

type Navigate = (to: string, options?: { replace?: boolean }) => void | Promise<void>;

const loadOidc = () => import("./oidc");

/** Where to come back after a sign-in: the page the user was on. */
export function currentPath(): string {
  return window.location.pathname + window.location.search;
}

/**
 * Signs the tab in from what it has: the dev token taken from `#token=` (only when the
 * gateway allows the dev sign-in), the one kept in sessionStorage, or the OIDC user.
 */
export async function startSession(
  config: AppConfig,
  fragmentToken: string | null,
  dispatch: AppDispatch,
  navigate: Navigate,
): Promise<void> {
  if (config.oidc) {
    dispatch(methodChosen("oidc"));
    storeDevToken(null);
    const { userManager, bearerOf, returnToOf, CALLBACK_PATH } = await loadOidc();
    const manager = userManager(config.oidc);
    manager.events.addUserLoaded((user) => {
      dispatch(signedIn({ token: bearerOf(user), method: "oidc" }));
    });
    manager.events.addAccessTokenExpired(() => {
      dispatch(sessionEnded(EXPIRED_PROBLEM));
    });
    if (window.location.pathname === CALLBACK_PATH) {
      try {
        const user = await manager.signinRedirectCallback();
        dispatch(signedIn({ token: bearerOf(user), method: "oidc" }));
        await navigate(returnToOf(user), { replace: true });
      } catch (error) {
        dispatch(signedOut({ message: `the sign-in did not complete: ${String(error)}`, reason: "OIDC_CALLBACK" }));
        await navigate("/", { replace: true });
      }
      return;
    }
    const user = await manager.getUser();
    if (user && !user.expired) dispatch(signedIn({ token: bearerOf(user), method: "oidc" }));
    else if (user) dispatch(signedOut(EXPIRED_PROBLEM));
    else dispatch(signedOut());
    return;
  }
  if (config.devSignIn) {
    dispatch(methodChosen("dev"));
    if (fragmentToken) storeDevToken(fragmentToken);
    const token = fragmentToken ?? storedDevToken();
    if (token) dispatch(signedIn({ token, method: "dev" }));
    else dispatch(signedOut());
    return;
  }
  // No way to sign in is configured: a `#token=` is not honoured either.
  dispatch(methodChosen(null));
  storeDevToken(null);
  dispatch(signedOut());
}

/** Dev sign-in with a pasted URL or token, over the current page. */
export function signInWithDevToken(token: string, dispatch: AppDispatch): void {
  storeDevToken(token);
  dispatch(signedIn({ token, method: "dev" }));
}

/**
 * OIDC: sign in again without leaving the page when the issuer's session still holds (a
 * silent renew keeps even a chosen file), else by redirect back to this page.
 */
export async function signInAgain(config: AppConfig, dispatch: AppDispatch): Promise<void> {
  if (!config.oidc) return;
  const { userManager, bearerOf } = await loadOidc();
  const manager = userManager(config.oidc);
  try {
    const user = await manager.signinSilent();
    if (user) {
      dispatch(signedIn({ token: bearerOf(user), method: "oidc" }));
      return;
    }
  } catch {
    // The issuer wants the user: go there and come back.
  }
  await manager.signinRedirect({ state: { returnTo: currentPath() } });
}

export async function signIn(config: AppConfig): Promise<void> {
  if (!config.oidc) return;
  const { userManager } = await loadOidc();
  await userManager(config.oidc).signinRedirect({ state: { returnTo: currentPath() } });
}

export async function signOut(config: AppConfig | undefined, dispatch: AppDispatch): Promise<void> {
  storeDevToken(null);
  clearAllDrafts();
  dispatch(signedOut());
  if (config?.oidc) {
    const { userManager } = await loadOidc();
    const manager = userManager(config.oidc);
    await manager.removeUser();
    try {
      await manager.signoutRedirect();
    } catch {
      // The issuer has no end-session endpoint: the local sign-out is all there is.
    }
  }
}

/** The silent-renew iframe's page: hand the answer to the parent and render nothing. */
export async function completeSilentRenewPage(): Promise<void> {
  const response = await fetch("/config.json");
  const config = parseConfig(await response.json());
  if (!config.oidc) return;
  const { userManager } = await loadOidc();
  await userManager(config.oidc).signinSilentCallback();
}
