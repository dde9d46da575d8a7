// A large upload through the browser against `curl -F` to the same stack (issue #13: at least
// 0.7x curl's throughput), and the app's memory during uploads of two sizes (it must not grow
// with the file's size).
//
// Reference: `curl -sS -F name=… -F file=@model.onnx …/api/v1/models` with the data
// scientist's bearer token; the figure is curl's own time_total.
// Ours: the app's upload page in Chromium, signed in with a dev sign-in link: the name typed,
// the file chosen through "Choose a file…" and the browser's file chooser (Playwright hands
// Chromium the path: the File is backed by the file on disk, as a user's is), Upload clicked.
// The figure is measured in the page, from the form's submit event to the success message
// ("Uploaded <name> vN") in the DOM; the XHR's own resource timing and the MB/s the app showed
// are kept beside it.
// Rounds alternate which goes first, after one unmeasured round of each. Every stored version
// is checked through the API: its size and SHA-256 must be the file's.
//
// Memory, in WEB_BENCH_MEMORY_RUNS further uploads of each size (sampled every 100 ms; the
// throughput rounds go unsampled, as the sampling costs the renderer CPU that curl's rounds
// would not pay): the page's JS heap (CDP Performance.getMetrics JSHeapUsedSize) and the
// resident memory (/proc VmRSS) of the page's renderer and of Chromium's other processes by
// type (browser, network service, …); baseline = median of 5 quiet samples after a garbage
// collection, growth = peak - baseline. The big file's and the small file's are compared.
// With WEB_BENCH_CANDIDATE_DIST=<a build of a proposed app change>, that build uploads in
// every round too (its files served through the browser's request interception).
import { execFile } from "node:child_process";
import { basename } from "node:path";

import {
  CONTEXT_OPTIONS,
  cpuDelta,
  cpuSnapshot,
  env,
  envInt,
  log,
  MemorySampler,
  pageRendererPid,
  runScript,
  serveAppFrom,
  signIn,
  sleep,
  stats,
  withoutFsAccessPicker,
  writeResult,
} from "./common.mjs";

const UPLOAD_TIMEOUT_MS = 900_000;
const MB = 1_000_000;

async function curlUpload(options) {
  const before = cpuSnapshot(options.stackPids);
  const result = await curlOnce(options);
  return { ...result, cpu: cpuDelta(before, cpuSnapshot(options.stackPids)) };
}

function curlOnce({ curl, gateway, token, model, name }) {
  const format = "\n%{http_code} %{time_total} %{size_upload} %{time_starttransfer}";
  // `Expect:` off: the gateway never says 100 Continue, so curl would wait a second for it.
  const args = ["-sS", "-w", format, "-H", `Authorization: Bearer ${token}`, "-H", "Expect:", "-F", `name=${name}`, "-F", `file=@${model.path};type=application/octet-stream`, `${gateway}/api/v1/models`];
  return new Promise((resolve, reject) => {
    const started = performance.now();
    execFile(curl, args, { timeout: UPLOAD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const wall = (performance.now() - started) / 1000;
      if (error) {
        reject(new Error(`curl failed: ${error.message} ${stderr}`));
        return;
      }
      const cut = stdout.lastIndexOf("\n");
      const body = stdout.slice(0, cut);
      const [status, total, uploaded, ttfb] = stdout.slice(cut + 1).split(" ");
      if (status !== "201") {
        reject(new Error(`curl upload: HTTP ${status}: ${body.slice(0, 500)}`));
        return;
      }
      const version = JSON.parse(body);
      check("curl", model, version);
      resolve({ client: "curl", name, seconds: Number(total), processWall: wall, uploadedBytes: Number(uploaded), ttfb: Number(ttfb), version: version.version });
    });
  });
}

function check(what, model, version) {
  if (String(version.sizeBytes) !== String(model.size) || version.sha256 !== model.sha256) {
    throw new Error(`${what}: the registry stored ${String(version.sizeBytes)} bytes with SHA-256 ${String(version.sha256)}, expected ${String(model.size)} and ${model.sha256}`);
  }
}

