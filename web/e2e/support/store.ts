// The dev stack's folder object store, seen from the test: what files it holds, and a way to
// take it away for the "object store down" test.
//
// The services run as the same user as the tests (root, here), for whom a folder's mode bits
// change nothing: `chmod 0500` would not stop the registry writing. So the store is made
// unusable the way a missing mount or a dead disk would be: its folder is moved aside and a
// plain file put in its place (mkdir and open under it fail with ENOTDIR, an OSError, which
// services/models/object_store.py turns into 503 OBJECT_STORE_UNAVAILABLE).
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

import { env } from "./env";

/** Every file under the store (also its `.incoming` temporaries), as paths relative to it. */
export function storeFiles(): string[] {
  const root = env.storeDir;
  if (!existsSync(root) || !statSync(root).isDirectory()) return [];
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else found.push(relative(root, path));
    }
  };
  walk(root);
  return found.sort();
}

const aside = () => `${env.storeDir}.aside`;

export function breakStore(): void {
  const root = env.storeDir;
  if (!existsSync(root)) mkdirSync(root, { recursive: true });
  renameSync(root, aside());
  writeFileSync(root, "not a folder: the object store is down for a test\n");
}

export function restoreStore(): void {
  const root = env.storeDir;
  if (!existsSync(aside())) return;
  rmSync(root, { force: true });
  renameSync(aside(), root);
}
