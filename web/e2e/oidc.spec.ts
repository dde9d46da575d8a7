// Signing in with a real OpenID provider (npm oidc-provider, e2e/oidc/provider.mjs) on a
// stack configured for it (project `oidc`): authorization code + PKCE through the provider's
// own login page, JWT access tokens the gateway and the services verify against the
// provider's JWKS, a dev `#token=` link ignored, and what happens when a token runs out.
import { type BrowserContext, expect, type Locator, type Page } from "@playwright/test";

import { accountButton, chooseFile, fillUploadForm, filePath, nameField, openUploadPage, suffixed, test, uploadButton } from "./support/app";
import { env } from "./support/env";
import { screenshot } from "./support/shots";
import { bearer } from "./support/tokens";

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

interface StoredUser {
  access_token: string;
  expires_at: number;
}

/** The signed-in user oidc-client-ts keeps in this tab's sessionStorage. */
async function storedUser(page: Page): Promise<StoredUser | null> {
  return page.evaluate(() => {
    const key = Object.keys(window.sessionStorage).find((k) => k.startsWith("oidc.user:"));
    return key ? (JSON.parse(window.sessionStorage.getItem(key) ?? "null") as StoredUser) : null;
  });
}

function decodePart(token: string, index: number): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[index] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
}

/**
 * Clears the browser's cookies until the app gives up on its session and shows `shown`. Once
 * is not enough: a silent renew already on its way brings the provider's session cookie back
 * with its answer (the provider refreshes it on every authorization), and the renewals then
 * go on succeeding.
 */
async function forgetProviderSession(context: BrowserContext, shown: Locator): Promise<void> {
  await expect
    .poll(
      async () => {
        await context.clearCookies();
        return shown.isVisible();
      },
      { message: "the app gives up on its session", timeout: 45_000, intervals: [250] },
    )
    .toBe(true);
}

/** The provider's own login page (devInteractions): any login name, any password. */
async function logInAtProvider(page: Page, login: string, shot?: string): Promise<void> {
  await expect(page).toHaveURL(new RegExp(`^${escapeRegExp(env.oidcIssuer)}/interaction/`));
  if (shot) await screenshot(page, shot);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password will do");
  await page.getByRole("button", { name: "Sign-in" }).click();
}

async function signIn(page: Page, login: string, shot?: string): Promise<void> {
  await page.goto("/");
  await expect(page.getByRole("heading", { level: 1, name: "Sign in to mlplane" })).toBeVisible();
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await logInAtProvider(page, login, shot);
  await expect(accountButton(page)).toHaveAccessibleName(`Signed in as ${login}: account menu`);
}

test("alice signs in at the provider, sees her roles, lists models and uploads one", async ({ page }) => {
  await signIn(page, "alice", "oidc-provider-login");
  await expect(page).toHaveURL(`${env.oidcGateway}/models`);
  await expect(page.getByRole("banner").getByText("Data Scientist", { exact: true })).toBeVisible();
  await accountButton(page).click();
  await expect(page.getByRole("menu").getByText("Tenant demo")).toBeVisible();
  await expect(page.getByRole("menu").getByText("data_scientist", { exact: true })).toBeVisible();
  await page.keyboard.press("Escape");

  // Tokens in this tab's sessionStorage, never in localStorage; the access token is the
  // provider's JWT for mlplane, with the claims the gateway and the services read.
  expect(await page.evaluate(() => Object.keys(window.localStorage))).toEqual([]);
  const user = await storedUser(page);
  expect(user).not.toBeNull();
  const token = user?.access_token ?? "";
  expect(decodePart(token, 0)).toMatchObject({ alg: "RS256", typ: "at+jwt" });
  expect(decodePart(token, 1)).toMatchObject({
    iss: env.oidcIssuer,
    aud: "mlplane",
    sub: "alice",
    tenant: "demo",
    roles: ["data_scientist"],
    client_id: "mlplane-web",
  });

  // The gateway and the services accept it: the list loads (empty on a fresh stack).
  await expect(page.getByRole("main").getByRole("table").or(page.getByText("No models yet"))).toBeVisible();
  await expect(page.getByRole("main").getByRole("alert")).toHaveCount(0);

  const name = suffixed("oidc-upload");
  await openUploadPage(page);
  await fillUploadForm(page, { name, description: "Uploaded by a user of a real OpenID provider.", metrics: { roc_auc: "0.9" } });
  await chooseFile(page, filePath("model.onnx"));
  await uploadButton(page).click();
  await expect(page.getByRole("status").filter({ hasText: `Uploaded ${name} v1` })).toBeVisible();
  await page.getByRole("link", { name: "See the models" }).click();
  const row = page.getByRole("row").filter({ has: page.getByRole("link", { name, exact: true }) });
  await expect(row).toContainText("Pending Approval");
  await expect(row).toContainText("alice");
});

