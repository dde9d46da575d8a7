import { describe, expect, it } from "vitest";

import {
  bucketCount,
  chooseResolution,
  MAX_CHART_ROWS,
  MAX_POINTS_PER_TAG,
  parseDuration,
  RESOLUTION_LADDER,
  resolutionAdjective,
  resolutionLabel,
  resolutionProblem,
} from "./resolution";

const HOUR = 3600;
const DAY = 24 * HOUR;

describe("the chart's bucket", () => {
  it("gives each tag at most ~1,000 points for the presets", () => {
    // 5 tags, as the demo pumps have.
    expect(chooseResolution(DAY, 5)).toBe(120); // 721 buckets
    expect(chooseResolution(7 * DAY, 5)).toBe(900); // 673
    expect(chooseResolution(30 * DAY, 5)).toBe(HOUR); // 721
    expect(chooseResolution(90 * DAY, 5)).toBe(3 * HOUR); // 721: a 90-day view stays fast
  });

  it("keeps tags × buckets under 10,000 when there are many tags", () => {
    expect(chooseResolution(DAY, 20)).toBe(300); // 289 per tag, 5,780 rows
    expect(chooseResolution(90 * DAY, 50)).toBe(12 * HOUR); // 181 per tag, 9,050 rows
    // A year of 256 tags (the contract's most) goes beyond the ladder: whole days.
    const year = chooseResolution(366 * DAY, 256);
    expect(year % DAY).toBe(0);
    expect(bucketCount(366 * DAY, year) * 256).toBeLessThanOrEqual(MAX_CHART_ROWS);
  });

  it("never asks for more rows than the JSON answer may hold, whatever the range and tags", () => {
    for (const days of [1 / 24, 0.5, 1, 2, 7, 14, 30, 45, 90, 180, 366]) {
      for (const tags of [1, 2, 3, 5, 10, 17, 40, 100, 256]) {
        const range = days * DAY;
        const step = chooseResolution(range, tags);
        const perTag = bucketCount(range, step);
        expect(perTag).toBeLessThanOrEqual(MAX_POINTS_PER_TAG);
        expect(perTag * tags).toBeLessThanOrEqual(MAX_CHART_ROWS);
        expect(step).toBeLessThanOrEqual(range); // the server refuses a bucket longer than the range
        expect(step).toBeGreaterThanOrEqual(1);
      }
    }
  });

  it("picks the finest bucket that fits", () => {
    const step = chooseResolution(7 * DAY, 5);
    const finer = RESOLUTION_LADDER[RESOLUTION_LADDER.indexOf(step) - 1] ?? 0;
    expect(bucketCount(7 * DAY, finer)).toBeGreaterThan(MAX_POINTS_PER_TAG);
  });

  it("counts the partial bucket of a range that does not start on a boundary", () => {
    expect(bucketCount(DAY, HOUR)).toBe(25);
    expect(bucketCount(0, HOUR)).toBe(0);
  });

  it("says why a chosen bucket cannot be used", () => {
    expect(resolutionProblem(DAY, 5, 2 * DAY)).toBe("longer-than-range");
    expect(resolutionProblem(90 * DAY, 5, 60)).toBe("too-many-points");
    // A chosen bucket may give one tag up to 10,000 points.
    expect(resolutionProblem(7 * DAY, 1, 120)).toBeNull(); // 5,041 points
    expect(resolutionProblem(7 * DAY, 2, 120)).toBe("too-many-points"); // 10,082 rows
  });

  it("names buckets for people", () => {
    expect(resolutionLabel(3600)).toBe("1 h");
    expect(resolutionLabel(900)).toBe("15 min");
    expect(resolutionLabel(2 * DAY)).toBe("2 d");
    expect(resolutionLabel(30)).toBe("30 s");
    expect(resolutionAdjective(900)).toBe("15-minute");
    expect(resolutionAdjective(3 * HOUR)).toBe("3-hour");
    expect(parseDuration("3600s")).toBe(3600);
    expect(parseDuration(undefined)).toBeNull();
    expect(parseDuration("1h")).toBeNull();
  });
});
