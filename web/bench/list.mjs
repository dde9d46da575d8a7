// The first models page with many models (issue #13: rendered within 100 ms of the data
// arriving, the seed's step 7 budget).
//
// Signed in as a data scientist of a tenant with WEB_BENCH_MODEL_COUNT models, each run loads
// /models afresh (a full page load: the app, the lazy page chunk, then GET /api/v1/models) and
// measures in the page, on one clock (performance.now):
//   data     the models response's responseEnd (PerformanceResourceTiming), its last byte;
//   dom      a MutationObserver sees the expected number of rows in the table's body;
//   frame    the next requestAnimationFrame (the frame that paints them starts);
//   painted  a message posted from that frame's rAF arrives: the main thread has finished that
//            frame's rendering (style, layout, paint) and handed it to the compositor;
//   paint    the requestAnimationFrame after `frame` (the next frame: conservative).
// The figure judged is paint - data. Page sizes: the app's own (it asks 50 at a time), and,
// with the request rewritten on its way out (Playwright route: pageSize=50 -> WEB_BENCH_BIG_PAGE),
// what one page of all the models would cost if the app offered it.
// Beside it, per run: the renderer main thread's CPU time and run-queue wait in the same
// window (/proc schedstat every ~2 ms, put on the page's clock), which splits the wall time
// into work and waiting for a core on a busy machine; CDP Performance.getMetrics of the whole
// load. With WEB_BENCH_PROFILE=1, one extra run of each size under the CDP CPU profiler
// (written beside OUT.json), summarised by self time per script and function in the window.
// With WEB_BENCH_CANDIDATE_DIST=<a build of a proposed app change>, that build is measured
// too, its files served through the browser's request interception against the same stack and
// data, load by load alternating with the gateway's own build.
import { writeFileSync } from "node:fs";

import {
  cdpMetrics,
  CONTEXT_OPTIONS,
  env,
  envInt,
  log,
  MainThreadSampler,
  pageClockOrigin,
  pageRendererPid,
  runScript,
  serveAppFrom,
  signIn,
  sleep,
  stats,
  writeResult,
} from "./common.mjs";

const APP_PAGE_SIZE = 50;

/** Installed before the app's scripts on every load: waits for `expected` rows, then frames. */
function instrument(expected) {
  const state = { expected, domAt: null, frameAt: null, paintedAt: null, paintAt: null };
  window.__listBench = state;
  const rows = () => document.querySelectorAll("table tbody tr").length;
  const observer = new MutationObserver(() => {
    if (state.domAt !== null || rows() < expected) return;
    state.domAt = performance.now();
    observer.disconnect();
    requestAnimationFrame(() => {
      state.frameAt = performance.now();
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        state.paintedAt = performance.now();
      };
      channel.port2.postMessage(null);
      requestAnimationFrame(() => {
        state.paintAt = performance.now();
      });
    });
  });
  observer.observe(document, { childList: true, subtree: true });
}

async function routeBigPage(page, size) {
  await page.route(
    (url) => url.pathname === "/api/v1/models",
    async (route) => {
      const url = new URL(route.request().url());
      if (url.searchParams.get("pageSize") === String(APP_PAGE_SIZE)) url.searchParams.set("pageSize", String(size));
      await route.continue({ url: url.toString() });
    },
  );
}

