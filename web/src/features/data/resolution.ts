// How wide the chart's buckets are. The server aggregates (avg, min, max, count per tag and
// bucket) so that a 90-day view stays fast, and the REST JSON answer has a row cap (100,000 by
// default, 20,000 on the test stack): the app keeps tags × buckets under MAX_CHART_ROWS and
// each tag under MAX_POINTS_PER_TAG points, whatever the range.
//
// Buckets are aligned to a fixed origin on the server (date_bin from 2000-01-01 UTC), so a
// range that does not start on a bucket boundary gets one partial bucket more: counted here.

/** About this many points per tag in "auto": more than a chart's width in pixels. */
export const MAX_POINTS_PER_TAG = 1000;
/** tags × buckets at most this: well under the server's JSON row cap. */
export const MAX_CHART_ROWS = 10_000;

const MINUTE = 60;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The bucket widths offered, in seconds, finest first. */
export const RESOLUTION_LADDER: readonly number[] = [
  1,
  5,
  10,
  15,
  30,
  MINUTE,
  2 * MINUTE,
  5 * MINUTE,
  10 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  HOUR,
  2 * HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
  2 * DAY,
  7 * DAY,
];

/** The most buckets one tag can get over `rangeSeconds` (one more for an unaligned start). */
export function bucketCount(rangeSeconds: number, resolutionSeconds: number): number {
  if (rangeSeconds <= 0 || resolutionSeconds <= 0) return 0;
  return Math.ceil(rangeSeconds / resolutionSeconds) + 1;
}

/** The points one tag may have with `tagCount` tags on the chart. */
export function pointsPerTagLimit(tagCount: number, limit = MAX_POINTS_PER_TAG): number {
  return Math.max(2, Math.min(limit, Math.floor(MAX_CHART_ROWS / Math.max(1, tagCount))));
}

/**
 * The finest bucket (from the ladder; whole days beyond it) that gives each tag at most
 * ~1,000 points and all tags together at most MAX_CHART_ROWS rows. Never longer than the
 * range (the server refuses that), never shorter than a second.
 */
export function chooseResolution(rangeSeconds: number, tagCount: number): number {
  const limit = pointsPerTagLimit(tagCount);
  for (const step of RESOLUTION_LADDER) {
    if (bucketCount(rangeSeconds, step) <= limit) return Math.min(step, Math.max(1, Math.floor(rangeSeconds)));
  }
  // Beyond the ladder (a year of hundreds of tags): whole days.
  const days = Math.ceil(rangeSeconds / (limit - 1) / DAY);
  return Math.min(Math.max(1, days) * DAY, Math.max(1, Math.floor(rangeSeconds)));
}

export type ResolutionProblem = "longer-than-range" | "too-many-points";

/** Why a chosen bucket cannot be charted for this range and these tags, or null. */
export function resolutionProblem(
  rangeSeconds: number,
  tagCount: number,
  resolutionSeconds: number,
): ResolutionProblem | null {
  if (resolutionSeconds > rangeSeconds) return "longer-than-range";
  if (bucketCount(rangeSeconds, resolutionSeconds) * Math.max(1, tagCount) > MAX_CHART_ROWS) {
    return "too-many-points";
  }
  return null;
}

/** 3600 → "1 h", 90 → "90 s", 172800 → "2 d". */
export function resolutionLabel(seconds: number): string {
  if (seconds % DAY === 0) return `${seconds / DAY} d`;
  if (seconds % HOUR === 0) return `${seconds / HOUR} h`;
  if (seconds % MINUTE === 0) return `${seconds / MINUTE} min`;
  return `${seconds} s`;
}

/** 3600 → "1 hour", 900 → "15 minutes". */
export function resolutionWords(seconds: number): string {
  const unit = (n: number, word: string) => (n === 1 ? `1 ${word}` : `${n} ${word}s`);
  if (seconds % DAY === 0) return unit(seconds / DAY, "day");
  if (seconds % HOUR === 0) return unit(seconds / HOUR, "hour");
  if (seconds % MINUTE === 0) return unit(seconds / MINUTE, "minute");
  return unit(seconds, "second");
}

/** 900 → "15-minute", for "15-minute buckets". */
export function resolutionAdjective(seconds: number): string {
  if (seconds % DAY === 0) return `${seconds / DAY}-day`;
  if (seconds % HOUR === 0) return `${seconds / HOUR}-hour`;
  if (seconds % MINUTE === 0) return `${seconds / MINUTE}-minute`;
  return `${seconds}-second`;
}

/** Proto JSON's Duration ("3600s", "0.5s") as whole seconds, or null. */
export function parseDuration(value: string | undefined): number | null {
  if (!value) return null;
  const match = /^(-?\d+(?:\.\d+)?)s$/.exec(value);
  if (!match?.[1]) return null;
  const seconds = Number(match[1]);
  return Number.isFinite(seconds) ? seconds : null;
}

/** Seconds as proto JSON's Duration: 3600 → "3600s". */
export function durationJson(seconds: number): string {
  return `${Math.round(seconds)}s`;
}