test("bob signs in at the provider and lands on his review queue", async ({ page }) => {
  await signIn(page, "bob");
  await expect(page).toHaveURL(`${env.oidcGateway}/approvals`);
  await expect(page.getByRole("heading", { level: 1, name: "Review queue" })).toBeVisible();
  await expect(page.getByRole("main").getByRole("alert")).toHaveCount(0);
  await expect(page.getByRole("banner").getByText("Model Approver", { exact: true })).toBeVisible();
});

test("a dev #token= link is ignored where a real issuer is configured", async ({ page }) => {
  const devToken = bearer("data_scientist", "mallory");
  const bearers: string[] = [];
  page.on("request", (request) => {
    const authorization = request.headers().authorization;
    if (authorization) bearers.push(authorization);
  });
  await page.goto(`/#token=${devToken}`);
  await expect(page.getByRole("heading", { level: 1, name: "Sign in to mlplane" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Sign in", exact: true })).toBeVisible();
  expect(page.url()).not.toContain("token");
  expect(await page.evaluate(() => Object.keys(window.sessionStorage).filter((k) => k.startsWith("mlplane.")))).toEqual([]);
  await expect(accountButton(page)).toHaveCount(0);
  expect(bearers, "the dev token was never sent").toEqual([]);
});

test.describe("a short-lived access token (erin's last 10 s)", () => {
  // Each test may wait up to 45 s for a renewal or for the app to give up, on top of signing
  // in and uploading: three times the default 60 s.
  test.slow();

  test("while the provider's session lasts, the app renews it silently: the form is untouched", async ({ page }) => {
    await signIn(page, "erin");
    const first = await storedUser(page);
    await openUploadPage(page);
    const name = suffixed("silent-renew");
    await fillUploadForm(page, { name, description: "Half typed." });
    await expect
      .poll(async () => (await storedUser(page))?.access_token, { message: "a renewed access token", timeout: 45_000 })
      .not.toBe(first?.access_token);
    await expect(page.getByRole("dialog", { name: "Sign in again" })).toHaveCount(0);
    await expect(nameField(page)).toHaveValue(name);
    await chooseFile(page, filePath("model.onnx"));
    await uploadButton(page).click();
    await expect(page.getByRole("status").filter({ hasText: `Uploaded ${name} v1` })).toBeVisible();
  });

  test("once the provider's session is gone: Sign in again, through the provider, back to the form with its draft", async ({ page, context }) => {
    await signIn(page, "erin");
    await openUploadPage(page);
    const name = suffixed("after-expiry");
    await fillUploadForm(page, { name, description: "Typed before the session ended.", labels: { team: "reliability" } });
    await chooseFile(page, filePath("model.onnx"));
    // The provider forgets the browser (its session cookie goes): a silent renew now fails.
    const dialog = page.getByRole("dialog", { name: "Sign in again" });
    await forgetProviderSession(context, dialog);
    await expect(dialog.getByRole("alert")).toContainText("Your sign-in has expired.");
    await expect(nameField(page)).toHaveValue(name);
    await screenshot(page, "oidc-sign-in-again");
    await dialog.getByRole("button", { name: "Sign in again" }).click();
    await logInAtProvider(page, "erin");
    // Back on the page it left, with the fields restored from the draft; the file is not kept.
    await expect(page).toHaveURL(`${env.oidcGateway}/upload`);
    await expect(page.getByText("Your draft was kept")).toBeVisible();
    await expect(nameField(page)).toHaveValue(name);
    await expect(page.getByRole("textbox", { name: "Description", exact: true })).toHaveValue("Typed before the session ended.");
    await expect(page.getByRole("textbox", { name: "Label value 1" })).toHaveValue("reliability");
    await chooseFile(page, filePath("model.onnx"));
    await uploadButton(page).click();
    await expect(page.getByRole("status").filter({ hasText: `Uploaded ${name} v1` })).toBeVisible();
  });
});
