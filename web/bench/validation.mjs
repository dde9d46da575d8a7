// Input validation feedback (issue #13: each message within 50 ms of the input).
//
// On the upload page, signed in as a data scientist, keys are typed into the Name field with
// Playwright's keyboard (CDP input events, as trusted as a user's): a character the contract
// refuses ("!", "A", " ", "#", "?") after a valid name, then Backspace. Measured in the page on
// one clock, from the `input` event's timeStamp to
//   dom    the field's error text (the element its aria-describedby names, `…-error`) is in the
//          DOM (appearing) or gone (disappearing): a MutationObserver;
//   paint  the second requestAnimationFrame after that (the frame showing it has been painted).
// Warm: WEB_BENCH_VALIDATION_RUNS transitions each way on one page, after 2 unmeasured pairs.
// Cold: the first keystroke on a freshly loaded upload page in a new browser context
// (WEB_BENCH_VALIDATION_COLD loads), the rules' first use included.
// Chromium's Event Timing entries (keydown to next paint, ≥ 16 ms only) are kept as a cross-check,
// and the renderer main thread's CPU time and run-queue wait in each window (as in list.mjs).
import {
  CONTEXT_OPTIONS,
  env,
  envInt,
  log,
  MainThreadSampler,
  pageClockOrigin,
  pageRendererPid,
  runScript,
  sleep,
  stats,
  writeResult,
} from "./common.mjs";

const INVALID = ["!", "A", " ", "#", "?"];
const VALID_NAME = "pump-bearing-risk";

/** Installed in the upload page: watches the Name field's error around each input event. */
function instrument(input) {
  const errorShown = () => {
    const el = document.getElementById(`${input.id}-error`);
    return Boolean(el && el.textContent && el.textContent.trim());
  };
  const state = { pending: null, done: [], events: [] };
  window.__validationBench = state;
  input.addEventListener(
    "input",
    (event) => {
      state.pending = { inputAt: event.timeStamp, handlerAt: performance.now(), before: errorShown(), domAt: null, paintAt: null, after: null };
    },
    true,
  );
  const observer = new MutationObserver(() => {
    const p = state.pending;
    if (!p || p.domAt !== null) return;
    const shown = errorShown();
    if (shown === p.before) return;
    p.domAt = performance.now();
    p.after = shown;
    p.message = shown ? document.getElementById(`${input.id}-error`)?.textContent ?? "" : "";
    requestAnimationFrame(() => {
      requestAnimationFrame(() => {
        p.paintAt = performance.now();
        state.done.push(p);
        state.pending = null;
      });
    });
  });
  observer.observe(input.closest("form") ?? document.body, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ["aria-invalid", "id"] });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) state.events.push({ name: e.name, duration: e.duration, processing: e.processingEnd - e.processingStart, delay: e.processingStart - e.startTime });
  }).observe({ type: "event", durationThreshold: 16, buffered: false });
  return input.id;
}

async function openUploadPage(page, gateway) {
  await page.goto(`${gateway}/upload`);
  await page.getByRole("textbox", { name: "Name", exact: true }).waitFor({ timeout: 30_000 });
}

/** The page's renderer, its main thread sampled, and the page's clock on CLOCK_MONOTONIC. */
async function watchThread(page) {
  const pid = await pageRendererPid(page);
  const sampler = pid ? new MainThreadSampler(pid) : null;
  sampler?.start();
  return { sampler, origin: await pageClockOrigin(page) };
}

async function transition(page, key, expectShown, thread) {
  const count = await page.evaluate(() => window.__validationBench.done.length);
  await page.keyboard.press(key);
  await page.waitForFunction((n) => window.__validationBench.done.length > n, count, { timeout: 10_000, polling: 20 });
  const p = await page.evaluate(() => window.__validationBench.done.at(-1));
  if (p.after !== expectShown) throw new Error(`after ${key}: error ${p.after ? "shown" : "gone"}, expected the opposite`);
  await sleep(5); // a sample of the main thread after the paint
  const toUs = (ms) => thread.origin.originUs + ms * 1000;
  const split = thread.sampler?.between(toUs(p.inputAt), toUs(p.paintAt)) ?? null;
  return {
    key,
    shown: p.after,
    message: p.message,
    inputToDomMs: p.domAt - p.inputAt,
    inputToPaintMs: p.paintAt - p.inputAt,
    handlerDelayMs: p.handlerAt - p.inputAt,
    mainThreadCpuMs: split?.cpuMs ?? null,
    mainThreadWaitMs: split?.waitMs ?? null,
  };
}

