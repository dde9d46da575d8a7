// src/gen is generated from ../protos (`npm run generate`) and committed: this fails when
// the contracts changed and nobody regenerated.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { generate, webDir } from "../scripts/generate.mjs";

function files(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.set(relative(root, path), readFileSync(path, "utf8"));
    }
  };
  walk(root);
  return out;
}

describe("src/gen", () => {
  const temp = mkdtempSync(join(tmpdir(), "mlplane-gen-"));
  afterAll(() => {
    rmSync(temp, { recursive: true, force: true });
  });

  it("matches what the contracts generate (run `npm run generate` when this fails)", () => {
    const fresh = files(generate(temp));
    const committed = files(join(webDir, "src", "gen"));
    expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
    for (const [path, text] of fresh) {
      expect(committed.get(path), `src/gen/${path} is stale: run npm run generate`).toBe(text);
    }
  }, 60_000);
});
