// A screenshot of a page, for docs/screenshots (chosen by hand from a run's folder).
import { join } from "node:path";

import type { Page } from "@playwright/test";

import { env } from "./env";

export async function screenshot(page: Page, name: string): Promise<void> {
  const dir = env.screenshots;
  if (!dir) return;
  // Nothing moving, no blinking caret: the same page gives the same picture.
  await page.screenshot({ path: join(dir, `${name}.png`), animations: "disabled", caret: "hide" });
}
