import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { App } from "./app/App";
import { captureFragmentToken } from "./auth/devToken";
import { SILENT_CALLBACK_PATH } from "./auth/oidcPaths";
import { completeSilentRenewPage } from "./auth/session";

// First statement to run (no imported module reads the address when it loads): take a dev
// sign-in token out of the address bar, and so out of the history, before anything else
// can read, report or bookmark the URL.
captureFragmentToken();

if (window.location.pathname === SILENT_CALLBACK_PATH) {
  // The hidden iframe of an OIDC silent renew: hand the answer to the app, render nothing.
  void completeSilentRenewPage();
} else {
  const root = document.getElementById("root");
  if (root) {
    createRoot(root).render(
      <StrictMode>
        <App />
      </StrictMode>,
    );
  }
}