const METRICS = ["ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "TaskDuration", "Nodes", "JSHeapUsedSize"];

async function oneLoad(page, cdp, sampler, gateway, expected) {
  sampler?.start();
  await page.goto(`${gateway}/models`);
  await page.waitForFunction(() => window.__listBench?.paintAt != null && window.__listBench.paintedAt != null, null, {
    timeout: 60_000,
    polling: 50,
  });
  sampler?.stop();
  const origin = await pageClockOrigin(page);
  const after = await cdpMetrics(cdp);
  const got = await page.evaluate(() => {
    const s = window.__listBench;
    const entries = performance
      .getEntriesByType("resource")
      .filter((e) => new URL(e.name).pathname === "/api/v1/models" && e.responseEnd <= s.domAt);
    const e = entries.at(-1);
    return {
      rows: document.querySelectorAll("table tbody tr").length,
      ...s,
      response: e
        ? { url: e.name, startTime: e.startTime, responseEnd: e.responseEnd, encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize }
        : null,
      modelRequests: entries.length,
    };
  });
  if (!got.response) throw new Error("no GET /api/v1/models in the page's resource timing");
  if (got.rows !== expected) throw new Error(`expected ${String(expected)} rows, the page shows ${String(got.rows)}`);
  const data = got.response.responseEnd;
  const toUs = (ms) => origin.originUs + ms * 1000;
  const thread = sampler ? sampler.between(toUs(data), toUs(got.paintAt)) : null;
  // The counters start again with each document: these are the whole load's.
  const loadMetrics = {};
  for (const m of METRICS) if (typeof after[m] === "number") loadMetrics[m] = after[m];
  return {
    rows: got.rows,
    dataToDomMs: got.domAt - data,
    dataToFrameMs: got.frameAt - data,
    dataToPaintedMs: got.paintedAt - data,
    dataToPaintMs: got.paintAt - data,
    mainThreadCpuMs: thread?.cpuMs ?? null,
    mainThreadWaitMs: thread?.waitMs ?? null,
    clockTripUs: origin.tripUs,
    requestMs: got.response.responseEnd - got.response.startTime,
    responseEndMs: data,
    paintAtMs: got.paintAt,
    originUs: origin.originUs,
    responseBytes: { encoded: got.response.encodedBodySize, decoded: got.response.decodedBodySize },
    loadMetrics,
  };
}

/** Self time by script (chunk) and by function, from a CDP CPU profile. */
function summariseProfile(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i += 1) {
    const id = profile.samples[i];
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const byScript = new Map();
  const byFunction = new Map();
  for (const [id, micros] of self) {
    const frame = byId.get(id).callFrame;
    const script = frame.url ? new URL(frame.url).pathname : `(${frame.functionName || "native"})`;
    byScript.set(script, (byScript.get(script) ?? 0) + micros);
    const key = `${frame.functionName || "(anonymous)"} ${script}:${String(frame.lineNumber + 1)}:${String(frame.columnNumber + 1)}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
  }
  const top = (map, n) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, micros]) => ({ name, ms: micros / 1000 }));
  const totalMs = [...self.values()].reduce((a, b) => a + b, 0) / 1000;
  return { totalMs, byScript: top(byScript, 15), byFunction: top(byFunction, 30) };
}

/** The profile's samples between two page times (profiles run on CLOCK_MONOTONIC µs). */
function profileWindow(raw, originUs, fromMs, toMs) {
  const window = { ...raw, samples: [], timeDeltas: [] };
  let t = raw.startTime;
  for (let i = 0; i < raw.samples.length; i += 1) {
    t += raw.timeDeltas[i];
    const pageMs = (t - originUs) / 1000;
    if (pageMs >= fromMs && pageMs <= toMs) {
      window.samples.push(raw.samples[i]);
      window.timeDeltas.push(raw.timeDeltas[i]);
    }
  }
  return window;
}

/** One build of the app under test, in a context of its own, signed in, on one page size. */
async function openArm(browser, { label, dist, gateway, signInUrl, size }) {
  const context = await browser.newContext(CONTEXT_OPTIONS);
  if (dist) await serveAppFrom(context, gateway, dist);
  const page = await context.newPage();
  await signIn(page, signInUrl);
  await context.addInitScript(instrument, size);
  if (size !== APP_PAGE_SIZE) await routeBigPage(page, size);
  const cdp = await context.newCDPSession(page);
  await cdp.send("Performance.enable");
  const rendererPid = await pageRendererPid(page);
  return { label, dist, context, page, cdp, rendererPid, sampler: rendererPid ? new MainThreadSampler(rendererPid) : null, warm: [], measured: [] };
}

async function profileRun(arm, gateway, size, profilePath) {
  const { cdp } = arm;
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
  await cdp.send("Profiler.start");
  const run = await oneLoad(arm.page, cdp, arm.sampler, gateway, size);
  const { profile: raw } = await cdp.send("Profiler.stop");
  await cdp.send("Profiler.disable");
  writeFileSync(profilePath, JSON.stringify(raw));
  log(`${arm.label}, models page of ${String(size)}: profiled run: data -> paint ${run.dataToPaintMs.toFixed(1)} ms; ${profilePath}`);
  return {
    file: profilePath,
    run: { dataToPaintMs: run.dataToPaintMs, dataToDomMs: run.dataToDomMs, mainThreadCpuMs: run.mainThreadCpuMs, mainThreadWaitMs: run.mainThreadWaitMs },
    wholeLoad: summariseProfile(raw),
    dataToPaint: summariseProfile(profileWindow(raw, run.originUs, run.responseEndMs, run.paintAtMs)),
  };
}

function summariseArm(arm, size) {
  const measured = arm.measured;
  const pick = (key) => stats(measured.map((r) => r[key]));
  return {
    pageSize: size,
    build: arm.label,
    dist: arm.dist,
    asked: size === APP_PAGE_SIZE ? "the app's own page size" : `pageSize rewritten ${String(APP_PAGE_SIZE)} -> ${String(size)} on the way out`,
    rendererPid: arm.rendererPid,
    dataToPaintMs: pick("dataToPaintMs"),
    dataToPaintedMs: pick("dataToPaintedMs"),
    dataToFrameMs: pick("dataToFrameMs"),
    dataToDomMs: pick("dataToDomMs"),
    mainThreadCpuMs: pick("mainThreadCpuMs"),
    mainThreadWaitMs: pick("mainThreadWaitMs"),
    requestMs: pick("requestMs"),
    scriptMs: stats(measured.map((r) => (r.loadMetrics.ScriptDuration ?? 0) * 1000)),
    layoutMs: stats(measured.map((r) => (r.loadMetrics.LayoutDuration ?? 0) * 1000)),
    styleMs: stats(measured.map((r) => (r.loadMetrics.RecalcStyleDuration ?? 0) * 1000)),
    runs: measured,
    warmup: arm.warm,
    profile: arm.profile ?? null,
  };
}

/**
 * Every build (the one the gateway serves, and a candidate when given) on one page size,
 * load by load alternating (the order flips each round), so drift on a shared machine hits
 * both alike.
 */
async function measureSize(browser, { gateway, signInUrl, size, runs, warmup, profilePath, builds }) {
  const arms = [];
  try {
    for (const build of builds) arms.push(await openArm(browser, { ...build, gateway, signInUrl, size }));
    for (let i = 0; i < warmup + runs; i += 1) {
      const order = i % 2 === 0 ? arms : [...arms].reverse();
      for (const arm of order) {
        const run = await oneLoad(arm.page, arm.cdp, arm.sampler, gateway, size);
        (i < warmup ? arm.warm : arm.measured).push(run);
        log(
          `${arm.label}, models page of ${String(size)}: run ${String(i + 1)}/${String(warmup + runs)}: data -> paint ${run.dataToPaintMs.toFixed(1)} ms ` +
            `(dom ${run.dataToDomMs.toFixed(1)}, painted ${run.dataToPaintedMs.toFixed(1)}; main thread cpu ${String(run.mainThreadCpuMs?.toFixed(1))}, waiting ${String(run.mainThreadWaitMs?.toFixed(1))})`,
        );
        await sleep(300);
      }
    }
    if (profilePath) {
      for (const arm of arms) arm.profile = await profileRun(arm, gateway, size, profilePath.replace(/\.cpuprofile$/, `-${arm.label}.cpuprofile`));
    }
    return arms.map((arm) => summariseArm(arm, size));
  } finally {
    for (const arm of arms) await arm.context.close().catch(() => undefined);
  }
}

await runScript(async ({ out, browser }) => {
  const gateway = env("GATEWAY");
  const signInUrl = env("LIST_SIGNIN_URL");
  const runs = envInt("LIST_RUNS", 15);
  const warmup = envInt("LIST_WARMUP", 2);
  const models = envInt("MODEL_COUNT", 1000);
  const bigPage = Math.min(envInt("BIG_PAGE", 1000), models);
  const profile = env("PROFILE", "0") === "1";
  // An A/B run of an app change: a candidate build's files, served through the browser's
  // request interception (serveAppFrom), measured alternating with the gateway's own.
  const candidate = env("CANDIDATE_DIST", "") || null;
  const builds = [{ label: "served", dist: null }, ...(candidate ? [{ label: "candidate", dist: candidate }] : [])];
  const sizes = [Math.min(APP_PAGE_SIZE, models), ...(bigPage > APP_PAGE_SIZE ? [bigPage] : [])];
  const results = [];
  for (const size of sizes) {
    results.push(
      ...(await measureSize(browser, {
        gateway,
        signInUrl,
        size,
        runs,
        warmup,
        profilePath: profile ? out.replace(/\.json$/, `-profile-${String(size)}.cpuprofile`) : null,
        builds,
      })),
    );
  }
  writeResult(out, { models, appPageSize: APP_PAGE_SIZE, candidate, browserVersion: browser.version(), results });
});