async function warmRuns(browser, gateway, signInUrl, runs) {
  const context = await browser.newContext(CONTEXT_OPTIONS);
  try {
    const page = await context.newPage();
    await page.goto(signInUrl);
    await page.getByRole("button", { name: /^Signed in as .*: account menu$/ }).waitFor({ timeout: 30_000 });
    await openUploadPage(page, gateway);
    const field = page.getByRole("textbox", { name: "Name", exact: true });
    await field.fill(VALID_NAME);
    await field.blur();
    await sleep(300);
    await field.focus();
    await page.keyboard.press("End");
    await field.evaluate(instrument);
    const thread = await watchThread(page);
    const appear = [];
    const disappear = [];
    const warmupPairs = 2;
    for (let i = 0; i < runs + warmupPairs; i += 1) {
      const bad = await transition(page, INVALID[i % INVALID.length], true, thread);
      await sleep(60);
      const good = await transition(page, "Backspace", false, thread);
      await sleep(60);
      if (i >= warmupPairs) {
        appear.push(bad);
        disappear.push(good);
      }
    }
    thread.sampler?.stop();
    const events = await page.evaluate(() => window.__validationBench.events);
    return { appear, disappear, eventTimingOver16ms: events };
  } finally {
    await context.close();
  }
}

async function coldRun(browser, gateway, signInUrl) {
  const context = await browser.newContext(CONTEXT_OPTIONS);
  try {
    const page = await context.newPage();
    await page.goto(signInUrl);
    await page.getByRole("button", { name: /^Signed in as .*: account menu$/ }).waitFor({ timeout: 30_000 });
    await openUploadPage(page, gateway);
    const field = page.getByRole("textbox", { name: "Name", exact: true });
    await field.evaluate(instrument);
    const thread = await watchThread(page);
    await field.focus();
    // An upper-case first letter: the contract refuses it at once.
    try {
      return await transition(page, "A", true, thread);
    } finally {
      thread.sampler?.stop();
    }
  } finally {
    await context.close();
  }
}

await runScript(async ({ out, browser }) => {
  const gateway = env("GATEWAY");
  const signInUrl = env("LIST_SIGNIN_URL");
  const runs = envInt("VALIDATION_RUNS", 40);
  const coldLoads = envInt("VALIDATION_COLD", 5);
  const cold = [];
  for (let i = 0; i < coldLoads; i += 1) {
    cold.push(await coldRun(browser, gateway, signInUrl));
    log(`validation, cold ${String(i + 1)}/${String(coldLoads)}: input -> paint ${cold.at(-1).inputToPaintMs.toFixed(1)} ms`);
  }
  const warm = await warmRuns(browser, gateway, signInUrl, runs);
  const summary = (list) => ({
    inputToPaintMs: stats(list.map((r) => r.inputToPaintMs)),
    inputToDomMs: stats(list.map((r) => r.inputToDomMs)),
    mainThreadCpuMs: stats(list.map((r) => r.mainThreadCpuMs)),
    mainThreadWaitMs: stats(list.map((r) => r.mainThreadWaitMs)),
  });
  log(`validation, warm: appear ${summary(warm.appear).inputToPaintMs.median.toFixed(1)} ms, disappear ${summary(warm.disappear).inputToPaintMs.median.toFixed(1)} ms (median to paint)`);
  writeResult(out, {
    field: "Name",
    validName: VALID_NAME,
    invalidKeys: INVALID,
    appear: { ...summary(warm.appear), runs: warm.appear },
    disappear: { ...summary(warm.disappear), runs: warm.disappear },
    cold: { ...summary(cold), runs: cold },
    eventTimingOver16ms: warm.eventTimingOver16ms,
  });
});
