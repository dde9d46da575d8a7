// Accessibility: axe-core on every page of the app (no serious or critical violation), an
// upload done with the keyboard alone, and the file button under a mouse. Each page's
// screenshot (1280×800) is saved on the way.
import { expect, type Locator, type Page } from "@playwright/test";

import { checkPage } from "./support/a11y";
import {
  chooseFileButton,
  contextOptions,
  filePath,
  nameField,
  openSignInLink,
  openUploadPage,
  test,
  uniqueName,
  withoutFsAccessPicker,
} from "./support/app";
import { env } from "./support/env";
import { exportCsv, type SeededVersion, submitForApproval, uploadModel } from "./support/seed";
import { signInUrl } from "./support/tokens";

test.describe("axe on every page", () => {
  let pending: SeededVersion;
  let submitted: SeededVersion;
  let exportId: string;

  test.beforeAll(async () => {
    pending = await uploadModel(await uniqueName("bearing-wear-classifier"), {
      description: "Gradient-boosted trees on vibration and bearing temperature; flags wear 3 days ahead.",
      metrics: { roc_auc: 0.93, recall: 0.81, precision: 0.77 },
      labels: { team: "reliability", line: "pilot" },
    });
    submitted = await uploadModel(await uniqueName("cavitation-detector"), {
      description: "Detects cavitation from discharge pressure and flow ripple.",
      metrics: { f1: 0.87, roc_auc: 0.95 },
      labels: { team: "process" },
    });
    await submitForApproval(submitted, "F1 0.87 on four pumps over 30 days; no drift on pump-008.");
    exportId = await exportCsv("pump-001");
  });

  test("signed out", async ({ page }) => {
    await page.goto("/");
    await checkPage(page, "the sign-in page", page.getByRole("heading", { level: 1, name: "Sign in to mlplane" }), "sign-in");
  });

  test("a data scientist's pages", async ({ page }) => {
    await openSignInLink(page, signInUrl("data_scientist", "alice"));
    await checkPage(page, "models", page.getByRole("link", { name: pending.name, exact: true }));

    await page.goto(`/models/${pending.modelId}`);
    await checkPage(page, "a model", page.getByRole("heading", { level: 1, name: pending.name }));

    await page.goto(`/models/${pending.modelId}/versions/${pending.version}`);
    await checkPage(page, "a version", page.getByRole("region", { name: "ONNX signature" }).getByRole("table").first());

    await page.getByRole("button", { name: "Submit for approval" }).click();
    const dialog = page.getByRole("dialog", { name: /^Submit .* for approval$/ });
    // Mantine fades a modal in (200 ms): axe blends a fading element's colours with what is
    // behind it, so it checks the dialog once the fade is over.
    await expect(dialog).toHaveCSS("opacity", "1");
    await checkPage(page, "the submit dialog", dialog.getByRole("textbox", { name: "Note for the reviewer" }), "submit-dialog");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await expect(dialog).toBeHidden();

    await openUploadPage(page);
    await checkPage(page, "the upload form", nameField(page), "upload");
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await checkPage(page, "the upload form with its messages", page.getByText("Choose the .onnx file to upload."), "upload-messages");

    await page.goto("/exports");
    await checkPage(page, "my exports", page.getByRole("link", { name: "pump-001" }).first(), "exports");

    await page.goto(`/exports/${exportId}`);
    await checkPage(page, "an export", page.getByRole("heading", { level: 1, name: "Export of pump-001" }), "export");

    await page.goto("/no/such/page");
    await checkPage(page, "not found", page.getByRole("heading", { level: 1, name: "Page not found" }));
  });

  test("an approver's pages", async ({ page }) => {
    await openSignInLink(page, signInUrl("model_approver", "bob"));
    const card = page.getByRole("article", { name: `${submitted.name} v${submitted.version}` });
    await checkPage(page, "the review queue", card.getByRole("button", { name: "Approve" }));

    await card.getByRole("button", { name: "Reject" }).click();
    const dialog = page.getByRole("dialog", { name: /^Reject / });
    await dialog.getByRole("button", { name: "Reject" }).click();
    await checkPage(page, "the reject dialog with its message", dialog.getByRole("textbox", { name: "Why it is rejected" }), "reject-dialog");
    await dialog.getByRole("button", { name: "Cancel" }).click();

    await page.goto(`/models/${submitted.modelId}/versions/${submitted.version}`);
    await checkPage(page, "a version, as an approver", page.getByRole("button", { name: "Archive" }));

  });

  test("the sign-in-again dialog", async ({ page }) => {
    await page.goto(signInUrl("data_scientist", "alice", { ttl: -60 }));
    // The page behind waits for the new token (its requests are held, not refused): it
    // stays in its loading state under the dialog.
    await checkPage(page, "the sign-in-again dialog", page.getByRole("dialog", { name: "Sign in again" }), undefined, { loaded: false });
  });
});

