// Initial JavaScript (issue #13: at most 200 KB gzipped).
//
// 1. From the build (WEB_BENCH_DIST): what the first page load fetches before any lazy chunk:
//    index.html's module scripts and modulepreload links, and every module they import
//    statically, transitively (es-module-lexer: `import … from`, `export … from`, bare
//    `import "…"`; dynamic `import()` is a lazy chunk and left out). Vite's manifest is read
//    instead when the build has one (.vite/manifest.json). Sizes raw, gzip -9 (what the gateway
//    serves: it gzips each file once at level 9), gzip -6 (a typical server) and brotli.
// 2. In the browser: load `/` signed out (a new context, empty cache) on the gateway
//    (WEB_BENCH_GATEWAY) and count the JavaScript it fetched: resource timing's encodedBodySize
//    (the body as sent, gzipped) and CDP Network's encodedDataLength (with headers), each file
//    marked as in the static graph or lazy.
import { existsSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

import { CONTEXT_OPTIONS, env, envInt, log, runScript, sleep, writeResult } from "./common.mjs";

const BUDGET_BYTES = 200 * 1000;

async function lexer() {
  try {
    const mod = await import("es-module-lexer");
    await mod.init;
    return mod.parse;
  } catch {
    return null;
  }
}

/** Static imports of a module's source: relative specifiers only (a build has no others). */
function staticImports(parse, source) {
  if (parse) {
    const [imports] = parse(source);
    // d === -1: a static import or export-from; d > -1: dynamic import(); d === -2: import.meta.
    return imports.filter((i) => i.d === -1 && i.n).map((i) => i.n);
  }
  // Fallback: Rollup writes static imports as `import{…}from"./x.js"` / `import"./x.js"` and
  // re-exports as `export{…}from"./x.js"`, never `import(` for those.
  const found = [];
  const pattern = /(?:^|[;\n}])\s*(?:import|export)\s*(?:[\w$*{},\s]+?\s*from\s*)?["']([^"']+)["']/g;
  for (const match of source.matchAll(pattern)) found.push(match[1]);
  return found;
}

