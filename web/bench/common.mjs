// What the browser-side benchmark scripts share: the configuration that bench/web_bench.py
// hands them in WEB_BENCH_* variables, Debian's Chromium launched through Playwright, the
// renderer's memory (CDP and /proc), statistics and the JSON each script writes.
//
// Every script is `node web/bench/<name>.mjs OUT.json`: it writes its figures to OUT.json and
// logs progress to stderr. It starts one browser and closes it on every way out (an error,
// SIGINT, SIGTERM); Playwright also kills the browser if node itself dies.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { extname, join, normalize } from "node:path";

import { chromium } from "playwright";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A required WEB_BENCH_* variable. */
export function env(name, fallback) {
  const value = process.env[`WEB_BENCH_${name}`];
  if (value !== undefined && value !== "") return value;
  if (fallback !== undefined) return fallback;
  throw new Error(`WEB_BENCH_${name} is not set (bench/web_bench.py sets it)`);
}

export function envInt(name, fallback) {
  const value = Number.parseInt(env(name, String(fallback)), 10);
  if (!Number.isFinite(value)) throw new Error(`WEB_BENCH_${name} is not a number`);
  return value;
}

export function log(message) {
  const now = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[${now}] ${message}\n`);
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- statistics ------------------------------------------------------------------------
/** Linear interpolation between closest ranks, as numpy.percentile does by default. */
export function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
}

export function stats(values) {
  const clean = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  if (!clean.length) return null;
  return {
    n: clean.length,
    median: percentile(clean, 50),
    p95: percentile(clean, 95),
    min: Math.min(...clean),
    max: Math.max(...clean),
  };
}

// --- the browser -----------------------------------------------------------------------
/** Chromium, and a promise-returning close that is safe to call more than once. */
export async function launch() {
  const browser = await chromium.launch({
    executablePath: env("CHROMIUM", "/usr/bin/chromium"),
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await browser.close().catch(() => undefined);
  };
  const onSignal = (signal) => {
    log(`${signal}: closing the browser`);
    void close().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return { browser, close };
}

/** The e2e suite's context options: a laptop-sized window, a fixed locale and zone. */
export const CONTEXT_OPTIONS = {
  viewport: { width: 1280, height: 800 },
  locale: "en-GB",
  timezoneId: "Europe/Berlin",
};

/**
 * Chromium has the File System Access API, and Mantine's Dropzone then opens
 * showOpenFilePicker() instead of the file input's chooser, which Playwright cannot answer;
 * without the API (as in Firefox and Safari) the Dropzone uses the file input.
 */
export async function withoutFsAccessPicker(context) {
  await context.addInitScript(() => {
    delete window.showOpenFilePicker;
  });
}

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".json": "application/json" };

/**
 * For A/B runs of an app change against the same stack: the app's own files (not /api/, not
 * /config.json) come from another build (`dist`) through the browser's request interception.
 * Pages that are not files get that build's index.html, as from the gateway.
 */
export async function serveAppFrom(context, gateway, dist) {
  const origin = new URL(gateway).origin;
  await context.route(
    (url) => url.origin === origin && !url.pathname.startsWith("/api/") && url.pathname !== "/config.json",
    async (route) => {
      const path = normalize(join(dist, decodeURIComponent(new URL(route.request().url()).pathname)));
      const file = path.startsWith(dist) && existsSync(path) && statSync(path).isFile() ? path : join(dist, "index.html");
      await route.fulfill({ status: 200, body: readFileSync(file), contentType: TYPES[extname(file)] ?? "application/octet-stream" });
    },
  );
}

/** Opens a dev sign-in link and waits until the app shows who is signed in. */
export async function signIn(page, url) {
  await page.goto(url);
  await page.getByRole("button", { name: /^Signed in as .*: account menu$/ }).waitFor({ timeout: 30_000 });
}

// --- memory: CDP and /proc -----------------------------------------------------------------
function readProc(pid, file) {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return null;
  }
}

export function rssBytes(pid) {
  const status = readProc(pid, "status");
  const match = status && /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : null;
}

/** Chromium's processes under this node process: pid, type (browser, renderer, …). */
export function chromiumProcesses() {
  const parents = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProc(name, "stat");
    if (!stat) continue;
    // pid (comm) state ppid …: comm may hold spaces and parentheses, so split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    parents.set(Number(name), Number(rest[1]));
  }
  const mine = new Set([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!mine.has(pid) && mine.has(ppid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  mine.delete(process.pid);
  const found = [];
  for (const pid of mine) {
    // Chromium rewrites its children's command lines into one space-separated string.
    const cmdline = (readProc(pid, "cmdline") ?? "").split(/[\0 ]/);
    if (!cmdline[0]?.includes("chrom")) continue;
    const typeArg = cmdline.find((a) => a.startsWith("--type="));
    const subType = cmdline.find((a) => a.startsWith("--utility-sub-type="));
    let type = typeArg ? typeArg.slice("--type=".length) : "browser";
    if (subType) type = `utility:${subType.slice("--utility-sub-type=".length)}`;
    // Chromium's own UI (headless keeps one) is not a page's renderer.
    if (type === "renderer" && cmdline.includes("--top-chrome-webui")) type = "renderer:webui";
    found.push({ pid, type });
  }
  return found;
}

/** A thread's time on a CPU and waiting for one (ns, /proc/<pid>/task/<tid>/schedstat). */
export function schedstat(pid, tid = pid) {
  const text = readProc(pid, `task/${String(tid)}/schedstat`);
  if (!text) return null;
  const [cpuNs, waitNs] = text.trim().split(" ").map(Number);
  return { cpuNs, waitNs };
}

/** Now on CLOCK_MONOTONIC in µs: Chromium's TimeTicks and V8's profiles use the same clock. */
export function monotonicUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Where the page's performance.now() starts on CLOCK_MONOTONIC (µs), from the quickest of
 * `trips` round trips; `tripUs` bounds the error.
 */
export async function pageClockOrigin(page, trips = 8) {
  let best = null;
  for (let i = 0; i < trips; i += 1) {
    const before = monotonicUs();
    const now = await page.evaluate(() => performance.now());
    const after = monotonicUs();
    const trip = after - before;
    if (!best || trip < best.tripUs) best = { tripUs: trip, originUs: before + trip / 2 - now * 1000 };
  }
  return best;
}

/**
 * Samples a renderer's main thread (the process's first thread, CrRendererMain) every ~2 ms:
 * CPU time and run-queue wait, so a window of wall time splits into work and waiting for a core.
 */
export class MainThreadSampler {
  constructor(pid) {
    this.pid = pid;
    this.samples = [];
    this.timer = null;
  }

  start() {
    this.samples = [];
    const take = () => {
      const s = schedstat(this.pid);
      if (s) this.samples.push({ us: monotonicUs(), ...s });
    };
    take();
    this.timer = setInterval(take, 2);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const s = schedstat(this.pid);
    if (s) this.samples.push({ us: monotonicUs(), ...s });
  }

  at(us, key) {
    const list = this.samples;
    if (!list.length || us < list[0].us || us > list[list.length - 1].us) return null;
    let i = 1;
    while (i < list.length && list[i].us < us) i += 1;
    const a = list[i - 1];
    const b = list[Math.min(i, list.length - 1)];
    if (b.us === a.us) return a[key];
    return a[key] + ((b[key] - a[key]) * (us - a.us)) / (b.us - a.us);
  }

  /** CPU and run-queue wait (ms) of the main thread between two monotonic times (µs). */
  between(fromUs, toUs) {
    const cpu0 = this.at(fromUs, "cpuNs");
    const cpu1 = this.at(toUs, "cpuNs");
    const wait0 = this.at(fromUs, "waitNs");
    const wait1 = this.at(toUs, "waitNs");
    if ([cpu0, cpu1, wait0, wait1].includes(null)) return null;
    return { cpuMs: (cpu1 - cpu0) / 1e6, waitMs: (wait1 - wait0) / 1e6 };
  }
}

/**
 * The page's renderer process: the page spins for 150 ms and the renderer whose main thread
 * used that CPU is the one (Chromium also runs a spare renderer, its own UI's, and other
 * contexts' pages, so neither "the newest" nor "the largest" is reliable).
 */
export async function pageRendererPid(page) {
  const cpu = () => new Map(chromiumProcesses().filter((p) => p.type === "renderer").map((p) => [p.pid, schedstat(p.pid)?.cpuNs ?? 0]));
  const before = cpu();
  await page.evaluate(() => {
    const end = performance.now() + 150;
    while (performance.now() < end) {
      // spin
    }
  });
  const after = cpu();
  let best = null;
  for (const [pid, ns] of after) {
    const used = ns - (before.get(pid) ?? 0);
    if (!best || used > best.used) best = { pid, used };
  }
  return best && best.used > 50e6 ? best.pid : null;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

function statFields(pid) {
  const stat = readProc(pid, "stat");
  return stat ? stat.slice(stat.lastIndexOf(")") + 2).split(" ") : null;
}

/** CPU seconds (user + system) a process has used; null when it is gone. */
export function processCpuSeconds(pid) {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / CLOCK_TICKS : null;
}

/** CPU seconds of this node process's children that have exited (curl). */
export function reapedChildrenCpuSeconds() {
  const f = statFields("self");
  return f ? (Number(f[13]) + Number(f[14])) / CLOCK_TICKS : 0;
}

/**
 * CPU seconds per component: the stack's processes named in `stackPids` ({models, envoy, …}),
 * Chromium's processes by type, and this process's reaped children (curl).
 */
export function cpuSnapshot(stackPids) {
  const snap = { children: reapedChildrenCpuSeconds() };
  for (const [name, pid] of Object.entries(stackPids)) snap[name] = processCpuSeconds(pid) ?? 0;
  for (const p of chromiumProcesses()) {
    const key = `chromium ${p.type}`;
    snap[key] = (snap[key] ?? 0) + (processCpuSeconds(p.pid) ?? 0);
  }
  return snap;
}

export function cpuDelta(before, after) {
  const delta = {};
  for (const [key, value] of Object.entries(after)) delta[key] = Math.round((value - (before[key] ?? 0)) * 100) / 100;
  return delta;
}

export async function cdpMetrics(cdp) {
  const { metrics } = await cdp.send("Performance.getMetrics");
  return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
}

/**
 * Samples the page's JS heap (CDP Performance.getMetrics: JSHeapUsedSize, JSHeapTotalSize)
 * and the resident memory of Chromium's processes (/proc VmRSS) every `intervalMs`.
 */
export class MemorySampler {
  constructor(cdp, rendererPid, intervalMs = 100) {
    this.cdp = cdp;
    this.rendererPid = rendererPid;
    this.intervalMs = intervalMs;
    this.samples = [];
    this.timer = null;
    this.busy = false;
  }

  async sample() {
    const metrics = await cdpMetrics(this.cdp);
    const byType = {};
    for (const p of chromiumProcesses()) {
      const rss = rssBytes(p.pid);
      if (rss !== null) byType[p.type] = (byType[p.type] ?? 0) + rss;
    }
    const sample = {
      t: performance.now(),
      jsHeapUsed: metrics.JSHeapUsedSize,
      jsHeapTotal: metrics.JSHeapTotalSize,
      rendererRss: this.rendererPid ? rssBytes(this.rendererPid) : null,
      rssByType: byType,
    };
    return sample;
  }

  /** The median of a few quiet samples, after a garbage collection. */
  async baseline(count = 5) {
    await this.cdp.send("HeapProfiler.collectGarbage");
    await sleep(200);
    const quiet = [];
    for (let i = 0; i < count; i += 1) {
      quiet.push(await this.sample());
      await sleep(this.intervalMs);
    }
    return summarise(quiet, percentile50);
  }

  start() {
    this.samples = [];
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.sample()
        .then((s) => this.samples.push(s))
        .catch(() => undefined)
        .finally(() => {
          this.busy = false;
        });
    }, this.intervalMs);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return { samples: this.samples.length, peak: summarise(this.samples, (vs) => Math.max(...vs)) };
  }
}

function percentile50(values) {
  return percentile(values, 50);
}

function summarise(samples, reduce) {
  const pick = (get) => {
    const values = samples.map(get).filter((v) => typeof v === "number");
    return values.length ? reduce(values) : null;
  };
  const types = new Set(samples.flatMap((s) => Object.keys(s.rssByType)));
  return {
    jsHeapUsed: pick((s) => s.jsHeapUsed),
    jsHeapTotal: pick((s) => s.jsHeapTotal),
    rendererRss: pick((s) => s.rendererRss),
    rssByType: Object.fromEntries([...types].map((type) => [type, pick((s) => s.rssByType[type])])),
  };
}

// --- output ----------------------------------------------------------------------------
export function writeResult(path, document) {
  writeFileSync(path, `${JSON.stringify(document, null, 2)}\n`);
}

/**
 * Runs `main({ out, browser })` with one Chromium, closed on every way out; exit code 1 on an
 * error (the error on stderr).
 */
export async function runScript(main) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write(`usage: node ${process.argv[1]} OUT.json\n`);
    process.exit(2);
  }
  let session = null;
  try {
    session = await launch();
    await main({ out, browser: session.browser });
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    await session?.close();
  }
}
