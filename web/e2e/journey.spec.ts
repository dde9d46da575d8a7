// The whole journey in two browsers: alice (data scientist) signs in with a link, uploads an
// ONNX model, sees it "Pending Approval" in the models list without a reload, submits it, and
// watches its validation report turn "Passed" (the page polls the worker's report); bob
// (approver) reviews it in his queue, where Approve waits for that report, and approves it;
// alice sees "Approved". Then sign-out.
import { expect } from "@playwright/test";

import { apiGet, modelsNamed } from "./support/api";
import {
  accountButton,
  chooseFile,
  fillUploadForm,
  filePath,
  openUploadPage,
  sha256Of,
  signInNewUser,
  test,
  uniqueName,
  uploadButton,
} from "./support/app";
import { env } from "./support/env";
import { screenshot } from "./support/shots";
import { bearer, signInUrl } from "./support/tokens";

test("alice uploads and submits a model, bob approves it, alice sees it approved", async ({ page, browser }) => {
  // The whole journey, including up to 90 s for the validation worker's report on a busy
  // machine: more than the 60 s a test gets by default.
  test.setTimeout(180_000);
  const name = await uniqueName("pump-bearing-risk");
  const description = "Random forest on 7 days of bearing temperature and flow; predicts a failure within 48 h.";
  const comment = "AUC 0.91 on a held-out pump; ready for the pilot line.";
  const sha256 = sha256Of(filePath("model.onnx"));

  await test.step("alice signs in by opening her link; the token leaves the address bar at once", async () => {
    const link = signInUrl("data_scientist", "alice");
    await page.goto(link);
    await expect(accountButton(page)).toBeVisible();
    await expect(page).toHaveURL(`${env.gateway}/models`);
    expect(page.url()).not.toContain("token");
    // Nothing in localStorage; the token only in this tab's sessionStorage.
    expect(await page.evaluate(() => Object.keys(window.localStorage))).toEqual([]);
    expect(await page.evaluate(() => window.sessionStorage.getItem("mlplane.token"))).toBe(link.split("#token=")[1]);
    // The history entry the link made holds no token either: going back leaves the app.
    expect(await page.evaluate(() => window.history.length)).toBeLessThanOrEqual(2);
  });

  await test.step("the header shows who is signed in and their roles; the navigation fits the role", async () => {
    await expect(accountButton(page)).toHaveAccessibleName("Signed in as alice: account menu");
    const banner = page.getByRole("banner");
    await expect(banner.getByText("alice", { exact: true })).toBeVisible();
    await expect(banner.getByText("Data Scientist", { exact: true })).toBeVisible();
    await accountButton(page).click();
    const menu = page.getByRole("menu");
    await expect(menu.getByText("Tenant demo")).toBeVisible();
    await expect(menu.getByText("data_scientist", { exact: true })).toBeVisible();
    await page.keyboard.press("Escape");
    await expect(menu).toBeHidden();
    const nav = page.getByRole("navigation", { name: "Main" });
    await expect(nav.getByRole("link", { name: "Upload a model" })).toBeVisible();
    await expect(nav.getByRole("link", { name: "Review queue" })).toHaveCount(0);
  });

  await test.step("alice uploads an ONNX file with a name, description, metric and label", async () => {
    // Marks this page load: a reload or a new document would lose it.
    await page.evaluate(() => {
      (window as unknown as { journeyMark?: string }).journeyMark = "same page";
    });
    await openUploadPage(page);
    await fillUploadForm(page, {
      name,
      description,
      metrics: { roc_auc: "0.91" },
      labels: { team: "reliability" },
    });
    await chooseFile(page, filePath("model.onnx"));
    await expect(page.getByText("model.onnx", { exact: true })).toBeVisible();
    await uploadButton(page).click();
    const done = page.getByRole("status").filter({ hasText: `Uploaded ${name} v1` });
    await expect(done).toBeVisible();
    await expect(done).toContainText("Pending Approval");
  });

  await test.step("the models list shows the new version as Pending Approval, without a reload", async () => {
    await page.getByRole("link", { name: "See the models" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Models" })).toBeVisible();
    const row = page.getByRole("row").filter({ has: page.getByRole("link", { name, exact: true }) });
    await expect(row).toContainText("Pending Approval");
    await expect(row).toContainText("v1");
    await expect(row).toContainText("alice");
    expect(await page.evaluate(() => (window as unknown as { journeyMark?: string }).journeyMark)).toBe("same page");
    await screenshot(page, "models");
    await page.setViewportSize({ width: 800, height: 800 });
    await expect(row).toContainText("Pending Approval");
    await screenshot(page, "models-800px");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await test.step("alice opens the version and submits it with a comment: In Review", async () => {
    await page.getByRole("link", { name, exact: true }).click();
    await expect(page.getByRole("heading", { level: 1, name })).toBeVisible();
    await screenshot(page, "model");
    await page.getByRole("link", { name: "v1", exact: true }).click();
    const heading = page.getByRole("heading", { level: 1 });
    await expect(heading).toContainText(name);
    await expect(heading).toContainText("Pending Approval");
    await expect(page.getByRole("region", { name: "Metrics" })).toContainText("roc_auc");
    await expect(page.getByRole("region", { name: "Metrics" })).toContainText("0.91");
    await expect(page.getByRole("region", { name: "Labels" })).toContainText("team=reliability");
    await expect(page.getByRole("region", { name: "Overview" })).toContainText(sha256);
    await screenshot(page, "version");
    await page.getByRole("button", { name: "Submit for approval" }).click();
    const dialog = page.getByRole("dialog", { name: `Submit ${name} v1 for approval` });
    await dialog.getByRole("textbox", { name: "Note for the reviewer" }).fill(comment);
    await dialog.getByRole("button", { name: "Submit for approval" }).click();
    await expect(dialog).toBeHidden();
    await expect(heading).toContainText("In Review");
  });

  await test.step("the validation worker's report turns Passed on the open page, without a reload", async () => {
    const validation = page.getByRole("region", { name: "Validation" });
    await expect(validation).toBeVisible();
    // Polled every 2 s while PENDING or RUNNING: the worker runs the model in ONNX Runtime in
    // a sandboxed child process, which takes a few seconds on a busy machine.
    await expect(validation.getByRole("status")).toContainText("Passed", { timeout: 90_000 });
    const runtime = validation.getByRole("region", { name: "ONNX Runtime check" });
    await expect(runtime).toContainText("The model loaded and ran.");
    await expect(runtime).toContainText(/Latency per batch of \d+/);
    const outputs = runtime.getByRole("table", { name: "Outputs of the check's inference" });
    await expect(outputs.getByRole("cell", { name: "Y", exact: true })).toBeVisible();
    // No evaluation set was uploaded: the claimed roc_auc is shown as not verified.
    await expect(validation.getByRole("region", { name: "Metric verification" })).toContainText(
      "No evaluation set: claimed metrics are not verified.",
    );
    await expect(validation.getByRole("region", { name: "Compatibility" })).toContainText(
      "No approved version of this model to compare with.",
    );
    expect(await page.evaluate(() => (window as unknown as { journeyMark?: string }).journeyMark)).toBe("same page");
    await screenshot(page, "version-validated");
  });

  const bob = await signInNewUser(browser, "model_approver", "bob");
  try {
    await test.step("bob's review queue shows the request with its metrics, signature and SHA-256", async () => {
      const queue = bob.page;
      await expect(queue).toHaveURL(`${env.gateway}/approvals`);
      await expect(queue.getByRole("heading", { level: 1, name: "Review queue" })).toBeVisible();
      const nav = queue.getByRole("navigation", { name: "Main" });
      await expect(nav.getByRole("link", { name: "Review queue" })).toBeVisible();
      await expect(nav.getByRole("link", { name: "Upload a model" })).toHaveCount(0);
      const card = queue.getByRole("article", { name: `${name} v1` });
      await expect(card).toContainText("Submitted by alice");
      await expect(card).toContainText(`“${comment}”`);
      await expect(card).toContainText("roc_auc");
      await expect(card).toContainText("0.91");
      await expect(card).toContainText("in X: FLOAT");
      await expect(card).toContainText("out Y: FLOAT");
      await expect(card.getByText(sha256, { exact: true })).toBeVisible();
      await screenshot(queue, "review-queue");
    });

    await test.step("bob's card shows the passed validation; only then may he approve", async () => {
      const card = bob.page.getByRole("article", { name: `${name} v1` });
      await expect(card).toContainText("Passed", { timeout: 30_000 });
      await expect(card).toContainText("No evaluation set: claimed metrics are not verified · No approved version to compare with");
      await expect(card.getByRole("button", { name: "Approve" })).toBeEnabled();
      await expect(card.getByText(/^Validation has not passed/)).toHaveCount(0);
      // The page and the server agree (GET …/versions/1/validation).
      const [model] = await modelsNamed(name);
      const report = await apiGet(`models/${model?.modelId ?? ""}/versions/1/validation`, bearer("model_approver", "bob"));
      expect(report.status).toBe(200);
      expect(report.body.state).toBe("PASSED");
    });

    await test.step("bob approves it", async () => {
      const queue = bob.page;
      const card = queue.getByRole("article", { name: `${name} v1` });
      await card.getByRole("button", { name: "Approve" }).click();
      const dialog = queue.getByRole("dialog", { name: `Approve ${name} v1` });
      await dialog.getByRole("textbox", { name: "Comment" }).fill("Checked the metrics against v0 of the pilot.");
      await dialog.getByRole("button", { name: "Approve" }).click();
      await expect(dialog).toBeHidden();
      await expect(card).toHaveCount(0);
      await expect(queue.getByText(`${name} v1 is Approved.`)).toBeVisible();
    });
  } finally {
    await bob.context.close();
  }

  await test.step("alice sees Approved", async () => {
    // The app does not poll: alice's open page learns of bob's decision when it loads again.
    await page.reload();
    await expect(page.getByRole("heading", { level: 1 })).toContainText("Approved");
    await expect(page.getByRole("region", { name: "Status history" })).toContainText("bob");
    const [model] = await modelsNamed(name);
    expect(model?.latestVersion).toBe("1");
    const version = await apiGet(`models/${model?.modelId ?? ""}/versions/1`, bearer("data_scientist", "alice"));
    expect(version.body.status).toBe("APPROVED");
    expect(version.body.sha256).toBe(sha256);
  });

  await test.step("alice signs out: the token is gone and the app asks to sign in", async () => {
    await accountButton(page).click();
    await page.getByRole("menuitem", { name: "Sign out" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Sign in to mlplane" })).toBeVisible();
    expect(await page.evaluate(() => Object.keys(window.sessionStorage).filter((k) => k.startsWith("mlplane.")))).toEqual([]);
    await screenshot(page, "signed-out");
    await page.goto("/models");
    await expect(page.getByRole("heading", { level: 1, name: "Sign in to mlplane" })).toBeVisible();
    await expect(accountButton(page)).toHaveCount(0);
  });
});
