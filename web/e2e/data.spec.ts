// The data pages: the assets alice may read, an asset's charts, and the CSV download, which
// the browser saves straight to disk through a signed link (/api/v1/query/downloads/{id}?link=…)
// and which must hash to the SHA-256 the app shows and the export's manifest records.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

import { expect, type Page } from "@playwright/test";

import { checkPage } from "./support/a11y";
import { apiGet } from "./support/api";
import { openSignInLink, refusal, test } from "./support/app";
import { signInUrl } from "./support/tokens";

const ASSET = "pump-001";

async function openDataPage(page: Page): Promise<void> {
  const link = page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Data" });
  await expect(link, "the navigation has no Data link: the data pages are not in this build of the app").toBeVisible();
  await link.click();
  await expect(page.getByRole("heading", { level: 1, name: "Data" })).toBeVisible();
}

test("the CSV download hashes to the SHA-256 the app shows and the manifest records", async ({ page }, testInfo) => {
  await openSignInLink(page, signInUrl("data_scientist", "alice"));
  await openDataPage(page);
  await checkPage(page, "the assets", page.getByRole("link", { name: ASSET, exact: true }), "data");

  await page.getByRole("link", { name: ASSET, exact: true }).click();
  const controls = page.getByRole("region", { name: "What to show" });
  await controls.getByText("24 h", { exact: true }).click();
  await expect(page).toHaveURL(/range=24h/);
  const exportPanel = page.getByRole("region", { name: "Export this view" });
  await checkPage(page, "an asset's charts", exportPanel.getByRole("button", { name: "Download CSV" }), "asset");

  const downloading = page.waitForEvent("download");
  await exportPanel.getByRole("button", { name: "Download CSV" }).click();
  const download = await downloading;
  const url = new URL(download.url());
  expect(url.pathname).toMatch(/^\/api\/v1\/query\/downloads\/[0-9a-f-]{36}$/);
  expect(url.searchParams.get("link")).toBeTruthy();
  const exportId = url.pathname.split("/").pop() ?? "";
  const file = testInfo.outputPath(download.suggestedFilename());
  await download.saveAs(file);
  expect(await download.failure()).toBeNull();
  const bytes = readFileSync(file);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const dataLines = bytes.toString("utf8").trimEnd().split("\n").length - 1;
  expect(dataLines).toBeGreaterThan(0);

  // What the app shows once the manifest is final.
  const done = exportPanel.getByRole("alert").filter({ hasText: "Export completed" });
  await expect(done).toBeVisible({ timeout: 30_000 });
  await expect(done.getByText(sha256, { exact: true })).toBeVisible();
  await expect(done.getByText(exportId, { exact: true })).toBeVisible();
  await expect(done).toContainText(dataLines.toLocaleString("en-GB"));
  await expect(done).toContainText(download.suggestedFilename());

  // What the server recorded: GET /api/v1/query/exports/{id}.
  const manifest = await apiGet(`query/exports/${exportId}`);
  expect(manifest.status).toBe(200);
  expect(manifest.body).toMatchObject({
    exportId,
    assetId: ASSET,
    status: "COMPLETED",
    format: "CSV",
    createdBy: "alice",
    sha256,
    rowCount: String(dataLines),
  });

  await page.goto(`/exports/${exportId}`);
  await expect(page.getByText(sha256, { exact: true })).toBeVisible();
});

test("an asset without a grant: the 403 names it", async ({ page }) => {
  await openSignInLink(page, signInUrl("data_scientist", "alice"));
  await openDataPage(page);
  await expect(page.getByRole("link", { name: "turbine-001" })).toHaveCount(0);
  await page.goto("/data/turbine-001");
  await expect(page.getByRole("heading", { level: 1, name: "turbine-001" })).toBeVisible();
  const alert = refusal(page, "You have no grant to read the asset “turbine-001”.");
  // The server's own words, and its reason.
  await expect(alert).toContainText("you have no read grant for asset 'turbine-001'");
  await expect(alert).toContainText("ASSET_NOT_GRANTED");
  await expect(alert).toContainText("HTTP 403");
});
