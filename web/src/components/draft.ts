// Drafts of forms in this tab's sessionStorage: a half-filled form survives a sign-in
// redirect (OIDC) or a reload, and is cleared when it is sent or the user signs out. A
// chosen file cannot be kept (browsers do not allow it): the page asks for it again.
import { useCallback, useEffect, useState } from "react";

const PREFIX = "mlplane.draft.";

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller's draft type
function read<T>(key: string): T | undefined {
  try {
    const text = sessionStorage.getItem(PREFIX + key);
    return text === null ? undefined : (JSON.parse(text) as T);
  } catch {
    return undefined;
  }
}

function write(key: string, value: unknown): void {
  try {
    sessionStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    // Quota or privacy mode: the draft then lives only as long as the page.
  }
}

export function clearDraft(key: string): void {
  try {
    sessionStorage.removeItem(PREFIX + key);
  } catch {
    // nothing kept
  }
}

/** Forget every draft (on sign-out, so the next user of the tab does not see them). */
export function clearAllDrafts(): void {
  try {
    for (const key of Object.keys(sessionStorage)) {
      if (key.startsWith(PREFIX)) sessionStorage.removeItem(key);
    }
  } catch {
    // nothing kept
  }
}

/** State kept in sessionStorage under `key`; `restored` tells whether a draft was found. */
export function useSessionDraft<T>(key: string, initial: T) {
  const [state, setState] = useState(() => {
    const saved = read<T>(key);
    return { key, initial, value: saved ?? initial, restored: saved !== undefined };
  });
  // Another key (another record's dialog) starts from its own draft.
  const current =
    state.key === key ? state : { key, initial: state.initial, value: read<T>(key) ?? state.initial, restored: false };

  useEffect(() => {
    write(current.key, current.value);
  }, [current.key, current.value]);

  const setValue = useCallback(
    (next: T | ((previous: T) => T)) => {
      setState((prev) => {
        const base = prev.key === key ? prev.value : (read<T>(key) ?? prev.initial);
        const value = typeof next === "function" ? (next as (p: T) => T)(base) : next;
        return { key, initial: prev.initial, value, restored: prev.key === key ? prev.restored : false };
      });
    },
    [key],
  );

  const clear = useCallback(() => {
    clearDraft(key);
    setState((prev) => ({ key, initial: prev.initial, value: prev.initial, restored: false }));
  }, [key]);

  return { value: current.value, setValue, clear, restored: current.restored };
}
