// Requests that need a token wait here while the tab has none (the "Sign in again" dialog is
// open over the page): sent without one, each would come back 401 TOKEN_MISSING, replace the
// reason the dialog shows, and leave its error on the page after the user signed in again.
const waiting = new Set<() => void>();

/** The tab's token now, or once it has one; null when the request was aborted meanwhile. */
export function tokenReady(currentToken: () => string | null, signal?: AbortSignal): Promise<string | null> {
  const now = currentToken();
  if (now) return Promise.resolve(now);
  return new Promise((resolve) => {
    const check = () => {
      const token = currentToken();
      if (token) {
        waiting.delete(check);
        resolve(token);
      }
    };
    waiting.add(check);
    signal?.addEventListener(
      "abort",
      () => {
        waiting.delete(check);
        resolve(null);
      },
      { once: true },
    );
  });
}

/** Called on every store change (cheap: usually nothing waits). */
export function releaseWaitingRequests(): void {
  for (const check of [...waiting]) check();
}

/** How many requests wait for a token (for tests). */
export function waitingRequests(): number {
  return waiting.size;
}