async function apiGet(gateway, token, path) {
  const response = await fetch(`${gateway}/api/v1/${path}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${String(response.status)}`);
  return await response.json();
}

/** What the server stored for the newest version of `name`. */
async function stored(gateway, token, name) {
  const list = await apiGet(gateway, token, `models?filter=${encodeURIComponent(`name = "${name}"`)}`);
  const model = list.models?.[0];
  if (!model) throw new Error(`no model named ${name}`);
  return await apiGet(gateway, token, `models/${model.modelId}/versions/${model.latestVersion}`);
}

/** In the page: the submit event and the success (or failure) message of upload `name`. */
function watchUpload(name) {
  const state = { name, submitAt: null, doneAt: null, failedAt: null, failure: null, rates: [] };
  window.__uploadBench = state;
  document.addEventListener(
    "submit",
    (event) => {
      if (state.submitAt === null) state.submitAt = event.timeStamp;
    },
    { capture: true, once: true },
  );
  const observer = new MutationObserver(() => {
    for (const el of document.querySelectorAll("[role=status]")) {
      if (el.textContent?.includes(`Uploaded ${name} v`)) {
        state.doneAt = performance.now();
        observer.disconnect();
        return;
      }
    }
    const alert = [...document.querySelectorAll("[role=alert]")].find((el) => el.closest("form"));
    if (alert && state.submitAt !== null) {
      state.failedAt = performance.now();
      state.failure = alert.textContent;
      observer.disconnect();
      return;
    }
    for (const el of document.querySelectorAll("form p, form span, form div")) {
      if (el.childElementCount === 0 && /^\d+(\.\d+)? MB\/s$/.test(el.textContent ?? "")) {
        const rate = Number.parseFloat(el.textContent);
        if (state.rates.at(-1) !== rate) state.rates.push(rate);
      }
    }
  });
  observer.observe(document.body, { childList: true, subtree: true, characterData: true });
}

class BrowserUploader {
  constructor(browser, { gateway, signInUrl, token, stackPids, dist = null }) {
    this.browser = browser;
    this.dist = dist;
    this.stackPids = stackPids;
    this.gateway = gateway;
    this.signInUrl = signInUrl;
    this.token = token;
  }

  async open() {
    this.context = await this.browser.newContext(CONTEXT_OPTIONS);
    await withoutFsAccessPicker(this.context);
    if (this.dist) await serveAppFrom(this.context, this.gateway, this.dist);
    this.page = await this.context.newPage();
    await signIn(this.page, this.signInUrl);
    await this.page.goto(`${this.gateway}/upload`);
    await this.field().waitFor({ timeout: 30_000 });
    this.cdp = await this.context.newCDPSession(this.page);
    await this.cdp.send("Performance.enable");
    this.rendererPid = await pageRendererPid(this.page);
    this.sampler = new MemorySampler(this.cdp, this.rendererPid, 100);
  }

  field() {
    return this.page.getByRole("textbox", { name: "Name", exact: true });
  }

