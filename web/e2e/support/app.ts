// What the tests do in the app, as a user does it: sign in by opening a link, fill the upload
// form, choose a file through the file chooser.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { type Browser, type BrowserContext, expect, type Locator, type Page, test as base } from "@playwright/test";

import { modelsNamed } from "./api";
import { env } from "./env";
import { type MintOptions, type Role, signInUrl } from "./tokens";

/** The project's context options (a context made with browser.newContext() gets none). */
export function contextOptions(baseURL: string | undefined) {
  return {
    viewport: { width: 1280, height: 800 },
    locale: "en-GB",
    timezoneId: "Europe/Berlin",
    acceptDownloads: true,
    ...(baseURL ? { baseURL } : {}),
  };
}

/**
 * A model name nobody used yet: `name` itself on a fresh stack (what the screenshots show),
 * with a suffix when an earlier test or run took it (a stack kept between runs by hand).
 */
export async function uniqueName(name: string): Promise<string> {
  return (await modelsNamed(name)).length === 0 ? name : suffixed(name);
}

/** `name` with a suffix no other run used (for a stack the dev token cannot look into). */
export function suffixed(name: string): string {
  const stamp = Date.now().toString(36);
  const random = Math.floor(Math.random() * 36 ** 4).toString(36);
  return `${name}-${stamp}${random}`;
}

export function filePath(name: "model.onnx" | "pickle.onnx" | "model.pkl"): string {
  return join(env.files, name);
}

export function sha256Of(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** The header's account button, which names who is signed in. */
export function accountButton(page: Page): Locator {
  return page.getByRole("button", { name: /^Signed in as .*: account menu$/ });
}

/** Opens a sign-in link in the page and waits until the app shows who is signed in. */
export async function openSignInLink(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await expect(accountButton(page)).toBeVisible();
}

/** A new browser context (a separate user: its own sessionStorage), signed in. */
export async function signInNewUser(
  browser: Browser,
  role: Role,
  subject: string,
  options: MintOptions = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext(contextOptions(env.gateway));
  await withoutFsAccessPicker(context);
  const page = await context.newPage();
  await openSignInLink(page, signInUrl(role, subject, options));
  return { context, page };
}

export interface UploadFields {
  name: string;
  description?: string;
  metrics?: Record<string, string>;
  labels?: Record<string, string>;
}

export function nameField(page: Page): Locator {
  return page.getByRole("textbox", { name: "Name", exact: true });
}

export function uploadButton(page: Page): Locator {
  return page.getByRole("button", { name: "Upload", exact: true });
}

/** Fills the upload form's text fields (metrics and labels as added rows). */
export async function fillUploadForm(page: Page, fields: UploadFields): Promise<void> {
  await nameField(page).fill(fields.name);
  if (fields.description !== undefined) {
    await page.getByRole("textbox", { name: "Description", exact: true }).fill(fields.description);
  }
  let i = 0;
  for (const [key, value] of Object.entries(fields.metrics ?? {})) {
    i += 1;
    await page.getByRole("button", { name: "Add a metric" }).click();
    await page.getByRole("textbox", { name: `Metric name ${String(i)}` }).fill(key);
    await page.getByRole("textbox", { name: `Metric value ${String(i)}` }).fill(value);
  }
  i = 0;
  for (const [key, value] of Object.entries(fields.labels ?? {})) {
    i += 1;
    await page.getByRole("button", { name: "Add a label" }).click();
    await page.getByRole("textbox", { name: `Label key ${String(i)}` }).fill(key);
    await page.getByRole("textbox", { name: `Label value ${String(i)}` }).fill(value);
  }
}

export function chooseFileButton(page: Page): Locator {
  return page.getByRole("button", { name: "Choose a file…" });
}

/** Chooses a file through the "Choose a file…" button and the browser's file chooser. */
export async function chooseFile(page: Page, file: string | { name: string; mimeType: string; buffer: Buffer }): Promise<void> {
  const chooser = page.waitForEvent("filechooser");
  await chooseFileButton(page).click();
  await (await chooser).setFiles(file);
}

/** Goes to the upload page through the navigation (no reload). */
export async function openUploadPage(page: Page): Promise<void> {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Upload a model" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Upload a model" })).toBeVisible();
}

/**
 * Records the requests that would send a model (POST /api/v1/models), to show that the app
 * refused a file before a byte was sent.
 */
export function watchUploads(page: Page): { posts: string[] } {
  const seen = { posts: [] as string[] };
  page.on("request", (request) => {
    if (request.method() === "POST" && new URL(request.url()).pathname === "/api/v1/models") {
      seen.posts.push(request.url());
    }
  });
  return seen;
}

/** The red alert the app shows for a refusal, with its sentence, reason and HTTP status. */
export function refusal(page: Page, sentence: string): Locator {
  return page.getByRole("alert").filter({ hasText: sentence });
}

/**
 * Chromium has the File System Access API, and the app's Dropzone (Mantine's default
 * `useFsAccessApi`) then opens `window.showOpenFilePicker()` instead of the file input's
 * chooser. Playwright cannot answer that picker, so the tests run the app as Firefox and
 * Safari see it, without the API: the Dropzone falls back to the file input, whose chooser
 * Playwright drives. (Recommended to the app: `useFsAccessApi={false}`, one path everywhere.)
 */
export async function withoutFsAccessPicker(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    delete (window as unknown as { showOpenFilePicker?: unknown }).showOpenFilePicker;
  });
}

/** Playwright's `test` whose page runs without the File System Access picker (see above). */
export const test = base.extend({
  context: async ({ context }, provide) => {
    await withoutFsAccessPicker(context);
    await provide(context);
  },
});
