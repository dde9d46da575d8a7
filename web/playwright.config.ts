// The browser tests (e2e/): Playwright driving Debian's Chromium (Playwright cannot download
// its own browser here) against real stacks that tests/web/test_browser.py starts and names in
// WEB_E2E_* variables (e2e/support/env.ts). Run them with `.venv/bin/python -m pytest tests/web`
// (or `make test`); `npx playwright test` alone needs those variables set.
//
// Two projects, one per way of signing in: `dev` (the embedded dev issuer: sign-in links from
// `mlplane token --url`) and `oidc` (a real OpenID provider, code + PKCE), each against a
// stack of its own: tests/web runs the two projects side by side. Within a project the tests
// share their stack and run one at a time (two cores; some tests change the stack's state,
// e.g. the object store's folder), so a test never races another.
import { defineConfig } from "@playwright/test";

const chromium = process.env.WEB_E2E_CHROMIUM ?? "/usr/bin/chromium";

export default defineConfig({
  testDir: "e2e",
  fullyParallel: false,
  workers: 1,
  forbidOnly: Boolean(process.env.CI),
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: [["list"]],
  // Each project has its own (tests/web runs the two side by side, and a run empties its
  // projects' folders when it starts).
  outputDir: "test-results",
  use: {
    browserName: "chromium",
    viewport: { width: 1280, height: 800 },
    locale: "en-GB",
    timezoneId: "Europe/Berlin",
    acceptDownloads: true,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: chromium,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  projects: [
    {
      name: "dev",
      outputDir: "test-results/dev",
      testIgnore: /oidc\.spec\.ts$/,
      use: { baseURL: process.env.WEB_E2E_GATEWAY },
    },
    {
      name: "oidc",
      outputDir: "test-results/oidc",
      testMatch: /oidc\.spec\.ts$/,
      use: { baseURL: process.env.WEB_E2E_OIDC_GATEWAY },
    },
  ],
});