  /**
   * One upload through the app. `sample`: the page's memory is sampled meanwhile (CDP and
   * /proc every 100 ms cost the renderer CPU, so the throughput rounds go without).
   */
  async upload(model, name, { sample = true } = {}) {
    const page = this.page;
    await this.field().fill(name);
    const chooser = page.waitForEvent("filechooser");
    await page.getByRole("button", { name: "Choose a file…" }).click();
    await (await chooser).setFiles(model.path);
    await page.getByText(basename(model.path), { exact: true }).waitFor({ timeout: 30_000 });
    const baseline = sample ? await this.sampler.baseline() : null;
    await page.evaluate(watchUpload, name);
    const cpuBefore = cpuSnapshot(this.stackPids);
    if (sample) this.sampler.start();
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await page.waitForFunction(() => window.__uploadBench.doneAt !== null || window.__uploadBench.failedAt !== null, null, {
      timeout: UPLOAD_TIMEOUT_MS,
      polling: 100,
    });
    const peak = sample ? this.sampler.stop() : null;
    const cpu = cpuDelta(cpuBefore, cpuSnapshot(this.stackPids));
    const got = await page.evaluate(() => {
      const s = window.__uploadBench;
      const xhr = performance
        .getEntriesByType("resource")
        .filter((e) => e.initiatorType === "xmlhttprequest" && new URL(e.name).pathname === "/api/v1/models")
        .at(-1);
      return { ...s, xhr: xhr ? { startTime: xhr.startTime, requestStart: xhr.requestStart, responseStart: xhr.responseStart, responseEnd: xhr.responseEnd } : null };
    });
    if (got.failedAt !== null) throw new Error(`the app's upload of ${name} failed: ${String(got.failure)}`);
    const after = sample ? await this.sampler.baseline(3) : null;
    check("browser", model, await stored(this.gateway, this.token, name));
    const seconds = (got.doneAt - got.submitAt) / 1000;
    const growth = (key) => (peak.peak[key] ?? 0) - (baseline[key] ?? 0);
    const byType = {};
    if (sample) for (const [type, value] of Object.entries(peak.peak.rssByType)) byType[type] = (value ?? 0) - (baseline.rssByType[type] ?? 0);
    return {
      client: "browser",
      name,
      seconds,
      xhrSeconds: got.xhr ? (got.xhr.responseEnd - got.xhr.startTime) / 1000 : null,
      appRatesMBps: got.rates,
      cpu,
      memory: sample && {
        samples: peak.samples,
        baseline,
        peak: peak.peak,
        afterGc: after,
        growth: { jsHeapUsed: growth("jsHeapUsed"), jsHeapTotal: growth("jsHeapTotal"), rendererRss: growth("rendererRss"), rssByType: byType },
      },
    };
  }

  async close() {
    await this.context?.close();
  }
}

function summary(runs, model) {
  const seconds = stats(runs.map((r) => r.seconds));
  const keys = new Set(runs.flatMap((r) => Object.keys(r.cpu ?? {})));
  const cpuSeconds = Object.fromEntries([...keys].map((k) => [k, stats(runs.map((r) => r.cpu?.[k] ?? 0))?.median ?? null]));
  return {
    seconds,
    mbPerSecond: stats(runs.map((r) => model.size / MB / r.seconds)),
    cpuSecondsMedian: cpuSeconds,
    runs,
  };
}

function memorySummary(runs) {
  const pick = (get) => stats(runs.map(get));
  return {
    jsHeapUsedGrowth: pick((r) => r.memory.growth.jsHeapUsed),
    rendererRssGrowth: pick((r) => r.memory.growth.rendererRss),
    browserProcessRssGrowth: pick((r) => r.memory.growth.rssByType.browser ?? 0),
    networkServiceRssGrowth: pick((r) => r.memory.growth.rssByType["utility:network.mojom.NetworkService"] ?? 0),
    jsHeapUsedRetainedAfterGc: pick((r) => (r.memory.afterGc.jsHeapUsed ?? 0) - (r.memory.baseline.jsHeapUsed ?? 0)),
    jsHeapUsedPeak: pick((r) => r.memory.peak.jsHeapUsed),
    rendererRssPeak: pick((r) => r.memory.peak.rendererRss),
  };
}

