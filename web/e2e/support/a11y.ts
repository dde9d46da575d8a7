// axe-core on a page: no serious or critical violation of WCAG 2.x A/AA or axe's best
// practices.
import AxeBuilder from "@axe-core/playwright";
import { expect, type Locator, type Page, test } from "@playwright/test";

import { screenshot } from "./shots";

export const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];

interface AxeNode {
  html: string;
  target: unknown[];
  failureSummary?: string;
}


function describe(id: string, impact: string, help: string, nodes: AxeNode[]): string {
  const lines = nodes
    .slice(0, 5)
    .map((n) => `    ${n.target.map(String).join(" ")}: ${n.failureSummary?.replace(/\s+/g, " ") ?? ""}`)
    .join("\n");
  return `${impact} ${id}: ${help}\n${lines}`;
}

/** Serious and critical violations, each with its first elements and axe's summary. */
export async function seriousViolations(page: Page): Promise<string[]> {
  const builder = new AxeBuilder({ page }).options({ resultTypes: ["violations"] });
  const results = await builder.withTags(AXE_TAGS).analyze();
  const found: string[] = [];
  for (const v of results.violations) {
    if (v.impact !== "serious" && v.impact !== "critical") continue;
    found.push(describe(v.id, v.impact, v.help, v.nodes));
  }
  return found;
}

/**
 * Waits until the page shows `ready` and (unless `loaded: false`) nothing is loading any more, runs axe (a soft
 * check: the test goes on to the next page and reports every page's violations at the end),
 * and saves the page's screenshot as `shot`.
 */
export async function checkPage(
  page: Page,
  what: string,
  ready: Locator,
  shot?: string,
  { loaded = true }: { loaded?: boolean } = {},
): Promise<void> {
  await expect(ready).toBeVisible();
  if (loaded) {
    await expect(page.getByRole("status", { name: /^Loading/ })).toHaveCount(0);
    await expect(page.getByLabel(/^Loading/)).toHaveCount(0);
  }
  await test.step(`axe: ${what}`, async () => {
    expect.soft(await seriousViolations(page), `axe: serious or critical violations on ${what}`).toEqual([]);
  });
  if (shot) await screenshot(page, shot);
}