/** Presses `key` until `target` has the focus (at most `max` times). */
async function tabTo(page: Page, target: Locator, key: "Tab" | "Shift+Tab" = "Tab", max = 40): Promise<void> {
  for (let i = 0; i <= max; i += 1) {
    if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) return;
    await page.keyboard.press(key);
  }
  throw new Error(`${String(max)} × ${key} did not reach ${target.toString()}`);
}

/** The focused element shows where the focus is (an outline or a ring). */
async function expectVisibleFocus(target: Locator): Promise<void> {
  const ring = await target.evaluate((el) => {
    const style = getComputedStyle(el);
    return { outline: style.outlineStyle, width: style.outlineWidth, shadow: style.boxShadow };
  });
  expect(ring.outline !== "none" && ring.width !== "0px" ? "outline" : ring.shadow !== "none" ? "shadow" : "none").not.toBe("none");
}

test("a keyboard-only upload: Tab, Shift+Tab, Enter and Space", async ({ page }) => {
  const name = await uniqueName("motor-winding-overheat");
  await openSignInLink(page, signInUrl("data_scientist", "alice"));
  await expect(page.getByRole("heading", { level: 1, name: "Models" })).toBeFocused();

  const nav = page.getByRole("navigation", { name: "Main" });
  await tabTo(page, nav.getByRole("link", { name: "Upload a model" }), "Shift+Tab");
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { level: 1, name: "Upload a model" })).toBeFocused();

  await tabTo(page, nameField(page));
  await page.keyboard.type(name);
  await page.keyboard.press("Tab");
  await expect(page.getByRole("textbox", { name: "Description", exact: true })).toBeFocused();
  await page.keyboard.type("Logistic regression on motor current and winding temperature; typed without a mouse.");

  await tabTo(page, chooseFileButton(page));
  await expectVisibleFocus(chooseFileButton(page));
  const chooser = page.waitForEvent("filechooser");
  await page.keyboard.press("Space");
  await (await chooser).setFiles(filePath("model.onnx"));
  await expect(page.getByText("model.onnx", { exact: true })).toBeVisible();

  const addMetric = page.getByRole("button", { name: "Add a metric" });
  await tabTo(page, addMetric);
  await page.keyboard.press("Enter");
  await tabTo(page, page.getByRole("textbox", { name: "Metric name 1" }), "Shift+Tab");
  await page.keyboard.type("roc_auc");
  await page.keyboard.press("Tab");
  await expect(page.getByRole("textbox", { name: "Metric value 1" })).toBeFocused();
  await page.keyboard.type("0.9");

  const upload = page.getByRole("button", { name: "Upload", exact: true });
  await tabTo(page, upload);
  await expectVisibleFocus(upload);
  await page.keyboard.press("Enter");
  const done = page.getByRole("status").filter({ hasText: `Uploaded ${name} v1` });
  await expect(done).toBeVisible();
  await expect(done).toBeFocused();

  await tabTo(page, done.getByRole("link", { name: "Open the version to submit it" }));
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { level: 1 })).toContainText("Pending Approval");
  await expect(page.getByRole("region", { name: "Metrics" })).toContainText("roc_auc");
});

test("a mouse user can press Choose a file…", async ({ browser }) => {
  // Mantine's Dropzone gives its inner element `pointer-events: none` unless
  // `enablePointerEvents` is set: the click would land on the Dropzone's root, which ignores
  // clicks (activateOnClick={false}), and a mouse user could only drop a file.
  const context = await browser.newContext(contextOptions(env.gateway));
  await withoutFsAccessPicker(context);
  const page = await context.newPage();
  try {
    await openSignInLink(page, signInUrl("data_scientist", "alice"));
    await openUploadPage(page);
    const button = chooseFileButton(page);
    const box = await button.boundingBox();
    expect(box).not.toBeNull();
    const centre = { x: (box?.x ?? 0) + (box?.width ?? 0) / 2, y: (box?.y ?? 0) + (box?.height ?? 0) / 2 };
    const hit = await page.evaluate(({ x, y }) => document.elementFromPoint(x, y)?.closest("button")?.textContent ?? null, centre);
    expect(hit, "what a click in the middle of the button lands on").toBe("Choose a file…");
    const chooser = page.waitForEvent("filechooser");
    await page.mouse.click(centre.x, centre.y);
    await (await chooser).setFiles(filePath("model.onnx"));
    await expect(page.getByText("model.onnx", { exact: true })).toBeVisible();
  } finally {
    await context.close();
  }
});