await runScript(async ({ out, browser }) => {
  const gateway = env("GATEWAY");
  const token = env("UPLOAD_TOKEN");
  const curl = env("CURL", "curl");
  const models = JSON.parse(env("UPLOAD_MODELS"));
  const big = models.big;
  const small = models.small;
  const rounds = envInt("UPLOAD_ROUNDS", 3);
  const memoryRuns = envInt("MEMORY_RUNS", 3);
  const stamp = Date.now().toString(36);
  let serial = 0;
  const nextName = (what) => `web-bench-${what}-${stamp}-${String((serial += 1))}`;

  // The stack's processes ({models, envoy, …}), for the CPU each upload costs them.
  const stackPids = JSON.parse(env("STACK_PIDS", "{}"));
  const signInUrl = env("UPLOAD_SIGNIN_URL");
  // An A/B run of an app change: a candidate build (its files served through the browser's
  // request interception) uploads in every round too.
  const candidate = env("CANDIDATE_DIST", "") || null;
  const uploaders = { browser: new BrowserUploader(browser, { gateway, signInUrl, token, stackPids }) };
  if (candidate) uploaders.candidate = new BrowserUploader(browser, { gateway, signInUrl, token, stackPids, dist: candidate });
  try {
    for (const [who, uploader] of Object.entries(uploaders)) {
      await uploader.open();
      log(`${who}: upload page open; renderer pid ${String(uploader.rendererPid)}`);
    }
    const clients = ["curl", ...Object.keys(uploaders)];
    const once = async (who, model) =>
      who === "curl"
        ? await curlUpload({ curl, gateway, token, model, name: nextName("curl"), stackPids })
        : await uploaders[who].upload(model, nextName(who), { sample: false });
    const warmup = [];
    for (const who of clients) warmup.push({ who, ...(await once(who, big)) });
    log(`warm-up: ${warmup.map((w) => `${w.who} ${w.seconds.toFixed(2)} s`).join(", ")}`);
    const runs = Object.fromEntries(clients.map((who) => [who, []]));
    for (let i = 0; i < rounds; i += 1) {
      // Who goes first turns with each round.
      const order = clients.map((_, k) => clients[(k + i) % clients.length]);
      for (const who of order) {
        await sleep(1000);
        runs[who].push({ round: i + 1, ...(await once(who, big)) });
      }
      log(`round ${String(i + 1)}/${String(rounds)}: ${clients.map((who) => `${who} ${(big.size / MB / runs[who].at(-1).seconds).toFixed(0)} MB/s`).join(", ")}`);
    }
    // Memory: separate uploads of both sizes with the page sampled.
    const smallRuns = Object.fromEntries(Object.keys(uploaders).map((who) => [who, []]));
    const bigMemoryRuns = Object.fromEntries(Object.keys(uploaders).map((who) => [who, []]));
    for (let i = 0; i < memoryRuns; i += 1) {
      for (const [who, uploader] of Object.entries(uploaders)) {
        for (const [model, into, what] of [[small, smallRuns, "small"], [big, bigMemoryRuns, "big"]]) {
          await sleep(500);
          into[who].push(await uploader.upload(model, nextName(`${who}-${what}`)));
          log(`${who}, memory, ${String(model.mib)} MiB ${String(i + 1)}/${String(memoryRuns)}: heap growth ${(into[who].at(-1).memory.growth.jsHeapUsed / 1e6).toFixed(2)} MB`);
        }
      }
    }
    const summaries = Object.fromEntries(clients.map((who) => [who, summary(runs[who], big)]));
    const ratio = (who) => summaries[who].mbPerSecond.median / summaries.curl.mbPerSecond.median;
    const memory = (who) => ({
      rendererPid: uploaders[who].rendererPid,
      big: memorySummary(bigMemoryRuns[who]),
      small: { ...memorySummary(smallRuns[who]), runs: smallRuns[who] },
    });
    writeResult(out, {
      big: { mib: big.mib, size: big.size, sha256: big.sha256 },
      small: { mib: small.mib, size: small.size, sha256: small.sha256 },
      rounds,
      curl: summaries.curl,
      browser: { ...summaries.browser, memory: memory("browser") },
      ratio: ratio("browser"),
      ...(candidate ? { candidate: { dist: candidate, ...summaries.candidate, ratio: ratio("candidate"), memory: memory("candidate") } } : {}),
      warmup,
    });
  } finally {
    for (const uploader of Object.values(uploaders)) await uploader.close();
  }
});
