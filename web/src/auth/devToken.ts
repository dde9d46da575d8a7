// The dev sign-in: `mlplane token --role R --subject S --url` prints
// `http://127.0.0.1:8080/#token=<JWT>`. A fragment never reaches a server (nor its logs);
// the app takes it out of the address at once with history.replaceState, so it does not
// stay in the address bar or the browser's history either, and keeps the token in this
// tab's sessionStorage only (never localStorage). With a real issuer configured
// (`devSignIn: false` in /config.json) a `#token=` is dropped unused.

export const TOKEN_KEY = "mlplane.token";

/**
 * Takes `#token=…` out of the current address (before anything else runs) and returns the
 * token, or null when the fragment holds none. Other fragments are left alone.
 */
export function takeTokenFromFragment(win: Window = window): string | null {
  const hash = win.location.hash;
  if (!hash.startsWith("#")) return null;
  const params = new URLSearchParams(hash.slice(1));
  const token = params.get("token");
  if (token === null) return null;
  params.delete("token");
  const rest = params.toString();
  const url = win.location.pathname + win.location.search + (rest ? `#${rest}` : "");
  win.history.replaceState(win.history.state, "", url);
  return token.trim() || null;
}

/** The token pasted as a sign-in URL (`…#token=…`) or as the bare token. */
export function tokenFromPasted(text: string): string | null {
  const trimmed = text.trim();
  const at = trimmed.indexOf("#");
  if (at >= 0) {
    const token = new URLSearchParams(trimmed.slice(at + 1)).get("token");
    return token?.trim() || null;
  }
  return /^[\w-]+\.[\w-]+\.[\w-]+$/.test(trimmed) ? trimmed : null;
}

export function storedDevToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function storeDevToken(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode quota): the token then lives in memory for this page.
  }
}

let captured: string | null = null;

/** Called first thing at start-up (main.tsx): take the fragment's token out of the URL. */
export function captureFragmentToken(win: Window = window): void {
  const token = takeTokenFromFragment(win);
  if (token) captured = token;
}

/** The token captured at start-up, once. */
export function consumeCapturedToken(): string | null {
  const token = captured;
  captured = null;
  return token;
}
