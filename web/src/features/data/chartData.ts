// What the charts draw, computed without the charting library (so it is tested, and the
// page's summary and tables need no chart chunk): points with gaps, time ticks in the
// user's zone, failure areas clipped to the range, and a sentence summarising a series.
import type { Bucket, TagSeries } from "../../api/history";
import { formatNumber } from "../../components/format";
import type { FailureEventJson } from "../../gen/mlplane/v1/query_service_pb";
import { resolutionAdjective } from "./resolution";

export interface ChartPoint {
  t: number;
  avg: number | null;
  /** [min, max]: the band's low and high. */
  band: [number, number] | null;
  min: number | null;
  max: number | null;
  count: number;
}

/**
 * Points to plot, one per bucket at its start (the first, partial bucket of an unaligned
 * range at the range's start), with an empty point where buckets are missing so that the
 * line breaks instead of bridging a gap in the data.
 */
export function chartPoints(buckets: readonly Bucket[], resolutionMs: number, startMs: number): ChartPoint[] {
  const out: ChartPoint[] = [];
  let previous: number | null = null;
  for (const b of buckets) {
    const t = Math.max(b.t, startMs);
    if (previous !== null && t - previous > resolutionMs * 1.5) {
      out.push({ t: previous + resolutionMs, avg: null, band: null, min: null, max: null, count: 0 });
    }
    out.push({
      t,
      avg: b.avg,
      band: b.min !== null && b.max !== null ? [b.min, b.max] : null,
      min: b.min,
      max: b.max,
      count: b.count,
    });
    previous = t;
  }
  return out;
}

export interface FailureArea {
  x1: number;
  x2: number;
  event: FailureEventJson;
  ongoing: boolean;
}

/** Whether a failure overlaps [startMs, endMs): one still down (no end) lasts until now. */
export function overlaps(event: FailureEventJson, startMs: number, endMs: number): boolean {
  const from = event.startTime ? Date.parse(event.startTime) : Number.NaN;
  if (Number.isNaN(from) || from >= endMs) return false;
  const to = event.endTime ? Date.parse(event.endTime) : Number.POSITIVE_INFINITY;
  return to > startMs;
}

/** Shaded areas for the failures in the range, each at least 1/300 of the width (visible). */
export function failureAreas(events: readonly FailureEventJson[], startMs: number, endMs: number): FailureArea[] {
  const minWidth = (endMs - startMs) / 300;
  return events
    .filter((e) => overlaps(e, startMs, endMs))
    .map((event) => {
      let x1 = Math.max(Date.parse(event.startTime ?? ""), startMs);
      let x2 = Math.min(event.endTime ? Date.parse(event.endTime) : endMs, endMs);
      if (x2 - x1 < minWidth) {
        const middle = (x1 + x2) / 2;
        x1 = Math.max(startMs, middle - minWidth / 2);
        x2 = Math.min(endMs, x1 + minWidth);
      }
      return { x1, x2, event, ongoing: !event.endTime };
    });
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TICK_STEPS = [HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

/** Tick times on whole local hours or local midnights, at most `maxTicks` of them. */
export function timeTicks(startMs: number, endMs: number, maxTicks = 6): { ticks: number[]; step: number } {
  const span = endMs - startMs;
  const step = TICK_STEPS.find((s) => span / s <= maxTicks) ?? Math.ceil(span / maxTicks / DAY) * DAY;
  const first = new Date(startMs);
  if (step < DAY) {
    const hours = step / HOUR;
    first.setMinutes(0, 0, 0);
    while (first.getTime() < startMs || first.getHours() % hours !== 0) first.setHours(first.getHours() + 1);
  } else {
    first.setHours(0, 0, 0, 0);
    if (first.getTime() < startMs) first.setDate(first.getDate() + 1);
  }
  const ticks: number[] = [];
  const cursor = new Date(first);
  while (cursor.getTime() <= endMs && ticks.length < 60) {
    ticks.push(cursor.getTime());
    if (step < DAY) cursor.setHours(cursor.getHours() + step / HOUR);
    else cursor.setDate(cursor.getDate() + Math.round(step / DAY));
  }
  return { ticks, step };
}

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayOfMonth = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });

/** A tick's label: the local time of day, or the date at midnight and for day steps. */
export function tickLabel(ms: number, step: number): string {
  const date = new Date(ms);
  if (step >= DAY || (date.getHours() === 0 && date.getMinutes() === 0)) return dayOfMonth.format(date);
  return timeOfDay.format(date);
}

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });

/** Axis numbers: 45.82 → "45.82", 1234567 → "1.23M". */
export function axisNumber(value: number): string {
  return Math.abs(value) >= 10_000 ? compact.format(value) : shortNumber(value);
}

/** A value to 4 significant digits, for people. */
export function shortNumber(value: number): string {
  return formatNumber(Number(value.toPrecision(4)));
}

/** One sentence about a series, for the chart's caption (and screen readers). */
export function seriesSummary(series: TagSeries, resolutionSeconds: number, failures: number): string {
  const unit = series.unit ? ` ${series.unit}` : "";
  const points = series.buckets.filter((b) => b.avg !== null);
  const failuresText = failures ? `; ${failures} failure${failures === 1 ? "" : "s"} shaded` : "";
  if (points.length === 0) return `No samples of ${series.tag} in this range${failuresText}.`;
  let low = Number.POSITIVE_INFINITY;
  let high = Number.NEGATIVE_INFINITY;
  let weighted = 0;
  let samples = 0;
  for (const b of points) {
    low = Math.min(low, b.min ?? Number(b.avg));
    high = Math.max(high, b.max ?? Number(b.avg));
    weighted += Number(b.avg) * Math.max(1, b.count);
    samples += Math.max(1, b.count);
  }
  const mean = weighted / samples;
  return (
    `${points.length.toLocaleString()} ${resolutionAdjective(resolutionSeconds)} buckets (${samples.toLocaleString()} samples): ` +
    `mean ${shortNumber(mean)}${unit}, lowest ${shortNumber(low)}${unit}, highest ${shortNumber(high)}${unit}` +
    `${failuresText}.`
  );
}