function sizes(bytes) {
  return {
    raw: bytes.length,
    gzip9: gzipSync(bytes, { level: 9 }).length,
    gzip6: gzipSync(bytes, { level: 6 }).length,
    brotli: brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
}

function fromManifest(dist) {
  const path = join(dist, ".vite", "manifest.json");
  if (!existsSync(path)) return null;
  const manifest = JSON.parse(readFileSync(path, "utf8"));
  const entries = Object.entries(manifest).filter(([, chunk]) => chunk.isEntry);
  const files = new Map();
  const visit = (key, via) => {
    const chunk = manifest[key];
    if (!chunk || files.has(chunk.file)) return;
    files.set(chunk.file, via);
    for (const next of chunk.imports ?? []) visit(next, chunk.file);
  };
  for (const [key, chunk] of entries) visit(key, `index.html (${chunk.file})`);
  return files;
}

function fromHtml(dist, parse) {
  const html = readFileSync(join(dist, "index.html"), "utf8");
  const roots = [];
  for (const tag of html.matchAll(/<script\b[^>]*>/g)) {
    if (!/type=["']module["']/.test(tag[0])) continue;
    const src = /src=["']([^"']+)["']/.exec(tag[0]);
    if (src) roots.push({ file: src[1], via: "index.html <script type=module>" });
  }
  for (const tag of html.matchAll(/<link\b[^>]*>/g)) {
    if (!/rel=["']modulepreload["']/.test(tag[0])) continue;
    const href = /href=["']([^"']+)["']/.exec(tag[0]);
    if (href) roots.push({ file: href[1], via: "index.html <link rel=modulepreload>" });
  }
  const css = [...html.matchAll(/<link\b[^>]*rel=["']stylesheet["'][^>]*>/g)]
    .map((tag) => /href=["']([^"']+)["']/.exec(tag[0])?.[1])
    .filter(Boolean)
    .map((href) => href.replace(/^\//, ""));
  const files = new Map();
  const queue = roots.map((r) => ({ file: r.file.replace(/^\//, ""), via: r.via }));
  while (queue.length) {
    const { file, via } = queue.shift();
    if (files.has(file)) continue;
    files.set(file, via);
    const source = readFileSync(join(dist, file), "utf8");
    for (const spec of staticImports(parse, source)) {
      if (!spec.startsWith(".") && !spec.startsWith("/")) continue;
      const next = spec.startsWith("/") ? spec.slice(1) : posix.normalize(posix.join(posix.dirname(file), spec));
      queue.push({ file: next, via: file });
    }
  }
  return { files, css };
}

async function browserLoad(browser, gateway, staticFiles) {
  const context = await browser.newContext(CONTEXT_OPTIONS);
  try {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    const requests = new Map();
    cdp.on("Network.responseReceived", (e) => {
      requests.set(e.requestId, { url: e.response.url, mimeType: e.response.mimeType, encoding: e.response.headers["content-encoding"] ?? e.response.headers["Content-Encoding"] ?? null });
    });
    cdp.on("Network.loadingFinished", (e) => {
      const r = requests.get(e.requestId);
      if (r) r.encodedDataLength = e.encodedDataLength;
    });
    await page.goto(`${gateway}/`, { waitUntil: "networkidle" });
    // The signed-out page: the app asks for a sign-in link (no token in this context).
    await page.getByRole("heading", { level: 1 }).first().waitFor({ timeout: 30_000 });
    await sleep(500);
    const heading = await page.getByRole("heading", { level: 1 }).first().textContent();
    const resources = await page.evaluate(() =>
      performance.getEntriesByType("resource").map((e) => ({
        name: e.name,
        initiatorType: e.initiatorType,
        transferSize: e.transferSize,
        encodedBodySize: e.encodedBodySize,
        decodedBodySize: e.decodedBodySize,
      })),
    );
    const cdpByUrl = new Map([...requests.values()].map((r) => [r.url, r]));
    const scripts = resources
      .filter((r) => new URL(r.name).pathname.endsWith(".js"))
      .map((r) => {
        const file = new URL(r.name).pathname.replace(/^\//, "");
        const net = cdpByUrl.get(r.name);
        return {
          file,
          static: staticFiles.has(file),
          initiatorType: r.initiatorType,
          encodedBodySize: r.encodedBodySize,
          decodedBodySize: r.decodedBodySize,
          transferSize: r.transferSize,
          cdpEncodedDataLength: net?.encodedDataLength ?? null,
          contentEncoding: net?.encoding ?? null,
        };
      });
    const sum = (list, key) => list.reduce((n, s) => n + (s[key] ?? 0), 0);
    const initial = scripts.filter((s) => s.static);
    const lazy = scripts.filter((s) => !s.static);
    return {
      url: `${gateway}/`,
      heading,
      scripts,
      staticFilesFetched: initial.length,
      staticFilesExpected: staticFiles.size,
      jsEncodedBodyBytes: { static: sum(initial, "encodedBodySize"), lazy: sum(lazy, "encodedBodySize"), all: sum(scripts, "encodedBodySize") },
      jsDecodedBodyBytes: { static: sum(initial, "decodedBodySize"), lazy: sum(lazy, "decodedBodySize"), all: sum(scripts, "decodedBodySize") },
      jsCdpEncodedDataLength: { static: sum(initial, "cdpEncodedDataLength"), lazy: sum(lazy, "cdpEncodedDataLength"), all: sum(scripts, "cdpEncodedDataLength") },
      allResources: resources.length,
    };
  } finally {
    await context.close();
  }
}

await runScript(async ({ out, browser }) => {
  const dist = env("DIST");
  const gateway = env("GATEWAY");
  const loads = envInt("BUNDLE_LOADS", 3);
  const parse = await lexer();
  const manifest = fromManifest(dist);
  const html = fromHtml(dist, parse);
  const files = manifest ?? html.files;
  const method = manifest ? "vite manifest (.vite/manifest.json)" : `index.html + static imports (${parse ? "es-module-lexer" : "regex"})`;
  const perFile = [...files.entries()].map(([file, via]) => ({ file, via, ...sizes(readFileSync(join(dist, file))) }));
  const total = { raw: 0, gzip9: 0, gzip6: 0, brotli: 0 };
  for (const f of perFile) for (const k of Object.keys(total)) total[k] += f[k];
  const css = html.css.map((file) => ({ file, ...sizes(readFileSync(join(dist, file))) }));
  log(`initial JS: ${perFile.length} files, ${total.gzip9} B gzip -9 (${method})`);

  const browserLoads = [];
  for (let i = 0; i < loads; i += 1) {
    browserLoads.push(await browserLoad(browser, gateway, new Set(files.keys())));
    log(`browser load ${String(i + 1)}: JS ${String(browserLoads.at(-1).jsEncodedBodyBytes.all)} B encoded`);
  }
  writeResult(out, {
    method,
    budgetBytes: BUDGET_BYTES,
    initialJs: { files: perFile, total },
    initialCss: css,
    browser: browserLoads,
  });
});
