// Every way an upload or a page can be refused, as the user reads it (the sentence, the
// server's words, the reason code), and proof that nothing was stored: no model of that name
// through the API, and no new file in the object store's folder.
import { expect, type Page } from "@playwright/test";

import { apiGet, appConfig, modelsNamed } from "./support/api";
import {
  accountButton,
  chooseFile,
  fillUploadForm,
  filePath,
  nameField,
  openSignInLink,
  openUploadPage,
  refusal,
  test,
  uniqueName,
  uploadButton,
  watchUploads,
} from "./support/app";
import { env } from "./support/env";
import { screenshot } from "./support/shots";
import { breakStore, restoreStore, storeFiles } from "./support/store";
import { bearer, signInUrl } from "./support/tokens";

async function signInAlice(page: Page): Promise<void> {
  await openSignInLink(page, signInUrl("data_scientist", "alice"));
}

async function expectNothingStored(name: string, filesBefore: string[]): Promise<void> {
  expect(await modelsNamed(name), `no model named ${name}`).toEqual([]);
  expect(storeFiles(), "the object store's files").toEqual(filesBefore);
}

test.describe("an upload the server refuses", () => {
  test.beforeEach(async ({ page }) => {
    await signInAlice(page);
    await openUploadPage(page);
  });

  test("a .onnx file that is a pickle: 400 NOT_ONNX, said in words, the form stays filled", async ({ page }) => {
    const name = await uniqueName("pickled");
    const before = storeFiles();
    await fillUploadForm(page, { name, description: "A scikit-learn forest, pickled by mistake." });
    await chooseFile(page, filePath("pickle.onnx"));
    const answer = page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/api/v1/models"));
    await uploadButton(page).click();
    expect((await answer).status()).toBe(400);

    const alert = refusal(page, "This file is not an ONNX model.");
    await expect(alert).toBeVisible();
    await expect(alert).toContainText("it looks like a Python pickle");
    await expect(alert).toContainText("skl2onnx");
    await expect(alert).toContainText("NOT_ONNX");
    await expect(alert).toContainText("HTTP 400");
    await expect(alert.getByRole("button", { name: "Copy request id" })).toBeVisible();
    await expect(nameField(page)).toHaveValue(name);
    await expect(page.getByText("pickle.onnx", { exact: true })).toBeVisible();
    await screenshot(page, "upload-refused");
    await expectNothingStored(name, before);
  });

  test("a name the server refuses: its field rule is shown on the Name field", async ({ page }) => {
    // The app checks names by the same contract rules, so a bad name cannot leave the form:
    // the request is rewritten on its way out (the real server still answers it).
    const name = await uniqueName("valid-name");
    const refused = "Pump Risk";
    const before = storeFiles();
    await page.route(`${env.gateway}/api/v1/models`, async (route) => {
      const request = route.request();
      if (request.method() !== "POST") {
        await route.continue();
        return;
      }
      const body = (request.postDataBuffer() ?? Buffer.alloc(0)).toString("latin1");
      const rewritten = body.replace(`name="name"\r\n\r\n${name}\r\n`, `name="name"\r\n\r\n${refused}\r\n`);
      expect(rewritten, "the form's name part").not.toBe(body);
      await route.continue({ postData: Buffer.from(rewritten, "latin1") });
    });
    await fillUploadForm(page, { name });
    await chooseFile(page, filePath("model.onnx"));
    const answer = page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/api/v1/models"));
    await uploadButton(page).click();
    const response = await answer;
    expect(response.status()).toBe(400);
    const status = (await response.json()) as {
      details: { "@type": string; fieldViolations?: { field: string; description: string }[] }[];
    };
    const violation = status.details.flatMap((d) => d.fieldViolations ?? [])[0];
    expect(violation?.field).toBe("name");
    const description = violation?.description ?? "";
    expect(description).toContain("name must be lower-case letters");

    await expect(refusal(page, "Some fields need attention: see the messages beside them.")).toContainText("INVALID_FIELD");
    await expect(nameField(page)).toHaveAttribute("aria-invalid", "true");
    await expect(nameField(page)).toHaveAccessibleDescription(new RegExp(description.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    await expect(nameField(page)).toHaveValue(name);
    await expectNothingStored(name, before);
    expect(await modelsNamed(refused)).toEqual([]);
  });

  test("the object store down: 503 OBJECT_STORE_UNAVAILABLE, nothing stored, and a retry works", async ({ page }) => {
    const name = await uniqueName("store-down");
    await fillUploadForm(page, { name, metrics: { roc_auc: "0.88" } });
    await chooseFile(page, filePath("model.onnx"));
    const before = storeFiles();
    breakStore();
    try {
      const answer = page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/api/v1/models"));
      await uploadButton(page).click();
      expect((await answer).status()).toBe(503);
      const alert = refusal(page, "The model store is unavailable right now. Nothing was stored; try again in a minute.");
      await expect(alert).toContainText("OBJECT_STORE_UNAVAILABLE");
      await expect(alert).toContainText("HTTP 503");
      await expect(alert).toContainText("the model store is unavailable; nothing was stored");
      await expect(nameField(page)).toHaveValue(name);
      expect(await modelsNamed(name)).toEqual([]);
    } finally {
      restoreStore();
    }
    expect(storeFiles(), "nothing half-stored in the object store").toEqual(before);
    // The form kept everything, the file included: the same click now goes through. It is v1:
    // a refused upload burns no version number (issue #14).
    await uploadButton(page).click();
    await expect(page.getByRole("status").filter({ hasText: `Uploaded ${name} v1` })).toBeVisible();
    const [model] = await modelsNamed(name);
    expect(model?.latestVersion).toBe("1");
    expect((await apiGet(`models/${model?.modelId ?? ""}/versions/2`)).status).toBe(404);
  });
});

test.describe("an upload the app refuses before a byte is sent", () => {
  test.beforeEach(async ({ page }) => {
    await signInAlice(page);
    await openUploadPage(page);
  });

  test("a .pkl file", async ({ page }) => {
    const name = await uniqueName("pkl");
    const posts = watchUploads(page);
    await fillUploadForm(page, { name });
    await chooseFile(page, filePath("model.pkl"));
    const message = "“model.pkl” is not an ONNX model: choose a file ending in .onnx (export it with skl2onnx, torch.onnx.export or tf2onnx).";
    await expect(page.getByRole("alert").filter({ hasText: message })).toBeVisible();
    await expect(page.getByText("model.pkl", { exact: true })).toHaveCount(0);
    await uploadButton(page).click();
    await expect(page.getByRole("alert").filter({ hasText: message })).toBeVisible();
    await expect(nameField(page)).toHaveValue(name);
    expect(posts.posts).toEqual([]);
    expect(await modelsNamed(name)).toEqual([]);
  });

  test("a file larger than the server's limit, learned from /config.json", async ({ page }) => {
    const { maxModelBytes } = await appConfig();
    const name = await uniqueName("too-large");
    const posts = watchUploads(page);
    await fillUploadForm(page, { name });
    await chooseFile(page, { name: "too-large.onnx", mimeType: "application/octet-stream", buffer: Buffer.alloc(maxModelBytes + 1, 7) });
    const exact = `${new Intl.NumberFormat("en-US").format(maxModelBytes)} bytes`;
    const alert = page.getByRole("alert").filter({ hasText: "“too-large.onnx” is " });
    await expect(alert).toContainText(`the registry accepts at most`);
    await expect(alert).toContainText(`(${exact})`);
    await uploadButton(page).click();
    await expect(alert).toBeVisible();
    expect(posts.posts).toEqual([]);
    expect(await modelsNamed(name)).toEqual([]);
  });
});

test("the wrong role: a data scientist forcing /approvals reads the server's 403", async ({ page }) => {
  await signInAlice(page);
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Review queue" })).toHaveCount(0);
  const server = await apiGet("approvals?state=OPEN", bearer("data_scientist", "alice"));
  expect(server.status).toBe(403);
  const message = String(server.body.message);
  expect(message).toBe("ListApprovals requires role model_approver");

  await page.goto("/approvals");
  const alert = refusal(page, "Your account does not have the role model_approver, which this needs.");
  await expect(alert).toContainText(message);
  await expect(alert).toContainText("ROLE_REQUIRED");
  await expect(alert).toContainText("HTTP 403");
  await expect(page.getByRole("button", { name: "Approve" })).toHaveCount(0);
  await screenshot(page, "wrong-role");
});

test.describe("an expired token", () => {
  test("an expired sign-in link: the app asks to sign in again, and a fresh link pasted there works", async ({ page }) => {
    await page.goto(signInUrl("data_scientist", "alice", { ttl: -60 }));
    const dialog = page.getByRole("dialog", { name: "Sign in again" });
    await expect(dialog).toBeVisible();
    expect(page.url()).not.toContain("token");
    await expect(dialog).toContainText("You were signed in as alice.");
    await expect(dialog).toContainText("mlplane token --role data_scientist --subject alice --url");
    await screenshot(page, "sign-in-again");
    await dialog.getByRole("textbox", { name: "Or paste the link here" }).fill(signInUrl("data_scientist", "alice"));
    await dialog.getByRole("button", { name: "Sign in" }).click();
    await expect(dialog).toBeHidden();
    await expect(page.getByRole("heading", { level: 1, name: "Models" })).toBeVisible();
    await expect(accountButton(page)).toHaveAccessibleName("Signed in as alice: account menu");
  });

  test("an expired sign-in link: the dialog keeps saying why (TOKEN_EXPIRED) and the page loads once signed in again", async ({ page }) => {
    // While the "Sign in again" dialog is open the page behind it sends nothing (sent without
    // a token, its requests' 401 TOKEN_MISSING would replace the reason), and once signed in
    // again it loads (web/src/auth/tokenGate.ts).
    const tokenless: string[] = [];
    page.on("request", (request) => {
      if (new URL(request.url()).pathname.startsWith("/api/") && !request.headers().authorization) tokenless.push(request.url());
    });
    await page.goto(signInUrl("data_scientist", "alice", { ttl: -60 }));
    const dialog = page.getByRole("dialog", { name: "Sign in again" });
    await expect(dialog).toBeVisible();
    // Whatever the page behind the dialog asks for has been asked by now.
    await page.waitForLoadState("networkidle");
    expect(tokenless, "requests sent without a token").toEqual([]);
    await expect(dialog.getByRole("alert")).toContainText("Your sign-in has expired.");
    await expect(dialog.getByRole("alert")).toContainText("TOKEN_EXPIRED");
    await dialog.getByRole("textbox", { name: "Or paste the link here" }).fill(signInUrl("data_scientist", "alice"));
    await dialog.getByRole("button", { name: "Sign in" }).click();
    await expect(dialog).toBeHidden();
    await expect(page.getByRole("main").getByRole("alert")).toHaveCount(0);
    await expect(page.getByRole("main").getByRole("table").or(page.getByText("No models yet"))).toBeVisible();
  });

  test("a token that runs out under a half-filled form: signing in again over the page keeps it, file included", async ({ page }) => {
    // The page's clock is Playwright's: it jumps past the token's expiry instead of waiting.
    await page.clock.install();
    await openSignInLink(page, signInUrl("data_scientist", "alice", { ttl: 600 }));
    await openUploadPage(page);
    const name = await uniqueName("half-filled");
    const posts = watchUploads(page);
    await fillUploadForm(page, { name, description: "Typed before lunch.", metrics: { recall: "0.8" } });
    await chooseFile(page, filePath("model.onnx"));
    await page.clock.fastForward("15:00");
    await uploadButton(page).click();
    const dialog = page.getByRole("dialog", { name: "Sign in again" });
    await expect(dialog.getByRole("alert")).toContainText("Your sign-in has expired.");
    expect(posts.posts, "nothing sent with an expired token").toEqual([]);
    await dialog.getByRole("textbox", { name: "Or paste the link here" }).fill(signInUrl("data_scientist", "alice"));
    await dialog.getByRole("button", { name: "Sign in" }).click();
    await expect(dialog).toBeHidden();
    await expect(nameField(page)).toHaveValue(name);
    await expect(page.getByRole("textbox", { name: "Description", exact: true })).toHaveValue("Typed before lunch.");
    await expect(page.getByRole("textbox", { name: "Metric value 1" })).toHaveValue("0.8");
    await expect(page.getByText("model.onnx", { exact: true })).toBeVisible();
    await uploadButton(page).click();
    await expect(page.getByRole("status").filter({ hasText: `Uploaded ${name} v1` })).toBeVisible();
  });

  test("a token that runs out under a half-filled form: opening a fresh link keeps the fields (the file is picked again)", async ({ page }) => {
    await page.clock.install();
    await openSignInLink(page, signInUrl("data_scientist", "alice", { ttl: 600 }));
    await openUploadPage(page);
    const name = await uniqueName("draft-kept");
    await fillUploadForm(page, { name, description: "Typed before the meeting.", labels: { team: "reliability" } });
    await chooseFile(page, filePath("model.onnx"));
    await page.clock.fastForward("15:00");
    await uploadButton(page).click();
    await expect(page.getByRole("dialog", { name: "Sign in again" })).toBeVisible();
    // The link the command printed, opened in the same tab: a new page load.
    await openSignInLink(page, signInUrl("data_scientist", "alice"));
    await openUploadPage(page);
    await expect(page.getByText("Your draft was kept")).toBeVisible();
    await expect(nameField(page)).toHaveValue(name);
    await expect(page.getByRole("textbox", { name: "Description", exact: true })).toHaveValue("Typed before the meeting.");
    await expect(page.getByRole("textbox", { name: "Label value 1" })).toHaveValue("reliability");
    await chooseFile(page, filePath("model.onnx"));
    await uploadButton(page).click();
    await expect(page.getByRole("status").filter({ hasText: `Uploaded ${name} v1` })).toBeVisible();
  });
});
