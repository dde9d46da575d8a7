// TypeScript from the contracts in ../protos: `npm run generate` (from any folder:
// `npm --prefix web run generate`). buf runs the local protoc-gen-es plugin with
// buf.gen.yaml and writes src/gen (or <outBase>/src/gen when given an argument, which
// the staleness test uses). No network: both tools come from node_modules.
import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Generate into `${outBase}/src/gen` (default: web/src/gen). */
export function generate(outBase = webDir) {
  const buf = join(webDir, "node_modules", ".bin", "buf");
  execFileSync(buf, ["generate", "--template", "buf.gen.yaml", "-o", outBase], {
    cwd: webDir,
    stdio: ["ignore", "inherit", "inherit"],
  });
  return join(outBase, "src", "gen");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = generate(process.argv[2] ? resolve(process.argv[2]) : webDir);
  console.log(`generated ${out}`);
}
